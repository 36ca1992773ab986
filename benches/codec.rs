//! Codec throughput: decode and encode of PUBLISH packets with a 64-byte and a 1 KiB
//! payload, in MQTT 3.1.1 and 5.0 (criterion).
//!
//! Decoding is measured as a connection task does it: the frame is appended to a reused
//! read buffer (the copy a socket read makes) and decoded from there; the decoded packet
//! (topic and payload sliced from the buffer) is then dropped.
//!
//! `cargo bench --bench codec` measures wall-clock time. On a shared, loaded machine set
//! `CODEC_BENCH_CPU_TIME=1` to measure this thread's CPU time instead (Unix), which other
//! processes competing for the cores do not inflate.

use std::hint::black_box;
#[cfg(unix)]
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::measurement::Measurement;
#[cfg(unix)]
use criterion::measurement::{ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};
use turbomqtt::codec::topic::matches;
use turbomqtt::codec::{encode, Decoder, Packet, ProtocolVersion, Publish, QoS};

fn publish(payload_len: usize) -> Packet {
    Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "sensors/building-1/floor-2/temperature".into(),
        pkid: 42,
        payload: Bytes::from(vec![b'x'; payload_len]),
        ..Publish::default()
    })
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    for (vname, version) in [("v311", ProtocolVersion::V311), ("v5", ProtocolVersion::V5)] {
        for (pname, len) in [("64B", 64), ("1KiB", 1024)] {
            let packet = publish(len);
            let mut frame = BytesMut::new();
            encode(&packet, version, &mut frame).unwrap();
            let frame = frame.freeze();

            let mut g = c.benchmark_group(format!("publish_{pname}_{vname}"));
            g.throughput(Throughput::Elements(1));
            g.bench_function("decode", |b| {
                let mut dec = Decoder::with_version(version, u32::MAX);
                let mut buf = BytesMut::with_capacity(64 * 1024);
                b.iter(|| {
                    buf.extend_from_slice(&frame);
                    let p = dec.decode(&mut buf).unwrap();
                    black_box(&p);
                })
            });
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
    // The router and `topic_matches_sub` call this once per (filter, topic) pair.
    let mut g = c.benchmark_group("topic_matches");
    g.throughput(Throughput::Elements(4));
    g.bench_function("4 filters", |b| {
        let topic = "sensors/building-1/floor-2/temperature";
        let filters = [
            "sensors/+/floor-2/#",
            "sensors/building-1/+/humidity",
            "#",
            "$SYS/#",
        ];
        b.iter(|| {
            for f in filters {
                black_box(matches(black_box(f), black_box(topic)));
            }
        })
    });
    g.finish();
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`, POSIX).
#[cfg(unix)]
struct ThreadCpuTime;

#[cfg(unix)]
impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_time() - start
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    if std::env::var_os("CODEC_BENCH_CPU_TIME").is_some() {
        #[cfg(unix)]
        {
            let mut c = Criterion::default()
                .with_measurement(ThreadCpuTime)
                .configure_from_args();
            bench(&mut c);
            c.final_summary();
            return;
        }
        #[cfg(not(unix))]
        eprintln!("CODEC_BENCH_CPU_TIME: no thread CPU clock on this system, measuring wall time");
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
