//! The client's session state machine driven by arbitrary input: server packets (raw
//! bytes through the decoder, and well-formed ones with arbitrary packet ids, QoS and
//! reason codes) interleaved with the application's calls (publish, subscribe, ack,
//! disconnect, reconnect, settings) and the connection task's (taking output, keepalive).
//! No sequence may panic: a bad server gets a `Close`, never a crash in the runtime.
#![no_main]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use turbomqtt::client::Session;
use turbomqtt::codec::{
    ConnAck, Connect, Decoder, Disconnect, Packet, Properties, ProtocolVersion, PubAck, Publish,
    QoS, ReasonCode, SubAck, SubscribeFilter, SubscribeOptions, UnsubAck,
};

/// Reads the fuzz input a byte at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn version(b: u8) -> ProtocolVersion {
    match b % 3 {
        0 => ProtocolVersion::V31,
        1 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    }
}

fn qos(b: u8) -> QoS {
    QoS::from_u8(b % 3).unwrap_or_default()
}

fn connect(v: ProtocolVersion, clean: bool) -> Connect {
    Connect {
        protocol: v,
        clean_start: clean,
        keep_alive: 60,
        client_id: "fuzz".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
        bridge: false,
    }
}

/// A small pool of packet ids, so acknowledgements often match what is in flight.
fn pkid(input: &mut Input) -> u16 {
    match input.byte() % 4 {
        0 => input.u16(),
        n => n as u16,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let start = Instant::now();
    let mut now = start;
    let mut session = Session::new();
    let mut v = version(input.byte());
    session.on_transport_open(connect(v, input.byte() & 1 == 0), now);
    let mut decoder = Decoder::with_version(v, 1 << 16);
    let mut raw = BytesMut::new();
    let (mut spare, mut qos0) = (BytesMut::new(), Vec::new());
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        let server_packet = match input.byte() % 16 {
            0 => {
                // Raw bytes from the server, decoded as the connection task does.
                let n = input.byte() as usize;
                raw.extend_from_slice(input.bytes(n));
                let mut closed = false;
                loop {
                    match decoder.decode(&mut raw) {
                        Ok(Some(p)) => {
                            if session.handle(p).is_err() {
                                closed = true;
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed {
                    session.on_connection_lost();
                    raw.clear();
                }
                None
            }
            1 => Some(Packet::ConnAck(ConnAck {
                session_present: input.byte() & 1 == 1,
                code: ReasonCode(if input.byte() < 200 { 0 } else { input.byte() }),
                properties: Properties::default(),
            })),
            2 => {
                let q = qos(input.byte());
                let n = input.byte() as usize;
                Some(Packet::Publish(Publish {
                    dup: input.byte() & 1 == 1,
                    qos: q,
                    retain: input.byte() & 1 == 1,
                    topic: "a/b".into(),
                    pkid: if q == QoS::AtMostOnce {
                        0
                    } else {
                        pkid(&mut input).max(1)
                    },
                    properties: None,
                    payload: Bytes::copy_from_slice(input.bytes(n)),
                }))
            }
            3..=6 => {
                let kind = input.byte() % 4;
                let ack = PubAck {
                    pkid: pkid(&mut input),
                    code: ReasonCode(if input.byte() < 200 { 0 } else { input.byte() }),
                    properties: Properties::default(),
                };
                Some(match kind {
                    0 => Packet::PubAck(ack),
                    1 => Packet::PubRec(ack),
                    2 => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                })
            }
            7 => {
                let n = input.byte() % 4;
                let codes = (0..n).map(|_| ReasonCode(input.byte() % 3)).collect();
                Some(if input.byte() & 1 == 0 {
                    Packet::SubAck(SubAck {
                        pkid: pkid(&mut input),
                        codes,
                        properties: Properties::default(),
                    })
                } else {
                    Packet::UnsubAck(UnsubAck {
                        pkid: pkid(&mut input),
                        codes,
                        properties: Properties::default(),
                    })
                })
            }
            8 => Some(if input.byte() & 1 == 0 {
                Packet::PingResp
            } else {
                Packet::Disconnect(Disconnect {
                    code: ReasonCode(input.byte()),
                    properties: Properties::default(),
                })
            }),
            9 => {
                let n = input.byte() as usize;
                let payload = Bytes::copy_from_slice(input.bytes(n));
                let q = qos(input.byte());
                session.publish("x/y".into(), payload, q, input.byte() & 1 == 1, None);
                None
            }
            10 => {
                if input.byte() & 1 == 0 {
                    let filter = SubscribeFilter {
                        filter: "a/#".into(),
                        options: SubscribeOptions {
                            qos: qos(input.byte()),
                            ..SubscribeOptions::default()
                        },
                    };
                    session.subscribe(vec![filter], Properties::default());
                } else {
                    session.unsubscribe(vec!["a/#".into()], Properties::default());
                }
                None
            }
            11 => {
                let mid = pkid(&mut input);
                session.ack(mid, input.byte() % 3);
                None
            }
            12 => {
                // The connection task writes some or all of the output.
                if input.byte() & 1 == 0 {
                    let n = input.u16() as usize;
                    session.consume_output(n);
                } else {
                    spare.clear();
                    qos0.clear();
                    session.take_output(&mut spare, &mut qos0);
                }
                session.take_events().for_each(drop);
                None
            }
            13 => {
                now += Duration::from_millis(u64::from(input.u16()) * 10);
                if session.poll_keepalive(now).is_err() {
                    session.on_connection_lost();
                }
                None
            }
            14 => {
                match input.byte() % 4 {
                    0 => {
                        session.disconnect(input.byte(), Properties::default());
                    }
                    1 => session.on_connection_lost(),
                    2 => {
                        session.on_connection_lost();
                        v = version(input.byte());
                        session.on_transport_open(connect(v, input.byte() & 1 == 0), now);
                        decoder = Decoder::with_version(v, 1 << 16);
                        raw.clear();
                    }
                    _ => {
                        session.drop_out_messages();
                    }
                }
                None
            }
            _ => {
                match input.byte() % 3 {
                    0 => session.set_max_inflight(input.byte() as usize % 8),
                    1 => session.set_max_queued(input.byte() as usize % 8),
                    _ => session.set_manual_ack(input.byte() & 1 == 1),
                }
                None
            }
        };
        if let Some(p) = server_packet {
            if session.handle(p).is_err() {
                session.on_connection_lost();
            }
        }
    }
});
