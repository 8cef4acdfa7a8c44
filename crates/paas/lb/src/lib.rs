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

/// Serves `pool` on `addr` from `threads` threads, each with its own
/// single-threaded async runtime and its own connections to the members, so
/// a request never crosses threads (the way nginx runs its workers). The
/// threads share one listening socket and keep equal numbers of client
/// connections (see [`accept`]); the pool and its counters are shared.
/// Returns once the socket listens; the threads run until the process ends.
pub fn serve_threads(
    addr: std::net::SocketAddr,
    pool: Arc<Pool>,
    protocol: Protocol,
    threads: usize,
    short_slice: bool,
) -> std::io::Result<Vec<std::thread::JoinHandle<std::io::Result<()>>>> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    let mut handles = Vec::new();
    for (i, part) in accept::balanced(&listener, threads)?
        .into_iter()
        .enumerate()
    {
        let pool = Arc::clone(&pool);
        let handle = std::thread::Builder::new()
            .name(format!("strato-lb-{i}"))
            .spawn(move || -> std::io::Result<()> {
                if short_slice {
                    request_short_slice();
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move { serve_from(part.into_acceptor()?, pool, protocol).await })
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// The scheduler time slice a worker thread asks for, in nanoseconds: the
/// shortest the kernel grants.
const SHORT_SLICE_NS: u64 = 100_000;

/// Asks the kernel to give the calling thread a short time slice (Linux
/// 6.12+, EEVDF: `sched_attr.sched_runtime` of a normal task). The weight,
/// and so the CPU share, stays the same; what changes is that a worker woken
/// by a ready socket gets an earlier deadline and runs sooner on cores it
/// shares with the members and the clients, instead of waiting out another
/// task's slice (measured: that wait made the p99 latency). On older
/// kernels the call fails and the thread keeps the default slice.
fn request_short_slice() {
    // SAFETY: getpriority only reads the calling thread's nice value; errno
    // is cleared first since -1 is also a valid answer.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    let attr = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: SHORT_SLICE_NS,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: sched_setattr reads `attr` (a valid, fully initialised
    // sched_attr whose size field is its own size) for the calling thread
    // (pid 0) and keeps no pointer to it. No libc wrapper exists for it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const libc::sched_attr,
            0,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "short scheduler slice not granted");
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

    /// The calling thread's (policy, nice, slice in ns) as the kernel reports them.
    fn sched_of_this_thread() -> (u32, i32, u64) {
        // SAFETY: an all-zero sched_attr is a valid value of this plain C struct.
        let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
        // SAFETY: sched_getattr writes at most `size` bytes into `attr`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &mut attr as *mut libc::sched_attr,
                std::mem::size_of::<libc::sched_attr>() as u32,
                0,
            )
        };
        assert_eq!(rc, 0, "sched_getattr: {}", std::io::Error::last_os_error());
        (attr.sched_policy, attr.sched_nice, attr.sched_runtime)
    }

    /// (major, minor) of the running kernel.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.trim().split(['.', '-']);
        let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (next(), next())
    }

    #[test]
    fn a_worker_asks_for_the_short_slice_and_keeps_its_nice_value() {
        let (policy, nice, slice) = std::thread::spawn(|| {
            // SAFETY: setpriority changes only the calling thread's nice value.
            let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 3) };
            assert_eq!(rc, 0);
            request_short_slice();
            sched_of_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_OTHER as u32);
        assert_eq!(nice, 3, "the nice value set before is kept");
        // Custom slices for normal tasks came with Linux 6.12 (EEVDF).
        if kernel_version() >= (6, 12) {
            assert_eq!(slice, SHORT_SLICE_NS);
        }
    }
}
