//! MQTT 5 properties (§2.2.2.2). One struct for every packet; which identifiers a packet
//! may carry is checked when decoding and encoding.

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{field_len, var_int_len, write_binary, write_str, write_var_int, Reader};
use super::{DecodeError, EncodeError};

/// Every MQTT 5 property. Encoding writes them in ascending identifier order, which is
/// the order paho-mqtt 2.2.0 writes them in (so our bytes equal paho's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,        // 0x01 byte
    pub message_expiry_interval: Option<u32>,        // 0x02 four-byte integer
    pub content_type: Option<String>,                // 0x03 UTF-8 string
    pub response_topic: Option<String>,              // 0x08 UTF-8 string
    pub correlation_data: Option<Bytes>,             // 0x09 binary data
    pub subscription_identifiers: Vec<u32>, // 0x0B variable byte integer, repeatable in PUBLISH
    pub session_expiry_interval: Option<u32>, // 0x11 four-byte integer
    pub assigned_client_identifier: Option<String>, // 0x12 UTF-8 string
    pub server_keep_alive: Option<u16>,     // 0x13 two-byte integer
    pub authentication_method: Option<String>, // 0x15 UTF-8 string
    pub authentication_data: Option<Bytes>, // 0x16 binary data
    pub request_problem_information: Option<u8>, // 0x17 byte
    pub will_delay_interval: Option<u32>,   // 0x18 four-byte integer
    pub request_response_information: Option<u8>, // 0x19 byte
    pub response_information: Option<String>, // 0x1A UTF-8 string
    pub server_reference: Option<String>,   // 0x1C UTF-8 string
    pub reason_string: Option<String>,      // 0x1F UTF-8 string
    pub receive_maximum: Option<u16>,       // 0x21 two-byte integer
    pub topic_alias_maximum: Option<u16>,   // 0x22 two-byte integer
    pub topic_alias: Option<u16>,           // 0x23 two-byte integer
    pub maximum_qos: Option<u8>,            // 0x24 byte
    pub retain_available: Option<u8>,       // 0x25 byte
    pub user_properties: Vec<(String, String)>, // 0x26 UTF-8 string pair, repeatable
    pub maximum_packet_size: Option<u32>,   // 0x27 four-byte integer
    pub wildcard_subscription_available: Option<u8>, // 0x28 byte
    pub subscription_identifier_available: Option<u8>, // 0x29 byte
    pub shared_subscription_available: Option<u8>, // 0x2A byte
}

/// Property identifiers (§2.2.2.2).
pub(crate) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

const fn bit(id: u8) -> u64 {
    1u64 << id
}

/// Which properties each packet may carry: the table of §2.2.2.2, as bit sets indexed
/// by identifier.
pub(crate) mod allowed {
    use super::bit;
    use super::id::*;

    pub const CONNECT: u64 = bit(SESSION_EXPIRY_INTERVAL)
        | bit(AUTHENTICATION_METHOD)
        | bit(AUTHENTICATION_DATA)
        | bit(REQUEST_PROBLEM_INFORMATION)
        | bit(REQUEST_RESPONSE_INFORMATION)
        | bit(RECEIVE_MAXIMUM)
        | bit(TOPIC_ALIAS_MAXIMUM)
        | bit(USER_PROPERTY)
        | bit(MAXIMUM_PACKET_SIZE);
    pub const CONNACK: u64 = bit(SESSION_EXPIRY_INTERVAL)
        | bit(ASSIGNED_CLIENT_IDENTIFIER)
        | bit(SERVER_KEEP_ALIVE)
        | bit(AUTHENTICATION_METHOD)
        | bit(AUTHENTICATION_DATA)
        | bit(RESPONSE_INFORMATION)
        | bit(SERVER_REFERENCE)
        | bit(REASON_STRING)
        | bit(RECEIVE_MAXIMUM)
        | bit(TOPIC_ALIAS_MAXIMUM)
        | bit(MAXIMUM_QOS)
        | bit(RETAIN_AVAILABLE)
        | bit(USER_PROPERTY)
        | bit(MAXIMUM_PACKET_SIZE)
        | bit(WILDCARD_SUBSCRIPTION_AVAILABLE)
        | bit(SUBSCRIPTION_IDENTIFIER_AVAILABLE)
        | bit(SHARED_SUBSCRIPTION_AVAILABLE);
    pub const PUBLISH: u64 = bit(PAYLOAD_FORMAT_INDICATOR)
        | bit(MESSAGE_EXPIRY_INTERVAL)
        | bit(CONTENT_TYPE)
        | bit(RESPONSE_TOPIC)
        | bit(CORRELATION_DATA)
        | bit(SUBSCRIPTION_IDENTIFIER)
        | bit(TOPIC_ALIAS)
        | bit(USER_PROPERTY);
    pub const WILL: u64 = bit(PAYLOAD_FORMAT_INDICATOR)
        | bit(MESSAGE_EXPIRY_INTERVAL)
        | bit(CONTENT_TYPE)
        | bit(RESPONSE_TOPIC)
        | bit(CORRELATION_DATA)
        | bit(WILL_DELAY_INTERVAL)
        | bit(USER_PROPERTY);
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK.
    pub const ACK: u64 = bit(REASON_STRING) | bit(USER_PROPERTY);
    pub const SUBSCRIBE: u64 = bit(SUBSCRIPTION_IDENTIFIER) | bit(USER_PROPERTY);
    pub const UNSUBSCRIBE: u64 = bit(USER_PROPERTY);
    pub const DISCONNECT: u64 = bit(SESSION_EXPIRY_INTERVAL)
        | bit(SERVER_REFERENCE)
        | bit(REASON_STRING)
        | bit(USER_PROPERTY);
    pub const AUTH: u64 = bit(AUTHENTICATION_METHOD)
        | bit(AUTHENTICATION_DATA)
        | bit(REASON_STRING)
        | bit(USER_PROPERTY);
}

/// Every identifier this version of the protocol defines.
const KNOWN: u64 = allowed::CONNECT
    | allowed::CONNACK
    | allowed::PUBLISH
    | allowed::WILL
    | allowed::DISCONNECT
    | allowed::AUTH;

fn flag(v: u8, what: &'static str) -> Result<u8, DecodeError> {
    // Byte properties that are booleans: any other value is a protocol error (§3.1.2.11,
    // §3.2.2.3).
    if v > 1 {
        return Err(DecodeError::Protocol(what));
    }
    Ok(v)
}

impl Properties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        self.present() == 0
    }

    /// Bit set of the identifiers present.
    pub(crate) fn present(&self) -> u64 {
        let mut m = 0u64;
        macro_rules! opt {
            ($($field:ident => $id:expr),* $(,)?) => {
                $( if self.$field.is_some() { m |= bit($id); } )*
            };
        }
        opt!(
            payload_format_indicator => id::PAYLOAD_FORMAT_INDICATOR,
            message_expiry_interval => id::MESSAGE_EXPIRY_INTERVAL,
            content_type => id::CONTENT_TYPE,
            response_topic => id::RESPONSE_TOPIC,
            correlation_data => id::CORRELATION_DATA,
            session_expiry_interval => id::SESSION_EXPIRY_INTERVAL,
            assigned_client_identifier => id::ASSIGNED_CLIENT_IDENTIFIER,
            server_keep_alive => id::SERVER_KEEP_ALIVE,
            authentication_method => id::AUTHENTICATION_METHOD,
            authentication_data => id::AUTHENTICATION_DATA,
            request_problem_information => id::REQUEST_PROBLEM_INFORMATION,
            will_delay_interval => id::WILL_DELAY_INTERVAL,
            request_response_information => id::REQUEST_RESPONSE_INFORMATION,
            response_information => id::RESPONSE_INFORMATION,
            server_reference => id::SERVER_REFERENCE,
            reason_string => id::REASON_STRING,
            receive_maximum => id::RECEIVE_MAXIMUM,
            topic_alias_maximum => id::TOPIC_ALIAS_MAXIMUM,
            topic_alias => id::TOPIC_ALIAS,
            maximum_qos => id::MAXIMUM_QOS,
            retain_available => id::RETAIN_AVAILABLE,
            maximum_packet_size => id::MAXIMUM_PACKET_SIZE,
            wildcard_subscription_available => id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            subscription_identifier_available => id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            shared_subscription_available => id::SHARED_SUBSCRIPTION_AVAILABLE,
        );
        if !self.subscription_identifiers.is_empty() {
            m |= bit(id::SUBSCRIPTION_IDENTIFIER);
        }
        if !self.user_properties.is_empty() {
            m |= bit(id::USER_PROPERTY);
        }
        m
    }

    /// Reads a property length and the properties it covers (§2.2.2), accepting only
    /// the identifiers in `allowed`.
    pub(crate) fn read(r: &mut Reader<'_>, allowed: u64) -> Result<Self, DecodeError> {
        let len = r.var_int()? as usize;
        let mut p = Properties::default();
        if len == 0 {
            return Ok(p);
        }
        let mut r = r.sub(len)?;
        // Only PUBLISH may repeat the subscription identifier (§3.3.2.3.8, §3.8.2.1.2).
        let repeatable = bit(id::USER_PROPERTY)
            | if allowed == self::allowed::PUBLISH {
                bit(id::SUBSCRIPTION_IDENTIFIER)
            } else {
                0
            };
        let mut seen = 0u64;
        while !r.is_empty() {
            let ident = r.var_int()?;
            if ident > 63 || KNOWN & (1u64 << ident) == 0 {
                return Err(DecodeError::Malformed("unknown property identifier"));
            }
            let ident = ident as u8;
            let b = bit(ident);
            if allowed & b == 0 {
                // §2.2.2.2: an identifier not valid for the packet type is Malformed.
                return Err(DecodeError::Malformed(
                    "property not allowed in this packet",
                ));
            }
            if seen & b != 0 && repeatable & b == 0 {
                return Err(DecodeError::Protocol("property included more than once"));
            }
            seen |= b;
            match ident {
                id::PAYLOAD_FORMAT_INDICATOR => {
                    p.payload_format_indicator =
                        Some(flag(r.u8()?, "payload format indicator not 0 or 1")?)
                }
                id::MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(r.u32()?),
                id::CONTENT_TYPE => p.content_type = Some(r.string()?),
                id::RESPONSE_TOPIC => {
                    let t = r.str()?;
                    // §3.3.2.3.5: a topic name, so no wildcards.
                    super::topic::validate_topic_name(t)
                        .map_err(|_| DecodeError::Protocol("response topic is not a topic name"))?;
                    p.response_topic = Some(t.to_owned())
                }
                id::CORRELATION_DATA => p.correlation_data = Some(r.binary()?),
                id::SUBSCRIPTION_IDENTIFIER => {
                    let v = r.var_int()?;
                    if v == 0 {
                        return Err(DecodeError::Protocol("subscription identifier 0"));
                    }
                    p.subscription_identifiers.push(v)
                }
                id::SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
                id::ASSIGNED_CLIENT_IDENTIFIER => p.assigned_client_identifier = Some(r.string()?),
                id::SERVER_KEEP_ALIVE => p.server_keep_alive = Some(r.u16()?),
                id::AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
                id::AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
                id::REQUEST_PROBLEM_INFORMATION => {
                    p.request_problem_information =
                        Some(flag(r.u8()?, "request problem information not 0 or 1")?)
                }
                id::WILL_DELAY_INTERVAL => p.will_delay_interval = Some(r.u32()?),
                id::REQUEST_RESPONSE_INFORMATION => {
                    p.request_response_information =
                        Some(flag(r.u8()?, "request response information not 0 or 1")?)
                }
                id::RESPONSE_INFORMATION => p.response_information = Some(r.string()?),
                id::SERVER_REFERENCE => p.server_reference = Some(r.string()?),
                id::REASON_STRING => p.reason_string = Some(r.string()?),
                id::RECEIVE_MAXIMUM => {
                    let v = r.u16()?;
                    if v == 0 {
                        return Err(DecodeError::Protocol("receive maximum 0"));
                    }
                    p.receive_maximum = Some(v)
                }
                id::TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(r.u16()?),
                id::TOPIC_ALIAS => {
                    let v = r.u16()?;
                    if v == 0 {
                        return Err(DecodeError::Protocol("topic alias 0"));
                    }
                    p.topic_alias = Some(v)
                }
                id::MAXIMUM_QOS => p.maximum_qos = Some(flag(r.u8()?, "maximum QoS not 0 or 1")?),
                id::RETAIN_AVAILABLE => {
                    p.retain_available = Some(flag(r.u8()?, "retain available not 0 or 1")?)
                }
                id::USER_PROPERTY => {
                    let k = r.string()?;
                    let v = r.string()?;
                    p.user_properties.push((k, v))
                }
                id::MAXIMUM_PACKET_SIZE => {
                    let v = r.u32()?;
                    if v == 0 {
                        return Err(DecodeError::Protocol("maximum packet size 0"));
                    }
                    p.maximum_packet_size = Some(v)
                }
                id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                    p.wildcard_subscription_available =
                        Some(flag(r.u8()?, "wildcard subscription available not 0 or 1")?)
                }
                id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                    p.subscription_identifier_available = Some(flag(
                        r.u8()?,
                        "subscription identifier available not 0 or 1",
                    )?)
                }
                id::SHARED_SUBSCRIPTION_AVAILABLE => {
                    p.shared_subscription_available =
                        Some(flag(r.u8()?, "shared subscription available not 0 or 1")?)
                }
                _ => unreachable!("identifier checked against KNOWN"),
            }
        }
        Ok(p)
    }

    /// Bytes of the properties themselves, without the length prefix.
    pub(crate) fn body_len(&self) -> usize {
        let mut n = 0;
        let b = |o: &Option<u8>| if o.is_some() { 2 } else { 0 };
        let two = |o: &Option<u16>| if o.is_some() { 3 } else { 0 };
        let four = |o: &Option<u32>| if o.is_some() { 5 } else { 0 };
        let s = |o: &Option<String>| o.as_ref().map_or(0, |v| 1 + field_len(v.as_bytes()));
        let bin = |o: &Option<Bytes>| o.as_ref().map_or(0, |v| 1 + field_len(v));
        n += b(&self.payload_format_indicator);
        n += four(&self.message_expiry_interval);
        n += s(&self.content_type);
        n += s(&self.response_topic);
        n += bin(&self.correlation_data);
        for v in &self.subscription_identifiers {
            n += 1 + var_int_len(*v as usize);
        }
        n += four(&self.session_expiry_interval);
        n += s(&self.assigned_client_identifier);
        n += two(&self.server_keep_alive);
        n += s(&self.authentication_method);
        n += bin(&self.authentication_data);
        n += b(&self.request_problem_information);
        n += four(&self.will_delay_interval);
        n += b(&self.request_response_information);
        n += s(&self.response_information);
        n += s(&self.server_reference);
        n += s(&self.reason_string);
        n += two(&self.receive_maximum);
        n += two(&self.topic_alias_maximum);
        n += two(&self.topic_alias);
        n += b(&self.maximum_qos);
        n += b(&self.retain_available);
        for (k, v) in &self.user_properties {
            n += 1 + field_len(k.as_bytes()) + field_len(v.as_bytes());
        }
        n += four(&self.maximum_packet_size);
        n += b(&self.wildcard_subscription_available);
        n += b(&self.subscription_identifier_available);
        n += b(&self.shared_subscription_available);
        n
    }

    /// Length prefix plus properties.
    pub(crate) fn wire_len(&self) -> usize {
        let n = self.body_len();
        var_int_len(n) + n
    }

    /// Writes the length prefix and the properties in ascending identifier order (the
    /// order paho-mqtt writes them in), refusing any that `allowed` does not contain.
    pub(crate) fn write(&self, out: &mut BytesMut, allowed: u64) -> Result<(), EncodeError> {
        if self.present() & !allowed != 0 {
            return Err(EncodeError::Invalid("property not allowed in this packet"));
        }
        if allowed != self::allowed::PUBLISH && self.subscription_identifiers.len() > 1 {
            return Err(EncodeError::Invalid(
                "more than one subscription identifier outside PUBLISH",
            ));
        }
        write_var_int(out, self.body_len());
        fn byte(out: &mut BytesMut, ident: u8, v: Option<u8>) {
            if let Some(v) = v {
                out.put_u8(ident);
                out.put_u8(v);
            }
        }
        fn two(out: &mut BytesMut, ident: u8, v: Option<u16>) {
            if let Some(v) = v {
                out.put_u8(ident);
                out.put_u16(v);
            }
        }
        fn four(out: &mut BytesMut, ident: u8, v: Option<u32>) {
            if let Some(v) = v {
                out.put_u8(ident);
                out.put_u32(v);
            }
        }
        fn string(out: &mut BytesMut, ident: u8, v: &Option<String>) -> Result<(), EncodeError> {
            if let Some(v) = v {
                out.put_u8(ident);
                write_str(out, v)?;
            }
            Ok(())
        }
        fn binary(out: &mut BytesMut, ident: u8, v: &Option<Bytes>) -> Result<(), EncodeError> {
            if let Some(v) = v {
                out.put_u8(ident);
                write_binary(out, v)?;
            }
            Ok(())
        }
        byte(
            out,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        four(
            out,
            id::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
        );
        string(out, id::CONTENT_TYPE, &self.content_type)?;
        string(out, id::RESPONSE_TOPIC, &self.response_topic)?;
        binary(out, id::CORRELATION_DATA, &self.correlation_data)?;
        for v in &self.subscription_identifiers {
            if *v == 0 || *v > super::wire::VAR_INT_MAX {
                return Err(EncodeError::Invalid("subscription identifier out of range"));
            }
            out.put_u8(id::SUBSCRIPTION_IDENTIFIER);
            write_var_int(out, *v as usize);
        }
        four(
            out,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        string(
            out,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        )?;
        two(out, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        string(out, id::AUTHENTICATION_METHOD, &self.authentication_method)?;
        binary(out, id::AUTHENTICATION_DATA, &self.authentication_data)?;
        byte(
            out,
            id::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        four(out, id::WILL_DELAY_INTERVAL, self.will_delay_interval);
        byte(
            out,
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        string(out, id::RESPONSE_INFORMATION, &self.response_information)?;
        string(out, id::SERVER_REFERENCE, &self.server_reference)?;
        string(out, id::REASON_STRING, &self.reason_string)?;
        two(out, id::RECEIVE_MAXIMUM, self.receive_maximum);
        two(out, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        two(out, id::TOPIC_ALIAS, self.topic_alias);
        byte(out, id::MAXIMUM_QOS, self.maximum_qos);
        byte(out, id::RETAIN_AVAILABLE, self.retain_available);
        for (k, v) in &self.user_properties {
            out.put_u8(id::USER_PROPERTY);
            write_str(out, k)?;
            write_str(out, v)?;
        }
        four(out, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        byte(
            out,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        byte(
            out,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifier_available,
        );
        byte(
            out,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        Ok(())
    }
}
