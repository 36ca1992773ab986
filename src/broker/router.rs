//! The router: sessions by client id, the subscription tree and the retained store,
//! behind one short-held lock (`Shared::router`). Connection tasks call into it; it never
//! awaits and never does I/O. Lock order: router, then a session cell; never the reverse.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::codec::{topic, ReasonCode, SubscribeOptions};

use super::message::Message;
use super::retained::RetainedStore;
use super::session::{Delivery, Enqueued, QueueLimit, QueueLimits, Session, SessionSubscription};
use super::tree::{Subscriber, SubscriptionTree};

/// A command from the broker to a connection task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Another connection took the client id over (MQTT 5 §3.1.4, reason 0x8E).
    TakenOver,
    /// Close with this v5 DISCONNECT reason (administrative action).
    Disconnect(ReasonCode),
    /// Nothing received for one and a half keep-alive periods (MQTT 5 §3.1.2.10),
    /// noticed by the broker's housekeeping tick rather than a timer per connection.
    KeepAlive,
    /// The broker is stopping.
    Shutdown,
}

/// Signals from the broker to one connection task: a wake-up flag with the task's
/// waker and a command slot. Every idle connection carries one and its task waits on
/// just this and its socket, so it is lighter than a channel or a `Notify` (whose
/// waiting future holds a list node in every idle task), and waking is lock-free.
#[derive(Debug, Default)]
pub struct Signals {
    /// Set by `wake` (messages were queued, or a command is waiting in `command`),
    /// cleared by the `woken` future that sees it.
    woken: AtomicBool,
    waker: AtomicWaker,
    command: Mutex<Option<Control>>,
    /// When the connection last received bytes, in milliseconds since the broker
    /// started, modulo 2^32 (compared by wrapping difference: the longest gap that
    /// matters, 1.5 x the largest keep-alive, is 27 hours, far below 49 days): read by
    /// the keep-alive check in the housekeeping task.
    last_read_ms: AtomicU32,
    /// When the housekeeping sweep last saw `sent` set (same clock): with
    /// `last_read_ms`, how long the connection has been quiet, for parking (`park.rs`).
    last_sent_ms: AtomicU32,
    /// Set by every flush: a flag rather than a time, so writing costs no clock read
    /// (parking needs seconds, not the exact moment).
    sent: AtomicBool,
    /// `PARK_*`: whether the housekeeping task asked the connection to park, or it is
    /// parked (then it is not asked again, which would wake it).
    park: std::sync::atomic::AtomicU8,
    /// The connection's id. With `shared`, what a parked connection's wake-up needs to
    /// unpark it: these signals are then its waker (`park.rs`), no allocation of its own.
    pub conn_id: u64,
    pub shared: std::sync::Weak<super::shared::Shared>,
}

impl Link {
    pub fn peer(&self) -> std::net::SocketAddr {
        (self.peer_ip, self.peer_port).into()
    }
}

impl Signals {
    pub fn new(conn_id: u64, shared: std::sync::Weak<super::shared::Shared>) -> Self {
        Self {
            conn_id,
            shared,
            ..Default::default()
        }
    }

    pub fn read_at(&self, now_ms: u64) {
        self.last_read_ms.store(now_ms as u32, Ordering::Relaxed);
    }

    pub fn mark_sent(&self) {
        self.sent.store(true, Ordering::Relaxed);
    }

    /// Milliseconds since the connection last received bytes.
    pub fn since_read(&self, now_ms: u64) -> u64 {
        elapsed_ms(now_ms, self.last_read_ms.load(Ordering::Relaxed))
    }

    /// Milliseconds since the connection last received or sent bytes (sends as seen
    /// by these sweeps: the caller sweeps every connection periodically).
    pub fn since_active(&self, now_ms: u64) -> u64 {
        if self.sent.swap(false, Ordering::Relaxed) {
            self.last_sent_ms.store(now_ms as u32, Ordering::Relaxed);
        }
        let sent = elapsed_ms(now_ms, self.last_sent_ms.load(Ordering::Relaxed));
        self.since_read(now_ms).min(sent)
    }

    /// Drops the waker (a parked connection's is its own signals: see `park.rs`).
    pub fn clear_waker(&self) {
        drop(self.waker.take());
    }
}

/// Milliseconds from `then` (a stored clock reading modulo 2^32) to `now_ms`. A reading
/// later than `now_ms` (the connection read after the caller took the time) is zero,
/// not a wrapped difference of 49 days: that made a busy publisher's connection look
/// silent and closed it for keep-alive.
fn elapsed_ms(now_ms: u64, then: u32) -> u64 {
    let d = (now_ms as u32).wrapping_sub(then);
    if d > u32::MAX / 2 {
        0
    } else {
        u64::from(d)
    }
}

const PARK_NONE: u8 = 0;
const PARK_REQUESTED: u8 = 1;
const PARK_PARKED: u8 = 2;

impl Signals {
    /// The first command wins (a later one, such as a repeated keep-alive expiry, is
    /// dropped while the first is pending).
    pub fn send(&self, command: Control) {
        self.command.lock().get_or_insert(command);
        self.wake();
    }

    /// Wakes the connection task; wake-ups before it next looks collapse into one.
    pub fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves once `wake` was called since the last time this resolved. Only the
    /// connection task waits here (one waker slot); dropping the future loses nothing.
    pub fn woken(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| self.poll_woken(cx))
    }

    /// `woken` as a poll function, for waits that combine it with socket I/O.
    pub fn poll_woken(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.woken.swap(false, Ordering::AcqRel) {
            return std::task::Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A wake between the check and the registration found no waker to call.
        if self.woken.swap(false, Ordering::AcqRel) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }

    pub fn take(&self) -> Option<Control> {
        self.command.lock().take()
    }

    /// Asks a running connection to park when it is next idle (it is woken to look).
    /// Nothing if it is parked or was asked already.
    pub fn request_park(&self) {
        if self
            .park
            .compare_exchange(
                PARK_NONE,
                PARK_REQUESTED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.wake();
        }
    }

    /// Asks for parking without a wake-up: for a connection that is about to look
    /// (right after CONNACK).
    pub fn want_park(&self) {
        self.park.store(PARK_REQUESTED, Ordering::Release);
    }

    pub fn park_requested(&self) -> bool {
        self.park.load(Ordering::Acquire) == PARK_REQUESTED
    }

    /// Marks the connection parked (true) or running again (false).
    pub fn set_parked(&self, parked: bool) {
        let v = if parked { PARK_PARKED } else { PARK_NONE };
        self.park.store(v, Ordering::Release);
    }

    pub fn is_parked(&self) -> bool {
        self.park.load(Ordering::Acquire) == PARK_PARKED
    }

    /// Sets the wake flag without calling the waker: a resumed connection looks at
    /// its commands and session first.
    pub fn rearm(&self) {
        self.woken.store(true, Ordering::Release);
    }
}

/// The connection currently attached to a session. The session map is also the list
/// of connected clients (`Broker::clients`, keep-alive, shutdown): a connection is
/// listed while it is its session's link, so what `clients()` reports is kept here,
/// inline in the session, rather than in a second map with an entry per connection.
/// The connection id is `signals.conn_id` (not repeated here: 8 bytes more would take
/// the session cell into the next allocation size class).
#[derive(Debug, Clone)]
pub struct Link {
    pub signals: Arc<Signals>,
    /// The peer address inline rather than the connection's formatted `Arc<str>` (a
    /// 48-byte allocation per connection, kept while parked); as address and port
    /// rather than a `SocketAddr` (32 bytes), so the link packs into 48.
    pub peer_ip: std::net::IpAddr,
    pub peer_port: u16,
    pub listener: Arc<str>,
    pub keep_alive: u16,
    pub protocol: u8,
    pub clean_start: bool,
    /// The session ends with this connection (v5 session expiry 0, v3 clean session):
    /// a takeover ends it too, so it is never resumed by the new connection
    /// ([MQTT-3.1.2-6], MQTT 5 §3.1.2.11.2).
    pub session_ends: bool,
}

#[derive(Debug)]
pub struct SessionState {
    pub session: Session,
    pub link: Option<Link>,
    /// Set while offline: when the session ends (MQTT 5 §3.1.2.11.2). None: never.
    pub expires_at: Option<Instant>,
    /// The username of the last connection, for ACL checks at delivery.
    pub username: Option<Arc<str>>,
}

#[derive(Debug)]
pub struct SessionCell {
    pub state: Mutex<SessionState>,
    /// Signalled when an online session's queue falls below the low-water mark, so
    /// publishers held back by it (see `Offered::Busy`) resume.
    pub drained: Notify,
    /// Set when a publisher waited for this session and saw nothing leave its queue
    /// (the client stopped reading): publishers stop waiting for it, its queue fills to
    /// its limits and then drops, until it drains again.
    pub stalled: std::sync::atomic::AtomicBool,
    /// The session has more than one ordinary (not shared) subscription, so a message
    /// may match it twice (`Router::targets` merges those). Kept by the router, read
    /// under its lock.
    overlapping: std::sync::atomic::AtomicBool,
}

/// What happened when a delivery was offered to a session.
pub enum Offered {
    Queued,
    /// Queued, but the queue is above its high-water mark and the session is draining:
    /// the publisher should wait for `drained` before reading more.
    Busy,
    Dropped {
        first: bool,
        limit: QueueLimit,
        client_id: Arc<str>,
    },
    Skipped,
}

impl SessionCell {
    pub fn new(session: Session) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SessionState {
                session,
                link: None,
                expires_at: None,
                username: None,
            }),
            drained: Notify::new(),
            stalled: std::sync::atomic::AtomicBool::new(false),
            overlapping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Records whether `subscriptions` (the session's, after a change) can overlap.
    fn note_subscriptions(
        &self,
        subscriptions: &std::collections::BTreeMap<String, SessionSubscription>,
    ) {
        let ordinary = subscriptions
            .keys()
            .filter(|f| topic::parse_shared(f).is_none())
            .take(2)
            .count();
        self.overlapping
            .store(ordinary > 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Queues a delivery and wakes the attached connection if the queue was empty
    /// (a non-empty queue means the connection is already draining it).
    pub fn offer(&self, delivery: Delivery) -> Offered {
        let mut st = self.state.lock();
        let was_empty = st.session.queued_len() == 0;
        match st.session.enqueue(delivery) {
            Enqueued::Queued => {
                let Some(link) = &st.link else {
                    return Offered::Queued;
                };
                if was_empty {
                    link.signals.wake();
                }
                if st.session.backlog_high()
                    && !self.stalled.load(std::sync::atomic::Ordering::Relaxed)
                {
                    Offered::Busy
                } else {
                    Offered::Queued
                }
            }
            Enqueued::Dropped { first, limit } => Offered::Dropped {
                first,
                limit,
                client_id: st.session.client_id.clone(),
            },
            Enqueued::Skipped => Offered::Skipped,
        }
    }
}

/// A session to deliver one message to.
pub struct Target {
    pub cell: Arc<SessionCell>,
    pub delivery: Delivery,
    shared: bool,
}

/// A will waiting for its delay (MQTT 5 §3.1.3.2.2).
pub struct PendingWill {
    pub client_id: Arc<str>,
    pub due: Instant,
    pub message: Message,
}

#[derive(Default)]
pub struct Router {
    pub sessions: HashMap<Arc<str>, Arc<SessionCell>>,
    pub tree: SubscriptionTree<Arc<SessionCell>>,
    pub retained: RetainedStore,
    pub wills: Vec<PendingWill>,
}

/// Result of attaching a connection to a session at CONNECT.
pub struct Attached {
    pub cell: Arc<SessionCell>,
    pub session_present: bool,
    /// The connection that had this client id, to be told it was taken over.
    pub previous: Option<Link>,
    /// A session of this client id existed under another user name (or none, or with
    /// one where this connection has none): it was discarded, not resumed.
    pub other_user: bool,
    /// Delayed wills of the discarded session: its end makes them due now (MQTT 5
    /// §3.1.3.2.2, "or the Session ends, whichever happens first").
    pub ended_wills: Vec<Message>,
}

impl Router {
    /// Attaches a new connection to the session for `client_id` (MQTT 5 §3.1.2.4):
    /// clean start discards an existing session, otherwise it is resumed, unless it
    /// ended with its connection (the takeover closes that connection: [MQTT-3.1.2-6],
    /// MQTT 5 §3.1.2.11.2) or belongs to another user name (a session's subscriptions
    /// and queued messages never pass from one user to another). A pending will of the
    /// client is cancelled if the session is resumed (§3.1.3.2.2) and due now if not.
    pub fn attach(
        &mut self,
        client_id: &Arc<str>,
        clean_start: bool,
        link: Link,
        username: Option<&str>,
        limits: QueueLimits,
    ) -> Attached {
        let mut pending: Vec<Message> = Vec::new();
        self.wills.retain_mut(|w| {
            if &w.client_id != client_id {
                return true;
            }
            pending.push(std::mem::replace(&mut w.message, Message::empty()));
            false
        });
        let existing = self.sessions.get(client_id).cloned();
        let mut previous = None;
        let mut other_user = false;
        if let Some(cell) = existing {
            let mut st = cell.state.lock();
            previous = st.link.take();
            let ended = previous.as_ref().is_some_and(|l| l.session_ends);
            other_user = st.username.as_deref() != username;
            if !clean_start && !ended && !other_user {
                st.link = Some(link);
                st.session.online = true;
                st.session.set_limits(limits);
                st.expires_at = None;
                drop(st);
                return Attached {
                    cell,
                    session_present: true,
                    previous,
                    other_user,
                    ended_wills: Vec::new(),
                };
            }
            st.session.online = false;
            let filters: Vec<String> = st.session.subscriptions.keys().cloned().collect();
            drop(st);
            for f in filters {
                self.remove_subscription(client_id, &f);
            }
        }
        let mut session = Session::new(client_id.clone(), limits);
        session.online = true;
        let cell = SessionCell::new(session);
        {
            let mut st = cell.state.lock();
            st.link = Some(link);
            st.username = username.map(Arc::from);
        }
        self.sessions.insert(client_id.clone(), cell.clone());
        Attached {
            cell,
            session_present: false,
            previous,
            other_user,
            ended_wills: pending,
        }
    }

    /// Ends a session: its subscriptions leave the tree.
    pub fn remove_session(&mut self, client_id: &Arc<str>, cell: &Arc<SessionCell>) {
        let Some(current) = self.sessions.get(client_id) else {
            return;
        };
        if !Arc::ptr_eq(current, cell) {
            return;
        }
        self.sessions.remove(client_id);
        let filters: Vec<String> = cell
            .state
            .lock()
            .session
            .subscriptions
            .keys()
            .cloned()
            .collect();
        for f in filters {
            self.remove_subscription(client_id, &f);
        }
    }

    fn remove_subscription(&mut self, client_id: &str, filter: &str) -> bool {
        match topic::parse_shared(filter) {
            Some((group, inner)) => self.tree.remove(inner, Some(group), client_id),
            None => self.tree.remove(filter, None, client_id),
        }
    }

    /// Adds a subscription; returns whether it existed before (retain handling 1).
    pub fn subscribe(
        &mut self,
        cell: &Arc<SessionCell>,
        client_id: &Arc<str>,
        filter: &str,
        options: SubscribeOptions,
        id: Option<u32>,
    ) -> bool {
        let sub = Subscriber {
            client_id: client_id.clone(),
            target: cell.clone(),
            options,
            id,
        };
        let existed = match topic::parse_shared(filter) {
            Some((group, inner)) => self.tree.insert(inner, Some(group), sub),
            None => self.tree.insert(filter, None, sub),
        };
        let mut st = cell.state.lock();
        st.session
            .subscriptions
            .insert(filter.to_string(), SessionSubscription { options, id });
        cell.note_subscriptions(&st.session.subscriptions);
        existed
    }

    /// Removes a subscription; v5 reason 0x11 if there was none.
    pub fn unsubscribe(
        &mut self,
        cell: &Arc<SessionCell>,
        client_id: &Arc<str>,
        filter: &str,
    ) -> ReasonCode {
        {
            let mut st = cell.state.lock();
            st.session.subscriptions.remove(filter);
            cell.note_subscriptions(&st.session.subscriptions);
        }
        if self.remove_subscription(client_id, filter) {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::NO_SUBSCRIPTION_EXISTED
        }
    }

    /// Every session `message` goes to, with one delivery per session for overlapping
    /// ordinary subscriptions: the highest QoS among them and all their subscription
    /// identifiers (MQTT 5 §3.3.4); shared subscriptions deliver separately (§4.8.2).
    pub fn targets(&self, message: &Arc<Message>) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        // Sorting the targets to find a session matched twice cost 10% of the broker's
        // instructions in a 1->100 fan-out where no session can be.
        let mut overlap = false;
        self.tree.for_each_match(&message.topic, |m| {
            let s = m.subscriber;
            if s.options.no_local && !m.shared && message.origin.as_ref() == Some(&s.client_id) {
                return;
            }
            overlap |= !m.shared
                && s.target
                    .overlapping
                    .load(std::sync::atomic::Ordering::Relaxed);
            let qos = message.qos.min(s.options.qos);
            out.push(Target {
                cell: s.target.clone(),
                delivery: Delivery {
                    message: message.clone(),
                    qos,
                    retain: s.options.retain_as_published && message.retain,
                    subscription_ids: s.id.into_iter().collect(),
                },
                shared: m.shared,
            });
        });
        if overlap && out.len() > 1 {
            merge_overlapping(&mut out);
        }
        out
    }

    /// Wills whose delay has passed.
    pub fn due_wills(&mut self, now: Instant) -> Vec<Message> {
        let mut due = Vec::new();
        self.wills.retain_mut(|w| {
            if w.due <= now {
                due.push(std::mem::replace(&mut w.message, Message::empty()));
                false
            } else {
                true
            }
        });
        due
    }

    /// Offline sessions whose expiry has passed are removed; returns their ids.
    pub fn expire_sessions(&mut self, now: Instant) -> Vec<Arc<str>> {
        let expired: Vec<(Arc<str>, Arc<SessionCell>)> = self
            .sessions
            .iter()
            .filter(|(_, c)| {
                let st = c.state.lock();
                st.link.is_none() && st.expires_at.is_some_and(|t| t <= now)
            })
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        for (id, cell) in &expired {
            self.remove_session(id, cell);
        }
        expired.into_iter().map(|(id, _)| id).collect()
    }
}

fn merge_overlapping(out: &mut Vec<Target>) {
    out.sort_by_key(|t| (t.shared, Arc::as_ptr(&t.cell) as usize));
    let mut merged: Vec<Target> = Vec::with_capacity(out.len());
    for t in out.drain(..) {
        if let Some(last) = merged.last_mut() {
            if !t.shared && !last.shared && Arc::ptr_eq(&last.cell, &t.cell) {
                last.delivery.qos = last.delivery.qos.max(t.delivery.qos);
                last.delivery.retain |= t.delivery.retain;
                last.delivery
                    .subscription_ids
                    .extend(t.delivery.subscription_ids);
                continue;
            }
        }
        merged.push(t);
    }
    *out = merged;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{ByteStr, QoS};
    use bytes::Bytes;

    const LIMITS: QueueLimits = QueueLimits {
        messages: 10,
        bytes: 0,
    };

    fn link(id: u64) -> Link {
        Link {
            signals: Arc::new(Signals::new(id, std::sync::Weak::new())),
            peer_ip: [127, 0, 0, 1].into(),
            peer_port: 1883,
            listener: Arc::from(""),
            keep_alive: 0,
            protocol: 4,
            clean_start: true,
            session_ends: false,
        }
    }

    fn msg(topic: &str, qos: QoS) -> Arc<Message> {
        Arc::new(Message::new(
            ByteStr::from(topic),
            Bytes::from_static(b"p"),
            qos,
            true,
        ))
    }

    fn opts(qos: QoS) -> SubscribeOptions {
        SubscribeOptions {
            qos,
            ..Default::default()
        }
    }

    #[test]
    fn a_read_after_the_clock_was_taken_is_not_a_silence() {
        let s = Signals::new(1, std::sync::Weak::new());
        s.read_at(10_000);
        assert_eq!(s.since_read(12_500), 2_500);
        // The housekeeping task took the time (9,990), then the connection read.
        assert_eq!(s.since_read(9_990), 0);
        assert_eq!(s.since_active(9_990), 0);
        // Across the 2^32 ms wrap of the stored readings.
        s.read_at(u64::from(u32::MAX) - 5);
        assert_eq!(s.since_read(u64::from(u32::MAX) + 10), 15);
    }

    #[test]
    fn persistent_session_resumes_and_clean_start_discards() {
        let mut r = Router::default();
        let id: Arc<str> = Arc::from("c1");
        let a = r.attach(&id, false, link(1), None, LIMITS);
        assert!(!a.session_present);
        r.subscribe(&a.cell, &id, "a/+", opts(QoS::AtLeastOnce), None);
        let b = r.attach(&id, false, link(2), None, LIMITS);
        assert!(b.session_present);
        assert_eq!(
            b.previous.unwrap().signals.conn_id,
            1,
            "takeover reports the old link"
        );
        assert!(Arc::ptr_eq(&a.cell, &b.cell));
        assert_eq!(r.targets(&msg("a/x", QoS::AtLeastOnce)).len(), 1);
        let c = r.attach(&id, true, link(3), None, LIMITS);
        assert!(!c.session_present);
        assert!(r.targets(&msg("a/x", QoS::AtLeastOnce)).is_empty());
    }

    #[test]
    fn a_session_that_ends_with_its_connection_is_not_resumed_by_a_takeover() {
        let mut r = Router::default();
        let id: Arc<str> = Arc::from("x");
        let mut clean = link(1);
        clean.session_ends = true;
        let a = r.attach(&id, true, clean, None, LIMITS);
        r.subscribe(&a.cell, &id, "t", opts(QoS::AtLeastOnce), None);
        let b = r.attach(&id, false, link(2), None, LIMITS);
        assert!(
            !b.session_present,
            "[MQTT-3.1.2-6]: it ended with the takeover"
        );
        assert_eq!(b.previous.unwrap().signals.conn_id, 1);
        assert!(!Arc::ptr_eq(&a.cell, &b.cell));
        assert!(r.targets(&msg("t", QoS::AtLeastOnce)).is_empty());
        // The new connection's own session (not ending) is resumed by the next.
        let c = r.attach(&id, false, link(3), None, LIMITS);
        assert!(c.session_present);
    }

    #[test]
    fn another_user_name_starts_a_new_session() {
        let mut r = Router::default();
        let id: Arc<str> = Arc::from("phone");
        let a = r.attach(&id, false, link(1), Some("bob"), LIMITS);
        r.subscribe(&a.cell, &id, "bob/inbox", opts(QoS::AtLeastOnce), None);
        a.cell.state.lock().link = None;
        r.wills.push(PendingWill {
            client_id: id.clone(),
            due: Instant::now() + std::time::Duration::from_secs(60),
            message: (*msg("bob/will", QoS::AtMostOnce)).clone(),
        });
        for user in [Some("alice"), None] {
            let b = r.attach(&id, false, link(2), user, LIMITS);
            assert!(!b.session_present);
            assert!(b.other_user);
            assert!(r.targets(&msg("bob/inbox", QoS::AtLeastOnce)).is_empty());
        }
        let ended: Vec<_> = r.wills.iter().map(|w| w.client_id.clone()).collect();
        assert!(
            ended.is_empty(),
            "the ended session's will is due, not pending"
        );
        let mine = r.attach(&id, false, link(3), None, LIMITS);
        assert!(mine.session_present, "same user (none): resumed");
        assert!(!mine.other_user);
    }

    #[test]
    fn a_resumed_session_cancels_its_pending_will_and_an_ended_one_releases_it() {
        let mut r = Router::default();
        let id: Arc<str> = Arc::from("w");
        let will = |r: &mut Router| {
            r.wills.push(PendingWill {
                client_id: id.clone(),
                due: Instant::now() + std::time::Duration::from_secs(60),
                message: (*msg("w/will", QoS::AtMostOnce)).clone(),
            })
        };
        let a = r.attach(&id, false, link(1), None, LIMITS);
        a.cell.state.lock().link = None;
        will(&mut r);
        let b = r.attach(&id, false, link(2), None, LIMITS);
        assert!(b.session_present && b.ended_wills.is_empty() && r.wills.is_empty());
        b.cell.state.lock().link = None;
        will(&mut r);
        let c = r.attach(&id, true, link(3), None, LIMITS);
        assert_eq!(
            c.ended_wills.len(),
            1,
            "clean start ends the session: its will is due"
        );
    }

    #[test]
    fn overlapping_subscriptions_deliver_once_with_every_id_and_max_qos() {
        let mut r = Router::default();
        let id: Arc<str> = Arc::from("c");
        let a = r.attach(&id, true, link(1), None, LIMITS);
        r.subscribe(&a.cell, &id, "a/#", opts(QoS::AtMostOnce), Some(1));
        r.subscribe(&a.cell, &id, "a/+", opts(QoS::ExactlyOnce), Some(2));
        let t = r.targets(&msg("a/b", QoS::AtLeastOnce));
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].delivery.qos,
            QoS::AtLeastOnce,
            "downgraded to message QoS"
        );
        let mut ids = t[0].delivery.subscription_ids.clone();
        ids.sort();
        assert_eq!(ids, vec![1, 2]);
        assert!(
            !t[0].delivery.retain,
            "retain cleared unless retain-as-published"
        );
    }

    #[test]
    fn a_session_is_merged_whenever_it_can_match_twice() {
        let mut r = Router::default();
        let id: Arc<str> = Arc::from("c");
        let a = r.attach(&id, true, link(1), None, LIMITS);
        let other: Arc<str> = Arc::from("d");
        let b = r.attach(&other, true, link(2), None, LIMITS);
        r.subscribe(&b.cell, &other, "a/b", opts(QoS::AtMostOnce), None);
        r.subscribe(&a.cell, &id, "a/#", opts(QoS::AtMostOnce), None);
        // A shared subscription delivers on its own (MQTT 5 §4.8.2).
        r.subscribe(&a.cell, &id, "$share/g/a/+", opts(QoS::AtMostOnce), None);
        assert_eq!(r.targets(&msg("a/b", QoS::AtMostOnce)).len(), 3);
        r.subscribe(&a.cell, &id, "a/+", opts(QoS::AtMostOnce), None);
        assert_eq!(
            r.targets(&msg("a/b", QoS::AtMostOnce)).len(),
            3,
            "a/# and a/+ merged"
        );
        r.unsubscribe(&a.cell, &id, "a/#");
        r.unsubscribe(&a.cell, &id, "$share/g/a/+");
        assert_eq!(r.targets(&msg("a/b", QoS::AtMostOnce)).len(), 2);
        r.subscribe(&a.cell, &id, "+/b", opts(QoS::AtMostOnce), None);
        assert_eq!(
            r.targets(&msg("a/b", QoS::AtMostOnce)).len(),
            2,
            "a/+ and +/b merged"
        );
    }

    #[test]
    fn no_local_skips_the_publisher() {
        let mut r = Router::default();
        let id: Arc<str> = Arc::from("c");
        let a = r.attach(&id, true, link(1), None, LIMITS);
        let mut o = opts(QoS::AtMostOnce);
        o.no_local = true;
        o.retain_as_published = true;
        r.subscribe(&a.cell, &id, "t", o, None);
        let mut m = Message::new(ByteStr::from("t"), Bytes::new(), QoS::AtMostOnce, true);
        m.origin = Some(id.clone());
        assert!(r.targets(&Arc::new(m.clone())).is_empty());
        m.origin = Some(Arc::from("other"));
        let t = r.targets(&Arc::new(m));
        assert_eq!(t.len(), 1);
        assert!(t[0].delivery.retain, "retain as published");
    }

    #[test]
    fn removing_a_session_removes_its_subscriptions() {
        let mut r = Router::default();
        let id: Arc<str> = Arc::from("c");
        let a = r.attach(&id, true, link(1), None, LIMITS);
        r.subscribe(&a.cell, &id, "x/#", opts(QoS::AtMostOnce), None);
        assert_eq!(
            r.unsubscribe(&a.cell, &id, "nope"),
            ReasonCode::NO_SUBSCRIPTION_EXISTED
        );
        r.remove_session(&id, &a.cell);
        assert!(r.tree.is_empty());
        assert!(r.sessions.is_empty());
    }
}
