//! Listeners: bound synchronously at start (so errors surface in `start()`), then one
//! accept task each on the runtime.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use tokio::runtime::Handle;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::config::{ListenerConfig, TlsConfig, Transport};
use super::connection::{self, ConnectionContext};
use super::events::Level;
use super::shared::Shared;
use super::{BoundListener, BrokerError};

/// Connections the kernel may hold completed but not yet accepted (clamped by the
/// system, `net.core.somaxconn` on Linux). std's listeners use 128: a burst of
/// thousands of clients connecting at once then overflows the queue, and each dropped
/// SYN is retried by the client only after 1 s, 3 s, 7 s...
const LISTEN_BACKLOG: u32 = 4096;

/// Connections accepted one after another before the accept loop looks at its
/// shutdown signal again (each accept is a syscall; the signal is a `select!`).
const ACCEPT_BATCH: usize = 64;

pub struct Prepared {
    /// Bound, not yet listening: `spawn` listens with `LISTEN_BACKLOG` (on the runtime,
    /// which the listening socket registers with).
    socket: tokio::net::TcpSocket,
    bound: BoundListener,
    tls: Option<TlsAcceptor>,
    ws_path: Option<String>,
}

/// Loads the certificate chain and key (and the client CA) into a rustls server
/// configuration with the ring provider, so a bad file fails `start()`.
fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, BrokerError> {
    let file_err = |path: &std::path::Path, e: rustls_pki_types::pem::Error| match e {
        rustls_pki_types::pem::Error::Io(source) => BrokerError::File {
            path: path.display().to_string(),
            source,
        },
        other => BrokerError::Tls(format!("{}: {other:?}", path.display())),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.certfile)
        .map_err(|e| file_err(&tls.certfile, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&tls.certfile, e))?;
    if certs.is_empty() {
        return Err(BrokerError::Tls(format!(
            "{}: no certificate found",
            tls.certfile.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.keyfile).map_err(|e| file_err(&tls.keyfile, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerError::Tls(e.to_string()))?;
    let builder = match &tls.cafile {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| file_err(ca, e))? {
                roots
                    .add(c.map_err(|e| file_err(ca, e))?)
                    .map_err(|e| BrokerError::Tls(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if tls.require_certificate {
                verifier.build()
            } else {
                verifier.allow_unauthenticated().build()
            }
            .map_err(|e| BrokerError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None if tls.require_certificate => {
            return Err(BrokerError::Config(
                "require_certificate needs cafile to verify client certificates".into(),
            ))
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| BrokerError::Tls(format!("{}: {e}", tls.keyfile.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub fn prepare(config: &ListenerConfig) -> Result<Prepared, BrokerError> {
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let ws_path = match config.transport {
        Transport::WebSocket => Some(config.ws_path.clone().unwrap_or_else(|| "/mqtt".into())),
        Transport::Tcp => None,
    };
    let display = format!("{}:{}", config.host, config.port);
    let addrs: Vec<SocketAddr> = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|source| BrokerError::Bind {
            addr: display.clone(),
            source,
        })?
        .collect();
    let mut last_err = None;
    for addr in addrs {
        match bind(addr) {
            Ok(socket) => {
                let local = socket.local_addr().map_err(|source| BrokerError::Bind {
                    addr: display.clone(),
                    source,
                })?;
                return Ok(Prepared {
                    socket,
                    bound: BoundListener {
                        addr: local,
                        transport: config.transport,
                        tls: config.tls.is_some(),
                    },
                    tls,
                    ws_path,
                });
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(BrokerError::Bind {
        addr: display,
        source: last_err.unwrap_or_else(|| std::io::Error::other("no address to bind")),
    })
}

/// A TCP socket bound to `addr`, as std's `TcpListener::bind` makes it (SO_REUSEADDR on
/// Unix, so a stopped broker's port can be bound again at once despite connections in
/// TIME_WAIT), but not listening yet.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

pub fn spawn(
    handle: &Handle,
    shared: &Arc<Shared>,
    prepared: Prepared,
) -> Result<BoundListener, BrokerError> {
    let bound = prepared.bound.clone();
    let listener = {
        let _enter = handle.enter();
        prepared
            .socket
            .listen(LISTEN_BACKLOG)
            .map_err(|source| BrokerError::Bind {
                addr: bound.addr.to_string(),
                source,
            })?
    };
    let guard = shared.task_guard();
    let shared = shared.clone();
    let scheme = match (bound.transport, bound.tls) {
        (Transport::Tcp, false) => "mqtt",
        (Transport::Tcp, true) => "mqtts",
        (Transport::WebSocket, false) => "ws",
        (Transport::WebSocket, true) => "wss",
    };
    let name: Arc<str> = Arc::from(format!("{scheme}://{}", bound.addr));
    let tls = prepared.tls;
    let ws_path = prepared.ws_path.map(Arc::<str>::from);
    handle.spawn(async move {
        let _guard = guard;
        let mut shutdown = shared.shutdown.subscribe();
        shared.log(Level::Info, format!("listening on {name}"));
        loop {
            let first = tokio::select! {
                _ = shutdown.changed() => break,
                a = listener.accept() => a,
            };
            // A burst is taken in one go: the connections already queued are accepted
            // without a trip through the `select!` for each.
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(accepted) = next.take() {
                taken += 1;
                match accepted {
                    Ok((stream, peer)) => {
                        // Small packets must not wait for delayed ACKs (Nagle).
                        let _ = stream.set_nodelay(true);
                        let ctx = ConnectionContext {
                            shared: shared.clone(),
                            peer: Arc::from(peer.to_string()),
                            listener: name.clone(),
                            tcp_fd: crate::sockopt::tcp_fd(&stream),
                        };
                        if tls.is_none() && ws_path.is_none() {
                            tokio::spawn(reporting_panics(
                                shared.clone(),
                                connection::run(ctx, super::park::TcpConn::Open(stream)),
                            ));
                        } else {
                            let task = upgrade(ctx, stream, tls.clone(), ws_path.clone());
                            tokio::spawn(reporting_panics(shared.clone(), task));
                        }
                    }
                    Err(e) => {
                        shared.log(Level::Error, format!("{name}: accept failed: {e}"));
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        break;
                    }
                }
                if taken < ACCEPT_BATCH {
                    next = listener.accept().now_or_never();
                }
            }
        }
    });
    Ok(bound)
}

/// Runs a connection task; a panic (a bug) ends only that connection and is logged,
/// never unwinding into the runtime unnoticed. A combinator rather than an `async fn`:
/// an `async fn` that awaits a future argument stores it twice (the argument and the
/// awaited copy), and this wraps every connection's future for its whole life.
pub(super) fn reporting_panics(
    shared: Arc<Shared>,
    task: impl std::future::Future<Output = ()>,
) -> impl std::future::Future<Output = ()> {
    std::panic::AssertUnwindSafe(task)
        .catch_unwind()
        .map(move |r| {
            if r.is_err() {
                shared.log(
                    Level::Error,
                    "internal error: a connection task panicked; that connection was closed".into(),
                );
            }
        })
}

/// TLS handshake and/or WebSocket upgrade, bounded by the connect timeout, then the
/// MQTT connection on the resulting stream.
async fn upgrade(
    ctx: ConnectionContext,
    stream: tokio::net::TcpStream,
    tls: Option<TlsAcceptor>,
    ws_path: Option<Arc<str>>,
) {
    let shared = ctx.shared.clone();
    let _guard = shared.task_guard();
    let mut shutdown = shared.shutdown.subscribe();
    let timeout = shared.config.connect_timeout;
    match tls {
        Some(acceptor) => {
            let accepted = tokio::select! {
                r = tokio::time::timeout(timeout, acceptor.accept(stream)) => r,
                _ = shutdown.changed() => return,
            };
            match accepted {
                Ok(Ok(s)) => after_tls(ctx, s, ws_path, shutdown).await,
                Ok(Err(e)) => shared.log(
                    Level::Warning,
                    format!("TLS handshake with {} failed: {e}", ctx.peer),
                ),
                Err(_) => shared.log(
                    Level::Info,
                    format!("TLS handshake with {} timed out", ctx.peer),
                ),
            }
        }
        None => after_tls(ctx, stream, ws_path, shutdown).await,
    }
}

async fn after_tls<S>(
    ctx: ConnectionContext,
    stream: S,
    ws_path: Option<Arc<str>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(path) = ws_path else {
        connection::run(ctx, stream).await;
        return;
    };
    let shared = ctx.shared.clone();
    let peer = ctx.peer.clone();
    // MQTT over WebSockets (MQTT 5 §6): binary frames, subprotocol "mqtt".
    // The error type is tungstenite's, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != &*path {
            let mut e =
                ErrorResponse::new(Some(format!("no MQTT endpoint at {}", req.uri().path())));
            *e.status_mut() = StatusCode::NOT_FOUND;
            return Err(e);
        }
        let offered = req
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| p.eq_ignore_ascii_case("mqtt") || p.eq_ignore_ascii_case("mqttv3.1"))
            .map(str::to_string);
        if let Some(p) = offered {
            if let Ok(v) = HeaderValue::from_str(&p) {
                resp.headers_mut().insert("Sec-WebSocket-Protocol", v);
            }
        }
        Ok(resp)
    };
    let timeout = shared.config.connect_timeout;
    let ws = tokio::select! {
        r = tokio::time::timeout(timeout, tokio_tungstenite::accept_hdr_async(stream, callback)) => r,
        _ = shutdown.changed() => return,
    };
    let ws = match ws {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            shared.log(
                Level::Warning,
                format!("WebSocket handshake with {peer} failed: {e}"),
            );
            return;
        }
        Err(_) => {
            shared.log(
                Level::Info,
                format!("WebSocket handshake with {peer} timed out"),
            );
            return;
        }
    };
    // The connection task reads and writes a byte stream; this task moves those bytes
    // to and from binary WebSocket frames. Either side closing ends both.
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let conn = tokio::spawn(connection::run(ctx, theirs));
    let (mut sink, mut frames) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(ours);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(WsMessage::Binary(b))) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {
                    // tungstenite queues the pong; flushing sends it.
                    if sink.flush().await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Text(_))) => {
                    shared.log(
                        Level::Warning,
                        format!("WebSocket client {peer} sent a text frame; MQTT needs binary frames; closed"),
                    );
                    break;
                }
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
            },
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    break;
                }
                Ok(n) => {
                    if sink.send(WsMessage::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    drop(wr);
    drop(rd);
    let _ = conn.await;
}
