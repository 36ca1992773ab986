//! The plain-Rust client core against a real mosquitto on a free 127.0.0.1 port.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use turbomqtt::client::{Client, ConnectError, ConnectOptions, Event, TransportOptions, Wait};
use turbomqtt::codec::{
    ByteStr, Connect, Properties, ProtocolVersion, QoS, SubscribeFilter, SubscribeOptions,
};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

struct Mosquitto {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

impl Mosquitto {
    /// `None` when mosquitto is not installed (the test then has nothing to run against).
    fn start() -> Option<Self> {
        if !std::path::Path::new(MOSQUITTO).exists() {
            eprintln!("mosquitto not installed; skipping");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("turbomqtt-client-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        )
        .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn options(port: u16, client_id: &str, version: ProtocolVersion) -> ConnectOptions {
    ConnectOptions {
        connect: Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
            bridge: false,
        },
        transport: TransportOptions {
            host: "127.0.0.1".into(),
            port,
            ..Default::default()
        },
        timeout: Duration::from_secs(5),
    }
}

/// Drains events into `seen` until `done(seen)`, failing after 10 s.
fn until(client: &Client, seen: &mut Vec<Event>, done: impl Fn(&[Event]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(seen) {
        assert!(Instant::now() < deadline, "timed out; saw {seen:?}");
        if client.events().wait(Duration::from_millis(200)) == Wait::Events {
            seen.extend(client.events().drain(0));
        }
    }
}

fn connected(port: u16, id: &str, version: ProtocolVersion) -> (Client, Vec<Event>) {
    let client = Client::new().unwrap();
    client.connect_blocking(options(port, id, version)).unwrap();
    let mut seen = Vec::new();
    until(&client, &mut seen, |s| {
        s.iter()
            .any(|e| matches!(e, Event::ConnAck { code: 0, .. }))
    });
    (client, seen)
}

fn subscribe(client: &Client, seen: &mut Vec<Event>, filter: &str) {
    let (rc, mid) = client.subscribe(
        vec![SubscribeFilter {
            filter: filter.into(),
            options: SubscribeOptions {
                qos: QoS::ExactlyOnce,
                ..Default::default()
            },
        }],
        Properties::default(),
    );
    assert_eq!(rc, 0);
    until(client, seen, |s| {
        s.iter()
            .any(|e| matches!(e, Event::SubAck { mid: m, .. } if *m == mid))
    });
}

fn payloads(seen: &[Event]) -> Vec<Bytes> {
    seen.iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.payload.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn qos_0_1_2_round_trip_in_order_for_every_version() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    for version in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ] {
        let (client, mut seen) = connected(broker.port, &format!("rt{}", version as u8), version);
        let topic = format!("rust/{}", version as u8);
        subscribe(&client, &mut seen, &topic);
        for i in 0..30u8 {
            let qos = QoS::from_u8(i % 3).unwrap();
            let (rc, _) = client.publish(
                ByteStr::from(topic.as_str()),
                Bytes::from(vec![i]),
                qos,
                false,
                None,
                None,
            );
            assert_eq!(rc, 0);
        }
        until(&client, &mut seen, |s| payloads(s).len() == 30);
        until(&client, &mut seen, |s| {
            s.iter()
                .filter(|e| matches!(e, Event::Published { .. }))
                .count()
                == 30
        });
        // Per-QoS order is kept (MQTT 3.1.1 §4.6 only orders within one QoS).
        for q in 0..3u8 {
            let got: Vec<u8> = payloads(&seen)
                .iter()
                .map(|p| p[0])
                .filter(|b| b % 3 == q)
                .collect();
            let want: Vec<u8> = (0..30u8).filter(|b| b % 3 == q).collect();
            assert_eq!(got, want);
        }
        assert_eq!(client.disconnect(0, Properties::default()), 0);
        until(&client, &mut seen, |s| {
            s.iter()
                .any(|e| matches!(e, Event::Disconnected { code: 0, .. }))
        });
    }
}

#[test]
fn refused_connection_is_an_io_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new().unwrap();
    match client.connect_blocking(options(port, "refused", ProtocolVersion::V311)) {
        Err(ConnectError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("{other:?}"),
    }
}

#[test]
fn queued_while_disconnected_is_delivered_after_connack() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let (sub, mut sub_seen) = connected(broker.port, "sub", ProtocolVersion::V311);
    subscribe(&sub, &mut sub_seen, "rust/queued");
    let publisher = Client::new().unwrap();
    let (rc, _) = publisher.publish(
        ByteStr::from("rust/queued"),
        Bytes::from_static(b"later"),
        QoS::AtLeastOnce,
        false,
        None,
        None,
    );
    assert_eq!(rc, 4);
    publisher
        .connect_blocking(options(broker.port, "pub", ProtocolVersion::V311))
        .unwrap();
    until(&sub, &mut sub_seen, |s| payloads(s).len() == 1);
    assert_eq!(payloads(&sub_seen)[0], Bytes::from_static(b"later"));
}
