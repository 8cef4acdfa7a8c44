//! A blocking client of the supervisor (the engine calls it from
//! `spawn_blocking` or a dedicated thread).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::protocol::{
    ContainerSpec, ContainerStatus, ErrorKind, Event, ExecSpec, ExecStatus, Request, Response,
};
use crate::server::{read_line_with_fds, SOCKET};

/// Failures of a supervisor call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("supervisor connection: {0}")]
    Io(#[from] io::Error),
    #[error("supervisor: malformed response {0:?}")]
    Protocol(String),
    #[error("{message}")]
    Failed { kind: ErrorKind, message: String },
}

/// One connection to the supervisor.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    /// Bytes read past the last response (the next one's, when requests
    /// were sent ahead: [`Client::start_prepared`]).
    buf: Vec<u8>,
}

impl Client {
    /// Connects to the supervisor whose root is `root`.
    pub fn connect(root: &Path) -> io::Result<Client> {
        Ok(Client {
            stream: UnixStream::connect(root.join(SOCKET))?,
            buf: Vec::new(),
        })
    }

    /// Sends one request and reads its response and descriptors.
    pub fn call(&mut self, req: &Request) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        self.call_with(req, None)
    }

    /// [`Self::call`], with a descriptor sent beside the request.
    fn call_with(
        &mut self,
        req: &Request,
        fd: Option<BorrowedFd>,
    ) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        self.send_with(req, fd)?;
        self.response()
    }

    /// Sends one request (and a descriptor beside it) without reading its
    /// response.
    fn send_with(&mut self, req: &Request, fd: Option<BorrowedFd>) -> io::Result<()> {
        let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
        line.push(b'\n');
        match fd {
            None => self.stream.write_all(&line)?,
            Some(fd) => {
                let n = crate::fdpass::send(self.stream.as_raw_fd(), &line, &[fd.as_raw_fd()])?;
                // The descriptor went with the first bytes; the rest follow.
                self.stream.write_all(&line[n..])?;
            }
        }
        Ok(())
    }

    /// Reads the response to the oldest request not answered yet.
    fn response(&mut self) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        let (text, fds) = read_line_with_fds(&self.stream, &mut self.buf)?;
        let resp: Response =
            serde_json::from_str(&text).map_err(|_| ClientError::Protocol(text.clone()))?;
        if let Response::Error { kind, message } = resp {
            return Err(ClientError::Failed { kind, message });
        }
        Ok((resp, fds))
    }

    fn expect_ok(&mut self, req: &Request) -> Result<(), ClientError> {
        self.call(req).map(|_| ())
    }

    pub fn ping(&mut self) -> Result<i32, ClientError> {
        match self.call(&Request::Ping)?.0 {
            Response::Pong { pid } => Ok(pid),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// Starts a container; returns its host pid.
    pub fn start(&mut self, spec: ContainerSpec) -> Result<i32, ClientError> {
        self.start_with(spec, None, false).map(|(pid, _)| pid)
    }

    /// Prepares a container for a later start (see [`Request::Prepare`]);
    /// returns the pid of its waiting process.
    pub fn prepare(
        &mut self,
        mut spec: ContainerSpec,
        netns: Option<BorrowedFd>,
    ) -> Result<i32, ClientError> {
        spec.netns = netns.is_some();
        match self.call_with(&Request::Prepare { spec }, netns)?.0 {
            Response::Prepared { pid } => Ok(pid),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// Sends a [`Request::Prepare`] and returns at once: its answer is read
    /// by [`Client::start_prepared`] on this same connection, whose start
    /// the supervisor takes right after the preparation (requests of one
    /// connection are served in order), with no round trip between.
    pub fn send_prepare(
        &mut self,
        mut spec: ContainerSpec,
        netns: Option<BorrowedFd>,
    ) -> Result<(), ClientError> {
        spec.netns = netns.is_some();
        Ok(self.send_with(&Request::Prepare { spec }, netns)?)
    }

    /// The start of the container whose preparation went on this
    /// connection ([`Client::send_prepare`]): the prepared container is
    /// finished, or, if the preparation failed, the container starts anew.
    /// Returns its pid and status, as [`Client::start_status`], and the pid
    /// the preparation reported (`None` if it failed).
    pub fn start_prepared(
        &mut self,
        mut spec: ContainerSpec,
        netns: Option<BorrowedFd>,
    ) -> Result<(i32, Option<ContainerStatus>, Option<i32>), ClientError> {
        spec.netns = netns.is_some();
        let id = spec.id.clone();
        self.send_with(
            &Request::Start {
                spec,
                prepared: true,
            },
            netns,
        )?;
        let prepared = match self.response() {
            Ok((Response::Prepared { pid }, _)) => Some(pid),
            Ok((other, _)) => return Err(ClientError::Protocol(format!("{other:?}"))),
            // The start that follows does it all.
            Err(ClientError::Failed { message, .. }) => {
                tracing::debug!(id, message, "start not prepared");
                None
            }
            Err(e) => return Err(e),
        };
        let (pid, status) = match self.response()?.0 {
            Response::Started { pid, status } => (pid, status),
            other => return Err(ClientError::Protocol(format!("{other:?}"))),
        };
        Ok((pid, self.status_or_ask(&id, status), prepared))
    }

    /// The status a start answered with, else asked for (of a supervisor
    /// that does not send it; `None` if that fails).
    fn status_or_ask(
        &mut self,
        id: &str,
        status: Option<Box<ContainerStatus>>,
    ) -> Option<ContainerStatus> {
        match status {
            Some(s) => Some(*s),
            None => self.state(id).ok(),
        }
    }

    /// Starts a container in the network namespace `netns` (which the
    /// supervisor then holds for its restarts; `spec.netns` is set).
    pub fn start_in(
        &mut self,
        spec: ContainerSpec,
        netns: Option<BorrowedFd>,
    ) -> Result<i32, ClientError> {
        self.start_status(spec, netns, false).map(|(pid, _)| pid)
    }

    /// [`Client::start_in`], finishing the container prepared for it if
    /// `prepared` (see [`Request::Start`]), and also returning the
    /// container's status after the start (asked for separately of a
    /// supervisor that does not send it; `None` if that fails).
    pub fn start_status(
        &mut self,
        mut spec: ContainerSpec,
        netns: Option<BorrowedFd>,
        prepared: bool,
    ) -> Result<(i32, Option<ContainerStatus>), ClientError> {
        spec.netns = netns.is_some();
        let id = spec.id.clone();
        let (pid, status) = self.start_with(spec, netns, prepared)?;
        Ok((pid, self.status_or_ask(&id, status)))
    }

    fn start_with(
        &mut self,
        spec: ContainerSpec,
        netns: Option<BorrowedFd>,
        prepared: bool,
    ) -> Result<(i32, Option<Box<ContainerStatus>>), ClientError> {
        match self.call_with(&Request::Start { spec, prepared }, netns)?.0 {
            Response::Started { pid, status } => Ok((pid, status)),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    pub fn restart(&mut self, id: &str) -> Result<i32, ClientError> {
        match self.call(&Request::Restart { id: id.into() })?.0 {
            Response::Started { pid, .. } => Ok(pid),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    pub fn kill(&mut self, id: &str, signal: i32, stop: bool) -> Result<(), ClientError> {
        self.expect_ok(&Request::Kill {
            id: id.into(),
            signal,
            stop,
        })
    }

    /// Applies new limits to a live container's cgroup and/or sets its
    /// restart policy (see [`Request::Update`]).
    pub fn update(
        &mut self,
        id: &str,
        resources: Option<serde_json::Value>,
        restart: Option<crate::policy::RestartPolicy>,
    ) -> Result<(), ClientError> {
        self.expect_ok(&Request::Update {
            id: id.into(),
            resources,
            restart,
        })
    }

    pub fn pause(&mut self, id: &str) -> Result<(), ClientError> {
        self.expect_ok(&Request::Pause { id: id.into() })
    }

    pub fn resume(&mut self, id: &str) -> Result<(), ClientError> {
        self.expect_ok(&Request::Resume { id: id.into() })
    }

    pub fn delete(&mut self, id: &str, force: bool) -> Result<(), ClientError> {
        self.expect_ok(&Request::Delete {
            id: id.into(),
            force,
        })
    }

    pub fn state(&mut self, id: &str) -> Result<ContainerStatus, ClientError> {
        match self.call(&Request::State { id: id.into() })?.0 {
            Response::Status { status } => Ok(status),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    pub fn list(&mut self) -> Result<Vec<ContainerStatus>, ClientError> {
        match self.call(&Request::List)?.0 {
            Response::List { containers } => Ok(containers),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// The container's stdin (its pipe's write end, or the pty master).
    pub fn stdin(&mut self, id: &str) -> Result<OwnedFd, ClientError> {
        let (_, mut fds) = self.call(&Request::Stdin { id: id.into() })?;
        fds.pop()
            .ok_or_else(|| ClientError::Protocol("no descriptor with the stdin response".into()))
    }

    pub fn resize(&mut self, id: &str, height: u16, width: u16) -> Result<(), ClientError> {
        self.expect_ok(&Request::Resize {
            id: id.into(),
            height,
            width,
        })
    }

    /// Starts an exec; returns its pid, whether it has a terminal, and its
    /// descriptors: stdin, stdout, stderr (or the pty master alone).
    pub fn exec(&mut self, spec: ExecSpec) -> Result<(i32, bool, Vec<OwnedFd>), ClientError> {
        match self.call(&Request::Exec { spec })? {
            (Response::Fds { pid, tty, .. }, fds) => Ok((pid, tty, fds)),
            (other, _) => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    pub fn exec_state(&mut self, exec_id: &str) -> Result<ExecStatus, ClientError> {
        match self
            .call(&Request::ExecState {
                exec_id: exec_id.into(),
            })?
            .0
        {
            Response::Exec { status } => Ok(status),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    pub fn exec_resize(
        &mut self,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), ClientError> {
        self.expect_ok(&Request::ExecResize {
            exec_id: exec_id.into(),
            height,
            width,
        })
    }

    /// Turns this connection into an event stream.
    pub fn events(mut self) -> Result<Events, ClientError> {
        self.expect_ok(&Request::Events)?;
        // Events read together with the answer come first.
        let read_ahead = io::Cursor::new(std::mem::take(&mut self.buf));
        Ok(Events {
            reader: BufReader::new(read_ahead.chain(self.stream)),
        })
    }
}

/// The supervisor's event stream.
#[derive(Debug)]
pub struct Events {
    reader: BufReader<io::Chain<io::Cursor<Vec<u8>>, UnixStream>>,
}

impl Iterator for Events {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => {
                Some(serde_json::from_str(line.trim_end()).map_err(|_| ClientError::Protocol(line)))
            }
            Err(e) => Some(Err(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The supervisor may send the first events in the same read as the
    /// subscription's answer: they come first, not lost with the client.
    #[test]
    fn events_read_with_the_subscriptions_answer_are_kept() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let supervisor = std::thread::spawn(move || {
            let mut request = String::new();
            BufReader::new(theirs.try_clone().unwrap())
                .read_line(&mut request)
                .unwrap();
            assert!(request.contains("events"), "{request}");
            let ok = serde_json::to_string(&Response::Ok).unwrap();
            let first = serde_json::to_string(&Event::Destroy {
                id: "c1".into(),
                time: "t1".into(),
            })
            .unwrap();
            (&theirs)
                .write_all(format!("{ok}\n{first}\n").as_bytes())
                .unwrap();
            let second = serde_json::to_string(&Event::Destroy {
                id: "c2".into(),
                time: "t2".into(),
            })
            .unwrap();
            (&theirs)
                .write_all(format!("{second}\n").as_bytes())
                .unwrap();
        });
        let client = Client {
            stream: ours,
            buf: Vec::new(),
        };
        // Both lines are in the socket before the answer is read.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut events = client.events().expect("subscribed");
        let ids: Vec<String> = (0..2)
            .map(|_| match events.next().unwrap().unwrap() {
                Event::Destroy { id, .. } => id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["c1", "c2"]);
        supervisor.join().unwrap();
    }
}
