//! Reading from the calling thread: the receive-side mirror of the direct write.
//!
//! A face that waits for events (`Client::wait`, the paho facade's loop thread) would
//! otherwise sleep until the connection task has read, decoded and queued a message and
//! then woken it: two cross-thread wake-ups per incoming message after the broker's
//! (the runtime worker's and the face's). On a plain TCP connection the waiting thread
//! instead polls the socket itself (with the event notifier, so events produced by the
//! runtime still wake it) and reads, decodes and handles what arrives, under the same
//! lock the connection task reads under: whoever of the two comes first reads, so bytes
//! are consumed, decoded and handed to the session in order. The connection task stays
//! the reader whenever nobody waits (and stays the one that ends the connection).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::session::Close;
use super::Shared;
use crate::codec::{Decoder, Packet, ProtocolVersion};

/// Frames from this size on make the reader use `LARGE_BUF` buffers (see `ReadState::reserve`).
const LARGE_FRAME: usize = 16 * 1024;
/// Read buffer size while frames are small.
const SMALL_BUF: usize = 64 * 1024;
/// Read buffer size while frames are large: a few frames per buffer, so the part of a
/// frame that does not fit is copied to the next buffer once per few frames.
const LARGE_BUF: usize = 256 * 1024;
/// Retired read buffers kept for reuse: at most this many bytes, none above
/// `MAX_SPARE_SIZE`. Enough for the face to be a few dozen 64 KiB messages behind.
const MAX_SPARE_BYTES: usize = 4 * 1024 * 1024;
const MAX_SPARE_SIZE: usize = 1024 * 1024;
/// Once this many buffers in a row were filled with small frames only, the spares are
/// cut down to `SMALL_SPARE_BYTES` of small buffers (a connection that received large
/// messages once does not keep megabytes for good).
const SMALL_RUN: u32 = 16;
const SMALL_SPARE_BYTES: usize = 4 * SMALL_BUF;

/// One connection's receive side between reads: the bytes not yet decoded and the decoder.
pub(crate) struct ReadState {
    pub(crate) buf: BytesMut,
    /// Size of the allocation `buf` lives in.
    buf_size: usize,
    /// Retired read buffers (emptied handles) with their allocation sizes. Decoded
    /// frames (payloads) are views of the buffer they were read into; once every one of
    /// them was dropped (the face copied the payloads out, or the session let go of a
    /// QoS 2 message), the buffer is ours alone again and is reused as it is: its pages
    /// are mapped already. A fresh buffer per large frame cost 2-15 page faults per
    /// 64 KiB message (the allocator gave the freed memory back to the kernel).
    spare: Vec<(BytesMut, usize)>,
    /// The length of the last frame seen if it was at least `LARGE_FRAME` long, else 0.
    large: usize,
    /// Buffers replaced since the last large frame was seen.
    small_run: u32,
    decoder: Decoder,
    packets: Vec<(Packet, Option<Bytes>)>,
    /// The last `process` queued bytes to write (see `quickack`).
    answered: bool,
    /// Buffers allocated after the first (tests).
    #[cfg(test)]
    allocated: usize,
}

impl ReadState {
    pub(crate) fn new(version: ProtocolVersion, max_packet_size: u32, invalid: bool) -> Self {
        let mut decoder = Decoder::with_version(version, max_packet_size);
        decoder.set_accept_invalid_topics(invalid);
        Self {
            buf: BytesMut::with_capacity(SMALL_BUF),
            buf_size: SMALL_BUF,
            spare: Vec::new(),
            large: 0,
            small_run: 0,
            decoder,
            packets: Vec::new(),
            answered: false,
            #[cfg(test)]
            allocated: 0,
        }
    }

    /// Makes room for the next read: at least 4 KiB, and the whole frame at the head of
    /// the buffer once its length is known.
    pub(crate) fn reserve(&mut self) {
        let len = self.buf.len();
        let need = match Decoder::frame_len(&self.buf) {
            Some(total) => {
                self.large = if total >= LARGE_FRAME { total } else { 0 };
                total.max(len + 4096)
            }
            // While frames are large, the next one is expected to be as large as the last:
            // a buffer without room for it is replaced now, while little of it was read
            // (copied over), rather than after its header told its length.
            None => len + self.large.max(4096),
        };
        if need <= self.buf.capacity() {
            return;
        }
        if self.large > 0 {
            self.small_run = 0;
        } else {
            self.small_run = self.small_run.saturating_add(1);
        }
        let budget = if self.small_run >= SMALL_RUN {
            self.spare.retain(|(_, size)| *size <= SMALL_BUF);
            SMALL_SPARE_BYTES
        } else {
            MAX_SPARE_BYTES
        };
        // Every frame cut from this buffer was dropped: take it back whole (the undecoded
        // rest moves to its start).
        if need <= self.buf_size && self.buf.try_reclaim(self.buf_size - len) {
            return;
        }
        let size = if self.large > 0 {
            (4 * need).clamp(LARGE_BUF, MAX_SPARE_SIZE).max(need)
        } else {
            need.max(SMALL_BUF)
        };
        let reused = self
            .spare
            .iter_mut()
            .position(|(b, size)| *size >= need && b.try_reclaim(*size));
        let (mut next, next_size) = match reused {
            Some(i) => self.spare.remove(i),
            None => {
                #[cfg(test)]
                {
                    self.allocated += 1;
                }
                (BytesMut::with_capacity(size), size)
            }
        };
        next.extend_from_slice(&self.buf);
        let mut old = std::mem::replace(&mut self.buf, next);
        let old_size = std::mem::replace(&mut self.buf_size, next_size);
        if old_size <= MAX_SPARE_SIZE.min(budget) {
            old.clear();
            let mut kept: usize = self.spare.iter().map(|(_, size)| size).sum();
            while kept + old_size > budget {
                // Still in use after all newer ones: let it go with its last user.
                kept -= self.spare.remove(0).1;
            }
            self.spare.push((old, old_size));
        }
    }

    /// Whether to ask the kernel to acknowledge the bytes just read at once (see
    /// [`crate::sockopt::quickack`]): not when handling them queued bytes to write (an
    /// acknowledgement, the next message of a window), which carry the TCP ACK anyway,
    /// a moment later. A QoS 1 publisher of large messages otherwise sent a pure ACK
    /// (one more system call and packet) for every PUBACK it read.
    pub(crate) fn wants_quickack(&self) -> bool {
        !self.answered
    }

    /// Decodes every complete packet in the buffer and hands them to the session of
    /// connection `generation`; `Err` when the connection must end.
    pub(crate) fn process(&mut self, shared: &Shared, generation: u64) -> Result<(), Close> {
        let mut decode_error = None;
        let mut disconnect_len = 0;
        loop {
            let head = disconnect_remaining_len(&self.buf);
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(p)) => {
                    if let (Packet::Disconnect(_), Some(n)) = (&p, head) {
                        disconnect_len = n;
                    }
                    let invalid = self.decoder.take_invalid_topic();
                    self.packets.push((p, invalid))
                }
                Ok(None) => break,
                Err(e) => {
                    decode_error = Some(e);
                    break;
                }
            }
        }
        let now = Instant::now();
        let mut s = shared.session.lock();
        if s.generation() != generation {
            self.packets.clear();
            return Err(Close::lost("connection replaced"));
        }
        s.keepalive.on_received(now);
        let mut result = Ok(());
        for (p, invalid_topic) in self.packets.drain(..) {
            if result.is_err() {
                continue;
            }
            let is_disconnect = matches!(p, Packet::Disconnect(_));
            let handled = match invalid_topic {
                None => s.handle(p),
                Some(raw) => s.handle_with_invalid_topic(p, raw),
            };
            if let Err(mut c) = handled {
                if is_disconnect {
                    s.shape_server_disconnect(&mut c, disconnect_len);
                }
                result = Err(c);
            }
        }
        self.answered = s.has_output() && !s.output_held();
        shared.flush(&mut s);
        drop(s);
        result?;
        match decode_error {
            Some(e) => Err(Close::protocol_with(e.reason_code(), e.to_string())),
            None => Ok(()),
        }
    }
}

/// The remaining length of a DISCONNECT at the head of `buf`, capped at 2 (only 0, 1 and
/// "2 or more" matter: reason code and properties present or not, MQTT 5 §3.14.2).
fn disconnect_remaining_len(buf: &[u8]) -> Option<usize> {
    match buf {
        [0xE0, len, ..] => Some(if len & 0x80 != 0 {
            2
        } else {
            (*len as usize).min(2)
        }),
        _ => None,
    }
}

/// The receive side of the current plain-TCP connection, shared by its connection task
/// and waiting threads.
pub(crate) struct Attached {
    pub(crate) generation: u64,
    /// The socket; valid while this is attached (the connection task detaches before
    /// anything of the socket is dropped).
    pub(crate) fd: i32,
    pub(crate) state: ReadState,
    /// A waiting thread found the end of the connection (a protocol error): the
    /// connection task ends it with this.
    pub(crate) ended: Option<Close>,
    /// End of stream, an error or `ended` was seen by a waiting thread: only the
    /// connection task reads from now on.
    stalled: bool,
    /// A duplicate of `fd` was handed to a face (`Client::watch_fd`): the socket is shut
    /// down when the connection ends, since closing `fd` alone would keep it open.
    dup_out: bool,
}

#[derive(Default)]
pub(crate) struct DirectRead {
    /// Lock order: before the session's lock.
    pub(crate) slot: Mutex<Option<Attached>>,
    /// Tells the connection task to look at `ended` (or just to read again).
    pub(crate) nudge: Notify,
    /// How long the last `Client::wait` took, in microseconds.
    last_wait_us: AtomicU64,
}

/// Waits shorter than this mean a stream of messages: the next wait leaves reading to
/// the connection task (see `Client::wait`). A round trip through a broker takes longer.
const LONG_WAIT: Duration = Duration::from_micros(100);

/// What one read from a waiting thread did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direct {
    /// No direct reading now (no plain-TCP connection, the queue is full, the stream
    /// ended): wait for the connection task instead.
    Unavailable,
    /// Nothing to read: poll this socket.
    Idle(i32),
    /// Bytes were read and handled.
    Read,
}

impl DirectRead {
    pub(crate) fn last_wait_was_long(&self) -> bool {
        self.last_wait_us.load(Ordering::Relaxed) >= LONG_WAIT.as_micros() as u64
    }

    pub(crate) fn waited(&self, d: Duration) {
        self.last_wait_us
            .store(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn attach(&self, generation: u64, fd: i32, state: ReadState) {
        *self.slot.lock() = Some(Attached {
            generation,
            fd,
            state,
            ended: None,
            stalled: false,
            dup_out: false,
        });
    }

    /// Ends direct reading of connection `generation` (no-op for another one); true if
    /// a duplicate of its fd was handed out.
    pub(crate) fn detach(&self, generation: u64) -> bool {
        let mut slot = self.slot.lock();
        if slot.as_ref().is_some_and(|a| a.generation == generation) {
            return slot.take().is_some_and(|a| a.dup_out);
        }
        false
    }
}

/// Detaches when `detach_now` is called or when dropped, also when the connection task
/// is aborted: the socket is closed right after, and its fd number may be reused at
/// once. When dropped it also shuts the socket down if a face holds a duplicate of it.
pub(crate) struct DetachOnDrop<'a> {
    shared: &'a Shared,
    generation: u64,
    fd: i32,
    attached: bool,
    dup_out: bool,
}

impl<'a> DetachOnDrop<'a> {
    pub(crate) fn new(shared: &'a Shared, generation: u64, fd: i32) -> Self {
        Self {
            shared,
            generation,
            fd,
            attached: true,
            dup_out: false,
        }
    }

    pub(crate) fn detach_now(&mut self) {
        if std::mem::take(&mut self.attached) {
            self.dup_out = self.shared.direct_read.detach(self.generation);
        }
    }
}

impl Drop for DetachOnDrop<'_> {
    fn drop(&mut self) {
        self.detach_now();
        if self.dup_out {
            crate::sockopt::shutdown(self.fd);
        }
    }
}

impl Shared {
    /// One non-blocking read of the attached connection from the calling thread, handled
    /// at once (see the module documentation).
    pub(crate) fn read_direct(&self) -> Direct {
        if !self.events.has_room() {
            return Direct::Unavailable;
        }
        let mut slot = self.direct_read.slot.lock();
        let Some(a) = slot.as_mut() else {
            return Direct::Unavailable;
        };
        if a.stalled {
            return Direct::Unavailable;
        }
        a.state.reserve();
        match crate::sockopt::recv_now(a.fd, &mut a.state.buf) {
            Ok(0) => {}
            Ok(_) => {
                if let Err(c) = a.state.process(self, a.generation) {
                    a.ended = Some(c);
                    a.stalled = true;
                    self.direct_read.nudge.notify_one();
                }
                if a.state.wants_quickack() {
                    crate::sockopt::quickack(a.fd);
                }
                return Direct::Read;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Direct::Idle(a.fd),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Direct::Idle(a.fd),
            Err(_) => {}
        }
        // End of stream or an error: the connection task sees it too and ends the
        // connection; a readable-forever socket must not make waiters spin meanwhile.
        a.stalled = true;
        self.direct_read.nudge.notify_one();
        Direct::Unavailable
    }
}

impl Shared {
    /// A duplicate of the current plain-TCP connection's socket for a face's event loop
    /// to watch (`None` if there is none); from now on the connection task leaves the
    /// reading to that face's `read_watched` calls (until `unwatch`).
    pub(crate) fn watch_fd(&self) -> Option<i32> {
        let mut slot = self.direct_read.slot.lock();
        let a = slot.as_mut().filter(|a| !a.stalled)?;
        let dup = crate::sockopt::dup(a.fd)?;
        a.dup_out = true;
        self.events.set_watched(true);
        Some(dup)
    }

    /// The face stopped watching: the connection task reads from now on (told to, if
    /// it had left the socket to the face).
    pub(crate) fn unwatch(&self) {
        if self.events.set_watched(false) {
            self.direct_read.nudge.notify_one();
        }
    }

    /// Reads until the socket would block; None when it cannot read directly.
    pub(crate) fn read_until_idle(&self) -> Option<()> {
        loop {
            match self.read_direct() {
                Direct::Read => continue,
                Direct::Idle(_) => return Some(()),
                Direct::Unavailable => return None,
            }
        }
    }

    /// (watching face, socket readable) Reads and handles what the socket holds; the
    /// face drains the queue right after (see `EventQueue::quietly`). False
    /// when direct reading is not possible now (connection ended, queue full or paused):
    /// the face must stop watching (the connection task reads meanwhile).
    pub(crate) fn read_watched(&self) -> bool {
        // One read: the face's selector is level-triggered and reports any rest again.
        if super::EventQueue::quietly(|| self.read_direct()) != Direct::Unavailable {
            return true;
        }
        if self.events.set_watched(false) {
            self.direct_read.nudge.notify_one();
        }
        false
    }
}

/// Waits for the socket `fd` or the event notifier to become readable, at most `timeout`.
pub(crate) fn poll_socket_and_notifier(fd: i32, notifier: i64, timeout: Duration) {
    crate::sockopt::poll_readable([fd, notifier as i32], timeout);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QoS 0 PUBLISH on topic "t" whose payload is `len` bytes of a pattern from `seed`.
    fn frame(seed: u32, len: usize) -> (Vec<u8>, Vec<u8>) {
        let payload: Vec<u8> = (0..len)
            .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed) as u8)
            .collect();
        let mut remaining = 3 + len;
        let mut f = vec![0x30];
        loop {
            let b = (remaining % 128) as u8;
            remaining /= 128;
            f.push(if remaining > 0 { b | 0x80 } else { b });
            if remaining == 0 {
                break;
            }
        }
        f.extend_from_slice(&[0, 1, b't']);
        f.extend_from_slice(&payload);
        (f, payload)
    }

    /// Feeds `wire` to `state` as a socket would, in reads of at most `chunk(i)` bytes
    /// (and never more than the room `reserve` made), and returns the payloads in order.
    fn read_all(
        state: &mut ReadState,
        wire: &[u8],
        mut chunk: impl FnMut(usize) -> usize,
        mut keep: impl FnMut(Bytes),
    ) {
        let mut at = 0;
        let mut i = 0;
        while at < wire.len() {
            state.reserve();
            let room = state.buf.capacity() - state.buf.len();
            assert!(room >= 4096, "reserve makes room for a read");
            let n = chunk(i).min(room).min(wire.len() - at);
            i += 1;
            state.buf.extend_from_slice(&wire[at..at + n]);
            at += n;
            while let Some(p) = state.decoder.decode(&mut state.buf).unwrap() {
                match p {
                    Packet::Publish(p) => keep(p.payload),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert!(state.buf.is_empty());
    }

    fn state() -> ReadState {
        ReadState::new(ProtocolVersion::V311, 268_435_460, false)
    }

    /// Pseudo-random sizes and read lengths, the same in every run.
    fn lcg(x: &mut u64) -> usize {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*x >> 33) as usize
    }

    #[test]
    fn payloads_kept_by_the_user_stay_intact_while_buffers_are_reused() {
        let mut rng = 7u64;
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for seed in 0..300u32 {
            // Mostly large frames, some small ones, a few larger than a large buffer.
            let len = match lcg(&mut rng) % 10 {
                0 => lcg(&mut rng) % 200,
                1 => 300_000 + lcg(&mut rng) % 900_000,
                _ => 16_000 + lcg(&mut rng) % 120_000,
            };
            let (f, p) = frame(seed, len);
            wire.extend_from_slice(&f);
            expected.push(p);
        }
        // Every third payload is kept until the end; the others are dropped at once,
        // so their buffers come back for reuse while the kept ones still use them.
        let mut kept = Vec::new();
        let mut got = 0;
        let mut s = state();
        let mut rng2 = 11u64;
        read_all(
            &mut s,
            &wire,
            |_| 1 + lcg(&mut rng2) % 200_000,
            |payload| {
                assert_eq!(&payload[..], &expected[got][..], "payload {got}");
                if got % 3 == 0 {
                    kept.push((got, payload));
                }
                got += 1;
            },
        );
        assert_eq!(got, expected.len());
        for (i, payload) in kept {
            assert_eq!(&payload[..], &expected[i][..], "kept payload {i}");
        }
    }

    #[test]
    fn a_stream_of_large_frames_reuses_its_buffers_only_once_their_payloads_are_dropped() {
        let mut wire = Vec::new();
        for seed in 0..200 {
            wire.extend_from_slice(&frame(seed, 65_536).0);
        }
        // Payloads dropped at once (a face that copied them out): a few allocations
        // serve the whole stream of 13 MB.
        let mut s = state();
        read_all(&mut s, &wire, |_| 100_000, drop);
        assert!(s.allocated <= 3, "{} buffers allocated", s.allocated);
        // Payloads all kept: no buffer can be reused, and none was overwritten.
        let mut s = state();
        let mut kept = Vec::new();
        read_all(&mut s, &wire, |_| 100_000, |p| kept.push(p));
        assert!(s.allocated >= 200 * 65_536 / LARGE_BUF, "{}", s.allocated);
        for (seed, p) in kept.iter().enumerate() {
            assert_eq!(&p[..], &frame(seed as u32, 65_536).1[..]);
        }
        let spare = |s: &ReadState| s.spare.iter().map(|(_, size)| size).sum::<usize>();
        assert!(spare(&s) > SMALL_SPARE_BYTES);
        // Small messages from then on: the large spares are let go.
        drop(kept);
        let mut small = Vec::new();
        for seed in 0..60_000 {
            small.extend_from_slice(&frame(seed, 100).0);
        }
        let mut n = 0;
        read_all(
            &mut s,
            &small,
            |_| 100_000,
            |p| {
                assert_eq!(&p[..], &frame(n, 100).1[..]);
                n += 1;
            },
        );
        assert_eq!(n, 60_000);
        assert!(spare(&s) <= SMALL_SPARE_BYTES, "{} bytes kept", spare(&s));
    }
}
