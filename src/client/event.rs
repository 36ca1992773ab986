//! What the client core reports to its face (the paho facade or an asyncio face), and
//! the queue those reports wait in.
//!
//! Events hold no Python objects: properties travel in wire form and are unpacked on
//! the Python side. The queue wakes its consumer two ways: a byte on a socket pair
//! (level-triggered, for selector-based loops such as aiomqtt's) and a condition
//! variable (for blocking waits).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use super::notifier::Notifier;

use super::transport::ConnectError;
use crate::codec::ByteStr;

/// A failed connection attempt started without waiting (`Client::start_connect_nowait`).
/// Shared, not cloned: `io::Error` cannot be cloned. Equal only to itself.
#[derive(Debug, Clone)]
pub struct ConnectFailure(pub Arc<ConnectError>);

impl PartialEq for ConnectFailure {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ConnectFailure {}

/// paho-mqtt's `MQTTErrorCode` values the core produces.
pub mod rc {
    pub const SUCCESS: i32 = 0;
    pub const PROTOCOL: i32 = 2;
    pub const NO_CONN: i32 = 4;
    pub const CONN_REFUSED: i32 = 5;
    pub const CONN_LOST: i32 = 7;
    /// paho's MQTT_ERR_PAYLOAD_SIZE: larger than the server's Maximum Packet Size.
    pub const PAYLOAD_SIZE: i32 = 9;
    pub const QUEUE_SIZE: i32 = 15;
    pub const KEEPALIVE: i32 = 16;
}

/// paho's `MQTT_LOG_*` levels.
pub mod log_level {
    pub const INFO: u8 = 1;
    pub const NOTICE: u8 = 2;
    pub const WARNING: u8 = 4;
    pub const ERR: u8 = 8;
    pub const DEBUG: u8 = 16;
}

/// How [`EventQueue::wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Events,
    Woken,
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The full topic: v5 topic aliases are already resolved.
    pub topic: ByteStr,
    /// Set (and `topic` empty) for a topic that is not valid UTF-8, accepted with
    /// `set_accept_invalid_topics`.
    pub raw_topic: Option<Bytes>,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// 0 for QoS 0.
    pub mid: u16,
    pub dup: bool,
    pub properties: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `code`: the raw wire value (3.x return code 0..5, or the v5 reason code).
    ConnAck {
        session_present: bool,
        code: u8,
        properties: Option<Bytes>,
    },
    Message(Box<Message>),
    /// QoS 0: written to the socket; QoS 1: PUBACK; QoS 2: PUBCOMP (or a failing PUBREC).
    Published {
        mid: u16,
        /// The message's QoS: a QoS 0 mid may be reused while an acknowledged one is
        /// in flight (more than 65,535 queued QoS 0 messages), so the mid alone is ambiguous.
        qos: u8,
        code: u8,
        properties: Option<Bytes>,
    },
    SubAck {
        mid: u16,
        codes: Vec<u8>,
        properties: Option<Bytes>,
    },
    UnsubAck {
        mid: u16,
        codes: Vec<u8>,
        properties: Option<Bytes>,
    },
    /// `code`: 0 after our DISCONNECT; the server's v5 reason code when `from_server`;
    /// otherwise a paho `MQTTErrorCode` (see [`rc`]).
    Disconnected {
        /// With `reason_absent` (a v5 server DISCONNECT without a reason byte) it is 0.
        code: i32,
        reason_absent: bool,
        from_server: bool,
        properties: Option<Bytes>,
        error: Option<String>,
    },
    Log {
        level: u8,
        message: String,
    },
    /// Opening the transport failed (only for connects started without waiting).
    ConnectFailed(ConnectFailure),
    /// An incoming QoS 2 PUBLISH whose PUBREC waits until the face has taken this
    /// event in (see `Session::set_hold_pubrec`); the face releases it then.
    PubRecHeld {
        mid: u16,
    },
}

struct Pending {
    events: VecDeque<Event>,
    /// `wake()` was called: the next `wait` returns at once.
    woken: bool,
    /// A byte sits in the notifier socket pair.
    signalled: bool,
    /// Someone asked for the notifier's fd: only then is it kept readable while events
    /// wait. Faces that block in `wait()` never ask, and save two system calls per batch.
    armed: bool,
    /// See [`EventQueue::set_quiet_written`].
    quiet_written: bool,
    /// Threads polling the notifier fd from `Client::wait` (see `direct_read`): the
    /// notifier is kept readable for them too while events wait.
    pollers: usize,
    /// Threads reading the socket directly from `Client::wait` (polling it or reading
    /// it): the connection task leaves readable bytes to them.
    readers: usize,
    /// The connection task left readable socket data to the pollers (see
    /// [`EventQueue::defer_to_poller`]).
    deferred: bool,
    /// A face's event loop watches the socket and reads it (`Client::watch_fd`).
    watched_socket: bool,
    /// Payload bytes of the queued messages (see `MESSAGE_BYTES_LIMIT`).
    message_bytes: usize,
    /// The connection task stepped aside from the socket (see `plain_tcp`): it reads
    /// again when nudged, or once readers have been gone for its lease.
    task_away: bool,
    /// When the last reader left (see `lease_end`).
    last_read: Option<Instant>,
}

impl Pending {
    /// Whoever may be watching the notifier fd.
    fn watched(&self) -> bool {
        self.armed || self.pollers > 0
    }

    /// A face reads the socket now: a thread inside `Client::wait`'s reading, or an
    /// event loop watching it.
    #[cfg(target_os = "linux")]
    fn face_reads(&self) -> bool {
        self.readers > 0 || self.watched_socket
    }
}

/// Events waiting for the face to drain them, in arrival order.
///
/// Policy when full: the connection task stops reading from the socket while more
/// than `limit` events, or messages of more than `MESSAGE_BYTES_LIMIT` payload bytes,
/// wait (see [`EventQueue::wait_for_room`]), so TCP flow control pushes back on the
/// broker instead of memory growing or messages being dropped.
pub struct EventQueue {
    pending: Mutex<Pending>,
    ready: Condvar,
    room: Notify,
    limit: AtomicUsize,
    /// (asyncio face) Set by the face while one of its consumers is full.
    paused: AtomicBool,
    notifier: Notifier,
}

thread_local! {
    /// Set while this thread reads the socket for a face that drains the queue right
    /// after (see [`EventQueue::quietly`]).
    static DRAINS_NEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Default bound of [`EventQueue`] before the reader pauses.
pub const DEFAULT_EVENT_LIMIT: usize = 65_536;

/// The reader also pauses while the queued messages' payloads exceed this many bytes:
/// with large messages the event bound alone would let it run gigabytes ahead of a slow
/// consumer.
pub const MESSAGE_BYTES_LIMIT: usize = 64 * 1024 * 1024;

fn payload_len(e: &Event) -> usize {
    match e {
        Event::Message(m) => m.payload.len(),
        _ => 0,
    }
}

impl EventQueue {
    pub fn new(limit: usize) -> std::io::Result<Self> {
        let notifier = Notifier::new()?;
        Ok(Self {
            pending: Mutex::new(Pending {
                events: VecDeque::new(),
                woken: false,
                signalled: false,
                armed: false,
                quiet_written: false,
                pollers: 0,
                readers: 0,
                deferred: false,
                watched_socket: false,
                message_bytes: 0,
                task_away: false,
                last_read: None,
            }),
            ready: Condvar::new(),
            room: Notify::new(),
            limit: AtomicUsize::new(limit.max(1)),
            paused: AtomicBool::new(false),
            notifier,
        })
    }

    /// The fd that is readable while events are pending (from this call on).
    pub fn fileno(&self) -> i64 {
        let mut p = self.pending.lock();
        if !p.armed {
            p.armed = true;
            if !p.events.is_empty() && !p.signalled {
                self.notifier.signal();
                p.signalled = true;
            }
        }
        self.notifier.fileno()
    }

    pub fn push(&self, event: Event) {
        self.extend(std::iter::once(event));
    }

    /// Appends events; writes one notifier byte only when the queue was not signalled.
    pub fn extend(&self, events: impl IntoIterator<Item = Event>) {
        self.append(events, false);
    }

    /// Completions of written QoS 0 publishes. While quiet (see
    /// [`set_quiet_written`](Self::set_quiet_written)) they wake nobody until they fill
    /// half the limit; they are taken in with the next drain.
    pub fn extend_written(&self, events: impl IntoIterator<Item = Event>) {
        self.append(events, true);
    }

    /// `extend`, and for `written` completions the quiet rule of `set_quiet_written`.
    fn append(&self, events: impl IntoIterator<Item = Event>, written: bool) {
        let mut p = self.pending.lock();
        let before = p.events.len();
        p.events.extend(events);
        let added: usize = p.events.range(before..).map(payload_len).sum();
        p.message_bytes += added;
        let quiet =
            written && p.quiet_written && p.events.len() * 2 < self.limit.load(Ordering::Relaxed);
        if p.events.is_empty() || quiet {
            return;
        }
        if p.watched() && !p.signalled && !DRAINS_NEXT.get() {
            self.notifier.signal();
            p.signalled = true;
        }
        drop(p);
        self.ready.notify_all();
    }

    /// (asyncio face) On: completions of written QoS 0 publishes are queued without a
    /// wake-up (a face that does not wait for them would otherwise wake once per
    /// message, which costs a QoS 0 round trip tens of microseconds). Off: whatever is
    /// pending wakes the consumer now, as before; the face turns it off before it waits
    /// for those completions.
    pub fn set_quiet_written(&self, on: bool) {
        let mut p = self.pending.lock();
        p.quiet_written = on;
        if on || p.events.is_empty() {
            return;
        }
        if p.watched() && !p.signalled {
            self.notifier.signal();
            p.signalled = true;
        }
        drop(p);
        self.ready.notify_all();
    }

    /// Runs `f` (a read of the socket by the face's own thread) without making the
    /// notifier readable for the events it queues: the face drains right after, and
    /// [`drain_within`](Self::drain_within) signals whatever it leaves behind. Saves the
    /// face a write and two reads of the notifier per incoming batch.
    pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                DRAINS_NEXT.set(false);
            }
        }
        DRAINS_NEXT.set(true);
        let _reset = Reset;
        f()
    }

    /// Removes up to `max` events (0 = all) and clears the notifier once empty.
    pub fn drain(&self, max: usize) -> Vec<Event> {
        self.drain_within(max, 0)
    }

    /// As `drain`, but stops before the message payloads taken exceed `max_bytes`
    /// (0 = no limit; at least one event is always taken). Lets a face turn large
    /// payloads into its own objects a few at a time, so its allocator reuses memory
    /// instead of growing and trimming the heap around each batch.
    pub fn drain_within(&self, max: usize, max_bytes: usize) -> Vec<Event> {
        let mut p = self.pending.lock();
        let mut n = if max == 0 {
            p.events.len()
        } else {
            max.min(p.events.len())
        };
        if max_bytes > 0 {
            let mut bytes = 0;
            for (i, e) in p.events.iter().take(n).enumerate() {
                if let Event::Message(m) = e {
                    bytes += m.payload.len();
                    if bytes > max_bytes && i > 0 {
                        n = i;
                        break;
                    }
                }
            }
        }
        let out: Vec<Event> = p.events.drain(..n).collect();
        p.message_bytes -= out.iter().map(payload_len).sum::<usize>();
        if p.events.is_empty() && p.signalled {
            self.notifier.clear();
            p.signalled = false;
        } else if !p.events.is_empty() && p.watched() && !p.signalled {
            // Left over from a batch, or queued by `quietly`: the face comes back for them.
            self.notifier.signal();
            p.signalled = true;
        }
        let below = self.fits(&p);
        drop(p);
        if below && n > 0 {
            self.room.notify_waiters();
        }
        out
    }

    pub fn len(&self) -> usize {
        self.pending.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks the calling (non-runtime) thread until an event is pending, `wake()` is
    /// called or `timeout` passes.
    pub fn wait(&self, timeout: Duration) -> Wait {
        let mut p = self.pending.lock();
        if p.events.is_empty() && !p.woken {
            let _ = self.ready.wait_for(&mut p, timeout);
        }
        if !p.events.is_empty() {
            Wait::Events
        } else if std::mem::take(&mut p.woken) {
            Wait::Woken
        } else {
            Wait::TimedOut
        }
    }

    /// Makes a blocked (or the next) `wait` return without events.
    pub fn wake(&self) {
        let mut p = self.pending.lock();
        p.woken = true;
        if p.pollers > 0 && !p.signalled {
            self.notifier.signal();
            p.signalled = true;
        }
        drop(p);
        self.ready.notify_all();
    }

    /// Before a thread polls the notifier fd (with its socket, see `direct_read`): how
    /// the wait ends at once (events pending, or `wake()` called), else None and the
    /// notifier is made readable by the next event until [`end_poll`](Self::end_poll).
    pub(crate) fn begin_poll(&self) -> Option<Wait> {
        let mut p = self.pending.lock();
        if !p.events.is_empty() {
            return Some(Wait::Events);
        }
        if std::mem::take(&mut p.woken) {
            return Some(Wait::Woken);
        }
        p.pollers += 1;
        None
    }

    /// After the poll begun by `begin_poll`. A byte written only for pollers is taken out
    /// again, so an unwatched notifier is empty as before.
    pub(crate) fn end_poll(&self) {
        let mut p = self.pending.lock();
        p.pollers -= 1;
        if p.signalled && !p.watched() {
            self.notifier.clear();
            p.signalled = false;
        }
    }

    /// A thread starts reading the socket from `Client::wait` (see `defer_to_poller`).
    pub(crate) fn enter_reading(&self) {
        self.pending.lock().readers += 1;
    }

    /// It stops. True when it was the last reader and the connection task had left
    /// bytes to the readers: the caller must then read the socket until it would block,
    /// or nudge the connection task.
    pub(crate) fn leave_reading(&self) -> bool {
        let mut p = self.pending.lock();
        p.readers -= 1;
        p.last_read = Some(Instant::now());
        p.readers == 0 && !p.watched_socket && std::mem::take(&mut p.deferred)
    }

    /// A face's event loop starts or stops watching the socket (see `defer_to_poller`).
    /// True when it stopped and the connection task must be nudged: it had left bytes
    /// to the face, or stepped aside from the socket.
    pub(crate) fn set_watched(&self, on: bool) -> bool {
        let mut p = self.pending.lock();
        let was = std::mem::replace(&mut p.watched_socket, on);
        !on && was && p.readers == 0 && (std::mem::take(&mut p.deferred) || p.task_away)
    }

    /// (connection task) It watches the socket again.
    pub(crate) fn mark_task_back(&self) {
        self.pending.lock().task_away = false;
    }

    /// True while the connection task has stepped aside: a face that stops reading the
    /// socket must nudge it.
    pub(crate) fn task_is_away(&self) -> bool {
        self.pending.lock().task_away
    }

    /// The notifier's fd for pollers (without arming it for the face).
    pub(crate) fn notifier_fd(&self) -> i64 {
        self.notifier.fileno()
    }

    /// How a `wait` that found no events ends without blocking: `Woken` once after
    /// `wake()`, else None.
    pub(crate) fn take_woken(&self) -> Option<Wait> {
        let mut p = self.pending.lock();
        if !p.events.is_empty() {
            Some(Wait::Events)
        } else if std::mem::take(&mut p.woken) {
            Some(Wait::Woken)
        } else {
            None
        }
    }

    /// True when the connection may read more now: not over the limit, not paused (the
    /// condition [`wait_for_room`](Self::wait_for_room) waits for).
    pub(crate) fn has_room(&self) -> bool {
        self.fits(&self.pending.lock()) && !self.paused.load(Ordering::Acquire)
    }

    /// Removes queued events matching `f` (used to forget the end of a connection that
    /// is being replaced).
    pub fn remove_where(&self, f: impl Fn(&Event) -> bool) {
        let mut p = self.pending.lock();
        p.events.retain(|e| !f(e));
        p.message_bytes = p.events.iter().map(payload_len).sum();
    }

    /// Whether the queue is within its bounds: at most `limit` events and
    /// `MESSAGE_BYTES_LIMIT` payload bytes.
    fn fits(&self, p: &Pending) -> bool {
        p.events.len() <= self.limit.load(Ordering::Relaxed)
            && p.message_bytes <= MESSAGE_BYTES_LIMIT
    }

    /// Changes the bound (at least 1); a paused reader resumes if the queue fits.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
        self.room.notify_waiters();
    }

    /// (asyncio face) While paused the connection task reads nothing more from the
    /// socket; queued events stay drainable (so acknowledgements already read still
    /// reach the face) and TCP flow control pushes back on the broker.
    pub fn set_paused(&self, on: bool) {
        self.paused.store(on, Ordering::Release);
        if !on {
            self.room.notify_waiters();
        }
    }

    /// Resolves once the queue holds at most its limit (and reading is not paused).
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }
}

/// Handing the socket between the connection task and the faces that read it themselves
/// (see `direct_read`). Faces read a plain-TCP socket directly on Linux only (through the
/// raw `recv`, `ppoll` and `dup` of `sockopt`); on other systems the connection task is the
/// only reader of every transport, never defers to a face nor steps aside, and waiting
/// faces sleep on this queue until it hands them events.
#[cfg(target_os = "linux")]
impl EventQueue {
    /// (connection task, stepped aside) Until when it may stay away: `lease` after the
    /// last reader left; None when that time has passed. While a face reads or watches,
    /// ten leases from now: the task then only looks again (a face that waits for long
    /// would otherwise cost it a wake-up per lease).
    pub(crate) fn lease_end(&self, lease: Duration) -> Option<Instant> {
        let p = self.pending.lock();
        let now = Instant::now();
        if p.face_reads() {
            return Some(now + lease * 10);
        }
        p.last_read.map(|t| t + lease).filter(|&end| end > now)
    }

    /// (connection task, socket readable) True if a thread is reading the socket (see
    /// `enter_reading`) or a face watches it: the task then leaves the bytes to it
    /// rather than both waking up for them and racing for the read lock. The last
    /// reader to leave learns of it from `leave_reading`.
    pub(crate) fn defer_to_poller(&self) -> bool {
        let mut p = self.pending.lock();
        let someone = p.face_reads();
        if someone {
            p.deferred = true;
        }
        someone
    }

    /// (connection task, woken for bytes a face read or will read) True if a face reads
    /// the socket now: the task then stops watching it (marked here, under the lock the
    /// faces check it under) until told otherwise or until `lease_end` passes. Not for
    /// a face that has just stopped reading: it may be waiting for the task already
    /// (see `Client::wait`), and would sit out the lease.
    pub(crate) fn step_aside(&self) -> bool {
        let mut p = self.pending.lock();
        let reading = p.face_reads();
        if reading {
            p.task_away = true;
        }
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(m: &str) -> Event {
        Event::Log {
            level: 1,
            message: m.into(),
        }
    }

    /// Reads (and so consumes) whatever the notifier holds.
    fn notifier_bytes(q: &EventQueue) -> usize {
        q.notifier.clear()
    }

    #[test]
    fn large_messages_fill_the_queue_by_their_bytes() {
        let q = EventQueue::new(DEFAULT_EVENT_LIMIT).unwrap();
        // One payload buffer shared by all: the bound counts the bytes the events stand
        // for, as a reader's would.
        let payload = Bytes::from(vec![1u8; 1024 * 1024]);
        let msg = || {
            Event::Message(Box::new(Message {
                topic: ByteStr::from_static("t"),
                raw_topic: None,
                payload: payload.clone(),
                qos: 0,
                retain: false,
                mid: 0,
                dup: false,
                properties: None,
            }))
        };
        q.extend((0..64).map(|_| msg()));
        assert!(q.has_room(), "64 MiB: at the bound");
        q.push(msg());
        assert!(
            !q.has_room(),
            "65 events, but over the byte bound: the reader pauses"
        );
        q.push(log("not a message"));
        assert_eq!(q.drain(1).len(), 1);
        assert!(q.has_room(), "drained back to the bound");
        q.remove_where(|e| matches!(e, Event::Message(_)));
        q.extend((0..64).map(|_| msg()));
        assert!(q.has_room(), "removed messages no longer count");
    }

    #[test]
    fn drain_within_stops_at_the_payload_budget_but_takes_at_least_one() {
        let q = EventQueue::new(10).unwrap();
        let msg = |n: usize| {
            Event::Message(Box::new(Message {
                topic: ByteStr::from_static("t"),
                raw_topic: None,
                payload: Bytes::from(vec![0u8; n]),
                qos: 0,
                retain: false,
                mid: 0,
                dup: false,
                properties: None,
            }))
        };
        q.extend([msg(600), log("a"), msg(600), msg(10)]);
        assert_eq!(
            q.drain_within(0, 1000).len(),
            2,
            "the second message would exceed it"
        );
        assert_eq!(
            q.drain_within(0, 100).len(),
            1,
            "one even when alone over budget"
        );
        assert_eq!(q.drain_within(0, 0).len(), 1);
    }

    #[test]
    fn notifier_is_armed_by_asking_for_its_fd() {
        let q = EventQueue::new(10).unwrap();
        q.push(log("a"));
        assert_eq!(notifier_bytes(&q), 0, "nobody watches the fd yet");
        q.fileno();
        assert_eq!(notifier_bytes(&q), 1, "readable at once for pending events");
    }

    #[test]
    fn one_notifier_byte_per_non_empty_period() {
        let q = EventQueue::new(10).unwrap();
        q.fileno();
        q.push(log("a"));
        q.push(log("b"));
        assert_eq!(q.len(), 2);
        assert_eq!(notifier_bytes(&q), 1);
    }

    #[test]
    fn partial_drain_keeps_order_and_full_drain_clears_the_notifier() {
        let q = EventQueue::new(10).unwrap();
        q.fileno();
        q.extend([log("a"), log("b"), log("c")]);
        assert_eq!(q.drain(1), vec![log("a")]);
        assert_eq!(q.drain(0), vec![log("b"), log("c")]);
        assert_eq!(notifier_bytes(&q), 0);
        assert_eq!(q.wait(Duration::from_millis(1)), Wait::TimedOut);
        q.push(log("d"));
        assert_eq!(
            notifier_bytes(&q),
            1,
            "signalled again after becoming non-empty"
        );
    }

    #[test]
    fn wait_wakes_on_push_from_another_thread() {
        let q = std::sync::Arc::new(EventQueue::new(10).unwrap());
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            q2.push(Event::Log {
                level: 1,
                message: "x".into(),
            })
        });
        assert_eq!(q.wait(Duration::from_secs(5)), Wait::Events);
        t.join().unwrap();
    }

    #[test]
    fn reader_waits_for_room_until_the_face_drains() {
        let q = std::sync::Arc::new(EventQueue::new(2).unwrap());
        q.extend([log("a"), log("b"), log("c")]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let q2 = q.clone();
        let drainer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            q2.drain(1)
        });
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), q.wait_for_room())
                .await
                .expect("room after a drain");
        });
        assert_eq!(drainer.join().unwrap().len(), 1);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn wake_ends_a_wait_without_events() {
        let q = std::sync::Arc::new(EventQueue::new(10).unwrap());
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.wake());
        assert_eq!(q.wait(Duration::from_secs(5)), Wait::Woken);
        t.join().unwrap();
        assert_eq!(
            q.wait(Duration::from_millis(1)),
            Wait::TimedOut,
            "wake is used up"
        );
    }

    #[test]
    fn paused_queue_has_no_room_until_resumed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let q = std::sync::Arc::new(EventQueue::new(10).unwrap());
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

    #[test]
    fn quiet_written_completions_wake_only_at_half_the_limit_or_when_turned_off() {
        let published = |mid| Event::Published {
            mid,
            qos: 0,
            code: 0,
            properties: None,
        };
        let q = EventQueue::new(8).unwrap();
        q.fileno(); // an asyncio face watches the notifier
        q.set_quiet_written(true);
        q.extend_written([published(1), published(2), published(3)]);
        assert_eq!(q.len(), 3);
        assert_eq!(notifier_bytes(&q), 0, "quiet below half the limit");
        assert_eq!(q.wait(Duration::from_millis(1)), Wait::Events);
        q.extend_written([published(4)]);
        assert_eq!(notifier_bytes(&q), 1, "half the limit wakes the consumer");
        assert_eq!(q.drain(0).len(), 4);
        q.extend_written([published(5)]);
        assert_eq!(notifier_bytes(&q), 0);
        q.set_quiet_written(false);
        assert_eq!(
            notifier_bytes(&q),
            1,
            "turning it off signals what is pending"
        );
        q.drain(0);
        q.extend_written([published(6)]);
        assert_eq!(notifier_bytes(&q), 1, "not quiet: like extend()");
        q.drain(0);
        q.set_quiet_written(true);
        q.extend_written([published(7)]);
        q.push(log("other events still wake"));
        assert_eq!(notifier_bytes(&q), 1);
    }
    #[test]
    #[cfg(target_os = "linux")]
    fn the_task_defers_to_readers_and_the_last_one_learns_of_it() {
        let q = EventQueue::new(10).unwrap();
        assert!(!q.defer_to_poller(), "nobody reads: the task reads");
        q.enter_reading();
        q.enter_reading();
        assert_eq!(q.begin_poll(), None);
        q.end_poll();
        assert!(q.defer_to_poller(), "a reader between polls still reads");
        assert!(!q.task_is_away(), "deferring is not stepping aside");
        assert!(!q.leave_reading(), "another reader still reads");
        assert!(q.leave_reading(), "the last reader must read or nudge");
        assert!(!q.defer_to_poller());
        q.enter_reading();
        assert!(!q.leave_reading(), "nothing was deferred");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_watching_face_takes_deferred_reads_when_it_stops() {
        let q = EventQueue::new(10).unwrap();
        assert!(!q.set_watched(true));
        assert!(q.defer_to_poller());
        q.enter_reading();
        assert!(!q.leave_reading(), "the face still watches");
        assert!(q.set_watched(false));
        assert!(!q.set_watched(false), "told once");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_task_that_stepped_aside_is_told_when_the_face_stops_watching() {
        let q = EventQueue::new(10).unwrap();
        assert!(!q.step_aside(), "no face reads: the task keeps reading");
        assert!(!q.task_is_away());
        assert!(!q.set_watched(true));
        assert!(q.step_aside());
        assert!(q.task_is_away());
        assert!(
            q.set_watched(false),
            "the face stops: the task must be nudged"
        );
        assert!(!q.set_watched(true));
        assert!(q.set_watched(false), "still away: told again");
        q.mark_task_back();
        assert!(!q.task_is_away());
        assert!(!q.set_watched(true));
        assert!(
            !q.set_watched(false),
            "back and nothing deferred: nothing to tell"
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_lease_of_a_task_that_stepped_aside_runs_from_the_last_read() {
        let lease = Duration::from_millis(5);
        let q = EventQueue::new(10).unwrap();
        assert_eq!(q.lease_end(lease), None, "nobody ever read: no lease");
        q.enter_reading();
        assert!(q.step_aside(), "a thread reads");
        let reading = q.lease_end(lease).expect("a thread reads: the lease runs");
        assert!(reading > Instant::now());
        q.leave_reading();
        let after = q
            .lease_end(lease)
            .expect("the lease runs from the last read");
        assert!(after <= Instant::now() + lease);
        assert!(
            !q.step_aside(),
            "a thread that just stopped reading may wait for the task already"
        );
        std::thread::sleep(lease + Duration::from_millis(1));
        assert_eq!(
            q.lease_end(lease),
            None,
            "the readers are gone: the task reads"
        );
    }

    #[test]
    fn pollers_are_woken_through_the_notifier_which_is_left_empty() {
        let q = EventQueue::new(10).unwrap();
        assert_eq!(q.begin_poll(), None);
        q.push(log("a"));
        assert_eq!(notifier_bytes(&q), 1, "an event wakes a poller");
        q.drain(0);
        q.wake();
        q.end_poll();
        assert_eq!(notifier_bytes(&q), 0, "unwatched again: emptied");
        assert_eq!(
            q.begin_poll(),
            Some(Wait::Woken),
            "wake() before a poll counts"
        );
        q.push(log("b"));
        assert_eq!(q.begin_poll(), Some(Wait::Events));
    }

    #[test]
    fn quiet_reads_leave_the_notifier_alone_and_drain_signals_the_rest() {
        let q = EventQueue::new(10).unwrap();
        q.fileno();
        EventQueue::quietly(|| q.extend([log("a"), log("b")]));
        assert_eq!(notifier_bytes(&q), 0, "the reading face drains next");
        assert_eq!(q.drain(1).len(), 1);
        assert_eq!(
            notifier_bytes(&q),
            1,
            "what the drain left behind is signalled"
        );
        q.drain(0);
        q.push(log("c"));
        assert_eq!(notifier_bytes(&q), 1, "outside quietly(): as before");
    }
}
