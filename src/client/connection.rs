//! The connection task: moves bytes between the socket and the [`Session`], and
//! nothing else. One task per connection, owning both halves of the stream; reads and
//! writes run concurrently inside it, so a slow reader never blocks a write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::time::sleep_until;

use super::direct_read::{DetachOnDrop, ReadState};
use super::event::{rc, Event};
#[cfg(target_os = "linux")]
use super::plain_tcp::TcpReader;
use super::session::{Close, ConnState, Session, WrittenQos0};
use super::transport::{Reader, Stream, Writer};
use super::Shared;
use crate::codec::ProtocolVersion;

/// Largest MQTT packet: 1 type byte, 4 length bytes, 268,435,455 remaining (§2.2.3).
pub const MAX_PACKET_SIZE: u32 = 268_435_460;

pub(crate) async fn run(
    shared: Arc<Shared>,
    generation: u64,
    stream: Stream,
    version: ProtocolVersion,
    max_packet_size: u32,
) {
    let direct_fd = stream.direct_write_fd();
    let (mut reader, writer) = match stream.split() {
        Ok(halves) => halves,
        Err(e) => return shared.finish(generation, Close::lost(e.to_string())),
    };
    if let Some(fd) = direct_fd {
        let s = shared.session.lock();
        if s.generation() == generation {
            shared.direct.attach(fd);
        }
    }
    // Declared after the socket's halves, so dropped before them also when this task is
    // aborted: no waiting thread may read from the fd once it may be closed.
    let mut read_attached = None;
    if let (Some(fd), Reader::Tcp(_)) = (direct_fd, &reader) {
        let invalid = shared.session.lock().accept_invalid_topics();
        let state = ReadState::new(version, max_packet_size, invalid);
        shared.direct_read.attach(generation, fd, state);
        // A task of an earlier connection may have ended while stepped aside.
        shared.events.mark_task_back();
        read_attached = Some(DetachOnDrop::new(&shared, generation, fd));
    }
    // CONNECT is already waiting in the write buffer.
    shared.wake_writer.notify_one();
    // Boxed so that it (and the writer in it) can be dropped before the end is reported.
    let mut writing = Box::pin(write_loop(&shared, generation, writer));
    let ended = match (&read_attached, &mut reader) {
        #[cfg(target_os = "linux")]
        (Some(_), Reader::Tcp(r)) => tokio::select! {
            c = tcp_read_loop(&shared, generation, r) => Ended::Reader(c),
            c = &mut writing => Ended::Writer(c),
        },
        _ => tokio::select! {
            c = read_loop(&shared, generation, &mut reader, version, max_packet_size) => Ended::Reader(c),
            c = &mut writing => Ended::Writer(c),
        },
    };
    // Before anything of the socket is dropped: no direct write or read may use its fd
    // again.
    if let Some(a) = &mut read_attached {
        a.detach_now();
    }
    if direct_fd.is_some() {
        let _s = shared.session.lock();
        shared.direct.detach();
    }
    let close = match ended {
        Ended::Writer(c) => c,
        Ended::Reader(c) => {
            // Our DISCONNECT is queued (disconnect() was called, or a v5 session explains
            // the error it found, MQTT 5 §4.13.1): whatever was queued before it is
            // written first, so the reader ending must not drop the unwritten bytes.
            let flush = {
                let mut s = shared.session.lock();
                s.generation() == generation
                    && (s.state() == ConnState::Disconnecting
                        || c.reason.is_some_and(|reason| s.fail(reason)))
            };
            if flush {
                // The socket closes after the grace period either way.
                shared.wake_writer.notify_one();
                match tokio::time::timeout(CLOSE_GRACE, &mut writing).await {
                    // A clean end of ours after a read error is still our disconnect.
                    Ok(w) if w.is_by_us() && c.code != rc::PROTOCOL && !c.from_server => w,
                    _ => c,
                }
            } else {
                c
            }
        }
    };
    if close.is_by_us() {
        // Closing a TCP socket with unread received data makes the kernel send RST,
        // and a RST makes the peer discard what it has not read yet -- possibly our
        // last PUBLISH and DISCONNECT (RFC 2525 §2.17). The write side is shut down
        // already; read until the broker closes (it must, MQTT 3.1.1 §3.14.4).
        let _ = tokio::time::timeout(CLOSE_GRACE, drain(&mut reader)).await;
    }
    // A face's duplicate of the fd would keep the socket open: shut it down.
    drop(read_attached);
    // The socket is closed before the face learns that the connection ended.
    drop(writing);
    drop(reader);
    shared.finish(generation, close);
}

/// How long a closing connection waits for its last write and for the broker's close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Reads and discards until end of stream or an error.
async fn drain(reader: &mut Reader) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        buf.clear();
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

enum Ended {
    Reader(Close),
    Writer(Close),
}

async fn read_loop(
    shared: &Shared,
    generation: u64,
    reader: &mut Reader,
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Close {
    let accept_invalid_topics = shared.session.lock().accept_invalid_topics();
    let mut state = ReadState::new(version, max_packet_size, accept_invalid_topics);
    loop {
        // Backpressure: while the face is behind, stop reading (see EventQueue).
        shared.events.wait_for_room().await;
        state.reserve();
        let ended = match reader.read(&mut state.buf).await {
            Ok(0) => Some("connection closed by the broker".to_string()),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = ended {
            return end_of_stream(shared, error);
        }
        let result = state.process(shared, generation);
        if state.wants_quickack() {
            reader.quickack();
        }
        if let Err(c) = result {
            return c;
        }
    }
}

/// The read side ended (`error` says how).
fn end_of_stream(shared: &Shared, error: String) -> Close {
    // After our DISCONNECT the broker may close before the writer reports.
    if shared.session.lock().state() == ConnState::Disconnecting {
        return Close::by_us();
    }
    Close::lost(error)
}

/// `read_loop` for a plain TCP connection that waiting threads may read from too (see
/// `direct_read`): the buffer and decoder live in `shared.direct_read`, and each read
/// happens under its lock. While faces read, this task steps aside from the socket
/// altogether (see `plain_tcp`) and comes back when told to (a face stopped reading
/// for good) or when the faces have not polled for `LEASE`.
#[cfg(target_os = "linux")]
async fn tcp_read_loop(shared: &Shared, generation: u64, r: &mut TcpReader) -> Close {
    enum Step {
        Read { more: bool },
        Nothing,
        Ended(String),
    }
    // The last read filled the buffer: the socket may hold more, with no new readiness
    // event to come for it.
    let mut more = false;
    // Wake-ups in a row for bytes a face read or reads (this task deferred to a polling
    // face, or found nothing left to read): from the second one on, this task steps
    // aside while faces read (a face that polls once and then lets this task read
    // again, as during a stream of messages, keeps it watching).
    let mut wasted = 0u32;
    loop {
        shared.events.wait_for_room().await;
        let mut nudged = more;
        if !more {
            if r.watching() {
                tokio::select! {
                    biased;
                    _ = shared.direct_read.nudge.notified() => nudged = true,
                    ready = r.readable() => {
                        if let Err(e) = ready {
                            return end_of_stream(shared, e.to_string());
                        }
                    }
                }
            } else {
                away(shared).await;
                shared.events.mark_task_back();
                if let Err(e) = r.watch() {
                    return end_of_stream(shared, e.to_string());
                }
                // Bytes may have arrived meanwhile.
                nudged = true;
            }
        }
        // Checked before taking the read lock, which the reading waiter holds now.
        if !nudged && shared.events.defer_to_poller() {
            woken_in_vain(shared, r, &mut wasted);
            continue;
        }
        let step = {
            let mut slot = shared.direct_read.slot.lock();
            let Some(a) = slot.as_mut().filter(|a| a.generation == generation) else {
                return Close::lost("connection replaced");
            };
            if let Some(c) = a.ended.take() {
                return c;
            }
            a.state.reserve();
            let room = a.state.buf.capacity() - a.state.buf.len();
            match crate::sockopt::recv_now(a.fd, &mut a.state.buf) {
                Ok(0) => Step::Ended("connection closed by the broker".to_string()),
                Ok(n) => {
                    if let Err(c) = a.state.process(shared, generation) {
                        return c;
                    }
                    if a.state.wants_quickack() {
                        crate::sockopt::quickack(a.fd);
                    }
                    Step::Read { more: n == room }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Step::Nothing,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Step::Read { more: true },
                Err(e) => Step::Ended(e.to_string()),
            }
        };
        more = false;
        match step {
            Step::Read { more: m } => {
                more = m;
                wasted = 0;
            }
            Step::Nothing => woken_in_vain(shared, r, &mut wasted),
            Step::Ended(error) => return end_of_stream(shared, error),
        }
    }
}

/// (`tcp_read_loop`) Woken for bytes a face read or reads: from the second time in a
/// row (`wasted` counts them), the task steps aside while a face reads.
#[cfg(target_os = "linux")]
fn woken_in_vain(shared: &Shared, r: &mut TcpReader, wasted: &mut u32) {
    *wasted += 1;
    if *wasted >= 2 && shared.events.step_aside() {
        r.step_aside();
    }
}

/// How long faces may go without reading the socket before the connection task, having
/// stepped aside, reads it again by itself. Bytes are read at most ten leases late after
/// a face stopped reading without saying so (a paho loop thread busy in a callback, or
/// stopped; see `EventQueue::lease_end`). A face that stops for good says so, see
/// `EventQueue::set_watched`.
#[cfg(target_os = "linux")]
const LEASE: Duration = Duration::from_millis(5);

/// (connection task, stepped aside) Returns when told to read again, or when the faces
/// have not polled for `LEASE`.
#[cfg(target_os = "linux")]
async fn away(shared: &Shared) {
    while let Some(until) = shared.events.lease_end(LEASE) {
        tokio::select! {
            biased;
            _ = shared.direct_read.nudge.notified() => return,
            _ = sleep_until(tokio::time::Instant::from_std(until)) => {}
        }
    }
}

async fn write_loop(shared: &Shared, generation: u64, mut writer: Writer) -> Close {
    let mut spare = BytesMut::with_capacity(8192);
    let mut segments = Vec::new();
    let mut qos0 = Vec::new();
    loop {
        let now = Instant::now();
        let (deadline, disconnecting) = {
            let mut s = shared.session.lock();
            if s.generation() != generation {
                return Close::lost("connection replaced");
            }
            shared.direct.set_writer_parked(false);
            if s.output_held() {
                // Nothing goes out until released; the release wakes this loop.
                (None, false)
            } else {
                let deadline = match s.poll_keepalive(now) {
                    Ok(d) => d,
                    Err(c) => return c,
                };
                s.take_segments(&mut segments);
                s.take_output(&mut spare, &mut qos0);
                shared.flush_events(&mut s);
                // Nothing taken: this task is about to sleep, and until it wakes (it
                // takes this lock first) a direct write cannot meet one of its own.
                if spare.is_empty() && segments.is_empty() {
                    shared.direct.set_writer_parked(true);
                }
                (deadline, s.state() == ConnState::Disconnecting)
            }
        };
        if !spare.is_empty() || !segments.is_empty() {
            let written = if segments.is_empty() {
                writer.write_all(&spare).await
            } else {
                writer.write_segments(&segments, &spare).await
            };
            if let Err(e) = written {
                return Close::lost(e.to_string());
            }
            segments.clear();
            spare.clear();
            let mut s = shared.session.lock();
            s.keepalive.on_sent(Instant::now());
            shared.report_written(&mut qos0, s.report_completed());
            drop(s);
            // More may have been queued while writing: check before sleeping.
            continue;
        }
        if disconnecting {
            writer.shutdown().await;
            return Close::by_us();
        }
        let deadline = deadline
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = shared.wake_writer.notified() => {}
            _ = sleep_until(deadline) => {}
        }
    }
}

impl Shared {
    /// Moves the session's events to the queue and gets the bytes that wait written:
    /// directly from this thread when the connection is quiet (see `DirectWrite`), else
    /// by waking the writer task.
    pub(crate) fn flush(&self, s: &mut Session) {
        if s.has_output() && self.direct.try_write(s) {
            let mut qos0 = Vec::new();
            s.take_written_qos0(&mut qos0);
            self.report_written(&mut qos0, s.report_completed());
        }
        self.flush_events(s);
        if s.has_output() {
            // Handed to the writer task: until it has run, a direct write would only
            // race it for the same bytes' turn (and cost a system call each time).
            self.direct.set_writer_parked(false);
            self.wake_writer.notify_one();
        }
    }

    /// The QoS 0 publishes `written` are on the wire: their completions are done, the
    /// others get their EV_PUBLISHED (drains `written`). Called with the session locked
    /// (`report` is its `report_completed()`), so completions stay in order with acks.
    fn report_written(&self, written: &mut Vec<WrittenQos0>, report: bool) {
        if written.is_empty() {
            return;
        }
        let mut events = written.drain(..).filter_map(|(mid, done)| {
            if let Some(d) = done {
                d.complete();
                if !report {
                    return None;
                }
            }
            Some(Event::Published {
                mid,
                qos: 0,
                code: 0,
                properties: None,
            })
        });
        if let Some(first) = events.next() {
            self.events
                .extend_written(std::iter::once(first).chain(events));
        }
    }

    pub(crate) fn flush_events(&self, s: &mut Session) {
        let mut events = s.take_events().peekable();
        if events.peek().is_some() {
            self.events.extend(events);
        }
    }

    /// The connection `generation` ended; report it unless it was already replaced or
    /// closed on purpose.
    pub(crate) fn finish(&self, generation: u64, close: Close) {
        let mut s = self.session.lock();
        if s.generation() != generation {
            return;
        }
        s.on_connection_lost();
        let mut events: Vec<Event> = s.take_events().collect();
        if self.quiet_end.load(Ordering::Relaxed) == generation {
            self.events.extend(events);
            return;
        }
        events.push(Event::Disconnected {
            code: close.code,
            reason_absent: close.reason_absent,
            from_server: close.from_server,
            properties: close.properties,
            error: close.error,
        });
        self.events.extend(events);
    }
}

/// Writing from the calling thread, skipping the hand-off to the writer task: a quiet
/// connection's single publish or acknowledgement then costs one `send` instead of a
/// wake-up of another thread (the larger part of a round trip's latency). Only on plain
/// TCP (Linux), only while the writer task sleeps with nothing to write and has slept
/// for `DIRECT_GAP` already, and not again within `DIRECT_GAP` of the last direct write:
/// a busy connection gets the writer task's batching instead of a system call (under
/// the session lock) per message. Every field is read and written with the session
/// locked, which is what orders direct writes with the writer task's.
#[derive(Default)]
pub(crate) struct DirectWrite {
    /// The connection's socket, -1 when none (no connection, or not plain TCP).
    fd: std::sync::atomic::AtomicI32,
    writer_parked: std::sync::atomic::AtomicBool,
    /// When the writer task last went to sleep, as nanoseconds after `EPOCH`.
    parked_at: AtomicU64,
    /// When the last direct write happened, as nanoseconds after `EPOCH` (0: never).
    last: AtomicU64,
    /// Direct writes in a row, each within `DIRECT_GAP` of the one before.
    burst: std::sync::atomic::AtomicU32,
}

fn now_ns(now: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    now.saturating_duration_since(epoch).as_nanos() as u64 + 1
}

/// Direct writes closer together than this go through the writer task (batching).
const DIRECT_GAP: Duration = Duration::from_micros(50);

/// Direct writes allowed in a row closer together than `DIRECT_GAP`: an answer is often
/// two writes (the acknowledgement of the message taken, then the reply published), and
/// handing the second to the writer task would put a thread wake-up on the reply's way.
const DIRECT_BURST: u32 = 2;

static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl DirectWrite {
    fn attach(&self, fd: i32) {
        self.fd.store(fd, Ordering::Relaxed);
        self.writer_parked.store(false, Ordering::Relaxed);
    }

    fn detach(&self) {
        self.fd.store(-1, Ordering::Relaxed);
        self.writer_parked.store(false, Ordering::Relaxed);
    }

    fn set_writer_parked(&self, parked: bool) {
        if parked {
            self.parked_at
                .store(now_ns(Instant::now()), Ordering::Relaxed);
        }
        self.writer_parked.store(parked, Ordering::Relaxed);
    }

    /// Tries to write all of `s`'s output now; true if it all went out. A partial write
    /// leaves the rest queued for the writer task (which must then be woken).
    fn try_write(&self, s: &mut Session) -> bool {
        let fd = self.fd.load(Ordering::Relaxed);
        if fd < 0
            || !self.writer_parked.load(Ordering::Relaxed)
            || s.has_segments()
            || s.output_held()
            || s.state() == ConnState::Disconnecting
        {
            return false;
        }
        let now = Instant::now();
        let t = now_ns(now);
        let gap = DIRECT_GAP.as_nanos() as u64;
        let last = self.last.load(Ordering::Relaxed);
        let close = last != 0 && t.saturating_sub(last) < gap;
        if t.saturating_sub(self.parked_at.load(Ordering::Relaxed)) < gap
            || (close && self.burst.load(Ordering::Relaxed) >= DIRECT_BURST)
        {
            return false;
        }
        let Some(n) = crate::sockopt::send_now(fd, s.out()) else {
            return false;
        };
        self.last.store(t, Ordering::Relaxed);
        let burst = if close {
            self.burst.load(Ordering::Relaxed) + 1
        } else {
            1
        };
        self.burst.store(burst, Ordering::Relaxed);
        s.keepalive.on_sent(now);
        s.consume_output(n)
    }
}
