//! The tokio MQTT client core: connection task, session state, reconnect, transports.
