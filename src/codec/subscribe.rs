//! SUBSCRIBE (MQTT 3.1.1 §3.8, MQTT 5 §3.8).

use bytes::{BufMut, BytesMut};

use super::properties::allowed;
use super::topic::{parse_shared, validate_topic_filter};
use super::wire::{check_pkid, field_len, read_pkid, write_header, write_str, Reader};
use super::{
    DecodeError, EncodeError, Properties, ProtocolVersion, QoS, RetainHandling, Subscribe,
    SubscribeFilter, SubscribeOptions,
};

fn read_options(b: u8, version: ProtocolVersion) -> Result<SubscribeOptions, DecodeError> {
    if version.is_v5() {
        // [MQTT-3.8.3-5] bits 6 and 7 are reserved.
        if b & 0xC0 != 0 {
            return Err(DecodeError::Malformed(
                "reserved subscription option bits set",
            ));
        }
        let qos = QoS::from_u8(b & 0x03).ok_or(DecodeError::Protocol("subscription QoS 3"))?;
        let retain_handling = match (b >> 4) & 0x03 {
            0 => RetainHandling::OnSubscribe,
            1 => RetainHandling::OnNewSubscribe,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::Protocol("retain handling 3")),
        };
        Ok(SubscribeOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    } else {
        // [MQTT-3-8.3-4] the upper six bits are reserved, QoS must be 0, 1 or 2.
        if b & 0xFC != 0 {
            return Err(DecodeError::Malformed(
                "reserved subscription option bits set",
            ));
        }
        let qos = QoS::from_u8(b).ok_or(DecodeError::Malformed("subscription QoS 3"))?;
        Ok(SubscribeOptions {
            qos,
            ..SubscribeOptions::default()
        })
    }
}

pub(crate) fn options_byte(o: &SubscribeOptions, version: ProtocolVersion) -> u8 {
    if version.is_v5() {
        ((o.retain_handling as u8) << 4)
            | ((o.retain_as_published as u8) << 3)
            | ((o.no_local as u8) << 2)
            | o.qos as u8
    } else {
        o.qos as u8
    }
}

pub(crate) fn read(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let pkid = read_pkid(r)?;
    let properties = if version.is_v5() {
        Properties::read(r, allowed::SUBSCRIBE)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.str()?;
        validate_topic_filter(filter).map_err(DecodeError::TopicFilterInvalid)?;
        let options = read_options(r.u8()?, version)?;
        // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
        if options.no_local && parse_shared(filter).is_some() {
            return Err(DecodeError::Protocol("no local on a shared subscription"));
        }
        filters.push(SubscribeFilter {
            filter: filter.to_owned(),
            options,
        });
    }
    // [MQTT-3.8.3-3] at least one topic filter.
    if filters.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe {
        pkid,
        filters,
        properties,
    })
}

pub(crate) fn len(s: &Subscribe, version: ProtocolVersion) -> usize {
    let mut n = 2;
    if version.is_v5() {
        n += s.properties.wire_len();
    }
    for f in &s.filters {
        n += field_len(f.filter.as_bytes()) + 1;
    }
    n
}

pub(crate) fn write(
    s: &Subscribe,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_pkid(s.pkid)?;
    if s.filters.is_empty() {
        return Err(EncodeError::Invalid("SUBSCRIBE without topic filters"));
    }
    for f in &s.filters {
        validate_topic_filter(&f.filter).map_err(EncodeError::Invalid)?;
    }
    write_header(out, 0x82, len(s, version))?;
    out.put_u16(s.pkid);
    if version.is_v5() {
        s.properties.write(out, allowed::SUBSCRIBE)?;
    }
    for f in &s.filters {
        write_str(out, &f.filter)?;
        out.put_u8(options_byte(&f.options, version));
    }
    Ok(())
}
