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

#[pymodule]
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
