//! A published message's completion, shared by the core and the face that published it.
//!
//! Why: with no per-message callback to run (paho's `on_publish` unset), reporting each
//! acknowledgement as an event costs a wake-up of the face's thread per batch of acks
//! just to flip a flag. A message published with a [`Completion`] is completed by the
//! core itself (written for QoS 0, PUBACK/PUBCOMP for QoS 1/2) and reported as no event
//! unless the face asks for it ([`Session::set_report_completed`](super::Session)).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Woken when a completion that has waiters completes; waiters re-check their own. One
/// for the process (waits are rare); completing one nobody waits for takes no lock and
/// wakes nobody, which matters: a publisher typically waits for its last message while
/// thousands of earlier ones complete.
static DONE: Condvar = Condvar::new();
static DONE_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Default)]
pub struct Completion {
    done: AtomicBool,
    /// Threads in `wait` on this completion.
    waiters: AtomicU32,
    /// paho's error code for a message that completed without being delivered
    /// (`MQTT_ERR_CONN_LOST` for a QoS 0 message lost with its connection); 0 otherwise.
    rc: AtomicI32,
}

impl Completion {
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    pub fn rc(&self) -> i32 {
        self.rc.load(Ordering::Acquire)
    }

    /// Marks the message done and wakes the threads waiting for any completion.
    pub fn complete(&self) {
        self.done.store(true, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this store before a waiter's re-check under it.
            let _guard = DONE_LOCK.lock();
            DONE.notify_all();
        }
    }

    /// Done without delivery: `rc` is paho's error code.
    pub fn fail(&self, rc: i32) {
        self.rc.store(rc, Ordering::Release);
        self.complete();
    }

    /// Un-marks it (paho lets `_published` be assigned back).
    pub fn reset(&self) {
        self.done.store(false, Ordering::SeqCst);
    }

    /// Waits at most `slice` for this completion; returns whether it is done. Callers
    /// loop over short slices to check for signals in between.
    pub fn wait(&self, slice: Duration) -> bool {
        if self.is_done() {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        {
            let mut guard = DONE_LOCK.lock();
            if !self.done.load(Ordering::SeqCst) {
                DONE.wait_for(&mut guard, slice);
            }
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        self.is_done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_waiter_wakes_when_completed_from_another_thread() {
        let c = Arc::new(Completion::default());
        let other = c.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            while !other.wait(Duration::from_millis(50)) {
                assert!(start.elapsed() < Duration::from_secs(10), "never woken");
            }
        });
        c.complete();
        t.join().unwrap();
        assert!(c.is_done());
        assert_eq!(c.rc(), 0);
    }

    #[test]
    fn fail_completes_with_the_code() {
        let c = Completion::default();
        assert!(!c.wait(Duration::from_millis(1)));
        c.fail(7);
        assert!(c.is_done());
        assert_eq!(c.rc(), 7);
        c.reset();
        assert!(!c.is_done());
    }
}
