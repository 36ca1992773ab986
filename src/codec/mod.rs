//! Sans-I/O MQTT 3.1 / 3.1.1 / 5.0 codec shared by the client and the broker.
//!
//! Bytes in, packets out, and back: nothing here touches a socket, a runtime or Python.
//! One file per packet kind with its `read`, `len` and `write`, on the primitives of
//! `wire`; `decode` frames and dispatches, `encode` dispatches.
//!
//! Using it from a connection task:
//!
//! - Reading: keep one [`Decoder`] per connection (`Decoder::new(max)` on a broker, which
//!   accepts only CONNECT first and then takes the version from it;
//!   `Decoder::with_version(v, max)` on a client) and call `decode(&mut read_buf)` until it
//!   returns `Ok(None)`. An `Err` closes the connection: for v5 send DISCONNECT (or CONNACK
//!   while connecting) with `err.reason_code()`; `UnsupportedProtocolVersion` is answered
//!   with CONNACK 0x84 (v5) or return code 1 (3.x) before closing.
//! - Writing: `encode(&packet, version, &mut write_buf)`; `encoded_len` first when a
//!   peer's maximum packet size applies. The bytes are what paho-mqtt 2.2.0 writes:
//!   acknowledgements and DISCONNECT with Success and no properties take their short
//!   forms (PUBACK `40 02 id id`, DISCONNECT `e0 00`), v5 PUBLISH/SUBSCRIBE/UNSUBSCRIBE/
//!   CONNECT always carry a property length, properties go in ascending identifier order.
//! - 3.x CONNACK: `ConnAck.code` holds the v5 code ([`ReasonCode::from_v3_connack`] when
//!   decoding, [`ReasonCode::to_v3_connack`] when encoding).
//! - Direction-specific rules (a client must not send a subscription identifier in
//!   PUBLISH, topic alias ranges, a second CONNECT, receive maximum) belong to the session
//!   layers; the codec checks what a single packet can show.

mod bytestr;
mod connack;
mod connect;
mod decode;
mod disconnect;
mod encode;
mod error;
mod packet;
mod properties;
mod puback;
mod publish;
mod reason;
mod suback;
mod subscribe;
pub mod topic;
mod unsuback;
mod unsubscribe;
mod wire;

pub use bytestr::ByteStr;
pub use decode::Decoder;
pub use encode::{
    encode, encode_plain_publish, encode_publish_head, encode_segmented, encoded_len,
    plain_publish_len, SEGMENT_PAYLOAD,
};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use properties::Properties;
pub use reason::ReasonCode;
