//! Domain types of the Engine API, shaped like Docker's JSON (moby
//! `api/swagger.yaml`) so that a backend fills them directly and the server
//! serializes them unchanged. Every struct accepts missing fields
//! (`#[serde(default)]`); request types that Docker extends often keep unknown
//! fields in an `extra` map so nothing a client sent is lost on the way to the
//! backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `map[string]string` in Docker's JSON (labels, options, sysctls…).
pub type StringMap = BTreeMap<String, String>;
/// Unknown fields kept as they came.
pub type Extra = serde_json::Map<String, Value>;

/// Parsed `filters` query parameter: `{"label":{"a=b":true}}` (current form)
/// or `{"label":["a=b"]}` (old form), both read into key → values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the JSON of a `filters` query parameter; an empty string is no filter.
    pub fn parse(s: &str) -> Result<Filters, crate::ApiError> {
        if s.trim().is_empty() {
            return Ok(Filters::default());
        }
        let v: BTreeMap<String, Value> = serde_json::from_str(s).map_err(|e| {
            crate::ApiError::bad_parameter(format!(
                "invalid filters {s:?}: {e}; expected JSON like {{\"label\":{{\"a=b\":true}}}}"
            ))
        })?;
        let mut out = BTreeMap::new();
        for (k, v) in v {
            let vals: Vec<String> = match v {
                Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, b)| b.as_bool().unwrap_or(true))
                    .map(|(k, _)| k)
                    .collect(),
                Value::Array(a) => a
                    .into_iter()
                    .map(|x| match x {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
                Value::String(s) => vec![s],
                other => {
                    return Err(crate::ApiError::bad_parameter(format!(
                        "invalid filter {k:?}: value {other} is neither a map nor a list"
                    )))
                }
            };
            out.insert(k, vals);
        }
        Ok(Filters(out))
    }
    /// The values given for `key` (empty when absent).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Whether `labels` satisfy every `label` filter (`key` or `key=value`).
    pub fn match_labels(&self, key: &str, labels: &StringMap) -> bool {
        self.get(key).iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(f.as_str()),
        })
    }
    /// Whether `value` matches one of the values for `key` (no filter: true).
    pub fn match_any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        let v = self.get(key);
        v.is_empty() || v.iter().any(|f| pred(f))
    }
}

// ---------------------------------------------------------------- system

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ComponentVersion {
    pub name: String,
    pub version: String,
    pub details: Option<StringMap>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PlatformName {
    pub name: String,
}

/// `GET /version`. The server overwrites `ApiVersion` and `MinAPIVersion`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SystemVersion {
    pub platform: PlatformName,
    pub components: Vec<ComponentVersion>,
    pub version: String,
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    pub git_commit: String,
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    pub experimental: bool,
    pub build_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PluginsInfo {
    pub volume: Vec<String>,
    pub network: Vec<String>,
    pub authorization: Option<Vec<String>>,
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct IndexInfo {
    pub name: String,
    pub mirrors: Vec<String>,
    pub secure: bool,
    pub official: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RegistryConfig {
    #[serde(rename = "InsecureRegistryCIDRs")]
    pub insecure_registry_cidrs: Vec<String>,
    pub index_configs: BTreeMap<String, IndexInfo>,
    pub mirrors: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SwarmInfo {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_addr: String,
    /// `inactive` for an engine without swarm.
    pub local_node_state: String,
    pub control_available: bool,
    pub error: String,
    pub remote_managers: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeInfo {
    pub path: String,
    #[serde(rename = "runtimeArgs", skip_serializing_if = "Option::is_none")]
    pub runtime_args: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CommitInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub expected: String,
}

/// `GET /info`. Every field the docker CLI dereferences is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SystemInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub containers: i64,
    pub containers_running: i64,
    pub containers_paused: i64,
    pub containers_stopped: i64,
    pub images: i64,
    pub driver: String,
    /// List of `[key, value]` pairs.
    pub driver_status: Vec<[String; 2]>,
    /// List of `[key, value]` pairs.
    pub system_status: Option<Vec<[String; 2]>>,
    pub plugins: PluginsInfo,
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    #[serde(rename = "CPUShares")]
    pub cpu_shares: bool,
    #[serde(rename = "CPUSet")]
    pub cpu_set: bool,
    pub pids_limit: bool,
    pub oom_kill_disable: bool,
    #[serde(rename = "IPv4Forwarding")]
    pub ipv4_forwarding: bool,
    pub bridge_nf_iptables: bool,
    pub bridge_nf_ip6tables: bool,
    pub debug: bool,
    pub n_fd: i64,
    pub n_goroutines: i64,
    pub system_time: String,
    pub logging_driver: String,
    pub cgroup_driver: String,
    pub cgroup_version: String,
    pub n_events_listener: i64,
    pub kernel_version: String,
    pub operating_system: String,
    #[serde(rename = "OSVersion")]
    pub os_version: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    pub architecture: String,
    pub index_server_address: String,
    pub registry_config: RegistryConfig,
    #[serde(rename = "NCPU")]
    pub ncpu: i64,
    pub mem_total: i64,
    pub generic_resources: Option<Vec<Value>>,
    pub docker_root_dir: String,
    pub http_proxy: String,
    pub https_proxy: String,
    pub no_proxy: String,
    pub name: String,
    pub labels: Vec<String>,
    pub experimental_build: bool,
    pub server_version: String,
    pub runtimes: BTreeMap<String, RuntimeInfo>,
    pub default_runtime: String,
    pub swarm: SwarmInfo,
    pub live_restore_enabled: bool,
    pub isolation: String,
    pub init_binary: String,
    pub containerd_commit: CommitInfo,
    pub runc_commit: CommitInfo,
    pub init_commit: CommitInfo,
    pub security_options: Vec<String>,
    #[serde(rename = "CDISpecDirs")]
    pub cdi_spec_dirs: Vec<String>,
    pub warnings: Option<Vec<String>>,
}

impl Default for SystemInfo {
    fn default() -> Self {
        SystemInfo {
            id: String::new(),
            containers: 0,
            containers_running: 0,
            containers_paused: 0,
            containers_stopped: 0,
            images: 0,
            driver: "overlay2".into(),
            driver_status: Vec::new(),
            system_status: None,
            plugins: PluginsInfo {
                volume: vec!["local".into()],
                network: vec!["bridge".into(), "host".into(), "null".into()],
                authorization: None,
                log: vec!["json-file".into()],
            },
            memory_limit: true,
            swap_limit: true,
            cpu_cfs_period: true,
            cpu_cfs_quota: true,
            cpu_shares: true,
            cpu_set: true,
            pids_limit: true,
            oom_kill_disable: false,
            ipv4_forwarding: true,
            bridge_nf_iptables: false,
            bridge_nf_ip6tables: false,
            debug: false,
            n_fd: 0,
            n_goroutines: 0,
            system_time: String::new(),
            logging_driver: "json-file".into(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: "2".into(),
            n_events_listener: 0,
            kernel_version: String::new(),
            operating_system: String::new(),
            os_version: String::new(),
            os_type: "linux".into(),
            architecture: std::env::consts::ARCH.into(),
            index_server_address: "https://index.docker.io/v1/".into(),
            registry_config: RegistryConfig {
                insecure_registry_cidrs: vec!["127.0.0.0/8".into()],
                index_configs: BTreeMap::new(),
                mirrors: Vec::new(),
            },
            ncpu: 1,
            mem_total: 0,
            generic_resources: None,
            docker_root_dir: String::new(),
            http_proxy: String::new(),
            https_proxy: String::new(),
            no_proxy: String::new(),
            name: String::new(),
            labels: Vec::new(),
            experimental_build: false,
            server_version: String::new(),
            runtimes: BTreeMap::new(),
            default_runtime: "strato".into(),
            swarm: SwarmInfo {
                local_node_state: "inactive".into(),
                ..Default::default()
            },
            live_restore_enabled: false,
            isolation: String::new(),
            init_binary: "docker-init".into(),
            containerd_commit: CommitInfo::default(),
            runc_commit: CommitInfo::default(),
            init_commit: CommitInfo::default(),
            security_options: vec!["name=seccomp,profile=builtin".into()],
            cdi_spec_dirs: Vec::new(),
            warnings: None,
        }
    }
}

/// Options of `GET /events`. Times are unix seconds (fractions allowed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsOptions {
    pub since: Option<f64>,
    pub until: Option<f64>,
    pub filters: Filters,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: StringMap,
}

/// One event of `GET /events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventMessage {
    /// `container`, `image`, `network`, `volume`, `daemon`…
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    /// Deprecated duplicates that old clients read (`status`, `id`, `from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// `GET /system/df`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DiskUsage {
    pub layers_size: i64,
    pub images: Vec<ImageSummary>,
    pub containers: Vec<ContainerSummary>,
    pub volumes: Vec<Volume>,
    pub build_cache: Vec<Value>,
}

/// `GET /distribution/{name}/json`: what a registry holds under a name,
/// without pulling it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DistributionInspect {
    pub descriptor: OciDescriptor,
    pub platforms: Vec<OciPlatform>,
}

/// An OCI content descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OciDescriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
}

/// An OCI platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OciPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// Registry credentials, from `POST /auth` or the `X-Registry-Auth` header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
    pub auth: String,
    pub email: String,
    pub serveraddress: String,
    pub identitytoken: String,
    pub registrytoken: String,
}

/// Answer of `POST /auth`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AuthResponse {
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identity_token: String,
}

// ---------------------------------------------------------------- containers

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HealthConfig {
    pub test: Option<Vec<String>>,
    pub interval: i64,
    pub timeout: i64,
    pub retries: i64,
    pub start_period: i64,
    pub start_interval: i64,
}

/// The container configuration (`Config` in inspect; the top level of a create body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// Keys like `80/tcp`, values `{}`.
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub healthcheck: Option<HealthConfig>,
    pub args_escaped: Option<bool>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub network_disabled: Option<bool>,
    pub mac_address: Option<String>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<StringMap>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub shell: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// `80/tcp` → bindings (or null when exposed but unpublished).
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// `""`, `no`, `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: StringMap,
}

/// A `HostConfig.Mounts` entry (`--mount`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct MountSpec {
    pub target: String,
    pub source: String,
    /// `bind`, `volume`, `tmpfs`, `image`, `npipe`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub read_only: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// `HostConfig`: the commonly used fields typed, the rest kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: String,
    pub log_config: LogConfig,
    pub network_mode: String,
    pub port_bindings: Option<PortMap>,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub volume_driver: String,
    pub volumes_from: Option<Vec<String>>,
    pub mounts: Option<Vec<MountSpec>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub cgroupns_mode: String,
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub group_add: Option<Vec<String>>,
    pub ipc_mode: String,
    pub cgroup: String,
    pub links: Option<Vec<String>>,
    pub oom_score_adj: i64,
    pub pid_mode: String,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    pub storage_opt: Option<StringMap>,
    pub tmpfs: Option<StringMap>,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub shm_size: i64,
    pub sysctls: Option<StringMap>,
    pub runtime: String,
    pub isolation: String,
    pub cpu_shares: i64,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cgroup_parent: String,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub devices: Option<Vec<DeviceMapping>>,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub init: Option<bool>,
    pub console_size: Option<[u64; 2]>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointIpamConfig {
    #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
}

/// A container's endpoint on one network (create, connect, inspect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
    pub links: Option<Vec<String>>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: String,
    pub driver_opts: Option<StringMap>,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkingConfig {
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// Body of `POST /containers/create`: `Config` fields at the top level plus
/// `HostConfig` and `NetworkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerCreateConfig {
    #[serde(flatten)]
    pub config: ContainerConfig,
    #[serde(rename = "HostConfig")]
    pub host_config: HostConfig,
    #[serde(rename = "NetworkingConfig")]
    pub networking_config: NetworkingConfig,
}

/// `{"Id", "Warnings"}`: answer of container create and of exec create (`Id` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CreateResponse {
    pub id: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct IdResponse {
    pub id: String,
}

/// Options of stop and restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopOptions {
    /// Signal to send first (default: the container's StopSignal, else SIGTERM).
    pub signal: Option<String>,
    /// Seconds to wait before SIGKILL; `None`: the container's StopTimeout, else 10;
    /// `-1`: wait forever.
    pub timeout: Option<i64>,
}

/// `condition` of `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return at once if the container is not running, else when it stops.
    #[default]
    NotRunning,
    /// Return at the next exit, even if the container is not running now.
    NextExit,
    /// Return when the container is removed.
    Removed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct WaitError {
    pub message: String,
}

/// Body of a wait answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct WaitResponse {
    pub status_code: i64,
    pub error: Option<WaitError>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Kill a running container first (else 409).
    pub force: bool,
    /// Remove anonymous volumes too.
    pub volumes: bool,
    /// Remove a link instead of the container.
    pub link: bool,
}

/// Options of `GET /containers/json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Only the `limit` most recently created (implies all); `None`: no limit.
    pub limit: Option<usize>,
    /// Fill `SizeRw` and `SizeRootFs`.
    pub size: bool,
    /// `id`, `name`, `label`, `status`, `ancestor`, `exited`, `before`, `since`,
    /// `volume`, `network`, `health`, `is-task`, `publish`, `expose`.
    pub filters: Filters,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Port {
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    #[serde(rename = "PublicPort", skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

/// A mount as reported by inspect and list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SummaryHostConfig {
    pub network_mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SummaryNetworkSettings {
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// An entry of `GET /containers/json`. `Names` begin with `/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    /// Unix seconds.
    pub created: i64,
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    pub labels: StringMap,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub state: String,
    /// Human text: `Up 5 minutes`, `Exited (0) 2 seconds ago`.
    pub status: String,
    pub host_config: SummaryHostConfig,
    pub network_settings: SummaryNetworkSettings,
    pub mounts: Vec<MountPoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Value>,
}

/// `State` of a container inspect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    /// RFC 3339 with nanoseconds; `0001-01-01T00:00:00Z` when never.
    pub started_at: String,
    pub finished_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub sandbox_key: String,
    pub hairpin_mode: bool,
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: i64,
    pub ports: PortMap,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    pub mac_address: String,
    pub networks: BTreeMap<String, EndpointSettings>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: StringMap,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    /// The image ID (`sha256:…`).
    pub image: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub log_path: String,
    /// Begins with `/`.
    pub name: String,
    pub restart_count: i64,
    pub driver: String,
    pub platform: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    pub host_config: HostConfig,
    pub graph_driver: GraphDriver,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    pub mounts: Vec<MountPoint>,
    pub config: ContainerConfig,
    pub network_settings: NetworkSettings,
}

/// Options of `GET /containers/{id}/logs`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogsOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Unix seconds; only lines at or after.
    pub since: Option<f64>,
    /// Unix seconds; only lines before.
    pub until: Option<f64>,
    /// Prefix each line with its RFC 3339 nano timestamp and a space (the backend does it).
    pub timestamps: bool,
    /// Only the last N lines; `None`: all.
    pub tail: Option<usize>,
}

/// Options of `POST /containers/{id}/attach`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachOptions {
    pub stream: bool,
    /// Replay the container's logs first.
    pub logs: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub detach_keys: Option<String>,
}

/// `GET /containers/{id}/top`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TopResponse {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    pub total_usage: u64,
    pub percpu_usage: Option<Vec<u64>>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    pub system_cpu_usage: u64,
    pub online_cpus: u32,
    pub throttling_data: ThrottlingData,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryStats {
    pub usage: u64,
    pub max_usage: u64,
    /// cgroup memory.stat entries (`inactive_file`, `anon`…).
    pub stats: BTreeMap<String, u64>,
    pub failcnt: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PidsStats {
    pub current: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioStatEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_serviced_recursive: Option<Vec<BlkioStatEntry>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// One sample of `GET /containers/{id}/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsResponse {
    /// RFC 3339 nano time of this sample.
    pub read: String,
    /// Time of the previous sample (`0001-01-01T00:00:00Z` for the first).
    pub preread: String,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub num_procs: u32,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    pub name: String,
    pub id: String,
    pub networks: Option<BTreeMap<String, NetworkStats>>,
}

/// Stat of a path inside a container (`X-Docker-Container-Path-Stat`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits: permission bits plus 1<<31 for a directory,
    /// 1<<27 for a symlink (see [`PathStat::go_mode`]).
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// Converts a unix `st_mode` into Go's `os.FileMode` bits.
    pub fn go_mode(st_mode: u32) -> u32 {
        let mut m = st_mode & 0o777;
        match st_mode & 0o170000 {
            0o040000 => m |= 1 << 31,
            0o120000 => m |= 1 << 27,
            0o010000 => m |= 1 << 25,
            0o140000 => m |= 1 << 24,
            0o020000 => m |= (1 << 26) | (1 << 21),
            0o060000 => m |= 1 << 26,
            _ => {}
        }
        if st_mode & 0o4000 != 0 {
            m |= 1 << 23;
        }
        if st_mode & 0o2000 != 0 {
            m |= 1 << 22;
        }
        if st_mode & 0o1000 != 0 {
            m |= 1 << 20;
        }
        m
    }
}

/// Options of `PUT /containers/{id}/archive`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivePutOptions {
    /// Directory to extract into, inside the container.
    pub path: String,
    /// Error if a directory would replace a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Keep the tar's uid/gid instead of mapping to the container's root.
    pub copy_uid_gid: bool,
}

/// The body of `POST /containers/{id}/update`: the resource fields of a
/// HostConfig (zero or absent: unchanged) and the restart policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerUpdate {
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub pids_limit: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The answer of `POST /containers/{id}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerUpdateResponse {
    pub warnings: Vec<String>,
}

/// An entry of `GET /containers/{id}/changes` (Kind: 0 modified, 1 added, 2 deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct FilesystemChange {
    pub path: String,
    pub kind: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainersPruneReport {
    pub containers_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

// ---------------------------------------------------------------- exec

/// Body of `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// dockerd decodes JSON case-insensitively; docker-py sends `detachKeys`.
    #[serde(alias = "detachKeys")]
    pub detach_keys: String,
    pub tty: bool,
    pub console_size: Option<[u64; 2]>,
    pub env: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
}

/// Body of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ExecStartConfig {
    pub detach: bool,
    pub tty: bool,
    pub console_size: Option<[u64; 2]>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessConfig {
    pub privileged: bool,
    pub user: String,
    pub tty: bool,
    pub entrypoint: String,
    pub arguments: Vec<String>,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    pub running: bool,
    /// `None` (JSON null) until the process exited.
    pub exit_code: Option<i64>,
    pub process_config: ProcessConfig,
    pub open_stdin: bool,
    pub open_stderr: bool,
    pub open_stdout: bool,
    pub can_remove: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub detach_keys: String,
    pub pid: i64,
}

// ---------------------------------------------------------------- images

/// Options of `GET /images/json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageListOptions {
    /// Include intermediate images.
    pub all: bool,
    /// `dangling`, `label`, `reference`, `before`, `since`, `until`.
    pub filters: Filters,
    pub shared_size: bool,
    pub digests: bool,
}

/// An entry of `GET /images/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageSummary {
    /// `sha256:…`
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size: i64,
    /// -1 when not computed.
    pub shared_size: i64,
    pub virtual_size: i64,
    pub labels: StringMap,
    /// -1 when not computed.
    pub containers: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageMetadata {
    pub last_tag_time: String,
}

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    /// RFC 3339.
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
    pub os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    pub size: i64,
    pub virtual_size: i64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: ImageMetadata,
}

/// An entry of `GET /images/{name}/history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HistoryItem {
    /// `sha256:…` or `<missing>`.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: i64,
    pub comment: String,
}

/// An entry of `DELETE /images/{name}`: exactly one of the two is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageDeleteItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImagesPruneReport {
    pub images_deleted: Vec<ImageDeleteItem>,
    pub space_reclaimed: u64,
}

/// Options of `POST /build` (the classic builder), from its query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// `t`: `name[:tag]` references to give the result (repeatable).
    pub tags: Vec<String>,
    /// `remote`: a URL to fetch the context from (a tar, plain or
    /// compressed, or a Dockerfile); the request body is then unused.
    pub remote: String,
    /// `dockerfile`: its path inside the context (default `Dockerfile`).
    pub dockerfile: String,
    /// `buildargs`: `--build-arg` values (`None`: take it from the
    /// environment, which a daemon does not have: unset).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `labels`: labels added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `target`: the last stage to build.
    pub target: String,
    /// `q`: only the image ID is streamed.
    pub quiet: bool,
    /// `nocache`: no step is taken from the cache.
    pub no_cache: bool,
    /// `rm` (default true): remove intermediate containers.
    pub remove: bool,
    /// `forcerm`: remove intermediate containers even after a failure.
    pub force_remove: bool,
    /// `pull`: always pull FROM images (a daemon without registry access
    /// uses what it has).
    pub pull: bool,
    /// `networkmode` of RUN containers (`default`/`bridge`, `host`, `none`, a network).
    pub network_mode: String,
    /// `extrahosts`: `host:ip` entries for RUN containers' /etc/hosts.
    pub extra_hosts: Vec<String>,
    /// `shmsize` in bytes of RUN containers' /dev/shm.
    pub shm_size: Option<i64>,
    /// `cachefrom`: images whose ancestry may serve as cache (only those,
    /// when given).
    pub cache_from: Vec<String>,
    /// `platform`, already checked to be this host's.
    pub platform: String,
}

/// Options of `POST /images/create?fromSrc=…` (import of a rootfs tar).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// `-` for the request body (the only source this server streams), else a URL.
    pub from_src: String,
    pub repo: String,
    pub tag: String,
    pub message: String,
    /// Dockerfile instructions to apply (`changes=CMD …`, repeated).
    pub changes: Vec<String>,
    pub platform: String,
}

/// Query of `POST /commit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    pub container: String,
    /// `repo` and `tag` of the new image (both may be empty).
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    /// Pause a running container while its layer is read (default true).
    pub pause: bool,
    /// Dockerfile instructions to apply (`changes=CMD …`, repeated).
    pub changes: Vec<String>,
}

/// Options of `POST /images/create?fromImage=…` (pull).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOptions {
    pub from_image: String,
    /// Tag or digest; empty means `latest` unless `from_image` has one.
    pub tag: String,
    pub platform: String,
    pub auth: Option<AuthConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub message: String,
}

/// One line of a progress stream (load, import, pull, push). A failure in the
/// middle of a stream is a message with `error` and `errorDetail` set: the CLI
/// prints it and exits 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<Value>,
}

impl JsonMessage {
    /// `{"stream": text}` (e.g. `Loaded image: busybox:latest\n`).
    pub fn stream(text: impl Into<String>) -> Self {
        JsonMessage {
            stream: Some(text.into()),
            ..Default::default()
        }
    }
    /// `{"status": text}` with an optional layer `id`.
    pub fn status(text: impl Into<String>, id: Option<String>) -> Self {
        JsonMessage {
            status: Some(text.into()),
            id,
            ..Default::default()
        }
    }
    /// `{"error": msg, "errorDetail": {"message": msg}}`.
    pub fn error(message: impl Into<String>) -> Self {
        let m = message.into();
        JsonMessage {
            error: Some(m.clone()),
            error_detail: Some(ErrorDetail {
                code: None,
                message: m,
            }),
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------- networks

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct IpamPool {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auxiliary_addresses: Option<StringMap>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub options: Option<StringMap>,
    pub config: Vec<IpamPool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ConfigReference {
    pub network: String,
}

/// A network (list and inspect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkResource {
    pub name: String,
    pub id: String,
    /// RFC 3339.
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: StringMap,
    pub labels: StringMap,
}

/// Body of `POST /networks/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkCreateRequest {
    pub name: String,
    pub check_duplicate: Option<bool>,
    pub driver: String,
    pub scope: String,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_only: bool,
    pub config_from: Option<ConfigReference>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    pub options: Option<StringMap>,
    pub labels: Option<StringMap>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// Body of `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkConnectRequest {
    pub container: String,
    pub endpoint_config: Option<EndpointSettings>,
}

/// Body of `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkDisconnectRequest {
    pub container: String,
    pub force: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworksPruneReport {
    pub networks_deleted: Vec<String>,
}

// ---------------------------------------------------------------- volumes

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeUsage {
    pub size: i64,
    pub ref_count: i64,
}

/// A volume (list, create, inspect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    /// RFC 3339.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StringMap>,
    pub labels: StringMap,
    pub scope: String,
    pub options: StringMap,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<VolumeUsage>,
}

/// Body of `POST /volumes/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeCreateRequest {
    pub name: String,
    pub driver: String,
    pub driver_opts: Option<StringMap>,
    pub labels: Option<StringMap>,
}

/// `GET /volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeListResponse {
    pub volumes: Vec<Volume>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumesPruneReport {
    pub volumes_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_both_forms() {
        let f = Filters::parse(r#"{"label":{"a=b":true},"status":["exited"]}"#).unwrap();
        assert_eq!(f.get("label"), ["a=b"]);
        assert_eq!(f.get("status"), ["exited"]);
        assert!(f.get("name").is_empty());
        let err = Filters::parse("{nope").unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message.contains("invalid filters"));
    }

    #[test]
    fn label_filter_matching() {
        let f = Filters::parse(r#"{"label":["a=b","c"]}"#).unwrap();
        let mut l = StringMap::new();
        l.insert("a".into(), "b".into());
        assert!(!f.match_labels("label", &l));
        l.insert("c".into(), "x".into());
        assert!(f.match_labels("label", &l));
    }

    #[test]
    fn create_body_keeps_top_level_config_and_unknown_host_fields() {
        let body = r#"{"Image":"busybox","Cmd":["echo","hi"],"Tty":true,
            "HostConfig":{"AutoRemove":true,"UTSMode":"host","BlkioWeight":5},
            "NetworkingConfig":{"EndpointsConfig":{"bridge":{}}}}"#;
        let c: ContainerCreateConfig = serde_json::from_str(body).unwrap();
        assert_eq!(c.config.image, "busybox");
        assert_eq!(
            c.config.cmd.as_deref(),
            Some(&["echo".into(), "hi".into()][..])
        );
        assert!(c.config.tty);
        assert!(c.host_config.auto_remove);
        assert_eq!(c.host_config.uts_mode, "host");
        assert_eq!(c.host_config.extra["BlkioWeight"], 5);
        assert!(c.networking_config.endpoints_config.contains_key("bridge"));
    }

    #[test]
    fn go_file_mode() {
        assert_eq!(PathStat::go_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(PathStat::go_mode(0o100644), 0o644);
        assert_eq!(PathStat::go_mode(0o120777), (1 << 27) | 0o777);
    }
}
