//! Encoding straight into a write buffer.

use bytes::{Bytes, BytesMut};

use super::wire::{var_int_len, write_binary, write_header};
use super::{
    connack, connect, disconnect, puback, publish, suback, subscribe, unsuback, unsubscribe,
};
use super::{EncodeError, Packet, ProtocolVersion, QoS};

/// Appends the encoding of `packet` for `version` to `out`.
///
/// A CONNECT is encoded for its own `protocol` field. Fields that exist only in MQTT 5
/// are ignored for 3.x (a v5 reason code is mapped where 3.x has an equivalent: CONNACK
/// return codes, SUBACK failure 0x80). On error `out` is left as it was.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = write(packet, version, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Payloads from this size on are not copied by [`encode_segmented`]: from here on a
/// buffer of its own in a vectored write costs less than the copy (and than growing the
/// write buffer to hold it).
pub const SEGMENT_PAYLOAD: usize = 16 * 1024;

/// [`encode`], except for a PUBLISH with a payload of [`SEGMENT_PAYLOAD`] bytes or more:
/// its head is appended to `out`, then all that `out` holds and the payload itself are
/// moved to the end of `segments` (zero-copy output: the caller writes `segments` first,
/// then `out`). On error `out` and `segments` are left as they were.
pub fn encode_segmented(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
    segments: &mut Vec<Bytes>,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Publish(p) if p.payload.len() >= SEGMENT_PAYLOAD => {
            encode_publish_head(p, version, out)?;
            segments.push(out.split().freeze());
            segments.push(p.payload.clone());
            Ok(())
        }
        _ => encode(packet, version, out),
    }
}

/// Remaining length of the PUBLISH `encode_plain_publish` writes.
fn plain_publish_remaining(v5: bool, topic_len: usize, qos: QoS, payload_len: usize) -> usize {
    let pkid = if qos == QoS::AtMostOnce { 0 } else { 2 };
    2 + topic_len + pkid + usize::from(v5) + payload_len
}

/// Size of the whole PUBLISH `encode_plain_publish` writes, fixed header included.
pub fn plain_publish_len(v5: bool, topic_len: usize, qos: QoS, payload_len: usize) -> usize {
    let rem = plain_publish_remaining(v5, topic_len, qos, payload_len);
    1 + var_int_len(rem) + rem
}

/// Appends a PUBLISH without properties (v5: an empty property list) from its parts,
/// for a topic already known to be a valid topic name and, at QoS 1/2, a non-zero
/// packet identifier: the broker's delivery path writes shared messages this way,
/// without building a `Publish` per subscriber (no reference count touched) or
/// validating the topic again. The same bytes as `encode` of the equivalent `Publish`
/// (DUP clear). On error `out` is left as it was.
pub fn encode_plain_publish(
    out: &mut BytesMut,
    v5: bool,
    topic: &[u8],
    qos: QoS,
    retain: bool,
    pkid: u16,
    payload: &[u8],
) -> Result<(), EncodeError> {
    use bytes::BufMut;
    let start = out.len();
    let rem = plain_publish_remaining(v5, topic.len(), qos, payload.len());
    write_header(out, 0x30 | ((qos as u8) << 1) | u8::from(retain), rem)?;
    if let Err(e) = write_binary(out, topic) {
        out.truncate(start);
        return Err(e);
    }
    if qos != QoS::AtMostOnce {
        out.put_u16(pkid);
    }
    if v5 {
        out.put_u8(0);
    }
    out.put_slice(payload);
    Ok(())
}

/// Appends a PUBLISH without its payload, which the caller writes after these bytes
/// (zero-copy output of large payloads). On error `out` is left as it was.
pub fn encode_publish_head(
    p: &super::Publish,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = publish::write_head(p, version, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

#[inline]
fn write(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
    let v5 = version.is_v5();
    match packet {
        Packet::Publish(p) => publish::write(p, version, out),
        Packet::Connect(c) => connect::write(c, out),
        Packet::ConnAck(c) => connack::write(c, version, out),
        Packet::PubAck(a) => puback::write(0x40, a, version, out),
        Packet::PubRec(a) => puback::write(0x50, a, version, out),
        Packet::PubRel(a) => puback::write(0x62, a, version, out),
        Packet::PubComp(a) => puback::write(0x70, a, version, out),
        Packet::Subscribe(s) => subscribe::write(s, version, out),
        Packet::SubAck(s) => suback::write(s, version, out),
        Packet::Unsubscribe(u) => unsubscribe::write(u, version, out),
        Packet::UnsubAck(u) => unsuback::write(u, version, out),
        Packet::PingReq => write_header(out, 0xC0, 0),
        Packet::PingResp => write_header(out, 0xD0, 0),
        Packet::Disconnect(d) => disconnect::write_disconnect(d, v5, out),
        Packet::Auth(a) => {
            if !v5 {
                return Err(EncodeError::Invalid("AUTH exists only in MQTT 5"));
            }
            disconnect::write_auth(a, out)
        }
    }
}

/// The remaining length `encode` would write.
fn remaining_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let v5 = version.is_v5();
    match packet {
        Packet::Publish(p) => publish::len(p, version),
        Packet::Connect(c) => connect::len(c),
        Packet::ConnAck(c) => connack::len(c, version),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            puback::len(a, version)
        }
        Packet::Subscribe(s) => subscribe::len(s, version),
        Packet::SubAck(s) => suback::len(s, version),
        Packet::Unsubscribe(u) => unsubscribe::len(u, version),
        Packet::UnsubAck(u) => unsuback::len(u, version),
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => disconnect::disconnect_len(d, v5),
        Packet::Auth(a) => disconnect::auth_len(a),
    }
}

/// The number of bytes `encode` would append (fixed header included), for comparing
/// with a peer's maximum packet size before encoding.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let n = remaining_len(packet, version);
    1 + var_int_len(n) + n
}
