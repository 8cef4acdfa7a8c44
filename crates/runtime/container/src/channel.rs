//! The synchronisation channel between the runtime and the processes it forks.
//!
//! A `SOCK_SEQPACKET` socketpair keeps message boundaries; both ends are
//! close-on-exec, so a successful `execve` in the container closes the child's end
//! and the runtime reads end-of-file.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};

/// One message of the setup protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: carry on.
    Go,
    /// Intermediate child → parent: a new user namespace exists; write its id maps.
    MapIds,
    /// Intermediate child → parent: the container process's pid (host view).
    Pid(i32),
    /// Container → parent: mounts are done, run createRuntime hooks now.
    RunCreateRuntimeHooks,
    /// Container → parent: set up and about to wait for `start` (or exec).
    Ready,
    /// Either side: what failed.
    Error(String),
    /// Container → parent: a seccomp listener is open as this descriptor in
    /// the container process; take a copy (pidfd_getfd) and answer `Go`.
    /// Sent with a single `write(2)` by [`crate::process`], which is why the
    /// encoding is fixed: `S` and the descriptor, little-endian.
    SeccompFd(i32),
    /// Container → parent (user namespaces only): open this bind-mount
    /// source (`true`: recursively) from outside the user namespace, where
    /// the host's root may reach it, and send it back as a detached mount.
    MountSource(bool, String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Go => vec![b'G'],
            Msg::MapIds => vec![b'M'],
            Msg::Pid(p) => {
                let mut v = vec![b'P'];
                v.extend_from_slice(&p.to_le_bytes());
                v
            }
            Msg::RunCreateRuntimeHooks => vec![b'H'],
            Msg::Ready => vec![b'R'],
            Msg::SeccompFd(fd) => seccomp_fd_message(*fd).to_vec(),
            Msg::MountSource(rec, path) => {
                let mut v = vec![b'B', u8::from(*rec)];
                v.extend_from_slice(path.as_bytes());
                v
            }
            Msg::Error(s) => {
                let mut v = vec![b'E'];
                v.extend_from_slice(s.as_bytes());
                v
            }
        }
    }

    fn decode(b: &[u8]) -> io::Result<Msg> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sync message");
        Ok(match b.first().ok_or_else(bad)? {
            b'G' => Msg::Go,
            b'M' => Msg::MapIds,
            b'P' => Msg::Pid(i32::from_le_bytes(
                b.get(1..5).ok_or_else(bad)?.try_into().map_err(|_| bad())?,
            )),
            b'H' => Msg::RunCreateRuntimeHooks,
            b'R' => Msg::Ready,
            b'S' => Msg::SeccompFd(i32::from_le_bytes(
                b.get(1..5).ok_or_else(bad)?.try_into().map_err(|_| bad())?,
            )),
            b'E' => Msg::Error(String::from_utf8_lossy(&b[1..]).into_owned()),
            b'B' => Msg::MountSource(
                *b.get(1).ok_or_else(bad)? != 0,
                String::from_utf8(b[2..].to_vec()).map_err(|_| bad())?,
            ),
            _ => return Err(bad()),
        })
    }
}

/// The bytes of [`Msg::SeccompFd`], built without allocating.
pub fn seccomp_fd_message(fd: i32) -> [u8; 5] {
    let b = fd.to_le_bytes();
    [b'S', b[0], b[1], b[2], b[3]]
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Creates a connected pair (parent end, child end).
pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        let buf = msg.encode();
        socket::send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// Receives one message; `None` at end-of-file (the peer exited or exec'd).
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        let mut buf = [0u8; 4096];
        let mut reset = false;
        loop {
            match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => return Msg::decode(&buf[..n]).map(Some),
                Err(nix::errno::Errno::EINTR) => continue,
                // A peer that exited without reading what we sent resets the
                // connection; the error is reported once, ahead of the
                // messages it sent before exiting (its error report): read on.
                Err(nix::errno::Errno::ECONNRESET) if !reset => reset = true,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends `Go` with descriptor `fd` attached (SCM_RIGHTS).
    pub fn send_fd(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let buf = Msg::Go.encode();
        let iov = [io::IoSlice::new(&buf)];
        let fds = [fd.as_raw_fd()];
        socket::sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &[socket::ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// Receives the descriptor of [`Channel::send_fd`]; an `Error` message
    /// becomes the error.
    pub fn recv_fd(&self) -> Result<OwnedFd, String> {
        use std::os::fd::FromRawFd;
        let mut buf = [0u8; 4096];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let msg = socket::recvmsg::<()>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("sync channel: {e}"))?;
        let mut fd = None;
        for c in msg.cmsgs().map_err(|e| format!("sync channel: {e}"))? {
            if let socket::ControlMessageOwned::ScmRights(list) = c {
                for raw in list {
                    // SAFETY: the kernel just installed this descriptor for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    fd.get_or_insert(owned);
                }
            }
        }
        let n = msg.bytes;
        match Msg::decode(&buf[..n]) {
            Ok(Msg::Go) => fd.ok_or_else(|| "sync channel: no descriptor came with Go".into()),
            Ok(Msg::Error(e)) => Err(e),
            Ok(m) => Err(format!(
                "unexpected sync message {m:?}, wanted a descriptor"
            )),
            Err(_) if n == 0 => Err("peer exited before sending a descriptor".into()),
            Err(e) => Err(format!("sync channel: {e}")),
        }
    }

    /// Receives and insists on `want`; an `Error` message becomes the error.
    pub fn expect(&self, want: &Msg) -> Result<(), String> {
        match self.recv() {
            Ok(Some(m)) if &m == want => Ok(()),
            Ok(Some(Msg::Error(e))) => Err(e),
            Ok(Some(m)) => Err(format!("unexpected sync message {m:?}, wanted {want:?}")),
            Ok(None) => Err(format!("peer exited before sending {want:?}")),
            Err(e) => Err(format!("sync channel: {e}")),
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Go,
            Msg::MapIds,
            Msg::Pid(12345),
            Msg::RunCreateRuntimeHooks,
            Msg::Ready,
            Msg::SeccompFd(7),
            Msg::Error("boom: x".into()),
            Msg::MountSource(true, "/a b/c".into()),
            Msg::MountSource(false, "/".into()),
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        let f = std::fs::File::open("/").unwrap();
        a.send_fd(f.as_fd()).unwrap();
        let got = b.recv_fd().unwrap();
        let same = |x: BorrowedFd<'_>| nix::sys::stat::fstat(x.as_raw_fd()).unwrap().st_ino;
        assert_eq!(same(got.as_fd()), same(f.as_fd()));
        a.send(&Msg::Error("no".into())).unwrap();
        assert_eq!(b.recv_fd().unwrap_err(), "no");
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }

    #[test]
    fn a_peer_that_exits_unread_still_delivers_its_last_words() {
        let (a, b) = pair().unwrap();
        // b's last message is queued for a; a's message to b stays unread.
        b.send(&Msg::Error("failed".into())).unwrap();
        a.send(&Msg::Go).unwrap();
        drop(b);
        assert_eq!(a.recv().unwrap(), Some(Msg::Error("failed".into())));
        assert_eq!(a.recv().unwrap(), None);
    }
}
