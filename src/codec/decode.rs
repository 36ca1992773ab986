//! Incremental framing and decoding.

use bytes::BytesMut;

use super::{DecodeError, Packet, ProtocolVersion};

/// Frames and decodes packets from a read buffer.
///
/// Before a CONNECT has been decoded the protocol version is unknown (a broker's view);
/// decoding a CONNECT sets it. A client starts with its version already set.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Decoder {
    /// `max_packet_size` bounds the whole packet (fixed header included), MQTT 5 §3.1.2.11.4.
    pub fn new(max_packet_size: u32) -> Self {
        Self {
            version: None,
            max_packet_size,
        }
    }

    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            version: Some(version),
            max_packet_size,
        }
    }

    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// Decodes one packet from the front of `buf`.
    ///
    /// `Ok(None)`: the frame is incomplete; nothing was consumed or allocated.
    /// `Ok(Some(p))`: the frame was consumed from `buf`.
    /// `Err(e)`: the connection must be closed with `e.reason_code()`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let _ = buf;
        todo!("codec: decode")
    }
}
