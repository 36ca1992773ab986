//! Broker configuration: plain data, filled from Python keyword arguments or a TOML file
//! (parsed on the Python side) by the bindings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    WebSocket,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    pub transport: Transport,
    /// WebSocket path ("/mqtt" by default, mosquitto accepts any path).
    pub ws_path: Option<String>,
    pub tls: Option<TlsConfig>,
}

impl ListenerConfig {
    pub fn tcp(host: &str, port: u16) -> Self {
        Self {
            host: host.to_string(),
            port,
            transport: Transport::Tcp,
            ws_path: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    /// CA certificates that client certificates must chain to.
    pub cafile: Option<PathBuf>,
    pub require_certificate: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    pub allow_anonymous: bool,
    /// username -> plain password, given in Python.
    pub users: HashMap<String, String>,
    /// A mosquitto_passwd file (`user:$7$iterations$salt$hash` lines).
    pub password_file: Option<PathBuf>,
    /// A mosquitto acl_file.
    pub acl_file: Option<PathBuf>,
    /// Ask the Python auth callback (through the event queue) for every CONNECT.
    pub auth_callback: bool,
    /// Send every routed message to the Python observer.
    pub message_observer: bool,
    /// MQTT 5 enhanced authentication methods (§4.12) answered by Python hooks; a
    /// CONNECT with another method is refused with 0x8C.
    pub enhanced_auth_methods: Vec<String>,
    /// Largest packet accepted from clients (MQTT 5 §3.2.2.3.6), fixed header included.
    pub max_packet_size: u32,
    /// Per-session bound on queued QoS 1/2 messages beyond the inflight window (online
    /// and offline), as in mosquitto. QoS 0 messages are bounded by bytes only.
    pub max_queued_messages: usize,
    /// Per-session bound on queued messages of every QoS in bytes (topic, payload and
    /// a fixed overhead each); 0: none.
    pub max_queued_bytes: usize,
    /// Outgoing inflight window per client (further capped by the client's receive maximum).
    pub max_inflight_messages: u16,
    /// Our receive maximum: QoS 2 messages a client may have unreleased at once.
    pub receive_maximum: u16,
    pub max_connections: usize,
    pub max_keepalive: u16,
    pub topic_alias_maximum: u16,
    /// Most levels a topic name or filter may have (mosquitto's limit is 200 `/`); a
    /// deeper PUBLISH topic closes the connection (v5 DISCONNECT 0x90), a deeper
    /// filter is refused in the SUBACK (v5 0x8F, v3 0x80). 0: no limit.
    pub max_topic_levels: usize,
    /// Send topic aliases to v5 clients that accept them. Off by default: paho-mqtt
    /// 2.2.0 announces a topic alias maximum but does not resolve incoming aliases.
    pub outgoing_topic_aliases: bool,
    pub max_qos: u8,
    pub retain_available: bool,
    /// Upper bound for v5 session expiry and for v3 persistent sessions (None: forever).
    pub max_session_expiry: Option<u32>,
    pub connect_timeout: Duration,
    /// $SYS publish interval; zero disables $SYS topics.
    pub sys_interval: Duration,
    pub log_debug: bool,
    /// A plain-TCP connection quiet (nothing read or written) for this long parks:
    /// its task ends and its socket waits on the broker's shared poller until
    /// something happens (`park.rs`). A new connection parks right after CONNACK if
    /// the client sends nothing more. None: never park.
    pub idle_park_after: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listeners: vec![ListenerConfig::tcp("127.0.0.1", 1883)],
            allow_anonymous: true,
            users: HashMap::new(),
            password_file: None,
            acl_file: None,
            auth_callback: false,
            message_observer: false,
            enhanced_auth_methods: Vec::new(),
            max_packet_size: 268_435_455,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_inflight_messages: 100,
            receive_maximum: 100,
            max_connections: 0,
            max_keepalive: 65535,
            topic_alias_maximum: 10,
            max_topic_levels: 200,
            outgoing_topic_aliases: false,
            max_qos: 2,
            retain_available: true,
            max_session_expiry: None,
            connect_timeout: Duration::from_secs(10),
            sys_interval: Duration::from_secs(10),
            log_debug: false,
            idle_park_after: Some(Duration::from_secs(5)),
        }
    }
}

impl Config {
    /// The per-session queue bounds.
    pub fn queue_limits(&self) -> super::session::QueueLimits {
        super::session::QueueLimits {
            messages: self.max_queued_messages,
            bytes: self.max_queued_bytes,
        }
    }
}
