//! A small, fast MQTT 3.1.1 load generator for the broker benchmarks.
//!
//! Every packet is encoded once up front; per message the publishers only copy bytes
//! (and patch the packet identifier at QoS 1/2), and the subscribers only walk fixed
//! headers and count. Writes are batched, so the generator stays far below the cost of
//! the broker it measures.
//!
//! Modes (one JSON line on stdout at the end):
//!   pubsub  --pubs P --subs S --msgs M --qos Q --size B   every publisher sends M messages
//!           to one topic that every subscriber subscribed; counts deliveries (P*M*S expected)
//!   idle    --conns N [--gate G]                            opens N connections (at most G
//!           connecting at a time; 0: all at once), prints a JSON line once all are
//!           connected, then holds them until stdin closes

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

const KEEPALIVE_S: u16 = 600; // long enough that no PINGREQ is ever needed in a run

#[derive(Clone, Debug)]
struct Opts {
    mode: String,
    host: String,
    port: u16,
    pubs: usize,
    subs: usize,
    msgs: u64,
    qos: u8,
    size: usize,
    window: usize,
    topic: String,
    conns: usize,
    threads: usize,
    idle_ms: u64,
    timeout_s: u64,
    gate: usize,
    username: Option<String>,
    password: Option<String>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        mode: "pubsub".into(),
        host: "127.0.0.1".into(),
        port: 1883,
        pubs: 1,
        subs: 1,
        msgs: 100_000,
        qos: 0,
        size: 64,
        // mosquitto 2.0's max_inflight_messages (20) also bounds incoming QoS 2 flows; past
        // it, mosquitto 2.0.11 acknowledges MQTT 3.1.1 QoS 2 messages and drops them.
        window: 20,
        topic: "bench/loadgen".into(),
        conns: 1000,
        threads: 2,
        idle_ms: 3000,
        gate: 200,
        timeout_s: 120,
        username: None,
        password: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "pubsub" || a == "idle" {
            o.mode = a.to_string();
            i += 1;
            continue;
        }
        let v = args
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a {
            "--host" => o.host = v,
            "--port" => o.port = num(&v),
            "--pubs" => o.pubs = num(&v),
            "--subs" => o.subs = num(&v),
            "--msgs" => o.msgs = num(&v),
            "--qos" => o.qos = num(&v),
            "--size" => o.size = num(&v),
            "--window" => o.window = num(&v),
            "--topic" => o.topic = v,
            "--conns" => o.conns = num(&v),
            "--threads" => o.threads = num(&v),
            "--idle-ms" => o.idle_ms = num(&v),
            "--gate" => o.gate = num::<usize>(&v),
            "--timeout" => o.timeout_s = num(&v),
            "--username" => o.username = Some(v),
            "--password" => o.password = Some(v),
            _ => usage(&format!("unknown option {a}")),
        }
        i += 2;
    }
    if o.qos > 2 {
        usage("--qos must be 0, 1 or 2");
    }
    o.window = o.window.clamp(1, 60_000);
    o
}

fn num<T: std::str::FromStr>(s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("not a number: {s}")))
}

fn usage(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    eprintln!(
        "usage: loadgen [pubsub|idle] --port N [--host H] [--pubs P] [--subs S] [--msgs M] \
         [--qos Q] [--size B] [--window W] [--conns N] [--threads T] [--idle-ms MS] [--gate G] [--timeout S]"
    );
    std::process::exit(2)
}

// ---------------------------------------------------------------- encoding (MQTT 3.1.1)

/// Remaining length, variable byte integer (MQTT 3.1.1 section 2.2.3).
fn put_remaining_length(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn connect_packet(client_id: &str, o: &Opts) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.push(4); // protocol level 3.1.1 (section 3.1.2.2)
    let mut flags = 0x02; // clean session
    if o.username.is_some() {
        flags |= 0x80;
    }
    if o.password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&KEEPALIVE_S.to_be_bytes());
    put_str(&mut body, client_id.as_bytes());
    if let Some(u) = &o.username {
        put_str(&mut body, u.as_bytes());
    }
    if let Some(p) = &o.password {
        put_str(&mut body, p.as_bytes());
    }
    let mut out = vec![0x10];
    put_remaining_length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

fn subscribe_packet(topic: &str, qos: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1u16.to_be_bytes());
    put_str(&mut body, topic.as_bytes());
    body.push(qos);
    let mut out = vec![0x82]; // reserved flags 0010 (section 3.8.1)
    put_remaining_length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// A PUBLISH template and the offset of its packet identifier (QoS > 0).
fn publish_packet(topic: &str, qos: u8, size: usize) -> (Vec<u8>, usize) {
    let id_len = if qos > 0 { 2 } else { 0 };
    let rem = 2 + topic.len() + id_len + size;
    let mut out = vec![0x30 | (qos << 1)];
    put_remaining_length(&mut out, rem);
    put_str(&mut out, topic.as_bytes());
    let id_at = out.len();
    if qos > 0 {
        out.extend_from_slice(&[0, 1]);
    }
    out.resize(out.len() + size, b'x');
    (out, id_at)
}

fn ack(kind: u8, id: [u8; 2], out: &mut Vec<u8>) {
    out.extend_from_slice(&[kind, 2, id[0], id[1]]);
}

// ---------------------------------------------------------------- framing

/// Reads packets into a growable buffer and hands out complete ones.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new() -> Self {
        Reader {
            buf: vec![0; 1 << 20],
            start: 0,
            end: 0,
        }
    }

    async fn fill(&mut self, s: &mut TcpStream) -> std::io::Result<usize> {
        if self.start > 0 && self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > self.buf.len() / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        let n = s.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "broker closed",
            ));
        }
        self.end += n;
        Ok(n)
    }

    /// The next complete packet as (first byte, body range), if the buffer holds one.
    fn next(&mut self) -> Option<(u8, usize, usize)> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 2 {
            return None;
        }
        let mut len = 0usize;
        let mut mult = 1usize;
        let mut i = 1;
        loop {
            if i >= avail.len() || i > 4 {
                return None;
            }
            let b = avail[i];
            len += (b & 0x7f) as usize * mult;
            mult *= 128;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if avail.len() < i + len {
            // A packet larger than the buffer: let fill() grow it.
            if i + len > self.buf.len() - self.start {
                let need = self.start + i + len;
                self.buf.resize(need.next_power_of_two(), 0);
            }
            return None;
        }
        let first = avail[0];
        let body = (self.start + i, self.start + i + len);
        self.start += i + len;
        Some((first, body.0, body.1))
    }
}

async fn open(o: &Opts, client_id: &str) -> std::io::Result<(TcpStream, Reader)> {
    let mut s = TcpStream::connect((o.host.as_str(), o.port)).await?;
    s.set_nodelay(true)?;
    s.write_all(&connect_packet(client_id, o)).await?;
    let mut r = Reader::new();
    loop {
        if let Some((first, b0, _)) = r.next() {
            if first >> 4 != 2 {
                return Err(other(format!(
                    "expected CONNACK, got packet type {}",
                    first >> 4
                )));
            }
            let rc = r.buf[b0 + 1];
            if rc != 0 {
                return Err(other(format!("CONNACK refused with code {rc}")));
            }
            return Ok((s, r));
        }
        r.fill(&mut s).await?;
    }
}

fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

// ---------------------------------------------------------------- pubsub mode

struct Shared {
    delivered: AtomicU64,
    /// Nanoseconds after the start of publishing at which the last delivery was seen.
    last_delivery_ns: AtomicU64,
    published: AtomicU64,
    last_ack_ns: AtomicU64,
}

async fn subscriber(
    o: Arc<Opts>,
    idx: usize,
    expected: u64,
    shared: Arc<Shared>,
    mut go: watch::Receiver<Option<Instant>>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> std::io::Result<()> {
    let (mut s, mut r) = open(&o, &format!("lg-{}-sub-{idx}", std::process::id())).await?;
    s.write_all(&subscribe_packet(&o.topic, o.qos)).await?;
    loop {
        if let Some((first, _, _)) = r.next() {
            if first >> 4 == 9 {
                break;
            }
            continue;
        }
        r.fill(&mut s).await?;
    }
    let _ = ready.send(()).await;
    let t0 = loop {
        if let Some(t) = *go.borrow() {
            break t;
        }
        go.changed().await.map_err(|_| other("aborted".into()))?;
    };
    let mut got = 0u64;
    let mut out = Vec::with_capacity(64 * 1024);
    let deadline = t0 + Duration::from_secs(o.timeout_s);
    let idle = Duration::from_millis(o.idle_ms);
    let mut last_ns = 0u64;
    while got < expected {
        let before = got;
        while let Some((first, b0, b1)) = r.next() {
            match first >> 4 {
                3 => {
                    got += 1;
                    let qos = (first >> 1) & 3;
                    if qos > 0 {
                        let tl = u16::from_be_bytes([r.buf[b0], r.buf[b0 + 1]]) as usize;
                        let id = [r.buf[b0 + 2 + tl], r.buf[b0 + 3 + tl]];
                        ack(if qos == 1 { 0x40 } else { 0x50 }, id, &mut out);
                    }
                }
                6 => ack(0x70, [r.buf[b0], r.buf[b0 + 1]], &mut out), // PUBREL -> PUBCOMP
                _ => {}
            }
            let _ = b1;
        }
        if got > before {
            last_ns = t0.elapsed().as_nanos() as u64;
        }
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
        if got >= expected {
            break;
        }
        let now = Instant::now();
        if now > deadline {
            break;
        }
        match tokio::time::timeout(idle, r.fill(&mut s)).await {
            Ok(res) => {
                res?;
            }
            Err(_) => break, // nothing for idle_ms: count what arrived (QoS 0 may drop)
        }
    }
    shared
        .last_delivery_ns
        .fetch_max(last_ns, Ordering::Relaxed);
    shared.delivered.fetch_add(got, Ordering::Relaxed);
    let _ = s.write_all(&[0xe0, 0]).await;
    Ok(())
}

async fn publisher(
    o: Arc<Opts>,
    idx: usize,
    shared: Arc<Shared>,
    mut go: watch::Receiver<Option<Instant>>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> std::io::Result<()> {
    let (mut s, mut r) = open(&o, &format!("lg-{}-pub-{idx}", std::process::id())).await?;
    let (template, id_at) = publish_packet(&o.topic, o.qos, o.size);
    let _ = ready.send(()).await;
    let t0 = loop {
        if let Some(t) = *go.borrow() {
            break t;
        }
        go.changed().await.map_err(|_| other("aborted".into()))?;
    };
    let n = o.msgs;
    if o.qos == 0 {
        // Identical packets: one pre-built chunk of about 64 KiB written again and again.
        let per_chunk = (65_536 / template.len()).max(1) as u64;
        let chunk: Vec<u8> = template.repeat(per_chunk as usize);
        let mut sent = 0u64;
        while sent < n {
            let k = per_chunk.min(n - sent);
            s.write_all(&chunk[..template.len() * k as usize]).await?;
            sent += k;
        }
        shared.published.fetch_add(sent, Ordering::Relaxed);
    } else {
        let mut out: Vec<u8> = Vec::with_capacity(template.len() * o.window.min(1024));
        let mut next_id: u16 = 0;
        let mut sent = 0u64;
        let mut done = 0u64;
        let mut inflight = 0usize;
        while done < n {
            while inflight < o.window && sent < n {
                next_id = if next_id == u16::MAX { 1 } else { next_id + 1 };
                let at = out.len();
                out.extend_from_slice(&template);
                out[at + id_at..at + id_at + 2].copy_from_slice(&next_id.to_be_bytes());
                inflight += 1;
                sent += 1;
                if out.len() >= 256 * 1024 {
                    break;
                }
            }
            if !out.is_empty() {
                s.write_all(&out).await?;
                out.clear();
            }
            if inflight < o.window && sent < n {
                continue;
            }
            r.fill(&mut s).await?;
            while let Some((first, b0, _)) = r.next() {
                match first >> 4 {
                    4 | 7 => {
                        // PUBACK (QoS 1) or PUBCOMP (QoS 2) completes a message.
                        inflight -= 1;
                        done += 1;
                    }
                    5 => ack(0x62, [r.buf[b0], r.buf[b0 + 1]], &mut out), // PUBREC -> PUBREL
                    _ => {}
                }
            }
        }
        shared.published.fetch_add(done, Ordering::Relaxed);
    }
    shared
        .last_ack_ns
        .fetch_max(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    // Keep the connection until the subscribers are done: a DISCONNECT right away could
    // race ahead of queued deliveries on some brokers; the runtime drops it at exit.
    std::mem::forget(s);
    Ok(())
}

async fn run_pubsub(o: Opts) -> String {
    let o = Arc::new(o);
    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        last_delivery_ns: AtomicU64::new(0),
        published: AtomicU64::new(0),
        last_ack_ns: AtomicU64::new(0),
    });
    let expected_per_sub = o.pubs as u64 * o.msgs;
    let (go_tx, go_rx) = watch::channel(None::<Instant>);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(o.pubs + o.subs + 1);
    let connect_started = Instant::now();
    let mut subs = Vec::new();
    for i in 0..o.subs {
        subs.push(tokio::spawn(subscriber(
            o.clone(),
            i,
            expected_per_sub,
            shared.clone(),
            go_rx.clone(),
            ready_tx.clone(),
        )));
    }
    for _ in 0..o.subs {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    let mut pubs = Vec::new();
    for i in 0..o.pubs {
        pubs.push(tokio::spawn(publisher(
            o.clone(),
            i,
            shared.clone(),
            go_rx.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    for _ in 0..o.pubs {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let _ = go_tx.send(Some(Instant::now()));
    let mut errors = Vec::new();
    for h in pubs.into_iter().chain(subs) {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let elapsed = shared.last_delivery_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let pub_elapsed = shared.last_ack_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let published = shared.published.load(Ordering::Relaxed);
    errors.dedup();
    format!(
        "{{\"mode\":\"pubsub\",\"pubs\":{},\"subs\":{},\"qos\":{},\"size\":{},\"msgs_per_pub\":{},\
         \"published\":{},\"expected\":{},\"delivered\":{},\"elapsed_s\":{:.6},\"pub_elapsed_s\":{:.6},\
         \"deliveries_per_s\":{:.1},\"connect_s\":{:.3},\"errors\":[{}]}}",
        o.pubs,
        o.subs,
        o.qos,
        o.size,
        o.msgs,
        published,
        expected_per_sub * o.subs as u64,
        delivered,
        elapsed,
        pub_elapsed,
        if elapsed > 0.0 { delivered as f64 / elapsed } else { 0.0 },
        connect_s,
        errors.iter().map(|e| format!("{:?}", e)).collect::<Vec<_>>().join(",")
    )
}

// ---------------------------------------------------------------- idle mode

async fn run_idle(o: Opts) -> String {
    let o = Arc::new(o);
    // Bounded concurrency (`--gate`, 200 by default): a burst of 10k SYNs would
    // overflow a short listen backlog. `--gate 0`: every connection at once (the
    // accept-burst benchmark).
    let gate = Arc::new(Semaphore::new(if o.gate == 0 {
        Semaphore::MAX_PERMITS
    } else {
        o.gate
    }));
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(o.conns);
    for i in 0..o.conns {
        let o = o.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore closed");
            open(&o, &format!("lg-{}-idle-{i}", std::process::id()))
                .await
                .map(|(s, _)| s)
        }));
    }
    let mut streams = Vec::with_capacity(o.conns);
    let mut errors = Vec::new();
    for h in tasks {
        match h.await {
            Ok(Ok(s)) => streams.push(s),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let elapsed = t.elapsed().as_secs_f64();
    errors.sort();
    errors.dedup();
    println!(
        "{{\"mode\":\"idle\",\"connected\":{},\"wanted\":{},\"connect_s\":{:.3},\"errors\":[{}]}}",
        streams.len(),
        o.conns,
        elapsed,
        errors
            .iter()
            .take(5)
            .map(|e| format!("{:?}", e))
            .collect::<Vec<_>>()
            .join(",")
    );
    // Hold the connections until the harness has measured the broker and closes stdin.
    let mut stdin = tokio::io::stdin();
    let mut b = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(o.timeout_s), stdin.read(&mut b)).await;
    drop(streams);
    String::new()
}

fn main() {
    let o = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let line = rt.block_on(async move {
        match o.mode.as_str() {
            "idle" => run_idle(o).await,
            _ => run_pubsub(o).await,
        }
    });
    if !line.is_empty() {
        println!("{line}");
    }
    // Leaked publisher sockets and stuck tasks must not delay the exit.
    rt.shutdown_timeout(Duration::from_millis(100));
}
