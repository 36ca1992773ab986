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
