//! Opening the byte stream to the broker: TCP (optionally through a SOCKS4/SOCKS5/HTTP
//! proxy), Unix sockets, TLS (rustls, ring provider) and WebSocket (subprotocol `mqtt`).

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
#[cfg(not(target_os = "linux"))]
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

#[cfg(target_os = "linux")]
use super::plain_tcp::{TcpReader, TcpWriter};
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
    /// The server's certificate was refused: OpenSSL's verify code and text.
    #[error("certificate verify failed: {message}")]
    TlsVerify { code: i64, message: String },
    #[error("TLS error: {0}")]
    Tls(String),
    /// The client certificate or key could not be loaded (bad file, wrong password).
    #[error("TLS key error: {0}")]
    TlsKey(String),
    /// The TLS settings leave nothing to negotiate (e.g. no usable cipher suite).
    #[error("{0}")]
    TlsSetup(String),
    /// The handshake failed as OpenSSL reports it: a fatal alert from the server (its
    /// OpenSSL text), or the server hanging up (`eof`).
    #[error("TLS error: {message}")]
    TlsProtocol { eof: bool, message: String },
    #[error("{0}")]
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
    #[cfg(target_os = "linux")]
    Tcp(TcpReader),
    #[cfg(not(target_os = "linux"))]
    Tcp(OwnedReadHalf),
    Other(ReadHalf<Box<dyn Io>>),
    Ws(SplitStream<Ws>),
}

pub enum Writer {
    #[cfg(target_os = "linux")]
    Tcp(TcpWriter),
    #[cfg(not(target_os = "linux"))]
    Tcp(OwnedWriteHalf),
    Other(WriteHalf<Box<dyn Io>>),
    Ws(SplitSink<Ws, WsMessage>),
}

impl Stream {
    /// The socket for direct writes: plain TCP only (see `connection::DirectWrite`).
    pub fn direct_write_fd(&self) -> Option<i32> {
        match self {
            Stream::Tcp(s) => crate::sockopt::tcp_fd(s),
            _ => None,
        }
    }

    pub fn split(self) -> io::Result<(Reader, Writer)> {
        Ok(match self {
            #[cfg(target_os = "linux")]
            Stream::Tcp(s) => {
                let (r, w) = super::plain_tcp::split(s)?;
                (Reader::Tcp(r), Writer::Tcp(w))
            }
            #[cfg(not(target_os = "linux"))]
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
        })
    }
}

impl Reader {
    /// After a read (plain TCP on Linux): acknowledge the received segments at once,
    /// see [`crate::sockopt::quickack`]. Called once the read bytes were handled, so the extra system
    /// call does not delay their events.
    pub fn quickack(&self) {
        #[cfg(target_os = "linux")]
        if let Reader::Tcp(r) = self {
            crate::sockopt::quickack(r.fd());
        }
    }

    /// Appends received bytes to `buf`; `Ok(0)` at end of stream. Cancel-safe.
    pub async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            #[cfg(target_os = "linux")]
            Reader::Tcp(r) => r.read(buf).await,
            #[cfg(not(target_os = "linux"))]
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

    /// Writes `segments`, then `tail`: vectored on plain TCP (one system call for many
    /// segments), one after the other elsewhere.
    pub async fn write_segments(&mut self, segments: &[Bytes], tail: &[u8]) -> io::Result<()> {
        match self {
            Writer::Tcp(w) => write_all_vectored(w, segments, tail).await,
            Writer::Other(w) => {
                for seg in segments {
                    w.write_all(seg).await?;
                }
                w.write_all(tail).await?;
                w.flush().await
            }
            Writer::Ws(w) => {
                // One WebSocket message, as `write_all` sends (this copy is the
                // WebSocket path's, which frames everything anyway).
                let mut all = BytesMut::with_capacity(
                    segments.iter().map(|s| s.len()).sum::<usize>() + tail.len(),
                );
                for seg in segments {
                    all.extend_from_slice(seg);
                }
                all.extend_from_slice(tail);
                w.send(WsMessage::Binary(all.freeze()))
                    .await
                    .map_err(io::Error::other)
            }
        }
    }

    pub async fn shutdown(&mut self) {
        let _ = match self {
            #[cfg(target_os = "linux")]
            Writer::Tcp(w) => {
                w.shutdown();
                Ok(())
            }
            #[cfg(not(target_os = "linux"))]
            Writer::Tcp(w) => w.shutdown().await,
            Writer::Other(w) => w.shutdown().await,
            Writer::Ws(w) => w.close().await.map_err(io::Error::other),
        };
    }
}

/// `write_all` for a list of buffers, with `writev`: a partial write resumes inside the
/// buffer it stopped in.
async fn write_all_vectored(
    #[cfg(target_os = "linux")] w: &mut TcpWriter,
    #[cfg(not(target_os = "linux"))] w: &mut OwnedWriteHalf,
    segments: &[Bytes],
    tail: &[u8],
) -> io::Result<()> {
    // At most this many buffers per call (IOV_MAX is 1024 on Linux).
    const MAX_IOV: usize = 64;
    let parts = || segments.iter().map(|b| &b[..]).chain(std::iter::once(tail));
    let total: usize = parts().map(<[u8]>::len).sum();
    let mut done = 0;
    while done < total {
        let mut skip = done;
        let mut slices = Vec::with_capacity(MAX_IOV);
        for part in parts() {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices.push(io::IoSlice::new(&part[skip..]));
            skip = 0;
            if slices.len() == MAX_IOV {
                break;
            }
        }
        let n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
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
        #[cfg(unix)]
        TransportKind::Unix => {
            let s = tokio::net::UnixStream::connect(std::path::Path::new(&opts.host)).await?;
            Stream::Other(Box::new(s))
        }
        #[cfg(not(unix))]
        TransportKind::Unix => {
            return Err(ConnectError::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unix socket transport is only available on Unix",
            )))
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
    let mut io = io;
    ws_handshake(&mut io, opts).await?;
    let ws = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
    Ok(Stream::Ws(Box::new(ws)))
}

/// Client side of the WebSocket opening handshake (RFC 6455 section 4.1), done by hand
/// because paho-mqtt checks only what it needs: a `Connection` header naming `upgrade`
/// and a matching `Sec-WebSocket-Accept`. The status line and the server's
/// `Sec-WebSocket-Protocol` (brokers answer `mqtt`, some test servers another or none)
/// are not checked, so every server paho connects to is accepted. The error texts are
/// paho's, which its users and tests match.
async fn ws_handshake(io: &mut Box<dyn Io>, opts: &TransportOptions) -> Result<(), ConnectError> {
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
    let key = generate_key();
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), format!("{host}:{}", opts.port)),
        ("Upgrade".into(), "websocket".into()),
        ("Connection".into(), "Upgrade".into()),
        ("Sec-WebSocket-Key".into(), key.clone()),
        ("Sec-WebSocket-Version".into(), "13".into()),
        ("Sec-WebSocket-Protocol".into(), "mqtt".into()),
    ];
    for (k, v) in &opts.ws_headers {
        let bad = |c: char| c.is_control() || c == ':';
        if k.is_empty() || k.chars().any(|c| bad(c) || c == ' ') {
            return Err(ConnectError::InvalidArgument(format!(
                "invalid header name {k:?}"
            )));
        }
        if v.chars().any(|c| c == '\r' || c == '\n') {
            return Err(ConnectError::InvalidArgument(format!(
                "invalid header value {v:?}"
            )));
        }
        // A user header replaces a default of the same name (HTTP names are case-insensitive).
        match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
            Some(slot) => slot.1 = v.clone(),
            None => headers.push((k.clone(), v.clone())),
        }
    }
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    // One write: simple servers read the request with a single recv().
    io.write_all(request.as_bytes()).await?;
    io.flush().await?;

    let expected = derive_accept_key(key.as_bytes());
    let (mut upgraded, mut accepted) = (false, false);
    let mut line: Vec<u8> = Vec::new();
    let mut total = 0usize;
    loop {
        // Byte by byte, so not a byte of the first MQTT packet is read past the headers.
        let mut b = [0u8; 1];
        let n = match io.read(&mut b).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(ConnectError::WebSocket("WebSocket handshake error".into()));
        }
        total += 1;
        if total > 64 * 1024 {
            return Err(ConnectError::WebSocket("WebSocket handshake error".into()));
        }
        if b[0] != b'\n' {
            line.push(b[0]);
            continue;
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches('\r')
            .to_string();
        line.clear();
        if text.is_empty() {
            break;
        }
        let Some((name, value)) = text.split_once(':') else {
            continue; // the status line
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("connection") {
            if !value.to_ascii_lowercase().contains("upgrade") {
                return Err(ConnectError::WebSocket(
                    "WebSocket handshake error, connection not upgraded".into(),
                ));
            }
            upgraded = true;
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            if value != expected {
                return Err(ConnectError::WebSocket(
                    "WebSocket handshake error, invalid secret key".into(),
                ));
            }
            accepted = true;
        }
    }
    if upgraded && accepted {
        Ok(())
    } else {
        Err(ConnectError::WebSocket("WebSocket handshake error".into()))
    }
}
