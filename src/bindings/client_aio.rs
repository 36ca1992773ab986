//! `ClientCore` additions for the asyncio face: a connect that never blocks (its
//! outcome is an event) and the conversion of that event. A child module of
//! `client.rs` so it shares its argument parsing helpers.

use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyDict;

use super::{get, properties, proxy_options, qos, tls_options, ClientCore};
use crate::client::{ConnectFailure, ConnectOptions, TransportKind, TransportOptions};
use crate::codec::{ByteStr, Connect, LastWill, ProtocolVersion};

/// `(8, attempt: int, errno: int | None, kind: str | None, message: str | None)`;
/// kind None means the transport is up and CONNECT is written.
pub const EV_CONNECT_RESULT: u8 = 8;

const KEYS: &[&str] = &[
    "host",
    "port",
    "keepalive",
    "client_id",
    "protocol",
    "clean_start",
    "username",
    "password",
    "will",
    "properties",
    "transport",
    "ws_path",
    "ws_headers",
    "tls",
    "bind_address",
    "bind_port",
    "proxy",
    "timeout",
];

fn required<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
    get::<T>(d, key)?.ok_or_else(|| PyValueError::new_err(format!("connect_start needs {key}")))
}

pub(super) fn connect_start(core: &ClientCore, kwargs: Option<Bound<'_, PyDict>>) -> PyResult<u64> {
    let d = kwargs.ok_or_else(|| PyValueError::new_err("connect_start needs keyword arguments"))?;
    for key in d.keys() {
        let key: String = key.extract()?;
        if !KEYS.contains(&key.as_str()) {
            return Err(PyValueError::new_err(format!(
                "connect_start got an unexpected keyword {key:?}"
            )));
        }
    }
    let protocol: u8 = required(&d, "protocol")?;
    let version = ProtocolVersion::from_level(protocol)
        .ok_or_else(|| PyValueError::new_err(format!("unsupported protocol {protocol}")))?;
    let transport = get::<String>(&d, "transport")?.unwrap_or_else(|| "tcp".into());
    let kind = match transport.as_str() {
        "tcp" => TransportKind::Tcp,
        "websockets" => TransportKind::WebSockets,
        "unix" => TransportKind::Unix,
        other => {
            return Err(PyValueError::new_err(format!(
                "transport must be 'websockets', 'tcp' or 'unix', not {other:?}"
            )))
        }
    };
    type WillArgs = (String, PyBackedBytes, u8, bool, Option<PyBackedBytes>);
    let will = match get::<WillArgs>(&d, "will")? {
        None => None,
        Some((topic, payload, q, retain, wprops)) => Some(LastWill {
            topic: ByteStr::from(topic),
            payload: Bytes::from_owner(payload),
            qos: qos(q)?,
            retain,
            properties: properties(wprops.as_ref())?,
        }),
    };
    let timeout = get::<f64>(&d, "timeout")?.unwrap_or(5.0);
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(PyValueError::new_err("timeout must be a positive number"));
    }
    let tls = get::<Bound<'_, PyDict>>(&d, "tls")?;
    let proxy = get::<Bound<'_, PyDict>>(&d, "proxy")?;
    let opts = ConnectOptions {
        connect: Connect {
            protocol: version,
            clean_start: get::<bool>(&d, "clean_start")?.unwrap_or(true),
            keep_alive: get::<u16>(&d, "keepalive")?.unwrap_or(60),
            client_id: get::<String>(&d, "client_id")?.unwrap_or_default(),
            will,
            username: get::<String>(&d, "username")?,
            password: get::<PyBackedBytes>(&d, "password")?.map(Bytes::from_owner),
            properties: properties(get::<PyBackedBytes>(&d, "properties")?.as_ref())?,
        },
        transport: TransportOptions {
            host: required(&d, "host")?,
            port: get::<u16>(&d, "port")?.unwrap_or(1883),
            kind,
            ws_path: get::<String>(&d, "ws_path")?.unwrap_or_else(|| "/mqtt".into()),
            ws_headers: get::<Vec<(String, String)>>(&d, "ws_headers")?.unwrap_or_default(),
            tls: tls.as_ref().map(tls_options).transpose()?,
            bind_address: get::<String>(&d, "bind_address")?.unwrap_or_default(),
            bind_port: get::<u16>(&d, "bind_port")?.unwrap_or(0),
            proxy: proxy.as_ref().map(proxy_options).transpose()?,
        },
        timeout: Duration::from_secs_f64(timeout),
    };
    Ok(core.client.start_connect_evented(opts))
}

pub(super) fn connect_result<'py>(
    py: Python<'py>,
    attempt: u64,
    failure: &Option<ConnectFailure>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let (errno, kind, message) = match failure {
        None => (None, None, None),
        Some(f) => (f.errno, Some(f.kind), Some(f.message.as_str())),
    };
    Ok(vec![
        EV_CONNECT_RESULT.into_pyobject(py)?.into_any(),
        attempt.into_pyobject(py)?.into_any(),
        errno.into_pyobject(py)?.into_any(),
        kind.into_pyobject(py)?.into_any(),
        message.into_pyobject(py)?.into_any(),
    ])
}
