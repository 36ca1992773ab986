//! CONNACK (MQTT 3.1.1 §3.2, MQTT 5 §3.2).

use bytes::{BufMut, BytesMut};

use super::properties::allowed;
use super::reason::valid;
use super::wire::{write_header, Reader};
use super::{ConnAck, DecodeError, EncodeError, Properties, ProtocolVersion, ReasonCode};

pub(crate) fn read(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let ack_flags = r.u8()?;
    let code = r.u8()?;
    // MQTT 3.1 has no session present flag: the whole byte is reserved and unused there.
    let session_present = if version == ProtocolVersion::V31 {
        false
    } else {
        // [MQTT-3.2.2-1] bits 7-1 are reserved.
        if ack_flags & 0xFE != 0 {
            return Err(DecodeError::Malformed("reserved CONNACK flag set"));
        }
        ack_flags & 0x01 != 0
    };
    if version.is_v5() {
        // A pre-5.0 server answers a v5 CONNECT with its 3.1.1 CONNACK `20 02 00 01`
        // ("unacceptable protocol version", §3.1.2.2 / 3.1.1 §3.2.2.3): no properties, and
        // 0x01 is no v5 reason code. Decoded as code 1 so the client can report it (paho
        // maps it to "Unsupported protocol version") instead of a malformed packet.
        if code == 0x01 && r.is_empty() {
            return Ok(ConnAck {
                session_present: false,
                code: ReasonCode(code),
                properties: Properties::default(),
            });
        }
        if !valid::CONNACK.contains(&code) {
            return Err(DecodeError::Protocol("invalid CONNACK reason code"));
        }
        let properties = Properties::read(r, allowed::CONNACK)?;
        if session_present && code != 0 {
            return Err(DecodeError::Protocol(
                "session present on a refused connection",
            ));
        }
        Ok(ConnAck {
            session_present,
            code: ReasonCode(code),
            properties,
        })
    } else {
        let code = ReasonCode::from_v3_connack(code)
            .ok_or(DecodeError::Protocol("reserved CONNACK return code"))?;
        // [MQTT-3.2.2-4] a refusal has session present 0.
        if session_present && code != ReasonCode::SUCCESS {
            return Err(DecodeError::Protocol(
                "session present on a refused connection",
            ));
        }
        Ok(ConnAck {
            session_present,
            code,
            properties: Properties::default(),
        })
    }
}

/// The pre-5.0 refusal `20 02 00 01` that `read` accepts on a v5 connection: it is
/// written back in that same form, so decoding and encoding stay inverse.
fn is_v3_refusal_on_v5(c: &ConnAck) -> bool {
    c.code.0 == 0x01 && c.properties.is_empty()
}

pub(crate) fn len(c: &ConnAck, version: ProtocolVersion) -> usize {
    if version.is_v5() && !is_v3_refusal_on_v5(c) {
        2 + c.properties.wire_len()
    } else {
        2
    }
}

/// v5 always carries the reason code and the property length (§3.2.2.3); 3.x maps the
/// reason code back to its return code. Session present is written only with Success.
pub(crate) fn write(
    c: &ConnAck,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    // [MQTT-3.2.2-4] / [MQTT-3.2.2-6]: a refusal never has a session; 3.1 has no flag.
    let session_present =
        c.session_present && c.code == ReasonCode::SUCCESS && version != ProtocolVersion::V31;
    write_header(out, 0x20, len(c, version))?;
    out.put_u8(session_present as u8);
    if version.is_v5() && is_v3_refusal_on_v5(c) {
        out.put_u8(c.code.0);
    } else if version.is_v5() {
        out.put_u8(c.code.0);
        c.properties.write(out, allowed::CONNACK)?;
    } else {
        out.put_u8(c.code.to_v3_connack());
    }
    Ok(())
}
