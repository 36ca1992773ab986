//! MQTT 5 properties (§2.2.2.2). One struct for every packet; which identifiers a packet
//! may carry is checked when decoding and encoding.

use bytes::Bytes;

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
