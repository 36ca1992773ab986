//! PUBLISH (MQTT 3.1.1 §3.3, MQTT 5 §3.3): the hot path of both client and broker.

use bytes::{BufMut, Bytes, BytesMut};

use super::properties::allowed;
use super::topic::validate_topic_name;
use super::wire::{read_pkid, scan_topic, write_binary, write_header, Reader};
use super::{DecodeError, EncodeError, Properties, ProtocolVersion, Publish, QoS};

/// Reads everything but the payload, which is the rest of the frame: the caller takes
/// it by advancing the frame itself, one refcount cheaper than slicing it.
/// `flags` is the low nibble of the fixed header: DUP, QoS, RETAIN (§3.3.1).
#[inline(always)]
pub(crate) fn read_head(
    flags: u8,
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    let (qos, dup) = read_flags(flags)?;
    let topic = r.topic()?;
    let (pkid, properties) = read_pkid_and_properties(qos, r, version)?;
    if topic.is_empty() {
        // §3.3.2.1: an empty topic stands for a topic alias in MQTT 5 only.
        let aliased = properties.as_ref().is_some_and(|p| p.topic_alias.is_some());
        if !version.is_v5() {
            return Err(DecodeError::TopicNameInvalid("empty topic"));
        }
        if !aliased {
            return Err(DecodeError::Protocol("empty topic without a topic alias"));
        }
    }
    Ok(Publish {
        dup,
        qos,
        retain: flags & 0x01 != 0,
        topic,
        pkid,
        properties,
        payload: Bytes::new(),
    })
}

/// `read_head` for a PUBLISH whose topic name is not valid UTF-8 (a malformed packet,
/// [MQTT-1.5.4-1]), for a receiver that accepts it anyway (see
/// `Decoder::set_accept_invalid_topics`): the topic's bytes are returned beside a
/// `Publish` whose `topic` is empty.
pub(crate) fn read_head_raw_topic(
    flags: u8,
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<(Publish, Bytes), DecodeError> {
    let (qos, dup) = read_flags(flags)?;
    let len = r.u16()? as usize;
    let raw = r.bytes(len)?;
    let (pkid, properties) = read_pkid_and_properties(qos, r, version)?;
    let publish = Publish {
        dup,
        qos,
        retain: flags & 0x01 != 0,
        topic: Default::default(),
        pkid,
        properties,
        payload: Bytes::new(),
    };
    Ok((publish, raw))
}

#[inline(always)]
fn read_flags(flags: u8) -> Result<(QoS, bool), DecodeError> {
    let qos = match (flags >> 1) & 0x03 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        // [MQTT-3.3.1-4]
        _ => return Err(DecodeError::Malformed("PUBLISH with QoS 3")),
    };
    let dup = flags & 0x08 != 0;
    // [MQTT-3.3.1-2]
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::Malformed("DUP flag set on a QoS 0 PUBLISH"));
    }
    Ok((qos, dup))
}

#[inline(always)]
fn read_pkid_and_properties(
    qos: QoS,
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<(u16, Option<Box<Properties>>), DecodeError> {
    let pkid = if qos == QoS::AtMostOnce {
        0
    } else {
        read_pkid(r)?
    };
    let mut properties = None;
    if version.is_v5() {
        // Most PUBLISH packets have none: skip the empty list without building a struct.
        if r.peek() == Some(0) {
            r.skip(1);
        } else {
            // A non-empty list holds at least one property.
            properties = Some(Box::new(Properties::read(r, allowed::PUBLISH)?));
        }
    }
    Ok((pkid, properties))
}

#[inline]
pub(crate) fn len(p: &Publish, version: ProtocolVersion) -> usize {
    let mut n = 2 + p.topic.len() + p.payload.len();
    if p.qos != QoS::AtMostOnce {
        n += 2;
    }
    if version.is_v5() {
        n += match &p.properties {
            Some(props) => props.wire_len(),
            None => 1,
        };
    }
    n
}

/// Topic, packet identifier (QoS > 0), properties (v5; `00` when there are none, as
/// paho-mqtt writes it), payload.
#[inline]
pub(crate) fn write(
    p: &Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    write_head(p, version, out)?;
    out.put_slice(&p.payload);
    Ok(())
}

/// Everything of the PUBLISH but its payload (the fixed header counts the payload).
pub(crate) fn write_head(
    p: &Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if p.qos == QoS::AtMostOnce {
        if p.dup {
            return Err(EncodeError::Invalid("DUP flag set on a QoS 0 PUBLISH"));
        }
    } else if p.pkid == 0 {
        return Err(EncodeError::Invalid("packet identifier 0"));
    }
    if p.topic.is_empty() {
        let aliased = p
            .properties
            .as_ref()
            .is_some_and(|p| p.topic_alias.is_some());
        if !(version.is_v5() && aliased) {
            return Err(EncodeError::Invalid("empty topic without a topic alias"));
        }
    } else if scan_topic(p.topic.as_bytes()).1 {
        // Only a NUL or a wildcard can make a `str` an invalid topic name.
        validate_topic_name(&p.topic).map_err(EncodeError::Invalid)?;
    }
    let first = 0x30 | ((p.dup as u8) << 3) | ((p.qos as u8) << 1) | p.retain as u8;
    write_header(out, first, len(p, version))?;
    write_binary(out, p.topic.as_bytes())?;
    if p.qos != QoS::AtMostOnce {
        out.put_u16(p.pkid);
    }
    if version.is_v5() {
        match &p.properties {
            Some(props) => props.write(out, allowed::PUBLISH)?,
            None => out.put_u8(0),
        }
    }
    Ok(())
}
