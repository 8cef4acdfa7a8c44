//! A fake engine for unit tests: containers in memory, a probe that
//! answers for running ones, usage figures set by the test.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::engine::{
    ContainerInfo, CreateSpec, Engine, EngineError, Usage, LABEL_CLUSTER, LABEL_INSTANCE,
};

#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub spec: CreateSpec,
    pub running: bool,
    pub ip: IpAddr,
    /// The CPU limit set on it, thousandths of a CPU.
    pub cpu_limit: Option<u64>,
    /// Cumulative cpu time reported so far.
    pub cpu_ns: u64,
}

#[derive(Default)]
pub struct FakeState {
    pub containers: BTreeMap<String, FakeContainer>,
    /// Every create, in order: (container id, cluster).
    pub created: Vec<(String, String)>,
    /// Every remove, in order: cluster of the removed container.
    pub removed: Vec<String>,
    /// Memory use reported for containers of a cluster, percent of the limit.
    pub memory_percent: BTreeMap<String, u64>,
    /// CPU use of containers of a cluster, percent of their cpu limit:
    /// each usage read adds a second's worth (the tests tick once a second).
    pub load_percent: BTreeMap<String, u64>,
    /// The same for the containers of one group instance of a cluster,
    /// by (cluster, instance); before `load_percent`.
    pub instance_load_percent: BTreeMap<(String, String), u64>,
    /// Creates fail (a missing image) while set.
    pub fail_create: bool,
    /// Create calls, failed or not.
    pub create_calls: u32,
    /// How long a create takes (tokio time; tests pause it).
    pub create_delay: Duration,
    /// Creates in flight now, and the most at once.
    pub creating: u32,
    pub most_creating: u32,
}

#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<FakeState>>);

static NEXT: AtomicU32 = AtomicU32::new(1);

impl Fake {
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn running_in(&self, cluster: &str) -> Vec<FakeContainer> {
        self.state()
            .containers
            .values()
            .filter(|c| c.running && c.spec.labels[LABEL_CLUSTER] == cluster)
            .cloned()
            .collect()
    }
}

impl Engine for Fake {
    async fn create(&self, spec: &CreateSpec) -> Result<String, EngineError> {
        let delay = {
            let mut s = self.state();
            s.create_calls += 1;
            s.creating += 1;
            s.most_creating = s.most_creating.max(s.creating);
            s.create_delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("c{n}");
        let mut s = self.state();
        s.creating -= 1;
        if s.fail_create {
            return Err(EngineError(format!("No such image: {}", spec.image)));
        }
        s.created
            .push((id.clone(), spec.labels[LABEL_CLUSTER].clone()));
        s.containers.insert(
            id.clone(),
            FakeContainer {
                spec: spec.clone(),
                running: false,
                ip: IpAddr::from([10, 9, (n >> 8) as u8, n as u8]),
                cpu_limit: None,
                cpu_ns: 0,
            },
        );
        Ok(id)
    }
    async fn start(&self, id: &str) -> Result<(), EngineError> {
        match self.state().containers.get_mut(id) {
            Some(c) => {
                c.running = true;
                Ok(())
            }
            None => Err(EngineError(format!("no container {id}"))),
        }
    }
    async fn list(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        Ok(self
            .state()
            .containers
            .iter()
            .map(|(id, c)| ContainerInfo {
                id: id.clone(),
                labels: c.spec.labels.clone(),
                running: c.running,
                ip: Some(c.ip),
            })
            .collect())
    }
    async fn limit_cpu(&self, id: &str, millis: u64) -> Result<(), EngineError> {
        match self.state().containers.get_mut(id) {
            Some(c) => {
                c.cpu_limit = Some(millis);
                Ok(())
            }
            None => Err(EngineError(format!("no container {id}"))),
        }
    }
    async fn address(&self, id: &str) -> Result<Option<IpAddr>, EngineError> {
        match self.state().containers.get(id) {
            Some(c) => Ok(c.running.then_some(c.ip)),
            None => Err(EngineError(format!("no container {id}"))),
        }
    }
    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let mut s = self.state();
        if let Some(c) = s.containers.remove(id) {
            let cl = c.spec.labels[LABEL_CLUSTER].clone();
            s.removed.push(cl);
        }
        Ok(())
    }
    async fn usage(&self, id: &str) -> Result<Usage, EngineError> {
        let mut guard = self.state();
        let s = &mut *guard;
        let c = s.containers.get_mut(id).ok_or(EngineError("gone".into()))?;
        let limit = c.spec.memory_bytes.unwrap_or(1 << 30);
        let cluster = &c.spec.labels[LABEL_CLUSTER];
        let pct = s.memory_percent.get(cluster).copied().unwrap_or(1);
        let instance = c
            .spec
            .labels
            .get(LABEL_INSTANCE)
            .cloned()
            .unwrap_or_default();
        let load = s
            .instance_load_percent
            .get(&(cluster.clone(), instance))
            .or_else(|| s.load_percent.get(cluster))
            .copied()
            .unwrap_or(0);
        // load % of cpu_millis/1000 cores for one second.
        c.cpu_ns += load * c.spec.cpu_millis.unwrap_or(1000) * 10_000;
        Ok(Usage {
            cpu_ns: c.cpu_ns,
            memory_bytes: limit / 100 * pct,
            memory_limit: limit,
        })
    }
    async fn probe(&self, addr: SocketAddr) -> bool {
        self.state()
            .containers
            .values()
            .any(|c| c.running && c.ip == addr.ip())
    }
}
