//! Sans-I/O MQTT 3.1 / 3.1.1 / 5.0 codec shared by the client and the broker.
//!
//! Bytes in, packets out, and back: nothing here touches a socket, a runtime or Python.

mod bytestr;
mod decode;
mod encode;
mod error;
mod packet;
mod properties;
mod reason;
pub mod topic;

pub use bytestr::ByteStr;
pub use decode::Decoder;
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::*;
pub use properties::Properties;
pub use reason::ReasonCode;
