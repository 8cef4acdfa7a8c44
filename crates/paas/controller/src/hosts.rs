//! Level 2 of autoscaling: where new hosts come from.
//!
//! A member whose partition's hosts have no room for its cpu and memory
//! waits, Pending. The controller then asks a [`HostProvider`] for a new
//! host of the cluster behind that partition (Stratos's Kubernetes
//! cluster, its host group), at most one request per cluster at a time,
//! and again after a pause when the provider had none. A host it gets is
//! added to the cluster's `kubernetesHosts` in the store, like one the
//! operator declared, so it is kept across restarts and shown by
//! `GET /api/kubernetesClusters/ID`; the next tick places the Pending
//! members on it.
//!
//! Two providers exist:
//! - [`LocalMachine`] (the default): this machine, with its own cpus and
//!   memory, offered to a cluster that does not list it yet. A cluster that
//!   already holds it gets nothing more: one machine is all it has.
//! - [`CommandProvider`]: an operator's program (a cloud or cluster
//!   provider: it may start a VM or join a node) that gets the request as
//!   JSON on its standard input and prints the new host as Stratos's
//!   `kubernetesHost` JSON, or nothing when it has none.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use strato_paas_model::{KubernetesHost, Property};
use tokio::io::AsyncWriteExt;

/// What the controller asks a provider for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRequest {
    /// The cluster (host group) the new host joins.
    pub kubernetes_cluster_id: String,
    /// Where the waiting members are to go (the first one's placement).
    pub network_partition_id: String,
    pub partition_id: String,
    /// How many members wait for room in this cluster.
    pub pending_members: usize,
    /// The largest cpu (millicores) and memory (bytes) one of them needs:
    /// the new host must hold at least that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// The cluster's hosts now.
    pub hosts: Vec<KubernetesHost>,
}

/// A source of new hosts for level 2.
pub trait HostProvider: Send + Sync {
    /// A short name for events and logs.
    fn name(&self) -> &str;

    /// A new host for `req`'s cluster; `Ok(None)` when there is none to
    /// give (the controller asks again later), `Err` when asking failed.
    fn provide(
        &self,
        req: HostRequest,
    ) -> BoxFuture<'static, Result<Option<KubernetesHost>, String>>;
}

/// This machine as a host: offered, with its cpus and memory, to a
/// cluster whose hosts do not include it yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalMachine;

/// This machine's name (the kernel's hostname).
fn this_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether `addr` is one of this machine's addresses: loopback, or one a
/// socket can be bound to here.
fn is_local_address(addr: &str) -> bool {
    let Ok(ip) = addr.trim().parse::<IpAddr>() else {
        return false;
    };
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Whether `h` names this machine (by address or by host name).
pub fn is_this_machine(h: &KubernetesHost, hostname: &str) -> bool {
    h.private_ip_address
        .as_deref()
        .is_some_and(is_local_address)
        || h.hostname
            .as_deref()
            .is_some_and(|n| n == "localhost" || n.eq_ignore_ascii_case(hostname))
}

/// MemTotal of /proc/meminfo, in bytes.
fn memory_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

impl LocalMachine {
    /// This machine as a declared host: `cpu` its usable cpus, `memory`
    /// its MemTotal.
    pub fn host(id: &str) -> KubernetesHost {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut property = vec![Property {
            name: "cpu".into(),
            value: cpus.to_string(),
        }];
        if let Some(mem) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .as_deref()
            .and_then(memory_total)
        {
            property.push(Property {
                name: "memory".into(),
                value: mem.to_string(),
            });
        }
        KubernetesHost {
            host_id: id.to_owned(),
            hostname: Some(this_hostname()),
            private_ip_address: Some(Ipv4Addr::LOCALHOST.to_string()),
            public_ip_address: None,
            endpoint: None,
            property,
        }
    }
}

impl HostProvider for LocalMachine {
    fn name(&self) -> &str {
        "local"
    }

    fn provide(
        &self,
        req: HostRequest,
    ) -> BoxFuture<'static, Result<Option<KubernetesHost>, String>> {
        let hostname = this_hostname();
        let offer = if req.hosts.iter().any(|h| is_this_machine(h, &hostname)) {
            None
        } else {
            // A host id the cluster does not use yet.
            let id = std::iter::once(hostname.clone())
                .chain((2..).map(|n| format!("{hostname}-{n}")))
                .find(|id| !req.hosts.iter().any(|h| &h.host_id == id))
                .unwrap_or(hostname);
            Some(LocalMachine::host(&id))
        };
        Box::pin(async move { Ok(offer) })
    }
}

/// An operator's program as the host provider. It runs once per request
/// with the [`HostRequest`] as JSON on its standard input, and prints the
/// new host as a `kubernetesHost` JSON object (hostId, hostname,
/// privateIPAddress, property cpu and memory), or nothing when it has no
/// host to give; a non-zero exit is a failure, its standard error the
/// reason.
#[derive(Debug, Clone)]
pub struct CommandProvider {
    program: PathBuf,
    timeout: Duration,
}

/// The most a provider program may print.
const MAX_OUTPUT: usize = 64 * 1024;

impl CommandProvider {
    /// `program`, given at most `timeout` per request.
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> CommandProvider {
        CommandProvider {
            program: program.into(),
            timeout,
        }
    }

    /// The program.
    pub fn program(&self) -> &Path {
        &self.program
    }
}

/// Reads a provider program's answer: nothing (no host) or one host.
fn parse_answer(program: &Path, stdout: &[u8]) -> Result<Option<KubernetesHost>, String> {
    let text = String::from_utf8_lossy(stdout);
    if text.trim().is_empty() {
        return Ok(None);
    }
    let host: KubernetesHost = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "host provider {}: its output is not a kubernetesHost JSON object ({e}); print {{\"hostId\": …, \"privateIPAddress\": …, \"property\": [{{\"name\": \"cpu\", \"value\": \"4\"}}, …]}}, or nothing when there is no host",
            program.display()
        )
    })?;
    if host.host_id.trim().is_empty() {
        return Err(format!(
            "host provider {}: the host it printed has no hostId; give every host an id",
            program.display()
        ));
    }
    Ok(Some(host))
}

impl HostProvider for CommandProvider {
    fn name(&self) -> &str {
        "command"
    }

    fn provide(
        &self,
        req: HostRequest,
    ) -> BoxFuture<'static, Result<Option<KubernetesHost>, String>> {
        let program = self.program.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let input = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
            let shown = program.display().to_string();
            let mut tries = 0;
            let mut child = loop {
                let spawned = tokio::process::Command::new(&program)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn();
                match spawned {
                    // ETXTBSY: the program is still open for writing
                    // somewhere (being replaced); it clears in moments.
                    Err(e) if e.raw_os_error() == Some(26) && tries < 10 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => {
                        break other.map_err(|e| {
                            format!("host provider {shown}: cannot run it: {e}; give the path of an executable program")
                        })?
                    }
                }
            };
            if let Some(mut stdin) = child.stdin.take() {
                // A program that does not read its input is not an error.
                let _ = stdin.write_all(&input).await;
            }
            let out = tokio::time::timeout(timeout, child.wait_with_output())
                .await
                .map_err(|_| {
                    format!(
                        "host provider {shown}: no answer within {} s; it was stopped",
                        timeout.as_secs()
                    )
                })?
                .map_err(|e| format!("host provider {shown}: {e}"))?;
            if !out.status.success() {
                let why = String::from_utf8_lossy(&out.stderr);
                let why = why.trim();
                return Err(format!(
                    "host provider {shown} failed ({}){}{}",
                    out.status,
                    if why.is_empty() { "" } else { ": " },
                    why.chars().take(500).collect::<String>()
                ));
            }
            if out.stdout.len() > MAX_OUTPUT {
                return Err(format!(
                    "host provider {shown}: printed {} bytes, more than the {MAX_OUTPUT} a host takes",
                    out.stdout.len()
                ));
            }
            parse_answer(&program, &out.stdout)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn request(hosts: Vec<KubernetesHost>) -> HostRequest {
        HostRequest {
            kubernetes_cluster_id: "k1".into(),
            network_partition_id: "np1".into(),
            partition_id: "p1".into(),
            pending_members: 2,
            cpu_millis: Some(500),
            memory_bytes: None,
            hosts,
        }
    }

    fn declared(id: &str, ip: &str, hostname: &str) -> KubernetesHost {
        KubernetesHost {
            host_id: id.into(),
            hostname: Some(hostname.into()),
            private_ip_address: Some(ip.into()),
            public_ip_address: None,
            endpoint: None,
            property: vec![],
        }
    }

    #[test]
    fn meminfo_total_in_bytes() {
        let m = "MemTotal:       24567892 kB\nMemFree:  1 kB\n";
        assert_eq!(memory_total(m), Some(24_567_892 * 1024));
        assert_eq!(memory_total("MemFree: 1 kB\n"), None);
    }

    #[tokio::test]
    async fn this_machine_is_offered_once_per_cluster() {
        // A cluster of another machine: this one is offered, with its
        // cpus and memory as capacity.
        let other = declared("far", "192.0.2.10", "far-away");
        let host = LocalMachine
            .provide(request(vec![other.clone()]))
            .await
            .unwrap()
            .expect("this machine is offered");
        let cap = strato_paas_model::capacity::host_of(&host).capacity;
        let cpus = std::thread::available_parallelism().unwrap().get() as u64;
        assert_eq!(cap.cpu_millis, Some(cpus * 1000));
        assert!(cap.memory_bytes.unwrap() > 0);
        assert_eq!(host.host_id, this_hostname());
        // A cluster holding it already (by address or by name) gets nothing.
        for holding in [
            declared("local", "127.0.0.1", "x"),
            declared("me", "10.255.255.1", &this_hostname()),
            host,
        ] {
            assert_eq!(
                LocalMachine
                    .provide(request(vec![other.clone(), holding.clone()]))
                    .await
                    .unwrap(),
                None,
                "{holding:?}"
            );
        }
        // Its id does not clash with a host of the same name elsewhere.
        let clash = declared(&this_hostname(), "192.0.2.11", "elsewhere");
        let host = LocalMachine
            .provide(request(vec![clash]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(host.host_id, format!("{}-2", this_hostname()));
    }

    fn script(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("provider");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[tokio::test]
    async fn a_provider_program_gets_the_request_and_answers_a_host() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("request.json");
        let p = script(
            dir.path(),
            &format!(
                r#"cat > {}
echo '{{"hostId": "vm-7", "privateIPAddress": "10.0.0.7", "property": [{{"name": "cpu", "value": "4"}}, {{"name": "memory", "value": "8Gi"}}]}}'"#,
                seen.display()
            ),
        );
        let prov = CommandProvider::new(&p, Duration::from_secs(20));
        let req = request(vec![declared("h1", "10.0.0.2", "h1")]);
        let host = prov.provide(req.clone()).await.unwrap().unwrap();
        assert_eq!(host.host_id, "vm-7");
        let cap = strato_paas_model::capacity::host_of(&host).capacity;
        assert_eq!(cap.cpu_millis, Some(4000));
        assert_eq!(cap.memory_bytes, Some(8 << 30));
        let got: HostRequest = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
        assert_eq!(got, req);
    }

    #[tokio::test]
    async fn a_provider_program_without_a_host_or_failing_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let none = CommandProvider::new(script(dir.path(), "exit 0"), Duration::from_secs(20));
        assert_eq!(none.provide(request(vec![])).await.unwrap(), None);

        let fails = CommandProvider::new(
            script(dir.path(), "echo 'quota exceeded' >&2; exit 3"),
            Duration::from_secs(20),
        );
        let e = fails.provide(request(vec![])).await.unwrap_err();
        assert!(
            e.contains("quota exceeded") && e.contains("provider"),
            "{e}"
        );

        let garbage =
            CommandProvider::new(script(dir.path(), "echo hello"), Duration::from_secs(20));
        let e = garbage.provide(request(vec![])).await.unwrap_err();
        assert!(e.contains("not a kubernetesHost JSON"), "{e}");

        let no_id = CommandProvider::new(
            script(dir.path(), r#"echo '{"hostname": "x"}'"#),
            Duration::from_secs(20),
        );
        let e = no_id.provide(request(vec![])).await.unwrap_err();
        assert!(e.contains("no hostId"), "{e}");

        let slow = CommandProvider::new(script(dir.path(), "sleep 30"), Duration::from_millis(300));
        let e = slow.provide(request(vec![])).await.unwrap_err();
        assert!(e.contains("no answer within"), "{e}");

        let missing = CommandProvider::new(dir.path().join("nothing"), Duration::from_secs(1));
        let e = missing.provide(request(vec![])).await.unwrap_err();
        assert!(e.contains("cannot run it"), "{e}");
    }
}
