//! Connecting without blocking anyone, for the asyncio face: the outcome of the
//! transport set-up (DNS, TCP, TLS, WebSocket, proxy) arrives as an
//! [`Event::ConnectResult`] in the event queue instead of through a channel that a
//! thread would have to block on. Kept apart from `mod.rs` so that the blocking
//! `start_connect` of the paho facade stays untouched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::event::Event;
use super::transport::{self, ConnectError};
use super::{connection, Client, ConnectOptions, MAX_PACKET_SIZE};

/// Attempt numbers are unique in the process, so a result can never be taken for
/// the result of a later attempt.
static NEXT_ATTEMPT: AtomicU64 = AtomicU64::new(1);

/// A [`ConnectError`] as plain data (events must be `Clone + Eq`); the face turns
/// `kind` into the exception Python's `socket`/`ssl` modules would raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFailure {
    /// One of "gaierror", "os", "timeout", "ssl_verify", "ssl", "websocket", "proxy",
    /// "value", "not_implemented", "cancelled".
    pub kind: &'static str,
    pub errno: Option<i32>,
    pub message: String,
}

impl From<&ConnectError> for ConnectFailure {
    fn from(e: &ConnectError) -> Self {
        let (kind, errno, message) = match e {
            // EAI_NONAME, as `socket.getaddrinfo` reports an unknown host on Linux.
            ConnectError::Resolve { .. } => (
                "gaierror",
                Some(-2),
                "Name or service not known".to_string(),
            ),
            ConnectError::Io(io) => match io.raw_os_error() {
                Some(errno) => {
                    let text = std::io::Error::from_raw_os_error(errno).to_string();
                    let strerror = text
                        .rsplit_once(" (os error")
                        .map_or(text.as_str(), |(head, _)| head)
                        .to_string();
                    ("os", Some(errno), strerror)
                }
                None => ("os", None, io.to_string()),
            },
            ConnectError::Timeout => ("timeout", None, "timed out".to_string()),
            ConnectError::TlsVerify(d) => (
                "ssl_verify",
                Some(1),
                format!("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {d}"),
            ),
            ConnectError::Tls(d) => ("ssl", Some(1), format!("[SSL] {d}")),
            ConnectError::WebSocket(d) => ("websocket", None, d.clone()),
            ConnectError::Proxy(d) => ("proxy", None, d.clone()),
            ConnectError::InvalidArgument(d) => ("value", None, d.clone()),
            ConnectError::NotImplemented(d) => ("not_implemented", None, d.clone()),
            ConnectError::Cancelled => ("cancelled", None, "connect was cancelled".to_string()),
        };
        Self {
            kind,
            errno,
            message,
        }
    }
}

impl Client {
    /// Like [`Client::start_connect`] but returns at once with an attempt number; the
    /// outcome is posted as [`Event::ConnectResult`] (success once CONNECT is written;
    /// CONNACK follows as usual). Closing or starting another connect aborts the
    /// attempt without a result.
    pub fn start_connect_evented(&self, opts: ConnectOptions) -> u64 {
        self.close();
        *self.shared.last.lock() = Some(opts.clone());
        let attempt = NEXT_ATTEMPT.fetch_add(1, Ordering::Relaxed);
        let shared = self.shared.clone();
        let mut task = self.shared.task.lock();
        let join = crate::runtime::handle().spawn(async move {
            let opened =
                match tokio::time::timeout(opts.timeout, transport::open(&opts.transport)).await {
                    Err(_) => Err(ConnectError::Timeout),
                    Ok(r) => r,
                };
            let stream = match opened {
                Ok(s) => s,
                Err(e) => {
                    shared.events.push(Event::ConnectResult {
                        attempt,
                        failure: Some(ConnectFailure::from(&e)),
                    });
                    return;
                }
            };
            let version = opts.connect.protocol;
            let max_packet_size = opts
                .connect
                .properties
                .maximum_packet_size
                .unwrap_or(MAX_PACKET_SIZE);
            let generation = {
                let mut s = shared.session.lock();
                let g = s.on_transport_open(opts.connect, Instant::now());
                // The result goes first so the face knows the attempt is up before
                // anything this connection reports.
                shared.events.push(Event::ConnectResult {
                    attempt,
                    failure: None,
                });
                shared.flush_events(&mut s);
                g
            };
            connection::run(shared, generation, stream, version, max_packet_size).await;
        });
        *task = Some(join.abort_handle());
        attempt
    }

    /// `start_connect_evented` with the last options; `None` if there were none.
    pub fn start_reconnect_evented(&self) -> Option<u64> {
        let last = self.shared.last.lock().clone()?;
        Some(self.start_connect_evented(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{TransportKind, TransportOptions};
    use crate::codec::{Connect, ProtocolVersion};
    use std::time::Duration;

    fn options(port: u16) -> ConnectOptions {
        ConnectOptions {
            connect: Connect {
                protocol: ProtocolVersion::V311,
                clean_start: true,
                keep_alive: 60,
                client_id: "t".into(),
                will: None,
                username: None,
                password: None,
                properties: Default::default(),
            },
            transport: TransportOptions {
                host: "127.0.0.1".into(),
                port,
                kind: TransportKind::Tcp,
                ..Default::default()
            },
            timeout: Duration::from_secs(5),
        }
    }

    fn next_result(c: &Client) -> Event {
        loop {
            assert!(c.events().wait(Duration::from_secs(5)), "no event");
            for e in c.events().drain(0) {
                if matches!(e, Event::ConnectResult { .. }) {
                    return e;
                }
            }
        }
    }

    #[test]
    fn refused_connect_is_reported_as_an_event_with_errno() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Client::new().unwrap();
        let attempt = c.start_connect_evented(options(port));
        match next_result(&c) {
            Event::ConnectResult {
                attempt: a,
                failure: Some(f),
            } => {
                assert_eq!(a, attempt);
                assert_eq!(f.kind, "os");
                assert_eq!(f.errno, Some(111), "ECONNREFUSED");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn successful_transport_is_reported_before_connect_bytes_arrive() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = Client::new().unwrap();
        let attempt = c.start_connect_evented(options(port));
        let (mut sock, _) = listener.accept().unwrap();
        assert_eq!(
            next_result(&c),
            Event::ConnectResult {
                attempt,
                failure: None
            }
        );
        let mut first = [0u8; 1];
        std::io::Read::read_exact(&mut sock, &mut first).unwrap();
        assert_eq!(first[0], 0x10, "CONNECT");
    }

    #[test]
    fn paused_queue_has_no_room_until_resumed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let q = std::sync::Arc::new(crate::client::EventQueue::new(10).unwrap());
        q.set_paused(true);
        rt.block_on(async {
            let waiting = tokio::time::timeout(Duration::from_millis(50), q.wait_for_room());
            assert!(waiting.await.is_err(), "no room while paused");
            let q2 = q.clone();
            let resumer = tokio::spawn(async move { q2.set_paused(false) });
            tokio::time::timeout(Duration::from_secs(5), q.wait_for_room())
                .await
                .expect("room once resumed");
            resumer.await.unwrap();
        });
    }
}
