//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5 §3.4-§3.7): one shape, four packets.

use bytes::{BufMut, BytesMut};

use super::properties::allowed;
use super::wire::{check_pkid, read_pkid, write_header, Reader};
use super::{DecodeError, EncodeError, Properties, ProtocolVersion, PubAck, ReasonCode};

/// `valid` is the set of reason codes this packet kind may carry.
pub(crate) fn read(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
    valid: &[u8],
) -> Result<PubAck, DecodeError> {
    let pkid = read_pkid(r)?;
    let mut ack = PubAck {
        pkid,
        ..PubAck::default()
    };
    // §3.4.2.1: a remaining length of 2 means Success without properties; of 3, a reason
    // code without properties.
    if !version.is_v5() || r.is_empty() {
        return Ok(ack);
    }
    let code = r.u8()?;
    if !valid.contains(&code) {
        return Err(DecodeError::Protocol("invalid reason code for this packet"));
    }
    ack.code = ReasonCode(code);
    if !r.is_empty() {
        ack.properties = Properties::read(r, allowed::ACK)?;
    }
    Ok(ack)
}

pub(crate) fn len(a: &PubAck, version: ProtocolVersion) -> usize {
    if !version.is_v5() {
        return 2;
    }
    if a.properties.is_empty() {
        // paho-mqtt sends a Success acknowledgement as 4 bytes with neither field.
        if a.code == ReasonCode::SUCCESS {
            2
        } else {
            3
        }
    } else {
        3 + a.properties.wire_len()
    }
}

/// `first` is the fixed header byte (PUBREL carries flags 0b0010).
pub(crate) fn write(
    first: u8,
    a: &PubAck,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_pkid(a.pkid)?;
    let n = len(a, version);
    write_header(out, first, n)?;
    out.put_u16(a.pkid);
    if n > 2 {
        out.put_u8(a.code.0);
        if n > 3 {
            a.properties.write(out, allowed::ACK)?;
        }
    }
    Ok(())
}
