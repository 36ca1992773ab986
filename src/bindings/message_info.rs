//! paho's `MQTTMessageInfo`, in Rust (`turbomqtt.client.MQTTMessageInfo` is this type).
//!
//! Why in Rust: `publish()` creates one per call and the core keeps each until its
//! message is written or acknowledged. As a Python class with `__slots__` it cost about
//! 0.4 us to create and, being tracked by the cycle collector, made every collection walk
//! all the infos still queued (seen as `gc_collect_main` under `__init__` in profiles of
//! a publisher). This type holds no Python references the collector needs to see.

use std::sync::atomic::{AtomicU16, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

use crate::client::Completion;

const MQTT_ERR_AGAIN: i64 = -1;
const MQTT_ERR_QUEUE_SIZE: i64 = 15;
const MQTT_ERR_UNKNOWN: i64 = 13;

/// How often a waiting thread comes back for the GIL to let Ctrl-C through.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

static SUCCESS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn success(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    SUCCESS.get_or_try_init(py, || {
        Ok(py
            .import("turbomqtt.enums")?
            .getattr("MQTTErrorCode")?
            .getattr("MQTT_ERR_SUCCESS")?
            .unbind())
    })
}

/// The paho error code object for `rc` (`MQTTErrorCode`, or UNKNOWN for other values).
pub fn error_code(py: Python<'_>, rc: i64) -> PyResult<Py<PyAny>> {
    let codes = py.import("turbomqtt.enums")?.getattr("MQTTErrorCode")?;
    match codes.call1((rc,)) {
        Ok(code) => Ok(code.unbind()),
        Err(_) => Ok(codes.call1((MQTT_ERR_UNKNOWN,))?.unbind()),
    }
}

/// Returned by `Client.publish()`: the message id, the result code, and whether the
/// message has been published (set when `on_publish` has been dispatched by the loop, or
/// by the core when the message was published with no `on_publish` to call).
#[pyclass(
    name = "MQTTMessageInfo",
    module = "turbomqtt.client",
    subclass,
    frozen
)]
pub struct MessageInfo {
    mid: AtomicU16,
    qos: AtomicU8,
    /// Whether it is published; the core completes it itself for messages published
    /// without `on_publish` (see `Completion`), else the facade does after the callback.
    done: Arc<Completion>,
    iterpos: AtomicU8,
    /// None until an error code is set: reads then give the completion's code
    /// (`MQTT_ERR_SUCCESS` unless the core failed it).
    rc: Mutex<Option<Py<PyAny>>>,
}

impl MessageInfo {
    pub fn new(mid: u16, qos: u8) -> Self {
        Self {
            mid: AtomicU16::new(mid),
            qos: AtomicU8::new(qos),
            done: Arc::default(),
            iterpos: AtomicU8::new(0),
            rc: Mutex::new(None),
        }
    }

    /// The completion to hand to the core with the message.
    pub fn completion(&self) -> Arc<Completion> {
        self.done.clone()
    }

    pub fn set_mid(&self, mid: u16) {
        self.mid.store(mid, Ordering::Relaxed);
    }

    pub fn store_rc(&self, rc: Py<PyAny>) {
        *self.rc.lock() = Some(rc);
    }

    /// Waits (GIL released) until published or `timeout` seconds pass (None: no limit);
    /// returns whether it was published. Ctrl-C raises KeyboardInterrupt.
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        loop {
            if self.done.is_done() {
                return Ok(true);
            }
            let slice = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    left.min(SIGNAL_CHECK)
                }
                None => SIGNAL_CHECK,
            };
            if py.detach(|| self.done.wait(slice)) {
                return Ok(true);
            }
            py.check_signals()?;
        }
    }

    fn rc_value(&self, py: Python<'_>) -> PyResult<i64> {
        match &*self.rc.lock() {
            Some(rc) => rc.bind(py).extract::<i64>(),
            None => Ok(i64::from(self.done.rc())),
        }
    }

    fn failure(&self, py: Python<'_>) -> PyResult<PyErr> {
        let rc = self.get_rc(py)?;
        let text = py
            .import("turbomqtt.client")?
            .getattr("error_string")?
            .call1((rc,))?
            .extract::<String>()?;
        Ok(PyRuntimeError::new_err(format!(
            "Message publish failed: {text}"
        )))
    }
}

#[pymethods]
impl MessageInfo {
    #[new]
    #[pyo3(signature = (mid, *_args, **_kwargs))]
    fn py_new(mid: u16, _args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        Self::new(mid, 0)
    }

    #[getter]
    fn get_mid(&self) -> u16 {
        self.mid.load(Ordering::Relaxed)
    }

    #[setter(mid)]
    fn set_mid_attr(&self, mid: u16) {
        self.set_mid(mid);
    }

    #[getter]
    fn get_rc(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &*self.rc.lock() {
            Some(rc) => Ok(rc.clone_ref(py)),
            None => match self.done.rc() {
                0 => Ok(success(py)?.clone_ref(py)),
                rc => error_code(py, i64::from(rc)),
            },
        }
    }

    #[setter]
    fn set_rc(&self, rc: Py<PyAny>) {
        *self.rc.lock() = Some(rc);
    }

    #[getter(_qos)]
    fn get_qos(&self) -> u8 {
        self.qos.load(Ordering::Relaxed)
    }

    #[setter(_qos)]
    fn set_qos(&self, qos: u8) {
        self.qos.store(qos, Ordering::Relaxed);
    }

    #[getter(_published)]
    fn get_published(&self) -> bool {
        self.done.is_done()
    }

    #[setter(_published)]
    fn set_published(&self, on: bool) {
        if on {
            self.done.complete();
        } else {
            self.done.reset();
        }
    }

    fn _set_as_published(&self) {
        self.set_published(true);
    }

    fn _check_rc(&self, py: Python<'_>) -> PyResult<()> {
        match self.rc_value(py)? {
            MQTT_ERR_QUEUE_SIZE => Err(PyValueError::new_err(
                "Message is not queued due to ERR_QUEUE_SIZE",
            )),
            MQTT_ERR_AGAIN => Ok(()),
            rc if rc > 0 => Err(self.failure(py)?),
            _ => Ok(()),
        }
    }

    /// True once the message has been published (see wait_for_publish for errors).
    fn is_published(&self, py: Python<'_>) -> PyResult<bool> {
        self._check_rc(py)?;
        Ok(self.done.is_done())
    }

    /// Block until the message is published or `timeout` seconds pass (None: no limit).
    ///
    /// Raises ValueError if the message was not queued (queue full), RuntimeError if it
    /// was not published for another reason. The GIL is released while waiting.
    #[pyo3(signature = (timeout=None), text_signature = "(self, timeout=None)")]
    fn wait_for_publish(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self._check_rc(py)?;
        self.wait(py, timeout)?;
        if self.rc_value(py)? > 0 {
            return Err(self.failure(py)?);
        }
        Ok(())
    }

    fn __str__(&self, py: Python<'_>) -> PyResult<String> {
        let t = PyTuple::new(
            py,
            [
                self.get_rc(py)?.into_bound(py),
                self.get_mid().into_pyobject(py)?.into_any(),
            ],
        )?;
        Ok(t.str()?.to_string())
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf.iterpos.store(0, Ordering::Relaxed);
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.next(py)
    }

    fn next(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.iterpos.load(Ordering::Relaxed) {
            0 => {
                self.iterpos.store(1, Ordering::Relaxed);
                self.get_rc(py)
            }
            1 => {
                self.iterpos.store(2, Ordering::Relaxed);
                Ok(self.get_mid().into_pyobject(py)?.into_any().unbind())
            }
            _ => Err(PyStopIteration::new_err(())),
        }
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<Py<PyAny>> {
        match index {
            0 => self.get_rc(py),
            1 => Ok(self.get_mid().into_pyobject(py)?.into_any().unbind()),
            _ => Err(PyIndexError::new_err("index out of range")),
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MessageInfo>()
}
