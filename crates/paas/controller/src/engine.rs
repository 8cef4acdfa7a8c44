//! What the controller needs of the container engine, as a small trait:
//! the strato-client implementation ([`ClientEngine`]) drives a real
//! `strato daemon` over the Engine API; unit tests use a fake.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use strato_client::types::{
    ContainerCreateConfig, ContainerListOptions, ContainerUpdate, Filters, RemoveOptions,
    StatsResponse,
};
use strato_client::Client;

/// Label naming the member a container serves (every PaaS container has it).
pub const LABEL_MEMBER: &str = "strato.paas.member";
/// Label naming the member's application.
pub const LABEL_APPLICATION: &str = "strato.paas.application";
/// Label naming the member's cluster.
pub const LABEL_CLUSTER: &str = "strato.paas.cluster";
/// Label naming the member's group instance (empty outside groups).
pub const LABEL_INSTANCE: &str = "strato.paas.instance";
/// Label naming the member's partition (`NETWORK-PARTITION/PARTITION`).
pub const LABEL_PARTITION: &str = "strato.paas.partition";

/// An engine call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub String);

/// A container to create for a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<String>,
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// A member container as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub ip: Option<IpAddr>,
}

/// Cumulative resource use of a container (cgroup figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// CPU time used since it started, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use (page cache excluded where the engine reports it).
    pub memory_bytes: u64,
    /// Its memory limit (0: none reported).
    pub memory_limit: u64,
}

/// The engine operations of the controller.
pub trait Engine: Send + Sync + 'static {
    /// Creates (not starts) a container with the spec's memory limit;
    /// returns its id. The CPU limit follows with [`Engine::limit_cpu`].
    fn create(&self, spec: &CreateSpec)
        -> impl Future<Output = Result<String, EngineError>> + Send;
    /// Starts a created container.
    fn start(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Sets a container's CPU limit, `millis` thousandths of a CPU (on a
    /// running container it applies at once).
    fn limit_cpu(
        &self,
        id: &str,
        millis: u64,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Every container labelled as a PaaS member, running or not.
    fn list(&self) -> impl Future<Output = Result<Vec<ContainerInfo>, EngineError>> + Send;
    /// The address of a container on its network (`None` before it has one).
    fn address(&self, id: &str)
        -> impl Future<Output = Result<Option<IpAddr>, EngineError>> + Send;
    /// Kills and removes a container; one already gone is not an error.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Resource use of a running container.
    fn usage(&self, id: &str) -> impl Future<Output = Result<Usage, EngineError>> + Send;
    /// Whether a member answers at `addr` (its port is open).
    fn probe(&self, addr: SocketAddr) -> impl Future<Output = bool> + Send;
}

/// The engine behind a `strato daemon`, through strato-client.
#[derive(Clone)]
pub struct ClientEngine {
    client: Client,
}

impl ClientEngine {
    pub fn new(client: Client) -> ClientEngine {
        ClientEngine { client }
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError(format!("{what}: {e}"))
}

impl Engine for ClientEngine {
    async fn create(&self, spec: &CreateSpec) -> Result<String, EngineError> {
        let mut cfg = ContainerCreateConfig::default();
        cfg.config.image = spec.image.clone();
        cfg.config.env = Some(spec.env.clone());
        cfg.config.labels = Some(spec.labels.clone().into_iter().collect());
        cfg.config.hostname = spec.name.chars().take(63).collect();
        if let Some(b) = spec.memory_bytes {
            cfg.host_config.memory = i64::try_from(b).unwrap_or(0);
        }
        let r = self
            .client
            .container_create(Some(&spec.name), &cfg)
            .await
            .map_err(|e| err(&format!("create container {}", spec.name), e))?;
        Ok(r.id)
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.client
            .container_start(id)
            .await
            .map_err(|e| err(&format!("start container {id}"), e))
    }

    async fn limit_cpu(&self, id: &str, millis: u64) -> Result<(), EngineError> {
        let update = ContainerUpdate {
            nano_cpus: i64::try_from(millis.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            ..Default::default()
        };
        self.client
            .container_update(id, &update)
            .await
            .map(|_| ())
            .map_err(|e| err(&format!("set the cpu limit of container {id}"), e))
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        let mut filters = Filters::default();
        filters
            .0
            .insert("label".into(), vec![LABEL_MEMBER.to_owned()]);
        let opts = ContainerListOptions {
            all: true,
            filters,
            ..Default::default()
        };
        let list = self
            .client
            .container_list(&opts)
            .await
            .map_err(|e| err("list member containers", e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                ip: c
                    .network_settings
                    .networks
                    .values()
                    .find_map(|n| n.ip_address.parse().ok()),
                running: c.state == "running",
                labels: c.labels.into_iter().collect(),
                id: c.id,
            })
            .collect())
    }

    async fn address(&self, id: &str) -> Result<Option<IpAddr>, EngineError> {
        let c = self
            .client
            .container_inspect(id)
            .await
            .map_err(|e| err(&format!("inspect container {id}"), e))?;
        let n = &c.network_settings;
        Ok(std::iter::once(n.ip_address.as_str())
            .chain(n.networks.values().map(|e| e.ip_address.as_str()))
            .find_map(|a| a.parse().ok()))
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let opts = RemoveOptions {
            force: true,
            ..Default::default()
        };
        match self.client.container_remove(id, opts).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(err(&format!("remove container {id}"), e)),
        }
    }

    async fn usage(&self, id: &str) -> Result<Usage, EngineError> {
        // One sample at once (one-shot), not docker's two samples a second apart.
        let s: StatsResponse = self
            .client
            .get_json(&format!("/containers/{id}/stats?stream=0&one-shot=1"))
            .await
            .map_err(|e| err(&format!("stats of container {id}"), e))?;
        let cache = s
            .memory_stats
            .stats
            .get("inactive_file")
            .copied()
            .unwrap_or(0);
        Ok(Usage {
            cpu_ns: s.cpu_stats.cpu_usage.total_usage,
            memory_bytes: s.memory_stats.usage.saturating_sub(cache),
            memory_limit: s.memory_stats.limit,
        })
    }

    async fn probe(&self, addr: SocketAddr) -> bool {
        tcp_probe(addr).await
    }
}

/// Whether a TCP connection to `addr` opens within half a second.
pub async fn tcp_probe(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}
