//! Listeners: bound synchronously at start (so errors surface in `start()`), then one
//! accept task each on the runtime.

use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::Arc;

use tokio::runtime::Handle;

use super::config::{ListenerConfig, Transport};
use super::connection::{self, ConnectionContext};
use super::events::Level;
use super::shared::Shared;
use super::{BoundListener, BrokerError};

pub struct Prepared {
    std: StdListener,
    bound: BoundListener,
}

pub fn prepare(config: &ListenerConfig) -> Result<Prepared, BrokerError> {
    if config.tls.is_some() {
        return Err(BrokerError::NotImplemented("TLS listeners"));
    }
    if config.transport == Transport::WebSocket {
        return Err(BrokerError::NotImplemented("WebSocket listeners"));
    }
    let display = format!("{}:{}", config.host, config.port);
    let addrs: Vec<SocketAddr> = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|source| BrokerError::Bind {
            addr: display.clone(),
            source,
        })?
        .collect();
    let mut last_err = None;
    for addr in addrs {
        // std's bind sets SO_REUSEADDR on Unix, so a stopped broker's port can be bound
        // again at once despite connections in TIME_WAIT.
        match StdListener::bind(addr) {
            Ok(std) => {
                std.set_nonblocking(true)
                    .map_err(|source| BrokerError::Bind {
                        addr: display.clone(),
                        source,
                    })?;
                let local = std.local_addr().map_err(|source| BrokerError::Bind {
                    addr: display.clone(),
                    source,
                })?;
                return Ok(Prepared {
                    std,
                    bound: BoundListener {
                        addr: local,
                        transport: config.transport,
                        tls: config.tls.is_some(),
                    },
                });
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(BrokerError::Bind {
        addr: display,
        source: last_err.unwrap_or_else(|| std::io::Error::other("no address to bind")),
    })
}

pub fn spawn(
    handle: &Handle,
    shared: &Arc<Shared>,
    prepared: Prepared,
) -> Result<BoundListener, BrokerError> {
    let bound = prepared.bound.clone();
    let listener = {
        let _enter = handle.enter();
        tokio::net::TcpListener::from_std(prepared.std).map_err(|source| BrokerError::Bind {
            addr: bound.addr.to_string(),
            source,
        })?
    };
    let guard = shared.task_guard();
    let shared = shared.clone();
    let name = format!("mqtt://{}", bound.addr);
    handle.spawn(async move {
        let _guard = guard;
        let mut shutdown = shared.shutdown.subscribe();
        shared.log(Level::Info, format!("listening on {name}"));
        loop {
            let accepted = tokio::select! {
                _ = shutdown.changed() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // Small packets must not wait for delayed ACKs (Nagle).
                    let _ = stream.set_nodelay(true);
                    let ctx = ConnectionContext {
                        shared: shared.clone(),
                        peer: peer.to_string(),
                        listener: name.clone(),
                    };
                    tokio::spawn(connection::run(ctx, stream));
                }
                Err(e) => {
                    shared.log(Level::Error, format!("{name}: accept failed: {e}"));
                    // EMFILE and friends: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(bound)
}
