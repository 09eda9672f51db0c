//! A TCP connection's `TCP_INFO` (Linux): how many bytes its peer acknowledged, its round trip.

/// Bytes of the connection `sock` its peer acknowledged (`TCP_INFO`'s `tcpi_bytes_acked`: every
/// byte written, the handshake included, once acknowledged; Linux 4.1 and later).
pub(super) fn tcp_bytes_acked(sock: &socket2::Socket) -> std::io::Result<u64> {
    let (info, len) = tcp_info_len(sock)?;
    let wanted =
        std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + std::mem::size_of::<u64>();
    if len < wanted {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this kernel's TCP_INFO has no tcpi_bytes_acked (Linux 4.1 and later)",
        ));
    }
    Ok(info.tcpi_bytes_acked)
}

/// The connection's `TCP_INFO` (its smoothed round trip, `tcpi_rtt`, is in every kernel's).
pub(super) fn tcp_info(sock: &socket2::Socket) -> std::io::Result<libc::tcp_info> {
    tcp_info_len(sock).map(|(info, _)| info)
}

/// `TCP_INFO`, and how many of its bytes this kernel wrote (the rest are zero).
#[allow(unsafe_code)]
fn tcp_info_len(sock: &socket2::Socket) -> std::io::Result<(libc::tcp_info, usize)> {
    use std::os::fd::AsRawFd;
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the descriptor is `sock`'s, open while it is borrowed; `info` is writable memory of
    // `len` bytes, and the kernel writes at most `len` bytes and sets `len` to how many.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `tcp_info` is plain integers, for which zeroed memory is a valid value; the kernel
    // overwrote the first `len` bytes with its own.
    let info = unsafe { info.assume_init() };
    Ok((info, len as usize))
}
