//! UNSUBACK (MQTT 3.1.1 §3.11, MQTT 5 §3.11): in 3.x only a packet identifier.

use bytes::{BufMut, BytesMut};

use super::properties::allowed;
use super::reason::valid;
use super::wire::{check_pkid, read_pkid, write_header, Reader};
use super::{DecodeError, EncodeError, Properties, ProtocolVersion, ReasonCode, UnsubAck};

pub(crate) fn read(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let pkid = read_pkid(r)?;
    if !version.is_v5() {
        return Ok(UnsubAck {
            pkid,
            ..UnsubAck::default()
        });
    }
    let properties = Properties::read(r, allowed::ACK)?;
    let mut codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let c = r.u8()?;
        if !valid::UNSUBACK.contains(&c) {
            return Err(DecodeError::Protocol("invalid UNSUBACK reason code"));
        }
        codes.push(ReasonCode(c));
    }
    if codes.is_empty() {
        return Err(DecodeError::Protocol("UNSUBACK without reason codes"));
    }
    Ok(UnsubAck {
        pkid,
        codes,
        properties,
    })
}

pub(crate) fn len(u: &UnsubAck, version: ProtocolVersion) -> usize {
    if version.is_v5() {
        2 + u.properties.wire_len() + u.codes.len()
    } else {
        2
    }
}

pub(crate) fn write(
    u: &UnsubAck,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_pkid(u.pkid)?;
    if version.is_v5() && u.codes.is_empty() {
        return Err(EncodeError::Invalid("UNSUBACK without reason codes"));
    }
    write_header(out, 0xB0, len(u, version))?;
    out.put_u16(u.pkid);
    if version.is_v5() {
        u.properties.write(out, allowed::ACK)?;
        for c in &u.codes {
            out.put_u8(c.0);
        }
    }
    Ok(())
}
