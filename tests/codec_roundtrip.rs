//! Round trips: every packet type in every protocol version, with and without each
//! property, through `encode`, `encoded_len` and the incremental `Decoder`.

use bytes::{Bytes, BytesMut};
use turbomqtt::codec::*;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V31,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];

/// Encodes, checks `encoded_len`, then decodes from every prefix (incomplete: `None`,
/// nothing consumed) and from the whole frame (equal packet, buffer drained).
fn roundtrip(packet: &Packet, version: ProtocolVersion) -> Bytes {
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).unwrap_or_else(|e| panic!("{packet:?} {version:?}: {e}"));
    assert_eq!(out.len(), encoded_len(packet, version), "{packet:?}");
    let bytes = out.freeze();
    let mut dec = match packet {
        Packet::Connect(_) => Decoder::new(1 << 20),
        _ => Decoder::with_version(version, 1 << 20),
    };
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            None,
            "prefix {cut} of {packet:?}"
        );
        assert_eq!(buf.len(), cut);
    }
    let mut buf = BytesMut::from(&bytes[..]);
    buf.extend_from_slice(&[0xC0, 0x00]); // a following PINGREQ stays in the buffer
    let got = dec.decode(&mut buf).unwrap().expect("complete frame");
    assert_eq!(&got, packet, "{version:?}");
    assert_eq!(&buf[..], &[0xC0, 0x00]);
    if let Packet::Connect(c) = packet {
        assert_eq!(dec.version(), Some(c.protocol));
    }
    bytes
}

fn props_all_publish() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        content_type: Some("application/json".into()),
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        subscription_identifiers: vec![1, 268_435_455],
        topic_alias: Some(7),
        user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
        ..Properties::default()
    }
}

fn connect(protocol: ProtocolVersion, will: bool, user: bool, props: Properties) -> Packet {
    let v5 = protocol.is_v5();
    Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: true,
        keep_alive: 62,
        client_id: "client-1".into(),
        will: will.then(|| LastWill {
            topic: "last/will".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: if v5 {
                Properties {
                    will_delay_interval: Some(10),
                    message_expiry_interval: Some(20),
                    content_type: Some("text/plain".into()),
                    ..Properties::default()
                }
            } else {
                Properties::default()
            },
        }),
        username: user.then(|| "user".to_string()),
        password: user.then(|| Bytes::from_static(b"secret")),
        properties: props,
        bridge: false,
    }))
}

#[test]
fn connect_every_version() {
    for v in VERSIONS {
        for will in [false, true] {
            for user in [false, true] {
                roundtrip(&connect(v, will, user, Properties::default()), v);
            }
        }
    }
    let props = Properties {
        session_expiry_interval: Some(300),
        authentication_method: Some("SCRAM".into()),
        authentication_data: Some(Bytes::from_static(b"abc")),
        request_problem_information: Some(0),
        request_response_information: Some(1),
        receive_maximum: Some(20),
        topic_alias_maximum: Some(10),
        user_properties: vec![("a".into(), "b".into())],
        maximum_packet_size: Some(65536),
        ..Properties::default()
    };
    roundtrip(
        &connect(ProtocolVersion::V5, true, true, props),
        ProtocolVersion::V5,
    );
    // MQTT 5 allows a password without a user name.
    let mut c = connect(ProtocolVersion::V5, false, false, Properties::default());
    if let Packet::Connect(c) = &mut c {
        c.password = Some(Bytes::from_static(b"pw"));
    }
    roundtrip(&c, ProtocolVersion::V5);
}

#[test]
fn publish_every_version() {
    for v in VERSIONS {
        for (qos, pkid) in [
            (QoS::AtMostOnce, 0),
            (QoS::AtLeastOnce, 1),
            (QoS::ExactlyOnce, 65535),
        ] {
            for retain in [false, true] {
                for dup in [false, true] {
                    if dup && qos == QoS::AtMostOnce {
                        continue;
                    }
                    for payload in [&b""[..], b"hello", &[0u8; 300][..]] {
                        let p = Packet::Publish(Publish {
                            dup,
                            qos,
                            retain,
                            topic: "a/b/c".into(),
                            pkid,
                            properties: None,
                            payload: Bytes::copy_from_slice(payload),
                        });
                        roundtrip(&p, v);
                    }
                }
            }
        }
    }
    let p = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "t".into(),
        pkid: 5,
        properties: Some(Box::new(props_all_publish())),
        payload: Bytes::from_static(b"{}"),
        ..Publish::default()
    });
    roundtrip(&p, ProtocolVersion::V5);
    // An empty topic stands for an alias in MQTT 5.
    let p = Packet::Publish(Publish {
        topic: ByteStr::new(),
        properties: Some(Box::new(Properties {
            topic_alias: Some(3),
            ..Properties::default()
        })),
        payload: Bytes::from_static(b"x"),
        ..Publish::default()
    });
    roundtrip(&p, ProtocolVersion::V5);
}

#[test]
fn acks_every_version() {
    for v in VERSIONS {
        let a = PubAck {
            pkid: 10,
            ..PubAck::default()
        };
        roundtrip(&Packet::PubAck(a.clone()), v);
        roundtrip(&Packet::PubRec(a.clone()), v);
        roundtrip(&Packet::PubRel(a.clone()), v);
        roundtrip(&Packet::PubComp(a), v);
        roundtrip(&Packet::PingReq, v);
        roundtrip(&Packet::PingResp, v);
        roundtrip(&Packet::Disconnect(Disconnect::default()), v);
        for code in [0u8, 1, 2, 3, 4, 5] {
            let c = ConnAck {
                session_present: code == 0 && v != ProtocolVersion::V31,
                code: ReasonCode::from_v3_connack(code).unwrap(),
                properties: Properties::default(),
            };
            roundtrip(&Packet::ConnAck(c), v);
        }
        let s = Subscribe {
            pkid: 1,
            filters: vec![
                SubscribeFilter {
                    filter: "a/+".into(),
                    options: SubscribeOptions {
                        qos: QoS::ExactlyOnce,
                        ..Default::default()
                    },
                },
                SubscribeFilter {
                    filter: "b/#".into(),
                    options: SubscribeOptions::default(),
                },
            ],
            properties: Properties::default(),
        };
        roundtrip(&Packet::Subscribe(s), v);
        let s = SubAck {
            pkid: 1,
            codes: vec![
                ReasonCode::GRANTED_QOS_2,
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::UNSPECIFIED_ERROR,
            ],
            properties: Properties::default(),
        };
        roundtrip(&Packet::SubAck(s), v);
        let u = Unsubscribe {
            pkid: 2,
            filters: vec!["a/+".into(), "c".into()],
            properties: Properties::default(),
        };
        roundtrip(&Packet::Unsubscribe(u), v);
        let codes = if v.is_v5() {
            vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
        } else {
            vec![]
        };
        roundtrip(
            &Packet::UnsubAck(UnsubAck {
                pkid: 2,
                codes,
                properties: Properties::default(),
            }),
            v,
        );
    }
    roundtrip(&Packet::Auth(Auth::default()), ProtocolVersion::V5);
}

/// A `Properties` with only the property `id` set, to a value away from its default.
fn only(id: u8) -> Properties {
    let mut p = Properties::default();
    match id {
        0x01 => p.payload_format_indicator = Some(1),
        0x02 => p.message_expiry_interval = Some(0xDEAD_BEEF),
        0x03 => p.content_type = Some("text/plain; charset=utf-8".into()),
        0x08 => p.response_topic = Some("réponse/ici".into()),
        0x09 => p.correlation_data = Some(Bytes::from_static(b"\x00\xFFcorr")),
        0x0B => p.subscription_identifiers = vec![16_384],
        0x11 => p.session_expiry_interval = Some(u32::MAX),
        0x12 => p.assigned_client_identifier = Some("auto-1234".into()),
        0x13 => p.server_keep_alive = Some(30),
        0x15 => p.authentication_method = Some("SCRAM-SHA-1".into()),
        0x16 => p.authentication_data = Some(Bytes::from_static(b"challenge")),
        0x17 => p.request_problem_information = Some(0),
        0x18 => p.will_delay_interval = Some(60),
        0x19 => p.request_response_information = Some(1),
        0x1A => p.response_information = Some("resp/".into()),
        0x1C => p.server_reference = Some("other.example:1883".into()),
        0x1F => p.reason_string = Some("because".into()),
        0x21 => p.receive_maximum = Some(65_535),
        0x22 => p.topic_alias_maximum = Some(0),
        0x23 => p.topic_alias = Some(65_535),
        0x24 => p.maximum_qos = Some(1),
        0x25 => p.retain_available = Some(0),
        0x26 => p.user_properties = vec![("ключ".into(), "".into())],
        0x27 => p.maximum_packet_size = Some(1),
        0x28 => p.wildcard_subscription_available = Some(0),
        0x29 => p.subscription_identifier_available = Some(1),
        0x2A => p.shared_subscription_available = Some(0),
        _ => unreachable!(),
    }
    p
}

const CONNECT_PROPS: &[u8] = &[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27];
const CONNACK_PROPS: &[u8] = &[
    0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2A,
];
const PUBLISH_PROPS: &[u8] = &[0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26];
const WILL_PROPS: &[u8] = &[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26];
const ACK_PROPS: &[u8] = &[0x1F, 0x26];
const SUBSCRIBE_PROPS: &[u8] = &[0x0B, 0x26];
const UNSUBSCRIBE_PROPS: &[u8] = &[0x26];
const DISCONNECT_PROPS: &[u8] = &[0x11, 0x1C, 0x1F, 0x26];
const AUTH_PROPS: &[u8] = &[0x15, 0x16, 0x1F, 0x26];

/// Each v5 packet with each property it may carry, one at a time, and with all of them.
#[test]
fn every_property_in_every_packet_that_allows_it() {
    let v = ProtocolVersion::V5;
    let all = |ids: &[u8]| {
        let mut p = Properties::default();
        for &id in ids {
            let o = only(id);
            macro_rules! take { ($($f:ident),*) => { $( if o.$f.is_some() { p.$f = o.$f.clone(); } )* }; }
            take!(
                payload_format_indicator,
                message_expiry_interval,
                content_type,
                response_topic,
                correlation_data,
                session_expiry_interval,
                assigned_client_identifier,
                server_keep_alive,
                authentication_method,
                authentication_data,
                request_problem_information,
                will_delay_interval,
                request_response_information,
                response_information,
                server_reference,
                reason_string,
                receive_maximum,
                topic_alias_maximum,
                topic_alias,
                maximum_qos,
                retain_available,
                maximum_packet_size,
                wildcard_subscription_available,
                subscription_identifier_available,
                shared_subscription_available
            );
            p.subscription_identifiers
                .extend(o.subscription_identifiers);
            p.user_properties.extend(o.user_properties);
        }
        p
    };
    let mut sets: Vec<(&[u8], Properties)> = Vec::new();
    for table in [
        CONNECT_PROPS,
        CONNACK_PROPS,
        PUBLISH_PROPS,
        WILL_PROPS,
        ACK_PROPS,
        SUBSCRIBE_PROPS,
        UNSUBSCRIBE_PROPS,
        DISCONNECT_PROPS,
        AUTH_PROPS,
    ] {
        for &id in table {
            sets.push((table, only(id)));
        }
        sets.push((table, all(table)));
        sets.push((table, Properties::default()));
    }
    let mut count = 0;
    for (table, props) in sets {
        let packets: Vec<Packet> = if table == CONNECT_PROPS {
            let mut props = props;
            if props.authentication_data.is_some() {
                props.authentication_method = Some("SCRAM-SHA-1".into());
            }
            vec![connect(v, true, true, props)]
        } else if table == WILL_PROPS {
            let mut c = connect(v, true, false, Properties::default());
            if let Packet::Connect(c) = &mut c {
                c.will.as_mut().unwrap().properties = props;
            }
            vec![c]
        } else if table == CONNACK_PROPS {
            vec![Packet::ConnAck(ConnAck {
                session_present: true,
                code: ReasonCode::SUCCESS,
                properties: props,
            })]
        } else if table == PUBLISH_PROPS {
            vec![Packet::Publish(Publish {
                qos: QoS::ExactlyOnce,
                pkid: 9,
                topic: "t/u".into(),
                properties: (!props.is_empty()).then(|| Box::new(props)),
                payload: Bytes::from_static(b"payload"),
                ..Publish::default()
            })]
        } else if table == ACK_PROPS {
            let a = PubAck {
                pkid: 3,
                code: ReasonCode::SUCCESS,
                properties: props.clone(),
            };
            let e = PubAck {
                pkid: 3,
                code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                properties: props.clone(),
            };
            let n = PubAck {
                pkid: 3,
                code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
                properties: props.clone(),
            };
            vec![
                Packet::PubAck(n.clone()),
                Packet::PubAck(a.clone()),
                Packet::PubRec(n),
                Packet::PubRel(e.clone()),
                Packet::PubComp(e),
                Packet::PubComp(a),
                Packet::SubAck(SubAck {
                    pkid: 4,
                    codes: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::TOPIC_FILTER_INVALID],
                    properties: props.clone(),
                }),
                Packet::UnsubAck(UnsubAck {
                    pkid: 4,
                    codes: vec![ReasonCode::SUCCESS],
                    properties: props,
                }),
            ]
        } else if table == SUBSCRIBE_PROPS {
            vec![Packet::Subscribe(Subscribe {
                pkid: 7,
                filters: vec![
                    SubscribeFilter {
                        filter: "a/#".into(),
                        options: SubscribeOptions {
                            qos: QoS::AtLeastOnce,
                            no_local: true,
                            retain_as_published: true,
                            retain_handling: RetainHandling::DoNotSend,
                        },
                    },
                    SubscribeFilter {
                        filter: "$share/g/b".into(),
                        options: SubscribeOptions {
                            retain_handling: RetainHandling::OnNewSubscribe,
                            ..Default::default()
                        },
                    },
                ],
                properties: props,
            })]
        } else if table == UNSUBSCRIBE_PROPS {
            vec![Packet::Unsubscribe(Unsubscribe {
                pkid: 7,
                filters: vec!["a/#".into()],
                properties: props,
            })]
        } else if table == DISCONNECT_PROPS {
            vec![
                Packet::Disconnect(Disconnect {
                    code: ReasonCode::SUCCESS,
                    properties: props.clone(),
                }),
                Packet::Disconnect(Disconnect {
                    code: ReasonCode::SERVER_MOVED,
                    properties: props,
                }),
            ]
        } else {
            // Every AUTH but the bare Success form names its method (§3.15.2.2.2).
            let mut props = props;
            props
                .authentication_method
                .get_or_insert_with(|| "SCRAM-SHA-1".into());
            vec![
                Packet::Auth(Auth {
                    code: ReasonCode::CONTINUE_AUTHENTICATION,
                    properties: props.clone(),
                }),
                Packet::Auth(Auth {
                    code: ReasonCode::RE_AUTHENTICATE,
                    properties: props.clone(),
                }),
                Packet::Auth(Auth {
                    code: ReasonCode::SUCCESS,
                    properties: props,
                }),
            ]
        };
        for p in packets {
            roundtrip(&p, v);
            count += 1;
        }
    }
    assert!(count > 100);
}

/// MQTT 5 §1.5.5 / 3.1.1 §2.2.3: the remaining-length table, decoded from fixed headers
/// (a maximum packet size of 0 makes the decoder report the size it read) and encoded
/// through PUBLISH packets of those lengths where the size is reasonable.
#[test]
fn spec_remaining_length_examples() {
    let table: [(usize, &[u8]); 8] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for (value, bytes) in table {
        let mut header = vec![0x30];
        header.extend_from_slice(bytes);
        let mut dec = Decoder::with_version(ProtocolVersion::V311, 0);
        let err = dec.decode(&mut BytesMut::from(&header[..])).unwrap_err();
        assert_eq!(
            err,
            DecodeError::PacketTooLarge {
                size: 1 + bytes.len() + value,
                max: 0
            }
        );
        if (3..=2_097_152).contains(&value) {
            // topic "t" (3 bytes) + payload
            let p = Packet::Publish(Publish {
                topic: "t".into(),
                payload: Bytes::from(vec![0u8; value - 3]),
                ..Publish::default()
            });
            let mut out = BytesMut::new();
            encode(&p, ProtocolVersion::V311, &mut out).unwrap();
            assert_eq!(&out[1..1 + bytes.len()], bytes, "{value}");
        }
    }
}

/// The CONNECT variable header examples: MQTT 3.1.1 §3.1.2.10 and MQTT 5 §3.1.2.11
/// (user name, password, will QoS 1, will flag, clean start; keep alive 10; v5 session
/// expiry interval 10).
#[test]
fn spec_connect_examples() {
    for (v, header) in [
        (ProtocolVersion::V311, &b"\x00\x04MQTT\x04\xce\x00\x0a"[..]),
        (
            ProtocolVersion::V5,
            &b"\x00\x04MQTT\x05\xce\x00\x0a\x05\x11\x00\x00\x00\x0a"[..],
        ),
    ] {
        let p = Packet::Connect(Box::new(Connect {
            protocol: v,
            clean_start: true,
            keep_alive: 10,
            client_id: "c".into(),
            will: Some(LastWill {
                topic: "w".into(),
                payload: Bytes::from_static(b"x"),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::default(),
            }),
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"p")),
            properties: Properties {
                session_expiry_interval: v.is_v5().then_some(10),
                ..Properties::default()
            },
            bridge: false,
        }));
        let bytes = roundtrip(&p, v);
        assert_eq!(&bytes[2..2 + header.len()], header);
    }
}

/// mosquitto's bridge bit (paho-mqtt's `enable_bridge_mode()`): 0x80 on the protocol
/// level, in every version, and read back as the same version with `bridge` set.
#[test]
fn connect_with_the_bridge_bit() {
    for v in VERSIONS {
        let Packet::Connect(mut c) = connect(v, true, true, Properties::default()) else {
            unreachable!()
        };
        c.bridge = true;
        let p = Packet::Connect(c);
        let bytes = roundtrip(&p, v);
        let name_len = if v == ProtocolVersion::V31 { 6 } else { 4 };
        assert_eq!(bytes[2 + 2 + name_len], v as u8 | 0x80);
    }
    // A plain CONNECT keeps the bare level.
    let bytes = roundtrip(
        &connect(ProtocolVersion::V311, false, false, Properties::default()),
        ProtocolVersion::V311,
    );
    assert_eq!(bytes[8], 4);
}

/// MQTT 5 §1.5.4 example: "A𪛔" is 00 05 41 F0 AA 9B 94; and 3.1.1 §3.3.2.3's PUBLISH
/// variable header example, topic "a/b" with packet identifier 10.
#[test]
fn spec_string_and_publish_examples() {
    let mut buf = BytesMut::from(&b"\x32\x0a\x00\x05\x41\xF0\xAA\x9B\x94\x00\x0a\x00"[..]);
    let mut dec = Decoder::with_version(ProtocolVersion::V5, 1024);
    let Some(Packet::Publish(p)) = dec.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(&*p.topic, "A\u{2A6D4}");
    assert_eq!(p.pkid, 10);
    let p = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "a/b".into(),
        pkid: 10,
        ..Publish::default()
    });
    let bytes = roundtrip(&p, ProtocolVersion::V311);
    assert_eq!(&bytes[2..], b"\x00\x03\x61\x2F\x62\x00\x0A");
}

/// The minimal encodings paho-mqtt 2.2.0 writes.
#[test]
fn paho_minimal_encodings() {
    let enc = |p: &Packet, v| {
        let mut out = BytesMut::new();
        encode(p, v, &mut out).unwrap();
        out.to_vec()
    };
    let v5 = ProtocolVersion::V5;
    assert_eq!(
        enc(&Packet::Disconnect(Disconnect::default()), v5),
        [0xE0, 0x00]
    );
    assert_eq!(
        enc(
            &Packet::Disconnect(Disconnect {
                code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
                ..Default::default()
            }),
            v5
        ),
        [0xE0, 0x01, 0x04]
    );
    assert_eq!(
        enc(
            &Packet::PubAck(PubAck {
                pkid: 258,
                ..Default::default()
            }),
            v5
        ),
        [0x40, 0x02, 0x01, 0x02]
    );
    assert_eq!(
        enc(
            &Packet::PubRel(PubAck {
                pkid: 1,
                ..Default::default()
            }),
            v5
        ),
        [0x62, 0x02, 0x00, 0x01]
    );
    assert_eq!(
        enc(
            &Packet::PubRec(PubAck {
                pkid: 1,
                code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
                ..Default::default()
            }),
            v5
        ),
        [0x50, 0x03, 0x00, 0x01, 0x10]
    );
    assert_eq!(enc(&Packet::PingReq, v5), [0xC0, 0x00]);
    // v5 PUBLISH without properties still carries the empty property length.
    let p = Packet::Publish(Publish {
        topic: "t".into(),
        payload: Bytes::from_static(b"x"),
        ..Publish::default()
    });
    assert_eq!(enc(&p, v5), [0x30, 0x05, 0x00, 0x01, b't', 0x00, b'x']);
    assert_eq!(
        enc(&p, ProtocolVersion::V311),
        [0x30, 0x04, 0x00, 0x01, b't', b'x']
    );
    // v3 CONNACK maps the v5 code back to its return code.
    let c = Packet::ConnAck(ConnAck {
        code: ReasonCode::NOT_AUTHORIZED,
        ..Default::default()
    });
    assert_eq!(enc(&c, ProtocolVersion::V311), [0x20, 0x02, 0x00, 0x05]);
    assert_eq!(enc(&c, v5), [0x20, 0x03, 0x00, 0x87, 0x00]);
    // A refusal never carries session present ([MQTT-3.2.2-4]).
    let c = Packet::ConnAck(ConnAck {
        session_present: true,
        code: ReasonCode::BANNED,
        ..Default::default()
    });
    assert_eq!(enc(&c, ProtocolVersion::V311), [0x20, 0x02, 0x00, 0x05]);
    assert_eq!(enc(&c, v5), [0x20, 0x03, 0x00, 0x8A, 0x00]);
    // v3 SUBACK: every v5 failure is 0x80.
    let s = Packet::SubAck(SubAck {
        pkid: 1,
        codes: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED],
        ..Default::default()
    });
    assert_eq!(
        enc(&s, ProtocolVersion::V311),
        [0x90, 0x04, 0x00, 0x01, 0x01, 0x80]
    );
}

#[test]
fn decoded_publish_shares_the_read_buffer() {
    let mut buf = BytesMut::new();
    let p = Packet::Publish(Publish {
        topic: "a/b".into(),
        payload: Bytes::from(vec![7u8; 100]),
        ..Publish::default()
    });
    encode(&p, ProtocolVersion::V311, &mut buf).unwrap();
    let base = buf.as_ptr() as usize;
    let mut dec = Decoder::with_version(ProtocolVersion::V311, 1024);
    let Some(Packet::Publish(got)) = dec.decode(&mut buf).unwrap() else {
        panic!()
    };
    // Topic and payload point into the original allocation: sliced, not copied.
    assert_eq!(got.topic.as_ptr() as usize, base + 4);
    assert_eq!(got.payload.as_ptr() as usize, base + 7);
}

#[test]
fn several_packets_in_one_buffer() {
    let mut buf = BytesMut::new();
    let v = ProtocolVersion::V5;
    let packets = [
        Packet::Publish(Publish {
            topic: "a".into(),
            payload: Bytes::from_static(b"1"),
            ..Publish::default()
        }),
        Packet::PubAck(PubAck {
            pkid: 1,
            ..Default::default()
        }),
        Packet::PingResp,
        Packet::Disconnect(Disconnect::default()),
    ];
    for p in &packets {
        encode(p, v, &mut buf).unwrap();
    }
    let mut dec = Decoder::with_version(v, 1024);
    for p in &packets {
        assert_eq!(dec.decode(&mut buf).unwrap().as_ref(), Some(p));
    }
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
}

/// Every reason code (MQTT 5 §2.4): each one a packet may carry round-trips in it, every
/// other byte is refused as a protocol error.
#[test]
fn every_reason_code_in_every_packet() {
    let v = ProtocolVersion::V5;
    let connack: &[u8] = &[
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
        0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
    ];
    let puback: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
    let pubrel: &[u8] = &[0x00, 0x92];
    let suback: &[u8] = &[
        0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
    ];
    let unsuback: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
    let disconnect: &[u8] = &[
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
        0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    ];
    let auth: &[u8] = &[0x00, 0x18, 0x19];
    let method = Properties {
        authentication_method: Some("m".into()),
        ..Properties::default()
    };
    type Make = Box<dyn Fn(ReasonCode) -> Packet>;
    type Kind<'a> = (&'a [u8], Make, fn(u8) -> Vec<u8>);
    let kinds: Vec<Kind> = vec![
        (
            connack,
            Box::new(|c| {
                Packet::ConnAck(ConnAck {
                    code: c,
                    ..Default::default()
                })
            }),
            |c| vec![0x20, 3, 0, c, 0],
        ),
        (
            puback,
            Box::new(|c| {
                Packet::PubAck(PubAck {
                    pkid: 1,
                    code: c,
                    ..Default::default()
                })
            }),
            |c| vec![0x40, 3, 0, 1, c],
        ),
        (
            puback,
            Box::new(|c| {
                Packet::PubRec(PubAck {
                    pkid: 1,
                    code: c,
                    ..Default::default()
                })
            }),
            |c| vec![0x50, 3, 0, 1, c],
        ),
        (
            pubrel,
            Box::new(|c| {
                Packet::PubRel(PubAck {
                    pkid: 1,
                    code: c,
                    ..Default::default()
                })
            }),
            |c| vec![0x62, 3, 0, 1, c],
        ),
        (
            pubrel,
            Box::new(|c| {
                Packet::PubComp(PubAck {
                    pkid: 1,
                    code: c,
                    ..Default::default()
                })
            }),
            |c| vec![0x70, 3, 0, 1, c],
        ),
        (
            suback,
            Box::new(|c| {
                Packet::SubAck(SubAck {
                    pkid: 1,
                    codes: vec![c],
                    ..Default::default()
                })
            }),
            |c| vec![0x90, 4, 0, 1, 0, c],
        ),
        (
            unsuback,
            Box::new(|c| {
                Packet::UnsubAck(UnsubAck {
                    pkid: 1,
                    codes: vec![c],
                    ..Default::default()
                })
            }),
            |c| vec![0xB0, 4, 0, 1, 0, c],
        ),
        (
            disconnect,
            Box::new(|c| {
                Packet::Disconnect(Disconnect {
                    code: c,
                    ..Default::default()
                })
            }),
            |c| vec![0xE0, 1, c],
        ),
        (
            auth,
            Box::new(move |c| {
                Packet::Auth(Auth {
                    code: c,
                    properties: method.clone(),
                })
            }),
            |c| vec![0xF0, 5, c, 3, 0x15, 0, 0],
        ),
    ];
    for (valid, make, raw) in kinds {
        for code in 0..=255u8 {
            if valid.contains(&code) {
                roundtrip(&make(ReasonCode(code)), v);
            } else {
                let mut dec = Decoder::with_version(v, 1024);
                let err = dec.decode(&mut BytesMut::from(&raw(code)[..])).unwrap_err();
                assert!(matches!(err, DecodeError::Protocol(_)), "{code:#x}: {err}");
                assert_eq!(err.reason_code(), ReasonCode::PROTOCOL_ERROR);
            }
        }
    }
}

#[test]
fn pre_v5_refusal_on_a_v5_connection_round_trips_byte_for_byte() {
    // A 3.1.1 server answers a v5 CONNECT with `20 02 00 01` (unacceptable protocol
    // version); the v5 decoder accepts it as code 1, and encoding must give the same bytes.
    let wire = [0x20, 0x02, 0x00, 0x01];
    let mut buf = BytesMut::from(&wire[..]);
    let packet = Decoder::with_version(ProtocolVersion::V5, u32::MAX)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    let Packet::ConnAck(ack) = &packet else {
        panic!("not a CONNACK: {packet:?}");
    };
    assert_eq!(ack.code, ReasonCode(0x01));
    let mut out = BytesMut::new();
    encode(&packet, ProtocolVersion::V5, &mut out).unwrap();
    assert_eq!(&out[..], &wire[..]);
    assert_eq!(encoded_len(&packet, ProtocolVersion::V5), wire.len());
}

#[test]
fn segmented_encoding_moves_large_payloads_out_without_a_copy() {
    let publish = |len: usize| {
        Packet::Publish(Publish {
            qos: QoS::AtLeastOnce,
            topic: ByteStr::from("seg/t"),
            pkid: 9,
            payload: Bytes::from(vec![5u8; len]),
            ..Default::default()
        })
    };
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let (small, large) = (publish(SEGMENT_PAYLOAD - 1), publish(SEGMENT_PAYLOAD));
        let mut out = BytesMut::new();
        let mut segments = Vec::new();
        encode_segmented(&Packet::PingReq, version, &mut out, &mut segments).unwrap();
        encode_segmented(&small, version, &mut out, &mut segments).unwrap();
        assert!(
            segments.is_empty(),
            "below the threshold: copied into the buffer"
        );
        encode_segmented(&large, version, &mut out, &mut segments).unwrap();
        encode_segmented(&Packet::PingResp, version, &mut out, &mut segments).unwrap();
        assert_eq!(segments.len(), 2);
        let Packet::Publish(p) = &large else {
            unreachable!()
        };
        assert_eq!(
            segments[1].as_ptr(),
            p.payload.as_ptr(),
            "the payload itself, not a copy"
        );
        // Written in order (segments, then the buffer), the bytes are the plain encoding.
        let mut written = BytesMut::new();
        for seg in &segments {
            written.extend_from_slice(seg);
        }
        written.extend_from_slice(&out);
        let mut expected = BytesMut::new();
        for packet in [&Packet::PingReq, &small, &large, &Packet::PingResp] {
            encode(packet, version, &mut expected).unwrap();
        }
        assert_eq!(written, expected);
    }
}
