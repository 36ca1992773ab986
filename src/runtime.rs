//! The one background tokio runtime of the process.
//!
//! Created on first use, re-created in a child after `fork()` (the parent's worker
//! threads do not exist there), shut down at interpreter exit with a bounded wait so
//! exit never hangs.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::{Builder, Handle, Runtime};

struct Slot {
    pid: u32,
    runtime: Runtime,
}

static SLOT: Mutex<Option<Slot>> = Mutex::new(None);

/// A handle to the process runtime, starting it if needed.
pub fn handle() -> Handle {
    let pid = std::process::id();
    let mut slot = SLOT.lock();
    if let Some(s) = slot.as_ref() {
        if s.pid == pid {
            return s.runtime.handle().clone();
        }
    }
    if let Some(stale) = slot.take() {
        // Inherited from the parent across fork(): its threads are gone, so dropping it
        // would wait for workers that will never answer. Leak it instead.
        std::mem::forget(stale);
    }
    let mut builder = Builder::new_multi_thread();
    // TURBOMQTT_THREADS=N sets the number of runtime worker threads (default: one per
    // core), e.g. to keep a client process from spreading over every core.
    if let Some(n) = std::env::var("TURBOMQTT_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        builder.worker_threads(n);
    }
    let runtime = builder
        .enable_all()
        .thread_name("turbomqtt-rt")
        .build()
        .expect("turbomqtt: cannot start the tokio runtime");
    let handle = runtime.handle().clone();
    *slot = Some(Slot { pid, runtime });
    handle
}

/// Stops the runtime, giving running tasks `timeout` to finish. A later `handle()`
/// starts a fresh one.
pub fn shutdown(timeout: Duration) {
    let taken = SLOT.lock().take();
    if let Some(slot) = taken {
        if slot.pid == std::process::id() {
            slot.runtime.shutdown_timeout(timeout);
        } else {
            std::mem::forget(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_tasks_and_restarts_after_shutdown() {
        let answer = handle().block_on(async { tokio::spawn(async { 42 }).await.unwrap() });
        assert_eq!(answer, 42);
        shutdown(Duration::from_millis(100));
        let again = handle().block_on(async { tokio::spawn(async { 7 }).await.unwrap() });
        assert_eq!(again, 7);
    }
}
