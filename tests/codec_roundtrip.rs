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
