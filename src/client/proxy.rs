//! Proxy handshakes run on an open TCP stream before MQTT (or TLS) starts:
//! SOCKS4a (no RFC; the de-facto protocol), SOCKS5 (RFC 1928, RFC 1929 for
//! username/password) and HTTP CONNECT (RFC 9110 §9.3.6).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::transport::{ConnectError, ProxyKind, ProxyOptions};

fn err(msg: impl Into<String>) -> ConnectError {
    ConnectError::Proxy(msg.into())
}

pub async fn handshake(
    s: &mut TcpStream,
    proxy: &ProxyOptions,
    host: &str,
    port: u16,
) -> Result<(), ConnectError> {
    match proxy.kind {
        ProxyKind::Socks4 => socks4(s, proxy, host, port).await,
        ProxyKind::Socks5 => socks5(s, proxy, host, port).await,
        ProxyKind::Http => http_connect(s, proxy, host, port).await,
    }
}

async fn socks4(
    s: &mut TcpStream,
    proxy: &ProxyOptions,
    host: &str,
    port: u16,
) -> Result<(), ConnectError> {
    let mut req = vec![4u8, 1];
    req.extend_from_slice(&port.to_be_bytes());
    let ip4: Option<std::net::Ipv4Addr> = host.parse().ok();
    match ip4 {
        Some(ip) => req.extend_from_slice(&ip.octets()),
        // SOCKS4a: 0.0.0.x tells the proxy to resolve the name sent after the user id.
        None => req.extend_from_slice(&[0, 0, 0, 1]),
    }
    req.extend_from_slice(proxy.username.as_deref().unwrap_or("").as_bytes());
    req.push(0);
    if ip4.is_none() {
        req.extend_from_slice(host.as_bytes());
        req.push(0);
    }
    s.write_all(&req).await?;
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).await?;
    if reply[1] != 0x5a {
        return Err(err(format!(
            "SOCKS4 request rejected (code {:#x})",
            reply[1]
        )));
    }
    Ok(())
}

async fn socks5(
    s: &mut TcpStream,
    proxy: &ProxyOptions,
    host: &str,
    port: u16,
) -> Result<(), ConnectError> {
    let with_auth = proxy.username.is_some();
    if with_auth {
        s.write_all(&[5, 2, 0, 2]).await?;
    } else {
        s.write_all(&[5, 1, 0]).await?;
    }
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await?;
    if choice[0] != 5 {
        return Err(err("not a SOCKS5 proxy"));
    }
    match choice[1] {
        0 => {}
        2 if with_auth => {
            let user = proxy.username.as_deref().unwrap_or("");
            let pass = proxy.password.as_deref().unwrap_or("");
            if user.len() > 255 || pass.len() > 255 {
                return Err(err("SOCKS5 username or password longer than 255 bytes"));
            }
            let mut req = vec![1u8, user.len() as u8];
            req.extend_from_slice(user.as_bytes());
            req.push(pass.len() as u8);
            req.extend_from_slice(pass.as_bytes());
            s.write_all(&req).await?;
            let mut status = [0u8; 2];
            s.read_exact(&mut status).await?;
            if status[1] != 0 {
                return Err(err("SOCKS5 authentication failed"));
            }
        }
        _ => {
            return Err(err(
                "SOCKS5 proxy accepts none of our authentication methods",
            ))
        }
    }
    let mut req = vec![5u8, 1, 0];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            if host.len() > 255 {
                return Err(err("host name longer than 255 bytes"));
            }
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    if head[1] != 0 {
        return Err(err(format!("SOCKS5 connect failed (code {:#x})", head[1])));
    }
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await?;
            n[0] as usize
        }
        _ => return Err(err("SOCKS5 reply with an unknown address type")),
    };
    let mut rest = vec![0u8; addr_len + 2];
    s.read_exact(&mut rest).await?;
    Ok(())
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn http_connect(
    s: &mut TcpStream,
    proxy: &ProxyOptions,
    host: &str,
    port: u16,
) -> Result<(), ConnectError> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(user) = &proxy.username {
        let cred = format!("{user}:{}", proxy.password.as_deref().unwrap_or(""));
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(cred.as_bytes())
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    // Read byte by byte up to the blank line so no MQTT byte is consumed by mistake.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(err("HTTP proxy response header too long"));
        }
        if s.read(&mut byte).await? == 0 {
            return Err(err("HTTP proxy closed the connection"));
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or("");
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    if !code.starts_with('2') {
        return Err(err(format!("HTTP proxy refused CONNECT: {status_line}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
