//! strato's built-in load balancer: one listener per cluster and proxy port,
//! in front of that cluster's members.
//!
//! - [`pool`]: the members, the choice (round-robin or least-outstanding),
//!   draining, and the requests-in-flight counts the autoscaler reads.
//! - [`http`]: an HTTP/1.1 and HTTP/2 (h2c) reverse proxy, pooling
//!   keep-alive connections to the members: plain HTTP/1.1 requests are
//!   forwarded as bytes (`h1`, the fast path), the rest through hyper.
//! - [`tcp`]: a plain TCP proxy, one member per connection.
//!
//! A request counts as in flight from the moment a member is chosen until
//! the last byte of its response is sent (or the client goes away); a TCP
//! connection counts while it is open.

mod accept;
mod h1;
pub mod http;
pub mod pool;
pub mod tcp;

pub use pool::{Algorithm, Lease, Member, MemberStats, Pool, PoolStats};

use std::sync::Arc;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2 (prior knowledge), proxied per request.
    Http,
    /// Bytes, proxied per connection.
    Tcp,
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "http" | "http2" | "h2c" => Ok(Protocol::Http),
            "tcp" => Ok(Protocol::Tcp),
            other => Err(format!("unknown protocol {other:?}: use http or tcp")),
        }
    }
}

/// Serves `pool` on `listener` until the returned future is dropped or
/// accepting fails for good.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: Arc<Pool>,
    protocol: Protocol,
) -> std::io::Result<()> {
    serve_from(accept::Acceptor::single(listener), pool, protocol).await
}

async fn serve_from(
    acceptor: accept::Acceptor,
    pool: Arc<Pool>,
    protocol: Protocol,
) -> std::io::Result<()> {
    match protocol {
        Protocol::Http => http::serve(acceptor, pool).await,
        Protocol::Tcp => tcp::serve(acceptor, pool).await,
    }
}

/// How [`serve_threads`] spreads connections over its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One work-stealing runtime: a connection with work runs on whichever
    /// thread is free, so a thread the kernel preempts does not hold up
    /// the connections it served last. The requests hop between cores
    /// with their tasks, and the one I/O driver leaves a thread idle while
    /// the other polls: measured against nginx (wrk, 64 connections, two
    /// nginx members, 2 cores), the setup ran its cores 93% of the time
    /// where [`Workers::PerThread`] ran them 98%, for 1.03× nginx's
    /// requests/s where per-thread reached 1.25×.
    Shared,
    /// One single-threaded runtime per thread, each with its own client
    /// and member connections, so a request never crosses threads (the way
    /// nginx runs its workers). The default of `strato lb` and of the
    /// daemon's load balancers ([`Threads`]). Under SCHED_BATCH its tail
    /// latency is no longer worse than [`Workers::Shared`]'s (p99 0.80×
    /// nginx's against 0.83×; before SCHED_BATCH, per-thread tails reached
    /// 10–170 ms).
    PerThread,
}

impl std::str::FromStr for Workers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shared" => Ok(Workers::Shared),
            "per-thread" => Ok(Workers::PerThread),
            other => Err(format!(
                "unknown workers {other:?}: use shared or per-thread"
            )),
        }
    }
}

/// How the kernel schedules [`serve_threads`]' threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sched {
    /// `SCHED_BATCH`: a thread woken by a member's or a client's bytes does
    /// not preempt the thread running on that core; it runs at its turn,
    /// with every event that arrived meanwhile. Where the cores are shared
    /// with the members and the clients, that turns many small wake-ups
    /// into fewer larger batches: measured with wrk, nginx members and the
    /// proxy on two cores also busy with a build, the CPU the whole setup
    /// spent per 1000 requests fell from about 65 ms to 57 (nginx as the
    /// proxy: 67), the proxy's own share from 27 to 24. On otherwise idle
    /// cores the two measured the same.
    Batch,
    /// The default policy (`SCHED_OTHER`), as the process had it.
    Normal,
}

impl std::str::FromStr for Sched {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "batch" => Ok(Sched::Batch),
            "normal" | "other" => Ok(Sched::Normal),
            other => Err(format!("unknown scheduling {other:?}: use batch or normal")),
        }
    }
}

/// Puts the calling thread under `SCHED_BATCH` (a thread's own policy; the
/// process's other threads keep theirs). Nice value and limits are kept.
fn sched_batch() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the call; pid 0 is the
    // calling thread, and SCHED_BATCH needs no privilege.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Applies `sched` to the calling thread; a failure is logged, not fatal
/// (the threads still serve, only scheduled as before).
fn apply_sched(sched: Sched) {
    if sched == Sched::Batch {
        if let Err(e) = sched_batch() {
            tracing::warn!(error = %e, "SCHED_BATCH for a load balancer thread failed; keeping the default policy");
        }
    }
}

/// Serves `pool` on `addr` from `threads` threads, scheduled as `workers`
/// and `sched` say. With [`Workers::PerThread`] the threads share one listening socket
/// and keep equal numbers of client connections (see [`accept`]); the pool
/// and its counters are shared either way. Returns once the socket listens;
/// the threads run until the process ends.
pub fn serve_threads(
    addr: std::net::SocketAddr,
    pool: Arc<Pool>,
    protocol: Protocol,
    threads: usize,
    workers: Workers,
    sched: Sched,
) -> std::io::Result<Vec<std::thread::JoinHandle<std::io::Result<()>>>> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    let mut handles = Vec::new();
    if workers == Workers::Shared {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("strato-lb")
            .on_thread_start(move || apply_sched(sched))
            .enable_all()
            .build()?;
        let handle = std::thread::Builder::new()
            .name("strato-lb-accept".into())
            .spawn(move || -> std::io::Result<()> {
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    serve_from(accept::Acceptor::single(listener), pool, protocol).await
                })
            })?;
        handles.push(handle);
        return Ok(handles);
    }
    for (i, part) in accept::balanced(&listener, threads)?
        .into_iter()
        .enumerate()
    {
        let pool = Arc::clone(&pool);
        let handle = std::thread::Builder::new()
            .name(format!("strato-lb-{i}"))
            .spawn(move || -> std::io::Result<()> {
                apply_sched(sched);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move { serve_from(part.into_acceptor()?, pool, protocol).await })
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// How many threads [`serve_threads`] and [`Threads`] run unless told:
/// two per CPU.
///
/// Where the proxy shares its cores with the members and the clients (the
/// PaaS on one host, `bench/lb-vs-nginx.sh`), the kernel now and then
/// preempts a load-balancer thread, and the client connections that thread
/// holds wait until it runs again. With two threads per CPU each holds half
/// as many, and a thread that waits leaves another runnable on either core.
/// Measured on 2 CPUs against nginx (wrk, 64 connections, two nginx
/// members, [`Workers::PerThread`]): 4 threads made 1.37× nginx's
/// requests/s with p99 0.60× nginx's, 2 threads 1.25× and 0.78×, with one
/// round in ten of p99 1.4×; and the proxy and the members spent less CPU
/// per request (more events per wake-up on the members' side).
pub fn default_threads() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Load-balancer threads that any number of listeners are served on, each
/// thread with its own single-threaded runtime (the [`Workers::PerThread`]
/// way): the daemon's PaaS opens and closes a listener per cluster and
/// proxy port on the same threads, which `strato lb` tuned for the proxy
/// alone. Every listener is spread over all the threads, with its client
/// connections balanced among them (see [`accept`]). The threads end when
/// this is dropped, and with them every listener served on them.
pub struct Threads {
    handles: Vec<tokio::runtime::Handle>,
    /// One per thread: dropping it ends that thread's runtime.
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threads")
            .field("threads", &self.handles.len())
            .finish()
    }
}

impl Threads {
    /// Starts `threads` threads (at least one) named `strato-lb-N`,
    /// scheduled as `sched` says.
    pub fn start(threads: usize, sched: Sched) -> std::io::Result<Threads> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for i in 0..threads.max(1) {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let (ready, handle) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("strato-lb-{i}"))
                .spawn(move || {
                    apply_sched(sched);
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => {
                            let _ = ready.send(Ok(rt.handle().clone()));
                            let _ = rt.block_on(stopped);
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                })?;
            let handle = handle.recv().map_err(|_| {
                std::io::Error::other(format!("load balancer thread {i} ended as it started"))
            })??;
            handles.push(handle);
            stops.push(stop);
        }
        Ok(Threads {
            handles,
            _stop: stops,
        })
    }

    /// Serves `pool` on `listener` from every thread until [`Serving::stop`].
    pub fn serve(
        &self,
        listener: std::net::TcpListener,
        pool: Arc<Pool>,
        protocol: Protocol,
    ) -> std::io::Result<Serving> {
        listener.set_nonblocking(true)?;
        let parts = accept::balanced(&listener, self.handles.len())?;
        let tasks = parts
            .into_iter()
            .zip(&self.handles)
            .map(|(part, rt)| {
                let pool = Arc::clone(&pool);
                rt.spawn(async move {
                    let name = pool.name().to_string();
                    let served = match part.into_acceptor() {
                        Ok(acceptor) => serve_from(acceptor, pool, protocol).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = served {
                        tracing::error!(pool = %name, error = %e, "load balancer stopped");
                    }
                })
            })
            .collect();
        Ok(Serving { tasks })
    }
}

/// A listener being served: by [`Threads::serve`], or by [`Serving::spawn`]
/// on the calling runtime. Dropping it stops it (a listener nobody holds
/// would keep its port until the process ends).
#[derive(Debug)]
pub struct Serving {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Serving {
    /// Serves `pool` on `listener` in one task of the calling runtime.
    pub fn spawn(
        listener: tokio::net::TcpListener,
        pool: Arc<Pool>,
        protocol: Protocol,
    ) -> Serving {
        let task = tokio::spawn(async move {
            let name = pool.name().to_string();
            if let Err(e) = serve(listener, pool, protocol).await {
                tracing::error!(pool = %name, error = %e, "load balancer stopped");
            }
        });
        Serving { tasks: vec![task] }
    }

    /// Stops accepting: the listening socket closes; client connections
    /// already accepted are served until they end.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accept errors that mean "try again shortly" (out of descriptors or
/// memory, a connection reset before accept) rather than a dead listener.
fn transient_accept_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOMEM: i32 = 12;
    const ENOBUFS: i32 = 105;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOMEM | ENOBUFS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_batch_is_the_calling_threads_policy_only() {
        let policy = || {
            // SAFETY: reads the calling thread's policy; no pointers.
            unsafe { libc::sched_getscheduler(0) }
        };
        let before = policy();
        let (inner, outer) = std::thread::spawn(move || {
            apply_sched(Sched::Batch);
            let inner = policy();
            // A thread it starts inherits the policy.
            let outer = std::thread::spawn(policy).join().unwrap();
            (inner, outer)
        })
        .join()
        .unwrap();
        assert_eq!(inner, libc::SCHED_BATCH);
        assert_eq!(outer, libc::SCHED_BATCH);
        assert_eq!(policy(), before, "the test thread keeps its policy");
        std::thread::spawn(move || {
            apply_sched(Sched::Normal);
            assert_eq!(policy(), before);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn two_threads_per_cpu_by_default() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_threads(), 2 * cpus);
    }

    #[test]
    fn sched_names() {
        assert_eq!("batch".parse::<Sched>(), Ok(Sched::Batch));
        assert_eq!("normal".parse::<Sched>(), Ok(Sched::Normal));
        assert!("fifo"
            .parse::<Sched>()
            .unwrap_err()
            .contains("batch or normal"));
    }
}
