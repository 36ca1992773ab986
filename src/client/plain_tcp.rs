//! A plain TCP connection on Linux, registered with tokio only for what the connection
//! task waits for.
//!
//! Faces read this socket themselves while they wait (see `direct_read`). A tokio
//! `TcpStream` stays registered for readability all the while, so every incoming packet
//! also woke the runtime thread parked in `epoll_wait`, only for the connection task to
//! step aside: one more thread competing for the CPUs per message, and most of a round
//! trip's tail latency on a small machine. Here the write side is registered for
//! writability alone (incoming bytes do not wake it, `epoll(7)` filters by the events
//! asked for), and the read side holds a registration of a duplicate of the socket only
//! while the connection task itself reads: [`TcpReader::step_aside`] drops it.

use std::io::{self, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

pub struct TcpReader {
    /// The socket stays open while either half lives (the connection task drains the
    /// read side after the write loop, which owned the writer, has ended).
    socket: Arc<std::net::TcpStream>,
    /// Present while the connection task watches the socket for readability.
    watch: Option<AsyncFd<OwnedFd>>,
}

pub struct TcpWriter(AsyncFd<Arc<std::net::TcpStream>>);

/// Splits `s` (deregistered from tokio first, which `into_std` does).
pub fn split(s: tokio::net::TcpStream) -> io::Result<(TcpReader, TcpWriter)> {
    let s = Arc::new(s.into_std()?);
    // SAFETY: the stream owns its socket and keeps it open, under the same descriptor,
    // for as long as the registration holds it.
    let writer =
        TcpWriter(unsafe { AsyncFd::register_with_interest(Arc::clone(&s), Interest::WRITABLE)? });
    let mut reader = TcpReader {
        socket: s,
        watch: None,
    };
    reader.watch()?;
    Ok((reader, writer))
}

impl TcpReader {
    pub fn fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    pub fn watching(&self) -> bool {
        self.watch.is_some()
    }

    /// Registers the socket's read side with tokio (no-op if it is).
    pub fn watch(&mut self) -> io::Result<()> {
        if self.watch.is_none() {
            // A duplicate: one epoll instance holds one registration per descriptor, and
            // the writer's registration is of the socket's own.
            let dup = crate::sockopt::dup(self.fd()).ok_or_else(io::Error::last_os_error)?;
            // SAFETY: `dup` was just created and is owned by nobody else.
            let owned = unsafe { OwnedFd::from_raw_fd(dup) };
            // SAFETY: `owned` keeps `dup` open for as long as the registration holds it.
            self.watch =
                Some(unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE)? });
        }
        Ok(())
    }

    /// Stops tokio from waking for incoming bytes: someone else reads them now.
    pub fn step_aside(&mut self) {
        self.watch = None;
    }

    /// Waits until the socket is readable (registering it first). Readiness is cleared
    /// before the caller reads: bytes arriving from then on raise a new event, whoever
    /// (this task or a face) reads the ones there now.
    pub async fn readable(&mut self) -> io::Result<()> {
        self.watch()?;
        let watch = self.watch.as_ref().expect("registered above");
        watch.readable().await?.clear_ready();
        Ok(())
    }

    /// Appends received bytes to `buf`; `Ok(0)` at end of stream. Cancel-safe.
    pub async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            match crate::sockopt::recv_now(self.fd(), buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl TcpWriter {
    /// Runs `f` on the socket until it does not report `WouldBlock`, waiting for
    /// writability in between.
    async fn io<R>(
        &self,
        mut f: impl FnMut(&std::net::TcpStream) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            let mut ready = self.0.writable().await?;
            if let Ok(r) = ready.try_io(|s| f(s.get_ref())) {
                return r;
            }
        }
    }

    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.io(|mut s| s.write(data)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    pub async fn write_vectored(&self, slices: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.io(|mut s| s.write_vectored(slices)).await
    }

    pub fn shutdown(&self) {
        let _ = self.0.get_ref().shutdown(Shutdown::Write);
    }
}
