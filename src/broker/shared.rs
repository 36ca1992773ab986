//! State shared by every task of one broker: configuration, router, security, stats,
//! the Python event queue, and task tracking for `stop()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::auth::{Access, Acl, Users};
use super::config::Config;
use super::events::{Event, EventQueue, Level};
use super::message::Message;
use super::router::{Offered, Router};
use super::session::QueueLimit;

#[derive(Debug, Default)]
pub struct Stats {
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub publish_received: AtomicU64,
    pub publish_sent: AtomicU64,
    pub messages_dropped: AtomicU64,
    pub clients_connected: AtomicU64,
    pub clients_total: AtomicU64,
    pub clients_maximum: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One connected client, for `Broker.clients()` (built from the session's `Link`).
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: Arc<str>,
    pub username: Option<String>,
    pub peer: Arc<str>,
    pub protocol: u8,
    pub keep_alive: u16,
    pub clean_start: bool,
    pub listener: Arc<str>,
}

/// Counts live tasks so `stop()` can wait until every one has ended.
#[derive(Default)]
pub struct TaskCount {
    active: Mutex<usize>,
    idle: Condvar,
}

pub struct TaskGuard(Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let mut n = self.0.tasks.active.lock();
        *n -= 1;
        if *n == 0 {
            self.0.tasks.idle.notify_all();
        }
    }
}

pub struct Shared {
    pub config: Config,
    pub router: Mutex<Router>,
    pub users: Users,
    pub acl: Option<Acl>,
    pub events: Arc<EventQueue>,
    pub stats: Stats,
    pub started: Instant,
    pub shutdown: watch::Sender<bool>,
    pub next_conn_id: AtomicU64,
    tasks: TaskCount,
    /// The poller of parked connections (`park.rs`); unset: connections never park.
    pub parking: std::sync::OnceLock<Arc<super::park::Parking>>,
}

impl Shared {
    pub fn new(config: Config, users: Users, acl: Option<Acl>) -> Arc<Self> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Self {
            config,
            router: Mutex::new(Router::default()),
            users,
            acl,
            events: Arc::new(EventQueue::default()),
            stats: Stats::default(),
            started: Instant::now(),
            shutdown,
            next_conn_id: AtomicU64::new(1),
            tasks: TaskCount::default(),
            parking: std::sync::OnceLock::new(),
        })
    }

    /// Tells every task to end: listeners and connections still in CONNECT watch
    /// `shutdown`; connected clients are told through their signals (set after the flag,
    /// so a client that connects meanwhile sees the flag instead).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        self.each_link(|l| l.signals.send(super::router::Control::Shutdown));
    }

    /// Calls `f` with the link of every connected client (under the router lock and
    /// the session's lock: `f` must be short and take no other lock but `Signals`').
    /// A connection taken over is no longer its session's link: it was told so and
    /// is closing.
    pub fn each_link(&self, mut f: impl FnMut(&super::router::Link)) {
        let r = self.router.lock();
        for cell in r.sessions.values() {
            if let Some(l) = &cell.state.lock().link {
                f(l);
            }
        }
    }

    /// `clients()`: every connected client.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let r = self.router.lock();
        let mut v = Vec::new();
        for cell in r.sessions.values() {
            let st = cell.state.lock();
            if let Some(l) = &st.link {
                v.push(ClientInfo {
                    client_id: st.session.client_id.clone(),
                    username: st.username.as_deref().map(str::to_string),
                    peer: Arc::from(l.peer().to_string()),
                    protocol: l.protocol,
                    keep_alive: l.keep_alive,
                    clean_start: l.clean_start,
                    listener: l.listener.clone(),
                });
            }
        }
        v
    }

    /// Milliseconds since the broker started (the clock of `Signals::last_read_ms`).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Registers a task; it counts as live until the guard is dropped.
    pub fn task_guard(self: &Arc<Self>) -> TaskGuard {
        *self.tasks.active.lock() += 1;
        TaskGuard(self.clone())
    }

    /// Waits (blocking, off the runtime) until every task has ended; false on timeout.
    pub fn wait_tasks(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut n = self.tasks.active.lock();
        while *n > 0 {
            if self.tasks.idle.wait_until(&mut n, deadline).timed_out() {
                return *n == 0;
            }
        }
        true
    }

    pub fn log(&self, level: Level, message: String) {
        if level == Level::Debug && !self.config.log_debug {
            return;
        }
        self.events.log(level, message);
    }

    pub fn allowed(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: Access,
    ) -> bool {
        match &self.acl {
            None => true,
            Some(acl) => acl.allows(client_id, username, topic, access),
        }
    }

    /// Routes a message to every matching session and stores it if retained.
    /// Returns the number of sessions it was offered to.
    pub fn route(&self, message: Message) -> usize {
        self.route_with_backpressure(message, &mut Vec::new())
    }

    /// `route`, collecting the sessions that asked the publisher to wait (`Offered::Busy`).
    pub fn route_with_backpressure(
        &self,
        message: Message,
        busy: &mut Vec<Arc<super::router::SessionCell>>,
    ) -> usize {
        let message = Arc::new(message);
        let mut targets = {
            let mut r = self.router.lock();
            if message.retain && self.config.retain_available {
                r.retained.store(&message);
            }
            r.targets(&message)
        };
        if let Some(acl) = &self.acl {
            // Read access is checked per message too (like mosquitto), so a deny rule
            // inside a permitted wildcard subscription holds.
            targets.retain(|t| {
                let st = t.cell.state.lock();
                acl.allows(
                    &st.session.client_id,
                    st.username.as_deref(),
                    &message.topic,
                    Access::Read,
                )
            });
        }
        let n = targets.len();
        for t in targets {
            let offered = t.cell.offer(t.delivery);
            if let Offered::Busy = offered {
                busy.push(t.cell);
                continue;
            }
            if let Offered::Dropped {
                first,
                limit,
                client_id,
            } = offered
            {
                Stats::add(&self.stats.messages_dropped, 1);
                if first {
                    let what = match limit {
                        QueueLimit::Messages => format!(
                            "{} QoS 1/2 messages, max_queued_messages",
                            self.config.max_queued_messages
                        ),
                        QueueLimit::Bytes => {
                            format!("{} bytes, max_queued_bytes", self.config.max_queued_bytes)
                        }
                    };
                    self.log(
                        Level::Warning,
                        format!(
                            "client {client_id}: message queue full ({what}); dropping new \
                             messages until it drains"
                        ),
                    );
                }
            }
        }
        if self.config.message_observer {
            self.events.push(Event::Message {
                client_id: message.origin.as_deref().map(str::to_string),
                topic: message.topic.to_string(),
                payload: message.payload.clone(),
                qos: message.qos as u8,
                retain: message.retain,
            });
        }
        n
    }
}
