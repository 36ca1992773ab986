//! The embedded broker fed arbitrary bytes over real loopback connections: up to three
//! clients per input, each opened with a valid CONNECT (3.1.1 or 5.0) and then sending
//! its share of the input, interleaved. The broker must close or keep each connection
//! without panicking in any task (a panic anywhere aborts this process), and a fresh
//! client must still get CONNACK and PINGRESP afterwards.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use turbomqtt::broker::{Broker, Config, ListenerConfig};
use turbomqtt::codec::{encode, Connect, Packet, Properties, ProtocolVersion};

/// Inputs served by one broker before it is replaced (retained messages and offline
/// sessions the inputs leave behind would otherwise pile up).
const INPUTS_PER_BROKER: u32 = 2000;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

struct Running {
    broker: Broker,
    addr: SocketAddr,
    served: u32,
}

fn start() -> Running {
    let config = Config {
        listeners: vec![ListenerConfig::tcp("127.0.0.1", 0)],
        ..Config::default()
    };
    let broker = Broker::start(config).expect("broker starts");
    let addr = broker.listeners()[0].addr;
    Running {
        broker,
        addr,
        served: 0,
    }
}

fn broker() -> &'static Mutex<Running> {
    static B: OnceLock<Mutex<Running>> = OnceLock::new();
    B.get_or_init(|| {
        // A panic in a runtime task is caught by tokio; make it a crash libFuzzer sees.
        std::panic::set_hook(Box::new(|info| {
            eprintln!("panic: {info}");
            std::process::abort();
        }));
        Mutex::new(start())
    })
}

fn connect_bytes(version: ProtocolVersion, id: &str, clean: bool) -> Vec<u8> {
    let c = Connect {
        protocol: version,
        clean_start: clean,
        keep_alive: 30,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
        bridge: false,
    };
    let mut out = BytesMut::new();
    encode(&Packet::Connect(Box::new(c)), version, &mut out).expect("CONNECT encodes");
    out.to_vec()
}

fn open(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("broker accepts");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until the broker closes the connection (it must, once we stopped writing).
fn read_to_end(s: &mut TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            // Reset: the broker closed with unread bytes of ours; as good as a close.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("broker did not close a finished connection: {e}"),
        }
    }
}

/// A fresh client must still be served: CONNACK, then PINGRESP.
fn canary(addr: SocketAddr) {
    let mut s = open(addr);
    let mut out = connect_bytes(ProtocolVersion::V311, "canary", true);
    out.extend_from_slice(&[0xC0, 0x00]);
    s.write_all(&out).unwrap();
    let mut got = [0u8; 6];
    s.read_exact(&mut got).expect("CONNACK and PINGRESP");
    assert_eq!(got, [0x20, 0x02, 0x00, 0x00, 0xD0, 0x00]);
}

fuzz_target!(|data: &[u8]| {
    let mut running = broker().lock().unwrap();
    if running.served == INPUTS_PER_BROKER {
        let old = std::mem::replace(&mut *running, start());
        let mut b = old.broker;
        assert!(b.stop(Duration::from_secs(10)), "broker stops");
    }
    running.served += 1;
    let addr = running.addr;

    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let clients = 1 + usize::from(head % 3);
    let mut streams = Vec::with_capacity(clients);
    for i in 0..clients {
        let version = if head & (8 << i) == 0 {
            ProtocolVersion::V311
        } else {
            ProtocolVersion::V5
        };
        let mut s = open(addr);
        s.write_all(&connect_bytes(version, &format!("f{i}"), head & 0x40 == 0))
            .unwrap();
        streams.push(s);
    }
    // The rest in chunks dealt round-robin: length byte, then that many bytes.
    let mut input = rest;
    let mut k = 0;
    while let Some((&n, tail)) = input.split_first() {
        let n = usize::from(n).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        // The broker may already have closed this connection (malformed input).
        let _ = streams[k % clients].write_all(chunk);
        input = tail;
        k += 1;
    }
    for s in &mut streams {
        let _ = s.shutdown(Shutdown::Write);
    }
    for s in &mut streams {
        read_to_end(s);
    }
    canary(addr);
});
