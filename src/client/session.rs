//! The client's MQTT session state, sans I/O.
//!
//! [`Session`] takes calls from the application (publish, subscribe, ...) and packets
//! from the broker, encodes what must be sent into its write buffer and records
//! [`Event`]s for the face. The connection task only moves bytes between the socket
//! and this struct, so everything here is tested without sockets.
//!
//! The state survives reconnects: unacknowledged QoS 1/2 messages and messages queued
//! beyond the inflight window are resent after the next CONNACK, the way paho-mqtt
//! 2.2.0 does it (`_messages_reconnect_reset` then `_handle_connack`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::completion::Completion;
use super::event::{log_level, rc, Event, Message};
use super::props;
use crate::codec::{
    encode_segmented, encoded_len, ByteStr, Connect, Disconnect, Packet, Properties,
    ProtocolVersion, PubAck, Publish, QoS, ReasonCode, Subscribe, SubscribeFilter, Unsubscribe,
};

/// Where an outgoing QoS 1/2 message is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Not sent on the current connection yet (window full, or not connected).
    Queued,
    WaitPubAck,
    WaitPubRec,
    /// PUBREL sent.
    WaitPubComp,
    /// Persistent session resumed while waiting for PUBCOMP: resend PUBREL.
    ResendPubRel,
}

#[derive(Debug, Clone)]
struct OutMessage {
    mid: u16,
    qos: QoS,
    retain: bool,
    dup: bool,
    topic: ByteStr,
    payload: Bytes,
    properties: Option<Box<Properties>>,
    state: OutState,
    /// Completed by the session itself instead of reporting an event (see `Completion`).
    done: Option<Arc<Completion>>,
}

/// A QoS 0 publish encoded into the write buffer: its mid and, if it was published
/// with one, its completion (done once the bytes are written).
pub type WrittenQos0 = (u16, Option<Arc<Completion>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// No transport.
    Disconnected,
    /// CONNECT written, CONNACK not yet received.
    Connecting,
    Connected,
    /// DISCONNECT written; the connection closes once it is flushed.
    Disconnecting,
}

/// Why the connection must end, as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The `Event::Disconnected` code.
    pub code: i32,
    pub from_server: bool,
    pub properties: Option<Bytes>,
    pub error: Option<String>,
    /// For an error we detected: the reason code a v5 client sends in DISCONNECT
    /// before closing (MQTT 5 §4.13.1).
    pub reason: Option<ReasonCode>,
    /// A v5 server DISCONNECT without a reason code byte, reported as such (the face then
    /// shows None, as paho-mqtt does) when `set_report_absent_disconnect_fields` is on.
    pub reason_absent: bool,
}

impl Close {
    pub fn lost(error: impl Into<String>) -> Self {
        Self {
            code: rc::CONN_LOST,
            from_server: false,
            properties: None,
            error: Some(error.into()),
            reason: None,
            reason_absent: false,
        }
    }

    pub fn protocol(error: impl Into<String>) -> Self {
        Self::protocol_with(ReasonCode::PROTOCOL_ERROR, error)
    }

    pub fn protocol_with(reason: ReasonCode, error: impl Into<String>) -> Self {
        Self {
            code: rc::PROTOCOL,
            from_server: false,
            properties: None,
            error: Some(error.into()),
            reason: Some(reason),
            reason_absent: false,
        }
    }

    pub fn by_us() -> Self {
        Self {
            code: rc::SUCCESS,
            from_server: false,
            properties: None,
            error: None,
            reason: None,
            reason_absent: false,
        }
    }

    /// The end of a disconnect() of ours (DISCONNECT written, nothing went wrong).
    pub fn is_by_us(&self) -> bool {
        self.code == rc::SUCCESS && !self.from_server && self.error.is_none()
    }

    pub fn keepalive() -> Self {
        Self {
            code: rc::KEEPALIVE,
            from_server: false,
            properties: None,
            error: Some("no PINGRESP within the keepalive interval".into()),
            reason: None,
            reason_absent: false,
        }
    }
}

/// Keepalive bookkeeping (MQTT 3.1.1 §3.1.2.10, MQTT 5 §3.1.2.10), as paho 2.2 does it:
/// PINGREQ when nothing was sent or nothing was received for the interval; the
/// connection is dead when, after a PINGREQ, nothing at all arrives for another interval
/// (any received byte counts, so a long download does not time out).
#[derive(Debug, Clone)]
pub struct KeepAlive {
    interval: Duration,
    /// No PINGREQ and no timeout while paused (paho sends pings only while a loop runs).
    paused: bool,
    last_out: Instant,
    last_in: Instant,
    ping_sent: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveAction {
    /// Nothing to do before this instant (`None`: keepalive is off).
    Wait(Option<Instant>),
    SendPing,
    TimedOut,
}

impl KeepAlive {
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            paused: false,
            last_out: now,
            last_in: now,
            ping_sent: None,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    pub fn set_paused(&mut self, paused: bool, now: Instant) {
        if self.paused && !paused {
            // Silence while paused was intended: judge the connection afresh.
            self.last_out = now;
            self.last_in = now;
            self.ping_sent = None;
        }
        self.paused = paused;
    }

    pub fn on_sent(&mut self, now: Instant) {
        self.last_out = now;
    }

    pub fn on_received(&mut self, now: Instant) {
        self.last_in = now;
    }

    pub fn on_pingresp(&mut self) {
        self.ping_sent = None;
    }

    /// `connected`: a CONNACK was received (no PINGREQ before it; silence before the
    /// CONNACK for a whole interval ends the connection).
    pub fn poll(&mut self, now: Instant, connected: bool) -> KeepAliveAction {
        if self.interval.is_zero() || self.paused {
            return KeepAliveAction::Wait(None);
        }
        if let Some(sent) = self.ping_sent {
            let heard = sent.max(self.last_in);
            if now.duration_since(heard) >= self.interval {
                return KeepAliveAction::TimedOut;
            }
            // paho 2.2: bytes still arriving (a large message trickling in) keep the
            // connection, and a PINGREQ still goes out every interval meanwhile.
            if now.duration_since(self.last_out) >= self.interval {
                self.ping_sent = Some(now);
                self.last_out = now;
                return KeepAliveAction::SendPing;
            }
            return KeepAliveAction::Wait(Some(
                (heard + self.interval).min(self.last_out + self.interval),
            ));
        }
        let idle_from = self.last_out.min(self.last_in);
        if now.duration_since(idle_from) >= self.interval {
            if !connected {
                return KeepAliveAction::TimedOut;
            }
            self.ping_sent = Some(now);
            self.last_out = now;
            return KeepAliveAction::SendPing;
        }
        KeepAliveAction::Wait(Some(idle_from + self.interval))
    }
}

/// Message ids in use, one bit each: allocation skips them in O(1).
struct MidSet([u64; 1024]);

impl MidSet {
    fn contains(&self, mid: u16) -> bool {
        self.0[(mid >> 6) as usize] & (1 << (mid & 63)) != 0
    }
    fn insert(&mut self, mid: u16) {
        self.0[(mid >> 6) as usize] |= 1 << (mid & 63);
    }
    fn remove(&mut self, mid: u16) {
        self.0[(mid >> 6) as usize] &= !(1 << (mid & 63));
    }
}

/// Python's `repr()` of a bytes object, as paho's log lines show topics.
fn bytes_repr(b: &[u8]) -> String {
    let mut s = String::from("b'");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('\'');
    s
}

pub struct Session {
    version: ProtocolVersion,
    state: ConnState,
    clean_start: bool,
    last_mid: u16,
    in_use: Box<MidSet>,
    outgoing: VecDeque<OutMessage>,
    inflight: usize,
    max_inflight: usize,
    max_queued: usize,
    /// The server's receive maximum from CONNACK (v5 §3.2.2.3.3); 0 = none given.
    server_receive_max: usize,
    /// The server's Maximum Packet Size from CONNACK (v5 §3.2.2.3.6); 0 = no limit
    /// known (none given, or no CONNACK yet on this connection) or not enforced.
    server_max_packet: usize,
    enforce_max_packet: bool,
    manual_ack: bool,
    log_packets: bool,
    /// Resolve v5 topic aliases of incoming PUBLISH packets (paho leaves the topic empty).
    resolve_aliases: bool,
    report_absent_disconnect_fields: bool,
    accept_invalid_topics: bool,
    keepalive_paused: bool,
    /// Nothing is written on this connection until released (see `set_output_held`).
    output_held: bool,
    /// QoS 2 messages received and PUBREC'd, delivered when PUBREL arrives.
    incoming_qos2: HashMap<u16, Box<Message>>,
    /// See `set_hold_pubrec`.
    hold_pubrec: bool,
    /// Incoming QoS 2 messages of this connection whose PUBREC is held.
    held_pubrec: HashSet<u16>,
    /// v5 topic aliases the server set on this connection (§3.3.2.3.4).
    aliases_in: HashMap<u16, ByteStr>,
    pub keepalive: KeepAlive,
    /// Bumped by every new transport; lets a finished connection task tell that its
    /// connection has already been replaced.
    generation: u64,
    out: BytesMut,
    /// Output that goes before `out`: packet bytes frozen when a large payload was
    /// queued, and such payloads themselves, written from the publisher's own buffer
    /// (no copy into `out`, no fresh memory for a queue of large messages).
    segments: Vec<Bytes>,
    /// QoS 0 publishes encoded into `out` and not yet written.
    qos0_unwritten: Vec<WrittenQos0>,
    /// Messages published with a `Completion` are also reported as events.
    report_completed: bool,
    events: Vec<Event>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self {
            version: ProtocolVersion::V311,
            state: ConnState::Disconnected,
            clean_start: true,
            last_mid: 0,
            in_use: Box::new(MidSet([0; 1024])),
            outgoing: VecDeque::new(),
            inflight: 0,
            max_inflight: 20,
            max_queued: 0,
            server_receive_max: 0,
            server_max_packet: 0,
            enforce_max_packet: true,
            manual_ack: false,
            log_packets: false,
            resolve_aliases: true,
            report_absent_disconnect_fields: false,
            accept_invalid_topics: false,
            keepalive_paused: false,
            output_held: false,
            incoming_qos2: HashMap::new(),
            hold_pubrec: false,
            held_pubrec: HashSet::new(),
            aliases_in: HashMap::new(),
            keepalive: KeepAlive::new(Duration::ZERO, Instant::now()),
            generation: 0,
            out: BytesMut::with_capacity(8192),
            segments: Vec::new(),
            qos0_unwritten: Vec::new(),
            report_completed: false,
            events: Vec::new(),
        }
    }

    pub fn set_max_inflight(&mut self, n: usize) {
        self.max_inflight = n;
        if self.state == ConnState::Connected {
            self.fill_window();
        }
    }
    pub fn set_max_queued(&mut self, n: usize) {
        self.max_queued = n;
    }
    pub fn set_manual_ack(&mut self, on: bool) {
        self.manual_ack = on;
    }
    /// On: the PUBREC of an incoming QoS 2 PUBLISH is not sent on receipt but reported
    /// as [`Event::PubRecHeld`], and sent by [`release_pubrec`](Self::release_pubrec)
    /// once the face has taken that event in: what paho-mqtt does for a host that drives
    /// its loop (it answers a PUBLISH when `loop_read()` reads it, and writes the
    /// answer in `loop_write()`), so the PUBREL and the message cannot come before the
    /// host has dispatched what arrived with the PUBLISH. Turning it off sends the
    /// PUBRECs still held.
    pub fn set_hold_pubrec(&mut self, on: bool) {
        self.hold_pubrec = on;
        if !on {
            let mut held: Vec<u16> = self.held_pubrec.iter().copied().collect();
            held.sort_unstable();
            for mid in held {
                self.release_pubrec(mid);
            }
        }
    }
    /// Sends the PUBREC held for `mid` on this connection (§4.3.3); nothing if none is
    /// held (already sent, or the connection that received it is gone: the broker then
    /// sends the PUBLISH again and it is held anew).
    pub fn release_pubrec(&mut self, mid: u16) {
        if self.held_pubrec.remove(&mid) && self.transport_open() {
            self.send_ack(Packet::PubRec, mid, "PUBREC");
        }
    }
    pub fn set_log_packets(&mut self, on: bool) {
        self.log_packets = on;
    }
    /// Default on: nothing larger than the server's Maximum Packet Size is sent (see
    /// `fits`). Off: sent anyway, as paho-mqtt 2.2 does. Read at each CONNACK.
    pub fn set_enforce_max_packet_size(&mut self, on: bool) {
        self.enforce_max_packet = on;
    }
    pub fn set_resolve_topic_aliases(&mut self, on: bool) {
        self.resolve_aliases = on;
    }
    /// Read when a connection starts (the decoder's `set_accept_invalid_topics`).
    pub fn set_accept_invalid_topics(&mut self, on: bool) {
        self.accept_invalid_topics = on;
    }
    pub fn accept_invalid_topics(&self) -> bool {
        self.accept_invalid_topics
    }
    pub fn set_report_absent_disconnect_fields(&mut self, on: bool) {
        self.report_absent_disconnect_fields = on;
    }

    /// A v5 server DISCONNECT may omit its reason code (remaining length 0, meaning 0x00)
    /// and its properties (remaining length < 2), MQTT 5 §3.14.2.1 / §3.14.2.2. The codec
    /// fills in the defaults; when reporting absent fields is on, `close` says what was
    /// absent instead (paho-mqtt gives None for both): `reason_absent`, and properties
    /// None exactly when there was no properties section (an empty one is `00`).
    pub fn shape_server_disconnect(&self, close: &mut Close, remaining_len: usize) {
        if !self.report_absent_disconnect_fields || !close.from_server || !self.version.is_v5() {
            return;
        }
        close.reason_absent = remaining_len == 0;
        if remaining_len < 2 {
            close.properties = None;
        } else if close.properties.is_none() {
            close.properties = Some(Bytes::from_static(&[0]));
        }
    }
    /// Survives reconnects, like the other settings.
    pub fn set_keepalive_paused(&mut self, paused: bool, now: Instant) {
        self.keepalive_paused = paused;
        self.keepalive.set_paused(paused || self.output_held, now);
    }
    /// While held, the connection writes nothing (CONNECT and everything queued behind
    /// it wait) and sends no PINGREQ: paho-mqtt's connect() from one thread while its
    /// loop thread sleeps only queues CONNECT. Per connection: a new transport starts
    /// released.
    pub fn set_output_held(&mut self, held: bool, now: Instant) {
        self.output_held = held;
        self.keepalive
            .set_paused(held || self.keepalive_paused, now);
    }
    pub fn output_held(&self) -> bool {
        self.output_held
    }
    pub fn state(&self) -> ConnState {
        self.state
    }
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }
    pub fn generation(&self) -> u64 {
        self.generation
    }
    pub fn is_connected(&self) -> bool {
        self.state == ConnState::Connected
    }
    /// The transport is open (CONNECT sent): publishes go out at once, as with paho.
    fn transport_open(&self) -> bool {
        matches!(self.state, ConnState::Connecting | ConnState::Connected)
    }
    pub fn inflight(&self) -> usize {
        self.inflight
    }
    /// Outgoing QoS 1/2 messages not yet completed (inflight and queued).
    pub fn outgoing_len(&self) -> usize {
        self.outgoing.len()
    }

    /// Bytes waiting to be written after the segments (see `has_segments`).
    pub fn out(&self) -> &BytesMut {
        &self.out
    }

    /// Whether anything waits to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.segments.is_empty()
    }

    /// Whether output waits in segments (to be written before `out()`).
    pub fn has_segments(&self) -> bool {
        !self.segments.is_empty()
    }

    /// Moves the segments that go before `out()` to `segments`.
    pub fn take_segments(&mut self, segments: &mut Vec<Bytes>) {
        segments.append(&mut self.segments);
    }

    /// Drops the first `n` bytes of the write buffer (written directly); true when that
    /// was all of it.
    pub fn consume_output(&mut self, n: usize) -> bool {
        let _ = self.out.split_to(n.min(self.out.len()));
        self.out.is_empty()
    }

    /// After the whole write buffer was written directly: the mids of the QoS 0
    /// publishes it held, for their EV_PUBLISHED.
    pub fn take_written_qos0(&mut self, qos0: &mut Vec<WrittenQos0>) {
        qos0.append(&mut self.qos0_unwritten);
    }

    /// Swaps the write buffer with `spare` (cleared by the caller after writing), and
    /// moves the mids of QoS 0 publishes it contains into `qos0`.
    pub fn take_output(&mut self, spare: &mut BytesMut, qos0: &mut Vec<WrittenQos0>) {
        std::mem::swap(&mut self.out, spare);
        std::mem::swap(&mut self.qos0_unwritten, qos0);
    }

    /// Completes `done`, if any; returns whether the message is to be reported as an
    /// event (it had no completion, or completed ones are reported).
    fn completed(&self, done: Option<Arc<Completion>>) -> bool {
        match done {
            Some(d) => {
                d.complete();
                self.report_completed
            }
            None => true,
        }
    }

    /// While on, messages published with a completion are reported as events too (the
    /// paho facade turns it on when `on_publish` is set while such messages are pending).
    pub fn set_report_completed(&mut self, on: bool) {
        self.report_completed = on;
    }

    pub fn report_completed(&self) -> bool {
        self.report_completed
    }

    /// Messages published with a completion that is not done yet.
    pub fn pending_completions(&self) -> usize {
        self.outgoing.iter().filter(|m| m.done.is_some()).count()
            + self.qos0_unwritten.iter().filter(|w| w.1.is_some()).count()
    }

    /// QoS 0 publishes not written when their connection ends are lost: their
    /// completions fail with `MQTT_ERR_CONN_LOST` (paho marks such infos published with
    /// that code, so waiters wake up and raise).
    fn lose_unwritten_qos0(&mut self) {
        for (_, done) in self.qos0_unwritten.drain(..) {
            if let Some(d) = done {
                d.fail(rc::CONN_LOST);
            }
        }
    }

    /// Events recorded since the last call.
    pub fn take_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    fn log(&mut self, message: String) {
        self.events.push(Event::Log {
            level: log_level::DEBUG,
            message,
        });
    }

    fn send(&mut self, packet: &Packet) {
        // The packets the session builds are valid by construction except for sizes
        // that the face checks first; an encoding failure is reported, not sent.
        // Large payloads are written from their own buffer (see `encode_segmented`).
        let result = encode_segmented(packet, self.version, &mut self.out, &mut self.segments);
        if let Err(e) = result {
            self.events.push(Event::Log {
                level: log_level::ERR,
                message: format!("failed to encode {:?}: {e}", packet.packet_type()),
            });
        }
    }

    fn next_mid(&mut self) -> u16 {
        // 65535 ids cannot all be in use in practice; the bound keeps this total.
        for _ in 0..u16::MAX {
            self.last_mid = self.last_mid.wrapping_add(1);
            if self.last_mid == 0 {
                self.last_mid = 1;
            }
            if !self.in_use.contains(self.last_mid) {
                return self.last_mid;
            }
        }
        self.last_mid
    }

    fn window(&self) -> usize {
        match (self.max_inflight, self.server_receive_max) {
            (0, 0) => usize::MAX,
            (0, s) => s,
            (m, 0) => m,
            (m, s) => m.min(s),
        }
    }

    fn window_open(&self) -> bool {
        self.inflight < self.window()
    }

    fn send_publish(&mut self, idx: usize) {
        let m = &self.outgoing[idx];
        let packet = Self::publish_packet(m);
        if self.log_packets {
            let msg = format!(
                "Sending PUBLISH (d{}, q{}, r{}, m{}), '{}', ... ({} bytes)",
                m.dup as u8,
                m.qos as u8,
                m.retain as u8,
                m.mid,
                bytes_repr(m.topic.as_bytes()),
                m.payload.len()
            );
            self.log(msg);
        }
        self.send(&packet);
    }

    fn send_ack(&mut self, kind: fn(PubAck) -> Packet, pkid: u16, name: &str) {
        if self.log_packets {
            self.log(format!("Sending {name} (Mid: {pkid})"));
        }
        self.send(&kind(PubAck {
            pkid,
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }));
    }

    /// False when `packet` is larger than the server's Maximum Packet Size: MQTT 5
    /// §3.2.2.3.6 [MQTT-3.2.2-15], the client MUST NOT send it. paho-mqtt 2.2 ignores the
    /// limit (the server then disconnects with 0x95); turbomqtt refuses to send instead.
    fn fits(&mut self, packet: &Packet) -> bool {
        if self.server_max_packet == 0 {
            return true;
        }
        let len = encoded_len(packet, self.version);
        if len <= self.server_max_packet {
            return true;
        }
        self.events.push(Event::Log {
            level: log_level::ERR,
            message: format!(
                "{:?} of {len} bytes exceeds the server's Maximum Packet Size {}; not sent",
                packet.packet_type(),
                self.server_max_packet
            ),
        });
        false
    }

    fn publish_packet(m: &OutMessage) -> Packet {
        Packet::Publish(Publish {
            dup: m.dup,
            qos: m.qos,
            retain: m.retain,
            topic: m.topic.clone(),
            pkid: m.mid,
            properties: m.properties.clone(),
            payload: m.payload.clone(),
        })
    }

    /// Sends queued messages while the inflight window has room (in order).
    fn fill_window(&mut self) {
        // Every message not inflight is waiting to be sent; none waiting is the common
        // case and must not cost a scan of a long inflight list on every acknowledgement.
        if self.outgoing.len() == self.inflight {
            return;
        }
        let mut i = 0;
        while i < self.outgoing.len() && self.window_open() {
            let state = self.outgoing[i].state;
            match state {
                OutState::Queued
                    if self.server_max_packet != 0 && {
                        let packet = Self::publish_packet(&self.outgoing[i]);
                        !self.fits(&packet)
                    } =>
                {
                    // Queued before this server's limit was known: never sent, reported
                    // as a failed delivery (paho-mqtt has no code for it; 0x80).
                    let m = self.outgoing.remove(i).expect("index in range");
                    self.in_use.remove(m.mid);
                    if self.completed(m.done) {
                        self.events.push(Event::Published {
                            mid: m.mid,
                            qos: m.qos as u8,
                            code: ReasonCode::UNSPECIFIED_ERROR.0,
                            properties: None,
                        });
                    }
                    continue;
                }
                OutState::Queued => {
                    self.outgoing[i].state = if self.outgoing[i].qos == QoS::AtLeastOnce {
                        OutState::WaitPubAck
                    } else {
                        OutState::WaitPubRec
                    };
                    self.inflight += 1;
                    self.send_publish(i);
                }
                OutState::ResendPubRel => {
                    self.outgoing[i].state = OutState::WaitPubComp;
                    self.inflight += 1;
                    let mid = self.outgoing[i].mid;
                    self.send_ack(Packet::PubRel, mid, "PUBREL");
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Application PUBLISH. Returns paho's `(rc, mid)`.
    pub fn publish(
        &mut self,
        topic: ByteStr,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Option<Box<Properties>>,
    ) -> (i32, u16) {
        self.publish_completing(topic, payload, qos, retain, properties, None)
    }

    /// [`publish`](Self::publish) with a completion the session marks done when the
    /// message is written (QoS 0) or acknowledged (QoS 1/2), instead of an
    /// `Event::Published` (also reported while `set_report_completed` is on). A refused
    /// publish (rc other than SUCCESS, and NO_CONN for QoS 0) never completes it.
    pub fn publish_completing(
        &mut self,
        topic: ByteStr,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Option<Box<Properties>>,
        done: Option<Arc<Completion>>,
    ) -> (i32, u16) {
        if qos != QoS::AtMostOnce && self.max_queued > 0 && self.outgoing.len() >= self.max_queued {
            // paho allocates the mid before refusing, so the counter still moves.
            return (rc::QUEUE_SIZE, self.next_mid());
        }
        let mid = self.next_mid();
        // Without properties the size is bounded by 10 bytes of framing, so the exact
        // length is only computed near the server's limit (or with properties).
        let (topic, payload, properties) = if self.server_max_packet != 0
            && (properties.is_some()
                || 10 + topic.as_bytes().len() + payload.len() > self.server_max_packet)
        {
            let packet = Packet::Publish(Publish {
                dup: false,
                qos,
                retain,
                topic,
                pkid: mid,
                properties,
                payload,
            });
            let fits = self.fits(&packet);
            let Packet::Publish(p) = packet else {
                unreachable!("built above")
            };
            if !fits {
                return (rc::PAYLOAD_SIZE, mid);
            }
            (p.topic, p.payload, p.properties)
        } else {
            (topic, payload, properties)
        };
        if qos == QoS::AtMostOnce {
            if !self.transport_open() {
                return (rc::NO_CONN, mid);
            }
            let packet = Packet::Publish(Publish {
                dup: false,
                qos,
                retain,
                topic,
                pkid: 0,
                properties,
                payload,
            });
            if self.log_packets {
                if let Packet::Publish(p) = &packet {
                    let msg = format!(
                        "Sending PUBLISH (d0, q0, r{}, m{}), '{}', ... ({} bytes)",
                        retain as u8,
                        mid,
                        bytes_repr(p.topic.as_bytes()),
                        p.payload.len()
                    );
                    self.log(msg);
                }
            }
            self.send(&packet);
            self.qos0_unwritten.push((mid, done));
            return (rc::SUCCESS, mid);
        }
        self.in_use.insert(mid);
        self.outgoing.push_back(OutMessage {
            mid,
            qos,
            retain,
            dup: false,
            topic,
            payload,
            properties,
            state: OutState::Queued,
            done,
        });
        if !self.transport_open() {
            // Kept and sent after the next CONNACK (paho returns NO_CONN here too).
            return (rc::NO_CONN, mid);
        }
        if self.window_open() {
            let idx = self.outgoing.len() - 1;
            self.outgoing[idx].state = if qos == QoS::AtLeastOnce {
                OutState::WaitPubAck
            } else {
                OutState::WaitPubRec
            };
            self.inflight += 1;
            self.send_publish(idx);
        }
        (rc::SUCCESS, mid)
    }

    /// Application SUBSCRIBE; `(NO_CONN, 0)` without a transport, as paho's `(4, None)`.
    pub fn subscribe(
        &mut self,
        filters: Vec<SubscribeFilter>,
        properties: Properties,
    ) -> (i32, u16) {
        if !self.transport_open() {
            return (rc::NO_CONN, 0);
        }
        let mid = self.next_mid();
        let packet = Packet::Subscribe(Subscribe {
            pkid: mid,
            filters,
            properties,
        });
        if !self.fits(&packet) {
            return (rc::PAYLOAD_SIZE, 0);
        }
        self.in_use.insert(mid);
        if self.log_packets {
            if let Packet::Subscribe(s) = &packet {
                let list: Vec<String> = s
                    .filters
                    .iter()
                    .map(|f| format!("(b'{}', {})", f.filter, f.options.qos as u8))
                    .collect();
                self.log(format!(
                    "Sending SUBSCRIBE (d0, m{mid}) [{}]",
                    list.join(", ")
                ));
            }
        }
        self.send(&packet);
        (rc::SUCCESS, mid)
    }

    pub fn unsubscribe(&mut self, filters: Vec<String>, properties: Properties) -> (i32, u16) {
        if !self.transport_open() {
            return (rc::NO_CONN, 0);
        }
        let mid = self.next_mid();
        let packet = Packet::Unsubscribe(Unsubscribe {
            pkid: mid,
            filters,
            properties,
        });
        if !self.fits(&packet) {
            return (rc::PAYLOAD_SIZE, 0);
        }
        self.in_use.insert(mid);
        if self.log_packets {
            if let Packet::Unsubscribe(u) = &packet {
                self.log(format!("Sending UNSUBSCRIBE (d0, m{mid}) {:?}", u.filters));
            }
        }
        self.send(&packet);
        (rc::SUCCESS, mid)
    }

    /// Writes DISCONNECT; the connection task closes once it is flushed.
    pub fn disconnect(&mut self, code: u8, properties: Properties) -> i32 {
        if !self.transport_open() {
            return rc::NO_CONN;
        }
        if self.log_packets {
            self.log("Sending DISCONNECT".into());
        }
        self.send(&Packet::Disconnect(Disconnect {
            code: ReasonCode(code),
            properties,
        }));
        self.state = ConnState::Disconnecting;
        rc::SUCCESS
    }

    /// Forgets every outgoing QoS 1/2 message (paho's `drop_out_messages`); returns
    /// their mids in order.
    pub fn drop_out_messages(&mut self) -> Vec<u16> {
        let mids: Vec<u16> = self.outgoing.drain(..).map(|m| m.mid).collect();
        for &mid in &mids {
            self.in_use.remove(mid);
        }
        self.inflight = 0;
        mids
    }

    /// We found the server at fault: a v5 session tells it why in DISCONNECT before the
    /// connection closes (MQTT 5 §4.13.1). Returns whether something was written.
    pub fn fail(&mut self, reason: ReasonCode) -> bool {
        if !self.version.is_v5() || !self.transport_open() {
            return false;
        }
        if self.log_packets {
            self.log(format!("Sending DISCONNECT {}", reason.0));
        }
        self.send(&Packet::Disconnect(Disconnect {
            code: reason,
            properties: Properties::default(),
        }));
        self.state = ConnState::Disconnecting;
        true
    }

    /// Manual acknowledgement (paho's `ack()`): PUBACK for QoS 1, PUBCOMP for QoS 2.
    pub fn ack(&mut self, mid: u16, qos: u8) -> i32 {
        if !self.manual_ack {
            return rc::SUCCESS;
        }
        if !self.transport_open() {
            return rc::NO_CONN;
        }
        match qos {
            1 => self.send_ack(Packet::PubAck, mid, "PUBACK"),
            2 => self.send_ack(Packet::PubComp, mid, "PUBCOMP"),
            _ => {}
        }
        rc::SUCCESS
    }

    /// A new transport is open: reset per-connection state, prepare resends as paho's
    /// `_messages_reconnect_reset`, and write CONNECT. Returns the new generation.
    pub fn on_transport_open(&mut self, connect: Connect, now: Instant) -> u64 {
        self.generation += 1;
        self.version = connect.protocol;
        self.clean_start = connect.clean_start;
        self.out.clear();
        self.segments.clear();
        self.lose_unwritten_qos0();
        self.aliases_in.clear();
        self.server_receive_max = 0;
        self.server_max_packet = 0;
        self.inflight = 0;
        for m in self.outgoing.iter_mut() {
            m.state = match (m.qos, m.state) {
                (QoS::AtLeastOnce, OutState::WaitPubAck) => {
                    m.dup = true;
                    OutState::Queued
                }
                (QoS::ExactlyOnce, OutState::WaitPubComp | OutState::ResendPubRel)
                    if !connect.clean_start =>
                {
                    OutState::ResendPubRel
                }
                (QoS::ExactlyOnce, OutState::Queued) => OutState::Queued,
                (QoS::ExactlyOnce, _) => {
                    m.dup = true;
                    OutState::Queued
                }
                (_, s) => s,
            };
        }
        if connect.clean_start {
            self.incoming_qos2.clear();
        }
        self.held_pubrec.clear();
        self.output_held = false;
        self.keepalive = KeepAlive::new(Duration::from_secs(connect.keep_alive.into()), now);
        self.keepalive.set_paused(self.keepalive_paused, now);
        if self.log_packets {
            self.log(format!(
                "Sending CONNECT (u{}, p{}, wr{}, wq{}, wf{}, c{}, k{}) client_id=b'{}'",
                connect.username.is_some() as u8,
                connect.password.is_some() as u8,
                connect.will.as_ref().is_some_and(|w| w.retain) as u8,
                connect.will.as_ref().map_or(0, |w| w.qos as u8),
                connect.will.is_some() as u8,
                connect.clean_start as u8,
                connect.keep_alive,
                connect.client_id
            ));
        }
        self.send(&Packet::Connect(Box::new(connect)));
        self.state = ConnState::Connecting;
        self.generation
    }

    /// The transport is gone. Subscribe/unsubscribe waiting for acks are forgotten (as
    /// in paho); QoS 1/2 messages stay for the next connection.
    pub fn on_connection_lost(&mut self) {
        self.state = ConnState::Disconnected;
        self.held_pubrec.clear();
        self.output_held = false;
        self.out.clear();
        self.segments.clear();
        self.lose_unwritten_qos0();
        self.generation += 1;
        let mut in_use = Box::new(MidSet([0; 1024]));
        for m in &self.outgoing {
            in_use.insert(m.mid);
        }
        self.in_use = in_use;
    }

    /// Handles one packet from the broker. `Err` means the connection must close.
    pub fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::ConnAck(ack) => {
                if self.state == ConnState::Disconnecting {
                    // disconnect() before the CONNACK: our DISCONNECT (and what was queued
                    // before it) is still being written and the connection ends with it.
                    // Not an error, and not reported (paho closes without reading it).
                    if self.log_packets {
                        self.log("Received CONNACK after DISCONNECT; ignored".into());
                    }
                    return Ok(());
                }
                if self.state != ConnState::Connecting {
                    return Err(Close::protocol("unexpected CONNACK"));
                }
                let code = if self.version.is_v5() {
                    ack.code.0
                } else {
                    ack.code.to_v3_connack()
                };
                if self.log_packets {
                    self.log(format!(
                        "Received CONNACK ({}, {})",
                        ack.session_present as u8, code
                    ));
                }
                self.events.push(Event::ConnAck {
                    session_present: ack.session_present,
                    code,
                    properties: props::to_wire_opt(&ack.properties),
                });
                if code != 0 {
                    let paho_rc = if (1..=5).contains(&code) {
                        rc::CONN_REFUSED
                    } else {
                        rc::PROTOCOL
                    };
                    return Err(Close {
                        code: paho_rc,
                        from_server: false,
                        properties: None,
                        error: Some(format!("connection refused, code {code}")),
                        reason: None,
                        reason_absent: false,
                    });
                }
                if let Some(rm) = ack.properties.receive_maximum {
                    self.server_receive_max = rm as usize;
                }
                if let Some(max) = ack.properties.maximum_packet_size {
                    if self.enforce_max_packet {
                        self.server_max_packet = max as usize;
                    }
                }
                if let Some(ka) = ack.properties.server_keep_alive {
                    // v5 §3.2.2.3.14: the server's value replaces ours.
                    self.keepalive.set_interval(Duration::from_secs(ka.into()));
                }
                self.state = ConnState::Connected;
                self.fill_window();
                Ok(())
            }
            Packet::Publish(p) => self.handle_publish(p, None),
            Packet::PubAck(a) => {
                if self.log_packets {
                    self.log(format!("Received PUBACK (Mid: {})", a.pkid));
                }
                self.complete(a.pkid, OutState::WaitPubAck, a.code, &a.properties);
                Ok(())
            }
            Packet::PubRec(a) => {
                if self.log_packets {
                    self.log(format!("Received PUBREC (Mid: {})", a.pkid));
                }
                let pos = self
                    .outgoing
                    .iter()
                    .position(|m| m.mid == a.pkid && m.state == OutState::WaitPubRec);
                match pos {
                    Some(_) if a.code.is_error() => {
                        // v5 §4.3.3: a failing PUBREC ends the exchange.
                        self.complete(a.pkid, OutState::WaitPubRec, a.code, &a.properties);
                    }
                    Some(i) => {
                        self.outgoing[i].state = OutState::WaitPubComp;
                        self.send_ack(Packet::PubRel, a.pkid, "PUBREL");
                    }
                    None => {
                        // Already completed or unknown: answering PUBREL lets the
                        // broker finish its side (PUBCOMP is then ignored).
                        self.send_ack(Packet::PubRel, a.pkid, "PUBREL");
                    }
                }
                Ok(())
            }
            Packet::PubComp(a) => {
                if self.log_packets {
                    self.log(format!("Received PUBCOMP (Mid: {})", a.pkid));
                }
                self.complete(a.pkid, OutState::WaitPubComp, a.code, &a.properties);
                Ok(())
            }
            Packet::PubRel(a) => {
                if self.log_packets {
                    self.log(format!("Received PUBREL (Mid: {})", a.pkid));
                }
                if let Some(m) = self.incoming_qos2.remove(&a.pkid) {
                    self.events.push(Event::Message(m));
                }
                // paho answers an unknown PUBREL too (its issue #284): without persistence
                // the message may have been delivered before a restart.
                if !self.manual_ack {
                    self.send_ack(Packet::PubComp, a.pkid, "PUBCOMP");
                }
                Ok(())
            }
            Packet::SubAck(s) => {
                if self.log_packets {
                    self.log("Received SUBACK".into());
                }
                self.in_use.remove(s.pkid);
                self.events.push(Event::SubAck {
                    mid: s.pkid,
                    codes: s.codes.iter().map(|c| c.0).collect(),
                    properties: props::to_wire_opt(&s.properties),
                });
                Ok(())
            }
            Packet::UnsubAck(u) => {
                if self.log_packets {
                    self.log(format!("Received UNSUBACK (Mid: {})", u.pkid));
                }
                self.in_use.remove(u.pkid);
                self.events.push(Event::UnsubAck {
                    mid: u.pkid,
                    codes: u.codes.iter().map(|c| c.0).collect(),
                    properties: props::to_wire_opt(&u.properties),
                });
                Ok(())
            }
            Packet::PingResp => {
                if self.log_packets {
                    self.log("Received PINGRESP".into());
                }
                self.keepalive.on_pingresp();
                Ok(())
            }
            Packet::Disconnect(d) => {
                if self.log_packets {
                    self.log(format!("Received DISCONNECT {}", d.code.0));
                }
                Err(Close {
                    code: d.code.0.into(),
                    from_server: true,
                    properties: props::to_wire_opt(&d.properties),
                    error: None,
                    reason: None,
                    reason_absent: false,
                })
            }
            Packet::Auth(_) => {
                // Enhanced authentication (v5 §4.12) is not offered by the face yet.
                Err(Close::protocol("AUTH is not supported"))
            }
            other => Err(Close::protocol(format!(
                "unexpected {:?} from the server",
                other.packet_type()
            ))),
        }
    }

    fn complete(&mut self, mid: u16, expected: OutState, code: ReasonCode, p: &Properties) {
        let Some(i) = self
            .outgoing
            .iter()
            .position(|m| m.mid == mid && m.state == expected)
        else {
            return;
        };
        let m = self.outgoing.remove(i).expect("index in range");
        self.inflight = self.inflight.saturating_sub(1);
        self.in_use.remove(mid);
        if self.completed(m.done) {
            self.events.push(Event::Published {
                mid,
                qos: m.qos as u8,
                code: code.0,
                properties: props::to_wire_opt(p),
            });
        }
        if self.state == ConnState::Connected {
            self.fill_window();
        }
    }

    /// A PUBLISH the decoder accepted although its topic is not UTF-8 (see
    /// `set_accept_invalid_topics`): delivered with `raw_topic`, as paho-mqtt does.
    pub fn handle_with_invalid_topic(&mut self, packet: Packet, raw: Bytes) -> Result<(), Close> {
        match packet {
            Packet::Publish(p) => self.handle_publish(p, Some(raw)),
            other => self.handle(other),
        }
    }

    fn handle_publish(&mut self, mut p: Publish, raw_topic: Option<Bytes>) -> Result<(), Close> {
        let alias = p.properties.as_ref().and_then(|pr| pr.topic_alias);
        // A raw topic is never stored as an alias (it is no topic name).
        if let Some(alias) = alias.filter(|_| self.resolve_aliases && raw_topic.is_none()) {
            if alias == 0 {
                return Err(Close::protocol_with(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    "topic alias 0",
                ));
            }
            if p.topic.is_empty() {
                match self.aliases_in.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => {
                        return Err(Close::protocol_with(
                            ReasonCode::TOPIC_ALIAS_INVALID,
                            "unknown topic alias",
                        ))
                    }
                }
            } else {
                self.aliases_in.insert(alias, p.topic.clone());
            }
        }
        if self.log_packets {
            self.log(format!(
                "Received PUBLISH (d{}, q{}, r{}, m{}), '{}', ...  ({} bytes)",
                p.dup as u8,
                p.qos as u8,
                p.retain as u8,
                p.pkid,
                p.topic,
                p.payload.len()
            ));
        }
        let message = Box::new(Message {
            topic: p.topic,
            raw_topic,
            payload: p.payload,
            qos: p.qos as u8,
            retain: p.retain,
            mid: p.pkid,
            dup: p.dup,
            properties: p.properties.as_deref().and_then(props::to_wire_opt),
        });
        match p.qos {
            QoS::AtMostOnce => self.events.push(Event::Message(message)),
            QoS::AtLeastOnce => {
                self.events.push(Event::Message(message));
                if !self.manual_ack {
                    self.send_ack(Packet::PubAck, p.pkid, "PUBACK");
                }
            }
            QoS::ExactlyOnce => {
                // A DUP re-delivery of a message still awaiting PUBREL replaces it and
                // is delivered once (MQTT 5 §4.3.3 method B).
                self.incoming_qos2.insert(p.pkid, message);
                if !self.hold_pubrec {
                    self.send_ack(Packet::PubRec, p.pkid, "PUBREC");
                } else if self.held_pubrec.insert(p.pkid) {
                    self.events.push(Event::PubRecHeld { mid: p.pkid });
                }
            }
        }
        Ok(())
    }

    /// Keepalive check; encodes a PINGREQ when one is due.
    pub fn poll_keepalive(&mut self, now: Instant) -> Result<Option<Instant>, Close> {
        let connected = self.state == ConnState::Connected;
        match self.keepalive.poll(now, connected) {
            KeepAliveAction::Wait(at) => Ok(at),
            KeepAliveAction::SendPing => {
                if self.log_packets {
                    self.log("Sending PINGREQ".into());
                }
                self.send(&Packet::PingReq);
                Ok(Some(now + self.keepalive.interval()))
            }
            KeepAliveAction::TimedOut => {
                if self.state == ConnState::Disconnecting {
                    Err(Close::by_us())
                } else {
                    Err(Close::keepalive())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode, ConnAck, Decoder, SubAck, SubscribeOptions};

    fn connect_packet(version: ProtocolVersion, clean_start: bool, keep_alive: u16) -> Connect {
        Connect {
            protocol: version,
            clean_start,
            keep_alive,
            client_id: "c".into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
            bridge: false,
        }
    }

    /// Decodes and clears what the session wrote.
    fn sent(s: &mut Session) -> Vec<Packet> {
        let mut spare = BytesMut::new();
        let mut qos0 = Vec::new();
        s.take_output(&mut spare, &mut qos0);
        let mut d = Decoder::with_version(s.version(), u32::MAX);
        let mut out = Vec::new();
        while let Some(p) = d.decode(&mut spare).expect("session wrote a valid packet") {
            out.push(p);
        }
        assert!(spare.is_empty());
        out
    }

    fn events(s: &mut Session) -> Vec<Event> {
        s.take_events()
            .filter(|e| !matches!(e, Event::Log { .. }))
            .collect()
    }

    fn connack(s: &mut Session, session_present: bool, properties: Properties) {
        s.handle(Packet::ConnAck(ConnAck {
            session_present,
            code: ReasonCode::SUCCESS,
            properties,
        }))
        .unwrap();
    }

    fn connected(version: ProtocolVersion) -> Session {
        let mut s = Session::new();
        s.on_transport_open(connect_packet(version, true, 60), Instant::now());
        connack(&mut s, false, Properties::default());
        sent(&mut s);
        events(&mut s);
        s
    }

    fn ack(pkid: u16) -> PubAck {
        PubAck {
            pkid,
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }
    }

    fn publish(s: &mut Session, qos: QoS) -> (i32, u16) {
        s.publish(
            ByteStr::from("t"),
            Bytes::from_static(b"p"),
            qos,
            false,
            None,
        )
    }

    fn pubs(packets: &[Packet]) -> Vec<(u16, bool)> {
        packets
            .iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some((p.pkid, p.dup)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn log_lines_show_topics_as_python_bytes() {
        assert_eq!(bytes_repr(b"a/b"), "b'a/b'");
        assert_eq!(bytes_repr(b"it's\n\xff"), "b'it\\'s\\n\\xff'");
    }

    #[test]
    fn connect_is_written_and_connack_connects() {
        let mut s = Session::new();
        assert!(!s.is_connected());
        s.on_transport_open(
            connect_packet(ProtocolVersion::V311, true, 30),
            Instant::now(),
        );
        assert!(matches!(&sent(&mut s)[..], [Packet::Connect(c)] if c.keep_alive == 30));
        assert_eq!(s.state(), ConnState::Connecting);
        connack(&mut s, false, Properties::default());
        assert!(s.is_connected());
        assert_eq!(
            events(&mut s),
            vec![Event::ConnAck {
                session_present: false,
                code: 0,
                properties: None
            }]
        );
    }

    #[test]
    fn refused_connack_reports_the_v3_code_and_closes_with_conn_refused() {
        let mut s = Session::new();
        s.on_transport_open(
            connect_packet(ProtocolVersion::V311, true, 30),
            Instant::now(),
        );
        let r = s.handle(Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::NOT_AUTHORIZED,
            properties: Properties::default(),
        }));
        assert_eq!(r.unwrap_err().code, rc::CONN_REFUSED);
        assert!(matches!(
            events(&mut s)[..],
            [Event::ConnAck { code: 5, .. }]
        ));
        assert!(!s.is_connected());
    }

    #[test]
    fn large_payloads_are_written_from_their_own_buffer_in_order() {
        let mut s = connected(ProtocolVersion::V5);
        let big = Bytes::from(vec![7u8; crate::codec::SEGMENT_PAYLOAD]);
        publish(&mut s, QoS::AtMostOnce);
        s.publish("big".into(), big.clone(), QoS::AtLeastOnce, false, None);
        publish(&mut s, QoS::AtMostOnce);
        assert!(s.has_segments());
        let mut segments = Vec::new();
        s.take_segments(&mut segments);
        assert!(
            segments.iter().any(|seg| seg.as_ptr() == big.as_ptr()),
            "the payload is not copied"
        );
        let mut wire = BytesMut::new();
        for seg in &segments {
            wire.extend_from_slice(seg);
        }
        wire.extend_from_slice(&sent(&mut s).iter().fold(BytesMut::new(), |mut b, p| {
            encode(p, ProtocolVersion::V5, &mut b).unwrap();
            b
        }));
        let mut d = Decoder::with_version(ProtocolVersion::V5, u32::MAX);
        let mut sizes = Vec::new();
        while let Some(Packet::Publish(p)) = d.decode(&mut wire).unwrap() {
            sizes.push(p.payload.len());
        }
        assert_eq!(sizes.len(), 3);
        assert_eq!(sizes[1], crate::codec::SEGMENT_PAYLOAD);
        assert!(!s.has_output());
    }

    #[test]
    fn a_completion_is_done_on_puback_without_an_event_unless_reported() {
        let mut s = connected(ProtocolVersion::V311);
        let quiet = Arc::new(Completion::default());
        let (rc, mid) = s.publish_completing(
            "t".into(),
            Bytes::new(),
            QoS::AtLeastOnce,
            false,
            None,
            Some(quiet.clone()),
        );
        assert_eq!(rc, 0);
        sent(&mut s);
        assert_eq!(s.pending_completions(), 1);
        s.handle(Packet::PubAck(ack(mid))).unwrap();
        assert!(quiet.is_done());
        assert_eq!(s.pending_completions(), 0);
        assert_eq!(events(&mut s), vec![]);

        let reported = Arc::new(Completion::default());
        let (_, mid) = s.publish_completing(
            "t".into(),
            Bytes::new(),
            QoS::AtLeastOnce,
            false,
            None,
            Some(reported.clone()),
        );
        s.set_report_completed(true);
        s.handle(Packet::PubAck(ack(mid))).unwrap();
        assert!(reported.is_done());
        assert!(
            matches!(&events(&mut s)[..], [Event::Published { mid: m, qos: 1, .. }] if *m == mid)
        );
    }

    #[test]
    fn unwritten_qos0_completions_fail_with_conn_lost_when_the_connection_ends() {
        let mut s = connected(ProtocolVersion::V311);
        let done = Arc::new(Completion::default());
        s.publish_completing(
            "t".into(),
            Bytes::new(),
            QoS::AtMostOnce,
            false,
            None,
            Some(done.clone()),
        );
        assert_eq!(s.pending_completions(), 1);
        s.on_connection_lost();
        assert!(done.is_done());
        assert_eq!(done.rc(), rc::CONN_LOST);
        assert_eq!(s.pending_completions(), 0);
    }

    #[test]
    fn qos1_publish_completes_on_puback() {
        let mut s = connected(ProtocolVersion::V311);
        assert_eq!(publish(&mut s, QoS::AtLeastOnce), (0, 1));
        assert_eq!(pubs(&sent(&mut s)), vec![(1, false)]);
        assert_eq!(s.inflight(), 1);
        s.handle(Packet::PubAck(ack(1))).unwrap();
        assert_eq!(
            events(&mut s),
            vec![Event::Published {
                mid: 1,
                qos: 1,
                code: 0,
                properties: None
            }]
        );
        assert_eq!(s.inflight(), 0);
        assert_eq!(s.outgoing_len(), 0);
    }

    #[test]
    fn qos2_publish_runs_pubrec_pubrel_pubcomp() {
        let mut s = connected(ProtocolVersion::V5);
        assert_eq!(publish(&mut s, QoS::ExactlyOnce), (0, 1));
        sent(&mut s);
        s.handle(Packet::PubRec(ack(1))).unwrap();
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRel(a)] if a.pkid == 1));
        assert!(events(&mut s).is_empty());
        s.handle(Packet::PubComp(ack(1))).unwrap();
        assert!(matches!(
            events(&mut s)[..],
            [Event::Published { mid: 1, .. }]
        ));
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn failing_v5_pubrec_ends_the_exchange_with_its_code() {
        let mut s = connected(ProtocolVersion::V5);
        publish(&mut s, QoS::ExactlyOnce);
        sent(&mut s);
        let mut rec = ack(1);
        rec.code = ReasonCode::QUOTA_EXCEEDED;
        s.handle(Packet::PubRec(rec)).unwrap();
        assert!(sent(&mut s).is_empty());
        assert!(matches!(
            events(&mut s)[..],
            [Event::Published {
                mid: 1,
                code: 0x97,
                ..
            }]
        ));
    }

    #[test]
    fn qos0_publish_gets_a_mid_and_is_reported_when_written() {
        let mut s = connected(ProtocolVersion::V311);
        assert_eq!(publish(&mut s, QoS::AtMostOnce), (0, 1));
        assert_eq!(publish(&mut s, QoS::AtLeastOnce), (0, 2));
        let mut spare = BytesMut::new();
        let mut qos0 = Vec::new();
        s.take_output(&mut spare, &mut qos0);
        assert_eq!(qos0.iter().map(|w| w.0).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn incoming_qos1_is_delivered_and_acked_unless_manual() {
        let mut s = connected(ProtocolVersion::V311);
        let incoming = |pkid| {
            Packet::Publish(Publish {
                qos: QoS::AtLeastOnce,
                topic: ByteStr::from("a/b"),
                pkid,
                payload: Bytes::from_static(b"x"),
                ..Default::default()
            })
        };
        s.handle(incoming(7)).unwrap();
        assert!(matches!(&sent(&mut s)[..], [Packet::PubAck(a)] if a.pkid == 7));
        match &events(&mut s)[..] {
            [Event::Message(m)] => {
                assert_eq!((&*m.topic, m.qos, m.mid), ("a/b", 1, 7));
            }
            other => panic!("{other:?}"),
        }
        s.set_manual_ack(true);
        s.handle(incoming(8)).unwrap();
        assert!(sent(&mut s).is_empty(), "PUBACK withheld until ack()");
        assert_eq!(s.ack(8, 1), 0);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubAck(a)] if a.pkid == 8));
    }

    #[test]
    fn incoming_qos2_is_delivered_once_on_pubrel() {
        let mut s = connected(ProtocolVersion::V311);
        let p = Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: ByteStr::from("t"),
            pkid: 3,
            payload: Bytes::from_static(b"x"),
            ..Default::default()
        });
        s.handle(p.clone()).unwrap();
        s.handle(p).unwrap();
        assert_eq!(sent(&mut s).len(), 2, "PUBREC for both copies");
        assert!(events(&mut s).is_empty(), "not delivered before PUBREL");
        s.handle(Packet::PubRel(ack(3))).unwrap();
        assert!(matches!(&sent(&mut s)[..], [Packet::PubComp(a)] if a.pkid == 3));
        assert_eq!(events(&mut s).len(), 1);
        s.handle(Packet::PubRel(ack(3))).unwrap();
        assert!(
            events(&mut s).is_empty(),
            "a repeated PUBREL delivers nothing"
        );
        assert_eq!(sent(&mut s).len(), 1, "but is still answered");
    }

    #[test]
    fn a_held_pubrec_goes_out_only_when_released_once_per_connection() {
        let mut s = connected(ProtocolVersion::V311);
        s.set_hold_pubrec(true);
        let p = Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: ByteStr::from("t"),
            pkid: 3,
            payload: Bytes::from_static(b"x"),
            ..Default::default()
        });
        s.handle(p.clone()).unwrap();
        s.handle(p.clone()).unwrap();
        assert!(sent(&mut s).is_empty(), "no PUBREC on receipt");
        assert_eq!(
            events(&mut s),
            vec![Event::PubRecHeld { mid: 3 }],
            "one report for the message and its DUP copy"
        );
        s.release_pubrec(3);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRec(a)] if a.pkid == 3));
        s.release_pubrec(3);
        assert!(sent(&mut s).is_empty(), "released once");
        s.handle(Packet::PubRel(ack(3))).unwrap();
        assert!(matches!(&sent(&mut s)[..], [Packet::PubComp(a)] if a.pkid == 3));
        assert!(matches!(&events(&mut s)[..], [Event::Message(m)] if m.mid == 3));

        // Held on a connection that is gone: nothing is sent on the next one, where the
        // broker sends the PUBLISH again and it is held anew.
        s.handle(p.clone()).unwrap();
        assert_eq!(events(&mut s), vec![Event::PubRecHeld { mid: 3 }]);
        s.on_connection_lost();
        s.on_transport_open(
            connect_packet(ProtocolVersion::V311, false, 60),
            Instant::now(),
        );
        connack(&mut s, true, Properties::default());
        sent(&mut s);
        events(&mut s);
        s.release_pubrec(3);
        assert!(sent(&mut s).is_empty());
        s.handle(p).unwrap();
        assert_eq!(events(&mut s), vec![Event::PubRecHeld { mid: 3 }]);

        // Turning the hold off sends what is still held; later ones are answered at once.
        s.set_hold_pubrec(false);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRec(a)] if a.pkid == 3));
        s.handle(Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: ByteStr::from("t"),
            pkid: 4,
            payload: Bytes::from_static(b"y"),
            ..Default::default()
        }))
        .unwrap();
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRec(a)] if a.pkid == 4));
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn inflight_window_holds_back_and_releases_in_order() {
        let mut s = connected(ProtocolVersion::V311);
        s.set_max_inflight(2);
        for _ in 0..4 {
            assert_eq!(publish(&mut s, QoS::AtLeastOnce).0, 0);
        }
        assert_eq!(pubs(&sent(&mut s)), vec![(1, false), (2, false)]);
        s.handle(Packet::PubAck(ack(2))).unwrap();
        assert_eq!(pubs(&sent(&mut s)), vec![(3, false)]);
        s.handle(Packet::PubAck(ack(1))).unwrap();
        assert_eq!(pubs(&sent(&mut s)), vec![(4, false)]);
        assert_eq!(s.inflight(), 2);
    }

    #[test]
    fn raising_max_inflight_while_connected_releases_queued_messages() {
        let mut s = connected(ProtocolVersion::V311);
        s.set_max_inflight(1);
        publish(&mut s, QoS::AtLeastOnce);
        publish(&mut s, QoS::AtLeastOnce);
        assert_eq!(pubs(&sent(&mut s)), vec![(1, false)]);
        s.set_max_inflight(0);
        assert_eq!(pubs(&sent(&mut s)), vec![(2, false)]);
    }

    #[test]
    fn unknown_pubrec_is_answered_and_unexpected_connack_is_a_protocol_error() {
        let mut s = connected(ProtocolVersion::V311);
        s.handle(Packet::PubRec(ack(42))).unwrap();
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRel(a)] if a.pkid == 42));
        let r = s.handle(Packet::ConnAck(ConnAck::default()));
        assert_eq!(r.unwrap_err().code, rc::PROTOCOL);
    }

    #[test]
    fn server_receive_maximum_limits_the_window() {
        let mut s = Session::new();
        s.set_max_inflight(0);
        s.on_transport_open(connect_packet(ProtocolVersion::V5, true, 0), Instant::now());
        connack(
            &mut s,
            false,
            Properties {
                receive_maximum: Some(1),
                ..Default::default()
            },
        );
        sent(&mut s);
        publish(&mut s, QoS::AtLeastOnce);
        publish(&mut s, QoS::ExactlyOnce);
        assert_eq!(pubs(&sent(&mut s)), vec![(1, false)]);
        s.handle(Packet::PubAck(ack(1))).unwrap();
        assert_eq!(pubs(&sent(&mut s)), vec![(2, false)]);
    }

    #[test]
    fn max_queued_refuses_with_queue_size() {
        let mut s = Session::new();
        s.set_max_queued(2);
        assert_eq!(publish(&mut s, QoS::AtLeastOnce), (rc::NO_CONN, 1));
        assert_eq!(publish(&mut s, QoS::AtLeastOnce), (rc::NO_CONN, 2));
        assert_eq!(publish(&mut s, QoS::AtLeastOnce), (rc::QUEUE_SIZE, 3));
        assert_eq!(s.outgoing_len(), 2);
    }

    #[test]
    fn publishes_while_disconnected_are_sent_after_connack_without_dup() {
        let mut s = Session::new();
        assert_eq!(publish(&mut s, QoS::AtMostOnce), (rc::NO_CONN, 1));
        assert_eq!(publish(&mut s, QoS::AtLeastOnce), (rc::NO_CONN, 2));
        assert_eq!(publish(&mut s, QoS::ExactlyOnce), (rc::NO_CONN, 3));
        s.on_transport_open(
            connect_packet(ProtocolVersion::V311, true, 60),
            Instant::now(),
        );
        assert!(
            matches!(&sent(&mut s)[..], [Packet::Connect(_)]),
            "nothing before CONNACK"
        );
        connack(&mut s, false, Properties::default());
        assert_eq!(pubs(&sent(&mut s)), vec![(2, false), (3, false)]);
    }

    #[test]
    fn unacknowledged_messages_are_resent_with_dup_after_reconnect() {
        let mut s = connected(ProtocolVersion::V311);
        publish(&mut s, QoS::AtLeastOnce);
        publish(&mut s, QoS::ExactlyOnce);
        publish(&mut s, QoS::ExactlyOnce);
        sent(&mut s);
        s.handle(Packet::PubRec(ack(3))).unwrap();
        sent(&mut s);
        s.on_connection_lost();
        assert!(!s.is_connected());
        // Persistent session: the message waiting for PUBCOMP gets its PUBREL again.
        s.on_transport_open(
            connect_packet(ProtocolVersion::V311, false, 60),
            Instant::now(),
        );
        sent(&mut s);
        connack(&mut s, true, Properties::default());
        let again = sent(&mut s);
        assert_eq!(pubs(&again), vec![(1, true), (2, true)]);
        assert!(again
            .iter()
            .any(|p| matches!(p, Packet::PubRel(a) if a.pkid == 3)));
        // Clean session: QoS 2 restarts from PUBLISH, with DUP.
        s.on_connection_lost();
        s.on_transport_open(
            connect_packet(ProtocolVersion::V311, true, 60),
            Instant::now(),
        );
        sent(&mut s);
        connack(&mut s, false, Properties::default());
        assert_eq!(pubs(&sent(&mut s)), vec![(1, true), (2, true), (3, true)]);
    }

    #[test]
    fn dropped_out_messages_are_not_resent() {
        let mut s = connected(ProtocolVersion::V311);
        publish(&mut s, QoS::AtLeastOnce);
        s.on_connection_lost();
        publish(&mut s, QoS::ExactlyOnce);
        assert_eq!(s.drop_out_messages(), vec![1, 2]);
        s.on_transport_open(
            connect_packet(ProtocolVersion::V311, true, 60),
            Instant::now(),
        );
        sent(&mut s);
        connack(&mut s, false, Properties::default());
        assert!(sent(&mut s).is_empty());
        assert_eq!(publish(&mut s, QoS::AtLeastOnce).1, 3);
    }

    #[test]
    fn mid_allocation_wraps_and_skips_ids_in_use() {
        let mut s = connected(ProtocolVersion::V311);
        publish(&mut s, QoS::AtLeastOnce); // mid 1 stays unacknowledged
        s.last_mid = 65534;
        assert_eq!(publish(&mut s, QoS::AtMostOnce).1, 65535);
        assert_eq!(
            publish(&mut s, QoS::AtMostOnce).1,
            2,
            "skips 0 and the in-use 1"
        );
        let (_, sub_mid) = s.subscribe(
            vec![SubscribeFilter {
                filter: "a".into(),
                options: SubscribeOptions::default(),
            }],
            Properties::default(),
        );
        assert_eq!(sub_mid, 3);
        s.last_mid = 2;
        assert_eq!(
            publish(&mut s, QoS::AtMostOnce).1,
            4,
            "skips the pending SUBSCRIBE"
        );
        s.handle(Packet::SubAck(SubAck {
            pkid: 3,
            codes: vec![ReasonCode::GRANTED_QOS_1],
            properties: Properties::default(),
        }))
        .unwrap();
        s.last_mid = 2;
        assert_eq!(publish(&mut s, QoS::AtMostOnce).1, 3, "freed by SUBACK");
    }

    #[test]
    fn subscribe_needs_a_transport_and_suback_is_reported() {
        let mut s = Session::new();
        assert_eq!(s.subscribe(vec![], Properties::default()), (rc::NO_CONN, 0));
        let mut s = connected(ProtocolVersion::V311);
        let filters = vec![SubscribeFilter {
            filter: "a/#".into(),
            options: SubscribeOptions {
                qos: QoS::ExactlyOnce,
                ..Default::default()
            },
        }];
        assert_eq!(s.subscribe(filters, Properties::default()), (0, 1));
        assert!(matches!(&sent(&mut s)[..], [Packet::Subscribe(p)] if p.pkid == 1));
        s.handle(Packet::SubAck(SubAck {
            pkid: 1,
            codes: vec![ReasonCode::GRANTED_QOS_2],
            properties: Properties::default(),
        }))
        .unwrap();
        assert_eq!(
            events(&mut s),
            vec![Event::SubAck {
                mid: 1,
                codes: vec![2],
                properties: None
            }]
        );
    }

    #[test]
    fn topic_aliases_from_the_server_are_resolved() {
        let mut s = connected(ProtocolVersion::V5);
        let with_alias = |topic: &str| {
            Packet::Publish(Publish {
                topic: ByteStr::from(topic),
                properties: Some(Box::new(Properties {
                    topic_alias: Some(4),
                    ..Default::default()
                })),
                payload: Bytes::from_static(b"x"),
                ..Default::default()
            })
        };
        s.handle(with_alias("long/topic")).unwrap();
        s.handle(with_alias("")).unwrap();
        let topics: Vec<String> = events(&mut s)
            .into_iter()
            .map(|e| match e {
                Event::Message(m) => m.topic.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(topics, vec!["long/topic", "long/topic"]);
        let mut unknown = with_alias("");
        if let Packet::Publish(p) = &mut unknown {
            p.properties.as_mut().unwrap().topic_alias = Some(9);
        }
        assert_eq!(s.handle(unknown).unwrap_err().code, rc::PROTOCOL);
    }

    #[test]
    fn a_v5_session_explains_a_protocol_error_in_disconnect() {
        let mut s = connected(ProtocolVersion::V5);
        assert!(s.fail(ReasonCode::TOPIC_ALIAS_INVALID));
        assert!(matches!(&sent(&mut s)[..], [Packet::Disconnect(d)] if d.code.0 == 0x94));
        let mut v3 = connected(ProtocolVersion::V311);
        assert!(!v3.fail(ReasonCode::PROTOCOL_ERROR), "3.x just closes");
        assert!(sent(&mut v3).is_empty());
    }

    #[test]
    fn server_disconnect_closes_with_its_reason_code() {
        let mut s = connected(ProtocolVersion::V5);
        let close = s
            .handle(Packet::Disconnect(Disconnect {
                code: ReasonCode::SESSION_TAKEN_OVER,
                properties: Properties::default(),
            }))
            .unwrap_err();
        assert_eq!((close.code, close.from_server), (0x8E, true));
    }

    #[test]
    fn disconnect_writes_disconnect_then_refuses_publishes() {
        let mut s = connected(ProtocolVersion::V311);
        assert_eq!(s.disconnect(0, Properties::default()), 0);
        assert!(matches!(&sent(&mut s)[..], [Packet::Disconnect(_)]));
        assert_eq!(s.state(), ConnState::Disconnecting);
        assert_eq!(publish(&mut s, QoS::AtMostOnce).0, rc::NO_CONN);
        s.on_connection_lost();
        assert_eq!(s.disconnect(0, Properties::default()), rc::NO_CONN);
    }

    #[test]
    fn nothing_larger_than_the_servers_maximum_packet_size_is_sent() {
        let mut s = Session::new();
        // Queued while disconnected, before the limit is known: 200 bytes of payload.
        let big = Bytes::from(vec![b'x'; 200]);
        let (rc0, queued) = s.publish("t".into(), big.clone(), QoS::AtLeastOnce, false, None);
        assert_eq!(rc0, rc::NO_CONN);
        let (_, kept) = publish(&mut s, QoS::AtLeastOnce);
        s.on_transport_open(
            connect_packet(ProtocolVersion::V5, true, 60),
            Instant::now(),
        );
        sent(&mut s);
        connack(
            &mut s,
            false,
            Properties {
                maximum_packet_size: Some(64),
                ..Properties::default()
            },
        );
        // The oversized queued message is dropped as a failed delivery; the next goes out.
        let ev = events(&mut s);
        assert!(matches!(
            &ev[..],
            [Event::ConnAck { .. }, Event::Published { mid, code: 0x80, .. }] if *mid == queued
        ));
        assert!(matches!(&sent(&mut s)[..], [Packet::Publish(p)] if p.pkid == kept));
        assert_eq!(s.outgoing_len(), 1);
        // Refused at once while connected: QoS 0 and 1, SUBSCRIBE, UNSUBSCRIBE.
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let (rc, mid) = s.publish("t".into(), big.clone(), qos, false, None);
            assert_eq!(rc, rc::PAYLOAD_SIZE);
            assert_ne!(mid, 0);
        }
        let with_props = Box::new(Properties {
            user_properties: vec![("k".into(), "v".repeat(60))],
            ..Properties::default()
        });
        let small = Bytes::from_static(b"p");
        let r = s.publish(
            "t".into(),
            small.clone(),
            QoS::AtMostOnce,
            false,
            Some(with_props),
        );
        assert_eq!(r.0, rc::PAYLOAD_SIZE);
        let long = SubscribeFilter {
            filter: "f".repeat(70),
            options: SubscribeOptions::default(),
        };
        assert_eq!(
            s.subscribe(vec![long], Properties::default()),
            (rc::PAYLOAD_SIZE, 0)
        );
        let r = s.unsubscribe(vec!["f".repeat(70)], Properties::default());
        assert_eq!(r, (rc::PAYLOAD_SIZE, 0));
        assert!(sent(&mut s).is_empty());
        assert_eq!(s.outgoing_len(), 1);
        // Up to the limit is fine: 64 bytes exactly (2 fixed header, 3 topic, 1 empty
        // properties, 58 payload).
        let r = s.publish(
            "t".into(),
            Bytes::from(vec![b'y'; 58]),
            QoS::AtMostOnce,
            false,
            None,
        );
        assert_eq!(r.0, rc::SUCCESS);
        let out = sent(&mut s);
        assert!(matches!(&out[..], [Packet::Publish(p)] if p.payload.len() == 58));
        let r = s.publish(
            "t".into(),
            Bytes::from(vec![b'y'; 59]),
            QoS::AtMostOnce,
            false,
            None,
        );
        assert_eq!(r.0, rc::PAYLOAD_SIZE);
    }

    #[test]
    fn without_enforcement_a_packet_above_the_limit_is_sent_as_paho_does() {
        let mut s = Session::new();
        s.set_enforce_max_packet_size(false);
        s.on_transport_open(
            connect_packet(ProtocolVersion::V5, true, 60),
            Instant::now(),
        );
        sent(&mut s);
        connack(
            &mut s,
            false,
            Properties {
                maximum_packet_size: Some(64),
                ..Properties::default()
            },
        );
        let big = Bytes::from(vec![b'x'; 200]);
        assert_eq!(
            s.publish("t".into(), big, QoS::AtMostOnce, false, None).0,
            0
        );
        assert!(matches!(&sent(&mut s)[..], [Packet::Publish(p)] if p.payload.len() == 200));
    }

    #[test]
    fn a_held_connection_sends_no_ping_and_a_new_one_starts_released() {
        let t0 = Instant::now();
        let mut s = Session::new();
        s.on_transport_open(connect_packet(ProtocolVersion::V311, true, 5), t0);
        s.set_output_held(true, t0);
        assert!(s.output_held());
        let later = t0 + Duration::from_secs(60);
        assert_eq!(s.poll_keepalive(later), Ok(None));
        // Released: the silence while held does not count.
        s.set_output_held(false, later);
        assert_eq!(
            s.poll_keepalive(later),
            Ok(Some(later + Duration::from_secs(5)))
        );
        s.set_output_held(true, later);
        s.on_transport_open(connect_packet(ProtocolVersion::V311, true, 5), later);
        assert!(!s.output_held());
    }

    #[test]
    fn connack_after_disconnect_is_ignored_and_keeps_the_queued_bytes() {
        // connect(), publish(), disconnect() before the CONNACK arrives: the CONNACK is
        // not an error that would end the connection before PUBLISH and DISCONNECT are
        // written, and it is not reported.
        let mut s = Session::new();
        s.on_transport_open(
            connect_packet(ProtocolVersion::V311, true, 60),
            Instant::now(),
        );
        assert_eq!(publish(&mut s, QoS::AtLeastOnce).0, 0);
        assert_eq!(s.disconnect(0, Properties::default()), 0);
        s.handle(Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }))
        .unwrap();
        assert_eq!(s.state(), ConnState::Disconnecting);
        assert!(events(&mut s).is_empty());
        assert!(matches!(
            &sent(&mut s)[..],
            [
                Packet::Connect(_),
                Packet::Publish(_),
                Packet::Disconnect(_)
            ]
        ));
    }

    #[test]
    fn keepalive_pings_when_idle_and_times_out_without_pingresp() {
        let t0 = Instant::now();
        let ka = Duration::from_secs(10);
        let mut k = KeepAlive::new(ka, t0);
        assert_eq!(k.poll(t0, true), KeepAliveAction::Wait(Some(t0 + ka)));
        // Sending alone does not count: nothing received for 10 s means a ping.
        k.on_sent(t0 + Duration::from_secs(9));
        assert_eq!(k.poll(t0 + ka, true), KeepAliveAction::SendPing);
        let t1 = t0 + ka;
        assert_eq!(
            k.poll(t1 + Duration::from_secs(5), true),
            KeepAliveAction::Wait(Some(t1 + ka))
        );
        assert_eq!(k.poll(t1 + ka, true), KeepAliveAction::TimedOut);
        // A PINGRESP in time keeps the connection: the next interval pings again.
        let mut k = KeepAlive::new(ka, t0);
        assert_eq!(k.poll(t0 + ka, true), KeepAliveAction::SendPing);
        k.on_received(t1 + Duration::from_secs(3));
        k.on_pingresp();
        assert_eq!(k.poll(t1 + ka, true), KeepAliveAction::SendPing);
        // Any received byte counts while a PINGRESP is outstanding (paho 2.2).
        let mut k = KeepAlive::new(ka, t0);
        assert_eq!(k.poll(t0 + ka, true), KeepAliveAction::SendPing);
        k.on_received(t1 + Duration::from_secs(8));
        assert_eq!(
            k.poll(t1 + Duration::from_secs(9), true),
            KeepAliveAction::Wait(Some(t1 + ka))
        );
        // ... and a PINGREQ still goes out every interval while bytes trickle in.
        assert_eq!(k.poll(t1 + ka, true), KeepAliveAction::SendPing);
        let t2 = t1 + ka;
        k.on_received(t2 + Duration::from_secs(5));
        assert_eq!(
            k.poll(t2 + Duration::from_secs(6), true),
            KeepAliveAction::Wait(Some(t2 + ka))
        );
        assert_eq!(k.poll(t2 + ka, true), KeepAliveAction::SendPing);
        let t3 = t2 + ka;
        // Silence for a whole interval after that ends it.
        assert_eq!(k.poll(t3 + ka, true), KeepAliveAction::TimedOut);
    }

    #[test]
    fn a_publish_with_a_non_utf8_topic_is_delivered_only_when_accepted() {
        // QoS 1 PUBLISH, topic b"\xff", mid 7, payload "hi".
        let wire: &[u8] = b"\x32\x07\x00\x01\xff\x00\x07hi";
        let mut strict = Decoder::with_version(ProtocolVersion::V311, u32::MAX);
        assert!(strict.decode(&mut BytesMut::from(wire)).is_err());
        let mut d = Decoder::with_version(ProtocolVersion::V311, u32::MAX);
        d.set_accept_invalid_topics(true);
        let packet = d.decode(&mut BytesMut::from(wire)).unwrap().unwrap();
        let raw = d.take_invalid_topic().expect("raw topic kept");
        let mut s = connected(ProtocolVersion::V311);
        s.handle_with_invalid_topic(packet, raw).unwrap();
        assert!(matches!(&events(&mut s)[..], [Event::Message(m)]
            if m.raw_topic.as_deref() == Some(&b"\xff"[..]) && &m.payload[..] == b"hi"));
        assert!(matches!(&sent(&mut s)[..], [Packet::PubAck(a)] if a.pkid == 7));
        // A valid topic afterwards is an ordinary message again.
        let mut ok = BytesMut::from(&b"\x30\x05\x00\x01ahi"[..]);
        assert!(d.decode(&mut ok).unwrap().is_some());
        assert!(d.take_invalid_topic().is_none());
    }

    #[test]
    fn a_v3_connack_refusing_a_v5_connect_is_reported_as_code_1() {
        let mut d = Decoder::with_version(ProtocolVersion::V5, u32::MAX);
        let packet = d
            .decode(&mut BytesMut::from(&b"\x20\x02\x00\x01"[..]))
            .unwrap()
            .unwrap();
        let mut s = Session::new();
        s.on_transport_open(
            connect_packet(ProtocolVersion::V5, true, 30),
            Instant::now(),
        );
        sent(&mut s);
        let close = s.handle(packet).unwrap_err();
        assert_eq!((close.code, close.reason), (rc::CONN_REFUSED, None));
        assert!(matches!(
            events(&mut s)[..],
            [Event::ConnAck {
                code: 1,
                properties: None,
                ..
            }]
        ));
    }

    #[test]
    fn paused_keepalive_neither_pings_nor_times_out() {
        let t0 = Instant::now();
        let ka = Duration::from_secs(10);
        let mut k = KeepAlive::new(ka, t0);
        k.set_paused(true, t0);
        assert_eq!(k.poll(t0 + ka * 5, true), KeepAliveAction::Wait(None));
        k.set_paused(false, t0 + ka * 5);
        assert_eq!(
            k.poll(t0 + ka * 5, true),
            KeepAliveAction::Wait(Some(t0 + ka * 6))
        );
    }

    #[test]
    fn aliases_can_be_left_unresolved_as_paho_does() {
        let mut s = connected(ProtocolVersion::V5);
        s.set_resolve_topic_aliases(false);
        s.handle(Packet::Publish(Publish {
            topic: ByteStr::new(),
            properties: Some(Box::new(Properties {
                topic_alias: Some(7),
                ..Default::default()
            })),
            ..Default::default()
        }))
        .unwrap();
        assert!(matches!(&events(&mut s)[..], [Event::Message(m)] if m.topic.is_empty()));
    }

    #[test]
    fn keepalive_zero_is_off_and_silence_before_connack_times_out() {
        let t0 = Instant::now();
        let mut off = KeepAlive::new(Duration::ZERO, t0);
        assert_eq!(
            off.poll(t0 + Duration::from_secs(1000), true),
            KeepAliveAction::Wait(None)
        );
        let mut k = KeepAlive::new(Duration::from_secs(5), t0);
        assert_eq!(
            k.poll(t0 + Duration::from_secs(5), false),
            KeepAliveAction::TimedOut
        );
    }

    #[test]
    fn server_keep_alive_replaces_ours() {
        let mut s = Session::new();
        s.on_transport_open(
            connect_packet(ProtocolVersion::V5, true, 60),
            Instant::now(),
        );
        connack(
            &mut s,
            false,
            Properties {
                server_keep_alive: Some(5),
                ..Default::default()
            },
        );
        assert_eq!(s.keepalive.interval(), Duration::from_secs(5));
        sent(&mut s);
        let later = Instant::now() + Duration::from_secs(6);
        assert!(s.poll_keepalive(later).is_ok());
        assert!(matches!(&sent(&mut s)[..], [Packet::PingReq]));
    }
}
