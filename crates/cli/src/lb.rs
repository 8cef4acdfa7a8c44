//! `strato lb`: the PaaS's load balancer on its own, in front of a fixed set
//! of members (for trying it out and for `bench/lb-vs-nginx.sh`). The daemon
//! runs the same code per cluster with members that come and go.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use strato_lb::{Algorithm, Pool, Protocol};

#[derive(Debug, Args)]
pub struct LbArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A member's address (repeat for each member).
    #[arg(long = "backend", required = true)]
    backends: Vec<SocketAddr>,
    /// round-robin or least-outstanding.
    #[arg(long, default_value = "round-robin")]
    algorithm: Algorithm,
    /// http (HTTP/1.1 and h2c) or tcp.
    #[arg(long, default_value = "http")]
    protocol: Protocol,
    /// Worker threads (default: two per CPU, so that a thread the kernel
    /// preempts holds fewer connections).
    #[arg(long)]
    threads: Option<usize>,
    /// per-thread (each thread keeps its own client and member
    /// connections, as nginx's workers) or shared (one work-stealing pool
    /// of threads).
    #[arg(long, default_value = "per-thread")]
    workers: strato_lb::Workers,
    /// batch (SCHED_BATCH: a woken thread waits for its turn and then
    /// serves all that arrived meanwhile; less CPU per request on cores
    /// shared with members and clients) or normal.
    #[arg(long, default_value = "batch")]
    sched: strato_lb::Sched,
}

pub fn main(args: LbArgs) -> i32 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let pool = Arc::new(Pool::new(args.listen.to_string(), args.algorithm));
    for (i, b) in args.backends.iter().enumerate() {
        pool.add(format!("backend-{i}"), *b);
    }
    let threads = args.threads.unwrap_or_else(strato_lb::default_threads);
    let result = strato_lb::serve_threads(
        args.listen,
        pool,
        args.protocol,
        threads,
        args.workers,
        args.sched,
    )
    .map_err(|e| format!("{e}: choose another --listen address"))
    .and_then(|handles| {
        eprintln!(
            "strato lb: {} on {} → {} member(s), {threads} thread(s)",
            match args.protocol {
                Protocol::Http => "http",
                Protocol::Tcp => "tcp",
            },
            args.listen,
            args.backends.len()
        );
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("accept: {e}")),
                Err(_) => return Err("a load balancer thread panicked".into()),
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strato lb: {e}");
            1
        }
    }
}
