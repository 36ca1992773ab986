//! The level-triggered wake-up behind `ClientCore.fileno()`: one end of a connected
//! socket pair that is readable while events wait.
//!
//! A socket pair rather than a pipe or an eventfd: on Windows, asyncio's selector loop
//! (`add_reader`, what aiomqtt uses) accepts only sockets. Unix uses an AF_UNIX pair;
//! other platforms a loopback TCP pair.

use std::io::{self, Read, Write};

#[cfg(unix)]
type Half = std::os::unix::net::UnixStream;
#[cfg(not(unix))]
type Half = std::net::TcpStream;

pub struct Notifier {
    read: Half,
    write: Half,
}

impl Notifier {
    pub fn new() -> io::Result<Self> {
        let (read, write) = pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(Self { read, write })
    }

    /// Makes the read end readable. A full socket buffer still leaves earlier bytes
    /// unread, so ignoring `WouldBlock` loses no wake-up.
    pub fn signal(&self) {
        let _ = (&self.write).write(&[1]);
    }

    /// Consumes every pending byte; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut sink = [0u8; 64];
        let mut total = 0;
        while let Ok(k) = (&self.read).read(&mut sink) {
            if k == 0 {
                break;
            }
            total += k;
        }
        total
    }

    /// The OS handle of the read end (an fd on Unix, a SOCKET on Windows), for
    /// `select`/`add_reader`.
    pub fn fileno(&self) -> i64 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            self.read.as_raw_fd() as i64
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::AsRawSocket;
            self.read.as_raw_socket() as i64
        }
    }
}

#[cfg(unix)]
fn pair() -> io::Result<(Half, Half)> {
    std::os::unix::net::UnixStream::pair()
}

#[cfg(not(unix))]
fn pair() -> io::Result<(Half, Half)> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let write = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (read, _) = listener.accept()?;
    write.set_nodelay(true)?;
    Ok((read, write))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_after_signal_until_cleared() {
        let n = Notifier::new().unwrap();
        assert_eq!(n.clear(), 0);
        n.signal();
        n.signal();
        assert_eq!(n.clear(), 2);
        assert_eq!(n.clear(), 0);
    }
}
