//! The TCP proxy: each accepted connection is joined to one member.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::accept::Acceptor;

use crate::pool::Pool;

/// How long a member may take to accept a connection before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections and relays each to a member of `pool`.
pub(crate) async fn serve(mut acceptor: Acceptor, pool: Arc<Pool>) -> std::io::Result<()> {
    loop {
        let (client, peer, live) = acceptor.next(pool.name()).await?;
        let pool = Arc::clone(&pool);
        tokio::spawn(async move {
            relay(client, peer, &pool).await;
            drop(live);
        });
    }
}

async fn relay(mut client: TcpStream, peer: SocketAddr, pool: &Pool) {
    let _ = client.set_nodelay(true);
    let mut tried = Vec::new();
    loop {
        let Some(lease) = pool.pick(&tried) else {
            tracing::warn!(pool = pool.name(), %peer, "no member can take the connection; closing it");
            return;
        };
        let addr = lease.member().addr();
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(mut upstream)) => {
                let _ = upstream.set_nodelay(true);
                // The lease lives until both directions are done.
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(pool = pool.name(), member = %addr, error = %e, "member unreachable");
            }
            Err(_) => {
                tracing::debug!(pool = pool.name(), member = %addr, "member connect timed out")
            }
        }
        lease.failed();
        tried.push(addr);
    }
}
