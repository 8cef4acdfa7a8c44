//! Where a worker's client connections come from. A load balancer run on
//! several threads ([`crate::serve_threads`]) shares one listening socket;
//! left alone, whichever thread wakes first drains the accept queue, and a
//! burst of new connections (a benchmark's, a reconnecting client pool's)
//! lands on one thread while the others idle — measured: 64 wrk connections
//! went 0/64 to two threads more often than not. So each thread counts its
//! live connections, and a thread that accepts a connection while another
//! holds fewer passes it to that one (the socket moves between the threads'
//! runtimes; the kernel sees nothing). Passing costs a channel send and one
//! wake-up per new connection, nothing per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type Handoff = (std::net::TcpStream, SocketAddr);

/// Live connections per thread, and the way to pass one to each thread.
struct Shared {
    live: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
}

/// The connections one worker serves.
pub(crate) struct Acceptor {
    listener: TcpListener,
    balance: Option<Balance>,
}

struct Balance {
    me: usize,
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Handoff>,
}

/// Held by a connection's task while it lives; its thread's count drops with it.
pub(crate) struct Live(Option<(Arc<Shared>, usize)>);

impl Drop for Live {
    fn drop(&mut self) {
        if let Some((shared, me)) = self.0.take() {
            shared.live[me].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Acceptor {
    /// A worker that serves every connection it accepts.
    pub(crate) fn single(listener: TcpListener) -> Acceptor {
        Acceptor {
            listener,
            balance: None,
        }
    }

    /// The next connection for this worker, with its guard; accept errors
    /// that pass (out of descriptors, a reset) are logged and retried.
    pub(crate) async fn next(
        &mut self,
        pool: &str,
    ) -> std::io::Result<(TcpStream, SocketAddr, Live)> {
        loop {
            let accepted = match &mut self.balance {
                None => self.listener.accept().await,
                Some(b) => tokio::select! {
                    biased;
                    Some((s, peer)) = b.inbox.recv() => {
                        // The sender counted it for this thread already.
                        let guard = Live(Some((Arc::clone(&b.shared), b.me)));
                        match TcpStream::from_std(s) {
                            Ok(s) => return Ok((s, peer, guard)),
                            Err(e) => {
                                tracing::warn!(pool, %peer, error = %e, "taking over a connection failed");
                                continue;
                            }
                        }
                    }
                    r = self.listener.accept() => r,
                },
            };
            let (stream, peer) = match accepted {
                Ok(c) => c,
                Err(e) if crate::transient_accept_error(&e) => {
                    tracing::warn!(pool, error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(b) = &self.balance else {
                return Ok((stream, peer, Live(None)));
            };
            let (least, n) = b
                .shared
                .live
                .iter()
                .enumerate()
                .map(|(i, l)| (i, l.load(Ordering::Relaxed)))
                .min_by_key(|&(i, n)| (n, i != b.me))
                .unwrap_or((b.me, 0));
            let mine = b.shared.live[b.me].load(Ordering::Relaxed);
            if least == b.me || mine <= n {
                b.shared.live[b.me].fetch_add(1, Ordering::Relaxed);
                return Ok((stream, peer, Live(Some((Arc::clone(&b.shared), b.me)))));
            }
            b.shared.live[least].fetch_add(1, Ordering::Relaxed);
            let passed = stream.into_std().map_err(|e| e.to_string()).and_then(|s| {
                b.shared.inboxes[least]
                    .send((s, peer))
                    .map_err(|e| format!("thread {least} is gone ({e})"))
            });
            if let Err(e) = passed {
                b.shared.live[least].fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(pool, %peer, error = %e, "passing a connection to another thread failed; closing it");
            }
        }
    }
}

/// One acceptor per thread over clones of `listener`, balanced among them.
pub(crate) fn balanced(
    listener: &std::net::TcpListener,
    threads: usize,
) -> std::io::Result<Vec<BalancedPart>> {
    let threads = threads.max(1);
    let mut txs = Vec::with_capacity(threads);
    let mut rxs = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel();
        txs.push(tx);
        rxs.push(rx);
    }
    let shared = Arc::new(Shared {
        live: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
        inboxes: txs,
    });
    rxs.into_iter()
        .enumerate()
        .map(|(me, inbox)| {
            Ok(BalancedPart {
                listener: listener.try_clone()?,
                me,
                shared: Arc::clone(&shared),
                inbox,
            })
        })
        .collect()
}

/// What a thread needs to build its [`Acceptor`] inside its own runtime.
pub(crate) struct BalancedPart {
    listener: std::net::TcpListener,
    me: usize,
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Handoff>,
}

impl BalancedPart {
    /// Registers the listener with the calling thread's runtime.
    pub(crate) fn into_acceptor(self) -> std::io::Result<Acceptor> {
        Ok(Acceptor {
            listener: TcpListener::from_std(self.listener)?,
            balance: Some(Balance {
                me: self.me,
                shared: self.shared,
                inbox: self.inbox,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections opened in a burst end up spread evenly over the threads,
    /// whichever thread the kernel hands them to.
    #[test]
    fn a_burst_of_connections_is_spread_evenly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let parts = balanced(&listener, 3).unwrap();
        let shared = Arc::clone(&parts[0].shared);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, TcpStream, Live)>();
        for part in parts {
            let done = done_tx.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let me = part.me;
                    let mut acc = part.into_acceptor().unwrap();
                    loop {
                        let (s, _, live) = acc.next("test").await.unwrap();
                        // Keep the connection (and its count) alive.
                        if done.send((me, s, live)).is_err() {
                            return;
                        }
                    }
                });
            });
        }
        let clients: Vec<_> = (0..30)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut per = [0usize; 3];
        let mut held = Vec::new();
        for _ in 0..30 {
            let (me, s, live) = done_rx.recv_timeout(Duration::from_secs(20)).unwrap();
            per[me] += 1;
            held.push((s, live));
        }
        // Decisions taken at the same instant on two threads may both see
        // the same counts, so the spread is even up to a few connections.
        let (max, min) = (per.iter().max().unwrap(), per.iter().min().unwrap());
        assert!(max - min <= 3, "connections per thread: {per:?}");
        let counts: Vec<usize> = shared
            .live
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, per.to_vec(), "live counts follow the connections");
        // Closing a thread's connections lowers its count.
        held.clear();
        let counts: Vec<usize> = shared
            .live
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, vec![0, 0, 0]);
        drop(clients);
    }
}
