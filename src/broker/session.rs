//! Per-client session state, sans-I/O: the queue of messages waiting to be sent, the
//! outgoing inflight window with its QoS 1/2 handshakes, and the incoming QoS 2 packet
//! identifiers awaiting PUBREL. It lives as long as the MQTT session (MQTT 5 §4.1), which
//! may outlast a network connection; the connection task only moves its packets.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::codec::{PubAck, Publish, QoS, ReasonCode, SubscribeOptions};

use super::message::Message;

/// One message on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// The message QoS downgraded to the subscription's maximum (MQTT 5 §3.8.4).
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 subscription identifiers of every matching subscription (§3.3.4).
    pub subscription_ids: Vec<u32>,
}

/// A subscription as the session remembers it (for resubscribe-free reconnects and
/// for removing it from the router when the session ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSubscription {
    pub options: SubscribeOptions,
    pub id: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// QoS 1 sent, waiting for PUBACK; QoS 2 sent, waiting for PUBREC.
    AwaitAck,
    /// QoS 2 PUBREL sent, waiting for PUBCOMP.
    AwaitComp,
}

#[derive(Debug, Clone)]
struct OutFlight {
    delivery: Delivery,
    state: OutState,
}

/// Unacknowledged outgoing QoS 1/2 messages in the order they were sent. Identifiers
/// are handed out in sequence and clients acknowledge mostly in order, so lookups hit
/// the front; the identifiers sit in their own deque so a scan touches few cache lines
/// (this is on the path of every QoS 1/2 delivery).
#[derive(Debug, Default)]
struct Inflight(Option<Box<InflightWindow>>);

/// Allocated with the first message in flight: idle sessions and QoS 0 subscribers
/// (most of them, most of the time) carry only the empty pointer.
#[derive(Debug, Default)]
struct InflightWindow {
    ids: VecDeque<u16>,
    flights: VecDeque<OutFlight>,
    /// The identifiers increase from the front, counted cyclically from it (what
    /// sequential allocation gives, and removals keep). Then a lookup is a binary
    /// search, and an identifier past the back is known to be free without a search:
    /// with hundreds in flight, the scan for a free identifier per delivery took 5% of
    /// the broker's CPU in a 1->100 QoS 1 fan-out. Cleared only if the counter wraps
    /// onto identifiers still in flight (the lookups then scan).
    unordered: bool,
}

impl InflightWindow {
    /// Distance of `pkid` from the front, counting up cyclically.
    fn offset(&self, pkid: u16) -> u16 {
        pkid.wrapping_sub(*self.ids.front().unwrap_or(&pkid))
    }
}

impl Inflight {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |w| w.ids.len())
    }

    fn position(&self, pkid: u16) -> Option<usize> {
        let w = self.0.as_ref()?;
        if w.ids.front() == Some(&pkid) {
            return Some(0);
        }
        if w.unordered {
            return w.ids.iter().position(|&id| id == pkid);
        }
        let key = w.offset(pkid);
        w.ids.binary_search_by_key(&key, |&id| w.offset(id)).ok()
    }

    fn contains(&self, pkid: u16) -> bool {
        match &self.0 {
            // Past the back of an ordered window: free, no search needed.
            Some(w)
                if !w.unordered && w.ids.back().is_some_and(|&b| w.offset(pkid) > w.offset(b)) =>
            {
                false
            }
            _ => self.position(pkid).is_some(),
        }
    }

    /// Adds a flight at the back; returns it as stored.
    fn push(&mut self, pkid: u16, flight: OutFlight) -> &OutFlight {
        let w = self.0.get_or_insert_with(Default::default);
        match w.ids.back() {
            None => w.unordered = false,
            Some(&b) if w.offset(pkid) <= w.offset(b) => w.unordered = true,
            Some(_) => {}
        }
        w.ids.push_back(pkid);
        w.flights.push_back(flight);
        w.flights.back().expect("just pushed")
    }

    fn at(&self, i: usize) -> Option<&OutFlight> {
        self.0.as_ref()?.flights.get(i)
    }

    fn get_mut(&mut self, pkid: u16) -> Option<&mut OutFlight> {
        let i = self.position(pkid)?;
        self.0.as_mut()?.flights.get_mut(i)
    }

    fn remove_at(&mut self, i: usize) -> Option<OutFlight> {
        let w = self.0.as_mut()?;
        // Acknowledgements come mostly in order: the front, without `remove`'s shifting.
        let f = if i == 0 {
            w.ids.pop_front();
            w.flights.pop_front()
        } else {
            w.ids.remove(i);
            w.flights.remove(i)
        };
        if w.ids.is_empty() && w.ids.capacity() > 256 {
            // A burst's window is not kept by a session that went quiet.
            self.0 = None;
        }
        f
    }

    fn remove(&mut self, pkid: u16) -> Option<OutFlight> {
        let i = self.position(pkid)?;
        self.remove_at(i)
    }

    fn iter(&self) -> impl Iterator<Item = (u16, &OutFlight)> {
        self.0
            .iter()
            .flat_map(|w| w.ids.iter().copied().zip(w.flights.iter()))
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

/// Which bound of a session's queue a dropped message met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLimit {
    /// `max_queued_messages`: QoS 1/2 messages waiting beyond the inflight window.
    Messages,
    /// `max_queued_bytes`: the queued messages of every QoS, in bytes.
    Bytes,
}

/// Outcome of offering a message to a session's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The queue was full: the message was dropped. `first` is true for the first drop
    /// after the queue last had room, so the caller logs once per episode, not per message.
    Dropped {
        first: bool,
        limit: QueueLimit,
    },
    /// QoS 0 messages are not queued for an offline client (MQTT 5 §3.1.2.4 allows it;
    /// mosquitto does not either by default).
    Skipped,
}

/// `max_queued_messages` as stored in a session (larger bounds are the same as no bound).
pub fn queue_bound(max_queued: usize) -> u32 {
    u32::try_from(max_queued).unwrap_or(u32::MAX)
}

/// The bounds of a session's queue (broker options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// `max_queued_messages`: QoS 1/2 messages waiting to enter the inflight window
    /// (mosquitto's meaning). QoS 0 messages are not counted: an online client's QoS 0
    /// traffic is bounded by bytes only, as in mosquitto.
    pub messages: usize,
    /// `max_queued_bytes`: queued messages of every QoS, each counted as its topic,
    /// payload and `QUEUED_MESSAGE_OVERHEAD`; 0 is no bound.
    pub bytes: usize,
}

/// Bytes a queued message counts for besides its topic and payload: the queue entry and
/// the broker's share of the message, so a flood of empty messages is bounded too.
pub const QUEUED_MESSAGE_OVERHEAD: usize = 64;

/// The queue of a session, allocated with its first message: an idle session carries
/// only the empty pointer (8 bytes instead of 32; with the other fields this keeps a
/// session cell within a 256-byte allocation).
#[derive(Debug, Default)]
struct Queue(Option<Box<QueueInner>>);

#[derive(Debug, Default)]
struct QueueInner {
    items: VecDeque<Delivery>,
    /// Bytes of `items` as `delivery_bytes` counts them (see `Session::queued_bytes`).
    bytes: usize,
    /// QoS 1/2 deliveries among `items` (what `max_queued_messages` bounds).
    acked: usize,
    /// Deliveries taken from the queue so far, wrapping: publishers waiting for this
    /// session watch it to tell a slow reader from one that stopped.
    taken: u32,
}

/// The bytes a queued delivery accounts for.
fn delivery_bytes(d: &Delivery) -> usize {
    d.message.payload.len() + d.message.topic.len() + QUEUED_MESSAGE_OVERHEAD
}

impl Queue {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.items.len())
    }

    fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.bytes)
    }

    fn acked(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.acked)
    }

    fn taken(&self) -> u32 {
        self.0.as_ref().map_or(0, |q| q.taken)
    }

    fn front(&self) -> Option<&Delivery> {
        self.0.as_ref()?.items.front()
    }

    fn pop_front(&mut self) -> Option<Delivery> {
        let q = self.0.as_mut()?;
        let d = q.items.pop_front()?;
        q.bytes -= delivery_bytes(&d);
        q.acked -= usize::from(d.qos != QoS::AtMostOnce);
        q.taken = q.taken.wrapping_add(1);
        Some(d)
    }

    fn push_back(&mut self, d: Delivery) {
        let q = self.0.get_or_insert_with(Default::default);
        q.bytes += delivery_bytes(&d);
        q.acked += usize::from(d.qos != QoS::AtMostOnce);
        q.items.push_back(d);
    }

    fn clear(&mut self) {
        if let Some(q) = &mut self.0 {
            q.items.clear();
            q.bytes = 0;
            q.acked = 0;
        }
    }
}

/// Backpressure mark on an online session's queue, in bytes (as `delivery_bytes`
/// counts them): above it publishers wait for the session while it reads (see
/// `Session::backlog_high`), until it drains to half of it. Lower if `max_queued_bytes`
/// is: half of that.
const QUEUED_BYTES_HIGH: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Session {
    pub client_id: Arc<str>,
    /// A B-tree rather than a hash map: 24 bytes when empty instead of 48 (no hasher
    /// state), in every session; a client has few subscriptions.
    pub subscriptions: BTreeMap<String, SessionSubscription>,
    queue: Queue,
    inflight: Inflight,
    next_pkid: u16,
    /// Packet identifiers of QoS 2 PUBLISHes received and routed, waiting for PUBREL;
    /// a duplicate PUBLISH with one of these is acknowledged but not routed again
    /// (MQTT 5 §4.3.3, method B).
    // Boxed and allocated on first use: an empty HashSet is 48 bytes in every
    // session, and most sessions never receive QoS 2.
    #[allow(clippy::box_collection)]
    incoming_qos2: Option<Box<HashSet<u16>>>,
    /// Outgoing inflight window: the client's receive maximum (MQTT 5 §4.9).
    pub send_quota: u16,
    /// `QueueLimits::messages`; u32 (not usize): it keeps a session cell within a
    /// 240-byte allocation.
    max_queued: u32,
    dropping: bool,
    pub online: bool,
    /// `QueueLimits::bytes`, 0: no bound.
    max_queued_bytes: usize,
}

impl Session {
    pub fn new(client_id: Arc<str>, limits: QueueLimits) -> Self {
        Self {
            client_id,
            subscriptions: BTreeMap::new(),
            queue: Queue::default(),
            inflight: Inflight::default(),
            next_pkid: 1,
            incoming_qos2: None,
            send_quota: 65535,
            max_queued: queue_bound(limits.messages),
            dropping: false,
            online: false,
            max_queued_bytes: limits.bytes,
        }
    }

    /// Applies the broker's current limits (a resumed session).
    pub fn set_limits(&mut self, limits: QueueLimits) {
        self.max_queued = queue_bound(limits.messages);
        self.max_queued_bytes = limits.bytes;
    }

    /// `max_queued_messages` of this session.
    pub fn max_queued(&self) -> u32 {
        self.max_queued
    }

    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    /// Topic and payload bytes of the queued deliveries.
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// QoS 1/2 messages waiting in the queue (what `max_queued_messages` bounds).
    pub fn queued_acked(&self) -> usize {
        self.queue.acked()
    }

    /// Deliveries taken from the queue so far (wrapping): unchanged while the client
    /// reads nothing (its socket is full, or its inflight window is).
    pub fn taken(&self) -> u32 {
        self.queue.taken()
    }

    /// The backpressure marks: QoS 1/2 messages and bytes.
    fn high_marks(&self) -> (usize, usize) {
        let bytes = match self.max_queued_bytes {
            0 => QUEUED_BYTES_HIGH,
            max => QUEUED_BYTES_HIGH.min(max / 2).max(1),
        };
        ((self.max_queued as usize / 2).max(1), bytes)
    }

    /// Backpressure: the queue of this (online) session is full enough that publishers
    /// should wait for it while it reads: half of `max_queued_messages` QoS 1/2
    /// messages, or `QUEUED_BYTES_HIGH` bytes (at most half of `max_queued_bytes`). A
    /// burst is then slowed to the pace of the subscriber rather than dropped; a
    /// subscriber that stops reading is not waited for (see `SessionCell::stalled`).
    pub fn backlog_high(&self) -> bool {
        let (messages, bytes) = self.high_marks();
        self.queue.acked() >= messages || self.queue.bytes() >= bytes
    }

    /// The queue drained enough for waiting publishers to read again: half of each
    /// high mark.
    pub fn backlog_low(&self) -> bool {
        let (messages, bytes) = self.high_marks();
        self.queue.acked() <= messages / 2 && self.queue.bytes() <= bytes / 2
    }

    /// Room again after drops: at most half of each limit is used.
    fn has_room_again(&self) -> bool {
        self.queue.acked() <= self.max_queued as usize / 2
            && (self.max_queued_bytes == 0 || self.queue.bytes() <= self.max_queued_bytes / 2)
    }

    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Offers a delivery. Policy when full (mosquitto's): the new message is dropped.
    /// A QoS 1/2 message is queued while fewer than `max_queued_messages` QoS 1/2
    /// messages wait; a message of any QoS while the queue holds fewer than
    /// `max_queued_bytes` bytes (so one message may cross the bound, and one larger
    /// than the bound still gets through an empty queue).
    pub fn enqueue(&mut self, delivery: Delivery) -> Enqueued {
        if !self.online && delivery.qos == QoS::AtMostOnce {
            return Enqueued::Skipped;
        }
        let limit =
            if delivery.qos != QoS::AtMostOnce && self.queue.acked() >= self.max_queued as usize {
                Some(QueueLimit::Messages)
            } else if self.max_queued_bytes != 0 && self.queue.bytes() >= self.max_queued_bytes {
                Some(QueueLimit::Bytes)
            } else {
                None
            };
        if let Some(limit) = limit {
            let first = !self.dropping;
            self.dropping = true;
            return Enqueued::Dropped { first, limit };
        }
        self.queue.push_back(delivery);
        Enqueued::Queued
    }

    fn allocate_pkid(&mut self) -> Option<u16> {
        if self.inflight.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.contains(id) {
                return Some(id);
            }
        }
    }

    /// The next message to send, if the inflight window allows it. Expired messages
    /// (MQTT 5 §3.3.2.3.3) are dropped from the queue on the way.
    pub fn next_outgoing(&mut self, now: Instant) -> Option<(u16, Delivery)> {
        self.send_next(now, |pkid, d| (pkid, d.clone()))
    }

    /// `next_outgoing` that lends the delivery to `send` instead of returning a copy:
    /// a QoS 1/2 delivery goes into the inflight window and `send` sees it there, so
    /// sending it costs no reference-count update on the message (an atomic on a cache
    /// line every subscriber's thread writes).
    pub fn send_next<R>(
        &mut self,
        now: Instant,
        send: impl FnOnce(u16, &Delivery) -> R,
    ) -> Option<R> {
        loop {
            let front = self.queue.front()?;
            if front.message.expired(now) {
                self.queue.pop_front();
                continue;
            }
            if front.qos != QoS::AtMostOnce && self.inflight.len() >= usize::from(self.send_quota) {
                return None;
            }
            let delivery = self.queue.pop_front()?;
            if self.dropping && self.has_room_again() {
                self.dropping = false;
            }
            if delivery.qos == QoS::AtMostOnce {
                return Some(send(0, &delivery));
            }
            let pkid = self.allocate_pkid()?;
            let sent = self.inflight.push(
                pkid,
                OutFlight {
                    delivery,
                    state: OutState::AwaitAck,
                },
            );
            return Some(send(pkid, &sent.delivery));
        }
    }

    pub fn has_sendable(&self) -> bool {
        match self.queue.front() {
            None => false,
            Some(d) => {
                d.qos == QoS::AtMostOnce || self.inflight.len() < usize::from(self.send_quota)
            }
        }
    }

    /// PUBACK for a QoS 1 message we sent. False if the identifier is unknown.
    pub fn on_puback(&mut self, pkid: u16) -> bool {
        let Some(i) = self.inflight.position(pkid) else {
            return false;
        };
        match self.inflight.at(i) {
            Some(f) if f.state == OutState::AwaitAck && f.delivery.qos == QoS::AtLeastOnce => {
                self.inflight.remove_at(i);
                true
            }
            _ => false,
        }
    }

    /// PUBREC for a QoS 2 message we sent: answer with PUBREL (also for an unknown
    /// identifier, with reason 0x92, MQTT 5 §4.3.3). A PUBREC with an error code ends
    /// the flow (§4.3.3).
    pub fn on_pubrec(&mut self, pkid: u16, code: ReasonCode) -> Option<PubAck> {
        match self.inflight.get_mut(pkid) {
            Some(f) if f.delivery.qos == QoS::ExactlyOnce => {
                if code.is_error() {
                    self.inflight.remove(pkid);
                    return None;
                }
                f.state = OutState::AwaitComp;
                Some(PubAck {
                    pkid,
                    ..Default::default()
                })
            }
            _ => Some(PubAck {
                pkid,
                code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                ..Default::default()
            }),
        }
    }

    pub fn on_pubcomp(&mut self, pkid: u16) -> bool {
        match self.inflight.get_mut(pkid) {
            Some(f) if f.state == OutState::AwaitComp => {
                self.inflight.remove(pkid);
                true
            }
            _ => false,
        }
    }

    /// An incoming QoS 2 PUBLISH: true if it is new and must be routed.
    pub fn on_incoming_qos2(&mut self, pkid: u16) -> bool {
        self.incoming_qos2
            .get_or_insert_with(Default::default)
            .insert(pkid)
    }

    pub fn incoming_qos2_len(&self) -> usize {
        self.incoming_qos2.as_ref().map_or(0, |s| s.len())
    }

    /// PUBREL: releases the identifier. False if it was unknown (v5: PUBCOMP 0x92).
    pub fn on_pubrel(&mut self, pkid: u16) -> bool {
        self.incoming_qos2.as_mut().is_some_and(|s| s.remove(&pkid))
    }

    /// What to resend on reconnect, in the original order (MQTT 5 §4.4): unacknowledged
    /// PUBLISHes with DUP set, and PUBRELs for QoS 2 messages already received.
    pub fn resend(&self) -> Vec<Resend> {
        self.inflight
            .iter()
            .map(|(pkid, f)| match f.state {
                OutState::AwaitAck => Resend::Publish(pkid, f.delivery.clone()),
                OutState::AwaitComp => Resend::PubRel(pkid),
            })
            .collect()
    }

    /// Forgets everything but the identity: a clean start reusing the struct.
    pub fn clear(&mut self) {
        self.subscriptions.clear();
        self.queue.clear();
        self.inflight.clear();
        self.incoming_qos2 = None;
        self.dropping = false;
    }
}

#[derive(Debug, Clone)]
pub enum Resend {
    Publish(u16, Delivery),
    PubRel(u16),
}

/// Builds the PUBLISH for a delivery (without topic alias and expiry adjustments,
/// which the connection applies).
pub fn publish_for(pkid: u16, d: &Delivery, dup: bool) -> Publish {
    Publish {
        dup,
        qos: d.qos,
        retain: d.retain,
        topic: d.message.topic.clone(),
        pkid,
        properties: d.message.properties.clone(),
        payload: d.message.payload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ByteStr;
    use bytes::Bytes;

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message::new(
                ByteStr::from("t"),
                Bytes::from_static(b"x"),
                qos,
                false,
            )),
            qos,
            retain: false,
            subscription_ids: vec![],
        }
    }

    /// The packet identifiers `resend` would send again, in its order.
    fn resend_ids(s: &Session) -> Vec<u16> {
        s.resend()
            .iter()
            .map(|r| match r {
                Resend::Publish(p, _) => *p,
                Resend::PubRel(p) => *p,
            })
            .collect()
    }

    fn limits(messages: usize, bytes: usize) -> QueueLimits {
        QueueLimits { messages, bytes }
    }

    fn online(max: usize) -> Session {
        online_with(limits(max, 0))
    }

    fn online_with(limits: QueueLimits) -> Session {
        let mut s = Session::new(Arc::from("c"), limits);
        s.online = true;
        s
    }

    /// What `delivery_bytes` counts for a delivery of `delivery()` ("t", "x").
    const SMALL: usize = 2 + QUEUED_MESSAGE_OVERHEAD;

    fn large(len: usize) -> Delivery {
        Delivery {
            message: Arc::new(Message::new(
                ByteStr::from("big"),
                Bytes::from(vec![7u8; len]),
                QoS::AtMostOnce,
                false,
            )),
            qos: QoS::AtMostOnce,
            retain: false,
            subscription_ids: vec![],
        }
    }

    #[test]
    fn large_payloads_raise_the_backlog_mark_long_before_the_message_bound() {
        let mut s = online(100_000_000);
        let size = 256 * 1024;
        let mut queued = 0;
        while !s.backlog_high() {
            s.enqueue(large(size));
            queued += 1;
            assert!(queued <= 16, "4 MiB of payloads is a full backlog");
        }
        assert_eq!(queued, 16);
        let cost = size + 3 + QUEUED_MESSAGE_OVERHEAD;
        assert_eq!(s.queued_bytes(), 16 * cost);
        assert!(!s.backlog_low());
        let now = Instant::now();
        while !s.backlog_low() {
            s.next_outgoing(now).expect("queued");
        }
        assert_eq!(
            s.queued_len(),
            7,
            "at most 2 MiB left: publishers read again"
        );
        assert_eq!(s.queued_bytes(), 7 * cost);
        s.clear();
        assert_eq!(s.queued_bytes(), 0);
        assert!(s.backlog_low());
    }

    #[test]
    fn qos1_messages_keep_the_message_count_marks() {
        let mut s = online(10);
        for _ in 0..4 {
            s.enqueue(delivery(QoS::AtLeastOnce));
        }
        assert!(!s.backlog_high());
        s.enqueue(delivery(QoS::AtLeastOnce));
        assert!(s.backlog_high(), "half of max_queued");
        let now = Instant::now();
        for _ in 0..3 {
            s.next_outgoing(now);
        }
        assert!(s.backlog_low(), "a quarter of max_queued");
    }

    #[test]
    fn qos1_round_trip_frees_the_window() {
        let mut s = online(10);
        s.send_quota = 1;
        s.enqueue(delivery(QoS::AtLeastOnce));
        s.enqueue(delivery(QoS::AtLeastOnce));
        let (p1, _) = s.next_outgoing(Instant::now()).unwrap();
        assert!(
            s.next_outgoing(Instant::now()).is_none(),
            "window of 1 is full"
        );
        assert!(s.on_puback(p1));
        assert!(!s.on_puback(p1), "second ack is unknown");
        let (p2, _) = s.next_outgoing(Instant::now()).unwrap();
        assert_ne!(p1, p2);
    }

    #[test]
    fn out_of_order_acks_and_resend_in_sending_order() {
        let mut s = online(10);
        for _ in 0..4 {
            s.enqueue(delivery(QoS::AtLeastOnce));
        }
        let ids: Vec<u16> = (0..4)
            .map(|_| s.next_outgoing(Instant::now()).unwrap().0)
            .collect();
        assert!(s.on_puback(ids[2]), "an ack from the middle");
        assert!(s.on_puback(ids[0]));
        let resend = resend_ids(&s);
        assert_eq!(resend, vec![ids[1], ids[3]]);
        // Identifiers still in flight are skipped when the counter wraps onto them.
        s.next_pkid = ids[1];
        s.enqueue(delivery(QoS::AtLeastOnce));
        let (p, _) = s.next_outgoing(Instant::now()).unwrap();
        assert!(p != ids[1] && p != ids[3]);
    }

    #[test]
    fn qos2_outgoing_handshake() {
        let mut s = online(10);
        s.enqueue(delivery(QoS::ExactlyOnce));
        let (p, _) = s.next_outgoing(Instant::now()).unwrap();
        assert!(!s.on_pubcomp(p), "PUBCOMP before PUBREC is not accepted");
        let rel = s.on_pubrec(p, ReasonCode::SUCCESS).unwrap();
        assert_eq!(rel.code, ReasonCode::SUCCESS);
        assert!(matches!(s.resend()[0], Resend::PubRel(x) if x == p));
        assert!(s.on_pubcomp(p));
        assert_eq!(s.inflight_len(), 0);
        let unknown = s.on_pubrec(999, ReasonCode::SUCCESS).unwrap();
        assert_eq!(unknown.code, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
    }

    #[test]
    fn qos0_skipped_offline_and_queue_bounded() {
        let mut s = Session::new(Arc::from("c"), limits(2, 0));
        assert_eq!(s.enqueue(delivery(QoS::AtMostOnce)), Enqueued::Skipped);
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce)), Enqueued::Queued);
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce)), Enqueued::Queued);
        let full = |first| Enqueued::Dropped {
            first,
            limit: QueueLimit::Messages,
        };
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce)), full(true));
        assert_eq!(s.enqueue(delivery(QoS::ExactlyOnce)), full(false));
        assert_eq!(s.queued_len(), 2);
    }

    #[test]
    fn online_qos0_is_bounded_by_bytes_not_by_the_message_count() {
        // The count bound (2) is for QoS 1/2; 10 small messages fill the byte bound.
        let mut s = online_with(limits(2, 10 * SMALL));
        for _ in 0..10 {
            assert_eq!(s.enqueue(delivery(QoS::AtMostOnce)), Enqueued::Queued);
        }
        let full = |first| Enqueued::Dropped {
            first,
            limit: QueueLimit::Bytes,
        };
        assert_eq!(s.enqueue(delivery(QoS::AtMostOnce)), full(true));
        for _ in 0..50 {
            assert_eq!(s.enqueue(delivery(QoS::AtMostOnce)), full(false));
        }
        assert_eq!(s.queued_len(), 10);
        assert_eq!(s.queued_bytes(), 10 * SMALL);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce)),
            full(false),
            "bytes bound QoS 1 too"
        );
        // Draining to half of the bound ends the episode: the next drop is logged again.
        let now = Instant::now();
        for _ in 0..5 {
            s.next_outgoing(now).expect("queued");
        }
        while s.queued_len() < 10 {
            assert_eq!(s.enqueue(delivery(QoS::AtMostOnce)), Enqueued::Queued);
        }
        assert_eq!(
            s.enqueue(delivery(QoS::AtMostOnce)),
            full(true),
            "a new episode"
        );
    }

    #[test]
    fn the_message_count_bounds_only_qos1_and_qos2() {
        let mut s = online_with(limits(3, 0));
        for _ in 0..1000 {
            assert_eq!(s.enqueue(delivery(QoS::AtMostOnce)), Enqueued::Queued);
        }
        for _ in 0..3 {
            assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce)), Enqueued::Queued);
        }
        assert_eq!(
            s.enqueue(delivery(QoS::ExactlyOnce)),
            Enqueued::Dropped {
                first: true,
                limit: QueueLimit::Messages
            }
        );
        assert_eq!(s.enqueue(delivery(QoS::AtMostOnce)), Enqueued::Queued);
        assert_eq!((s.queued_len(), s.queued_acked()), (1004, 3));
        assert_eq!(s.queued_bytes(), 1004 * SMALL);
        // Only the QoS 1/2 messages count toward the backpressure mark by number.
        assert!(s.backlog_high(), "3 of 3 QoS 1 messages");
        s.clear();
        assert_eq!(
            (s.queued_len(), s.queued_acked(), s.queued_bytes()),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_message_larger_than_the_byte_bound_passes_an_empty_queue() {
        let mut s = online_with(limits(1000, 1000));
        assert_eq!(s.enqueue(large(5000)), Enqueued::Queued);
        assert!(matches!(
            s.enqueue(delivery(QoS::AtMostOnce)),
            Enqueued::Dropped {
                limit: QueueLimit::Bytes,
                ..
            }
        ));
        s.next_outgoing(Instant::now()).expect("queued");
        assert_eq!(s.enqueue(delivery(QoS::AtMostOnce)), Enqueued::Queued);
    }

    #[test]
    fn a_small_byte_bound_lowers_the_backpressure_mark() {
        // Half of max_queued_bytes, below the 4 MiB default mark.
        let mut s = online_with(limits(1000, 20 * SMALL));
        for _ in 0..9 {
            s.enqueue(delivery(QoS::AtMostOnce));
        }
        assert!(!s.backlog_high());
        s.enqueue(delivery(QoS::AtMostOnce));
        assert!(s.backlog_high());
        let now = Instant::now();
        for _ in 0..4 {
            s.next_outgoing(now);
        }
        assert!(!s.backlog_low());
        s.next_outgoing(now);
        assert!(s.backlog_low(), "a quarter of the bound");
    }

    #[test]
    fn taken_counts_what_leaves_the_queue() {
        let mut s = online(10);
        s.send_quota = 1;
        assert_eq!(s.taken(), 0);
        s.enqueue(delivery(QoS::AtLeastOnce));
        s.enqueue(delivery(QoS::AtLeastOnce));
        let (p, _) = s.next_outgoing(Instant::now()).unwrap();
        assert_eq!(s.taken(), 1);
        assert!(s.next_outgoing(Instant::now()).is_none(), "window full");
        assert_eq!(
            s.taken(),
            1,
            "a client that does not acknowledge makes no progress"
        );
        s.on_puback(p);
        s.next_outgoing(Instant::now()).unwrap();
        assert_eq!(s.taken(), 2);
    }

    #[test]
    fn unacked_messages_are_resent_in_order() {
        let mut s = online(10);
        for _ in 0..3 {
            s.enqueue(delivery(QoS::AtLeastOnce));
        }
        let ids: Vec<u16> = (0..3)
            .map(|_| s.next_outgoing(Instant::now()).unwrap().0)
            .collect();
        s.on_puback(ids[1]);
        let again: Vec<u16> = s
            .resend()
            .into_iter()
            .map(|r| match r {
                Resend::Publish(p, _) => p,
                Resend::PubRel(p) => p,
            })
            .collect();
        assert_eq!(again, vec![ids[0], ids[2]]);
    }

    #[test]
    fn incoming_qos2_is_routed_once() {
        let mut s = online(10);
        assert!(s.on_incoming_qos2(7));
        assert!(!s.on_incoming_qos2(7), "duplicate before PUBREL");
        assert!(s.on_pubrel(7));
        assert!(!s.on_pubrel(7));
        assert!(s.on_incoming_qos2(7), "identifier reusable after PUBREL");
    }

    #[test]
    fn expired_messages_are_dropped_from_the_queue() {
        let mut s = online(10);
        let mut m = Message::new(ByteStr::from("t"), Bytes::new(), QoS::AtLeastOnce, false);
        m.expires_at = Some(Instant::now());
        s.enqueue(Delivery {
            message: Arc::new(m),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![],
        });
        let later = Instant::now() + std::time::Duration::from_secs(1);
        assert!(s.next_outgoing(later).is_none());
        assert_eq!(s.queued_len(), 0);
    }

    #[test]
    fn packet_ids_skip_those_in_flight() {
        let mut s = online(100_000);
        s.next_pkid = u16::MAX;
        s.enqueue(delivery(QoS::AtLeastOnce));
        s.enqueue(delivery(QoS::AtLeastOnce));
        let (a, _) = s.next_outgoing(Instant::now()).unwrap();
        let (b, _) = s.next_outgoing(Instant::now()).unwrap();
        assert_eq!((a, b), (u16::MAX, 1), "0 is never used");
    }

    #[test]
    fn the_window_agrees_with_a_plain_set_through_wraps_and_odd_acks() {
        // Sequential identifiers, acks in and out of order, and the counter wrapping
        // onto identifiers still in flight (the unordered case), against a plain set.
        let mut s = online(1_000_000);
        let mut model: Vec<u16> = Vec::new();
        let mut x: u32 = 12345;
        let mut rnd = move |n: u32| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 8) % n
        };
        // Start near the top, so the ordered window also wraps past 65535 to 1.
        s.next_pkid = u16::MAX - 300;
        let mut saw_unordered = false;
        for round in 1..40_000u32 {
            saw_unordered |= s.inflight.0.as_ref().is_some_and(|w| w.unordered);
            if round % 10_000 == 0 {
                // Jump the counter into the middle of what is in flight.
                if let Some(&id) = model.get(model.len() / 2) {
                    s.next_pkid = id;
                }
            }
            if rnd(3) != 0 || model.is_empty() {
                s.enqueue(delivery(QoS::AtLeastOnce));
                let (p, _) = s.next_outgoing(Instant::now()).unwrap();
                assert!(p != 0 && !model.contains(&p), "{p} is in flight");
                model.push(p);
            } else {
                let i = if rnd(4) == 0 {
                    rnd(model.len() as u32) as usize
                } else {
                    0
                };
                let p = model.remove(i);
                assert!(s.on_puback(p));
                assert!(!s.on_puback(p));
            }
            if round % 997 == 0 {
                let absent = (1..=u16::MAX).find(|id| !model.contains(id)).unwrap();
                assert!(!s.on_puback(absent));
            }
            if model.len() > 600 {
                for p in model.drain(..400) {
                    assert!(s.on_puback(p));
                }
            }
        }
        let order = resend_ids(&s);
        assert_eq!(order, model, "resent in sending order");
        assert!(
            saw_unordered,
            "the counter wrapped onto identifiers in flight"
        );
    }
}
