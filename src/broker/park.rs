//! Parked connections: a plain-TCP connection with nothing to do gives up its task and
//! its tokio socket registration and waits as a compact record on one shared readiness
//! poller (`mio`, one thread per broker).
//!
//! Why: with thousands of idle clients the task (256 B), tokio's per-socket
//! `ScheduledIo` (256 B, cache-line padded) and the full `Connection` (~330 B) were most
//! of the broker's memory per connection. A parked connection keeps the socket in
//! `mio` (no per-socket allocation of ours beyond the map entry), its state in
//! `connection::Parked`, and its `Signals` serve as the waker that unparks it.
//!
//! A parked connection is unparked (the socket goes back to tokio and a new task runs
//! the rebuilt `Connection`) when its socket becomes readable (a packet, or the peer
//! closing), or when anything wakes its `Signals`: the router queued a message for its
//! session, a command (takeover, keep-alive expiry, administrative disconnect, broker
//! stop). Everything after that is the ordinary connection path, so wills, `$SYS`
//! counters, `clients()` and the closing reason codes are exactly those of a task that
//! never parked. Only plain TCP parks (TLS and WebSocket keep their task).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Wake, Waker};

use parking_lot::Mutex;

use super::connection::Parked;
use super::events::Level;
use super::router::Signals;
use super::shared::Shared;

/// The stream of a plain-TCP connection: the tokio socket while the connection runs,
/// `Closed` once it was taken out for parking but could not be handed over (the
/// connection then ends as lost, through the ordinary path).
pub enum TcpConn {
    Open(tokio::net::TcpStream),
    Closed,
}

impl tokio::io::AsyncRead for TcpConn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            TcpConn::Open(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            // End of stream: the connection is lost.
            TcpConn::Closed => std::task::Poll::Ready(Ok(())),
        }
    }
}

impl tokio::io::AsyncWrite for TcpConn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            TcpConn::Open(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            TcpConn::Closed => std::task::Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            TcpConn::Open(s) => std::pin::Pin::new(s).poll_flush(cx),
            TcpConn::Closed => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            TcpConn::Open(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            TcpConn::Closed => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// One parked connection: its socket, registered with the poller, and its state (one
/// allocation; the map holds a pointer).
struct Entry {
    stream: mio::net::TcpStream,
    state: Parked,
}

/// The token of the poller's own waker (connection ids start at 1 and never reach it).
const WAKER: mio::Token = mio::Token(usize::MAX);

/// The broker's poller of parked connections.
pub struct Parking {
    registry: mio::Registry,
    waker: mio::Waker,
    /// Keyed by connection id (also the mio token): an id is never reused, so a stale
    /// wake-up or readiness event can never unpark another connection.
    parked: Mutex<HashMap<u64, Box<Entry>>>,
    stopping: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Parking {
    /// Creates the poller and starts its thread. None if the platform refuses (the
    /// broker then simply never parks).
    pub fn start(shared: &Arc<Shared>) -> Option<Arc<Parking>> {
        let poll = mio::Poll::new().ok()?;
        let registry = poll.registry().try_clone().ok()?;
        let waker = mio::Waker::new(poll.registry(), WAKER).ok()?;
        let parking = Arc::new(Parking {
            registry,
            waker,
            parked: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let weak = Arc::downgrade(shared);
        let p = parking.clone();
        let thread = std::thread::Builder::new()
            .name("tmqtt-park".into())
            .spawn(move || poll_loop(poll, p, weak))
            .ok()?;
        *parking.thread.lock() = Some(thread);
        Some(parking)
    }

    /// Parks a connection. `Err` gives the stream and state back (the broker is
    /// stopping, or the socket could not be registered): the connection goes on
    /// running as a task.
    pub fn park(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        stream: std::net::TcpStream,
        state: Parked,
    ) -> Result<(), (std::net::TcpStream, Parked)> {
        let signals = state.signals().clone();
        let conn_id = signals.conn_id;
        {
            let mut parked = self.parked.lock();
            if self.stopping.load(Ordering::Acquire) {
                return Err((stream, state));
            }
            parked.insert(
                conn_id,
                Box::new(Entry {
                    stream: mio::net::TcpStream::from_std(stream),
                    state,
                }),
            );
        }
        // From here a wake-up of the connection unparks it. A wake-up that came before
        // (between the connection's last look and now) is seen here: unpark.
        let waker = Waker::from(signals.clone());
        let woken = signals
            .poll_woken(&mut std::task::Context::from_waker(&waker))
            .is_ready();
        if woken {
            self.unpark(shared, conn_id);
            return Ok(());
        }
        // Registered last, under the lock, and only if still parked: an unpark that
        // came first already took the socket back.
        let mut parked = self.parked.lock();
        if let Some(e) = parked.get_mut(&conn_id) {
            let token = mio::Token(conn_id as usize);
            if let Err(err) = self
                .registry
                .register(&mut e.stream, token, mio::Interest::READABLE)
            {
                drop(parked);
                shared.log(
                    Level::Warning,
                    format!("cannot park a connection ({err}); it keeps its task"),
                );
                self.unpark(shared, conn_id);
            }
        }
        Ok(())
    }

    /// Takes a parked connection off the poller and runs it as a task again. Nothing
    /// if it is not parked (any more).
    pub fn unpark(&self, shared: &Arc<Shared>, conn_id: u64) {
        // The task guard is taken with the entry, under the lock: `stop()` never sees
        // a connection neither parked nor counted as a task.
        let (e, guard) = {
            let mut parked = self.parked.lock();
            let Some(e) = parked.remove(&conn_id) else {
                return;
            };
            (e, shared.task_guard())
        };
        let mut e = *e;
        // Deregistering a socket that was never registered fails harmlessly.
        let _ = self.registry.deregister(&mut e.stream);
        let signals = e.state.signals();
        // The waker left in the signals is the signals themselves: a cycle to break.
        signals.clear_waker();
        // The resumed task looks at its commands and its session first, whatever
        // woke it.
        signals.rearm();
        let stream = std::net::TcpStream::from(e.stream);
        let task = super::connection::resume(shared.clone(), stream, e.state, guard);
        crate::runtime::handle().spawn(super::listener::reporting_panics(shared.clone(), task));
    }

    pub fn parked_count(&self) -> usize {
        self.parked.lock().len()
    }

    /// Ends the poller thread once the broker is stopping: every parked connection was
    /// told to stop through its signals (`Shared::begin_shutdown`) and unparked; none
    /// parks from now on. Unparks whatever is left and joins the thread if `join`.
    pub fn stop(&self, shared: &Arc<Shared>, join: bool) {
        self.stopping.store(true, Ordering::Release);
        let left: Vec<u64> = self.parked.lock().keys().copied().collect();
        for id in left {
            self.unpark(shared, id);
        }
        let _ = self.waker.wake();
        if join {
            if let Some(t) = self.thread.lock().take() {
                let _ = t.join();
            }
        }
    }
}

/// A parked connection's waker is its own `Signals`: a wake-up unparks it.
impl Wake for Signals {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            if let Some(p) = shared.parking.get() {
                p.unpark(&shared, self.conn_id);
            }
        }
    }
}

fn poll_loop(mut poll: mio::Poll, parking: Arc<Parking>, shared: Weak<Shared>) {
    let mut events = mio::Events::with_capacity(256);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        for ev in events.iter() {
            if ev.token() != WAKER {
                parking.unpark(&shared, ev.token().0 as u64);
            }
        }
        if parking.stopping.load(Ordering::Acquire) {
            return;
        }
    }
}
