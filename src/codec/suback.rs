//! SUBACK (MQTT 3.1.1 §3.9, MQTT 5 §3.9).

use bytes::{BufMut, BytesMut};

use super::properties::allowed;
use super::reason::valid;
use super::wire::{check_pkid, read_pkid, write_header, Reader};
use super::{DecodeError, EncodeError, Properties, ProtocolVersion, ReasonCode, SubAck};

pub(crate) fn read(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let pkid = read_pkid(r)?;
    let properties = if version.is_v5() {
        Properties::read(r, allowed::ACK)?
    } else {
        Properties::default()
    };
    let mut codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let c = r.u8()?;
        // 3.1.1 §3.9.3: 0x00, 0x01, 0x02 and 0x80; the rest are reserved.
        let ok = if version.is_v5() {
            valid::SUBACK.contains(&c)
        } else {
            matches!(c, 0x00 | 0x01 | 0x02 | 0x80)
        };
        if !ok {
            return Err(DecodeError::Protocol("invalid SUBACK reason code"));
        }
        codes.push(ReasonCode(c));
    }
    if codes.is_empty() {
        return Err(DecodeError::Protocol("SUBACK without reason codes"));
    }
    Ok(SubAck {
        pkid,
        codes,
        properties,
    })
}

pub(crate) fn len(s: &SubAck, version: ProtocolVersion) -> usize {
    let mut n = 2 + s.codes.len();
    if version.is_v5() {
        n += s.properties.wire_len();
    }
    n
}

/// 3.x knows only the granted QoS and 0x80 Failure: every v5 error becomes 0x80.
pub(crate) fn write(
    s: &SubAck,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_pkid(s.pkid)?;
    if s.codes.is_empty() {
        return Err(EncodeError::Invalid("SUBACK without reason codes"));
    }
    write_header(out, 0x90, len(s, version))?;
    out.put_u16(s.pkid);
    if version.is_v5() {
        s.properties.write(out, allowed::ACK)?;
        for c in &s.codes {
            out.put_u8(c.0);
        }
    } else {
        for c in &s.codes {
            out.put_u8(if c.0 <= 2 { c.0 } else { 0x80 });
        }
    }
    Ok(())
}
