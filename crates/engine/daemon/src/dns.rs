//! The embedded name server of user-defined networks.
//!
//! Containers on a user-defined network resolve each other by container
//! name, hostname and `--network-alias`; those on the default `bridge` do
//! not, as in Docker. The daemon answers DNS on UDP port 53 of each
//! user-defined network's gateway address (the bridge's own address, so it
//! is reachable from every container of that network and from no other),
//! and the containers' resolv.conf names that address.
//!
//! Why this shape: answers come from the network manager's endpoint table at
//! the moment of the query, so containers started later, renamed aliases and
//! containers re-adopted by a restarted daemon are all seen without
//! rewriting files inside running containers, and `nslookup` (which asks DNS
//! and ignores /etc/hosts) works as well as `getaddrinfo`. Listening on the
//! gateway instead of 127.0.0.11 inside every container (Docker's way) needs
//! no per-container socket or NAT rule; Podman's aardvark-dns does the same.
//! Other names are forwarded unchanged to the host's resolvers (the daemon
//! runs in the host's network namespace, so loopback resolvers such as
//! systemd-resolved work too). Messages are parsed with `hickory-proto`.
//!
//! While the daemon is down, names of the network do not resolve; a
//! restarted daemon listens again before it answers the API.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata::A, rdata::AAAA, RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::engine::Engine;

/// TTL of answers about containers (Docker's).
const TTL: u32 = 600;
/// How long an upstream resolver gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// The listeners, one per user-defined network.
#[derive(Debug, Default)]
pub struct Dns {
    /// network → (address served, listener task)
    listeners: Mutex<HashMap<String, (Ipv4Addr, tokio::task::AbortHandle)>>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        if let Ok(l) = self.listeners.lock() {
            for (_, h) in l.values() {
                h.abort();
            }
        }
    }
}

impl Dns {
    /// Serves `network` on `gateway:53` unless it already does. A port that
    /// cannot be bound is logged: containers then resolve only through
    /// /etc/hosts.
    pub async fn ensure(&self, engine: Weak<Engine>, network: &strato_network::Network) {
        let (gateway, name) = (network.gateway, network.name.as_str());
        if self
            .listeners
            .lock()
            .expect("dns lock")
            .get(name)
            .is_some_and(|(ip, h)| *ip == gateway && !h.is_finished())
        {
            return;
        }
        let sock = match UdpSocket::bind(SocketAddr::new(IpAddr::V4(gateway), 53)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(network = name, %gateway, error = %e, "cannot serve DNS for the network: container names will not resolve by DNS");
                return;
            }
        };
        tracing::info!(network = name, %gateway, "serving container names by DNS");
        let task = tokio::spawn(serve(engine, name.to_string(), network.subnet, sock));
        if let Some((_, old)) = self
            .listeners
            .lock()
            .expect("dns lock")
            .insert(name.to_string(), (gateway, task.abort_handle()))
        {
            old.abort();
        }
    }

    /// Stops serving a removed network.
    pub fn forget(&self, network: &str) {
        if let Some((_, h)) = self.listeners.lock().expect("dns lock").remove(network) {
            h.abort();
        }
    }
}

async fn serve(
    engine: Weak<Engine>,
    network: String,
    subnet: strato_network::Ipv4Net,
    sock: UdpSocket,
) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(network, error = %e, "dns receive");
                continue;
            }
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let query = buf[..n].to_vec();
        let (sock, network) = (sock.clone(), network.clone());
        // Only the network's own containers learn its names; anyone else
        // reaching the gateway gets upstream answers.
        let member = match peer.ip() {
            IpAddr::V4(ip) if subnet.contains(ip) => Some(ip),
            _ => None,
        };
        tokio::spawn(async move {
            if let Some(resp) = answer(&engine, &network, member, &query).await {
                let _ = sock.send_to(&resp, peer).await;
            }
        });
    }
}

/// What the table says about `name` on a network.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A container of the network has this name.
    Found(Ipv4Addr),
    /// Not ours: ask upstream.
    Unknown,
}

/// Finds `name` (case-insensitive, final dot ignored) among the names of
/// the network's endpoints.
pub fn lookup(endpoints: &[strato_network::Endpoint], name: &str) -> Lookup {
    let name = name.trim_end_matches('.');
    endpoints
        .iter()
        .find(|e| e.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        .map_or(Lookup::Unknown, |e| Lookup::Found(e.ip))
}

/// The IPv6 address of the endpoint named `name`, on a dual-stack network.
pub fn lookup_v6(endpoints: &[strato_network::Endpoint], name: &str) -> Option<std::net::Ipv6Addr> {
    let name = name.trim_end_matches('.');
    endpoints
        .iter()
        .find(|e| e.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        .and_then(|e| Some(e.ipv6?.ip))
}

/// What `name` means to the container at `asker`: the target container's
/// name when it is one of that container's link aliases on the network.
fn linked_name(
    engine: &Engine,
    endpoints: &[strato_network::Endpoint],
    network: &str,
    asker: Ipv4Addr,
    name: &str,
) -> Option<String> {
    let ep = endpoints.iter().find(|e| e.ip == asker)?;
    let r = engine.record(&ep.container_id).ok()?;
    let (_, opts) = r.endpoint_request(network)?;
    opts.link_target(name.trim_end_matches('.'))
        .map(str::to_string)
}

/// The answer to one query datagram: from the network's table when the name
/// is a container's (or, for the asking container, one of its link
/// aliases), else from upstream. `None` drops a malformed query.
async fn answer(
    engine: &Engine,
    network: &str,
    member: Option<Ipv4Addr>,
    query: &[u8],
) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    if msg.message_type() != MessageType::Query {
        return None;
    }
    if let (Some(asker), OpCode::Query, 1) = (member, msg.op_code(), msg.queries().len()) {
        let q = &msg.queries()[0];
        let mut endpoints = engine
            .network()
            .endpoints(network)
            .await
            .unwrap_or_default();
        // A renamed container answers to its new name only (the first of
        // its endpoint's names is the container name at attach time).
        for ep in &mut endpoints {
            if let (Ok(r), Some(first)) = (engine.record(&ep.container_id), ep.names.first_mut()) {
                *first = r.name;
            }
        }
        let asked = q.name().to_ascii();
        let name = linked_name(engine, &endpoints, network, asker, &asked).unwrap_or(asked);
        if let Lookup::Found(ip) = lookup(&endpoints, &name) {
            let mut resp = Message::new();
            resp.set_id(msg.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .set_authoritative(true)
                .set_recursion_desired(msg.recursion_desired())
                .set_recursion_available(true)
                .set_response_code(ResponseCode::NoError)
                .add_query(q.clone());
            // AAAA is answered on dual-stack networks; other types get an
            // empty NOERROR answer: the name exists.
            if matches!(q.query_type(), RecordType::A | RecordType::ANY) {
                resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
            }
            if matches!(q.query_type(), RecordType::AAAA | RecordType::ANY) {
                if let Some(ip6) = lookup_v6(&endpoints, &name) {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::AAAA(AAAA(ip6)),
                    ));
                }
            }
            return resp.to_vec().ok();
        }
    }
    match forward(query, msg.id()).await {
        Some(r) => Some(r),
        None => Message::error_msg(msg.id(), msg.op_code(), ResponseCode::ServFail)
            .to_vec()
            .ok(),
    }
}

/// The host's resolvers, from its /etc/resolv.conf.
fn upstreams() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut v: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect();
    if v.is_empty() {
        v.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    v
}

/// Sends the query to each upstream in turn; the first answer with the
/// query's id wins.
async fn forward(query: &[u8], id: u16) -> Option<Vec<u8>> {
    for server in upstreams() {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("address")
        } else {
            "[::]:0".parse().expect("address")
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let got = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            loop {
                let (n, from) = sock.recv_from(&mut buf).await.ok()?;
                if from == server && n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    return Some(buf[..n].to_vec());
                }
            }
        })
        .await;
        if let Ok(Some(r)) = got {
            return Some(r);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip: &str, names: &[&str]) -> strato_network::Endpoint {
        strato_network::Endpoint {
            network: "n".into(),
            container_id: ip.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            ip: ip.parse().unwrap(),
            prefix: 24,
            gateway: "10.0.0.1".parse().unwrap(),
            mac: String::new(),
            host_veth: String::new(),
            ifname: "eth0".into(),
            ports: Vec::new(),
            ipv6: None,
        }
    }

    #[test]
    fn names_and_aliases_resolve_case_insensitively() {
        let eps = [
            ep("10.0.0.2", &["web", "abc123"]),
            ep("10.0.0.3", &["db", "postgres"]),
        ];
        assert_eq!(
            lookup(&eps, "WEB."),
            Lookup::Found("10.0.0.2".parse().unwrap())
        );
        assert_eq!(
            lookup(&eps, "postgres"),
            Lookup::Found("10.0.0.3".parse().unwrap())
        );
        assert_eq!(lookup(&eps, "example.com."), Lookup::Unknown);
        assert_eq!(lookup(&eps, "web.example.com."), Lookup::Unknown);
    }

    #[test]
    fn aaaa_answers_come_from_dual_stack_endpoints_only() {
        let mut six = ep("10.0.0.2", &["web"]);
        six.ipv6 = Some(strato_network::EndpointV6 {
            ip: "fd00::2".parse().unwrap(),
            prefix: 64,
            gateway: "fd00::1".parse().unwrap(),
        });
        let eps = [six, ep("10.0.0.3", &["db"])];
        assert_eq!(lookup_v6(&eps, "Web."), Some("fd00::2".parse().unwrap()));
        assert_eq!(lookup_v6(&eps, "db"), None);
        assert_eq!(lookup_v6(&eps, "nosuch"), None);
    }
}
