//! DISCONNECT (MQTT 5 §3.14) and AUTH (MQTT 5 §3.15): a reason code and properties, both
//! omitted when the code is 0x00 and there are no properties.

use bytes::{BufMut, BytesMut};

use super::properties::allowed;
use super::reason::valid;
use super::wire::{write_header, Reader};
use super::{Auth, DecodeError, Disconnect, EncodeError, Properties, ReasonCode};

/// Reads the optional reason code and properties of a v5 DISCONNECT or AUTH.
fn read_tail(
    r: &mut Reader<'_>,
    valid: &[u8],
    allowed: u64,
) -> Result<(ReasonCode, Properties), DecodeError> {
    // §3.14.2.1: a remaining length of 0 means 0x00 and no properties; of 1, no properties.
    if r.is_empty() {
        return Ok((ReasonCode::SUCCESS, Properties::default()));
    }
    let code = r.u8()?;
    if !valid.contains(&code) {
        return Err(DecodeError::Protocol("invalid reason code for this packet"));
    }
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        Properties::read(r, allowed)?
    };
    Ok((ReasonCode(code), properties))
}

fn tail_len(code: ReasonCode, properties: &Properties) -> usize {
    if properties.is_empty() {
        // paho-mqtt's default disconnect() is `e0 00`.
        if code == ReasonCode::SUCCESS {
            0
        } else {
            1
        }
    } else {
        1 + properties.wire_len()
    }
}

fn write_tail(
    first: u8,
    code: ReasonCode,
    properties: &Properties,
    allowed: u64,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let n = tail_len(code, properties);
    write_header(out, first, n)?;
    if n > 0 {
        out.put_u8(code.0);
        if n > 1 {
            properties.write(out, allowed)?;
        }
    }
    Ok(())
}

pub(crate) fn read_disconnect(r: &mut Reader<'_>, v5: bool) -> Result<Disconnect, DecodeError> {
    if !v5 {
        return Ok(Disconnect::default());
    }
    let (code, properties) = read_tail(r, valid::DISCONNECT, allowed::DISCONNECT)?;
    Ok(Disconnect { code, properties })
}

pub(crate) fn disconnect_len(d: &Disconnect, v5: bool) -> usize {
    if v5 {
        tail_len(d.code, &d.properties)
    } else {
        0
    }
}

/// In 3.x DISCONNECT is always `e0 00`.
pub(crate) fn write_disconnect(
    d: &Disconnect,
    v5: bool,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if v5 {
        write_tail(0xE0, d.code, &d.properties, allowed::DISCONNECT, out)
    } else {
        write_header(out, 0xE0, 0)
    }
}

pub(crate) fn read_auth(r: &mut Reader<'_>) -> Result<Auth, DecodeError> {
    let short = r.is_empty();
    let (code, properties) = read_tail(r, valid::AUTH, allowed::AUTH)?;
    // §3.15.2.2.2: an AUTH that is not the bare Success form names its method.
    if !short && properties.authentication_method.is_none() {
        return Err(DecodeError::Protocol("AUTH without authentication method"));
    }
    Ok(Auth { code, properties })
}

pub(crate) fn auth_len(a: &Auth) -> usize {
    tail_len(a.code, &a.properties)
}

pub(crate) fn write_auth(a: &Auth, out: &mut BytesMut) -> Result<(), EncodeError> {
    let bare = a.code == ReasonCode::SUCCESS && a.properties.is_empty();
    if !bare && a.properties.authentication_method.is_none() {
        return Err(EncodeError::Invalid("AUTH without authentication method"));
    }
    write_tail(0xF0, a.code, &a.properties, allowed::AUTH, out)
}
