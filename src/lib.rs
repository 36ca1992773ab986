//! turbomqtt: MQTT 3.1/3.1.1/5.0 for Python on a Rust core.
//!
//! - [`codec`]: sans-I/O packet encoding and decoding.
//! - [`client`]: the tokio client (connection task, session state, reconnect, transports).
//! - [`broker`]: the embedded broker (listeners, router, sessions).
//! - [`runtime`]: the process-wide background tokio runtime.
//! - [`sockopt`]: socket options tokio does not expose (TCP_QUICKACK).
//! - `bindings` (feature `python`): the only module that touches PyO3.

pub mod broker;
pub mod client;
pub mod codec;
pub mod runtime;
pub mod sockopt;

#[cfg(feature = "python")]
mod bindings;
