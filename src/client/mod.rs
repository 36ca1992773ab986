//! The tokio MQTT client core: connection task, session state, reconnect, transports.
//!
//! [`Client`] is what a face (the paho facade, later the asyncio client) drives. Every
//! method is callable from any thread and never blocks on the network: publishing
//! encodes straight into the session's write buffer under a short lock and wakes the
//! connection task, which writes everything pending in one go. Results come back as
//! [`Event`]s in an [`EventQueue`].
//!
//! Lock order: `task` before `session` before the event queue's lock; no lock is ever
//! held across an `.await` or while Python code runs.

pub mod completion;
mod connection;
mod direct_read;
pub mod event;
mod notifier;
#[cfg(target_os = "linux")]
mod plain_tcp;
pub mod props;
mod proxy;
pub mod session;
pub mod tls;
pub mod transport;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub use completion::Completion;
pub use connection::MAX_PACKET_SIZE;
pub use event::{Event, EventQueue, Message, Wait, DEFAULT_EVENT_LIMIT};
pub use session::Session;
pub use tls::TlsOptions;
pub use transport::{ConnectError, ProxyKind, ProxyOptions, TransportKind, TransportOptions};

use crate::codec::{ByteStr, Connect, Properties, QoS, SubscribeFilter};

/// Everything `connect()` needs; kept for `reconnect()`.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The CONNECT packet to send (protocol version, keepalive, client id, will, ...).
    pub connect: Connect,
    pub transport: TransportOptions,
    /// Bounds resolving, connecting and the TLS/WebSocket handshakes.
    pub timeout: Duration,
}

pub(crate) struct Shared {
    pub(crate) session: Mutex<Session>,
    pub(crate) events: EventQueue,
    pub(crate) wake_writer: Notify,
    /// The task of the current connection (or connection attempt).
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// A connection generation whose end is not reported: one that `connect()`
    /// replaced while it was still writing its DISCONNECT.
    quiet_end: AtomicU64,
    last: Mutex<Option<ConnectOptions>>,
    /// Direct writes, see `Shared::flush`. Read and written only with `session` locked.
    pub(crate) direct: connection::DirectWrite,
    /// Direct reads by waiting threads, see `Client::wait`.
    pub(crate) direct_read: direct_read::DirectRead,
}

/// Ends a task when dropped (a plain `JoinHandle` would detach it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connect in progress; the caller waits on it in short slices so it can check for
/// signals in between.
pub struct PendingConnect {
    rx: mpsc::Receiver<Result<(), ConnectError>>,
    abort: tokio::task::AbortHandle,
}

impl PendingConnect {
    /// `None` while still connecting after `timeout`.
    pub fn wait(&self, timeout: Duration) -> Option<Result<(), ConnectError>> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(ConnectError::Cancelled)),
        }
    }

    /// Gives up (for instance on KeyboardInterrupt): the attempt is aborted.
    pub fn cancel(self) {
        self.abort.abort();
    }
}

/// Dropping it ends its connection task.
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    pub fn new() -> std::io::Result<Self> {
        Self::with_event_limit(DEFAULT_EVENT_LIMIT)
    }

    pub fn with_event_limit(limit: usize) -> std::io::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                session: Mutex::new(Session::new()),
                events: EventQueue::new(limit)?,
                wake_writer: Notify::new(),
                task: Mutex::new(None),
                quiet_end: AtomicU64::new(u64::MAX),
                last: Mutex::new(None),
                direct: connection::DirectWrite::default(),
                direct_read: direct_read::DirectRead::default(),
            }),
        })
    }

    pub fn events(&self) -> &EventQueue {
        &self.shared.events
    }

    /// Blocks the calling (non-runtime) thread until an event is pending, `wake()` is
    /// called or `timeout` passes, like [`EventQueue::wait`]. On a plain TCP connection
    /// this thread meanwhile reads and handles what arrives on the socket itself (see
    /// `direct_read`): an incoming message then wakes only this thread, not a runtime
    /// worker that would wake this thread in turn. Only while waits are long, though: a
    /// thread that waits only briefly between messages (a stream of them) leaves the
    /// reading to the connection task, which reads them in batches meanwhile, rather
    /// than spend a few system calls of its own per message. Nor while more than one
    /// of our QoS 1/2 messages is outstanding: the connection task then answers each
    /// acknowledgement with the next queued message at once, while this thread hands
    /// the completions to the face (reading here would put the face's work between
    /// every acknowledgement and the next message). Only on Linux, where faces read the
    /// socket directly at all (see `event::EventQueue::step_aside`): elsewhere the
    /// connection task is the only reader and this thread sleeps until it hands over
    /// events.
    pub fn wait(&self, timeout: Duration) -> Wait {
        let start = Instant::now();
        let direct = cfg!(target_os = "linux")
            && self.shared.direct_read.last_wait_was_long()
            && self.shared.session.lock().outgoing_len() <= 1;
        let w = if direct {
            self.wait_reading(start + timeout)
        } else {
            if self.shared.events.task_is_away() {
                // This thread stops reading: the connection task must not wait for its
                // lease to run out first.
                self.shared.direct_read.nudge.notify_one();
            }
            self.shared.events.wait(timeout)
        };
        self.shared.direct_read.waited(start.elapsed());
        w
    }

    fn wait_reading(&self, deadline: Instant) -> Wait {
        let events = &self.shared.events;
        // Counted as a reader throughout, not only while polling: a connection task
        // woken by the same bytes as this thread's poll then leaves them to this thread
        // (and, woken for nothing twice, steps aside) instead of racing it for them.
        events.enter_reading();
        let w = self.poll_and_read(deadline);
        if events.leave_reading() && self.shared.read_until_idle().is_none() {
            // Bytes the connection task left to this thread: it cannot read them after
            // all, the task must.
            self.shared.direct_read.nudge.notify_one();
        }
        w.unwrap_or_else(|| events.wait(deadline.saturating_duration_since(Instant::now())))
    }

    /// `wait_reading`'s loop; None when this thread cannot read directly now.
    fn poll_and_read(&self, deadline: Instant) -> Option<Wait> {
        let events = &self.shared.events;
        loop {
            let direct = self.shared.read_direct();
            if let Some(w) = events.take_woken() {
                return Some(w);
            }
            let fd = match direct {
                // Until the socket would block: a partial packet was read.
                direct_read::Direct::Read => continue,
                direct_read::Direct::Idle(fd) => fd,
                direct_read::Direct::Unavailable => return None,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(Wait::TimedOut);
            }
            if let Some(w) = events.begin_poll() {
                return Some(w);
            }
            direct_read::poll_socket_and_notifier(fd, events.notifier_fd(), left);
            events.end_poll();
        }
    }

    /// (an event-loop face) A duplicate of the current plain-TCP connection's socket to
    /// watch for readability, or None (no connection, or another transport). From now
    /// on the connection task leaves reading to [`read_socket`](Self::read_socket),
    /// called when it is readable, until [`unwatch_socket`](Self::unwatch_socket) or
    /// `read_socket` returning false. The caller closes the duplicate once it stopped
    /// watching it; when the connection ends, the socket is shut down (it reads as end
    /// of stream), so the duplicate never keeps a connection open.
    pub fn watch_socket(&self) -> Option<i32> {
        self.shared.watch_fd()
    }

    /// Reads and handles what the watched socket holds, without blocking. False when
    /// this is not possible now (the connection ended, the event queue is full, reading
    /// is paused): the watch has ended, and the connection task reads meanwhile.
    pub fn read_socket(&self) -> bool {
        self.shared.read_watched()
    }

    /// Ends the watch begun by `watch_socket` (what the socket holds is read now or by
    /// the connection task).
    pub fn unwatch_socket(&self) {
        self.shared.unwatch();
    }

    /// Runs `f` on the session, then hands its events to the queue and wakes the writer.
    fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let mut s = self.shared.session.lock();
        let r = f(&mut s);
        self.shared.flush(&mut s);
        r
    }

    pub fn set_max_inflight(&self, n: usize) {
        self.with_session(|s| s.set_max_inflight(n));
    }
    pub fn set_max_queued(&self, n: usize) {
        self.with_session(|s| s.set_max_queued(n));
    }
    pub fn set_manual_ack(&self, on: bool) {
        self.with_session(|s| s.set_manual_ack(on));
    }
    /// See [`Session::set_hold_pubrec`].
    pub fn set_hold_pubrec(&self, on: bool) {
        self.with_session(|s| s.set_hold_pubrec(on));
    }
    /// Sends the PUBRECs held for these message ids (see [`Session::release_pubrec`]).
    pub fn release_pubrecs(&self, mids: &[u16]) {
        self.with_session(|s| {
            for &mid in mids {
                s.release_pubrec(mid);
            }
        });
    }
    pub fn set_log_packets(&self, on: bool) {
        self.with_session(|s| s.set_log_packets(on));
    }
    /// Off: packets above the server's v5 Maximum Packet Size are sent anyway (paho).
    pub fn set_enforce_max_packet_size(&self, on: bool) {
        self.with_session(|s| s.set_enforce_max_packet_size(on));
    }
    pub fn set_resolve_topic_aliases(&self, on: bool) {
        self.with_session(|s| s.set_resolve_topic_aliases(on));
    }
    /// On: a v5 server DISCONNECT without reason code / properties is reported with
    /// those fields absent (paho-mqtt's None) instead of their defaults.
    /// On: incoming PUBLISH packets whose topic is not valid UTF-8 are delivered with
    /// the raw topic (paho-mqtt does) instead of closing the connection as malformed.
    /// Takes effect from the next connection.
    pub fn set_accept_invalid_topics(&self, on: bool) {
        self.with_session(|s| s.set_accept_invalid_topics(on));
    }
    pub fn set_report_absent_disconnect_fields(&self, on: bool) {
        self.with_session(|s| s.set_report_absent_disconnect_fields(on));
    }
    /// While paused the connection task sends no PINGREQ (paho pings only while a loop
    /// function runs).
    pub fn set_keepalive_paused(&self, paused: bool) {
        self.with_session(|s| s.set_keepalive_paused(paused, Instant::now()));
        // The writer sleeps until the old deadline; let it recompute.
        self.shared.wake_writer.notify_one();
    }
    pub fn is_connected(&self) -> bool {
        self.shared.session.lock().is_connected()
    }

    /// Closes any current connection (without DISCONNECT and without an event) and
    /// starts opening a new one on the runtime. A not yet drained `Disconnected` event
    /// of the replaced connection is dropped: paho gives no `on_disconnect` for the
    /// connection `reconnect()` replaces.
    pub fn start_connect(&self, opts: ConnectOptions) -> PendingConnect {
        self.spawn_connect(opts, false, false)
    }

    /// Like [`start_connect`](Self::start_connect), but the new connection writes
    /// nothing (not even CONNECT) until [`release_output`](Self::release_output): what
    /// paho-mqtt does when connect() runs while its loop thread sleeps (the loop thread
    /// then replaces that connection with its own).
    pub fn start_connect_held(&self, opts: ConnectOptions) -> PendingConnect {
        self.spawn_connect(opts, false, true)
    }

    /// Lets a connection opened by `start_connect_held` write what it has queued.
    pub fn release_output(&self) {
        self.with_session(|s| s.set_output_held(false, Instant::now()));
        self.shared.wake_writer.notify_one();
    }

    /// Like [`start_connect`](Self::start_connect) for callers that do not block (an
    /// asyncio face): a failure arrives as `Event::ConnectFailed`, success as the usual
    /// `Event::ConnAck`.
    pub fn start_connect_nowait(&self, opts: ConnectOptions) {
        drop(self.spawn_connect(opts, true, false));
    }

    fn spawn_connect(
        &self,
        opts: ConnectOptions,
        report_failure: bool,
        hold_output: bool,
    ) -> PendingConnect {
        // A DISCONNECT asked for just before is still written before the old connection
        // goes (paho writes it synchronously), so the broker does not publish the will.
        let previous = self.shared.task.lock().take();
        let finishing = {
            let s = self.shared.session.lock();
            (s.state() == session::ConnState::Disconnecting).then(|| s.generation())
        };
        match finishing {
            Some(g) => self.shared.quiet_end.store(g, Ordering::Relaxed),
            None => {
                if let Some(t) = &previous {
                    t.abort();
                }
                self.close();
            }
        }
        self.shared
            .events
            .remove_where(|e| matches!(e, Event::Disconnected { .. }));
        *self.shared.last.lock() = Some(opts.clone());
        let (tx, rx) = mpsc::sync_channel(1);
        let shared = self.shared.clone();
        let mut task = self.shared.task.lock();
        let join = crate::runtime::handle().spawn(async move {
            if let (Some(g), Some(old)) = (finishing, previous) {
                // Aborted with this attempt (Ctrl-C, close()) or after the grace period.
                let mut old = AbortOnDrop(old);
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut old.0).await;
                drop(old);
                let mut s = shared.session.lock();
                if s.generation() == g {
                    s.on_connection_lost();
                }
            }
            let opened =
                match tokio::time::timeout(opts.timeout, transport::open(&opts.transport)).await {
                    Err(_) => Err(ConnectError::Timeout),
                    Ok(r) => r,
                };
            let stream = match opened {
                Ok(s) => s,
                Err(e) => {
                    if report_failure {
                        let failure = event::ConnectFailure(Arc::new(e));
                        shared.events.push(Event::ConnectFailed(failure));
                    } else {
                        let _ = tx.send(Err(e));
                    }
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
                if hold_output {
                    s.set_output_held(true, Instant::now());
                }
                shared.flush_events(&mut s);
                g
            };
            let _ = tx.send(Ok(()));
            connection::run(shared, generation, stream, version, max_packet_size).await;
        });
        let abort = join.abort_handle();
        *task = Some(join);
        PendingConnect { rx, abort }
    }

    /// `start_connect` with the last options; `None` if there were none.
    pub fn start_reconnect(&self) -> Option<PendingConnect> {
        let last = self.shared.last.lock().clone()?;
        Some(self.start_connect(last))
    }

    /// Blocking connect for plain-Rust users and tests (not for threads holding the GIL).
    pub fn connect_blocking(&self, opts: ConnectOptions) -> Result<(), ConnectError> {
        let pending = self.start_connect(opts);
        loop {
            if let Some(r) = pending.wait(Duration::from_secs(3600)) {
                return r;
            }
        }
    }

    /// Abrupt close: no DISCONNECT (so the broker publishes the will) and no event.
    pub fn close(&self) {
        let task = self.shared.task.lock().take();
        if let Some(t) = task {
            t.abort();
        }
        let mut s = self.shared.session.lock();
        if s.state() != session::ConnState::Disconnected {
            s.on_connection_lost();
        }
        self.shared.flush_events(&mut s);
    }

    /// `done`: a completion the core marks done itself instead of reporting an
    /// `Event::Published` (see [`Completion`]).
    pub fn publish(
        &self,
        topic: ByteStr,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Option<Box<Properties>>,
        done: Option<Arc<Completion>>,
    ) -> (i32, u16) {
        self.with_session(|s| s.publish_completing(topic, payload, qos, retain, properties, done))
    }

    /// See [`Session::set_report_completed`].
    pub fn set_report_completed(&self, on: bool) {
        self.shared.session.lock().set_report_completed(on);
    }

    /// Messages published with a completion that is not done yet.
    pub fn pending_completions(&self) -> usize {
        self.shared.session.lock().pending_completions()
    }

    pub fn subscribe(&self, filters: Vec<SubscribeFilter>, properties: Properties) -> (i32, u16) {
        self.with_session(|s| s.subscribe(filters, properties))
    }

    pub fn unsubscribe(&self, filters: Vec<String>, properties: Properties) -> (i32, u16) {
        self.with_session(|s| s.unsubscribe(filters, properties))
    }

    pub fn disconnect(&self, code: u8, properties: Properties) -> i32 {
        self.with_session(|s| s.disconnect(code, properties))
    }

    pub fn drop_out_messages(&self) -> Vec<u16> {
        self.with_session(|s| s.drop_out_messages())
    }

    pub fn ack(&self, mid: u16, qos: u8) -> i32 {
        self.with_session(|s| s.ack(mid, qos))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The task holds the other reference to `Shared`; ending it frees the socket.
        if let Some(t) = self.shared.task.lock().take() {
            t.abort();
        }
    }
}
