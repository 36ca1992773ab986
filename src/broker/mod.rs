//! The embedded MQTT broker: listeners, connection tasks, router, sessions.
//!
//! `Broker::start` binds every listener synchronously (so "port in use" is an error of
//! the call), then runs everything on the process runtime (`crate::runtime`):
//! one accept task per listener, one task per connection, one housekeeping task
//! (session expiry, delayed wills, `$SYS`). `Broker::stop` signals them all and waits
//! until each has ended and closed its socket.

pub mod auth;
pub mod config;
mod connection;
pub mod events;
mod listener;
pub mod message;
mod park;
pub mod passwd;
pub mod retained;
pub mod router;
pub mod session;
mod shared;
pub mod tree;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::QoS;

pub use config::{Config, ListenerConfig, TlsConfig, Transport};
pub use events::{AuthStep, Event, EventQueue, Level};
pub use shared::ClientInfo;

use auth::{Acl, Secret, Users};
use shared::Shared;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error("invalid message: {0}")]
    Message(String),
    #[error("{0} is not implemented yet")]
    NotImplemented(&'static str),
}

/// A bound listener: what `Broker.ports` reports.
#[derive(Debug, Clone)]
pub struct BoundListener {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub tls: bool,
}

pub struct Broker {
    shared: Arc<Shared>,
    listeners: Vec<BoundListener>,
    stopped: bool,
}

/// A snapshot for `Broker.stats()`.
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    pub uptime_secs: u64,
    pub clients_connected: u64,
    pub clients_total: u64,
    pub clients_maximum: u64,
    pub sessions: u64,
    pub subscriptions: u64,
    pub retained: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub publish_received: u64,
    pub publish_sent: u64,
    pub messages_dropped: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub events_dropped: u64,
    /// Idle connections parked on the shared poller (`park.rs`).
    pub connections_parked: u64,
}

impl Broker {
    /// Binds every listener and starts serving. Fails without leaving anything running.
    pub fn start(config: Config) -> Result<Broker, BrokerError> {
        let mut users = Users {
            allow_anonymous: config.allow_anonymous,
            entries: config
                .users
                .iter()
                .map(|(u, p)| (u.clone(), Secret::Plain(p.clone())))
                .collect(),
        };
        if let Some(path) = &config.password_file {
            let text = read_file(path)?;
            let hashed = passwd::parse(&text)
                .map_err(|e| BrokerError::Config(format!("{}: {e}", path.display())))?;
            users.entries.extend(hashed);
        }
        let acl = match &config.acl_file {
            Some(path) => Some(
                Acl::parse(&read_file(path)?)
                    .map_err(|e| BrokerError::Config(format!("{}: {e}", path.display())))?,
            ),
            None => None,
        };
        if config.listeners.is_empty() {
            return Err(BrokerError::Config("no listeners configured".into()));
        }
        let mut prepared = Vec::new();
        for l in &config.listeners {
            prepared.push(listener::prepare(l)?);
        }
        let parks = config.idle_park_after.is_some();
        let shared = Shared::new(config, users, acl);
        if parks {
            if let Some(p) = park::Parking::start(&shared) {
                let _ = shared.parking.set(p);
            }
        }
        let handle = crate::runtime::handle();
        let mut listeners = Vec::new();
        for p in prepared {
            listeners.push(listener::spawn(&handle, &shared, p)?);
        }
        let guard = shared.task_guard();
        handle.spawn(housekeeping(shared.clone(), guard));
        Ok(Broker {
            shared,
            listeners,
            stopped: false,
        })
    }

    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    pub fn events(&self) -> Arc<EventQueue> {
        self.shared.events.clone()
    }

    /// Closes every listener and connection and waits (blocking; call it off the
    /// runtime) until every task has ended. Idempotent.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        if self.stopped {
            return true;
        }
        self.stopped = true;
        self.shared.begin_shutdown();
        if let Some(p) = self.shared.parking.get() {
            p.stop(&self.shared, true);
        }
        let done = self.shared.wait_tasks(timeout);
        self.shared.events.close();
        done
    }

    pub fn is_running(&self) -> bool {
        !self.stopped
    }

    /// Publishes a message as the broker (no client origin).
    pub fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
    ) -> Result<usize, BrokerError> {
        let message =
            connection::injected(topic, payload, qos, retain).map_err(BrokerError::Message)?;
        Ok(self.shared.route(message))
    }

    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut v = self.shared.clients();
        v.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        v
    }

    pub fn stats(&self) -> StatsSnapshot {
        snapshot(&self.shared)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if !self.stopped {
            // Without waiting: the tasks see the signal and end on their own.
            self.stopped = true;
            self.shared.begin_shutdown();
            if let Some(p) = self.shared.parking.get() {
                p.stop(&self.shared, false);
            }
            self.shared.events.close();
        }
    }
}

fn read_file(path: &std::path::Path) -> Result<String, BrokerError> {
    std::fs::read_to_string(path).map_err(|source| BrokerError::File {
        path: path.display().to_string(),
        source,
    })
}

fn snapshot(shared: &Shared) -> StatsSnapshot {
    let s = &shared.stats;
    let (sessions, subscriptions, retained) = {
        let r = shared.router.lock();
        (r.sessions.len(), r.tree.len(), r.retained.len())
    };
    StatsSnapshot {
        uptime_secs: shared.started.elapsed().as_secs(),
        clients_connected: s.clients_connected.load(Ordering::Relaxed),
        clients_total: s.clients_total.load(Ordering::Relaxed),
        clients_maximum: s.clients_maximum.load(Ordering::Relaxed),
        sessions: sessions as u64,
        subscriptions: subscriptions as u64,
        retained: retained as u64,
        messages_received: s.messages_received.load(Ordering::Relaxed),
        messages_sent: s.messages_sent.load(Ordering::Relaxed),
        publish_received: s.publish_received.load(Ordering::Relaxed),
        publish_sent: s.publish_sent.load(Ordering::Relaxed),
        messages_dropped: s.messages_dropped.load(Ordering::Relaxed),
        bytes_received: s.bytes_received.load(Ordering::Relaxed),
        bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
        events_dropped: shared.events.dropped.load(Ordering::Relaxed),
        connections_parked: shared.parking.get().map_or(0, |p| p.parked_count() as u64),
    }
}

/// Session expiry, delayed wills and `$SYS` topics, ticking every 250 ms.
async fn housekeeping(shared: Arc<Shared>, _guard: shared::TaskGuard) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let sys_every = shared.config.sys_interval;
    let mut next_sys = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let (wills, expired) = {
            let mut r = shared.router.lock();
            (r.due_wills(now), r.expire_sessions(now))
        };
        for id in expired {
            shared.log(Level::Debug, format!("session {id} expired"));
        }
        for w in wills {
            shared.route(w);
        }
        check_keep_alive(&shared);
        if !sys_every.is_zero() && now >= next_sys {
            next_sys = now + sys_every;
            publish_sys(&shared);
        }
    }
}

/// Keep-alive enforcement (MQTT 5 §3.1.2.10, 3.1.1 §3.1.2.10): a client that sent
/// nothing for one and a half keep-alive periods is closed. One sweep per housekeeping
/// tick instead of a timer per connection (a timer costs every idle connection memory
/// and every wake-up a re-arm); a client is closed at most one tick late.
fn check_keep_alive(shared: &Shared) {
    let now = shared.now_ms();
    // Parking (`park.rs`) rides on the same sweep: a connection quiet for
    // `idle_park_after` is asked to park.
    let park_after = match (shared.parking.get(), shared.config.idle_park_after) {
        (Some(_), Some(d)) => Some(d.as_millis() as u64),
        _ => None,
    };
    shared.each_link(|c| {
        if let Some(after) = park_after {
            if c.signals.since_active(now) >= after && !c.signals.is_parked() {
                c.signals.request_park();
            }
        }
        if c.keep_alive == 0 {
            return;
        }
        let limit = u64::from(c.keep_alive) * 1500;
        if c.signals.since_read(now) > limit {
            c.signals.send(router::Control::KeepAlive);
        }
    });
}

/// `$SYS/broker/...` like mosquitto's (retained, refreshed every `sys_interval`).
fn publish_sys(shared: &Shared) {
    let s = snapshot(shared);
    let values: [(&str, String); 14] = [
        (
            "$SYS/broker/version",
            format!("turbomqtt {}", env!("CARGO_PKG_VERSION")),
        ),
        ("$SYS/broker/uptime", format!("{} seconds", s.uptime_secs)),
        (
            "$SYS/broker/clients/connected",
            s.clients_connected.to_string(),
        ),
        ("$SYS/broker/clients/total", s.sessions.to_string()),
        ("$SYS/broker/clients/maximum", s.clients_maximum.to_string()),
        (
            "$SYS/broker/subscriptions/count",
            s.subscriptions.to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            s.retained.to_string(),
        ),
        (
            "$SYS/broker/messages/received",
            s.messages_received.to_string(),
        ),
        ("$SYS/broker/messages/sent", s.messages_sent.to_string()),
        (
            "$SYS/broker/publish/messages/received",
            s.publish_received.to_string(),
        ),
        (
            "$SYS/broker/publish/messages/sent",
            s.publish_sent.to_string(),
        ),
        (
            "$SYS/broker/publish/messages/dropped",
            s.messages_dropped.to_string(),
        ),
        ("$SYS/broker/bytes/received", s.bytes_received.to_string()),
        ("$SYS/broker/bytes/sent", s.bytes_sent.to_string()),
    ];
    for (topic, value) in values {
        let m = message::Message::new(
            crate::codec::ByteStr::from_static(topic),
            Bytes::from(value),
            QoS::AtMostOnce,
            true,
        );
        shared.route(m);
    }
}
