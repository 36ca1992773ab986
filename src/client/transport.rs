//! Opening the byte stream to the broker: TCP (optionally through a SOCKS4/SOCKS5/HTTP
//! proxy), Unix sockets, TLS (rustls, ring provider) and WebSocket (subprotocol `mqtt`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::tls::{self, TlsOptions};

/// Why opening a connection failed; mapped to Python exceptions in the bindings only.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("timed out")]
    Timeout,
    #[error("certificate verify failed: {0}")]
    TlsVerify(String),
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("WebSocket handshake failed: {0}")]
    WebSocket(String),
    #[error("proxy error: {0}")]
    Proxy(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("connect was cancelled")]
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    #[default]
    Tcp,
    WebSockets,
    Unix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Socks4,
    Socks5,
    Http,
}

#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Where and how to open the stream.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    pub host: String,
    pub port: u16,
    pub kind: TransportKind,
    pub ws_path: String,
    pub ws_headers: Vec<(String, String)>,
    pub tls: Option<TlsOptions>,
    pub bind_address: String,
    pub bind_port: u16,
    pub proxy: Option<ProxyOptions>,
}

/// Any byte stream the client can run MQTT over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

pub enum Stream {
    Tcp(TcpStream),
    Other(Box<dyn Io>),
    Ws(Box<Ws>),
}

pub enum Reader {
    Tcp(OwnedReadHalf),
    Other(ReadHalf<Box<dyn Io>>),
    Ws(SplitStream<Ws>),
}

pub enum Writer {
    Tcp(OwnedWriteHalf),
    Other(WriteHalf<Box<dyn Io>>),
    Ws(SplitSink<Ws, WsMessage>),
}

impl Stream {
    pub fn split(self) -> (Reader, Writer) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (Reader::Tcp(r), Writer::Tcp(w))
            }
            Stream::Other(s) => {
                let (r, w) = tokio::io::split(s);
                (Reader::Other(r), Writer::Other(w))
            }
            Stream::Ws(ws) => {
                let (w, r) = (*ws).split();
                (Reader::Ws(r), Writer::Ws(w))
            }
        }
    }
}

impl Reader {
    /// Appends received bytes to `buf`; `Ok(0)` at end of stream. Cancel-safe.
    pub async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Reader::Tcp(r) => r.read_buf(buf).await,
            Reader::Other(r) => r.read_buf(buf).await,
            Reader::Ws(r) => loop {
                match r.next().await {
                    None => return Ok(0),
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    Some(Ok(WsMessage::Binary(b))) => {
                        if b.is_empty() {
                            continue;
                        }
                        buf.extend_from_slice(&b);
                        return Ok(b.len());
                    }
                    Some(Ok(WsMessage::Close(_))) => return Ok(0),
                    // Pings are answered by tungstenite on the next write or flush.
                    Some(Ok(_)) => continue,
                }
            },
        }
    }
}

impl Writer {
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Writer::Tcp(w) => w.write_all(data).await,
            Writer::Other(w) => {
                w.write_all(data).await?;
                w.flush().await
            }
            Writer::Ws(w) => w
                .send(WsMessage::Binary(Bytes::copy_from_slice(data)))
                .await
                .map_err(io::Error::other),
        }
    }

    pub async fn shutdown(&mut self) {
        let _ = match self {
            Writer::Tcp(w) => w.shutdown().await,
            Writer::Other(w) => w.shutdown().await,
            Writer::Ws(w) => w.close().await.map_err(io::Error::other),
        };
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ConnectError::Resolve {
            host: host.to_string(),
            detail: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ConnectError::Resolve {
            host: host.to_string(),
            detail: "no addresses".into(),
        });
    }
    Ok(addrs)
}

async fn tcp_connect(
    host: &str,
    port: u16,
    bind_address: &str,
    bind_port: u16,
) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in resolve(host, port).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if !bind_address.is_empty() || bind_port != 0 {
            let ip = if bind_address.is_empty() {
                if addr.is_ipv4() {
                    "0.0.0.0".parse().expect("literal")
                } else {
                    "::".parse().expect("literal")
                }
            } else {
                bind_address.parse().map_err(|_| {
                    ConnectError::InvalidArgument(format!("invalid bind_address {bind_address:?}"))
                })?
            };
            socket.bind(SocketAddr::new(ip, bind_port))?;
        }
        match socket.connect(addr).await {
            Ok(s) => {
                // MQTT packets are small and latency matters more than segment count.
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map(ConnectError::Io).unwrap_or(ConnectError::Timeout))
}

/// Opens the stream and runs the TLS and WebSocket handshakes. The caller bounds it
/// with the connect timeout.
pub async fn open(opts: &TransportOptions) -> Result<Stream, ConnectError> {
    let base: Stream = match opts.kind {
        TransportKind::Unix => {
            let s = tokio::net::UnixStream::connect(PathBuf::from(&opts.host)).await?;
            Stream::Other(Box::new(s))
        }
        _ => match &opts.proxy {
            None => Stream::Tcp(
                tcp_connect(&opts.host, opts.port, &opts.bind_address, opts.bind_port).await?,
            ),
            Some(p) => {
                let mut s =
                    tcp_connect(&p.host, p.port, &opts.bind_address, opts.bind_port).await?;
                super::proxy::handshake(&mut s, p, &opts.host, opts.port).await?;
                Stream::Tcp(s)
            }
        },
    };
    let after_tls: Stream = match &opts.tls {
        None => base,
        Some(t) => {
            let io: Box<dyn Io> = match base {
                Stream::Tcp(s) => Box::new(s),
                Stream::Other(s) => s,
                Stream::Ws(_) => unreachable!("WebSocket is layered after TLS"),
            };
            Stream::Other(Box::new(tls::handshake(io, t, &opts.host).await?))
        }
    };
    if opts.kind != TransportKind::WebSockets {
        return Ok(after_tls);
    }
    let io: Box<dyn Io> = match after_tls {
        Stream::Tcp(s) => Box::new(s),
        Stream::Other(s) => s,
        Stream::Ws(_) => unreachable!(),
    };
    let scheme = if opts.tls.is_some() { "wss" } else { "ws" };
    let path = if opts.ws_path.starts_with('/') {
        opts.ws_path.clone()
    } else {
        format!("/{}", opts.ws_path)
    };
    let host = if opts.host.contains(':') {
        format!("[{}]", opts.host)
    } else {
        opts.host.clone()
    };
    let url = format!("{scheme}://{host}:{}{path}", opts.port);
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::WebSocket(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    for (k, v) in &opts.ws_headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k
            .parse()
            .map_err(|_| ConnectError::InvalidArgument(format!("invalid header name {k:?}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| ConnectError::InvalidArgument(format!("invalid header value {v:?}")))?;
        headers.insert(name, value);
    }
    let (ws, _response) = tokio_tungstenite::client_async(request, io)
        .await
        .map_err(|e| ConnectError::WebSocket(e.to_string()))?;
    Ok(Stream::Ws(Box::new(ws)))
}
