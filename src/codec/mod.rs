//! Sans-I/O MQTT 3.1 / 3.1.1 / 5.0 codec shared by the client and the broker.
//!
//! Bytes in, packets out, and back: nothing here touches a socket, a runtime or Python.
//! One file per packet kind with its `read`, `len` and `write`, on the primitives of
//! `wire`; `decode` frames and dispatches, `encode` dispatches.

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
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use properties::Properties;
pub use reason::ReasonCode;
