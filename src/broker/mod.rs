//! The embedded MQTT broker: listeners, connection tasks, router, sessions.
