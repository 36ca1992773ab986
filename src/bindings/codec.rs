//! Private codec access for tests: `_codec_decode(data, version) -> dict` and
//! `_codec_encode(fields, version) -> bytes`. The dict mirrors the Rust packet model:
//! `"type"` is the packet name ("CONNECT", "PUBLISH", ...), the other keys are the field
//! names of the packet struct, `"properties"` a dict of the v5 properties present.
//! `version` is the protocol level (3, 4, 5), or 0 for a decoder that has not seen a
//! CONNECT yet.

use bytes::{Bytes, BytesMut};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::codec::{
    encode, Auth, ByteStr, ConnAck, Connect, Decoder, Disconnect, LastWill, Packet, Properties,
    ProtocolVersion, PubAck, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, SubscribeOptions, UnsubAck, Unsubscribe,
};

fn version_of(level: u8) -> PyResult<ProtocolVersion> {
    ProtocolVersion::from_level(level)
        .ok_or_else(|| PyValueError::new_err(format!("unknown protocol level {level}")))
}

/// Decodes exactly one packet that fills `data`.
#[pyfunction]
fn _codec_decode<'py>(py: Python<'py>, data: &[u8], version: u8) -> PyResult<Bound<'py, PyDict>> {
    let mut dec = match version {
        0 => Decoder::new(u32::MAX),
        v => Decoder::with_version(version_of(v)?, u32::MAX),
    };
    let mut buf = BytesMut::from(data);
    let packet = dec
        .decode(&mut buf)
        .map_err(|e| PyValueError::new_err(e.to_string()))?
        .ok_or_else(|| PyValueError::new_err("incomplete packet"))?;
    if !buf.is_empty() {
        return Err(PyValueError::new_err("bytes left after the packet"));
    }
    packet_to_dict(py, &packet)
}

/// Encodes the packet described by `fields` for protocol level `version`.
#[pyfunction]
fn _codec_encode<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyDict>,
    version: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let version = version_of(version)?;
    let packet = dict_to_packet(fields, version)?;
    let mut out = BytesMut::new();
    encode(&packet, version, &mut out).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &out))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_codec_decode, m)?)?;
    m.add_function(wrap_pyfunction!(_codec_encode, m)?)?;
    Ok(())
}

// ---- Rust -> Python ----

fn packet_to_dict<'py>(py: Python<'py>, packet: &Packet) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let name = match packet {
        Packet::Connect(c) => {
            d.set_item("protocol", c.protocol as u8)?;
            d.set_item("clean_start", c.clean_start)?;
            d.set_item("keep_alive", c.keep_alive)?;
            d.set_item("client_id", &c.client_id)?;
            match &c.will {
                Some(w) => {
                    let wd = PyDict::new(py);
                    wd.set_item("topic", w.topic.as_str())?;
                    wd.set_item("payload", PyBytes::new(py, &w.payload))?;
                    wd.set_item("qos", w.qos as u8)?;
                    wd.set_item("retain", w.retain)?;
                    wd.set_item("properties", props_to_dict(py, &w.properties)?)?;
                    d.set_item("will", wd)?;
                }
                None => d.set_item("will", py.None())?,
            }
            d.set_item("username", &c.username)?;
            d.set_item("password", c.password.as_ref().map(|p| PyBytes::new(py, p)))?;
            d.set_item("properties", props_to_dict(py, &c.properties)?)?;
            d.set_item("bridge", c.bridge)?;
            "CONNECT"
        }
        Packet::ConnAck(c) => {
            d.set_item("session_present", c.session_present)?;
            d.set_item("code", c.code.0)?;
            d.set_item("properties", props_to_dict(py, &c.properties)?)?;
            "CONNACK"
        }
        Packet::Publish(p) => {
            d.set_item("dup", p.dup)?;
            d.set_item("qos", p.qos as u8)?;
            d.set_item("retain", p.retain)?;
            d.set_item("topic", p.topic.as_str())?;
            d.set_item("pkid", p.pkid)?;
            d.set_item("payload", PyBytes::new(py, &p.payload))?;
            let empty = Properties::default();
            d.set_item(
                "properties",
                props_to_dict(py, p.properties.as_deref().unwrap_or(&empty))?,
            )?;
            "PUBLISH"
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            d.set_item("pkid", a.pkid)?;
            d.set_item("code", a.code.0)?;
            d.set_item("properties", props_to_dict(py, &a.properties)?)?;
            match packet {
                Packet::PubAck(_) => "PUBACK",
                Packet::PubRec(_) => "PUBREC",
                Packet::PubRel(_) => "PUBREL",
                _ => "PUBCOMP",
            }
        }
        Packet::Subscribe(s) => {
            d.set_item("pkid", s.pkid)?;
            let filters = PyList::empty(py);
            for f in &s.filters {
                let o = PyDict::new(py);
                o.set_item("qos", f.options.qos as u8)?;
                o.set_item("no_local", f.options.no_local)?;
                o.set_item("retain_as_published", f.options.retain_as_published)?;
                o.set_item("retain_handling", f.options.retain_handling as u8)?;
                filters.append((&f.filter, o))?;
            }
            d.set_item("filters", filters)?;
            d.set_item("properties", props_to_dict(py, &s.properties)?)?;
            "SUBSCRIBE"
        }
        Packet::SubAck(s) => {
            d.set_item("pkid", s.pkid)?;
            d.set_item("codes", s.codes.iter().map(|c| c.0).collect::<Vec<_>>())?;
            d.set_item("properties", props_to_dict(py, &s.properties)?)?;
            "SUBACK"
        }
        Packet::Unsubscribe(u) => {
            d.set_item("pkid", u.pkid)?;
            d.set_item("filters", &u.filters)?;
            d.set_item("properties", props_to_dict(py, &u.properties)?)?;
            "UNSUBSCRIBE"
        }
        Packet::UnsubAck(u) => {
            d.set_item("pkid", u.pkid)?;
            d.set_item("codes", u.codes.iter().map(|c| c.0).collect::<Vec<_>>())?;
            d.set_item("properties", props_to_dict(py, &u.properties)?)?;
            "UNSUBACK"
        }
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect(x) => {
            d.set_item("code", x.code.0)?;
            d.set_item("properties", props_to_dict(py, &x.properties)?)?;
            "DISCONNECT"
        }
        Packet::Auth(x) => {
            d.set_item("code", x.code.0)?;
            d.set_item("properties", props_to_dict(py, &x.properties)?)?;
            "AUTH"
        }
    };
    d.set_item("type", name)?;
    Ok(d)
}

/// One macro-generated list of (key, field) so both directions stay in step.
macro_rules! scalar_props {
    ($m:ident) => {
        $m!(payload_format_indicator, u8);
        $m!(message_expiry_interval, u32);
        $m!(session_expiry_interval, u32);
        $m!(server_keep_alive, u16);
        $m!(request_problem_information, u8);
        $m!(will_delay_interval, u32);
        $m!(request_response_information, u8);
        $m!(receive_maximum, u16);
        $m!(topic_alias_maximum, u16);
        $m!(topic_alias, u16);
        $m!(maximum_qos, u8);
        $m!(retain_available, u8);
        $m!(maximum_packet_size, u32);
        $m!(wildcard_subscription_available, u8);
        $m!(subscription_identifier_available, u8);
        $m!(shared_subscription_available, u8);
        $m!(content_type, String);
        $m!(response_topic, String);
        $m!(assigned_client_identifier, String);
        $m!(authentication_method, String);
        $m!(response_information, String);
        $m!(server_reference, String);
        $m!(reason_string, String);
    };
}

fn props_to_dict<'py>(py: Python<'py>, p: &Properties) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    macro_rules! put {
        ($f:ident, $t:ty) => {
            if let Some(v) = &p.$f {
                d.set_item(stringify!($f), v)?;
            }
        };
    }
    scalar_props!(put);
    if let Some(v) = &p.correlation_data {
        d.set_item("correlation_data", PyBytes::new(py, v))?;
    }
    if let Some(v) = &p.authentication_data {
        d.set_item("authentication_data", PyBytes::new(py, v))?;
    }
    if !p.subscription_identifiers.is_empty() {
        d.set_item("subscription_identifiers", &p.subscription_identifiers)?;
    }
    if !p.user_properties.is_empty() {
        d.set_item("user_properties", &p.user_properties)?;
    }
    Ok(d)
}

// ---- Python -> Rust ----

fn get<'py, T>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>>
where
    T: for<'a> FromPyObject<'a, 'py>,
    for<'a> <T as FromPyObject<'a, 'py>>::Error: Into<PyErr>,
{
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v.extract::<T>().map(Some).map_err(Into::into),
        _ => Ok(None),
    }
}

fn get_or<'py, T>(d: &Bound<'py, PyDict>, key: &str, default: T) -> PyResult<T>
where
    T: for<'a> FromPyObject<'a, 'py>,
    for<'a> <T as FromPyObject<'a, 'py>>::Error: Into<PyErr>,
{
    Ok(get(d, key)?.unwrap_or(default))
}

fn qos(v: u8) -> PyResult<QoS> {
    QoS::from_u8(v).ok_or_else(|| PyValueError::new_err(format!("invalid QoS {v}")))
}

fn bytes_of(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<Bytes>> {
    Ok(get::<Vec<u8>>(d, key)?.map(Bytes::from))
}

fn dict_to_props(d: &Bound<'_, PyDict>) -> PyResult<Properties> {
    let Some(pd) = d.get_item("properties")? else {
        return Ok(Properties::default());
    };
    if pd.is_none() {
        return Ok(Properties::default());
    }
    let pd = pd.cast_into::<PyDict>()?;
    let mut p = Properties::default();
    macro_rules! take {
        ($f:ident, $t:ty) => {
            p.$f = get::<$t>(&pd, stringify!($f))?;
        };
    }
    scalar_props!(take);
    p.correlation_data = bytes_of(&pd, "correlation_data")?;
    p.authentication_data = bytes_of(&pd, "authentication_data")?;
    p.subscription_identifiers = get_or(&pd, "subscription_identifiers", Vec::new())?;
    p.user_properties = get_or(&pd, "user_properties", Vec::new())?;
    Ok(p)
}

fn dict_to_packet(d: &Bound<'_, PyDict>, version: ProtocolVersion) -> PyResult<Packet> {
    let kind: String = get(d, "type")?.ok_or_else(|| PyKeyError::new_err("type"))?;
    let pkid = || get_or::<u16>(d, "pkid", 0);
    let code = || get_or::<u8>(d, "code", 0).map(ReasonCode);
    let codes = || -> PyResult<Vec<ReasonCode>> {
        Ok(get_or::<Vec<u8>>(d, "codes", Vec::new())?
            .into_iter()
            .map(ReasonCode)
            .collect())
    };
    let ack = || -> PyResult<PubAck> {
        Ok(PubAck {
            pkid: pkid()?,
            code: code()?,
            properties: dict_to_props(d)?,
        })
    };
    Ok(match kind.as_str() {
        "CONNECT" => {
            let protocol = version_of(get_or(d, "protocol", version as u8)?)?;
            let will = match d.get_item("will")? {
                Some(w) if !w.is_none() => {
                    let w = w.cast_into::<PyDict>()?;
                    Some(LastWill {
                        topic: ByteStr::from(get_or::<String>(&w, "topic", String::new())?),
                        payload: bytes_of(&w, "payload")?.unwrap_or_default(),
                        qos: qos(get_or(&w, "qos", 0)?)?,
                        retain: get_or(&w, "retain", false)?,
                        properties: dict_to_props(&w)?,
                    })
                }
                _ => None,
            };
            Packet::Connect(Box::new(Connect {
                protocol,
                clean_start: get_or(d, "clean_start", true)?,
                keep_alive: get_or(d, "keep_alive", 60)?,
                client_id: get_or(d, "client_id", String::new())?,
                will,
                username: get(d, "username")?,
                password: bytes_of(d, "password")?,
                properties: dict_to_props(d)?,
                bridge: get_or(d, "bridge", false)?,
            }))
        }
        "CONNACK" => Packet::ConnAck(ConnAck {
            session_present: get_or(d, "session_present", false)?,
            code: code()?,
            properties: dict_to_props(d)?,
        }),
        "PUBLISH" => {
            let properties = dict_to_props(d)?;
            Packet::Publish(Publish {
                dup: get_or(d, "dup", false)?,
                qos: qos(get_or(d, "qos", 0)?)?,
                retain: get_or(d, "retain", false)?,
                topic: ByteStr::from(get_or::<String>(d, "topic", String::new())?),
                pkid: pkid()?,
                properties: (!properties.is_empty()).then(|| Box::new(properties)),
                payload: bytes_of(d, "payload")?.unwrap_or_default(),
            })
        }
        "PUBACK" => Packet::PubAck(ack()?),
        "PUBREC" => Packet::PubRec(ack()?),
        "PUBREL" => Packet::PubRel(ack()?),
        "PUBCOMP" => Packet::PubComp(ack()?),
        "SUBSCRIBE" => {
            let mut filters = Vec::new();
            for item in get_or::<Vec<(String, Bound<'_, PyDict>)>>(d, "filters", Vec::new())? {
                let (filter, o) = item;
                let retain_handling = match get_or::<u8>(&o, "retain_handling", 0)? {
                    0 => RetainHandling::OnSubscribe,
                    1 => RetainHandling::OnNewSubscribe,
                    2 => RetainHandling::DoNotSend,
                    v => return Err(PyValueError::new_err(format!("retain handling {v}"))),
                };
                filters.push(SubscribeFilter {
                    filter,
                    options: SubscribeOptions {
                        qos: qos(get_or(&o, "qos", 0)?)?,
                        no_local: get_or(&o, "no_local", false)?,
                        retain_as_published: get_or(&o, "retain_as_published", false)?,
                        retain_handling,
                    },
                });
            }
            Packet::Subscribe(Subscribe {
                pkid: pkid()?,
                filters,
                properties: dict_to_props(d)?,
            })
        }
        "SUBACK" => Packet::SubAck(SubAck {
            pkid: pkid()?,
            codes: codes()?,
            properties: dict_to_props(d)?,
        }),
        "UNSUBSCRIBE" => Packet::Unsubscribe(Unsubscribe {
            pkid: pkid()?,
            filters: get_or(d, "filters", Vec::new())?,
            properties: dict_to_props(d)?,
        }),
        "UNSUBACK" => Packet::UnsubAck(UnsubAck {
            pkid: pkid()?,
            codes: codes()?,
            properties: dict_to_props(d)?,
        }),
        "PINGREQ" => Packet::PingReq,
        "PINGRESP" => Packet::PingResp,
        "DISCONNECT" => Packet::Disconnect(Disconnect {
            code: code()?,
            properties: dict_to_props(d)?,
        }),
        "AUTH" => Packet::Auth(Auth {
            code: code()?,
            properties: dict_to_props(d)?,
        }),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown packet type {other:?}"
            )))
        }
    })
}
