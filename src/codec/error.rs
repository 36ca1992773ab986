//! Codec errors. Each maps to the MQTT 5 reason code the spec names for it.

use super::ReasonCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: u32 },
    #[error("malformed remaining length")]
    MalformedRemainingLength,
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("unsupported protocol version {0}")]
    UnsupportedProtocolVersion(u8),
    #[error("invalid topic name: {0}")]
    TopicNameInvalid(&'static str),
    #[error("invalid topic filter: {0}")]
    TopicFilterInvalid(&'static str),
}

impl DecodeError {
    /// The reason code a v5 peer sends in DISCONNECT (or CONNACK) for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::MalformedRemainingLength | DecodeError::Malformed(_) => {
                ReasonCode::MALFORMED_PACKET
            }
            DecodeError::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::UnsupportedProtocolVersion(_) => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::TopicNameInvalid(_) => ReasonCode::TOPIC_NAME_INVALID,
            // A filter breaking §4.7.1 is not "correctly formed" (what 0x8F says): the
            // packet is malformed (§4.13), as mosquitto treats it.
            DecodeError::TopicFilterInvalid(_) => ReasonCode::MALFORMED_PACKET,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: u32 },
    #[error("string of {0} bytes is longer than 65535")]
    StringTooLong(usize),
    #[error("{0}")]
    Invalid(&'static str),
}
