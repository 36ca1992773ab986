//! Incremental framing and decoding.

use bytes::{Buf, Bytes, BytesMut};

use super::reason::valid;
use super::wire::{expect_end, Reader};
use super::{
    connack, connect, disconnect, puback, publish, suback, subscribe, unsuback, unsubscribe,
};
use super::{DecodeError, Packet, ProtocolVersion};

/// Frames and decodes packets from a read buffer.
///
/// Before a CONNECT has been decoded the protocol version is unknown (a broker's view);
/// decoding a CONNECT sets it. A client starts with its version already set.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
    accept_invalid_topics: bool,
    invalid_topic: Option<Bytes>,
}

impl Decoder {
    /// `max_packet_size` bounds the whole packet (fixed header included), MQTT 5 §3.1.2.11.4.
    pub fn new(max_packet_size: u32) -> Self {
        Self {
            version: None,
            max_packet_size,
            accept_invalid_topics: false,
            invalid_topic: None,
        }
    }

    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            version: Some(version),
            max_packet_size,
            accept_invalid_topics: false,
            invalid_topic: None,
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

    /// On: a PUBLISH whose topic name is not valid UTF-8 (malformed, [MQTT-1.5.4-1]) is
    /// decoded anyway, with an empty `topic`; `take_invalid_topic` then returns its bytes.
    /// For a client that, like paho-mqtt, delivers such messages. Off by default (a
    /// broker must refuse them).
    pub fn set_accept_invalid_topics(&mut self, on: bool) {
        self.accept_invalid_topics = on;
    }

    /// The raw topic of the PUBLISH just decoded, when it was accepted although it is not
    /// valid UTF-8 (see `set_accept_invalid_topics`).
    pub fn take_invalid_topic(&mut self) -> Option<Bytes> {
        self.invalid_topic.take()
    }

    /// Decodes one packet from the front of `buf`.
    /// The whole length of the frame at the head of `buf` once its fixed header is
    /// readable (None before that, or when the header is malformed: `decode` reports it).
    pub fn frame_len(buf: &[u8]) -> Option<usize> {
        let (header_len, remaining) = read_remaining_length(buf.get(1..)?).ok()??;
        Some(1 + header_len + remaining)
    }

    /// Decodes one frame from the front of `buf`.
    ///
    /// `Ok(None)`: the frame is incomplete; nothing was consumed or allocated.
    /// `Ok(Some(p))`: the frame was consumed from `buf`.
    /// `Err(e)`: the connection must be closed with `e.reason_code()`.
    ///
    /// The fixed header is checked (packet type, flags, remaining length, maximum packet
    /// size) as soon as it is readable, before the body has arrived, so a peer cannot make
    /// us buffer a packet we would refuse.
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        check_first_byte(first, self.version)?;
        let Some((header_len, remaining)) = read_remaining_length(&buf[1..])? else {
            return Ok(None);
        };
        let total = 1 + header_len + remaining;
        if total > self.max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size: total,
                max: self.max_packet_size,
            });
        }
        if buf.len() < total {
            return Ok(None);
        }
        // One refcounted view of the frame; topics and payloads are slices of it.
        let mut frame = buf.split_to(total).freeze();
        if first >> 4 == 3 {
            if let Some(version) = self.version {
                // The hot path: the payload is the frame itself, advanced past the header.
                let mut r = Reader::new(&frame, 1 + header_len);
                let mut publish = match publish::read_head(first & 0x0F, &mut r, version) {
                    Ok(p) => p,
                    Err(DecodeError::Malformed("invalid UTF-8 string"))
                        if self.accept_invalid_topics =>
                    {
                        r = Reader::new(&frame, 1 + header_len);
                        let (p, raw) = publish::read_head_raw_topic(first & 0x0F, &mut r, version)?;
                        self.invalid_topic = Some(raw);
                        p
                    }
                    Err(e) => return Err(e),
                };
                let at = r.position();
                frame.advance(at);
                publish.payload = frame;
                return Ok(Some(Packet::Publish(publish)));
            }
        }
        let mut r = Reader::new(&frame, 1 + header_len);
        let packet = match self.version {
            Some(version) => read_body(first, &mut r, version)?,
            None => Packet::Connect(Box::new(connect::read(&mut r)?)),
        };
        expect_end(&r)?;
        if let Packet::Connect(c) = &packet {
            self.version = Some(c.protocol);
        }
        Ok(Some(packet))
    }
}

/// Packet type and the fixed header flags (§2.1.3): PUBREL, SUBSCRIBE and UNSUBSCRIBE
/// carry 0b0010, PUBLISH its own flags, every other packet 0.
#[inline]
fn check_first_byte(first: u8, version: Option<ProtocolVersion>) -> Result<(), DecodeError> {
    let kind = first >> 4;
    let flags = first & 0x0F;
    let Some(version) = version else {
        // Before CONNECT the protocol is unknown, and only CONNECT may come first
        // ([MQTT-3.1.0-1]).
        if kind != 1 {
            return Err(DecodeError::Protocol("first packet is not CONNECT"));
        }
        if flags != 0 {
            return Err(DecodeError::Malformed("reserved fixed header flags set"));
        }
        return Ok(());
    };
    let expected = match kind {
        // QoS 3 and DUP on QoS 0 are checked with the PUBLISH itself.
        3 => return Ok(()),
        // MQTT 3.1 §2.1: a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE carries the DUP flag
        // (0x08) next to QoS 1; 3.1.1 and 5.0 made these flags reserved.
        6 | 8 | 10 if version == ProtocolVersion::V31 && flags == 0x0A => 0x0A,
        6 | 8 | 10 => 0x02,
        0 => return Err(DecodeError::Malformed("reserved packet type 0")),
        15 if !version.is_v5() => return Err(DecodeError::Malformed("AUTH packet before MQTT 5")),
        _ => 0x00,
    };
    if flags != expected {
        return Err(DecodeError::Malformed("reserved fixed header flags set"));
    }
    Ok(())
}

/// The remaining length after the first byte (§2.1.4): `(bytes used, value)`, or `None`
/// when more bytes are needed.
#[inline]
fn read_remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        value |= ((b & 0x7F) as usize) << (7 * i);
        if b & 0x80 == 0 {
            // [MQTT-1.5.5-1] minimally encoded.
            if i > 0 && b == 0 {
                return Err(DecodeError::MalformedRemainingLength);
            }
            return Ok(Some((i + 1, value)));
        }
    }
    Err(DecodeError::MalformedRemainingLength)
}

#[inline]
fn read_body(
    first: u8,
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    Ok(match first >> 4 {
        1 => Packet::Connect(Box::new(connect::read(r)?)),
        2 => Packet::ConnAck(connack::read(r, version)?),
        4 => Packet::PubAck(puback::read(r, version, valid::PUBACK)?),
        5 => Packet::PubRec(puback::read(r, version, valid::PUBACK)?),
        6 => Packet::PubRel(puback::read(r, version, valid::PUBREL)?),
        7 => Packet::PubComp(puback::read(r, version, valid::PUBREL)?),
        8 => Packet::Subscribe(subscribe::read(r, version)?),
        9 => Packet::SubAck(suback::read(r, version)?),
        10 => Packet::Unsubscribe(unsubscribe::read(r, version)?),
        11 => Packet::UnsubAck(unsuback::read(r, version)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(disconnect::read_disconnect(r, version.is_v5())?),
        15 => Packet::Auth(disconnect::read_auth(r)?),
        _ => unreachable!("PUBLISH decoded by the caller; type 0 refused with the fixed header"),
    })
}
