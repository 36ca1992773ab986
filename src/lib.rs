//! turbomqtt: MQTT 3.1/3.1.1/5.0 for Python on a Rust core.
//!
//! - [`codec`]: sans-I/O packet encoding and decoding.
//! - [`client`]: the tokio client (connection task, session state, reconnect, transports).
//! - [`broker`]: the embedded broker (listeners, router, sessions).
//! - [`runtime`]: the process-wide background tokio runtime.
//! - `bindings` (feature `python`): the only module that touches PyO3.

pub mod broker;
pub mod client;
pub mod codec;
pub mod runtime;

#[cfg(feature = "python")]
mod bindings;

/// mimalloc for the Rust side of the extension: glibc's per-thread arenas give freed
/// memory back to the kernel as soon as a heap's top grows past 128 KiB, so a reader that
/// allocates 64 KiB frames on a runtime thread (freed later on the Python thread) paid a
/// page fault per 4 KiB of every message. Python's own objects keep Python's allocator.
#[cfg(feature = "python")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
