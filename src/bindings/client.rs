//! `_core.ClientCore`: the Rust client core as the paho facade (and later the asyncio
//! face) sees it; its Python side is typed in `_core.pyi`.
//!
//! Connection errors become Python exceptions here and only here, shaped like those of
//! Python's `socket` and `ssl` modules so that code written for paho keeps catching them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pyo3::exceptions::{
    PyConnectionAbortedError, PyConnectionError, PyNotImplementedError, PyTimeoutError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::message_info::{error_code, MessageInfo};
use crate::client::event::{Event, Wait};
use crate::client::{
    props, Client, ConnectError, ConnectOptions, ProxyKind, ProxyOptions, TlsOptions,
    TransportKind, TransportOptions,
};
use crate::codec::{
    ByteStr, Connect, LastWill, Properties, ProtocolVersion, QoS, RetainHandling, SubscribeFilter,
    SubscribeOptions,
};

pyo3::create_exception!(
    turbomqtt._core,
    WebsocketConnectionError,
    PyConnectionError,
    "The WebSocket upgrade of the broker connection failed."
);

pub const EV_CONNACK: u8 = 1;
pub const EV_MESSAGE: u8 = 2;
pub const EV_PUBLISHED: u8 = 3;
pub const EV_SUBACK: u8 = 4;
pub const EV_UNSUBACK: u8 = 5;
pub const EV_DISCONNECTED: u8 = 6;
pub const EV_LOG: u8 = 7;
pub const EV_CONNECT_FAILED: u8 = 8;
/// QoS 0 messages written, as a list of their `publish_info` infos (one event per run).
pub const EV_WRITTEN: u8 = 9;
/// `(EV_PUBREC_HELD, mid)`: never returned by `drain`, which keeps these for
/// `release_pubrecs` (see `set_hold_pubrec`).
pub const EV_PUBREC_HELD: u8 = 10;

/// How often blocking waits wake up to let Python handle signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

fn os_error(py: Python<'_>, errno: i32, strerror: &str) -> PyErr {
    // OSError(errno, msg) picks the subclass itself (ConnectionRefusedError, ...).
    match py
        .import("builtins")
        .and_then(|b| b.getattr("OSError"))
        .and_then(|cls| cls.call1((errno, strerror)))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

fn module_error(py: Python<'_>, module: &str, class: &str, args: (i32, String)) -> PyErr {
    match py
        .import(module)
        .and_then(|m| m.getattr(class))
        .and_then(|cls| cls.call1(args))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// The one place where connection errors become Python exceptions.
fn connect_error(py: Python<'_>, e: &ConnectError) -> PyErr {
    match e {
        // The getaddrinfo codes and texts of glibc, as `socket.getaddrinfo` reports them.
        ConnectError::Resolve { detail, .. } => {
            let (code, text) = if detail.contains("Temporary failure") {
                (-3, "Temporary failure in name resolution")
            } else if detail.contains("No address associated") {
                (-5, "No address associated with hostname")
            } else {
                (-2, "Name or service not known")
            };
            module_error(py, "socket", "gaierror", (code, text.into()))
        }
        ConnectError::Io(io) => match io.raw_os_error() {
            Some(errno) => {
                let text = std::io::Error::from_raw_os_error(errno).to_string();
                let strerror = text
                    .rsplit_once(" (os error")
                    .map_or(text.as_str(), |(head, _)| head);
                os_error(py, errno, strerror)
            }
            None => PyErr::from(std::io::Error::new(io.kind(), io.to_string())),
        },
        ConnectError::Timeout => PyTimeoutError::new_err("timed out"),
        ConnectError::TlsVerify { code, message } => {
            let err = module_error(
                py,
                "ssl",
                "SSLCertVerificationError",
                (
                    1,
                    format!(
                        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
                    ),
                ),
            );
            // The attributes CPython's ssl module sets on this error.
            let value = err.value(py);
            let _ = value.setattr("verify_code", *code);
            let _ = value.setattr("verify_message", message.as_str());
            let _ = value.setattr("library", "SSL");
            let _ = value.setattr("reason", "CERTIFICATE_VERIFY_FAILED");
            err
        }
        ConnectError::Tls(detail) => {
            module_error(py, "ssl", "SSLError", (1, format!("[SSL] {detail}")))
        }
        // CPython's load_cert_chain failure: errno and text of OpenSSL's PEM library.
        ConnectError::TlsKey(detail) => module_error(
            py,
            "ssl",
            "SSLError",
            (524297, format!("[SSL] PEM lib ({detail})")),
        ),
        // CPython's SSLError / SSLEOFError texts: "[SSL: REASON] text".
        ConnectError::TlsProtocol { eof, message } => {
            let (class, errno, reason) = if *eof {
                ("SSLEOFError", 8, "UNEXPECTED_EOF_WHILE_READING".to_string())
            } else {
                (
                    "SSLError",
                    1,
                    message.to_ascii_uppercase().replace(' ', "_"),
                )
            };
            let err = module_error(
                py,
                "ssl",
                class,
                (errno, format!("[SSL: {reason}] {message}")),
            );
            let value = err.value(py);
            let _ = value.setattr("library", "SSL");
            let _ = value.setattr("reason", reason);
            err
        }
        // As CPython's set_ciphers raises it: one argument, no errno.
        ConnectError::TlsSetup(detail) => match py
            .import("ssl")
            .and_then(|m| m.getattr("SSLError"))
            .and_then(|cls| cls.call1((detail.clone(),)))
        {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        },
        ConnectError::WebSocket(detail) => WebsocketConnectionError::new_err(detail.clone()),
        ConnectError::Proxy(detail) => PyConnectionError::new_err(detail.clone()),
        ConnectError::InvalidArgument(detail) => PyValueError::new_err(detail.clone()),
        ConnectError::NotImplemented(detail) => PyNotImplementedError::new_err(detail.clone()),
        ConnectError::Cancelled => PyConnectionAbortedError::new_err("connect was cancelled"),
    }
}

fn properties(wire: Option<&PyBackedBytes>) -> PyResult<Properties> {
    match wire {
        None => Ok(Properties::default()),
        Some(b) => props::from_wire(b).map_err(|e| PyValueError::new_err(e.to_string())),
    }
}

fn qos(v: u8) -> PyResult<QoS> {
    QoS::from_u8(v).ok_or_else(|| PyValueError::new_err("Invalid QoS level."))
}

fn opt_bytes<'py>(py: Python<'py>, b: &Option<Bytes>) -> Bound<'py, PyAny> {
    match b {
        Some(b) => PyBytes::new(py, b).into_any(),
        None => py.None().into_bound(py),
    }
}

/// `info`: for EV_PUBLISHED, the info its publish registered (the fifth item; None if
/// none); ignored for other events.
fn event_tuple<'py>(
    py: Python<'py>,
    e: &Event,
    info: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let none = || py.None().into_bound(py);
    let items: Vec<Bound<'py, PyAny>> = match e {
        Event::ConnAck {
            session_present,
            code,
            properties,
        } => vec![
            EV_CONNACK.into_pyobject(py)?.into_any(),
            session_present.into_pyobject(py)?.to_owned().into_any(),
            code.into_pyobject(py)?.into_any(),
            opt_bytes(py, properties),
        ],
        Event::Message(m) => vec![
            EV_MESSAGE.into_pyobject(py)?.into_any(),
            PyBytes::new(py, m.raw_topic.as_deref().unwrap_or(m.topic.as_bytes())).into_any(),
            PyBytes::new(py, &m.payload).into_any(),
            m.qos.into_pyobject(py)?.into_any(),
            m.retain.into_pyobject(py)?.to_owned().into_any(),
            m.mid.into_pyobject(py)?.into_any(),
            m.dup.into_pyobject(py)?.to_owned().into_any(),
            opt_bytes(py, &m.properties),
        ],
        Event::Published {
            mid,
            qos,
            code,
            properties,
        } => vec![
            EV_PUBLISHED.into_pyobject(py)?.into_any(),
            mid.into_pyobject(py)?.into_any(),
            code.into_pyobject(py)?.into_any(),
            opt_bytes(py, properties),
            match info {
                Some(i) => i.into_bound(py),
                None => none(),
            },
            qos.into_pyobject(py)?.into_any(),
        ],
        Event::SubAck {
            mid,
            codes,
            properties,
        }
        | Event::UnsubAck {
            mid,
            codes,
            properties,
        } => {
            let kind = if matches!(e, Event::SubAck { .. }) {
                EV_SUBACK
            } else {
                EV_UNSUBACK
            };
            vec![
                kind.into_pyobject(py)?.into_any(),
                mid.into_pyobject(py)?.into_any(),
                PyList::new(py, codes.iter().copied())?.into_any(),
                opt_bytes(py, properties),
            ]
        }
        Event::Disconnected {
            code,
            reason_absent,
            from_server,
            properties,
            error,
        } => vec![
            EV_DISCONNECTED.into_pyobject(py)?.into_any(),
            if *reason_absent {
                none()
            } else {
                code.into_pyobject(py)?.into_any()
            },
            from_server.into_pyobject(py)?.to_owned().into_any(),
            opt_bytes(py, properties),
            match error {
                Some(s) => s.into_pyobject(py)?.into_any(),
                None => none(),
            },
        ],
        Event::Log { level, message } => vec![
            EV_LOG.into_pyobject(py)?.into_any(),
            level.into_pyobject(py)?.into_any(),
            message.into_pyobject(py)?.into_any(),
        ],
        Event::PubRecHeld { mid } => vec![
            EV_PUBREC_HELD.into_pyobject(py)?.into_any(),
            mid.into_pyobject(py)?.into_any(),
        ],
        Event::ConnectFailed(failure) => vec![
            EV_CONNECT_FAILED.into_pyobject(py)?.into_any(),
            connect_error(py, &failure.0)
                .into_value(py)
                .into_bound(py)
                .into_any(),
        ],
    };
    PyTuple::new(py, items)
}

fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract::<T>().map_err(Into::into)?)),
        _ => Ok(None),
    }
}

/// WebSocket headers as a dict (the contract) or a list of pairs.
fn header_list(h: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    match h.cast::<PyDict>() {
        Ok(d) => d
            .iter()
            .map(|(k, v)| Ok((k.extract::<String>()?, v.extract::<String>()?)))
            .collect(),
        Err(_) => h.extract::<Vec<(String, String)>>(),
    }
}

fn tls_options(d: &Bound<'_, PyDict>) -> PyResult<TlsOptions> {
    Ok(TlsOptions {
        ca_certs: get::<PathBuf>(d, "ca_certs")?,
        ca_data: get::<Vec<Vec<u8>>>(d, "ca_data")?.unwrap_or_default(),
        certfile: get::<PathBuf>(d, "certfile")?,
        keyfile: get::<PathBuf>(d, "keyfile")?,
        keyfile_password: match d.get_item("keyfile_password")? {
            Some(v) if !v.is_none() => Some(match v.extract::<String>() {
                Ok(text) => text.into_bytes(),
                Err(_) => v.extract::<Vec<u8>>()?,
            }),
            _ => None,
        },
        verify: get::<bool>(d, "verify")?.unwrap_or(true),
        check_hostname: get::<bool>(d, "check_hostname")?.unwrap_or(true),
        min_version: get::<String>(d, "min_version")?,
        max_version: get::<String>(d, "max_version")?,
        alpn: get::<Vec<String>>(d, "alpn")?.unwrap_or_default(),
        server_hostname: get::<String>(d, "server_hostname")?,
        use_native_roots: get::<bool>(d, "use_native_roots")?.unwrap_or(true),
        ciphers: get::<Vec<String>>(d, "ciphers")?,
    })
}

fn proxy_options(d: &Bound<'_, PyDict>) -> PyResult<ProxyOptions> {
    let kind = match d.get_item("type")? {
        None => return Err(PyValueError::new_err("proxy needs a 'type'")),
        Some(t) => {
            // PySocks' constants (SOCKS4=1, SOCKS5=2, HTTP=3) are accepted too.
            let name = match t.extract::<i64>() {
                Ok(1) => "socks4".to_string(),
                Ok(2) => "socks5".to_string(),
                Ok(3) => "http".to_string(),
                _ => t.extract::<String>()?.to_ascii_lowercase(),
            };
            match name.as_str() {
                "socks4" => ProxyKind::Socks4,
                "socks5" => ProxyKind::Socks5,
                "http" => ProxyKind::Http,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown proxy type {other:?}"
                    )))
                }
            }
        }
    };
    let host =
        get::<String>(d, "host")?.ok_or_else(|| PyValueError::new_err("proxy needs a 'host'"))?;
    let port = get::<u16>(d, "port")?.unwrap_or(match kind {
        ProxyKind::Http => 8080,
        _ => 1080,
    });
    Ok(ProxyOptions {
        kind,
        host,
        port,
        username: get::<String>(d, "username")?,
        password: get::<String>(d, "password")?,
    })
}

/// The Rust client core; see `_core.pyi` for the documented API.
#[pyclass(module = "turbomqtt._core", frozen)]
pub struct ClientCore {
    client: Client,
    /// The `MQTTMessageInfo` of each `publish_info` call still waiting for its
    /// EV_PUBLISHED, by mid, with its QoS. Only touched with the GIL held (`publish` and
    /// `drain` both hold it), so an acknowledgement can never be drained before publish()
    /// has registered its info: no Python-level lock on the publish path.
    infos: parking_lot::Mutex<PublishInfos>,
    message_class: pyo3::sync::PyOnceLock<MessageClass>,
    /// Held PUBRECs whose PUBLISH `drain` has handed to Python, for `release_pubrecs`.
    pubrecs_due: parking_lot::Mutex<Vec<u16>>,
}

/// Builds the paho facade's `MQTTMessage` objects in `drain`: filling the object's slots
/// here costs a fraction of building an event tuple that Python then unpacks into a new
/// object attribute by attribute (measured: ~1 us of Python per message became ~0.4).
struct MessageClass {
    cls: Py<pyo3::types::PyType>,
    undecoded: Py<PyAny>,
    invalid_state: Py<PyAny>,
}

impl MessageClass {
    fn build<'py>(
        &self,
        py: Python<'py>,
        m: &crate::client::Message,
        v5: bool,
        now: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: `cls` is a type object (a `PyType`); `PyType_GenericAlloc` is what
        // `object.__new__` uses for a Python class (zeroed, GC-tracked if the type is)
        // and returns a new reference, or NULL with an exception set.
        let msg = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                pyo3::ffi::PyType_GenericAlloc(self.cls.as_ptr().cast(), 0),
            )?
        };
        // SAFETY: `msg` is a live object we own. Untracked, the cycle collector does not
        // walk every message of a drained batch at each of its collections (seen as
        // ~10% of a subscriber's time); the slots set below hold only bytes, ints, None
        // and long-lived markers, so no cycle can run through it unless user code puts
        // one there (then it is freed with the process, like any uncollected cycle).
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(msg.as_ptr().cast()) };
        let topic = m.raw_topic.as_deref().unwrap_or(m.topic.as_bytes());
        msg.setattr(pyo3::intern!(py, "timestamp"), now)?;
        msg.setattr(pyo3::intern!(py, "state"), &self.invalid_state)?;
        msg.setattr(pyo3::intern!(py, "_topic"), PyBytes::new(py, topic))?;
        msg.setattr(pyo3::intern!(py, "payload"), PyBytes::new(py, &m.payload))?;
        msg.setattr(pyo3::intern!(py, "qos"), m.qos)?;
        msg.setattr(pyo3::intern!(py, "retain"), m.retain)?;
        msg.setattr(pyo3::intern!(py, "mid"), m.mid)?;
        msg.setattr(pyo3::intern!(py, "dup"), m.dup)?;
        msg.setattr(pyo3::intern!(py, "_info"), py.None())?;
        msg.setattr(
            pyo3::intern!(py, "_raw_properties"),
            opt_bytes(py, &m.properties),
        )?;
        if v5 {
            msg.setattr(pyo3::intern!(py, "_properties"), &self.undecoded)?;
        } else {
            msg.setattr(pyo3::intern!(py, "_properties"), py.None())?;
        }
        Ok(msg)
    }
}

/// Infos by how their EV_PUBLISHED will come: QoS 0 messages are reported in the order
/// they were queued (and their mids may repeat once more than 65,535 are queued), QoS 1/2
/// by a mid that is unique while the message is in flight.
#[derive(Default)]
struct PublishInfos {
    written: std::collections::VecDeque<(u16, Py<PyAny>)>,
    acked: HashMap<u16, Py<PyAny>>,
}

impl PublishInfos {
    fn insert(&mut self, mid: u16, qos: u8, info: Py<PyAny>) {
        if qos == 0 {
            self.written.push_back((mid, info));
        } else {
            self.acked.insert(mid, info);
        }
    }

    fn take(&mut self, mid: u16, qos: u8) -> Option<Py<PyAny>> {
        if qos > 0 {
            return self.acked.remove(&mid);
        }
        // Reported in queue order; an info whose message was never reported (it cannot
        // be: every queued QoS 0 message is written or lost with its connection, and the
        // lost ones are taken at reconnect) would only be skipped, never mismatched.
        while let Some((m, info)) = self.written.pop_front() {
            if m == mid {
                return Some(info);
            }
        }
        None
    }

    fn len(&self) -> usize {
        self.written.len() + self.acked.len()
    }
}

impl ClientCore {
    fn publish_inner(
        &self,
        topic: PyBackedStr,
        payload: PyBackedBytes,
        qos: u8,
        retain: bool,
        properties: Option<PyBackedBytes>,
        done: Option<Arc<crate::client::Completion>>,
    ) -> PyResult<(i32, u16)> {
        let q = self::qos(qos)?;
        // SAFETY: a `PyBackedStr` is the UTF-8 form of a Python str, so the per-publish
        // UTF-8 scan `ByteStr::from_utf8` would do is redundant.
        let topic = unsafe { ByteStr::from_utf8_unchecked(Bytes::from_owner(topic)) };
        let props = match properties {
            None => None,
            Some(p) => {
                let p = props::from_wire(&p).map_err(|e| PyValueError::new_err(e.to_string()))?;
                (!p.is_empty()).then(|| Box::new(p))
            }
        };
        Ok(self
            .client
            .publish(topic, Bytes::from_owner(payload), q, retain, props, done))
    }

    fn wait_connect(&self, py: Python<'_>, pending: crate::client::PendingConnect) -> PyResult<()> {
        let mut pending = pending;
        loop {
            let (back, result) = py.detach(move || {
                let r = pending.wait(SIGNAL_CHECK);
                (pending, r)
            });
            pending = back;
            match result {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) => return Err(connect_error(py, &e)),
                None => {
                    if let Err(e) = py.check_signals() {
                        pending.cancel();
                        self.client.close();
                        return Err(e);
                    }
                }
            }
        }
    }
}

#[pymethods]
impl ClientCore {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(Self {
            client: Client::new()?,
            infos: parking_lot::Mutex::new(PublishInfos::default()),
            message_class: pyo3::sync::PyOnceLock::new(),
            pubrecs_due: parking_lot::Mutex::new(Vec::new()),
        })
    }

    /// 0 = unlimited; paho's default is 20.
    fn set_max_inflight(&self, n: usize) {
        self.client.set_max_inflight(n);
    }

    /// 0 = unlimited (paho's default).
    fn set_max_queued(&self, n: usize) {
        self.client.set_max_queued(n);
    }

    fn set_manual_ack(&self, on: bool) {
        self.client.set_manual_ack(on);
    }

    /// On (a host drives the paho facade's loop): the PUBREC of an incoming QoS 2
    /// message waits until `drain` has handed its PUBLISH to Python and the facade calls
    /// `release_pubrecs` (paho answers in the host's `loop_write()`). Off (default):
    /// answered on receipt; turning it off sends what is still held.
    fn set_hold_pubrec(&self, on: bool) {
        if !on {
            self.release_pubrecs();
        }
        self.client.set_hold_pubrec(on);
    }

    /// How many held PUBRECs `drain` has handed over and `release_pubrecs` would send.
    fn pubrecs_due(&self) -> usize {
        self.pubrecs_due.lock().len()
    }

    /// Sends the held PUBRECs whose PUBLISH was drained.
    fn release_pubrecs(&self) {
        let mids = std::mem::take(&mut *self.pubrecs_due.lock());
        if !mids.is_empty() {
            self.client.release_pubrecs(&mids);
        }
    }

    /// While more than `n` events wait undrained the core stops reading the socket
    /// (default 65536), so a slow consumer pushes back on the broker.
    fn set_event_limit(&self, n: usize) {
        self.client.events().set_limit(n);
    }

    /// False: incoming v5 PUBLISH packets that use a topic alias keep their (empty) wire
    /// topic, as paho-mqtt delivers them. Default True: the full topic.
    fn set_resolve_topic_aliases(&self, on: bool) {
        self.client.set_resolve_topic_aliases(on);
    }

    /// True: an incoming PUBLISH whose topic is not valid UTF-8 is delivered (EV_MESSAGE
    /// with the raw topic bytes) instead of closing the connection, as paho-mqtt does.
    /// Takes effect from the next connect(). Default False.
    fn set_accept_invalid_topics(&self, on: bool) {
        self.client.set_accept_invalid_topics(on);
    }

    /// True: EV_DISCONNECTED of a v5 server DISCONNECT carries code None when the packet
    /// had no reason code and properties None when it had no properties section, as
    /// paho-mqtt reports them. Default False: 0 (Normal disconnection) and None.
    fn set_report_absent_disconnect_fields(&self, on: bool) {
        self.client.set_report_absent_disconnect_fields(on);
    }

    /// No PINGREQ while paused (paho sends pings only while a loop function runs).
    fn set_keepalive_paused(&self, paused: bool) {
        self.client.set_keepalive_paused(paused);
    }

    fn set_log_packets(&self, on: bool) {
        self.client.set_log_packets(on);
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, host, port, keepalive, client_id, protocol, clean_start,
        username=None, password=None, will=None, properties=None, transport="tcp",
        ws_path="/mqtt", ws_headers=None, tls=None, bind_address="", bind_port=0,
        proxy=None, timeout=5.0, block=true, hold_output=false, bridge=false))]
    fn connect(
        &self,
        py: Python<'_>,
        host: String,
        port: u16,
        keepalive: u16,
        client_id: String,
        protocol: u8,
        clean_start: bool,
        username: Option<String>,
        password: Option<PyBackedBytes>,
        will: Option<(String, PyBackedBytes, u8, bool, Option<PyBackedBytes>)>,
        properties: Option<PyBackedBytes>,
        transport: &str,
        ws_path: Option<&str>,
        ws_headers: Option<Bound<'_, PyAny>>,
        tls: Option<Bound<'_, PyDict>>,
        bind_address: &str,
        bind_port: u16,
        proxy: Option<Bound<'_, PyDict>>,
        timeout: f64,
        block: bool,
        hold_output: bool,
        bridge: bool,
    ) -> PyResult<()> {
        let version = ProtocolVersion::from_level(protocol)
            .ok_or_else(|| PyValueError::new_err(format!("unsupported protocol {protocol}")))?;
        let kind = match transport {
            "tcp" => TransportKind::Tcp,
            "websockets" => TransportKind::WebSockets,
            "unix" => TransportKind::Unix,
            other => {
                return Err(PyValueError::new_err(format!(
                    "transport must be 'websockets', 'tcp' or 'unix', not {other:?}"
                )))
            }
        };
        let will = match will {
            None => None,
            Some((topic, payload, q, retain, wprops)) => Some(LastWill {
                topic: ByteStr::from(topic),
                payload: Bytes::from_owner(payload),
                qos: qos(q)?,
                retain,
                properties: self::properties(wprops.as_ref())?,
            }),
        };
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(PyValueError::new_err("timeout must be a positive number"));
        }
        let opts = ConnectOptions {
            connect: Connect {
                protocol: version,
                clean_start,
                keep_alive: keepalive,
                client_id,
                will,
                username,
                password: password.map(Bytes::from_owner),
                properties: self::properties(properties.as_ref())?,
                bridge,
            },
            transport: TransportOptions {
                host,
                port,
                kind,
                // None (paho's ws_set_options(path=None)) is the default path.
                ws_path: ws_path.unwrap_or("/mqtt").to_string(),
                ws_headers: ws_headers
                    .as_ref()
                    .map(header_list)
                    .transpose()?
                    .unwrap_or_default(),
                tls: tls.as_ref().map(tls_options).transpose()?,
                bind_address: bind_address.to_string(),
                bind_port,
                proxy: proxy.as_ref().map(proxy_options).transpose()?,
            },
            timeout: Duration::from_secs_f64(timeout),
        };
        if !block {
            // For event-loop faces: returns at once; EV_CONNACK or EV_CONNECT_FAILED follows.
            self.client.start_connect_nowait(opts);
            return Ok(());
        }
        let pending = if hold_output {
            // paho's connect() while its loop thread sleeps: nothing written yet.
            self.client.start_connect_held(opts)
        } else {
            self.client.start_connect(opts)
        };
        self.wait_connect(py, pending)
    }

    /// The connection opened with `hold_output=True` writes what it has queued.
    fn release_output(&self) {
        self.client.release_output();
    }

    /// Default True: publish/subscribe/unsubscribe above the server's v5 Maximum Packet
    /// Size return rc 9 and send nothing. False: sent anyway, as paho-mqtt 2.2 does.
    fn set_enforce_max_packet_size(&self, on: bool) {
        self.client.set_enforce_max_packet_size(on);
    }

    /// `connect()` again with the last arguments.
    fn reconnect(&self, py: Python<'_>) -> PyResult<()> {
        match self.client.start_reconnect() {
            Some(pending) => self.wait_connect(py, pending),
            None => Err(PyValueError::new_err("Invalid host.")),
        }
    }

    #[pyo3(signature = (topic, payload, qos, retain, properties=None))]
    fn publish(
        &self,
        topic: PyBackedStr,
        payload: PyBackedBytes,
        qos: u8,
        retain: bool,
        properties: Option<PyBackedBytes>,
    ) -> PyResult<(i32, u16)> {
        self.publish_inner(topic, payload, qos, retain, properties, None)
    }

    /// publish() for the paho facade: returns its `MQTTMessageInfo` (rc as paho's
    /// `MQTTErrorCode`), which the core keeps until the message's EV_PUBLISHED/EV_WRITTEN.
    /// `completing` (no `on_publish` to call): the core marks the info published itself
    /// when the message is written or acknowledged, and reports no event for it (unless
    /// `set_report_completed` is on): acknowledgements then never wake the loop thread.
    #[pyo3(signature = (topic, payload, qos, retain, properties=None, completing=false))]
    #[allow(clippy::too_many_arguments)]
    fn publish_info(
        &self,
        py: Python<'_>,
        topic: PyBackedStr,
        payload: PyBackedBytes,
        qos: u8,
        retain: bool,
        properties: Option<PyBackedBytes>,
        completing: bool,
    ) -> PyResult<Py<MessageInfo>> {
        // Created before publishing: between the core taking the message and the info
        // being registered nothing may call into Python (an allocation can run the
        // cycle collector, finalizers and so another thread's drain of this message's
        // EV_WRITTEN, which would then find no info).
        let info = Py::new(py, MessageInfo::new(0, qos))?;
        // SAFETY: `info` is a live object we own; untracking only keeps the cycle
        // collector from walking it (and every info still queued) on each collection.
        // It holds no reference that could be part of a cycle (an int-like rc at most),
        // and untracking an object twice, as its deallocator will, is allowed.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(info.as_ptr().cast()) };
        let done = completing.then(|| info.get().completion());
        let (rc, mid) = self.publish_inner(topic, payload, qos, retain, properties, done)?;
        info.get().set_mid(mid);
        if !completing && (rc == 0 || (rc == 4 && qos > 0)) {
            self.infos
                .lock()
                .insert(mid, qos, info.clone_ref(py).into_any());
        }
        if rc != 0 {
            info.get().store_rc(error_code(py, i64::from(rc))?);
        }
        Ok(info)
    }

    /// The paho facade's `publish()` for the common call (a `str` topic, a `bytes`
    /// payload, an `int` QoS, no properties), with paho's argument checks done here:
    /// about half of the facade's Python work per call. None: not such a call, the
    /// facade takes its general path. `protocol`: the facade's protocol (empty topics are
    /// refused before MQTT 5).
    #[pyo3(signature = (topic, payload, qos, retain, protocol, completing))]
    #[allow(clippy::too_many_arguments)]
    fn publish_fast(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
        qos: &Bound<'_, PyAny>,
        retain: &Bound<'_, PyAny>,
        protocol: u8,
        completing: bool,
    ) -> PyResult<Option<Py<MessageInfo>>> {
        use pyo3::types::{PyInt, PyString};
        if !topic.is_exact_instance_of::<PyString>()
            || !payload.is_exact_instance_of::<PyBytes>()
            || !qos.is_exact_instance_of::<PyInt>()
        {
            return Ok(None);
        }
        // The checks and messages of paho-mqtt 2.2's publish(), in its order.
        let topic: PyBackedStr = topic.extract()?;
        if protocol != 5 && topic.is_empty() {
            return Err(PyValueError::new_err("Invalid topic."));
        }
        let wildcard = topic.bytes().any(|b| b == b'+' || b == b'#');
        if wildcard {
            return Err(PyValueError::new_err(
                "Publish topic cannot contain wildcards.",
            ));
        }
        if topic.len() > 65535 {
            return Err(PyValueError::new_err("Publish topic is too long."));
        }
        let qos = match qos.extract::<i64>() {
            Ok(q @ 0..=2) => q as u8,
            _ => return Err(PyValueError::new_err("Invalid QoS level.")),
        };
        let payload: PyBackedBytes = payload.extract()?;
        if payload.len() > 268_435_455 {
            return Err(PyValueError::new_err("Payload too large."));
        }
        // paho ORs `retain` into the fixed header: any int-like value works there.
        let retain = retain.is_truthy()?;
        self.publish_info(py, topic, payload, qos, retain, None, completing)
            .map(Some)
    }

    /// Removes and returns the `publish_info` infos that wait for an EV_PUBLISHED
    /// (only those of QoS 0 messages when `qos0_only`: they are lost with a connection).
    #[pyo3(signature = (qos0_only=false))]
    fn take_infos(&self, qos0_only: bool) -> Vec<Py<PyAny>> {
        let mut infos = self.infos.lock();
        let mut taken: Vec<Py<PyAny>> = infos.written.drain(..).map(|(_, i)| i).collect();
        if !qos0_only {
            taken.extend(infos.acked.drain().map(|(_, i)| i));
        }
        taken
    }

    /// Removes and returns the info registered for the QoS 1/2 message `mid`, if any.
    fn take_info(&self, mid: u16) -> Option<Py<PyAny>> {
        self.infos.lock().acked.remove(&mid)
    }

    /// How many infos wait for their EV_PUBLISHED or their completion by the core.
    fn pending_infos(&self) -> usize {
        self.infos.lock().len() + self.client.pending_completions()
    }

    /// While on, messages published with `completing=True` are reported as EV_PUBLISHED
    /// too (with no info; the QoS is the sixth item).
    fn set_report_completed(&self, on: bool) {
        self.client.set_report_completed(on);
    }

    /// `filters`: (filter, options byte) pairs; for 3.x the byte is just the QoS.
    #[pyo3(signature = (filters, properties=None))]
    fn subscribe(
        &self,
        filters: Vec<(String, u8)>,
        properties: Option<PyBackedBytes>,
    ) -> PyResult<(i32, u16)> {
        let mut list = Vec::with_capacity(filters.len());
        for (filter, options) in filters {
            let retain_handling = match (options >> 4) & 3 {
                0 => RetainHandling::OnSubscribe,
                1 => RetainHandling::OnNewSubscribe,
                2 => RetainHandling::DoNotSend,
                _ => return Err(PyValueError::new_err("invalid retain handling")),
            };
            list.push(SubscribeFilter {
                filter,
                options: SubscribeOptions {
                    qos: qos(options & 3)?,
                    no_local: options & 4 != 0,
                    retain_as_published: options & 8 != 0,
                    retain_handling,
                },
            });
        }
        Ok(self
            .client
            .subscribe(list, self::properties(properties.as_ref())?))
    }

    #[pyo3(signature = (filters, properties=None))]
    fn unsubscribe(
        &self,
        filters: Vec<String>,
        properties: Option<PyBackedBytes>,
    ) -> PyResult<(i32, u16)> {
        Ok(self
            .client
            .unsubscribe(filters, self::properties(properties.as_ref())?))
    }

    #[pyo3(signature = (reason_code=0, properties=None))]
    fn disconnect(&self, reason_code: u8, properties: Option<PyBackedBytes>) -> PyResult<i32> {
        Ok(self
            .client
            .disconnect(reason_code, self::properties(properties.as_ref())?))
    }

    /// Abrupt close without DISCONNECT (the broker publishes the will); no event follows.
    fn close(&self) {
        self.client.close();
    }

    /// Makes a blocked `wait()` (in any thread) return False at once.
    fn wake(&self) {
        self.client.events().wake();
    }

    /// Removes every unacknowledged or queued outgoing QoS>0 message; returns their mids.
    fn drop_out_messages(&self) -> Vec<u16> {
        self.client.drop_out_messages()
    }

    fn ack(&self, mid: u16, qos: u8) -> i32 {
        self.client.ack(mid, qos)
    }

    fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    fn fileno(&self) -> i64 {
        self.client.events().fileno()
    }

    fn pending(&self) -> usize {
        self.client.events().len()
    }

    /// Blocks until an event is pending or `timeout` seconds pass (None = forever),
    /// with the GIL released; Ctrl-C raises KeyboardInterrupt.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = match timeout {
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(PyValueError::new_err("timeout must be non-negative"))
            }
            Some(t) => Some(Instant::now() + Duration::from_secs_f64(t.min(1e9))),
            None => None,
        };
        loop {
            let slice = match deadline {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .min(SIGNAL_CHECK),
                None => SIGNAL_CHECK,
            };
            match py.detach(|| self.client.wait(slice)) {
                Wait::Events => return Ok(true),
                Wait::Woken => return Ok(false),
                Wait::TimedOut => {}
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Removes and returns pending events in arrival order (0 = all), stopping before the
    /// message payloads taken exceed `max_bytes` (0 = no limit; at least one is taken).
    ///
    /// `messages=(v5, now)`: messages come as ready `MQTTMessage` objects of the class
    /// given to `set_message_class` (received at `now`), not as EV_MESSAGE tuples.
    #[pyo3(signature = (max_events=0, max_bytes=0, messages=None))]
    fn drain<'py>(
        &self,
        py: Python<'py>,
        max_events: usize,
        max_bytes: usize,
        messages: Option<(bool, Bound<'py, PyAny>)>,
    ) -> PyResult<Bound<'py, PyList>> {
        let build = match (&messages, self.message_class.get(py)) {
            (Some((v5, now)), Some(class)) => Some((*v5, now, class)),
            _ => None,
        };
        let events = self.client.events().drain_within(max_events, max_bytes);
        let list = PyList::empty(py);
        // Consecutive written QoS 0 messages that have infos become one EV_WRITTEN: the
        // facade's per-message work is then one attribute store, not an event dispatch.
        let mut written: Option<Bound<'py, PyList>> = None;
        for e in &events {
            if let Event::PubRecHeld { mid } = e {
                self.pubrecs_due.lock().push(*mid);
                continue;
            }
            if let (Event::Message(m), Some((v5, now, class))) = (e, &build) {
                written = None;
                list.append(class.build(py, m, *v5, now)?)?;
                continue;
            }
            let info = match e {
                Event::Published { mid, qos, .. } => self.infos.lock().take(*mid, *qos),
                _ => None,
            };
            if let (Some(info), Event::Published { qos: 0, .. }) = (&info, e) {
                match &written {
                    Some(w) => w.append(info)?,
                    None => {
                        let w = PyList::new(py, [info])?;
                        list.append((EV_WRITTEN, &w))?;
                        written = Some(w);
                    }
                }
                continue;
            }
            written = None;
            list.append(event_tuple(py, e, info)?)?;
        }
        Ok(list)
    }

    /// The paho facade's `MQTTMessage` class, its "properties not decoded yet" marker
    /// and its `MQTT_MS_INVALID` state, for `drain(messages=...)`. Set once.
    fn set_message_class(
        &self,
        py: Python<'_>,
        cls: Bound<'_, pyo3::types::PyType>,
        undecoded: Py<PyAny>,
        invalid_state: Py<PyAny>,
    ) {
        let _ = self.message_class.set(
            py,
            MessageClass {
                cls: cls.unbind(),
                undecoded,
                invalid_state,
            },
        );
    }

    // ---- asyncio face ----

    /// While `on`, the connection reads nothing more from the socket (queued events
    /// stay drainable); the asyncio face pauses while a consumer's queue is full.
    fn pause_reading(&self, on: bool) {
        self.client.events().set_paused(on);
    }

    /// While `on`, completions of written QoS 0 publishes wait in the queue without a
    /// notifier byte (until they fill half the event limit); `off` signals pending ones.
    fn set_quiet_written(&self, on: bool) {
        self.client.events().set_quiet_written(on);
    }

    /// A duplicate fd of the current plain-TCP socket for the loop to watch (-1: none);
    /// the face then calls `read_socket()` when it is readable. Close it (os.close) after
    /// removing it from the loop; see `Client::watch_socket`.
    fn watch_socket(&self) -> i32 {
        self.client.watch_socket().unwrap_or(-1)
    }

    /// Reads what the watched socket holds (events then wait for `drain()`); False: the
    /// watch ended (stop watching the fd and close it).
    fn read_socket(&self) -> bool {
        self.client.read_socket()
    }

    /// Ends the watch (call before closing the fd from `watch_socket`).
    fn unwatch_socket(&self) {
        self.client.unwatch_socket();
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ClientCore>()?;
    m.add(
        "WebsocketConnectionError",
        m.py().get_type::<WebsocketConnectionError>(),
    )?;
    m.add("EV_CONNACK", EV_CONNACK)?;
    m.add("EV_MESSAGE", EV_MESSAGE)?;
    m.add("EV_PUBLISHED", EV_PUBLISHED)?;
    m.add("EV_SUBACK", EV_SUBACK)?;
    m.add("EV_UNSUBACK", EV_UNSUBACK)?;
    m.add("EV_DISCONNECTED", EV_DISCONNECTED)?;
    m.add("EV_LOG", EV_LOG)?;
    m.add("EV_CONNECT_FAILED", EV_CONNECT_FAILED)?;
    m.add("EV_WRITTEN", EV_WRITTEN)?;
    m.add("EV_PUBREC_HELD", EV_PUBREC_HELD)?;
    Ok(())
}
