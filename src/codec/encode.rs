//! Encoding straight into a write buffer.

use bytes::BytesMut;

use super::{EncodeError, Packet, ProtocolVersion};

/// Appends the encoding of `packet` for `version` to `out`.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let _ = (packet, version, out);
    todo!("codec: encode")
}

/// The number of bytes `encode` would append.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let _ = (packet, version);
    todo!("codec: encoded_len")
}
