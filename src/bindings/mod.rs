//! The only code that touches PyO3: Python classes, conversions, exceptions.

use std::time::Duration;

use pyo3::prelude::*;

mod broker;
mod client;
mod codec;
mod message_info;

/// Stops the background runtime; registered with `atexit` by `turbomqtt/__init__.py`.
/// The GIL is released while tasks wind down so that none of them can deadlock on it.
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    py.detach(|| crate::runtime::shutdown(Duration::from_millis(500)));
}

/// How many worker threads the background runtime has (starting it if needed).
#[pyfunction]
fn _runtime_workers() -> usize {
    crate::runtime::handle().metrics().num_workers()
}

/// Declared safe without the GIL (free-threaded CPython 3.13t and later keep it off on
/// import): every class here is `frozen` and keeps its state in atomics, locks or the
/// Rust core, which its own threads share already; nothing relies on the GIL to
/// serialize access. (Also PyO3's default since 0.28; spelled out as a promise.)
#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(_runtime_workers, m)?)?;
    codec::register(m)?;
    client::register(m)?;
    message_info::register(m)?;
    broker::register(m)?;
    Ok(())
}
