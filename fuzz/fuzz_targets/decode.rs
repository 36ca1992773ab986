//! Arbitrary bytes through the decoder, starting from each protocol version (and from
//! the broker's "no CONNECT yet" state). Whatever decodes must encode, and the encoding
//! must decode to the same packet.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use turbomqtt::codec::{encode, encoded_len, Decoder, Packet, ProtocolVersion};

fn check(mut dec: Decoder, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    // Bounded: every successful decode consumes at least two bytes.
    while let Ok(Some(packet)) = dec.decode(&mut buf) {
        let version = match &packet {
            Packet::Connect(c) => c.protocol,
            _ => dec.version().expect("version known after a packet"),
        };
        let mut out = BytesMut::new();
        encode(&packet, version, &mut out).expect("a decoded packet encodes");
        assert_eq!(out.len(), encoded_len(&packet, version));
        let mut again = match &packet {
            Packet::Connect(_) => Decoder::new(u32::MAX),
            _ => Decoder::with_version(version, u32::MAX),
        };
        let decoded = again.decode(&mut out).expect("re-encoding decodes").expect("complete");
        assert_eq!(decoded, packet);
        assert!(out.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    // A small maximum too, so the size check is exercised.
    check(Decoder::new(1 << 16), data);
    for v in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
        check(Decoder::with_version(v, 1 << 16), data);
        check(Decoder::with_version(v, 64), data);
    }
});
