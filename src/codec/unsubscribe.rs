//! UNSUBSCRIBE (MQTT 3.1.1 §3.10, MQTT 5 §3.10).

use bytes::{BufMut, BytesMut};

use super::properties::allowed;
use super::topic::validate_topic_filter;
use super::wire::{check_pkid, field_len, read_pkid, write_header, write_str, Reader};
use super::{DecodeError, EncodeError, Properties, ProtocolVersion, Unsubscribe};

pub(crate) fn read(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Unsubscribe, DecodeError> {
    let pkid = read_pkid(r)?;
    let properties = if version.is_v5() {
        Properties::read(r, allowed::UNSUBSCRIBE)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.str()?;
        validate_topic_filter(filter).map_err(DecodeError::TopicFilterInvalid)?;
        filters.push(filter.to_owned());
    }
    // [MQTT-3.10.3-2] at least one topic filter.
    if filters.is_empty() {
        return Err(DecodeError::Protocol("UNSUBSCRIBE without topic filters"));
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        properties,
    })
}

pub(crate) fn len(u: &Unsubscribe, version: ProtocolVersion) -> usize {
    let mut n = 2;
    if version.is_v5() {
        n += u.properties.wire_len();
    }
    for f in &u.filters {
        n += field_len(f.as_bytes());
    }
    n
}

pub(crate) fn write(
    u: &Unsubscribe,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_pkid(u.pkid)?;
    if u.filters.is_empty() {
        return Err(EncodeError::Invalid("UNSUBSCRIBE without topic filters"));
    }
    for f in &u.filters {
        validate_topic_filter(f).map_err(EncodeError::Invalid)?;
    }
    write_header(out, 0xA2, len(u, version))?;
    out.put_u16(u.pkid);
    if version.is_v5() {
        u.properties.write(out, allowed::UNSUBSCRIBE)?;
    }
    for f in &u.filters {
        write_str(out, f)?;
    }
    Ok(())
}
