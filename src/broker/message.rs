//! An application message as the router sees it: shared by every subscriber through
//! `Arc`, payload never copied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::codec::{ByteStr, Properties, QoS};

#[derive(Debug, Clone)]
pub struct Message {
    /// A valid topic name (MQTT 5 §4.7.3): every place that makes a message checked it
    /// (PUBLISH, will, `Broker.publish`), so delivery writes it without checking again.
    pub topic: ByteStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 properties passed through to subscribers (payload format, content type,
    /// response topic, correlation data, user properties). Topic alias and subscription
    /// identifiers are per-connection and never stored here.
    pub properties: Option<Box<Properties>>,
    /// From the message expiry interval (MQTT 5 §3.3.2.3.3).
    pub expires_at: Option<Instant>,
    /// Client id of the publisher, for the no-local option (None: injected by the broker).
    pub origin: Option<Arc<str>>,
}

impl Message {
    pub fn new(topic: ByteStr, payload: Bytes, qos: QoS, retain: bool) -> Self {
        Self {
            topic,
            payload,
            qos,
            retain,
            properties: None,
            expires_at: None,
            origin: None,
        }
    }

    /// A placeholder left where a message was taken out.
    pub fn empty() -> Self {
        Self::new(ByteStr::new(), Bytes::new(), QoS::AtMostOnce, false)
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// The remaining expiry interval in whole seconds, for the PUBLISH sent onwards
    /// (§3.3.2.3.3: the server sends the received value minus the time spent waiting).
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|t| {
            let left = t.saturating_duration_since(now);
            // Round up so a message with time left never goes out as "0 seconds".
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    pub fn set_expiry(&mut self, interval: Option<u32>, now: Instant) {
        self.expires_at = interval.map(|s| now + Duration::from_secs(u64::from(s)));
    }
}
