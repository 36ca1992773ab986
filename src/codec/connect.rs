//! CONNECT (MQTT 3.1 §3.1, MQTT 3.1.1 §3.1, MQTT 5 §3.1).

use bytes::{BufMut, BytesMut};

use super::properties::allowed;
use super::topic::validate_topic_name;
use super::wire::{field_len, write_binary, write_header, write_str, Reader};
use super::{Connect, DecodeError, EncodeError, LastWill, Properties, ProtocolVersion, QoS};

const CLEAN: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

fn protocol_name(v: ProtocolVersion) -> &'static [u8] {
    match v {
        ProtocolVersion::V31 => b"MQIsdp",
        ProtocolVersion::V311 | ProtocolVersion::V5 => b"MQTT",
    }
}

pub(crate) fn read(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    // mosquitto's bridge bit on the level (any version; mosquitto gives it meaning for
    // 3.1 and 3.1.1 only).
    let bridge = level & 0x80 != 0;
    let level = level & 0x7F;
    // §3.1.2.1/§3.1.2.2: "MQIsdp" goes with level 3, "MQTT" with 4 and 5. A known name
    // with another level is an unsupported version (CONNACK 0x84 / return code 1); an
    // unknown name is not MQTT at all.
    let protocol = match &name[..] {
        b"MQIsdp" => match level {
            3 => ProtocolVersion::V31,
            _ => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        },
        b"MQTT" => match level {
            4 => ProtocolVersion::V311,
            5 => ProtocolVersion::V5,
            _ => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        },
        _ => return Err(DecodeError::Protocol("unknown protocol name")),
    };
    let flags = r.u8()?;
    // [MQTT-3.1.2-3] the reserved flag must be 0.
    if flags & 0x01 != 0 {
        return Err(DecodeError::Malformed("reserved CONNECT flag set"));
    }
    let will_qos = (flags >> 3) & 0x03;
    if flags & WILL == 0 {
        // [MQTT-3.1.2-13], [MQTT-3.1.2-15]: no will, so no will QoS or retain.
        if will_qos != 0 || flags & WILL_RETAIN != 0 {
            return Err(DecodeError::Malformed(
                "will QoS or retain without will flag",
            ));
        }
    } else if will_qos == 3 {
        return Err(DecodeError::Malformed("will QoS 3"));
    }
    // [MQTT-3.1.2-22] in 3.x a password needs a user name; MQTT 5 lifted this.
    if !protocol.is_v5() && flags & PASSWORD != 0 && flags & USERNAME == 0 {
        return Err(DecodeError::Malformed(
            "password flag without user name flag",
        ));
    }
    let keep_alive = r.u16()?;
    let properties = if protocol.is_v5() {
        Properties::read(r, allowed::CONNECT)?
    } else {
        Properties::default()
    };
    // §3.1.2.11.10: authentication data without a method is a protocol error.
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        return Err(DecodeError::Protocol(
            "authentication data without authentication method",
        ));
    }
    // [MQTT-3.1.3-4] UTF-8 string; emptiness and length limits are the server's policy.
    let client_id = r.string()?;
    let will = if flags & WILL != 0 {
        let properties = if protocol.is_v5() {
            Properties::read(r, allowed::WILL)?
        } else {
            Properties::default()
        };
        let topic = r.bytestr()?;
        validate_topic_name(&topic).map_err(DecodeError::TopicNameInvalid)?;
        let payload = r.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: QoS::from_u8(will_qos).expect("checked above"),
            retain: flags & WILL_RETAIN != 0,
            properties,
        })
    } else {
        None
    };
    let username = if flags & USERNAME != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let password = if flags & PASSWORD != 0 {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start: flags & CLEAN != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
        bridge,
    })
}

/// The remaining length. The protocol comes from the packet itself.
pub(crate) fn len(c: &Connect) -> usize {
    let v5 = c.protocol.is_v5();
    let mut n = field_len(protocol_name(c.protocol)) + 1 + 1 + 2;
    if v5 {
        n += c.properties.wire_len();
    }
    n += field_len(c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if v5 {
            n += w.properties.wire_len();
        }
        n += field_len(w.topic.as_bytes()) + field_len(&w.payload);
    }
    if let Some(u) = &c.username {
        n += field_len(u.as_bytes());
    }
    if let Some(p) = &c.password {
        n += field_len(p);
    }
    n
}

/// Field order as paho-mqtt writes it: protocol name, level, flags, keep alive,
/// properties, client id, will properties, will topic, will payload, user name, password.
pub(crate) fn write(c: &Connect, out: &mut BytesMut) -> Result<(), EncodeError> {
    let v5 = c.protocol.is_v5();
    if !v5 && c.password.is_some() && c.username.is_none() {
        return Err(EncodeError::Invalid(
            "a password without a user name needs MQTT 5",
        ));
    }
    if c.properties.authentication_data.is_some() && c.properties.authentication_method.is_none() {
        return Err(EncodeError::Invalid(
            "authentication data without authentication method",
        ));
    }
    let mut flags = 0u8;
    if c.clean_start {
        flags |= CLEAN;
    }
    if let Some(w) = &c.will {
        validate_topic_name(&w.topic).map_err(EncodeError::Invalid)?;
        flags |= WILL | ((w.qos as u8) << 3);
        if w.retain {
            flags |= WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    if c.password.is_some() {
        flags |= PASSWORD;
    }
    write_header(out, 0x10, len(c))?;
    write_binary(out, protocol_name(c.protocol))?;
    out.put_u8(c.protocol as u8 | if c.bridge { 0x80 } else { 0 });
    out.put_u8(flags);
    out.put_u16(c.keep_alive);
    if v5 {
        c.properties.write(out, allowed::CONNECT)?;
    }
    write_str(out, &c.client_id)?;
    if let Some(w) = &c.will {
        if v5 {
            w.properties.write(out, allowed::WILL)?;
        }
        write_str(out, &w.topic)?;
        write_binary(out, &w.payload)?;
    }
    if let Some(u) = &c.username {
        write_str(out, u)?;
    }
    if let Some(p) = &c.password {
        write_binary(out, p)?;
    }
    Ok(())
}
