//! One task per client connection: it owns the socket, frames and decodes what arrives,
//! runs the QoS handshakes against the session, and writes everything pending in one
//! coalesced buffer per wake-up. A quiet plain-TCP connection parks instead (its task
//! ends, `park.rs` holds its socket and a compact `Parked` record) and is resumed as a
//! new task when anything happens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::codec::{
    encode_plain_publish, encode_segmented, encoded_len, plain_publish_len, topic, Auth, ByteStr,
    ConnAck, Connect, Decoder, Disconnect, LastWill, Packet, Properties, ProtocolVersion, PubAck,
    Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe, SEGMENT_PAYLOAD,
};

use super::auth::{Access, Credentials};
use super::events::{AuthStep, Event, Level};
use super::message::Message;
use super::park::TcpConn;
use super::retained::PendingRetained;
use super::router::{Control, Link, SessionCell, Signals};
use super::session::{publish_for, Delivery, Resend};
use super::shared::{Shared, Stats, TaskGuard};

/// Bytes encoded into the write buffer before it is flushed, so one wake-up never
/// builds an unbounded buffer for a slow subscriber.
const WRITE_BATCH: usize = 64 * 1024;
/// Retained messages handed to the session queue per step of a SUBSCRIBE's walk, and
/// the nodes of the retained tree one step may visit under the router lock.
const RETAINED_STEP_MESSAGES: usize = 256;
const RETAINED_STEP_NODES: usize = 4096;
/// Idle connections: a quiet plain-TCP connection parks (`park.rs`) and gives up its
/// task, its tokio registration and this `Connection`; what stays is its session cell,
/// `Signals`, the parked record with its socket, the client id and its entries in the
/// router's and the poller's maps (the figures are in `benches/RESULTS.md`).
///
/// Read buffer sizing: idle connections keep a small buffer (memory per connection
/// matters with thousands of them); a connection whose reads fill the buffer doubles it
/// up to `READ_MAX`.
const READ_MIN: usize = 1024;
const READ_MAX: usize = 64 * 1024;
/// A write buffer that grew beyond this during a burst is released after the flush.
const WRITE_KEEP: usize = 256 * 1024;
/// Connected clients from which a client parks right after its CONNACK (see
/// `handshake`); below it only `idle_park_after` of quiet parks a connection. The few
/// hundred connections below it stay unparked and cost about 1 KiB more each: at
/// 10,000 idle connections that is ~0.03 KiB per connection on average.
const PARK_AT_CONNACK_FROM: u64 = 256;
/// How long a Python authentication hook may take to answer before the client is refused.
const AUTH_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// What a taken-over connection reads from its socket, at most, before it closes
/// (`unless_taken_over`): the kernel's receive buffer holds no more than a few of these.
const TAKEOVER_DRAIN: usize = 4 * READ_MAX;
/// How long a closing connection may take to flush its last packets.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Why a connection ends.
#[derive(Debug)]
enum Close {
    /// DISCONNECT from the client; `with_will` for v5 reason 0x04.
    Normal {
        with_will: bool,
    },
    /// The socket closed or failed without DISCONNECT.
    Lost,
    KeepAlive,
    TakenOver,
    Shutdown,
    /// A protocol problem: v5 DISCONNECT with this code, then close.
    Error(ReasonCode, String),
    Admin(ReasonCode),
    /// Not a close: the connection is idle and asked to park (see `park.rs`).
    Park,
}

pub struct ConnectionContext {
    pub shared: Arc<Shared>,
    pub peer: Arc<str>,
    /// The listener's name, one allocation shared by all its connections.
    pub listener: Arc<str>,
    /// The TCP socket under the stream, for `sockopt::quickack` (None: not TCP, or a
    /// platform without it).
    pub tcp_fd: Option<i32>,
}

/// Reads shorter than this that get no answer re-arm TCP_QUICKACK (see `serve`).
const QUICKACK_BELOW: usize = 512;

/// Runs one connection to its end.
///
/// This future lives as long as the connection, so it is kept small: the CONNECT phase
/// and the closing phase are boxed (large and short-lived), and the connection's state
/// is one heap allocation of its exact size rather than part of the future (a future is
/// as large as its largest state for its whole life). Not an `async fn`: its arguments
/// would stay in the future for its whole life even once moved into the handshake.
pub fn run<S>(ctx: ConnectionContext, stream: S) -> impl std::future::Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let guard = ctx.shared.task_guard();
    let handshake = Box::pin(handshake(ctx, stream));
    async move {
        let Some((conn, stopping)) = handshake.await else {
            return;
        };
        if stopping {
            Box::pin(conn.finish(Close::Shutdown)).await;
            return;
        }
        serve_to_end(conn, guard).await;
    }
}

/// Serves a connection until it ends or parks (then the task ends and the guard moves
/// into the parked record: a parked connection still counts as live for `stop()`).
async fn serve_to_end<S>(mut conn: Box<Connection<S>>, mut guard: TaskGuard)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let close = conn.serve().await;
        if let Close::Park = close {
            match conn.park(guard) {
                Ok(()) => return,
                Err((c, g)) => {
                    (conn, guard) = (c, g);
                    continue;
                }
            }
        }
        Box::pin(conn.finish(close)).await;
        drop(guard);
        return;
    }
}

/// Reads CONNECT (bounded by the connect timeout), then accepts or refuses it. With
/// the connection: whether the broker began to stop meanwhile (a stop that began during
/// this phase may have missed this client, see `Shared::begin_shutdown`; from then on
/// it comes through the signals).
async fn handshake<S>(ctx: ConnectionContext, stream: S) -> Option<(Box<Connection<S>>, bool)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = ctx.shared.clone();
    let mut shutdown = shared.shutdown.subscribe();
    if *shutdown.borrow() {
        return None;
    }
    let mut io = Io {
        stream,
        // No buffer until bytes arrive: see `read_on_demand`.
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        segments: Vec::new(),
        decoder: Decoder::new(shared.config.max_packet_size),
        shared: shared.clone(),
        version: ProtocolVersion::V311,
        write_failed: false,
        tcp_fd: ctx.tcp_fd,
    };
    let connect = tokio::select! {
        r = tokio::time::timeout(shared.config.connect_timeout, io.read_connect()) => match r {
            Ok(Ok(c)) => c,
            Ok(Err(problem)) => {
                if let Some(p) = problem {
                    shared.log(Level::Warning, format!("connection from {}: {p}", ctx.peer));
                }
                return None;
            }
            Err(_) => {
                shared.log(
                    Level::Info,
                    format!(
                        "connection from {} sent no CONNECT within {:?}; closed",
                        ctx.peer, shared.config.connect_timeout
                    ),
                );
                return None;
            }
        },
        _ = shutdown.changed() => return None,
    };
    io.version = connect.protocol;
    // The CONNECT is passed boxed and dropped with this phase: moving out of the box
    // here would keep its allocation alive until `run` returns.
    let conn = Connection::accept(ctx, io, connect).await?;
    let stopping = *shutdown.borrow();
    Some((Box::new(conn), stopping))
}

struct Io<S> {
    /// Not split into halves: reads and writes never run at once here (a flush is
    /// awaited before the next read), and a split costs an allocation and a lock.
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Output that goes before `wbuf`: PUBLISH heads and the large payloads that follow
    /// them, which are not copied into the write buffer (see `send`).
    segments: Vec<Bytes>,
    decoder: Decoder,
    shared: Arc<Shared>,
    version: ProtocolVersion,
    /// Set once a write failed: output is discarded from then on, input still read.
    write_failed: bool,
    /// From `ConnectionContext::tcp_fd`; valid while `stream` lives.
    tcp_fd: Option<i32>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    /// Reads until the first packet. `Err(Some(text))`: log and close.
    async fn read_connect(&mut self) -> Result<Box<Connect>, Option<String>> {
        loop {
            let level = peek_connect_level(&self.rbuf);
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(Packet::Connect(c))) => return Ok(c),
                Ok(Some(other)) => {
                    // MQTT 5 §3.1: the first packet must be CONNECT.
                    return Err(Some(format!(
                        "first packet was {:?}, not CONNECT; closed",
                        other.packet_type()
                    )));
                }
                Ok(None) => {}
                Err(e) => {
                    let code = e.reason_code();
                    let version = self.decoder.version().or(level);
                    if code == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION {
                        // v3 CONNACK return code 1 is what any 3.x or 5 client understands
                        // (MQTT 5 §3.1.2.2).
                        self.version = ProtocolVersion::V311;
                        self.send(&Packet::ConnAck(ConnAck {
                            code,
                            ..Default::default()
                        }));
                        let _ = self.flush().await;
                    } else if version == Some(ProtocolVersion::V5) {
                        self.version = ProtocolVersion::V5;
                        self.send(&Packet::ConnAck(ConnAck {
                            code,
                            ..Default::default()
                        }));
                        let _ = self.flush().await;
                    }
                    return Err(Some(format!("bad CONNECT: {e}; closed")));
                }
            }
            let n = read_on_demand(&mut self.stream, &mut self.rbuf)
                .await
                .map_err(|_| None)?;
            if n == 0 {
                return Err(None);
            }
            Stats::add(&self.shared.stats.bytes_received, n as u64);
        }
    }

    /// Writes the write buffer out, advancing it past what was written (so a poll
    /// can be dropped and repeated without writing anything twice).
    fn poll_write_out(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        while !self.segments.is_empty() {
            // One vectored write for the segments and what follows them.
            const MAX_SLICES: usize = 32;
            let mut slices = [std::io::IoSlice::new(&[]); MAX_SLICES];
            let mut k = 0;
            for seg in self.segments.iter().take(MAX_SLICES - 1) {
                slices[k] = std::io::IoSlice::new(seg);
                k += 1;
            }
            if k < MAX_SLICES && !self.wbuf.is_empty() {
                slices[k] = std::io::IoSlice::new(&self.wbuf);
                k += 1;
            }
            let mut n = std::task::ready!(
                std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..k])
            )?;
            if n == 0 {
                return std::task::Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            let mut done = 0;
            for seg in &mut self.segments {
                if n < seg.len() {
                    bytes::Buf::advance(seg, n);
                    n = 0;
                    break;
                }
                n -= seg.len();
                done += 1;
            }
            self.segments.drain(..done);
            bytes::Buf::advance(&mut self.wbuf, n);
        }
        while !self.wbuf.is_empty() {
            let n =
                std::task::ready!(std::pin::Pin::new(&mut self.stream).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return std::task::Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            bytes::Buf::advance(&mut self.wbuf, n);
        }
        std::task::Poll::Ready(Ok(()))
    }

    /// Reads the next packet. `Err(Some(..))`: a decoding error to answer with its
    /// reason code; `Err(None)`: the connection closed.
    async fn read_packet(&mut self) -> Result<Packet, Option<(ReasonCode, String)>> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(Some((e.reason_code(), e.to_string()))),
            }
            let n = read_on_demand(&mut self.stream, &mut self.rbuf)
                .await
                .map_err(|_| None)?;
            if n == 0 {
                return Err(None);
            }
            Stats::add(&self.shared.stats.bytes_received, n as u64);
        }
    }

    fn send(&mut self, packet: &Packet) {
        if let Err(e) = encode_segmented(packet, self.version, &mut self.wbuf, &mut self.segments) {
            self.shared.log(
                Level::Error,
                format!("cannot encode {:?}: {e}", packet.packet_type()),
            );
        }
    }

    /// Sends PUBACK (0x40), PUBREC (0x50), PUBREL (0x62) or PUBCOMP (0x70) without
    /// properties. Success is the same four bytes in every version (MQTT 5 §3.4.2.1:
    /// no reason code, no properties), written directly rather than through a
    /// `Packet` of 384 bytes; other codes go through the codec.
    fn send_ack(&mut self, first: u8, pkid: u16, code: ReasonCode) {
        if code == ReasonCode::SUCCESS && pkid != 0 {
            let [hi, lo] = pkid.to_be_bytes();
            self.wbuf.extend_from_slice(&[first, 2, hi, lo]);
            return;
        }
        let ack = PubAck {
            pkid,
            code,
            ..Default::default()
        };
        self.send(&match first {
            0x40 => Packet::PubAck(ack),
            0x50 => Packet::PubRec(ack),
            0x62 => Packet::PubRel(ack),
            _ => Packet::PubComp(ack),
        });
    }

    /// Whether anything waits to be written.
    fn has_output(&self) -> bool {
        !self.wbuf.is_empty() || !self.segments.is_empty()
    }

    fn output_len(&self) -> usize {
        self.wbuf.len() + self.segments.iter().map(Bytes::len).sum::<usize>()
    }

    fn discard_output(&mut self) {
        self.wbuf.clear();
        self.segments.clear();
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.write_failed || !self.has_output() {
            self.discard_output();
            return Ok(());
        }
        let (n, cap) = (self.output_len(), self.wbuf.capacity());
        let r = std::future::poll_fn(|cx| self.poll_write_out(cx)).await;
        self.after_flush(n, cap);
        r
    }

    /// After writing `n` bytes out of a buffer of capacity `cap`: a buffer grown by a
    /// burst is released, and so is one that only ever held a CONNACK or PINGRESP (an
    /// idle connection then holds no write buffer); otherwise it is kept for reuse.
    fn after_flush(&mut self, n: usize, cap: usize) {
        if cap > WRITE_KEEP || cap <= 64 {
            self.wbuf = BytesMut::new();
        } else {
            self.wbuf.clear();
        }
        Stats::add(&self.shared.stats.bytes_sent, n as u64);
    }
}

struct Connection<S> {
    io: Io<S>,
    peer: Arc<str>,
    conn_id: u64,
    client_id: Arc<str>,
    username: Option<String>,
    cell: Arc<SessionCell>,
    signals: Arc<Signals>,
    /// Seconds (the keep-alive itself is checked by the housekeeping task).
    keep_alive: u16,
    /// Boxed: most clients have no will, and this struct lives in every connection
    /// task for its whole life (v5 will properties alone are several hundred bytes).
    will: Option<Box<LastWill>>,
    /// v5 session expiry interval in seconds; v3: 0 for clean session, else forever.
    session_expiry: u32,
    /// v5 topic aliases, allocated when the first one is used.
    aliases: Option<Box<TopicAliases>>,
    client_alias_max: u16,
    /// The client's maximum packet size (v5 §3.1.2.11.4).
    client_max_packet: u32,
    batch: Vec<(u16, Delivery)>,
    /// v5 request problem information (§3.1.2.11.7): reason strings only if wanted.
    problem_info: bool,
    /// A 3.1/3.1.1 bridge: CONNECT had mosquitto's bridge bit (0x80 on the protocol
    /// level, "try_private"), so its subscriptions are no local and retain as
    /// published, as in mosquitto (a v5 bridge asks for those options itself).
    bridge: bool,
    /// Sessions this client's last publishes filled above their high-water mark.
    busy: Vec<Arc<SessionCell>>,
    /// Enhanced authentication agreed in CONNECT (MQTT 5 §4.12); boxed, as most
    /// clients use none.
    auth: Option<Box<EnhancedAuth>>,
    /// Retained messages still to be sent for this connection's SUBSCRIBEs, fed into
    /// the session queue as it drains (`send_retained`); None when there are none.
    retained: Option<Box<PendingRetained>>,
}

/// Topic aliases of one v5 connection (§3.3.2.3.4).
#[derive(Default)]
struct TopicAliases {
    /// Incoming, bounded by our topic alias maximum.
    incoming: HashMap<u16, ByteStr>,
    /// Outgoing, bounded by the client's topic alias maximum.
    outgoing: HashMap<ByteStr, u16>,
}

/// The authentication method of a connection and where its re-authentication is.
struct EnhancedAuth {
    method: String,
    /// We answered the client's last AUTH with 0x18 and wait for its next step.
    continuing: bool,
    /// The re-authentication step in flight: the hook's answer to the client's last
    /// AUTH, which the connection waits for next to its socket and its signals, so
    /// other packets keep flowing meanwhile (MQTT 5 §4.12.1).
    in_flight: Option<HookAnswer>,
}

/// The pending answer of an enhanced authentication hook. No answer by the deadline
/// (or a dropped request: the event queue was full or the broker is stopping) is a
/// refusal.
struct HookAnswer {
    reply: oneshot::Receiver<AuthStep>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl HookAnswer {
    /// Asks the Python hook of `method` through the event queue (never from a tokio
    /// worker).
    fn ask(shared: &Shared, client_id: &str, method: &str, data: Option<Bytes>) -> Self {
        let (tx, rx) = oneshot::channel();
        shared.events.push(Event::EnhancedAuth {
            client_id: client_id.to_string(),
            method: method.to_string(),
            data,
            reply: tx,
        });
        HookAnswer {
            reply: rx,
            deadline: Box::pin(tokio::time::sleep(AUTH_HOOK_TIMEOUT)),
        }
    }

    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<AuthStep> {
        let refused = || AuthStep::Failure(ReasonCode::NOT_AUTHORIZED.0);
        if let std::task::Poll::Ready(r) =
            std::future::Future::poll(std::pin::Pin::new(&mut self.reply), cx)
        {
            return std::task::Poll::Ready(r.unwrap_or_else(|_| refused()));
        }
        std::future::Future::poll(self.deadline.as_mut(), cx).map(|()| refused())
    }
}

/// The hook's answer to a re-authentication step, once it is there (`Pending` when no
/// step is in flight).
fn poll_auth_answer(
    auth: &mut Option<Box<EnhancedAuth>>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<AuthStep> {
    match auth.as_mut().and_then(|a| a.in_flight.as_mut()) {
        Some(answer) => answer.poll(cx),
        None => std::task::Poll::Pending,
    }
}

/// How long a publisher waits for a busy subscriber to take anything from its queue
/// before treating it as stalled (stopped reading). A subscriber that keeps taking
/// messages is waited for while it does (its pace is the publisher's), up to
/// `BACKPRESSURE_MAX_WAIT`.
const BACKPRESSURE_WAIT: Duration = Duration::from_millis(200);

/// The longest a publisher waits for one busy subscriber to drain to its low mark: a
/// subscriber that reads only a trickle must not hold its publishers to that trickle
/// for as long as it likes. Past it, the subscriber is treated as stalled (its own
/// limits bound it) until it drains.
const BACKPRESSURE_MAX_WAIT: Duration = Duration::from_secs(5);

fn expiry_forever(secs: u32) -> bool {
    secs == u32::MAX
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection<S> {
    /// Checks CONNECT, attaches the session and sends CONNACK; None if refused.
    async fn accept(ctx: ConnectionContext, mut io: Io<S>, connect: Box<Connect>) -> Option<Self> {
        let shared = ctx.shared.clone();
        let config = &shared.config;
        let v5 = connect.protocol.is_v5();
        // Boxed: it is built across the await points below (see `refuse`).
        let mut ack = Box::<ConnAck>::default();

        // Client identifier (MQTT 3.1.1 §3.1.3.1, MQTT 5 §3.1.3.1).
        let mut client_id = connect.client_id.clone();
        let mut assigned = false;
        if client_id.is_empty() {
            let allowed = match connect.protocol {
                ProtocolVersion::V5 => true,
                ProtocolVersion::V311 => connect.clean_start,
                ProtocolVersion::V31 => false,
            };
            if !allowed {
                return refuse(
                    io,
                    &ctx,
                    ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                    "empty client id",
                )
                .await;
            }
            client_id = format!(
                "auto-{:016x}",
                shared
                    .next_conn_id
                    .load(std::sync::atomic::Ordering::Relaxed)
                    ^ (shared.started.elapsed().as_nanos() as u64).rotate_left(17)
            );
            assigned = true;
        }

        // Enhanced authentication (MQTT 5 §4.12): the Python hook of the method runs
        // the exchange; a method without a hook gets 0x8C (§3.1.2.11.9). A client it
        // accepts is authenticated: the user list and auth_callback are not asked.
        let mut auth_method: Option<String> = None;
        let mut auth_data: Option<Bytes> = None;
        if let Some(method) = connect.properties.authentication_method.clone() {
            if !config.enhanced_auth_methods.contains(&method) {
                let what =
                    format!("client {client_id}: unsupported authentication method {method:?}");
                return refuse(io, &ctx, ReasonCode::BAD_AUTHENTICATION_METHOD, &what).await;
            }
            let mut data = connect.properties.authentication_data.clone();
            loop {
                // Boxed, like the other waits of this rare path (see `refuse`).
                match Box::pin(ask_auth_hook(&shared, &client_id, &method, data.take())).await {
                    AuthStep::Success(d) => {
                        auth_data = d;
                        break;
                    }
                    AuthStep::Failure(code) => {
                        let what = format!("client {client_id}: authentication ({method}) failed");
                        return refuse(io, &ctx, failure_code(code), &what).await;
                    }
                    AuthStep::Continue(d) => {
                        io.send(&Packet::Auth(auth_packet(
                            ReasonCode::CONTINUE_AUTHENTICATION,
                            &method,
                            d,
                        )));
                        if io.flush().await.is_err() {
                            return None;
                        }
                        let next = Box::pin(tokio::time::timeout(
                            config.connect_timeout,
                            io.read_packet(),
                        ))
                        .await;
                        let (code, what) = match next {
                            Ok(Ok(Packet::Auth(a)))
                                if a.code == ReasonCode::CONTINUE_AUTHENTICATION
                                    && a.properties.authentication_method.as_deref()
                                        == Some(method.as_str()) =>
                            {
                                data = a.properties.authentication_data;
                                continue;
                            }
                            Ok(Ok(Packet::Auth(a))) => (
                                ReasonCode::PROTOCOL_ERROR,
                                format!(
                                    "AUTH 0x{:02X} with method {:?} during authentication ({method})",
                                    a.code.0, a.properties.authentication_method
                                ),
                            ),
                            Ok(Ok(Packet::Disconnect(_))) | Ok(Err(None)) => return None,
                            Ok(Ok(other)) => (
                                ReasonCode::PROTOCOL_ERROR,
                                format!(
                                    "{:?} instead of AUTH during authentication ({method})",
                                    other.packet_type()
                                ),
                            ),
                            Ok(Err(Some((code, text)))) => (code, format!("bad AUTH: {text}")),
                            Err(_) => {
                                shared.log(
                                    Level::Info,
                                    format!(
                                        "client {client_id}: no AUTH within {:?}; closed",
                                        config.connect_timeout
                                    ),
                                );
                                return None;
                            }
                        };
                        let what = format!("client {client_id}: {what}");
                        return refuse(io, &ctx, code, &what).await;
                    }
                }
            }
            auth_method = Some(method);
        }

        // Authentication.
        let mut verdict = if auth_method.is_some() {
            Credentials::Accepted
        } else {
            shared
                .users
                .check(connect.username.as_deref(), connect.password.as_deref())
        };
        if verdict == Credentials::Accepted && config.auth_callback && auth_method.is_none() {
            let (tx, rx) = oneshot::channel();
            shared.events.push(Event::Auth {
                client_id: client_id.clone(),
                username: connect.username.clone(),
                password: connect.password.clone(),
                reply: tx,
            });
            let ok = matches!(
                Box::pin(tokio::time::timeout(Duration::from_secs(10), rx)).await,
                Ok(Ok(true))
            );
            if !ok {
                verdict = Credentials::BadUserNameOrPassword;
            }
        }
        match verdict {
            Credentials::Accepted => {}
            Credentials::BadUserNameOrPassword => {
                let what = format!(
                    "client {client_id} (user {:?}): bad user name or password",
                    connect.username.as_deref().unwrap_or("")
                );
                return refuse(io, &ctx, ReasonCode::BAD_USER_NAME_OR_PASSWORD, &what).await;
            }
            Credentials::NotAuthorized => {
                let what = format!("client {client_id}: anonymous access not allowed");
                return refuse(io, &ctx, ReasonCode::NOT_AUTHORIZED, &what).await;
            }
        }

        if config.max_connections > 0
            && shared
                .stats
                .clients_connected
                .load(std::sync::atomic::Ordering::Relaxed)
                >= config.max_connections as u64
        {
            let code = if v5 {
                ReasonCode::QUOTA_EXCEEDED
            } else {
                ReasonCode::SERVER_UNAVAILABLE
            };
            let what = format!(
                "client {client_id}: connection limit reached (max_connections {})",
                config.max_connections
            );
            return refuse(io, &ctx, code, &what).await;
        }

        if let Some(w) = &connect.will {
            if (w.qos as u8) > config.max_qos {
                let what = format!("client {client_id}: will QoS above maximum");
                return refuse(io, &ctx, ReasonCode::QOS_NOT_SUPPORTED, &what).await;
            }
            if w.retain && !config.retain_available {
                let what = format!("client {client_id}: retained will but retain unavailable");
                return refuse(io, &ctx, ReasonCode::RETAIN_NOT_SUPPORTED, &what).await;
            }
            if too_deep(&w.topic, config.max_topic_levels) {
                let what = format!(
                    "client {client_id}: will topic of {} levels, more than max_topic_levels {}",
                    topic::level_count(&w.topic),
                    config.max_topic_levels
                );
                return refuse(io, &ctx, ReasonCode::TOPIC_NAME_INVALID, &what).await;
            }
        }

        // Session expiry (MQTT 5 §3.1.2.11.2); v3 clean session = expire at once,
        // persistent = never (capped by max_session_expiry).
        let mut session_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        if let Some(max) = config.max_session_expiry {
            if session_expiry > max {
                session_expiry = max;
                if v5 {
                    ack.properties.session_expiry_interval = Some(max);
                }
            }
        }

        // Keep alive, possibly overridden by server keep alive (v5 §3.2.2.3.14).
        let mut keep_alive = connect.keep_alive;
        if v5
            && (keep_alive > config.max_keepalive
                || (keep_alive == 0 && config.max_keepalive < 65535))
        {
            keep_alive = config.max_keepalive;
            ack.properties.server_keep_alive = Some(keep_alive);
        }

        let conn_id = shared
            .next_conn_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client_id: Arc<str> = Arc::from(client_id.as_str());
        let signals = Arc::new(Signals::new(conn_id, Arc::downgrade(&shared)));
        signals.read_at(shared.now_ms());
        if shared.parking.get().is_some()
            && shared
                .stats
                .clients_connected
                .load(std::sync::atomic::Ordering::Relaxed)
                >= PARK_AT_CONNACK_FROM
        {
            // With many clients, one that sends nothing after CONNECT parks at once
            // (before the next connections allocate: freed task memory is reused by them
            // rather than left as holes); one that goes on unparks once (see `park.rs`).
            // Below that, a client waiting for its traffic to start (the usual small
            // deployment or test) keeps its task: unparking every subscriber when a
            // burst starts cost fan-out throughput (1 -> 100 QoS 1: 1.12M -> 0.75M/s).
            signals.want_park();
        }
        // The listener formats it from a `SocketAddr`: it parses back.
        let peer_addr: std::net::SocketAddr = ctx
            .peer
            .parse()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let link = Link {
            signals: signals.clone(),
            peer_ip: peer_addr.ip(),
            peer_port: peer_addr.port(),
            listener: ctx.listener.clone(),
            keep_alive,
            protocol: connect.protocol as u8,
            clean_start: connect.clean_start,
            session_ends: session_expiry == 0,
        };
        let mut attached = shared.router.lock().attach(
            &client_id,
            connect.clean_start,
            link,
            connect.username.as_deref(),
            config.queue_limits(),
        );
        if let Some(prev) = attached.previous.take() {
            prev.signals.send(Control::TakenOver);
        }
        if attached.other_user && !connect.clean_start {
            shared.log(
                Level::Warning,
                format!(
                    "client {client_id}: the existing session belongs to another user name; \
                     not resumed, a new session starts"
                ),
            );
        }
        for will in std::mem::take(&mut attached.ended_wills) {
            shared.route(will);
        }
        let cell = attached.cell;
        {
            let mut st = cell.state.lock();
            let receive_max = if v5 {
                connect.properties.receive_maximum.unwrap_or(65535)
            } else {
                u16::MAX
            };
            st.session.send_quota = receive_max.min(config.max_inflight_messages).max(1);
        }

        ack.session_present = attached.session_present;
        ack.code = ReasonCode::SUCCESS;
        if v5 {
            let p = &mut ack.properties;
            if assigned {
                p.assigned_client_identifier = Some(client_id.to_string());
            }
            p.receive_maximum = Some(config.receive_maximum);
            p.topic_alias_maximum = Some(config.topic_alias_maximum);
            if config.max_packet_size < 268_435_455 {
                p.maximum_packet_size = Some(config.max_packet_size);
            }
            if config.max_qos < 2 {
                p.maximum_qos = Some(config.max_qos);
            }
            if !config.retain_available {
                p.retain_available = Some(0);
            }
            if auth_method.is_some() {
                // §3.2.2.3.17: the same method as in CONNECT.
                p.authentication_method = auth_method.clone();
                p.authentication_data = auth_data;
            }
            if connect.properties.request_response_information == Some(1) {
                p.response_information = Some(format!("response/{client_id}"));
            }
        }
        io.send(&Packet::ConnAck(*ack));

        let username = connect.username.clone();
        // Counted until `finish` (a taken-over connection still counts while it closes).
        let n = shared
            .stats
            .clients_connected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        shared
            .stats
            .clients_maximum
            .fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        Stats::add(&shared.stats.clients_total, 1);
        shared.log(
            Level::Info,
            format!(
                "{} {client_id} connected from {} (MQTT {}, keepalive {keep_alive}, {}{})",
                if connect.bridge && !v5 {
                    "bridge"
                } else {
                    "client"
                },
                ctx.peer,
                match connect.protocol {
                    ProtocolVersion::V31 => "3.1",
                    ProtocolVersion::V311 => "3.1.1",
                    ProtocolVersion::V5 => "5.0",
                },
                if connect.clean_start {
                    "clean"
                } else {
                    "persistent"
                },
                username
                    .as_deref()
                    .map(|u| format!(", user {u}"))
                    .unwrap_or_default()
            ),
        );

        let client_max_packet = if v5 {
            connect.properties.maximum_packet_size.unwrap_or(u32::MAX)
        } else {
            u32::MAX
        };
        let client_alias_max = if v5 && config.outgoing_topic_aliases {
            connect.properties.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        };
        let mut conn = Connection {
            io,
            peer: ctx.peer,
            conn_id,
            client_id,
            username,
            cell,
            signals,
            keep_alive,
            will: connect.will.map(Box::new),
            session_expiry,
            aliases: None,
            client_alias_max,
            client_max_packet,
            batch: Vec::new(),
            problem_info: connect.properties.request_problem_information != Some(0),
            bridge: connect.bridge && !v5,
            busy: Vec::new(),
            retained: None,
            auth: auth_method.map(|method| {
                Box::new(EnhancedAuth {
                    method,
                    continuing: false,
                    in_flight: None,
                })
            }),
        };
        // Resend unacknowledged messages of a resumed session (MQTT 5 §4.4).
        if attached.session_present {
            let resend = conn.cell.state.lock().session.resend();
            for r in resend {
                match r {
                    Resend::Publish(pkid, d) => conn.send_publish(pkid, &d, true),
                    Resend::PubRel(pkid) => conn.io.send(&Packet::PubRel(PubAck {
                        pkid,
                        ..Default::default()
                    })),
                }
            }
        }
        Some(conn)
    }

    fn v5(&self) -> bool {
        self.io.version.is_v5()
    }

    fn is_attached(&self) -> bool {
        self.cell
            .state
            .lock()
            .link
            .as_ref()
            .is_some_and(|l| l.signals.conn_id == self.conn_id)
    }

    /// Serves the connection until it ends. Every wait is its own small future (one
    /// of them alive at a time), so the task of an idle connection stays small.
    async fn serve(&mut self) -> Close {
        // Packets that came in the same read as CONNECT are handled before any I/O: a
        // client may write CONNECT, PUBLISH and DISCONNECT at once and close the socket,
        // and the next read then only sees the end of the stream.
        if !self.io.rbuf.is_empty() {
            if let Some(close) = self.handle_input() {
                return close;
            }
        }
        if self.io.rbuf.is_empty() {
            self.io.rbuf = BytesMut::new();
        }
        let mut read_size = READ_MIN;
        let mut unanswered_small_read = false;
        loop {
            // Nothing more is taken from the session once writing failed: a persistent
            // session keeps its messages for the next connection.
            let mut more = !self.io.write_failed && self.fill_outgoing();
            if self.retained.is_some() && !self.io.write_failed {
                more |= self.send_retained();
            }
            if std::mem::take(&mut unanswered_small_read) && !self.io.has_output() {
                // A small read we send nothing back for (a client's PUBACK, say): a
                // client without TCP_NODELAY (paho-mqtt) would hold its next packet
                // behind our delayed ACK for up to 40 ms. When we do answer, the answer
                // carries the ACK, and bulk reads get theirs anyway.
                if let Some(fd) = self.io.tcp_fd {
                    crate::sockopt::quickack(fd);
                }
            }
            if self.io.has_output() {
                match self.flush_unless_commanded().await {
                    Ok(woken) => more |= woken,
                    Err(close) => return self.unless_taken_over(close),
                }
            }
            if more {
                tokio::task::yield_now().await;
                continue;
            }
            if !self.busy.is_empty() {
                // Boxed: rare, and its timer would otherwise sit in every idle task.
                Box::pin(self.wait_for_subscribers()).await;
            }
            if self.input_waiting() {
                // Packets left unhandled by a backpressure pause go before any read, so
                // the read buffer does not grow while subscribers are busy.
                if let Some(close) = self.handle_input() {
                    return close;
                }
                continue;
            }
            if self.may_park() {
                return Close::Park;
            }
            let (n, spare) = match self.wait_for_input(read_size).await {
                Ok(Some(read)) => read,
                Ok(None) => continue,
                Err(close) => return self.unless_taken_over(close),
            };
            if let Some(close) = self.handle_input() {
                return close;
            }
            unanswered_small_read = n < QUICKACK_BELOW;
            // A full read (of the spare room, or of the stack buffer of
            // `read_on_demand`) means more is coming: read bigger.
            if n >= if spare > 0 { spare } else { READ_MIN } {
                read_size = (read_size * 2).min(READ_MAX);
            } else if self.io.rbuf.is_empty() && read_size == READ_MIN {
                // A quiet connection holds no read buffer between packets; the next
                // read allocates one again.
                self.io.rbuf = BytesMut::new();
            }
        }
    }

    /// Writes the write buffer out. Only a command interrupts a flush (dropping a
    /// half-done `write_all` would garble the stream). `Ok(true)`: a message wake-up was
    /// consumed meanwhile, so the session must be looked at again afterwards (the
    /// publisher that woke us saw an empty queue and will not wake us again).
    async fn flush_unless_commanded(&mut self) -> Result<bool, Close> {
        if self.io.write_failed {
            self.io.discard_output();
            return Ok(false);
        }
        let (n, cap) = (self.io.output_len(), self.io.wbuf.capacity());
        let mut woken = false;
        // One poll function rather than a `select!` over futures: this is the largest
        // wait of a connection, and its size is in every connection's task.
        let io = &mut self.io;
        let signals = &*self.signals;
        let flushed = std::future::poll_fn(|cx| {
            while signals.poll_woken(cx).is_ready() {
                if let Some(c) = signals.take() {
                    return std::task::Poll::Ready(Err(c));
                }
                woken = true;
            }
            io.poll_write_out(cx).map(Ok)
        })
        .await;
        let flushed = match flushed {
            Ok(r) => r,
            Err(c) => return Err(control_close(c)),
        };
        self.io.after_flush(n, cap);
        self.signals.mark_sent();
        if flushed.is_err() {
            // A client that closes with our CONNACK or PUBACK unread resets the
            // connection, and writing fails while its last packets are still waiting
            // to be read. The read side decides when the connection ends, so every
            // packet the client sent before is still handled.
            self.io.write_failed = true;
        }
        Ok(woken)
    }

    /// Waits until bytes arrive (`Ok(Some((bytes read, spare room before)))`) or the
    /// connection is woken (`Ok(None)`). An idle connection waits on its socket and its
    /// `Signals`, nothing else: keep-alive expiry and shutdown arrive as commands. A
    /// connection with a re-authentication step in flight also waits for the hook's
    /// answer (`Ok(None)` once it is handled).
    async fn wait_for_input(&mut self, read_size: usize) -> Result<Option<(usize, usize)>, Close> {
        // The front of the buffer is an incomplete packet (complete ones were handled).
        let large = Decoder::frame_len(&self.io.rbuf).filter(|&len| len >= SEGMENT_PAYLOAD);
        let spare = self.io.rbuf.capacity() - self.io.rbuf.len();
        let mut limit = usize::MAX;
        if let Some(len) = large {
            // A large packet gets a buffer of its own size, and reads stop a little past
            // its end: its payload then owns just its bytes (passed on, and written out,
            // without a copy), and the next packet's first bytes are all that is ever
            // copied into the next buffer. Growing a shared buffer instead copied up to
            // a whole packet per packet, into fresh (page-faulting) memory.
            if self.io.rbuf.capacity() < len {
                let mut own = BytesMut::with_capacity(len + READ_MIN);
                own.extend_from_slice(&self.io.rbuf);
                self.io.rbuf = own;
            }
            limit = len + READ_MIN - self.io.rbuf.len();
        } else if spare < read_size / 2 && (read_size > READ_MIN || !self.io.rbuf.is_empty()) {
            // A quiet connection with nothing buffered waits with no buffer at all (see
            // `read_on_demand`); a busy one keeps `read_size` ready.
            self.io.rbuf.reserve(read_size);
        }
        let spare = (self.io.rbuf.capacity() - self.io.rbuf.len()).min(limit);
        // One pointer captured rather than one per field: this future is part of every
        // idle connection's task.
        let this = &mut *self;
        let read = std::future::poll_fn(move |cx| {
            if this.signals.poll_woken(cx).is_ready() {
                return std::task::Poll::Ready(None);
            }
            if let std::task::Poll::Ready(step) = poll_auth_answer(&mut this.auth, cx) {
                return std::task::Poll::Ready(Some(Err(step)));
            }
            poll_read_on_demand(&mut this.io.stream, &mut this.io.rbuf, READ_MIN, limit, cx)
                .map(|r| Some(Ok(r)))
        })
        .await;
        let read = match read {
            Some(Err(step)) => {
                return match self.on_auth_answer(step) {
                    Some(close) => Err(close),
                    None => Ok(None),
                }
            }
            Some(Ok(r)) => Some(r),
            None => None,
        };
        match read {
            None => match self.signals.take() {
                Some(c) => Err(control_close(c)),
                None => Ok(None),
            },
            Some(Ok(0)) | Some(Err(_)) => Err(Close::Lost),
            Some(Ok(n)) => {
                Stats::add(&self.io.shared.stats.bytes_received, n as u64);
                self.signals.read_at(self.io.shared.now_ms());
                Ok(Some((n, spare)))
            }
        }
    }

    /// `close`, except for a takeover: what this connection already received (complete
    /// packets in its buffer and what its socket holds right now) came before the new
    /// connection's CONNECT and is handled first, as a broker reading connections in
    /// order would ([MQTT-3.14.4-3]: a DISCONNECT there deletes the will; PUBLISHes
    /// there are routed). SUBSCRIBE and UNSUBSCRIBE are not: the session may already be
    /// another connection's, and there is no one left to acknowledge them to. At most
    /// `TAKEOVER_DRAIN` bytes are read: a client that keeps writing cannot hold the
    /// worker here.
    fn unless_taken_over(&mut self, close: Close) -> Close {
        if !matches!(close, Close::TakenOver) {
            return close;
        }
        let plain_tcp = (&self.io.stream as &dyn std::any::Any).is::<TcpConn>();
        let mut budget = TAKEOVER_DRAIN;
        loop {
            loop {
                self.take_pubacks();
                match self.io.decoder.decode(&mut self.io.rbuf) {
                    Ok(Some(Packet::Subscribe(_) | Packet::Unsubscribe(_))) => {}
                    Ok(Some(p)) => {
                        Stats::add(&self.io.shared.stats.messages_received, 1);
                        if let Some(close) = self.handle(p) {
                            return close;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Close::Error(e.reason_code(), e.to_string()),
                }
            }
            // What the socket holds now. Through the descriptor for plain TCP: tokio's
            // readiness may not know yet of bytes the kernel has (the new connection's
            // CONNECT can be read first).
            if budget == 0 {
                return Close::TakenOver;
            }
            self.io.rbuf.reserve(READ_MIN);
            let read = match (plain_tcp, self.io.tcp_fd) {
                (true, Some(fd)) => crate::sockopt::recv_now(fd, &mut self.io.rbuf),
                _ => {
                    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                    match poll_read_on_demand(
                        &mut self.io.stream,
                        &mut self.io.rbuf,
                        READ_MIN,
                        usize::MAX,
                        &mut cx,
                    ) {
                        std::task::Poll::Ready(r) => r,
                        std::task::Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
                    }
                }
            };
            match read {
                Ok(0) => return Close::Lost,
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    Stats::add(&self.io.shared.stats.bytes_received, n as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Close::TakenOver,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Close::Lost,
            }
        }
    }

    /// Backpressure: before reading more, wait until the sessions this client's
    /// messages filled have drained, as long as each keeps taking messages from its
    /// queue. One that takes nothing for `BACKPRESSURE_WAIT` has stopped reading (and
    /// one still above its mark after `BACKPRESSURE_MAX_WAIT` reads too little to be
    /// waited for): it is marked stalled and not waited for again until it drains (its
    /// own limits then bound it), so it never holds back the publisher or the other
    /// subscribers for long.
    async fn wait_for_subscribers(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut busy = std::mem::take(&mut self.busy);
        if busy.len() > 1 {
            busy.sort_unstable_by_key(|c| Arc::as_ptr(c) as usize);
            busy.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
        for cell in &busy {
            if Arc::ptr_eq(cell, &self.cell) {
                // Our own session drains only when this task writes: waiting for it
                // here would be waiting for ourselves.
                continue;
            }
            let mut seen = None;
            let started = Instant::now();
            loop {
                let drained = cell.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                let taken = {
                    let st = cell.state.lock();
                    if st.link.is_none() || st.session.backlog_low() || cell.stalled.load(Relaxed) {
                        break;
                    }
                    st.session.taken()
                };
                if seen == Some(taken) || started.elapsed() >= BACKPRESSURE_MAX_WAIT {
                    cell.stalled.store(true, Relaxed);
                    break;
                }
                seen = Some(taken);
                // Woken when it drains; otherwise look again whether it moved at all.
                let _ = tokio::time::timeout(BACKPRESSURE_WAIT, drained).await;
            }
        }
        busy.clear();
        self.busy = busy;
    }

    /// A complete packet waits in the read buffer.
    fn input_waiting(&self) -> bool {
        Decoder::frame_len(&self.io.rbuf).is_some_and(|len| len <= self.io.rbuf.len())
    }

    /// Decodes and handles the complete packets in the read buffer: all of them, or
    /// up to the first PUBLISH that filled a subscriber's queue above its backpressure
    /// mark (the rest waits for it: `wait_for_subscribers`), so a subscriber that keeps
    /// reading is never flooded past its limits by one large read.
    fn handle_input(&mut self) -> Option<Close> {
        // Counted once per read: a shared counter is a cache line every thread writes.
        let mut received = 0;
        let close = loop {
            received += self.take_pubacks();
            let packet = match self.io.decoder.decode(&mut self.io.rbuf) {
                Ok(Some(p)) => p,
                Ok(None) => break None,
                Err(e) => {
                    let code = e.reason_code();
                    break Some(Close::Error(code, e.to_string()));
                }
            };
            received += 1;
            if let Some(close) = self.handle(packet) {
                break Some(close);
            }
            if !self.busy.is_empty() {
                break None;
            }
        };
        Stats::add(&self.io.shared.stats.messages_received, received);
        close
    }

    /// Handles the PUBACKs of the plain form (`40 02` and a non-zero packet identifier:
    /// Success without properties, the same in every version, MQTT 5 §3.4.2.1) at the
    /// front of the read buffer, under one session lock and without the decoder, which
    /// builds a 384-byte `Packet` for each (copied five times on its way: 14% of the
    /// broker's instructions in a 1->100 QoS 1 fan-out). Anything else, a malformed
    /// PUBACK included, is left to the decoder. Returns how many were handled.
    fn take_pubacks(&mut self) -> u64 {
        let plain = |b: &[u8]| b.len() >= 4 && b[0] == 0x40 && b[1] == 0x02 && b[2..4] != [0, 0];
        if !plain(&self.io.rbuf) {
            return 0;
        }
        let mut at = 0;
        let mut n = 0;
        {
            let mut st = self.cell.state.lock();
            while plain(&self.io.rbuf[at..]) {
                let b = &self.io.rbuf[at..];
                st.session.on_puback(u16::from_be_bytes([b[2], b[3]]));
                at += 4;
                n += 1;
            }
        }
        bytes::Buf::advance(&mut self.io.rbuf, at);
        n
    }

    /// The hook's answer to a step of re-authentication (MQTT 5 §4.12.1) goes back as
    /// AUTH 0x18 (continue) or 0x00 (success); a failure closes with DISCONNECT and the
    /// hook's reason code.
    fn on_auth_answer(&mut self, step: AuthStep) -> Option<Close> {
        let auth = self.auth.as_mut()?;
        auth.in_flight = None;
        let (code, data) = match step {
            AuthStep::Continue(d) => (ReasonCode::CONTINUE_AUTHENTICATION, d),
            AuthStep::Success(d) => (ReasonCode::SUCCESS, d),
            AuthStep::Failure(code) => {
                return Some(Close::Error(
                    failure_code(code),
                    format!("re-authentication ({}) failed", auth.method),
                ))
            }
        };
        auth.continuing = code == ReasonCode::CONTINUE_AUTHENTICATION;
        self.io
            .send(&Packet::Auth(auth_packet(code, &auth.method, data)));
        None
    }

    fn handle(&mut self, packet: Packet) -> Option<Close> {
        match packet {
            Packet::Publish(p) => return self.on_publish(p),
            Packet::PubAck(a) => {
                self.cell.state.lock().session.on_puback(a.pkid);
            }
            Packet::PubRec(a) => {
                let rel = self.cell.state.lock().session.on_pubrec(a.pkid, a.code);
                if let Some(rel) = rel {
                    self.io.send_ack(0x62, rel.pkid, rel.code);
                }
            }
            Packet::PubRel(a) => {
                // An unknown identifier is most likely a PUBREL resent after our
                // PUBCOMP was lost (the flow is complete): PUBCOMP 0x00 tells the client
                // so, as mosquitto answers, where 0x92 would leave it in doubt.
                self.cell.state.lock().session.on_pubrel(a.pkid);
                self.io.send_ack(0x70, a.pkid, ReasonCode::SUCCESS);
            }
            Packet::PubComp(a) => {
                self.cell.state.lock().session.on_pubcomp(a.pkid);
            }
            Packet::Subscribe(s) => return self.on_subscribe(s),
            Packet::Unsubscribe(u) => return self.on_unsubscribe(u),
            Packet::PingReq => self.io.send(&Packet::PingResp),
            Packet::Disconnect(d) => return Some(self.on_disconnect(d)),
            Packet::Connect(_) => {
                return Some(Close::Error(
                    ReasonCode::PROTOCOL_ERROR,
                    "second CONNECT".into(),
                ))
            }
            Packet::Auth(a) => {
                let Some(auth) = self.auth.as_mut() else {
                    // No authentication method was agreed in CONNECT (MQTT 5 §4.12).
                    return Some(Close::Error(
                        ReasonCode::PROTOCOL_ERROR,
                        "AUTH without an authentication method".into(),
                    ));
                };
                // §4.12.1: re-authentication uses the method of CONNECT; 0x19 starts
                // it, 0x18 answers our 0x18. An AUTH before we answered the last one is
                // out of sequence (§4.12: each side answers the other's AUTH).
                if auth.in_flight.is_some() {
                    return Some(Close::Error(
                        ReasonCode::PROTOCOL_ERROR,
                        format!(
                            "AUTH 0x{:02X} before the answer to the previous AUTH",
                            a.code.0
                        ),
                    ));
                }
                if a.properties.authentication_method.as_deref() != Some(auth.method.as_str()) {
                    return Some(Close::Error(
                        ReasonCode::PROTOCOL_ERROR,
                        format!(
                            "AUTH with method {:?}, not {:?} of CONNECT",
                            a.properties.authentication_method, auth.method
                        ),
                    ));
                }
                let expected = if auth.continuing {
                    ReasonCode::CONTINUE_AUTHENTICATION
                } else {
                    ReasonCode::RE_AUTHENTICATE
                };
                if a.code != expected {
                    return Some(Close::Error(
                        ReasonCode::PROTOCOL_ERROR,
                        format!(
                            "AUTH reason 0x{:02X} where 0x{:02X} was expected",
                            a.code.0, expected.0
                        ),
                    ));
                }
                auth.in_flight = Some(HookAnswer::ask(
                    &self.io.shared,
                    &self.client_id,
                    &auth.method,
                    a.properties.authentication_data,
                ));
            }
            other => {
                return Some(Close::Error(
                    ReasonCode::PROTOCOL_ERROR,
                    format!("unexpected {:?} from a client", other.packet_type()),
                ))
            }
        }
        None
    }

    fn on_publish(&mut self, mut p: Publish) -> Option<Close> {
        let shared = self.io.shared.clone();
        let config = &shared.config;
        Stats::add(&shared.stats.publish_received, 1);
        // Topic alias (MQTT 5 §3.3.2.3.4).
        let alias = p.properties.as_mut().and_then(|pr| pr.topic_alias.take());
        if let Some(alias) = alias {
            if alias == 0 || alias > config.topic_alias_maximum {
                return Some(Close::Error(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    format!(
                        "topic alias {alias} outside 1..={} (topic_alias_maximum)",
                        config.topic_alias_maximum
                    ),
                ));
            }
            if p.topic.is_empty() {
                match self.aliases.as_ref().and_then(|a| a.incoming.get(&alias)) {
                    Some(t) => p.topic = t.clone(),
                    None => {
                        return Some(Close::Error(
                            ReasonCode::PROTOCOL_ERROR,
                            format!("unknown topic alias {alias}"),
                        ))
                    }
                }
            } else {
                self.aliases
                    .get_or_insert_with(Default::default)
                    .incoming
                    .insert(alias, p.topic.clone());
            }
        }
        if let Err(why) = topic::validate_topic_name(&p.topic) {
            return Some(Close::Error(
                ReasonCode::TOPIC_NAME_INVALID,
                format!("invalid topic name {:?}: {why}", p.topic.as_str()),
            ));
        }
        if too_deep(&p.topic, config.max_topic_levels) {
            return Some(Close::Error(
                ReasonCode::TOPIC_NAME_INVALID,
                format!(
                    "a topic name of {} levels, more than max_topic_levels {}",
                    topic::level_count(&p.topic),
                    config.max_topic_levels
                ),
            ));
        }
        if (p.qos as u8) > config.max_qos {
            return Some(Close::Error(
                ReasonCode::QOS_NOT_SUPPORTED,
                format!(
                    "PUBLISH QoS {} above maximum QoS {}",
                    p.qos as u8, config.max_qos
                ),
            ));
        }
        if p.retain && !config.retain_available {
            return Some(Close::Error(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "retained PUBLISH but retain is not available".into(),
            ));
        }
        let pkid = p.pkid;
        let qos = p.qos;
        if qos == QoS::ExactlyOnce {
            let mut st = self.cell.state.lock();
            if st.session.incoming_qos2_len() >= usize::from(config.receive_maximum) && !p.dup {
                drop(st);
                return Some(Close::Error(
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    format!(
                        "more than {} unreleased QoS 2 messages (receive maximum)",
                        config.receive_maximum
                    ),
                ));
            }
            if !st.session.on_incoming_qos2(pkid) {
                // A duplicate of a message already routed: acknowledge only (§4.3.3).
                drop(st);
                self.io.send_ack(0x50, pkid, ReasonCode::SUCCESS);
                return None;
            }
        }
        let broker_topic = !super::auth::client_may_publish(&p.topic);
        let authorized = !broker_topic
            && shared.allowed(
                &self.client_id,
                self.username.as_deref(),
                &p.topic,
                Access::Write,
            );
        let mut code = ReasonCode::SUCCESS;
        if authorized {
            let now = Instant::now();
            let mut message = Message::new(p.topic, p.payload, qos, p.retain);
            message.origin = Some(self.client_id.clone());
            if let Some(mut props) = p.properties.take() {
                let expiry = props.message_expiry_interval.take();
                message.set_expiry(expiry, now);
                props.subscription_identifiers.clear();
                if *props != Default::default() {
                    message.properties = Some(props);
                }
            }
            // Kept for the PUBACK / PUBREC code below (v5, QoS 1 and 2 only).
            let topic = (self.v5() && qos != QoS::AtMostOnce).then(|| message.topic.clone());
            let n = shared.route_with_backpressure(message, &mut self.busy);
            if let Some(topic) = topic.filter(|_| n == 0) {
                // §3.4.2.1: 0x10 says no subscription matched; the publisher's own
                // no-local subscription did match (it is only not sent back).
                let own_match = self
                    .cell
                    .state
                    .lock()
                    .session
                    .subscriptions
                    .iter()
                    .any(|(f, s)| s.options.no_local && topic::matches(f, &topic));
                if !own_match {
                    code = ReasonCode::NO_MATCHING_SUBSCRIBERS;
                }
            }
        } else {
            code = ReasonCode::NOT_AUTHORIZED;
            shared.log(
                Level::Warning,
                format!(
                    "client {}: PUBLISH to {:?} denied {}",
                    self.client_id,
                    p.topic.as_str(),
                    if broker_topic {
                        "(a $SYS topic is the broker's)"
                    } else {
                        "by ACL"
                    }
                ),
            );
        }
        let code = if self.v5() { code } else { ReasonCode::SUCCESS };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.io.send_ack(0x40, pkid, code),
            QoS::ExactlyOnce => {
                if code.is_error() {
                    // An error PUBREC ends the flow (§4.3.3): forget the identifier.
                    self.cell.state.lock().session.on_pubrel(pkid);
                }
                self.io.send_ack(0x50, pkid, code)
            }
        }
        None
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Option<Close> {
        let shared = self.io.shared.clone();
        let config = &shared.config;
        let v5 = self.v5();
        let sub_id = s.properties.subscription_identifiers.first().copied();
        if sub_id == Some(0) {
            return Some(Close::Error(
                ReasonCode::PROTOCOL_ERROR,
                "subscription identifier 0".into(),
            ));
        }
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut too_deep_filters = 0usize;
        for f in &s.filters {
            let shared_sub = topic::parse_shared(&f.filter);
            if topic::validate_topic_filter(&f.filter).is_err() {
                codes.push(if v5 {
                    ReasonCode::TOPIC_FILTER_INVALID
                } else {
                    ReasonCode::UNSPECIFIED_ERROR
                });
                continue;
            }
            if shared_sub.is_some() && f.options.no_local && v5 {
                // MQTT 5 §3.8.3.1: no local on a shared subscription is a protocol error.
                return Some(Close::Error(
                    ReasonCode::PROTOCOL_ERROR,
                    format!("no local on shared subscription {:?}", f.filter),
                ));
            }
            let inner = shared_sub.map(|(_, f)| f).unwrap_or(&f.filter);
            if too_deep(inner, config.max_topic_levels) {
                // A valid filter the broker does not take (§3.9.3: 0x8F "not allowed").
                too_deep_filters += 1;
                codes.push(if v5 {
                    ReasonCode::TOPIC_FILTER_INVALID
                } else {
                    ReasonCode::UNSPECIFIED_ERROR
                });
                continue;
            }
            if !shared.allowed(
                &self.client_id,
                self.username.as_deref(),
                inner,
                Access::Read,
            ) {
                shared.log(
                    Level::Warning,
                    format!(
                        "client {}: SUBSCRIBE to {:?} denied by ACL",
                        self.client_id, f.filter
                    ),
                );
                codes.push(if v5 {
                    ReasonCode::NOT_AUTHORIZED
                } else {
                    ReasonCode::UNSPECIFIED_ERROR
                });
                continue;
            }
            let mut options = f.options;
            if self.bridge {
                // mosquitto (handle_subscribe.c): a bridge does not get its own
                // messages back, and forwards the retain flag as the publisher set it.
                options.no_local = true;
                options.retain_as_published = true;
            }
            if (options.qos as u8) > config.max_qos {
                options.qos = QoS::from_u8(config.max_qos).unwrap_or(QoS::AtMostOnce);
            }
            let existed = shared.router.lock().subscribe(
                &self.cell,
                &self.client_id,
                &f.filter,
                options,
                sub_id,
            );
            // Shared subscriptions get no retained messages (§4.8.2).
            let send_retained = shared_sub.is_none()
                && match options.retain_handling {
                    crate::codec::RetainHandling::OnSubscribe => true,
                    crate::codec::RetainHandling::OnNewSubscribe => !existed,
                    crate::codec::RetainHandling::DoNotSend => false,
                };
            if send_retained {
                // Looked up after the SUBACK, a step at a time (`send_retained`).
                self.retained.get_or_insert_with(Default::default).add(
                    &f.filter,
                    options.qos,
                    sub_id,
                );
            }
            codes.push(ReasonCode(options.qos as u8));
            shared.log(
                Level::Debug,
                format!(
                    "client {} subscribed to {:?} (QoS {})",
                    self.client_id, f.filter, options.qos as u8
                ),
            );
        }
        if too_deep_filters > 0 {
            shared.log(
                Level::Warning,
                format!(
                    "client {}: SUBSCRIBE with {too_deep_filters} topic filter(s) of more \
                     than max_topic_levels {} levels refused",
                    self.client_id, config.max_topic_levels
                ),
            );
        }
        self.io.send(&Packet::SubAck(SubAck {
            pkid: s.pkid,
            codes,
            ..Default::default()
        }));
        None
    }

    /// One step of the pending retained deliveries: the next messages of the first
    /// pending filter, as many as the session queue has room for, each checked against
    /// the read ACL. The router is held for one bounded walk
    /// (`RETAINED_STEP_NODES`), never for work proportional to the store. Returns true if
    /// it made progress (more may follow once the queue drains).
    fn send_retained(&mut self) -> bool {
        let shared = self.io.shared.clone();
        let room = {
            let st = self.cell.state.lock();
            if st
                .link
                .as_ref()
                .is_none_or(|l| l.signals.conn_id != self.conn_id)
            {
                // Taken over: the new connection subscribes for itself.
                drop(st);
                self.retained = None;
                return false;
            }
            // Only into a queue below its low-water mark, up to a quarter of its bound:
            // the backlog of retained messages then never holds publishers back
            // (`Offered::Busy`) nor leaves live messages without room.
            if !st.session.backlog_low() {
                return false;
            }
            let quarter = (st.session.max_queued() as usize / 4).max(1);
            quarter.saturating_sub(st.session.queued_len()).max(1)
        };
        let Some(pending) = self.retained.as_mut() else {
            return false;
        };
        let Some(job) = pending.front_mut() else {
            self.retained = None;
            return false;
        };
        let mut found = Vec::new();
        let done = shared.router.lock().retained.next_matching(
            &job.filter,
            &mut job.cursor,
            Instant::now(),
            room.min(RETAINED_STEP_MESSAGES),
            RETAINED_STEP_NODES,
            &mut found,
        );
        let (qos, subscription_id) = (job.qos, job.subscription_id);
        if done {
            pending.pop_front();
            if pending.is_empty() {
                self.retained = None;
            }
        }
        for m in found {
            // Every delivery passes the read check of its own topic, as live ones do in
            // `Shared::route`: a filter allowed by a wildcard rule may match topics a
            // deny rule (or a narrower grant) keeps from this client.
            if !shared.allowed(
                &self.client_id,
                self.username.as_deref(),
                &m.topic,
                Access::Read,
            ) {
                continue;
            }
            let delivery = Delivery {
                qos: m.qos.min(qos),
                message: m,
                // §3.3.1.3: retained messages sent on subscribe keep the flag.
                retain: true,
                subscription_ids: subscription_id.into_iter().collect(),
            };
            if let super::router::Offered::Dropped { .. } = self.cell.offer(delivery) {
                // Live messages filled the queue meanwhile: counted like theirs.
                Stats::add(&shared.stats.messages_dropped, 1);
            }
        }
        true
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) -> Option<Close> {
        let shared = self.io.shared.clone();
        let max_levels = shared.config.max_topic_levels;
        let mut codes = Vec::with_capacity(u.filters.len());
        {
            let mut router = shared.router.lock();
            for f in &u.filters {
                let inner = topic::parse_shared(f).map_or(f.as_str(), |(_, inner)| inner);
                codes.push(if too_deep(inner, max_levels) {
                    // Never subscribed: the SUBSCRIBE was refused.
                    ReasonCode::TOPIC_FILTER_INVALID
                } else {
                    router.unsubscribe(&self.cell, &self.client_id, f)
                });
            }
        }
        if let Some(pending) = self.retained.as_mut() {
            for f in &u.filters {
                pending.cancel(f);
            }
            if pending.is_empty() {
                self.retained = None;
            }
        }
        if !self.v5() {
            codes.clear();
        }
        self.io.send(&Packet::UnsubAck(UnsubAck {
            pkid: u.pkid,
            codes,
            ..Default::default()
        }));
        None
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Close {
        if let Some(expiry) = d.properties.session_expiry_interval {
            // MQTT 5 §3.14.2.2.2: a session that was to end at disconnect cannot be
            // given an expiry now.
            if self.session_expiry == 0 && expiry != 0 {
                return Close::Error(
                    ReasonCode::PROTOCOL_ERROR,
                    "session expiry set in DISCONNECT after 0 in CONNECT".into(),
                );
            }
            self.session_expiry = match self.io.shared.config.max_session_expiry {
                Some(max) => expiry.min(max),
                None => expiry,
            };
        }
        Close::Normal {
            with_will: disconnect_keeps_will(d.code),
        }
    }

    /// Moves sendable messages from the session into the write buffer. Returns true if
    /// more are waiting (the batch limit was reached).
    ///
    /// Most deliveries are written straight from the session, under its lock (see
    /// `write_plain_publish`); those that need this connection's own encoding (v5
    /// properties, topic aliases, large payloads) are copied out and encoded after the
    /// lock is released, and everything after the first of them follows it there, so
    /// the order holds.
    fn fill_outgoing(&mut self) -> bool {
        let now = Instant::now();
        let mut batch = std::mem::take(&mut self.batch);
        let v5 = self.v5();
        // Outgoing topic aliases are per connection: all its v5 PUBLISHes go the long way.
        let plain = !v5 || self.client_alias_max == 0;
        let max_packet = self.client_max_packet as usize;
        let mut written = 0u64;
        let more;
        {
            let mut st = self.cell.state.lock();
            if st
                .link
                .as_ref()
                .is_none_or(|l| l.signals.conn_id != self.conn_id)
            {
                return false;
            }
            let mut budget = WRITE_BATCH.saturating_sub(self.io.output_len());
            let wbuf = &mut self.io.wbuf;
            while budget > 0 {
                let in_order = batch.is_empty();
                let sent = st.session.send_next(now, |pkid, d| {
                    if !(in_order && plain && write_plain_publish(wbuf, v5, max_packet, pkid, d)) {
                        batch.push((pkid, d.clone()));
                    } else {
                        written += 1;
                    }
                    d.message.payload.len() + d.message.topic.len() + 8
                });
                match sent {
                    Some(size) => budget = budget.saturating_sub(size),
                    None => break,
                }
            }
            more = st.session.has_sendable();
            if st.session.backlog_low() {
                drop(st);
                self.cell
                    .stalled
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                self.cell.drained.notify_waiters();
            }
        }
        if written > 0 {
            let stats = &self.io.shared.stats;
            Stats::add(&stats.messages_sent, written);
            Stats::add(&stats.publish_sent, written);
        }
        for (pkid, d) in batch.drain(..) {
            self.send_publish(pkid, &d, false);
        }
        // A burst's batch is not kept by a connection that goes quiet again.
        if batch.capacity() <= 64 {
            self.batch = batch;
        }
        more
    }

    fn send_publish(&mut self, pkid: u16, d: &Delivery, dup: bool) {
        let mut p = publish_for(pkid, d, dup);
        let v5 = self.v5();
        if v5 {
            let expiry = match d.message.expires_at {
                Some(_) => d.message.remaining_expiry(Instant::now()),
                None => None,
            };
            if expiry.is_some() || !d.subscription_ids.is_empty() || self.client_alias_max > 0 {
                let props = p.properties.get_or_insert_with(Default::default);
                props.message_expiry_interval = expiry;
                props.subscription_identifiers = d.subscription_ids.clone();
                if self.client_alias_max > 0 && !dup {
                    let out = &mut self.aliases.get_or_insert_with(Default::default).outgoing;
                    if let Some(&a) = out.get(&p.topic) {
                        props.topic_alias = Some(a);
                        p.topic = ByteStr::new();
                    } else if out.len() < usize::from(self.client_alias_max) {
                        let a = out.len() as u16 + 1;
                        out.insert(p.topic.clone(), a);
                        props.topic_alias = Some(a);
                    }
                }
                if **props == Default::default() {
                    p.properties = None;
                }
            }
        } else {
            p.properties = None;
        }
        let packet = Packet::Publish(p);
        if self.client_max_packet != u32::MAX {
            let len = encoded_len(&packet, self.io.version);
            if len > self.client_max_packet as usize {
                // MQTT 5 §3.1.2.11.4: discard what the client cannot take, as if sent.
                if pkid != 0 {
                    let mut st = self.cell.state.lock();
                    st.session.on_puback(pkid);
                    if st.session.on_pubrec(pkid, ReasonCode::SUCCESS).is_some() {
                        st.session.on_pubcomp(pkid);
                    }
                }
                self.io.shared.log(
                    Level::Info,
                    format!(
                        "client {}: dropped a {len}-byte PUBLISH on {:?}, above the client's \
                         maximum packet size {}",
                        self.client_id,
                        d.message.topic.as_str(),
                        self.client_max_packet
                    ),
                );
                return;
            }
        }
        self.io.send(&packet);
        Stats::add(&self.io.shared.stats.messages_sent, 1);
        Stats::add(&self.io.shared.stats.publish_sent, 1);
    }

    /// Sends the final DISCONNECT, closes the socket, publishes the will if due and
    /// detaches (or ends) the session.
    async fn finish(mut self, close: Close) {
        let shared = self.io.shared.clone();
        let v5 = self.v5();
        let (reason, log_level, what): (Option<ReasonCode>, Level, String) = match &close {
            Close::Normal { .. } => (None, Level::Info, "disconnected".into()),
            Close::Lost => (None, Level::Info, "connection lost".into()),
            Close::KeepAlive => (
                Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
                Level::Info,
                format!(
                    "keep-alive timeout (nothing received in {:.1} s)",
                    f64::from(self.keep_alive) * 1.5
                ),
            ),
            Close::TakenOver => (
                Some(ReasonCode::SESSION_TAKEN_OVER),
                Level::Info,
                "taken over by a new connection with the same client id".into(),
            ),
            Close::Shutdown => (
                Some(ReasonCode::SERVER_SHUTTING_DOWN),
                Level::Debug,
                "closed: broker shutting down".into(),
            ),
            Close::Error(code, text) => (
                Some(*code),
                Level::Warning,
                format!("closed for {text} (reason 0x{:02X})", code.0),
            ),
            Close::Admin(code) => (
                Some(*code),
                Level::Info,
                "disconnected by the broker".into(),
            ),
            // `serve_to_end` parks instead; never here.
            Close::Park => (None, Level::Debug, "closed while parking".into()),
        };
        shared.log(
            log_level,
            format!("client {} ({}): {what}", self.client_id, self.peer),
        );
        if v5 {
            if let Some(code) = reason {
                let mut d = Disconnect {
                    code,
                    ..Default::default()
                };
                if let Close::Error(_, text) = &close {
                    if self.problem_info {
                        d.properties.reason_string = Some(text.clone());
                    }
                }
                self.io.send(&Packet::Disconnect(d));
            }
        }
        // Unread input is dropped; pending output gets a short chance to leave.
        let _ = tokio::time::timeout(CLOSE_FLUSH, async {
            let _ = self.io.flush().await;
            let _ = self.io.stream.shutdown().await;
        })
        .await;

        let attached = self.is_attached();
        let will_delay = self
            .will
            .as_ref()
            .and_then(|w| w.properties.will_delay_interval)
            .unwrap_or(0);
        // Not attached: another connection took the client id over. Whether it resumed
        // this session (the map still holds this cell) or started a new one decides the
        // will of a v5 client.
        let taken_over = (!attached).then(|| {
            shared
                .router
                .lock()
                .sessions
                .get(&self.client_id)
                .is_some_and(|c| Arc::ptr_eq(c, &self.cell))
        });
        let fate = will_fate(&close, v5, will_delay, taken_over);
        let will = self.will.take().filter(|_| fate != WillFate::Discard);

        if attached {
            let ends_now = self.session_expiry == 0 || matches!(close, Close::Shutdown);
            let detach = |st: &mut super::router::SessionState| {
                st.link = None;
                st.session.online = false;
                st.expires_at = if expiry_forever(self.session_expiry) {
                    None
                } else {
                    Some(Instant::now() + Duration::from_secs(u64::from(self.session_expiry)))
                };
            };
            if ends_now {
                // Under the router lock (router, then session: the lock order), so a
                // new connection never resumes a session between its detaching and its
                // removal.
                let mut router = shared.router.lock();
                let still_attached = {
                    let mut st = self.cell.state.lock();
                    let mine = st
                        .link
                        .as_ref()
                        .is_some_and(|l| l.signals.conn_id == self.conn_id);
                    if mine {
                        detach(&mut st);
                    }
                    mine
                };
                if still_attached {
                    router.remove_session(&self.client_id, &self.cell);
                }
            } else {
                let mut st = self.cell.state.lock();
                if st
                    .link
                    .as_ref()
                    .is_some_and(|l| l.signals.conn_id == self.conn_id)
                {
                    detach(&mut st);
                }
            }
            if let Some(w) = will {
                let delay = if ends_now {
                    0
                } else {
                    will_delay.min(self.session_expiry)
                };
                self.publish_will(*w, delay);
            }
        } else if let Some(w) = will {
            self.publish_will(*w, 0);
        }
        shared
            .stats
            .clients_connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn publish_will(&self, w: LastWill, delay: u32) {
        let shared = &self.io.shared;
        let now = Instant::now();
        let mut message = Message::new(w.topic, w.payload, w.qos, w.retain);
        message.origin = Some(self.client_id.clone());
        let mut props = w.properties;
        props.will_delay_interval = None;
        let expiry = props.message_expiry_interval.take();
        message.set_expiry(expiry, now);
        if props != Default::default() {
            message.properties = Some(Box::new(props));
        }
        if !super::auth::client_may_publish(&message.topic)
            || !shared.allowed(
                &self.client_id,
                self.username.as_deref(),
                &message.topic,
                Access::Write,
            )
        {
            shared.log(
                Level::Warning,
                format!(
                    "client {}: will on {:?} denied (ACL, or a $SYS topic)",
                    self.client_id,
                    message.topic.as_str()
                ),
            );
            return;
        }
        if delay == 0 {
            shared.log(
                Level::Debug,
                format!(
                    "client {}: publishing will on {:?}",
                    self.client_id,
                    message.topic.as_str()
                ),
            );
            shared.route(message);
        } else {
            shared.router.lock().wills.push(super::router::PendingWill {
                client_id: self.client_id.clone(),
                due: now + Duration::from_secs(u64::from(delay)),
                message,
            });
        }
    }
}

/// The state of a parked connection (see `park.rs`): what `Connection` holds minus the
/// socket, the buffers (empty when it parks), the decoder (rebuilt) and the per-burst
/// scratch vectors; what most clients do not use (user name, will, aliases, enhanced
/// authentication, v5 limits) in one box that a plain idle client does not have. About
/// a quarter of a `Connection`.
///
/// The connection id is in the signals, the client id in the session, the peer address
/// in the session's link (or the socket); the task guard is dropped and taken again at
/// unpark (`Parking::unpark`).
pub struct Parked {
    cell: Arc<SessionCell>,
    signals: Arc<Signals>,
    session_expiry: u32,
    keep_alive: u16,
    version: ProtocolVersion,
    rare: Option<Box<ParkedRare>>,
}

struct ParkedRare {
    username: Option<String>,
    will: Option<Box<LastWill>>,
    aliases: Option<Box<TopicAliases>>,
    auth: Option<Box<EnhancedAuth>>,
    client_max_packet: u32,
    client_alias_max: u16,
    problem_info: bool,
    bridge: bool,
}

impl Parked {
    pub fn signals(&self) -> &Arc<Signals> {
        &self.signals
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection<S> {
    /// A re-authentication (MQTT 5 §4.12.1) is between steps: its connection must not
    /// park (the hook's pending answer is waited for by the task).
    fn reauth_in_flight(&self) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|a| a.continuing || a.in_flight.is_some())
    }

    /// Whether the connection should park now: asked to (quiet for `idle_park_after`,
    /// or just connected), a plain-TCP socket, and nothing in flight in this task:
    /// nothing buffered either way, no publisher backpressure, no re-authentication.
    /// Unacknowledged QoS 1/2 messages may stay in the session: their acknowledgements
    /// arrive as reads, which unpark.
    fn may_park(&self) -> bool {
        (&self.io.stream as &dyn std::any::Any).is::<TcpConn>()
            && self.signals.park_requested()
            && self.io.rbuf.is_empty()
            && !self.io.has_output()
            && !self.io.write_failed
            && self.busy.is_empty()
            && self.retained.is_none()
            && !self.reauth_in_flight()
            && self.io.shared.parking.get().is_some()
    }

    /// Parks the connection: its task ends, its socket leaves tokio for the broker's
    /// poller. `Err` gives the connection back to go on serving (the broker is
    /// stopping, or it was woken meanwhile and must look first).
    fn park(self: Box<Self>, guard: TaskGuard) -> Result<(), (Box<Self>, TaskGuard)> {
        let mut me = self;
        let Some(parking) = me.io.shared.parking.get().cloned() else {
            me.signals.set_parked(false);
            return Err((me, guard));
        };
        let Some(TcpConn::Open(tokio_stream)) = (&mut me.io.stream as &mut dyn std::any::Any)
            .downcast_mut::<TcpConn>()
            .map(|s| std::mem::replace(s, TcpConn::Closed))
        else {
            me.signals.set_parked(false);
            return Err((me, guard));
        };
        // On failure the socket is closed: the connection goes on and reads the end of
        // the stream (`TcpConn::Closed`), so it ends as lost, will and all.
        let Ok(stream) = tokio_stream.into_std() else {
            me.signals.set_parked(false);
            return Err((me, guard));
        };
        let shared = me.io.shared.clone();
        me.signals.set_parked(true);
        let c = *me;
        let rare = ParkedRare {
            username: c.username,
            will: c.will,
            aliases: c.aliases,
            auth: c.auth,
            client_max_packet: c.client_max_packet,
            client_alias_max: c.client_alias_max,
            problem_info: c.problem_info,
            bridge: c.bridge,
        };
        let plain = rare.username.is_none()
            && rare.will.is_none()
            && rare.aliases.is_none()
            && rare.auth.is_none()
            && rare.client_max_packet == u32::MAX
            && rare.client_alias_max == 0
            && rare.problem_info
            && !rare.bridge;
        let state = Parked {
            cell: c.cell,
            signals: c.signals,
            session_expiry: c.session_expiry,
            keep_alive: c.keep_alive,
            version: c.io.version,
            rare: (!plain).then(|| Box::new(rare)),
        };
        match parking.park(&shared, stream, state) {
            Ok(()) => Ok(()),
            Err((stream, state)) => {
                // Back to a task at once (rare: the broker is stopping).
                let fut = resume(shared.clone(), stream, state, guard);
                tokio::spawn(super::listener::reporting_panics(shared, fut));
                Ok(())
            }
        }
    }
}

/// Runs a parked connection again: the socket back in tokio, the `Connection` rebuilt
/// as it was, then the ordinary serving loop (which may park it again).
pub async fn resume(shared: Arc<Shared>, stream: std::net::TcpStream, p: Parked, guard: TaskGuard) {
    p.signals.set_parked(false);
    let rare = match p.rare {
        Some(r) => *r,
        None => ParkedRare {
            username: None,
            will: None,
            aliases: None,
            auth: None,
            client_max_packet: u32::MAX,
            client_alias_max: 0,
            problem_info: true,
            bridge: false,
        },
    };
    // Registering with tokio can only fail when the process is out of resources:
    // the connection then ends as lost.
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => TcpConn::Open(s),
        Err(_) => TcpConn::Closed,
    };
    let tcp_fd = match &stream {
        TcpConn::Open(s) => crate::sockopt::tcp_fd(s),
        TcpConn::Closed => None,
    };
    let (client_id, peer) = {
        let st = p.cell.state.lock();
        let peer = match &st.link {
            Some(l) if Arc::ptr_eq(&l.signals, &p.signals) => Some(l.peer()),
            // Taken over meanwhile (it is closing): the socket knows.
            _ => None,
        };
        (st.session.client_id.clone(), peer)
    };
    let peer = peer
        .or_else(|| match &stream {
            TcpConn::Open(s) => s.peer_addr().ok(),
            TcpConn::Closed => None,
        })
        .map_or_else(|| Arc::from("(unknown)"), |a| Arc::from(a.to_string()));
    let mut decoder = Decoder::new(shared.config.max_packet_size);
    decoder.set_version(p.version);
    let conn = Box::new(Connection {
        io: Io {
            stream,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            segments: Vec::new(),
            decoder,
            shared,
            version: p.version,
            write_failed: false,
            tcp_fd,
        },
        peer,
        conn_id: p.signals.conn_id,
        client_id,
        username: rare.username,
        cell: p.cell,
        signals: p.signals,
        keep_alive: p.keep_alive,
        will: rare.will,
        session_expiry: p.session_expiry,
        aliases: rare.aliases,
        client_alias_max: rare.client_alias_max,
        client_max_packet: rare.client_max_packet,
        batch: Vec::new(),
        problem_info: rare.problem_info,
        bridge: rare.bridge,
        busy: Vec::new(),
        retained: None,
        auth: rare.auth,
    });
    serve_to_end(conn, guard).await;
}

/// Reads into `buf`. When `buf` has no spare capacity (an idle connection), the read
/// goes through a stack buffer and only the bytes that arrived are copied to the heap:
/// a connection waiting for input holds no read buffer (`read_buf` would reserve one
/// before every wait). This one is for the CONNECT phase: the buffer is as large as
/// what arrived (a connection in that phase is short-lived, and hundreds may be in it
/// at once when clients connect in a burst).
async fn read_on_demand<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_on_demand(rd, buf, 0, usize::MAX, cx)).await
}

/// `read_on_demand`, reserving at least `min` bytes when bytes arrive, reading at most
/// `limit` bytes into spare capacity.
fn poll_read_on_demand<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    min: usize,
    limit: usize,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<usize>> {
    if buf.capacity() > buf.len() {
        // `read_buf`'s future keeps no state between polls: a new one per poll is the
        // same read.
        let mut limited = bytes::BufMut::limit(&mut *buf, limit);
        let read = rd.read_buf(&mut limited);
        tokio::pin!(read);
        return std::future::Future::poll(read, cx);
    }
    let mut stack = [0u8; READ_MIN];
    let mut rb = tokio::io::ReadBuf::new(&mut stack);
    match std::pin::Pin::new(&mut *rd).poll_read(cx, &mut rb) {
        std::task::Poll::Ready(Ok(())) => {
            let got = rb.filled();
            if !got.is_empty() {
                buf.reserve(got.len().max(min));
                buf.extend_from_slice(got);
            }
            std::task::Poll::Ready(Ok(got.len()))
        }
        std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
        std::task::Poll::Pending => std::task::Poll::Pending,
    }
}

/// The protocol level of a CONNECT at the front of `buf`, read before decoding so a
/// CONNECT that fails to decode can still be answered in its version (MQTT 5 §3.1.4).
fn peek_connect_level(buf: &[u8]) -> Option<ProtocolVersion> {
    if buf.first()? >> 4 != 1 {
        return None;
    }
    let mut i = 1;
    loop {
        let b = *buf.get(i)?;
        i += 1;
        if b & 0x80 == 0 || i > 4 {
            break;
        }
    }
    let name_len = usize::from(u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?]));
    // Without mosquitto's bridge bit (0x83, 0x84, 0x85 from bridges and paho's
    // `enable_bridge_mode()`).
    ProtocolVersion::from_level(*buf.get(i + 2 + name_len)? & 0x7F)
}

/// Appends the PUBLISH of a delivery that needs nothing but its message: a small
/// payload, and for MQTT 5 no properties, expiry or subscription identifiers (the
/// caller rules out topic aliases). False, with nothing written, for any other; the
/// codec then encodes it (`send_publish`). Written from references through
/// `codec::encode_plain_publish` (a unit test holds the bytes equal to `encode`'s): no
/// `Publish` is built, so no reference count of the shared topic and payload is touched
/// per subscriber, and the topic is not validated again (every `Message` carries a
/// valid topic name).
fn write_plain_publish(
    out: &mut BytesMut,
    v5: bool,
    max_packet: usize,
    pkid: u16,
    d: &Delivery,
) -> bool {
    let m = &*d.message;
    if m.payload.len() >= SEGMENT_PAYLOAD
        || (v5
            && (m.properties.is_some() || m.expires_at.is_some() || !d.subscription_ids.is_empty()))
    {
        return false;
    }
    let topic: &[u8] = m.topic.as_bytes();
    if plain_publish_len(v5, topic.len(), d.qos, m.payload.len()) > max_packet {
        return false;
    }
    encode_plain_publish(out, v5, topic, d.qos, d.retain, pkid, &m.payload).is_ok()
}

/// Whether a topic name or filter has more levels than `max_topic_levels` (0: no limit).
fn too_deep(topic_or_filter: &str, max_levels: usize) -> bool {
    max_levels > 0 && topic::level_count(topic_or_filter) > max_levels
}

fn control_close(c: Control) -> Close {
    match c {
        Control::TakenOver => Close::TakenOver,
        Control::Disconnect(code) => Close::Admin(code),
        Control::KeepAlive => Close::KeepAlive,
        Control::Shutdown => Close::Shutdown,
    }
}

/// Whether a DISCONNECT with this reason keeps the will: only 0x00 deletes it
/// ([MQTT-3.1.2-10]; a v3 DISCONNECT has no reason and counts as 0x00). 0x04 asks for
/// it, and any error reason is a close without a normal disconnection.
fn disconnect_keeps_will(code: ReasonCode) -> bool {
    code != ReasonCode::SUCCESS
}

/// What becomes of the will of a closing connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WillFate {
    Discard,
    /// After the will delay, or when the session ends if sooner (MQTT 5 §3.1.3.2.2).
    Delayed,
    /// At once.
    Now,
}

/// The will rule. `taken_over`: None while the connection is its session's, else
/// whether the connection that took the client id over resumed the session.
///
/// - DISCONNECT 0x00 (every v3 DISCONNECT) deletes it ([MQTT-3.1.2-10]).
/// - MQTT 3.1.1 has no will delay and deletes the will only on DISCONNECT: a takeover
///   closes the connection without one, so the will goes out (§3.1.2.5, §3.1.4).
/// - MQTT 5, the new connection started a new session: the old session ended, which
///   makes the will due at once (§3.1.3.2.2).
/// - MQTT 5, the new connection resumed the session: a new connection to the session
///   came within the will delay, so the will is not sent ([MQTT-3.1.3-9]), unless the
///   old connection had already ended by itself before the takeover (its DISCONNECT
///   with a will reason, or the end of its stream, was read first) and its will was
///   due at once.
fn will_fate(close: &Close, v5: bool, will_delay: u32, taken_over: Option<bool>) -> WillFate {
    if let Close::Normal { with_will: false } = close {
        return WillFate::Discard;
    }
    match taken_over {
        None => WillFate::Delayed,
        Some(_) if !v5 => WillFate::Now,
        Some(false) => WillFate::Now,
        Some(true) if will_delay == 0 && !matches!(close, Close::TakenOver) => WillFate::Now,
        Some(true) => WillFate::Discard,
    }
}

/// Asks the Python hook of `method` and waits for its answer (the exchange before
/// CONNACK, where the client may send nothing else: MQTT 5 §4.12).
async fn ask_auth_hook(
    shared: &Shared,
    client_id: &str,
    method: &str,
    data: Option<Bytes>,
) -> AuthStep {
    let mut answer = HookAnswer::ask(shared, client_id, method, data);
    std::future::poll_fn(|cx| answer.poll(cx)).await
}

/// A hook's failure code, kept to the error range (§2.4: 0x80 and above).
fn failure_code(code: u8) -> ReasonCode {
    if code >= 0x80 {
        ReasonCode(code)
    } else {
        ReasonCode::NOT_AUTHORIZED
    }
}

fn auth_packet(code: ReasonCode, method: &str, data: Option<Bytes>) -> Auth {
    Auth {
        code,
        properties: Properties {
            authentication_method: Some(method.to_string()),
            authentication_data: data,
            ..Default::default()
        },
    }
}

/// Sends a refusing CONNACK and closes; logs why. The flush is a boxed future: it sits
/// at several await points of `Connection::accept`, whose state is part of every
/// connection in its CONNECT phase, and refusals are rare.
fn refuse<'a, S, T>(
    mut io: Io<S>,
    ctx: &ConnectionContext,
    code: ReasonCode,
    what: &str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<T>> + Send + 'a>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'a,
    T: 'a,
{
    ctx.shared.log(
        Level::Warning,
        format!(
            "connection from {} refused (reason 0x{:02X}): {what}",
            ctx.peer, code.0
        ),
    );
    let mut ack = ConnAck {
        session_present: false,
        code,
        ..Default::default()
    };
    if io.version.is_v5() {
        ack.properties.reason_string = Some(what.to_string());
    }
    io.send(&Packet::ConnAck(ack));
    Box::pin(async move {
        let _ = tokio::time::timeout(CLOSE_FLUSH, async {
            let _ = io.flush().await;
            let _ = io.stream.shutdown().await;
        })
        .await;
        None
    })
}

/// A message injected from Python (`Broker.publish`).
pub fn injected(topic: &str, payload: Bytes, qos: QoS, retain: bool) -> Result<Message, String> {
    topic::validate_topic_name(topic).map_err(|e| format!("invalid topic {topic:?}: {e}"))?;
    Ok(Message::new(ByteStr::from(topic), payload, qos, retain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;

    #[test]
    fn only_disconnect_0x00_deletes_the_will() {
        assert!(!disconnect_keeps_will(ReasonCode::SUCCESS));
        for code in [0x04, 0x80, 0x81, 0x82, 0x8B, 0x93, 0x95, 0x98] {
            assert!(disconnect_keeps_will(ReasonCode(code)), "0x{code:02X}");
        }
    }

    #[test]
    fn will_fates() {
        let normal = |w| Close::Normal { with_will: w };
        use WillFate::*;
        for v5 in [false, true] {
            for taken in [None, Some(false), Some(true)] {
                assert_eq!(will_fate(&normal(false), v5, 0, taken), Discard);
            }
            assert_eq!(will_fate(&Close::Lost, v5, 0, None), Delayed);
            assert_eq!(will_fate(&normal(true), v5, 5, None), Delayed);
        }
        // 3.1.1: a takeover is a close without DISCONNECT.
        assert_eq!(will_fate(&Close::TakenOver, false, 0, Some(true)), Now);
        assert_eq!(will_fate(&Close::TakenOver, false, 0, Some(false)), Now);
        // 5.0: the session ended with the takeover.
        assert_eq!(will_fate(&Close::TakenOver, true, 30, Some(false)), Now);
        // 5.0: resumed by a connection that came while this one was open.
        assert_eq!(will_fate(&Close::TakenOver, true, 0, Some(true)), Discard);
        assert_eq!(will_fate(&Close::TakenOver, true, 30, Some(true)), Discard);
        // 5.0: this connection had ended first, its will due at once.
        assert_eq!(will_fate(&Close::Lost, true, 0, Some(true)), Now);
        assert_eq!(will_fate(&normal(true), true, 0, Some(true)), Now);
        assert_eq!(will_fate(&Close::Lost, true, 30, Some(true)), Discard);
    }

    /// Every idle connection keeps its task's future alive: keep it small (the boxed
    /// CONNECT and closing phases are not part of it).
    #[test]
    fn connection_future_stays_small() {
        let shared = Shared::new(Default::default(), Default::default(), None);
        let (stream, _peer) = tokio::io::duplex(16);
        let ctx = ConnectionContext {
            shared,
            peer: Arc::from(""),
            listener: Arc::from(""),
            tcp_fd: None,
        };
        let future = run(ctx, stream);
        let conn = std::mem::size_of::<Connection<tokio::net::TcpStream>>();
        let size = std::mem::size_of_val(&future);
        eprintln!("run future {size} B, Connection {conn} B");
        fn ret_size<A, F: FnOnce(A) -> R, R>(_f: &F) -> usize {
            std::mem::size_of::<R>()
        }
        type C = Connection<tokio::io::DuplexStream>;
        eprintln!(
            "serve {} flush {} wait {}",
            ret_size(&|c: &'static mut C| c.serve()),
            ret_size(&|c: &'static mut C| c.flush_unless_commanded()),
            ret_size(&|c: &'static mut C| c.wait_for_input(1)),
        );
        type I = Io<tokio::io::DuplexStream>;
        eprintln!(
            "io.flush {} read_on_demand {} woken {}",
            ret_size(&|c: &'static mut I| c.flush()),
            ret_size(&|c: &'static mut I| read_on_demand(&mut c.stream, &mut c.rbuf)),
            ret_size(&|c: &'static Signals| c.woken()),
        );

        // Debug build: 1160 bytes with the will boxed (it was inline before), 328 with
        // the connection state boxed, the CONNECT phase split out and only a `Notify`
        // and the socket waited on (no keep-alive timer, no shutdown receiver), 200
        // with a wake flag instead of the `Notify` and `run` no longer an `async fn`,
        // 136 with the flush and the idle wait as poll functions. With tokio's task
        // header and trailer that makes a 256-byte task (it was 2.7 KiB).
        assert!(size <= 160, "{size}");
    }

    /// A client on one end of an in-memory stream, the connection task on the other.
    struct TestClient {
        io: tokio::io::DuplexStream,
        buf: BytesMut,
        decoder: Decoder,
        version: ProtocolVersion,
    }

    impl TestClient {
        fn start(shared: &Arc<Shared>, version: ProtocolVersion) -> Self {
            let (io, server) = tokio::io::duplex(64 * 1024);
            let ctx = ConnectionContext {
                shared: shared.clone(),
                peer: Arc::from("test"),
                listener: Arc::from("test"),
                tcp_fd: None,
            };
            tokio::spawn(run(ctx, server));
            TestClient {
                io,
                buf: BytesMut::new(),
                decoder: Decoder::with_version(version, u32::MAX),
                version,
            }
        }

        async fn send(&mut self, packet: Packet) {
            let mut out = BytesMut::new();
            encode(&packet, self.version, &mut out).unwrap();
            self.io.write_all(&out).await.unwrap();
        }

        /// The next packet; None once the broker closed the stream.
        async fn next(&mut self) -> Option<Packet> {
            let read = async {
                loop {
                    if let Some(p) = self.decoder.decode(&mut self.buf).unwrap() {
                        return Some(p);
                    }
                    if self.io.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                        return None;
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .expect("no packet within 5 s")
        }

        async fn connect(&mut self, bridge: bool, properties: Properties) {
            self.send(Packet::Connect(Box::new(Connect {
                protocol: self.version,
                clean_start: true,
                keep_alive: 60,
                client_id: "c".into(),
                will: None,
                username: None,
                password: None,
                properties,
                bridge,
            })))
            .await;
        }

        async fn subscribe(&mut self, filter: &str) {
            self.send(Packet::Subscribe(Subscribe {
                pkid: 1,
                filters: vec![crate::codec::SubscribeFilter {
                    filter: filter.into(),
                    options: Default::default(),
                }],
                ..Default::default()
            }))
            .await;
            assert!(matches!(self.next().await, Some(Packet::SubAck(_))));
        }
    }

    fn publish(topic: &str, payload: &'static [u8], qos: QoS, retain: bool) -> Packet {
        Packet::Publish(Publish {
            qos,
            retain,
            topic: ByteStr::from(topic),
            pkid: if qos == QoS::AtMostOnce { 0 } else { 7 },
            payload: Bytes::from_static(payload),
            ..Default::default()
        })
    }

    /// The Python side of enhanced authentication: every hook request, with the
    /// sender for its answer, goes to the test.
    fn hook_requests(
        shared: &Arc<Shared>,
    ) -> tokio::sync::mpsc::UnboundedReceiver<(Option<Bytes>, oneshot::Sender<AuthStep>)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let events = shared.events.clone();
        std::thread::spawn(move || {
            while let Some(batch) = events.wait(Duration::from_millis(20)) {
                for event in batch {
                    if let Event::EnhancedAuth { data, reply, .. } = event {
                        let _ = tx.send((data, reply));
                    }
                }
            }
        });
        rx
    }

    fn anonymous_broker() -> Arc<Shared> {
        let users = super::super::auth::Users {
            allow_anonymous: true,
            ..Default::default()
        };
        Shared::new(Default::default(), users, None)
    }

    /// A v5 client past its CONNACK.
    async fn connected_v5(shared: &Arc<Shared>) -> TestClient {
        let mut client = TestClient::start(shared, ProtocolVersion::V5);
        client.connect(false, Properties::default()).await;
        assert!(matches!(client.next().await, Some(Packet::ConnAck(_))));
        client
    }

    fn enhanced_auth_broker() -> Arc<Shared> {
        let config = super::super::config::Config {
            enhanced_auth_methods: vec!["M".into()],
            ..Default::default()
        };
        let users = super::super::auth::Users {
            allow_anonymous: true,
            ..Default::default()
        };
        Shared::new(config, users, None)
    }

    /// Connected with method "M"; the CONNECT step already answered.
    async fn authenticated(
        shared: &Arc<Shared>,
    ) -> (
        TestClient,
        tokio::sync::mpsc::UnboundedReceiver<(Option<Bytes>, oneshot::Sender<AuthStep>)>,
    ) {
        let mut hook = hook_requests(shared);
        let mut client = TestClient::start(shared, ProtocolVersion::V5);
        let props = Properties {
            authentication_method: Some("M".into()),
            ..Default::default()
        };
        client.connect(false, props).await;
        let (_, reply) = hook.recv().await.unwrap();
        reply.send(AuthStep::Success(None)).unwrap();
        match client.next().await {
            Some(Packet::ConnAck(a)) => assert_eq!(a.code, ReasonCode::SUCCESS),
            other => panic!("{other:?}"),
        }
        (client, hook)
    }

    fn reauth(data: &'static [u8]) -> Packet {
        Packet::Auth(auth_packet(
            ReasonCode::RE_AUTHENTICATE,
            "M",
            Some(Bytes::from_static(data)),
        ))
    }

    #[tokio::test]
    async fn packets_flow_while_a_reauthentication_waits_for_the_hook() {
        let shared = enhanced_auth_broker();
        let (mut client, mut hook) = authenticated(&shared).await;
        client.subscribe("t").await;
        client.send(reauth(b"again")).await;
        let (data, reply) = hook.recv().await.unwrap();
        assert_eq!(data.as_deref(), Some(&b"again"[..]));
        // MQTT 5 §4.12.1: other packets keep flowing meanwhile.
        client
            .send(publish("t", b"x", QoS::AtMostOnce, false))
            .await;
        assert!(matches!(client.next().await, Some(Packet::Publish(p)) if p.payload == "x"));
        client.send(Packet::PingReq).await;
        assert_eq!(client.next().await, Some(Packet::PingResp));
        reply
            .send(AuthStep::Success(Some(Bytes::from_static(b"ok"))))
            .unwrap();
        match client.next().await {
            Some(Packet::Auth(a)) => {
                assert_eq!(a.code, ReasonCode::SUCCESS);
                assert_eq!(a.properties.authentication_method.as_deref(), Some("M"));
                assert_eq!(
                    a.properties.authentication_data.as_deref(),
                    Some(&b"ok"[..])
                );
            }
            other => panic!("{other:?}"),
        }
        shared.events.close();
    }

    #[tokio::test]
    async fn an_auth_before_the_hooks_answer_is_a_protocol_error() {
        let shared = enhanced_auth_broker();
        let (mut client, mut hook) = authenticated(&shared).await;
        client.send(reauth(b"one")).await;
        let (_, reply) = hook.recv().await.unwrap();
        client.send(reauth(b"two")).await;
        match client.next().await {
            Some(Packet::Disconnect(d)) => assert_eq!(d.code, ReasonCode::PROTOCOL_ERROR),
            other => panic!("{other:?}"),
        }
        assert_eq!(client.next().await, None);
        // The late answer goes nowhere.
        let _ = reply.send(AuthStep::Success(None));
        shared.events.close();
    }

    /// Retained messages on subscribe go through the session queue a step at a time:
    /// far more than its bound all arrive, in topic order, none dropped.
    #[tokio::test]
    async fn retained_messages_beyond_the_queue_bound_all_arrive_in_order() {
        let config = super::super::config::Config {
            max_queued_messages: 8,
            ..Default::default()
        };
        let users = super::super::auth::Users {
            allow_anonymous: true,
            ..Default::default()
        };
        let shared = Shared::new(config, users, None);
        for i in (0..300).rev() {
            shared.route(Message::new(
                ByteStr::from(format!("r/{i:03}").as_str()),
                Bytes::from_static(b"x"),
                QoS::AtMostOnce,
                true,
            ));
        }
        let mut client = connected_v5(&shared).await;
        client.subscribe("r/#").await;
        for i in 0..300 {
            match client.next().await {
                Some(Packet::Publish(p)) => {
                    assert_eq!(p.topic.as_str(), format!("r/{i:03}"));
                    assert!(p.retain);
                }
                other => panic!("{other:?}"),
            }
        }
        client.send(Packet::PingReq).await;
        assert!(matches!(client.next().await, Some(Packet::PingResp)));
        let stats = &shared.stats.messages_dropped;
        assert_eq!(stats.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_v311_bridge_gets_no_local_and_retain_as_published() {
        let shared = enhanced_auth_broker();
        let mut client = TestClient::start(&shared, ProtocolVersion::V311);
        client.connect(true, Properties::default()).await;
        assert!(
            matches!(client.next().await, Some(Packet::ConnAck(a)) if a.code == ReasonCode::SUCCESS)
        );
        client.subscribe("t").await;
        client
            .send(publish("t", b"own", QoS::AtLeastOnce, false))
            .await;
        assert!(matches!(client.next().await, Some(Packet::PubAck(_))));
        // Its own message did not come back: the next delivery is the broker's.
        let mut m = Message::new(
            ByteStr::from("t"),
            Bytes::from_static(b"kept"),
            QoS::AtMostOnce,
            true,
        );
        m.origin = Some(Arc::from("someone"));
        shared.route(m);
        match client.next().await {
            Some(Packet::Publish(p)) => {
                assert_eq!(p.payload, "kept");
                assert!(p.retain, "retain as published");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn acknowledgements_in_one_read_complete_in_order_and_pkid_0_is_refused() {
        let shared = anonymous_broker();
        let mut client = connected_v5(&shared).await;
        client
            .send(Packet::Subscribe(Subscribe {
                pkid: 1,
                filters: vec![crate::codec::SubscribeFilter {
                    filter: "t".into(),
                    options: crate::codec::SubscribeOptions {
                        qos: QoS::AtLeastOnce,
                        ..Default::default()
                    },
                }],
                ..Default::default()
            }))
            .await;
        assert!(matches!(client.next().await, Some(Packet::SubAck(_))));
        for _ in 0..4 {
            shared.route(injected("t", Bytes::from_static(b"m"), QoS::AtLeastOnce, false).unwrap());
        }
        let mut ids = Vec::new();
        for _ in 0..4 {
            match client.next().await {
                Some(Packet::Publish(p)) => ids.push(p.pkid),
                other => panic!("{other:?}"),
            }
        }
        let inflight = || {
            let cell = shared.router.lock().sessions.get("c").unwrap().clone();
            let n = cell.state.lock().session.inflight_len();
            n
        };
        assert_eq!(inflight(), 4);
        // Plain PUBACKs, one with a reason code (the decoder's), more plain ones and a
        // PINGREQ, in one write: all handled, in order.
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let [hi, lo] = id.to_be_bytes();
            if i == 2 {
                out.extend_from_slice(&[0x40, 0x03, hi, lo, 0x10]);
            } else {
                out.extend_from_slice(&[0x40, 0x02, hi, lo]);
            }
        }
        out.extend_from_slice(&[0xC0, 0x00]);
        client.io.write_all(&out).await.unwrap();
        assert!(matches!(client.next().await, Some(Packet::PingResp)));
        assert_eq!(inflight(), 0);
        // Packet identifier 0 is a protocol error (MQTT 5 §2.2.1), here as elsewhere.
        client.io.write_all(&[0x40, 0x02, 0, 0]).await.unwrap();
        match client.next().await {
            Some(Packet::Disconnect(d)) => assert_eq!(d.code, ReasonCode::PROTOCOL_ERROR),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn deliveries_the_codec_encodes_keep_their_place_in_a_batch() {
        let shared = anonymous_broker();
        let mut client = connected_v5(&shared).await;
        client.subscribe("t").await;
        // Queued together (this test's task does not yield in between), so the
        // connection takes them in one batch: written directly, through the codec
        // (a v5 property), directly again.
        for (i, payload) in [&b"1"[..], b"2", b"3"].into_iter().enumerate() {
            let mut m = injected("t", Bytes::from_static(payload), QoS::AtMostOnce, false).unwrap();
            if i == 1 {
                m.properties = Some(Box::new(Properties {
                    content_type: Some("text/plain".into()),
                    ..Default::default()
                }));
            }
            shared.route(m);
        }
        for want in ["1", "2", "3"] {
            match client.next().await {
                Some(Packet::Publish(p)) => {
                    assert_eq!(p.payload, want);
                    let ct = p.properties.and_then(|pr| pr.content_type);
                    assert_eq!(ct.is_some(), want == "2", "{want}: {ct:?}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn acknowledgements_are_the_bytes_the_codec_writes() {
        let shared = Shared::new(Default::default(), Default::default(), None);
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for first in [0x40u8, 0x50, 0x62, 0x70] {
                for code in [ReasonCode::SUCCESS, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND] {
                    let (stream, _peer) = tokio::io::duplex(16);
                    let mut io = Io {
                        stream,
                        rbuf: BytesMut::new(),
                        wbuf: BytesMut::new(),
                        segments: Vec::new(),
                        decoder: Decoder::with_version(version, u32::MAX),
                        shared: shared.clone(),
                        version,
                        write_failed: false,
                        tcp_fd: None,
                    };
                    io.send_ack(first, 0x1234, code);
                    let ack = PubAck {
                        pkid: 0x1234,
                        code,
                        ..Default::default()
                    };
                    let packet = match first {
                        0x40 => Packet::PubAck(ack),
                        0x50 => Packet::PubRec(ack),
                        0x62 => Packet::PubRel(ack),
                        _ => Packet::PubComp(ack),
                    };
                    let mut want = BytesMut::new();
                    encode(&packet, version, &mut want).unwrap();
                    assert_eq!(io.wbuf, want, "{version:?} {first:#x} {code:?}");
                }
            }
        }
    }

    #[test]
    fn plain_publishes_are_the_bytes_the_codec_writes() {
        let topics = ["t".to_string(), "a/b/c".repeat(30), "x".repeat(300)];
        // Remaining lengths on both sides of the one/two/three-byte boundaries.
        let payloads = [
            0usize, 1, 60, 120, 124, 125, 126, 127, 128, 16_000, 16_380, 16_383,
        ];
        for v5 in [false, true] {
            let version = if v5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V311
            };
            for topic in &topics {
                for &len in &payloads {
                    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                        for retain in [false, true] {
                            let d = Delivery {
                                message: Arc::new(Message::new(
                                    ByteStr::from(topic.as_str()),
                                    Bytes::from(vec![0xA5; len]),
                                    QoS::ExactlyOnce,
                                    !retain,
                                )),
                                qos,
                                retain,
                                subscription_ids: vec![],
                            };
                            let pkid = if qos == QoS::AtMostOnce { 0 } else { 0x1234 };
                            let mut want = BytesMut::new();
                            let publish = Packet::Publish(publish_for(pkid, &d, false));
                            encode(&publish, version, &mut want).unwrap();
                            let mut got = BytesMut::from(&b"before"[..]);
                            assert!(write_plain_publish(&mut got, v5, usize::MAX, pkid, &d));
                            assert_eq!(&got[..6], b"before");
                            assert_eq!(got[6..], want[..], "v5 {v5} {qos:?} {len} B");
                            let mut none = BytesMut::new();
                            assert!(
                                !write_plain_publish(&mut none, v5, want.len() - 1, pkid, &d),
                                "above the client's maximum packet size"
                            );
                            assert!(none.is_empty());
                        }
                    }
                }
            }
        }
        // What needs the codec: a large payload, and v5 properties, expiry or ids.
        let mut m = Message::new(
            ByteStr::from("t"),
            Bytes::from(vec![0; SEGMENT_PAYLOAD]),
            QoS::AtMostOnce,
            false,
        );
        let mut d = Delivery {
            message: Arc::new(m.clone()),
            qos: QoS::AtMostOnce,
            retain: false,
            subscription_ids: vec![],
        };
        let mut out = BytesMut::new();
        assert!(!write_plain_publish(&mut out, false, usize::MAX, 0, &d));
        m.payload = Bytes::from_static(b"p");
        d.message = Arc::new(m.clone());
        assert!(write_plain_publish(&mut out, true, usize::MAX, 0, &d));
        d.subscription_ids = vec![7];
        assert!(!write_plain_publish(&mut out, true, usize::MAX, 0, &d));
        assert!(
            write_plain_publish(&mut out, false, usize::MAX, 0, &d),
            "v3 has no ids"
        );
        d.subscription_ids.clear();
        m.set_expiry(Some(60), Instant::now());
        d.message = Arc::new(m.clone());
        assert!(!write_plain_publish(&mut out, true, usize::MAX, 0, &d));
        m.expires_at = None;
        m.properties = Some(Box::new(Properties {
            content_type: Some("text/plain".into()),
            ..Default::default()
        }));
        d.message = Arc::new(m);
        assert!(!write_plain_publish(&mut out, true, usize::MAX, 0, &d));
    }

    #[test]
    fn peeks_the_protocol_level_of_a_connect() {
        let v5 = [0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60];
        assert_eq!(peek_connect_level(&v5), Some(ProtocolVersion::V5));
        let v31 = [0x10, 12, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3];
        assert_eq!(peek_connect_level(&v31), Some(ProtocolVersion::V31));
        let bridge_v5 = [0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', 0x85, 2, 0, 60];
        assert_eq!(peek_connect_level(&bridge_v5), Some(ProtocolVersion::V5));
        let bridge_v311 = [0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', 0x84, 2, 0, 60];
        assert_eq!(
            peek_connect_level(&bridge_v311),
            Some(ProtocolVersion::V311)
        );
        assert_eq!(peek_connect_level(&[0x30, 0]), None);
        assert_eq!(peek_connect_level(&[0x10]), None);
    }
}
#[cfg(test)]
mod parked_size {
    use super::*;

    /// What a parked idle connection keeps (see `park.rs`): each of these is one
    /// allocation per connection, sized to stay in the allocator's size class (glibc:
    /// the request plus 8, rounded up to 16; an `Arc` adds 16 bytes of counts).
    #[test]
    fn parked_state_stays_small() {
        let parked = std::mem::size_of::<Parked>();
        let cell = std::mem::size_of::<SessionCell>();
        let signals = std::mem::size_of::<Signals>();
        eprintln!("Parked {parked} B, SessionCell {cell} B, Signals {signals} B");
        let shared = Shared::new(Default::default(), Default::default(), None);
        let (stream, _peer) = tokio::io::duplex(16);
        let ctx = ConnectionContext {
            shared,
            peer: Arc::from(""),
            listener: Arc::from(""),
            tcp_fd: None,
        };
        let h = handshake(ctx, stream);
        eprintln!("handshake future {} B", std::mem::size_of_val(&h));
        // The parked entry (with its 4-byte socket) in a 48-byte chunk.
        assert!(parked <= 32, "{parked}");
        // The session cell in a 240-byte chunk, the signals in an 80-byte one.
        assert!(cell <= 216, "{cell}");
        assert!(std::mem::size_of::<Link>() <= 48);
        assert!(signals <= 56, "{signals}");
    }
}
