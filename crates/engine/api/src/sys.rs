//! The one system call the HTTP layer makes itself.

use std::os::fd::RawFd;

/// How many bytes written on the unix stream socket `fd` its peer has not
/// read yet (`SIOCOUTQ`: a unix socket's sent data stays charged to the
/// sender until the receiver consumes it); `None` if the kernel will not
/// say (not a unix socket, closed).
#[allow(unsafe_code)]
pub fn unread_by_peer(fd: RawFd) -> Option<i32> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one c_int through the pointer,
    // which points at `n`, alive for the call; a bad or reused descriptor
    // makes the call fail or answer for another socket, never touch memory.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    (r == 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn counts_what_the_peer_has_not_read() {
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(unread_by_peer(a.as_raw_fd()), Some(0));
        a.write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            .unwrap();
        assert!(unread_by_peer(a.as_raw_fd()).unwrap() > 0);
        let mut buf = [0u8; 64];
        let _ = b.read(&mut buf).unwrap();
        assert_eq!(unread_by_peer(a.as_raw_fd()), Some(0));
        let f = tempfile::tempfile().unwrap();
        assert_eq!(unread_by_peer(f.as_raw_fd()), None);
    }
}
