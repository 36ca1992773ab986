//! Every malformed input the decoder must refuse, each with its exact error and the v5
//! reason code a server or client would close the connection with.

use bytes::BytesMut;
use turbomqtt::codec::*;

use ProtocolVersion::{V31, V311, V5};

fn decode_as(
    version: Option<ProtocolVersion>,
    bytes: &[u8],
) -> Result<Option<Packet>, DecodeError> {
    let mut dec = match version {
        Some(v) => Decoder::with_version(v, 1 << 20),
        None => Decoder::new(1 << 20),
    };
    dec.decode(&mut BytesMut::from(bytes))
}

#[track_caller]
fn refused(version: Option<ProtocolVersion>, bytes: &[u8], want: DecodeError, code: u8) {
    let got = decode_as(version, bytes);
    assert_eq!(got, Err(want), "{bytes:02x?}");
    assert_eq!(got.unwrap_err().reason_code(), ReasonCode(code));
}

#[track_caller]
fn accepted(version: Option<ProtocolVersion>, bytes: &[u8]) -> Packet {
    decode_as(version, bytes)
        .unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"))
        .expect("complete")
}

const MALFORMED: u8 = 0x81;
const PROTOCOL: u8 = 0x82;

/// A frame with a remaining length computed from `body`.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut v = vec![first, body.len() as u8];
    v.extend_from_slice(body);
    v
}

fn connect_body(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![0, name.len() as u8];
    v.extend_from_slice(name);
    v.extend_from_slice(&[level, flags, 0, 60]);
    v.extend_from_slice(rest);
    v
}

// ---- framing ----

#[test]
fn remaining_length_longer_than_four_bytes() {
    refused(
        Some(V311),
        &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
        DecodeError::MalformedRemainingLength,
        MALFORMED,
    );
    // Refused as soon as the fifth byte would be needed, body or not.
    refused(
        Some(V311),
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF],
        DecodeError::MalformedRemainingLength,
        MALFORMED,
    );
}

#[test]
fn remaining_length_not_minimal() {
    refused(
        Some(V311),
        &[0xC0, 0x80, 0x00],
        DecodeError::MalformedRemainingLength,
        MALFORMED,
    );
}

#[test]
fn oversized_packet_refused_from_its_fixed_header() {
    let mut dec = Decoder::with_version(V5, 100);
    // Only the fixed header of a 1000-byte PUBLISH has arrived.
    let mut buf = BytesMut::from(&[0x30, 0xE8, 0x07][..]);
    let err = dec.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 1003,
            max: 100
        }
    );
    assert_eq!(err.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    // The limit counts the whole packet: 100 bytes exactly is accepted.
    let mut ok = vec![0x30, 98, 0, 1, b't', 0];
    ok.resize(100, b'x');
    let mut dec = Decoder::with_version(V5, 100);
    assert!(dec.decode(&mut BytesMut::from(&ok[..])).unwrap().is_some());
}

#[test]
fn incomplete_frame_consumes_and_allocates_nothing() {
    let mut dec = Decoder::with_version(V311, 1 << 20);
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&[0x30, 10, 0, 3, b'a']);
    let cap = buf.capacity();
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(&buf[..], &[0x30, 10, 0, 3, b'a']);
    assert_eq!(buf.capacity(), cap);
    assert_eq!(dec.decode(&mut BytesMut::new()).unwrap(), None);
    assert_eq!(
        dec.decode(&mut BytesMut::from(&[0x30, 0x80][..])).unwrap(),
        None
    );
}

#[test]
fn first_packet_must_be_connect() {
    refused(
        None,
        &[0xC0, 0x00],
        DecodeError::Protocol("first packet is not CONNECT"),
        PROTOCOL,
    );
    refused(
        None,
        &frame(0x30, &[0, 1, b'a']),
        DecodeError::Protocol("first packet is not CONNECT"),
        PROTOCOL,
    );
}

#[test]
fn reserved_packet_type_zero() {
    refused(
        Some(V311),
        &[0x00, 0x00],
        DecodeError::Malformed("reserved packet type 0"),
        MALFORMED,
    );
}

#[test]
fn auth_before_mqtt5() {
    refused(
        Some(V311),
        &[0xF0, 0x00],
        DecodeError::Malformed("AUTH packet before MQTT 5"),
        MALFORMED,
    );
    assert_eq!(
        accepted(Some(V5), &[0xF0, 0x00]),
        Packet::Auth(Auth::default())
    );
}

#[test]
fn reserved_fixed_header_flags() {
    let bad = DecodeError::Malformed("reserved fixed header flags set");
    refused(
        Some(V311),
        &frame(0x80, &[0, 1, 0, 1, b'a', 0]),
        bad.clone(),
        MALFORMED,
    ); // SUBSCRIBE
    refused(
        Some(V311),
        &frame(0xA0, &[0, 1, 0, 1, b'a']),
        bad.clone(),
        MALFORMED,
    ); // UNSUBSCRIBE
    refused(Some(V311), &frame(0x60, &[0, 1]), bad.clone(), MALFORMED); // PUBREL
    refused(Some(V311), &frame(0x42, &[0, 1]), bad.clone(), MALFORMED); // PUBACK
    refused(Some(V311), &[0xC1, 0x00], bad.clone(), MALFORMED); // PINGREQ
    refused(Some(V5), &[0xE2, 0x00], bad.clone(), MALFORMED); // DISCONNECT
    refused(
        None,
        &frame(0x12, &connect_body(b"MQTT", 4, 0x02, &[0, 0])),
        bad,
        MALFORMED,
    );
}

/// MQTT 3.1 §2.1: a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE has the DUP flag set next to
/// QoS 1; in 3.1.1 and 5.0 the same byte is a malformed packet.
#[test]
fn mqtt_3_1_dup_flag_on_resent_packets() {
    let subscribe = frame(0x8A, &[0, 1, 0, 1, b'a', 0]);
    let unsubscribe = frame(0xAA, &[0, 1, 0, 1, b'a']);
    let pubrel = frame(0x6A, &[0, 1]);
    assert!(matches!(
        accepted(Some(V31), &subscribe),
        Packet::Subscribe(_)
    ));
    assert!(matches!(
        accepted(Some(V31), &unsubscribe),
        Packet::Unsubscribe(_)
    ));
    assert!(matches!(accepted(Some(V31), &pubrel), Packet::PubRel(_)));
    let bad = DecodeError::Malformed("reserved fixed header flags set");
    for v in [V311, V5] {
        for p in [&subscribe, &unsubscribe, &pubrel] {
            refused(Some(v), p, bad.clone(), MALFORMED);
        }
    }
    // Only DUP joins QoS 1 in 3.1: other bits, or DUP on other packets, stay refused.
    refused(
        Some(V31),
        &frame(0x8B, &[0, 1, 0, 1, b'a', 0]),
        bad.clone(),
        MALFORMED,
    );
    refused(
        Some(V31),
        &frame(0x88, &[0, 1, 0, 1, b'a', 0]),
        bad.clone(),
        MALFORMED,
    );
    refused(Some(V31), &frame(0x48, &[0, 1]), bad, MALFORMED);
}

// ---- PUBLISH ----

#[test]
fn publish_qos_3() {
    refused(
        Some(V311),
        &frame(0x36, &[0, 1, b'a', 0, 1]),
        DecodeError::Malformed("PUBLISH with QoS 3"),
        MALFORMED,
    );
}

#[test]
fn publish_dup_on_qos_0() {
    refused(
        Some(V311),
        &frame(0x38, &[0, 1, b'a']),
        DecodeError::Malformed("DUP flag set on a QoS 0 PUBLISH"),
        MALFORMED,
    );
}

#[test]
fn publish_invalid_utf8_topic() {
    refused(
        Some(V311),
        &frame(0x30, &[0, 2, 0xC3, 0x28]),
        DecodeError::Malformed("invalid UTF-8 string"),
        MALFORMED,
    );
    // An encoded surrogate (U+D800) is not UTF-8 either (§1.5.4).
    refused(
        Some(V311),
        &frame(0x30, &[0, 3, 0xED, 0xA0, 0x80]),
        DecodeError::Malformed("invalid UTF-8 string"),
        MALFORMED,
    );
}

#[test]
fn publish_topic_with_nul() {
    refused(
        Some(V311),
        &frame(0x30, &[0, 3, b'a', 0, b'b']),
        DecodeError::Malformed("string contains U+0000"),
        MALFORMED,
    );
}

#[test]
fn publish_topic_with_wildcards() {
    let want = DecodeError::TopicNameInvalid("wildcard in topic name");
    refused(
        Some(V311),
        &frame(0x30, &[0, 3, b'a', b'/', b'+']),
        want.clone(),
        0x90,
    );
    refused(Some(V5), &frame(0x30, &[0, 1, b'#', 0]), want, 0x90);
}

#[test]
fn publish_empty_topic() {
    refused(
        Some(V311),
        &frame(0x30, &[0, 0, b'x']),
        DecodeError::TopicNameInvalid("empty topic"),
        0x90,
    );
    refused(
        Some(V5),
        &frame(0x30, &[0, 0, 0, b'x']),
        DecodeError::Protocol("empty topic without a topic alias"),
        PROTOCOL,
    );
    // With a topic alias it stands for the aliased topic.
    accepted(Some(V5), &frame(0x30, &[0, 0, 3, 0x23, 0, 1, b'x']));
}

#[test]
fn publish_packet_identifier_zero() {
    refused(
        Some(V311),
        &frame(0x32, &[0, 1, b'a', 0, 0]),
        DecodeError::Protocol("packet identifier 0"),
        PROTOCOL,
    );
}

#[test]
fn publish_truncated() {
    let t = DecodeError::Malformed("packet truncated");
    // Topic length beyond the frame.
    refused(
        Some(V311),
        &frame(0x30, &[0, 5, b'a']),
        t.clone(),
        MALFORMED,
    );
    // Packet identifier missing.
    refused(
        Some(V311),
        &frame(0x32, &[0, 1, b'a', 0]),
        t.clone(),
        MALFORMED,
    );
    // v5 property length missing.
    refused(Some(V5), &frame(0x30, &[0, 1, b'a']), t.clone(), MALFORMED);
    // v5 property length beyond the frame.
    refused(Some(V5), &frame(0x30, &[0, 1, b'a', 5, 0x01]), t, MALFORMED);
}

// ---- acknowledgements ----

#[test]
fn ack_packet_identifier_zero() {
    for first in [0x40, 0x50, 0x62, 0x70] {
        refused(
            Some(V311),
            &frame(first, &[0, 0]),
            DecodeError::Protocol("packet identifier 0"),
            PROTOCOL,
        );
    }
    refused(
        Some(V311),
        &frame(0x90, &[0, 0, 0]),
        DecodeError::Protocol("packet identifier 0"),
        PROTOCOL,
    );
    refused(
        Some(V311),
        &frame(0xB0, &[0, 0]),
        DecodeError::Protocol("packet identifier 0"),
        PROTOCOL,
    );
}

#[test]
fn ack_truncated() {
    refused(
        Some(V311),
        &frame(0x40, &[0]),
        DecodeError::Malformed("packet truncated"),
        MALFORMED,
    );
}

#[test]
fn trailing_bytes() {
    let t = DecodeError::Malformed("trailing bytes after packet content");
    refused(Some(V311), &frame(0x40, &[0, 1, 0]), t.clone(), MALFORMED); // 3.x PUBACK is 2 bytes
    refused(Some(V311), &frame(0xC0, &[0]), t.clone(), MALFORMED);
    refused(Some(V311), &frame(0xD0, &[0]), t.clone(), MALFORMED);
    refused(Some(V311), &frame(0xE0, &[0]), t.clone(), MALFORMED);
    refused(Some(V311), &frame(0xB0, &[0, 1, 0]), t.clone(), MALFORMED);
    refused(Some(V311), &frame(0x20, &[0, 0, 0]), t.clone(), MALFORMED);
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02, &[0, 0, 9])),
        t,
        MALFORMED,
    );
}

#[test]
fn invalid_reason_codes() {
    let p = DecodeError::Protocol("invalid reason code for this packet");
    refused(Some(V5), &frame(0x40, &[0, 1, 0x05]), p.clone(), PROTOCOL);
    refused(Some(V5), &frame(0x62, &[0, 1, 0x10]), p.clone(), PROTOCOL); // 0x10 is PUBACK-only
    refused(Some(V5), &frame(0xE0, &[0x05]), p.clone(), PROTOCOL);
    refused(Some(V5), &frame(0xF0, &[0x01, 0]), p, PROTOCOL);
    refused(
        Some(V5),
        &frame(0x90, &[0, 1, 0, 0x03]),
        DecodeError::Protocol("invalid SUBACK reason code"),
        PROTOCOL,
    );
    refused(
        Some(V311),
        &frame(0x90, &[0, 1, 0x03]),
        DecodeError::Protocol("invalid SUBACK reason code"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &frame(0xB0, &[0, 1, 0, 0x10]),
        DecodeError::Protocol("invalid UNSUBACK reason code"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &frame(0x20, &[0, 0x01, 0]),
        DecodeError::Protocol("invalid CONNACK reason code"),
        PROTOCOL,
    );
}

#[test]
fn connack_v3_return_codes() {
    refused(
        Some(V311),
        &frame(0x20, &[0, 6]),
        DecodeError::Protocol("reserved CONNACK return code"),
        PROTOCOL,
    );
    refused(
        Some(V311),
        &frame(0x20, &[0x02, 0]),
        DecodeError::Malformed("reserved CONNACK flag set"),
        MALFORMED,
    );
    refused(
        Some(V311),
        &frame(0x20, &[0x01, 5]),
        DecodeError::Protocol("session present on a refused connection"),
        PROTOCOL,
    );
    for (rc, v5) in [
        (0u8, 0x00u8),
        (1, 0x84),
        (2, 0x85),
        (3, 0x88),
        (4, 0x86),
        (5, 0x87),
    ] {
        for v in [V31, V311] {
            let Packet::ConnAck(c) = accepted(Some(v), &frame(0x20, &[0, rc])) else {
                panic!()
            };
            assert_eq!(c.code, ReasonCode(v5));
            assert_eq!(c.code.to_v3_connack(), rc);
        }
    }
}

#[test]
fn empty_suback_and_unsuback() {
    refused(
        Some(V311),
        &frame(0x90, &[0, 1]),
        DecodeError::Protocol("SUBACK without reason codes"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &frame(0xB0, &[0, 1, 0]),
        DecodeError::Protocol("UNSUBACK without reason codes"),
        PROTOCOL,
    );
}

// ---- SUBSCRIBE / UNSUBSCRIBE ----

#[test]
fn subscribe_without_filters() {
    refused(
        Some(V311),
        &frame(0x82, &[0, 1]),
        DecodeError::Protocol("SUBSCRIBE without topic filters"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &frame(0x82, &[0, 1, 0]),
        DecodeError::Protocol("SUBSCRIBE without topic filters"),
        PROTOCOL,
    );
}

#[test]
fn unsubscribe_without_filters() {
    refused(
        Some(V311),
        &frame(0xA2, &[0, 1]),
        DecodeError::Protocol("UNSUBSCRIBE without topic filters"),
        PROTOCOL,
    );
}

#[test]
fn subscribe_packet_identifier_zero() {
    refused(
        Some(V311),
        &frame(0x82, &[0, 0, 0, 1, b'a', 0]),
        DecodeError::Protocol("packet identifier 0"),
        PROTOCOL,
    );
    refused(
        Some(V311),
        &frame(0xA2, &[0, 0, 0, 1, b'a']),
        DecodeError::Protocol("packet identifier 0"),
        PROTOCOL,
    );
}

#[test]
fn subscribe_bad_filters() {
    let cases: [(&[u8], &str); 6] = [
        (b"", "empty topic"),
        (b"a/#/b", "'#' not the last level"),
        (b"a#", "'#' not alone in its level"),
        (b"a/b+", "'+' not alone in its level"),
        (b"$share//a", "shared subscription with an empty share name"),
        (b"$share/g", "shared subscription without a topic filter"),
    ];
    for (filter, why) in cases {
        let mut body = vec![0, 1, 0, filter.len() as u8];
        body.extend_from_slice(filter);
        body.push(0);
        refused(
            Some(V311),
            &frame(0x82, &body),
            DecodeError::TopicFilterInvalid(why),
            0x81,
        );
        body.pop();
        refused(
            Some(V311),
            &frame(0xA2, &body),
            DecodeError::TopicFilterInvalid(why),
            0x81,
        );
    }
}

#[test]
fn subscribe_truncated_options() {
    refused(
        Some(V311),
        &frame(0x82, &[0, 1, 0, 1, b'a']),
        DecodeError::Malformed("packet truncated"),
        MALFORMED,
    );
}

#[test]
fn subscription_options_reserved_bits() {
    let bad = DecodeError::Malformed("reserved subscription option bits set");
    refused(
        Some(V311),
        &frame(0x82, &[0, 1, 0, 1, b'a', 0x04]),
        bad.clone(),
        MALFORMED,
    );
    refused(
        Some(V5),
        &frame(0x82, &[0, 1, 0, 0, 1, b'a', 0x40]),
        bad.clone(),
        MALFORMED,
    );
    refused(
        Some(V5),
        &frame(0x82, &[0, 1, 0, 0, 1, b'a', 0x80]),
        bad,
        MALFORMED,
    );
}

#[test]
fn subscription_qos_3() {
    refused(
        Some(V311),
        &frame(0x82, &[0, 1, 0, 1, b'a', 0x03]),
        DecodeError::Malformed("subscription QoS 3"),
        MALFORMED,
    );
    refused(
        Some(V5),
        &frame(0x82, &[0, 1, 0, 0, 1, b'a', 0x03]),
        DecodeError::Protocol("subscription QoS 3"),
        PROTOCOL,
    );
}

#[test]
fn subscription_retain_handling_3() {
    refused(
        Some(V5),
        &frame(0x82, &[0, 1, 0, 0, 1, b'a', 0x30]),
        DecodeError::Protocol("retain handling 3"),
        PROTOCOL,
    );
}

#[test]
fn subscription_no_local_on_shared() {
    let mut body = vec![0, 1, 0, 0, 11];
    body.extend_from_slice(b"$share/g/ab");
    body.push(0x04);
    refused(
        Some(V5),
        &frame(0x82, &body),
        DecodeError::Protocol("no local on a shared subscription"),
        PROTOCOL,
    );
}

// ---- CONNECT ----

#[test]
fn connect_protocol_name_and_level() {
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 3, 0x02, &[0, 0])),
        DecodeError::UnsupportedProtocolVersion(3),
        0x84,
    );
    refused(
        None,
        &frame(0x10, &connect_body(b"MQIsdp", 4, 0x02, &[0, 0])),
        DecodeError::UnsupportedProtocolVersion(4),
        0x84,
    );
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 6, 0x02, &[0, 0])),
        DecodeError::UnsupportedProtocolVersion(6),
        0x84,
    );
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTX", 4, 0x02, &[0, 0])),
        DecodeError::Protocol("unknown protocol name"),
        PROTOCOL,
    );
    for (name, level, v) in [(&b"MQIsdp"[..], 3, V31), (b"MQTT", 4, V311)] {
        let mut dec = Decoder::new(1024);
        let p = dec
            .decode(&mut BytesMut::from(
                &frame(0x10, &connect_body(name, level, 0x02, &[0, 1, b'c']))[..],
            ))
            .unwrap()
            .unwrap();
        let Packet::Connect(c) = p else { panic!() };
        assert_eq!(c.protocol, v);
        assert_eq!(dec.version(), Some(v));
    }
}

#[test]
fn connect_reserved_flag() {
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x03, &[0, 0])),
        DecodeError::Malformed("reserved CONNECT flag set"),
        MALFORMED,
    );
}

#[test]
fn connect_will_flags_without_will() {
    let want = DecodeError::Malformed("will QoS or retain without will flag");
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02 | 0x08, &[0, 0])),
        want.clone(),
        MALFORMED,
    );
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02 | 0x20, &[0, 0])),
        want,
        MALFORMED,
    );
}

#[test]
fn connect_will_qos_3() {
    let rest = [0, 0, 0, 1, b't', 0, 0];
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x04 | 0x18, &rest)),
        DecodeError::Malformed("will QoS 3"),
        MALFORMED,
    );
}

#[test]
fn connect_will_topic_with_wildcard() {
    let rest = [0, 0, 0, 1, b'#', 0, 0];
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x04, &rest)),
        DecodeError::TopicNameInvalid("wildcard in topic name"),
        0x90,
    );
}

#[test]
fn connect_password_without_username() {
    let rest = [0, 0, 0, 2, b'p', b'w'];
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x40, &rest)),
        DecodeError::Malformed("password flag without user name flag"),
        MALFORMED,
    );
    refused(
        None,
        &frame(0x10, &connect_body(b"MQIsdp", 3, 0x40, &rest)),
        DecodeError::Malformed("password flag without user name flag"),
        MALFORMED,
    );
    // MQTT 5 allows it (§3.1.2.9).
    let rest5 = [0, 0, 0, 0, 2, b'p', b'w'];
    let Packet::Connect(c) = accepted(None, &frame(0x10, &connect_body(b"MQTT", 5, 0x40, &rest5)))
    else {
        panic!()
    };
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(c.username, None);
}

#[test]
fn connect_truncated() {
    let t = DecodeError::Malformed("packet truncated");
    refused(
        None,
        &frame(0x10, &[0, 4, b'M', b'Q']),
        t.clone(),
        MALFORMED,
    );
    // The user name flag promises a user name that is not there.
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x80, &[0, 0])),
        t.clone(),
        MALFORMED,
    );
    // The will flag promises a will topic and payload.
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x04, &[0, 0, 0, 1, b't'])),
        t,
        MALFORMED,
    );
}

#[test]
fn connect_client_id_invalid_utf8() {
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x02, &[0, 1, 0xFF])),
        DecodeError::Malformed("invalid UTF-8 string"),
        MALFORMED,
    );
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 4, 0x82, &[0, 0, 0, 1, 0])),
        DecodeError::Malformed("string contains U+0000"),
        MALFORMED,
    );
}

// ---- properties ----

/// A v5 PUBACK with reason code 0 and the given property bytes.
fn puback_with(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, 0, props.len() as u8];
    body.extend_from_slice(props);
    frame(0x40, &body)
}

fn publish_with(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, b't', props.len() as u8];
    body.extend_from_slice(props);
    frame(0x30, &body)
}

#[test]
fn unknown_property_identifier() {
    for ident in [
        0x00u8, 0x04, 0x05, 0x0A, 0x10, 0x14, 0x1B, 0x1D, 0x20, 0x2B, 0x7F,
    ] {
        refused(
            Some(V5),
            &puback_with(&[ident, 0]),
            DecodeError::Malformed("unknown property identifier"),
            MALFORMED,
        );
    }
}

/// MQTT 5 §2.2.2.2: an identifier not valid for its packet type makes a Malformed Packet
/// (0x81), not a Protocol Error.
#[test]
fn property_not_allowed_in_packet() {
    let want = DecodeError::Malformed("property not allowed in this packet");
    // Topic alias outside PUBLISH.
    refused(
        Some(V5),
        &puback_with(&[0x23, 0, 1]),
        want.clone(),
        MALFORMED,
    );
    // Session expiry in PUBLISH.
    refused(
        Some(V5),
        &publish_with(&[0x11, 0, 0, 0, 1]),
        want.clone(),
        MALFORMED,
    );
    // Will delay interval in CONNECT properties rather than will properties.
    refused(
        None,
        &frame(
            0x10,
            &connect_body(b"MQTT", 5, 0x02, &[5, 0x18, 0, 0, 0, 1, 0, 0]),
        ),
        want.clone(),
        MALFORMED,
    );
    // Topic alias in will properties.
    refused(
        None,
        &frame(
            0x10,
            &connect_body(
                b"MQTT",
                5,
                0x06,
                &[0, 0, 0, 3, 0x23, 0, 1, 0, 1, b't', 0, 0],
            ),
        ),
        want.clone(),
        MALFORMED,
    );
    // Maximum QoS (CONNACK only) in DISCONNECT.
    refused(Some(V5), &frame(0xE0, &[0, 2, 0x24, 0]), want, MALFORMED);
}

#[test]
fn duplicate_property() {
    let want = DecodeError::Protocol("property included more than once");
    refused(
        Some(V5),
        &publish_with(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
        want.clone(),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &puback_with(&[0x1F, 0, 1, b'a', 0x1F, 0, 1, b'b']),
        want.clone(),
        PROTOCOL,
    );
    // Only PUBLISH may repeat the subscription identifier.
    refused(
        Some(V5),
        &frame(0x82, &[0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0]),
        want,
        PROTOCOL,
    );
    // User properties repeat; PUBLISH may carry several subscription identifiers.
    accepted(
        Some(V5),
        &puback_with(&[0x26, 0, 1, b'k', 0, 0, 0x26, 0, 1, b'k', 0, 0]),
    );
    let Packet::Publish(p) = accepted(Some(V5), &publish_with(&[0x0B, 1, 0x0B, 0x80, 0x01])) else {
        panic!()
    };
    assert_eq!(p.properties.unwrap().subscription_identifiers, vec![1, 128]);
}

#[test]
fn property_values_out_of_range() {
    refused(
        Some(V5),
        &publish_with(&[0x0B, 0]),
        DecodeError::Protocol("subscription identifier 0"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &publish_with(&[0x23, 0, 0]),
        DecodeError::Protocol("topic alias 0"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &publish_with(&[0x01, 2]),
        DecodeError::Protocol("payload format indicator not 0 or 1"),
        PROTOCOL,
    );
    refused(
        None,
        &frame(
            0x10,
            &connect_body(b"MQTT", 5, 0x02, &[3, 0x21, 0, 0, 0, 0]),
        ),
        DecodeError::Protocol("receive maximum 0"),
        PROTOCOL,
    );
    refused(
        None,
        &frame(
            0x10,
            &connect_body(b"MQTT", 5, 0x02, &[5, 0x27, 0, 0, 0, 0, 0, 0]),
        ),
        DecodeError::Protocol("maximum packet size 0"),
        PROTOCOL,
    );
    refused(
        None,
        &frame(0x10, &connect_body(b"MQTT", 5, 0x02, &[2, 0x17, 2, 0, 0])),
        DecodeError::Protocol("request problem information not 0 or 1"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &frame(0x20, &[0, 0, 2, 0x24, 2]),
        DecodeError::Protocol("maximum QoS not 0 or 1"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &frame(0x20, &[0, 0, 2, 0x25, 7]),
        DecodeError::Protocol("retain available not 0 or 1"),
        PROTOCOL,
    );
}

#[test]
fn property_value_truncated() {
    // A four-byte integer with two bytes inside the property length.
    refused(
        Some(V5),
        &publish_with(&[0x02, 0, 0]),
        DecodeError::Malformed("packet truncated"),
        MALFORMED,
    );
    // A string property whose length runs past the property list.
    refused(
        Some(V5),
        &puback_with(&[0x1F, 0, 9, b'a']),
        DecodeError::Malformed("packet truncated"),
        MALFORMED,
    );
}

#[test]
fn property_variable_byte_integer_too_long() {
    refused(
        Some(V5),
        &publish_with(&[0x0B, 0x80, 0x80, 0x80, 0x80, 0x01]),
        DecodeError::Malformed("variable byte integer longer than 4 bytes"),
        MALFORMED,
    );
    refused(
        Some(V5),
        &publish_with(&[0x0B, 0x81, 0x00]),
        DecodeError::Malformed("variable byte integer not minimally encoded"),
        MALFORMED,
    );
}

#[test]
fn property_string_invalid_utf8() {
    refused(
        Some(V5),
        &puback_with(&[0x1F, 0, 1, 0xFF]),
        DecodeError::Malformed("invalid UTF-8 string"),
        MALFORMED,
    );
    refused(
        Some(V5),
        &puback_with(&[0x26, 0, 1, b'k', 0, 1, 0]),
        DecodeError::Malformed("string contains U+0000"),
        MALFORMED,
    );
}

#[test]
fn response_topic_with_wildcard() {
    refused(
        Some(V5),
        &publish_with(&[0x08, 0, 1, b'#']),
        DecodeError::Protocol("response topic is not a topic name"),
        PROTOCOL,
    );
}

// ---- encoder refusals ----

#[test]
fn encoder_refuses_invalid_packets() {
    let mut out = BytesMut::new();
    let wild = Packet::Publish(Publish {
        topic: "a/#".into(),
        ..Publish::default()
    });
    assert_eq!(
        encode(&wild, V311, &mut out),
        Err(EncodeError::Invalid("wildcard in topic name"))
    );
    let pkid0 = Packet::Publish(Publish {
        topic: "a".into(),
        qos: QoS::AtLeastOnce,
        ..Publish::default()
    });
    assert_eq!(
        encode(&pkid0, V311, &mut out),
        Err(EncodeError::Invalid("packet identifier 0"))
    );
    assert_eq!(
        encode(&Packet::Auth(Auth::default()), V311, &mut out),
        Err(EncodeError::Invalid("AUTH exists only in MQTT 5"))
    );
    let alias_in_ack = Packet::PubAck(PubAck {
        pkid: 1,
        code: ReasonCode::SUCCESS,
        properties: Properties {
            topic_alias: Some(1),
            ..Properties::default()
        },
    });
    assert_eq!(
        encode(&alias_in_ack, V5, &mut out),
        Err(EncodeError::Invalid("property not allowed in this packet"))
    );
    let long = Packet::Publish(Publish {
        topic: "a".repeat(70_000).into(),
        ..Publish::default()
    });
    assert!(encode(&long, V311, &mut out).is_err());
    assert!(
        out.is_empty(),
        "a refused packet leaves the buffer as it was"
    );
}

#[test]
fn authentication_data_without_method() {
    refused(
        None,
        &frame(
            0x10,
            &connect_body(b"MQTT", 5, 0x02, &[4, 0x16, 0, 1, b'd', 0, 0]),
        ),
        DecodeError::Protocol("authentication data without authentication method"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &frame(0xF0, &[0x18, 0]),
        DecodeError::Protocol("AUTH without authentication method"),
        PROTOCOL,
    );
    refused(
        Some(V5),
        &frame(0xF0, &[0x18, 4, 0x16, 0, 1, b'd']),
        DecodeError::Protocol("AUTH without authentication method"),
        PROTOCOL,
    );
    let mut out = BytesMut::new();
    let auth = Packet::Auth(Auth {
        code: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties::default(),
    });
    assert_eq!(
        encode(&auth, V5, &mut out),
        Err(EncodeError::Invalid("AUTH without authentication method"))
    );
}
