//! MQTT 5 properties in wire form (MQTT 5 §2.2.2): a variable byte integer length
//! followed by the properties. This is the form in which properties cross to Python,
//! where paho's `Properties.pack()` writes it and `Properties.unpack()` reads it.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::Properties;

/// Why a properties section from Python could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed properties: {0}")]
pub struct PropertiesError(pub &'static str);

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PropertiesError> {
        if self.buf.len() < n {
            return Err(PropertiesError("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, PropertiesError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PropertiesError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, PropertiesError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn varint(&mut self) -> Result<u32, PropertiesError> {
        let mut value = 0u32;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PropertiesError("variable byte integer longer than 4 bytes"))
    }
    fn binary(&mut self) -> Result<Bytes, PropertiesError> {
        let n = self.u16()? as usize;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }
    fn string(&mut self) -> Result<String, PropertiesError> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| PropertiesError("string is not UTF-8"))
    }
}

/// Reads a properties section (length prefix included). Empty input means no properties.
pub fn from_wire(wire: &[u8]) -> Result<Properties, PropertiesError> {
    let mut p = Properties::default();
    if wire.is_empty() {
        return Ok(p);
    }
    let mut r = Reader { buf: wire };
    let len = r.varint()? as usize;
    let body = r.take(len)?;
    let mut r = Reader { buf: body };
    while !r.buf.is_empty() {
        let id = r.varint()?;
        match id {
            0x01 => p.payload_format_indicator = Some(r.u8()?),
            0x02 => p.message_expiry_interval = Some(r.u32()?),
            0x03 => p.content_type = Some(r.string()?),
            0x08 => p.response_topic = Some(r.string()?),
            0x09 => p.correlation_data = Some(r.binary()?),
            0x0B => p.subscription_identifiers.push(r.varint()?),
            0x11 => p.session_expiry_interval = Some(r.u32()?),
            0x12 => p.assigned_client_identifier = Some(r.string()?),
            0x13 => p.server_keep_alive = Some(r.u16()?),
            0x15 => p.authentication_method = Some(r.string()?),
            0x16 => p.authentication_data = Some(r.binary()?),
            0x17 => p.request_problem_information = Some(r.u8()?),
            0x18 => p.will_delay_interval = Some(r.u32()?),
            0x19 => p.request_response_information = Some(r.u8()?),
            0x1A => p.response_information = Some(r.string()?),
            0x1C => p.server_reference = Some(r.string()?),
            0x1F => p.reason_string = Some(r.string()?),
            0x21 => p.receive_maximum = Some(r.u16()?),
            0x22 => p.topic_alias_maximum = Some(r.u16()?),
            0x23 => p.topic_alias = Some(r.u16()?),
            0x24 => p.maximum_qos = Some(r.u8()?),
            0x25 => p.retain_available = Some(r.u8()?),
            0x26 => {
                let k = r.string()?;
                let v = r.string()?;
                p.user_properties.push((k, v));
            }
            0x27 => p.maximum_packet_size = Some(r.u32()?),
            0x28 => p.wildcard_subscription_available = Some(r.u8()?),
            0x29 => p.subscription_identifier_available = Some(r.u8()?),
            0x2A => p.shared_subscription_available = Some(r.u8()?),
            _ => return Err(PropertiesError("unknown property identifier")),
        }
    }
    Ok(p)
}

fn put_varint(out: &mut BytesMut, mut v: u32) {
    loop {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            break;
        }
    }
}

fn put_str(out: &mut BytesMut, id: u8, s: &str) {
    out.put_u8(id);
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

/// Writes `p` as a properties section, in ascending identifier order as paho does.
pub fn to_wire(p: &Properties) -> Bytes {
    let mut body = BytesMut::new();
    let b = &mut body;
    if let Some(v) = p.payload_format_indicator {
        b.put_u8(0x01);
        b.put_u8(v);
    }
    if let Some(v) = p.message_expiry_interval {
        b.put_u8(0x02);
        b.put_u32(v);
    }
    if let Some(v) = &p.content_type {
        put_str(b, 0x03, v);
    }
    if let Some(v) = &p.response_topic {
        put_str(b, 0x08, v);
    }
    if let Some(v) = &p.correlation_data {
        b.put_u8(0x09);
        b.put_u16(v.len() as u16);
        b.put_slice(v);
    }
    for &v in &p.subscription_identifiers {
        b.put_u8(0x0B);
        put_varint(b, v);
    }
    if let Some(v) = p.session_expiry_interval {
        b.put_u8(0x11);
        b.put_u32(v);
    }
    if let Some(v) = &p.assigned_client_identifier {
        put_str(b, 0x12, v);
    }
    if let Some(v) = p.server_keep_alive {
        b.put_u8(0x13);
        b.put_u16(v);
    }
    if let Some(v) = &p.authentication_method {
        put_str(b, 0x15, v);
    }
    if let Some(v) = &p.authentication_data {
        b.put_u8(0x16);
        b.put_u16(v.len() as u16);
        b.put_slice(v);
    }
    if let Some(v) = p.request_problem_information {
        b.put_u8(0x17);
        b.put_u8(v);
    }
    if let Some(v) = p.will_delay_interval {
        b.put_u8(0x18);
        b.put_u32(v);
    }
    if let Some(v) = p.request_response_information {
        b.put_u8(0x19);
        b.put_u8(v);
    }
    if let Some(v) = &p.response_information {
        put_str(b, 0x1A, v);
    }
    if let Some(v) = &p.server_reference {
        put_str(b, 0x1C, v);
    }
    if let Some(v) = &p.reason_string {
        put_str(b, 0x1F, v);
    }
    for (id, v) in [
        (0x21u8, p.receive_maximum),
        (0x22, p.topic_alias_maximum),
        (0x23, p.topic_alias),
    ] {
        if let Some(v) = v {
            b.put_u8(id);
            b.put_u16(v);
        }
    }
    for (id, v) in [(0x24u8, p.maximum_qos), (0x25, p.retain_available)] {
        if let Some(v) = v {
            b.put_u8(id);
            b.put_u8(v);
        }
    }
    for (k, v) in &p.user_properties {
        put_str(b, 0x26, k);
        b.put_u16(v.len() as u16);
        b.put_slice(v.as_bytes());
    }
    if let Some(v) = p.maximum_packet_size {
        b.put_u8(0x27);
        b.put_u32(v);
    }
    for (id, v) in [
        (0x28u8, p.wildcard_subscription_available),
        (0x29, p.subscription_identifier_available),
        (0x2A, p.shared_subscription_available),
    ] {
        if let Some(v) = v {
            b.put_u8(id);
            b.put_u8(v);
        }
    }
    let mut out = BytesMut::with_capacity(body.len() + 4);
    put_varint(&mut out, body.len() as u32);
    out.put_slice(&body);
    out.freeze()
}

/// `None` for empty properties, else the wire form.
pub fn to_wire_opt(p: &Properties) -> Option<Bytes> {
    if p.is_empty() {
        None
    } else {
        Some(to_wire(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_property() {
        let p = Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            subscription_identifiers: vec![1, 300],
            will_delay_interval: Some(5),
            request_problem_information: Some(0),
            request_response_information: Some(1),
            receive_maximum: Some(10),
            topic_alias: Some(3),
            user_properties: vec![("a".into(), "b".into()), ("a".into(), "c".into())],
            maximum_packet_size: Some(1 << 20),
            ..Default::default()
        };
        let wire = to_wire(&p);
        assert_eq!(from_wire(&wire).unwrap(), p);
    }

    #[test]
    fn reads_paho_pack_output() {
        // paho: p = Properties(PUBLISH); p.MessageExpiryInterval = 10;
        // p.UserProperty = ("k", "v"); p.pack()
        let wire = b"\x0c\x02\x00\x00\x00\x0a\x26\x00\x01k\x00\x01v";
        let p = from_wire(wire).unwrap();
        assert_eq!(p.message_expiry_interval, Some(10));
        assert_eq!(p.user_properties, vec![("k".into(), "v".into())]);
        assert_eq!(&to_wire(&p)[..], &wire[..]);
    }

    #[test]
    fn empty_means_none() {
        assert!(from_wire(b"").unwrap() == Properties::default());
        assert!(from_wire(b"\x00").unwrap() == Properties::default());
        assert_eq!(to_wire_opt(&Properties::default()), None);
        assert!(from_wire(b"\x05\x02\x00").is_err());
        assert!(from_wire(b"\x01\x7f").is_err());
    }
}
