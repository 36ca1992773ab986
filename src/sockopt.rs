//! Socket options that neither the standard library nor tokio expose.

/// Asks the kernel to acknowledge received TCP segments at once (Linux `TCP_QUICKACK`,
/// which the kernel clears again by itself, hence after every read). A peer that does
/// not set TCP_NODELAY (mosquitto's default, paho-mqtt's) keeps its next small write
/// behind Nagle's algorithm until its previous one is acknowledged; when we have no data
/// to answer with (an acknowledgement withheld for a consumer, or none due at all), the
/// kernel's delayed ACK makes that a 40 ms stall per round trip.
///
/// `fd` must be an open TCP socket; other platforms do nothing.
#[cfg(target_os = "linux")]
pub fn quickack(fd: i32) {
    let on: libc::c_int = 1;
    // SAFETY: the caller's fd is an open socket and the option value is a c_int of the
    // given size. A failure only means the kernel's default ACK timing: ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub fn quickack(_fd: i32) {}

/// The fd to pass to [`quickack`] and [`send_now`] for a TCP stream (None where they do
/// nothing).
#[cfg(target_os = "linux")]
pub fn tcp_fd(s: &tokio::net::TcpStream) -> Option<i32> {
    use std::os::fd::AsRawFd;
    Some(s.as_raw_fd())
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_fd(_s: &tokio::net::TcpStream) -> Option<i32> {
    None
}

/// One non-blocking `send` of `buf` on the TCP socket `fd`: the bytes taken (maybe fewer
/// than `buf.len()`), or None when nothing could be sent now (would block, or an error
/// the connection's own tasks will see). No SIGPIPE on a closed peer.
#[cfg(target_os = "linux")]
pub fn send_now(fd: i32, buf: &[u8]) -> Option<usize> {
    // SAFETY: `fd` is an open socket (the caller's contract) and `buf` is valid for
    // reads of `buf.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    (n > 0).then_some(n as usize)
}

#[cfg(not(target_os = "linux"))]
pub fn send_now(_fd: i32, _buf: &[u8]) -> Option<usize> {
    None
}

/// One non-blocking `recv` on the TCP socket `fd` into `buf`'s spare capacity (which the
/// caller reserved): the bytes read (0 at end of stream), or the error (`WouldBlock` when
/// nothing is there).
#[cfg(target_os = "linux")]
pub fn recv_now(fd: i32, buf: &mut bytes::BytesMut) -> std::io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: `fd` is an open socket (the caller's contract); `spare` is writable memory
    // of `spare.len()` bytes owned by `buf`, and only the `n` bytes the kernel wrote are
    // then marked initialized.
    let n = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: see above.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(not(target_os = "linux"))]
pub fn recv_now(_fd: i32, _buf: &mut bytes::BytesMut) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::WouldBlock.into())
}

/// Blocks until one of `fds` is readable (or has an error or hang-up), a signal arrives
/// or `timeout` passes. Nothing is read.
#[cfg(target_os = "linux")]
pub fn poll_readable(fds: [i32; 2], timeout: std::time::Duration) {
    let mut polled = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // The field types differ between C libraries (musl is moving `time_t` to 64 bits on
    // 32-bit targets): cast to whatever they are; both values fit any of them.
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: `polled` is a valid array of `polled.len()` pollfd entries and `ts` a valid
    // timespec; a closed or reused fd only makes poll report it (or not), never unsafe.
    unsafe {
        libc::ppoll(
            polled.as_mut_ptr(),
            polled.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        );
    }
}

/// Not reached off Linux: only a thread that reads the socket directly polls it, and
/// threads read sockets directly on Linux only (`Client::wait`, `direct_read`).
#[cfg(not(target_os = "linux"))]
pub fn poll_readable(_fds: [i32; 2], timeout: std::time::Duration) {
    std::thread::sleep(timeout);
}

/// A duplicate of `fd` (close-on-exec), or None.
#[cfg(target_os = "linux")]
pub fn dup(fd: i32) -> Option<i32> {
    // SAFETY: `fd` is an open descriptor (the caller's contract); F_DUPFD_CLOEXEC only
    // creates a new descriptor.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    (d >= 0).then_some(d)
}

#[cfg(not(target_os = "linux"))]
pub fn dup(_fd: i32) -> Option<i32> {
    None
}

/// Shuts both directions of the socket `fd` down (for every descriptor of it).
#[cfg(target_os = "linux")]
pub fn shutdown(fd: i32) {
    // SAFETY: `fd` is an open socket (the caller's contract); failures are ignored.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

#[cfg(not(target_os = "linux"))]
pub fn shutdown(_fd: i32) {}
