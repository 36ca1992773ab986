//! Codec throughput: decode and encode of PUBLISH packets with a 64-byte and a 1 KiB
//! payload, in MQTT 3.1.1 and 5.0 (criterion).
//!
//! Decoding runs over a read buffer holding 1000 back-to-back frames, as a connection
//! task sees them after a large socket read; throughput is in packets.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use turbomqtt::codec::{encode, Decoder, Packet, ProtocolVersion, Publish, QoS};

const FRAMES: usize = 1000;

fn publish(payload_len: usize) -> Packet {
    Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "sensors/building-1/floor-2/temperature".into(),
        pkid: 42,
        payload: Bytes::from(vec![b'x'; payload_len]),
        ..Publish::default()
    })
}

fn bench(c: &mut Criterion) {
    for (vname, version) in [("v311", ProtocolVersion::V311), ("v5", ProtocolVersion::V5)] {
        for (pname, len) in [("64B", 64), ("1KiB", 1024)] {
            let packet = publish(len);
            let mut one = BytesMut::new();
            encode(&packet, version, &mut one).unwrap();
            let stream: Vec<u8> = one
                .iter()
                .copied()
                .cycle()
                .take(one.len() * FRAMES)
                .collect();

            let mut g = c.benchmark_group(format!("decode_publish_{pname}_{vname}"));
            g.throughput(Throughput::Elements(FRAMES as u64));
            g.bench_function("decode", |b| {
                let mut dec = Decoder::with_version(version, u32::MAX);
                b.iter_batched_ref(
                    || BytesMut::from(&stream[..]),
                    |buf| {
                        while let Some(p) = dec.decode(buf).unwrap() {
                            black_box(p);
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
            g.finish();

            let mut g = c.benchmark_group(format!("encode_publish_{pname}_{vname}"));
            g.throughput(Throughput::Elements(1));
            g.bench_function("encode", |b| {
                let mut out = BytesMut::with_capacity(4096);
                b.iter(|| {
                    out.clear();
                    encode(black_box(&packet), version, &mut out).unwrap();
                    black_box(&out);
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
