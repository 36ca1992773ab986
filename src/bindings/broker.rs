//! `turbomqtt._core.BrokerCore`: the native half of `turbomqtt.Broker`.
//!
//! The configuration arrives as a dict already normalized by `turbomqtt/broker.py`.
//! Events (log lines, observed messages, authentication requests) are drained by one
//! Python thread through `wait_events`, which waits with the GIL released.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use pyo3::exceptions::{PyNotImplementedError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use tokio::sync::oneshot;

use crate::broker::{
    AuthStep, Broker, BrokerError, Config, Event, ListenerConfig, TlsConfig, Transport,
};
use crate::codec::QoS;

fn to_py_err(e: BrokerError) -> PyErr {
    match e {
        BrokerError::Bind { ref source, .. } | BrokerError::File { ref source, .. } => {
            // OSError(errno, text) lets Python pick the subclass (FileNotFoundError, ...).
            match source.raw_os_error() {
                Some(errno) => PyOSError::new_err((errno, e.to_string())),
                None => PyOSError::new_err(e.to_string()),
            }
        }
        BrokerError::NotImplemented(_) => PyNotImplementedError::new_err(e.to_string()),
        BrokerError::Config(_) | BrokerError::Tls(_) | BrokerError::Message(_) => {
            PyValueError::new_err(e.to_string())
        }
    }
}

fn get<'py, T>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>>
where
    T: for<'a> FromPyObject<'a, 'py>,
{
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v
            .extract::<T>()
            .map(Some)
            .map_err(|_| PyValueError::new_err(format!("bad value for broker option {key:?}"))),
        _ => Ok(None),
    }
}

fn listener_from(d: &Bound<'_, PyDict>) -> PyResult<ListenerConfig> {
    let host: String = get(d, "host")?.unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = get(d, "port")?.unwrap_or(1883);
    let transport = match get::<String>(d, "transport")?.as_deref() {
        None | Some("tcp") => Transport::Tcp,
        Some("websocket") | Some("websockets") | Some("ws") => Transport::WebSocket,
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown listener transport {other:?} (tcp or websocket)"
            )))
        }
    };
    let tls = match get::<String>(d, "certfile")? {
        Some(cert) => Some(TlsConfig {
            certfile: PathBuf::from(cert),
            keyfile: PathBuf::from(get::<String>(d, "keyfile")?.ok_or_else(|| {
                PyValueError::new_err("a TLS listener needs keyfile as well as certfile")
            })?),
            cafile: get::<String>(d, "cafile")?.map(PathBuf::from),
            require_certificate: get(d, "require_certificate")?.unwrap_or(false),
        }),
        None => None,
    };
    Ok(ListenerConfig {
        host,
        port,
        transport,
        ws_path: get(d, "path")?,
        tls,
    })
}

fn config_from(d: &Bound<'_, PyDict>) -> PyResult<Config> {
    let mut c = Config::default();
    if let Some(list) = get::<Bound<'_, PyList>>(d, "listeners")? {
        c.listeners = list
            .iter()
            .map(|item| listener_from(item.cast::<PyDict>()?))
            .collect::<PyResult<_>>()?;
    }
    macro_rules! opt {
        ($field:ident) => {
            if let Some(v) = get(d, stringify!($field))? {
                c.$field = v;
            }
        };
    }
    opt!(allow_anonymous);
    opt!(users);
    opt!(auth_callback);
    opt!(enhanced_auth_methods);
    opt!(message_observer);
    opt!(max_packet_size);
    opt!(max_queued_messages);
    opt!(max_queued_bytes);
    opt!(max_inflight_messages);
    opt!(receive_maximum);
    opt!(max_connections);
    opt!(max_keepalive);
    opt!(topic_alias_maximum);
    opt!(max_topic_levels);
    opt!(outgoing_topic_aliases);
    opt!(max_qos);
    opt!(retain_available);
    opt!(log_debug);
    c.password_file = get::<String>(d, "password_file")?.map(PathBuf::from);
    c.acl_file = get::<String>(d, "acl_file")?.map(PathBuf::from);
    c.max_session_expiry = get(d, "max_session_expiry")?;
    if let Some(s) = get::<f64>(d, "connect_timeout")? {
        c.connect_timeout = Duration::from_secs_f64(s.max(0.001));
    }
    if let Some(s) = get::<f64>(d, "sys_interval")? {
        c.sys_interval = Duration::from_secs_f64(s.max(0.0));
    }
    if let Some(s) = get::<f64>(d, "idle_park_after")? {
        // Negative (Python's None): never park.
        c.idle_park_after = (s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    if c.max_qos > 2 {
        return Err(PyValueError::new_err("max_qos must be 0, 1 or 2"));
    }
    if c.max_packet_size < 16 {
        return Err(PyValueError::new_err("max_packet_size must be at least 16"));
    }
    if c.max_queued_messages == 0 || c.receive_maximum == 0 || c.max_inflight_messages == 0 {
        return Err(PyValueError::new_err(
            "max_queued_messages, receive_maximum and max_inflight_messages must be positive",
        ));
    }
    Ok(c)
}

#[pyclass(module = "turbomqtt._core", frozen)]
pub struct BrokerCore {
    broker: Mutex<Option<Broker>>,
    pending_auth: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
    pending_enhanced: Mutex<HashMap<u64, oneshot::Sender<AuthStep>>>,
    next_auth: Mutex<u64>,
}

impl BrokerCore {
    fn with<T>(&self, f: impl FnOnce(&Broker) -> PyResult<T>) -> PyResult<T> {
        let guard = self.broker.lock();
        match guard.as_ref() {
            Some(b) if b.is_running() => f(b),
            _ => Err(PyRuntimeError::new_err("the broker is not running")),
        }
    }
}

#[pymethods]
impl BrokerCore {
    /// Binds every listener and starts serving; raises OSError (port in use, missing
    /// file), ValueError (bad option) or NotImplementedError.
    #[staticmethod]
    fn start(py: Python<'_>, config: &Bound<'_, PyDict>) -> PyResult<BrokerCore> {
        let config = config_from(config)?;
        let broker = py.detach(|| Broker::start(config)).map_err(to_py_err)?;
        Ok(BrokerCore {
            broker: Mutex::new(Some(broker)),
            pending_auth: Mutex::new(HashMap::new()),
            pending_enhanced: Mutex::new(HashMap::new()),
            next_auth: Mutex::new(1),
        })
    }

    /// `[(host, port, transport, tls)]` of the bound listeners.
    fn listeners(&self) -> PyResult<Vec<(String, u16, &'static str, bool)>> {
        self.with(|b| {
            Ok(b.listeners()
                .iter()
                .map(|l| {
                    (
                        l.addr.ip().to_string(),
                        l.addr.port(),
                        match l.transport {
                            Transport::Tcp => "tcp",
                            Transport::WebSocket => "websocket",
                        },
                        l.tls,
                    )
                })
                .collect())
        })
    }

    /// Stops every task and closes every socket; waits up to `timeout` seconds.
    fn stop(&self, py: Python<'_>, timeout: f64) -> bool {
        let taken = self.broker.lock().take();
        self.pending_auth.lock().clear();
        self.pending_enhanced.lock().clear();
        match taken {
            Some(mut b) => py.detach(|| b.stop(Duration::from_secs_f64(timeout.max(0.0)))),
            None => true,
        }
    }

    fn is_running(&self) -> bool {
        self.broker.lock().as_ref().is_some_and(|b| b.is_running())
    }

    /// Waits up to `timeout` seconds for events; None once the broker has stopped.
    /// Tuples: ("log", level, text), ("message", client_id, topic, payload, qos, retain),
    /// ("auth", request_id, client_id, username, password),
    /// ("enhanced_auth", request_id, client_id, method, data).
    fn wait_events<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
    ) -> PyResult<Option<Vec<Bound<'py, PyTuple>>>> {
        let queue = match self.broker.lock().as_ref() {
            Some(b) => b.events(),
            None => return Ok(None),
        };
        let events = py.detach(|| queue.wait(Duration::from_secs_f64(timeout.max(0.0))));
        let Some(events) = events else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let t = match e {
                Event::Log { level, message } => ("log", level as u8, message).into_pyobject(py)?,
                Event::Message {
                    client_id,
                    topic,
                    payload,
                    qos,
                    retain,
                } => (
                    "message",
                    client_id,
                    topic,
                    PyBytes::new(py, &payload),
                    qos,
                    retain,
                )
                    .into_pyobject(py)?,
                Event::Auth {
                    client_id,
                    username,
                    password,
                    reply,
                } => {
                    let id = {
                        let mut n = self.next_auth.lock();
                        *n += 1;
                        *n
                    };
                    self.pending_auth.lock().insert(id, reply);
                    (
                        "auth",
                        id,
                        client_id,
                        username,
                        password.map(|p| PyBytes::new(py, &p)),
                    )
                        .into_pyobject(py)?
                }
                Event::EnhancedAuth {
                    client_id,
                    method,
                    data,
                    reply,
                } => {
                    let id = {
                        let mut n = self.next_auth.lock();
                        *n += 1;
                        *n
                    };
                    self.pending_enhanced.lock().insert(id, reply);
                    (
                        "enhanced_auth",
                        id,
                        client_id,
                        method,
                        data.map(|d| PyBytes::new(py, &d)),
                    )
                        .into_pyobject(py)?
                }
            };
            out.push(t);
        }
        Ok(Some(out))
    }

    /// Answers an ("auth", id, ...) event.
    fn auth_reply(&self, request_id: u64, accept: bool) {
        if let Some(tx) = self.pending_auth.lock().remove(&request_id) {
            let _ = tx.send(accept);
        }
    }

    /// Answers an ("enhanced_auth", id, ...) event: step is "continue", "success" or
    /// "failure" (with `code`, a reason code of 0x80 or above).
    #[pyo3(signature = (request_id, step, data=None, code=0x87))]
    fn enhanced_auth_reply(
        &self,
        request_id: u64,
        step: &str,
        data: Option<Vec<u8>>,
        code: u8,
    ) -> PyResult<()> {
        let data = data.map(Bytes::from);
        let answer = match step {
            "continue" => AuthStep::Continue(data),
            "success" => AuthStep::Success(data),
            "failure" => AuthStep::Failure(code),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown authentication step {other:?}"
                )))
            }
        };
        if let Some(tx) = self.pending_enhanced.lock().remove(&request_id) {
            let _ = tx.send(answer);
        }
        Ok(())
    }

    #[pyo3(signature = (topic, payload, qos=0, retain=false))]
    fn publish(&self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> PyResult<usize> {
        let qos =
            QoS::from_u8(qos).ok_or_else(|| PyValueError::new_err("qos must be 0, 1 or 2"))?;
        let payload = Bytes::copy_from_slice(payload);
        self.with(|b| b.publish(topic, payload, qos, retain).map_err(to_py_err))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with(|b| Ok(b.stats()))?;
        let d = PyDict::new(py);
        d.set_item("uptime", s.uptime_secs)?;
        d.set_item("clients_connected", s.clients_connected)?;
        d.set_item("clients_total", s.clients_total)?;
        d.set_item("clients_maximum", s.clients_maximum)?;
        d.set_item("sessions", s.sessions)?;
        d.set_item("subscriptions", s.subscriptions)?;
        d.set_item("retained_messages", s.retained)?;
        d.set_item("messages_received", s.messages_received)?;
        d.set_item("messages_sent", s.messages_sent)?;
        d.set_item("publish_received", s.publish_received)?;
        d.set_item("publish_sent", s.publish_sent)?;
        d.set_item("messages_dropped", s.messages_dropped)?;
        d.set_item("bytes_received", s.bytes_received)?;
        d.set_item("bytes_sent", s.bytes_sent)?;
        d.set_item("events_dropped", s.events_dropped)?;
        d.set_item("connections_parked", s.connections_parked)?;
        Ok(d)
    }

    fn clients<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let clients = self.with(|b| Ok(b.clients()))?;
        clients
            .into_iter()
            .map(|c| {
                let d = PyDict::new(py);
                d.set_item("client_id", &*c.client_id)?;
                d.set_item("username", c.username)?;
                d.set_item("address", &*c.peer)?;
                d.set_item("protocol", c.protocol)?;
                d.set_item("keepalive", c.keep_alive)?;
                d.set_item("clean_start", c.clean_start)?;
                d.set_item("listener", &*c.listener)?;
                Ok(d)
            })
            .collect()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<BrokerCore>()
}
