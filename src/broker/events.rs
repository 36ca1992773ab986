//! Events for the Python side (log lines, observed messages, authentication requests):
//! a bounded queue that tokio tasks push to without blocking and one Python thread
//! drains with the GIL released. Python is never called from a tokio worker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
}

#[derive(Debug)]
pub enum Event {
    Log {
        level: Level,
        message: String,
    },
    Message {
        client_id: Option<String>,
        topic: String,
        payload: Bytes,
        qos: u8,
        retain: bool,
    },
    Auth {
        client_id: String,
        username: Option<String>,
        password: Option<Bytes>,
        reply: oneshot::Sender<bool>,
    },
    /// One step of MQTT 5 enhanced authentication (§4.12): the data of a CONNECT or
    /// AUTH packet for the Python hook of `method`.
    EnhancedAuth {
        client_id: String,
        method: String,
        data: Option<Bytes>,
        reply: oneshot::Sender<AuthStep>,
    },
}

/// The answer of an enhanced authentication hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send AUTH 0x18 with this data and wait for the client's next AUTH.
    Continue(Option<Bytes>),
    /// Authenticated: CONNACK 0x00 (or AUTH 0x00 after re-authentication), with data.
    Success(Option<Bytes>),
    /// Refused with this reason code (CONNACK, or DISCONNECT after re-authentication).
    Failure(u8),
}

/// Queue bound: beyond it, log lines and observed messages are dropped and counted
/// (the broker never waits for Python); authentication requests are refused.
pub const EVENT_QUEUE_LIMIT: usize = 10_000;

#[derive(Default)]
pub struct EventQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    pub dropped: AtomicU64,
}

#[derive(Default)]
struct Inner {
    events: VecDeque<Event>,
    closed: bool,
}

impl EventQueue {
    pub fn push(&self, event: Event) {
        let mut inner = self.inner.lock();
        if inner.closed || inner.events.len() >= EVENT_QUEUE_LIMIT {
            drop(inner);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            // Dropping an Auth event drops its reply sender: the waiting connection
            // sees the refusal at once.
            return;
        }
        inner.events.push_back(event);
        drop(inner);
        self.ready.notify_one();
    }

    pub fn log(&self, level: Level, message: String) {
        self.push(Event::Log { level, message });
    }

    /// Waits up to `timeout` for events; `None` once closed and drained.
    pub fn wait(&self, timeout: Duration) -> Option<Vec<Event>> {
        let mut inner = self.inner.lock();
        if inner.events.is_empty() && !inner.closed {
            self.ready.wait_for(&mut inner, timeout);
        }
        if inner.events.is_empty() && inner.closed {
            return None;
        }
        Some(inner.events.drain(..).collect())
    }

    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.ready.notify_all();
    }
}
