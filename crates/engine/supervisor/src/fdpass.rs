//! Descriptors passed beside bytes on unix sockets (SCM_RIGHTS): the
//! daemon's requests and the supervisor's answers, and the forker's jobs.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// The most descriptors one message brings.
const MAX_FDS: usize = 8;

/// Sends `bytes` with `fds` attached to their first byte. Returns how many
/// bytes went: a stream socket may take fewer, and the caller writes the
/// rest (the descriptors went with the first).
pub(crate) fn send(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let iov = [io::IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsg = if fds.is_empty() { &[][..] } else { &cmsg[..] };
    loop {
        match sendmsg::<()>(sock, &iov, cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => {}
            sent => return Ok(sent?),
        }
    }
}

/// Receives into `buf` once (`flags` beside MSG_CMSG_CLOEXEC), adding the
/// descriptors that came to `fds`. Returns the bytes read: 0 at end of file.
pub(crate) fn recv(
    sock: RawFd,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    flags: MsgFlags,
) -> nix::Result<usize> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<()>(
        sock,
        &mut iov,
        Some(&mut cmsg),
        flags | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(list) = c {
            // SAFETY: the kernel installed these descriptors for us.
            fds.extend(
                list.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok(msg.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn bytes_and_descriptors_cross_and_a_closed_end_reads_nothing() {
        let (a, b) = UnixStream::pair().unwrap();
        let file: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        assert_eq!(
            send(a.as_raw_fd(), b"hello", &[file.as_raw_fd()]).unwrap(),
            5
        );
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = recv(b.as_raw_fd(), &mut buf, &mut fds, MsgFlags::empty()).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        assert_eq!(send(a.as_raw_fd(), b"!", &[]).unwrap(), 1);
        let n = recv(b.as_raw_fd(), &mut buf, &mut fds, MsgFlags::empty()).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"!"[..], 1));
        drop(a);
        assert_eq!(
            recv(b.as_raw_fd(), &mut buf, &mut fds, MsgFlags::empty()).unwrap(),
            0
        );
    }
}
