//! Pure conversions between the Engine API's Docker-shaped types
//! (strato-api) and the engine's model: a create body into a
//! [`CreateRequest`], a [`Record`] into list and inspect answers, signal
//! names, restart policies, published ports. No I/O here, so all of it is
//! unit-tested.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use strato_api::types as api;
use strato_api::ApiError;
use strato_network::{PortMapping, Protocol};
use strato_supervisor::{ContainerStatus, Phase, RestartPolicy};

use crate::engine::{CreateRequest, NetworkMode, Record};
use crate::model::{BlkioRule, ContainerConfig, DeviceSpec, MountSpec, ResourceUpdate, Resources};
use crate::time;

/// The name of the default runtime in info and inspect (dockerd's); the
/// built-in runtime also answers to `strato`.
pub const DEFAULT_RUNTIME: &str = "runc";

/// A signal given by name (`SIGHUP`, `HUP`, `hup`) or number.
pub fn signal_number(s: &str) -> Result<i32, ApiError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| {
            ApiError::bad_parameter(format!(
                "invalid signal {s:?}: give a name like SIGTERM or HUP, or a number"
            ))
        })
}

/// Docker's `RestartPolicy` as the supervisor's.
pub fn restart_policy(p: &api::RestartPolicy) -> Result<RestartPolicy, ApiError> {
    let spelled = if p.name == "on-failure" && p.maximum_retry_count > 0 {
        format!("on-failure:{}", p.maximum_retry_count)
    } else {
        p.name.clone()
    };
    RestartPolicy::parse(&spelled).map_err(ApiError::bad_parameter)
}

/// The API's spelling of a supervisor restart policy.
pub fn restart_policy_api(p: &RestartPolicy) -> api::RestartPolicy {
    let (name, max) = match p {
        RestartPolicy::No => ("no", 0),
        RestartPolicy::Always => ("always", 0),
        RestartPolicy::UnlessStopped => ("unless-stopped", 0),
        RestartPolicy::OnFailure { max_retries } => ("on-failure", i64::from(*max_retries)),
    };
    api::RestartPolicy {
        name: name.into(),
        maximum_retry_count: max,
    }
}

/// `PortBindings` (`"8080/tcp": [{HostIp, HostPort}]`) as port mappings; a
/// host port of 0 means "pick a free one" (the caller does).
pub fn port_mappings(bindings: &api::PortMap) -> Result<Vec<PortMapping>, ApiError> {
    let mut out = Vec::new();
    for (key, list) in bindings {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let container_port: u16 = port.parse().map_err(|_| {
            ApiError::bad_parameter(format!(
                "invalid container port {key:?}: expected PORT/tcp or PORT/udp"
            ))
        })?;
        let protocol = protocol(proto, key)?;
        for b in list.iter().flatten() {
            let host_ip = match b.host_ip.as_str() {
                "" | "0.0.0.0" | "::" | "[::]" => None,
                ip => Some(
                    ip.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .map_err(|_| {
                            ApiError::bad_parameter(format!(
                                "invalid host address {ip:?} for port {key}: give an IPv4 or IPv6 address"
                            ))
                        })?,
                ),
            };
            let host_port: u16 = if b.host_port.is_empty() {
                0
            } else {
                // A range like 8000-8010 takes its first port.
                let first = b.host_port.split('-').next().unwrap_or("");
                first.parse().map_err(|_| {
                    ApiError::bad_parameter(format!(
                        "invalid host port {:?} for {key}",
                        b.host_port
                    ))
                })?
            };
            out.push(PortMapping {
                host_ip,
                host_port,
                container_port,
                protocol,
            });
        }
    }
    Ok(out)
}

/// `--cgroup-parent`: a cgroup path from the hierarchies' roots, without
/// `.` or `..` (which would leave them).
fn cgroup_parent(p: &str) -> Result<String, ApiError> {
    let bad = p
        .split('/')
        .any(|c| c == "." || c == ".." || c.contains('\0'));
    if bad {
        return Err(ApiError::bad_parameter(format!(
            "invalid --cgroup-parent {p:?}: give a cgroup path like /mygroup, without . or .."
        )));
    }
    Ok(p.to_string())
}

/// `--memory-swappiness`: 0–100, or -1 (and none) for the kernel's.
fn swappiness(v: Option<i64>) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n @ 0..=100) => Ok(Some(n)),
        Some(n) => Err(ApiError::bad_parameter(format!(
            "invalid --memory-swappiness {n}: the range is 0 to 100 (or -1 for the kernel's)"
        ))),
    }
}

/// `--blkio-weight`: 10–1000, or 0 for the kernel's.
fn blkio_weight(v: Option<&serde_json::Value>) -> Result<u16, ApiError> {
    let n = v.and_then(|v| v.as_i64()).unwrap_or(0);
    match n {
        0 => Ok(0),
        10..=1000 => Ok(n as u16),
        _ => Err(ApiError::bad_parameter(format!(
            "invalid --blkio-weight {n}: the range is 10 to 1000"
        ))),
    }
}

/// The per-device block I/O lists of a HostConfig (`BlkioWeightDevice`:
/// `[{Path, Weight}]`; `BlkioDeviceReadBps` & co.: `[{Path, Rate}]`), each
/// device resolved to its numbers.
fn blkio_devices(extra: &api::Extra) -> Result<Vec<BlkioRule>, ApiError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let lists = [
        (
            "BlkioWeightDevice",
            "Weight",
            "weight",
            "--blkio-weight-device",
        ),
        (
            "BlkioDeviceReadBps",
            "Rate",
            "read_bps",
            "--device-read-bps",
        ),
        (
            "BlkioDeviceWriteBps",
            "Rate",
            "write_bps",
            "--device-write-bps",
        ),
        (
            "BlkioDeviceReadIOps",
            "Rate",
            "read_iops",
            "--device-read-iops",
        ),
        (
            "BlkioDeviceWriteIOps",
            "Rate",
            "write_iops",
            "--device-write-iops",
        ),
    ];
    let mut out = Vec::new();
    for (field, value_key, kind, flag) in lists {
        for item in extra
            .get(field)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let path = item
                .get("Path")
                .and_then(|p| p.as_str())
                .unwrap_or_default();
            let value = item.get(value_key).and_then(|v| v.as_u64()).ok_or_else(|| {
                ApiError::bad_parameter(format!(
                    "invalid {flag} entry {item}: expected {{\"Path\": ..., \"{value_key}\": a number}}"
                ))
            })?;
            if kind == "weight" && !(10..=1000).contains(&value) {
                return Err(ApiError::bad_parameter(format!(
                    "invalid {flag} weight {value} for {path}: the range is 10 to 1000"
                )));
            }
            let meta = std::fs::metadata(path).map_err(|e| {
                ApiError::bad_parameter(format!("{flag} {path:?}: {e}: give a block device"))
            })?;
            if !meta.file_type().is_block_device() {
                return Err(ApiError::bad_parameter(format!(
                    "{flag} {path:?} is not a block device: give one like /dev/sda"
                )));
            }
            out.push(BlkioRule {
                kind: kind.into(),
                major: libc::major(meta.rdev()) as u64,
                minor: libc::minor(meta.rdev()) as u64,
                value,
            });
        }
    }
    Ok(out)
}

/// The protocol `proto` of port `key` (`80/udp`): tcp or udp.
fn protocol(proto: &str, key: &str) -> Result<Protocol, ApiError> {
    match proto {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(ApiError::bad_parameter(format!(
            "unsupported protocol {other:?} in {key:?}: use tcp or udp"
        ))),
    }
}

/// An exposed port (`80/tcp`, `53/udp`, `8000-8002/tcp`) as the mappings
/// `-P` publishes: on any host address, the host port to be chosen.
pub fn exposed_port(key: &str) -> Result<Vec<PortMapping>, ApiError> {
    let (ports, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let protocol = protocol(proto, key)?;
    let bad = || {
        ApiError::bad_parameter(format!(
            "invalid exposed port {key:?}: expected PORT[-PORT][/tcp|/udp]"
        ))
    };
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if lo == 0 || hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi)
        .map(|container_port| PortMapping {
            host_ip: None,
            host_port: 0,
            container_port,
            protocol,
        })
        .collect())
}

/// The directory of volume `name` under `volumes_dir`.
pub fn volume_data(volumes_dir: &Path, name: &str) -> PathBuf {
    volumes_dir.join(name).join("_data")
}

/// Maps a create body to the engine's request. Named volumes it refers to
/// are returned too, for the caller to create before the container.
/// A `--volumes-from CONTAINER[:MODE]` entry: the container, and whether
/// its mounts are read-only here (`ro`), writable (`rw`) or as they are
/// there (no mode). SELinux labels (`z`, `Z`) are accepted and mean nothing
/// here.
pub fn volumes_from(spec: &str) -> Result<(&str, Option<bool>), ApiError> {
    let (name, mode) = match spec.split_once(':') {
        Some((n, m)) => (n, m),
        None => (spec, ""),
    };
    if name.is_empty() {
        return Err(ApiError::bad_parameter(format!(
            "invalid --volumes-from {spec:?}: expected CONTAINER[:ro|rw]"
        )));
    }
    let mut read_only = None;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => read_only = Some(true),
            "rw" => read_only = Some(false),
            "z" | "Z" => {}
            other => {
                return Err(ApiError::bad_parameter(format!(
                    "invalid mode {other:?} in --volumes-from {spec:?}: use ro or rw"
                )))
            }
        }
    }
    Ok((name, read_only))
}

pub fn create_request(
    name: Option<String>,
    body: &api::ContainerCreateConfig,
    volumes_dir: &Path,
) -> Result<(CreateRequest, Vec<String>), ApiError> {
    let c = &body.config;
    let h = &body.host_config;
    if c.image.is_empty() {
        return Err(ApiError::bad_parameter(
            "no image given: name the image to run",
        ));
    }
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for bind in h.binds.iter().flatten() {
        let parts: Vec<&str> = bind.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => {
                return Err(ApiError::bad_parameter(format!(
                    "invalid volume specification {bind:?}: expected SOURCE:TARGET[:ro|rw]"
                )))
            }
        };
        let read_only = opts.split(',').any(|o| o == "ro");
        let mut options = Vec::new();
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" | "rw" | "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated" => {}
                p if PROPAGATIONS.contains(&p) => options = vec![p.to_string()],
                other => {
                    return Err(ApiError::bad_parameter(format!(
                        "invalid mode {other:?} in volume specification {bind:?}: use ro, rw or a propagation (rprivate, private, rshared, shared, rslave, slave)"
                    )))
                }
            }
        }
        let source = if src.starts_with('/') {
            src.to_string()
        } else {
            if !crate::ids::valid_name(src) {
                return Err(ApiError::bad_parameter(format!(
                    "invalid volume name {src:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+, or an absolute host path"
                )));
            }
            volumes.push(src.to_string());
            volume_data(volumes_dir, src).display().to_string()
        };
        mounts.push(MountSpec {
            source,
            target: dst.to_string(),
            kind: "bind".into(),
            read_only,
            options,
        });
    }
    for m in h.mounts.iter().flatten() {
        let kind = m.kind.as_str();
        match kind {
            "bind" => {
                let prop = m
                    .extra
                    .get("BindOptions")
                    .and_then(|b| b.get("Propagation"))
                    .and_then(|p| p.as_str())
                    .filter(|p| !p.is_empty());
                if let Some(p) = prop.filter(|p| !PROPAGATIONS.contains(p)) {
                    return Err(ApiError::bad_parameter(format!(
                        "invalid BindOptions.Propagation {p:?}: use rprivate, private, rshared, shared, rslave or slave"
                    )));
                }
                mounts.push(MountSpec {
                    source: m.source.clone(),
                    target: m.target.clone(),
                    kind: "bind".into(),
                    read_only: m.read_only,
                    options: prop.map(|p| vec![p.to_string()]).unwrap_or_default(),
                })
            }
            "volume" => {
                let name = if m.source.is_empty() {
                    crate::ids::new_id()
                } else {
                    m.source.clone()
                };
                if !crate::ids::valid_name(&name) {
                    return Err(ApiError::bad_parameter(format!(
                        "invalid volume name {name:?}"
                    )));
                }
                mounts.push(MountSpec {
                    source: volume_data(volumes_dir, &name).display().to_string(),
                    target: m.target.clone(),
                    kind: "bind".into(),
                    read_only: m.read_only,
                    options: Vec::new(),
                });
                volumes.push(name);
            }
            "tmpfs" => {
                let mut options = Vec::new();
                if let Some(t) = m.extra.get("TmpfsOptions") {
                    if let Some(size) = t.get("SizeBytes").and_then(|v| v.as_i64()) {
                        options.push(format!("size={size}"));
                    }
                    if let Some(mode) = t.get("Mode").and_then(|v| v.as_u64()) {
                        options.push(format!("mode={mode:o}"));
                    }
                }
                mounts.push(MountSpec {
                    source: String::new(),
                    target: m.target.clone(),
                    kind: "tmpfs".into(),
                    read_only: m.read_only,
                    options,
                });
            }
            other => {
                return Err(ApiError::not_implemented(format!(
                    "mounts of type {other:?} are not implemented yet: use bind, volume or tmpfs"
                )))
            }
        }
    }
    for (target, opts) in h.tmpfs.iter().flatten() {
        mounts.push(MountSpec {
            source: String::new(),
            target: target.clone(),
            kind: "tmpfs".into(),
            read_only: false,
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect(),
        });
    }
    // Anonymous volumes (`-v /data`, or the image's VOLUME given in the body).
    for target in c.volumes.iter().flat_map(|v| v.keys()) {
        if mounts.iter().any(|m| &m.target == target) {
            continue;
        }
        let name = crate::ids::new_id();
        mounts.push(MountSpec {
            source: volume_data(volumes_dir, &name).display().to_string(),
            target: target.clone(),
            kind: "bind".into(),
            read_only: false,
            options: Vec::new(),
        });
        volumes.push(name);
    }
    let mut ulimits = Vec::new();
    for u in h.ulimits.iter().flatten() {
        if u.soft < 0 || u.hard < 0 {
            return Err(ApiError::bad_parameter(format!(
                "invalid ulimit {}: soft and hard must not be negative",
                u.name
            )));
        }
        ulimits.push((u.name.clone(), u.soft as u64, u.hard as u64));
    }
    let entrypoint = c.entrypoint.as_ref().map(|e| {
        // `--entrypoint ""` arrives as [""]: no entrypoint at all.
        if e.len() == 1 && e[0].is_empty() {
            Vec::new()
        } else {
            e.clone()
        }
    });
    let config = ContainerConfig {
        hostname: c.hostname.clone(),
        domainname: c.domainname.clone(),
        entrypoint,
        cmd: c.cmd.clone().unwrap_or_default(),
        env: c.env.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone(),
        user: c.user.clone(),
        tty: c.tty,
        open_stdin: c.open_stdin,
        labels: c.labels.clone().unwrap_or_default(),
        read_only_rootfs: h.readonly_rootfs,
        privileged: h.privileged,
        cap_add: h.cap_add.clone().unwrap_or_default(),
        cap_drop: h.cap_drop.clone().unwrap_or_default(),
        security_opt: h.security_opt.clone().unwrap_or_default(),
        mounts,
        resources: Resources {
            memory: h.memory,
            memory_swap: h.memory_swap,
            memory_reservation: h.memory_reservation,
            nano_cpus: h.nano_cpus,
            cpu_shares: h.cpu_shares,
            cpu_quota: h.cpu_quota,
            cpu_period: h.cpu_period,
            cpuset_cpus: h.cpuset_cpus.clone(),
            cpuset_mems: h.cpuset_mems.clone(),
            pids_limit: h.pids_limit.unwrap_or(0),
            memory_swappiness: swappiness(h.memory_swappiness)?,
            oom_kill_disable: h.oom_kill_disable.unwrap_or(false),
            blkio_weight: blkio_weight(h.extra.get("BlkioWeight"))?,
            blkio_devices: blkio_devices(&h.extra)?,
            cpu_rt_runtime: h
                .extra
                .get("CpuRealtimeRuntime")
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
            cpu_rt_period: h
                .extra
                .get("CpuRealtimePeriod")
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
        },
        shm_size: h.shm_size,
        sysctls: h.sysctls.clone().unwrap_or_default(),
        ulimits,
        group_add: h.group_add.clone().unwrap_or_default(),
        oom_score_adj: i32::try_from(h.oom_score_adj).map_err(|_| {
            ApiError::bad_parameter(format!("invalid OomScoreAdj {}", h.oom_score_adj))
        })?,
        extra_hosts: extra_hosts(h.extra_hosts.as_deref().unwrap_or_default())?,
        dns: dns_servers(h.dns.as_deref().unwrap_or_default())?,
        dns_search: h.dns_search.clone().unwrap_or_default(),
        dns_options: h.dns_options.clone().unwrap_or_default(),
        devices: h
            .devices
            .iter()
            .flatten()
            .map(device)
            .collect::<Result<_, _>>()?,
        init: h.init,
        cgroup_parent: cgroup_parent(&h.cgroup_parent)?,
        ..Default::default()
    };
    let network = match h.network_mode.as_str() {
        m if m.starts_with("container:") => {
            let mode = NetworkMode::parse(m);
            container_mode_conflicts(body, &mode)?;
            mode
        }
        m => {
            // A user-defined network may also come through NetworkingConfig only.
            let mode = NetworkMode::parse(m);
            match (&mode, body.networking_config.endpoints_config.keys().next()) {
                (NetworkMode::Bridge(n), Some(other)) if n == "bridge" && m.is_empty() => {
                    NetworkMode::parse(other)
                }
                _ => mode,
            }
        }
    };
    let ports = port_mappings(h.port_bindings.as_ref().unwrap_or(&BTreeMap::new()))?;
    if !ports.is_empty() && !matches!(network, NetworkMode::Bridge(_)) {
        return Err(ApiError::bad_parameter(format!(
            "published ports need a bridge network; --network {} has none",
            network.name()
        )));
    }
    // The first network's endpoint settings (`--network-alias`, `--ip`, ...);
    // the other entries of EndpointsConfig are more networks (API 1.44).
    let eps = &body.networking_config.endpoints_config;
    let first_key = eps
        .keys()
        .find(|k| {
            k.as_str() == network.name()
                || (network.name() == "bridge" && k.as_str() == "default")
                || matches!(network, NetworkMode::Container(_)) && **k == network.mode_string()
        })
        .cloned();
    let (aliases, mut first_opts) = match first_key.as_ref().and_then(|k| eps.get(k)) {
        Some(e) => endpoint_request(e)?,
        None => Default::default(),
    };
    // The deprecated `Config.MacAddress` (API < 1.44 clients) is the first
    // network's, as dockerd migrates it.
    if let Some(m) = c.mac_address.as_ref().filter(|m| !m.is_empty()) {
        if first_opts.mac.is_none() {
            strato_network::parse_mac(m).map_err(|e| ApiError::bad_parameter(e.to_string()))?;
            first_opts.mac = Some(m.clone());
        }
    }
    // HostConfig.Links: legacy links on the default bridge; on a
    // user-defined network, names its server resolves (as dockerd does).
    let mut links = Vec::new();
    for l in h.links.iter().flatten() {
        let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
        let target = target.trim_start_matches('/');
        // dockerd's stored form is /target:/self/alias.
        let alias = alias.rsplit('/').next().unwrap_or(alias);
        if target.is_empty() || strato_network::files::validate_hostname(alias).is_err() {
            return Err(ApiError::bad_parameter(format!(
                "invalid link {l:?}: give name:alias"
            )));
        }
        match &network {
            NetworkMode::Bridge(n) if n == "bridge" => links.push(crate::engine::LegacyLink {
                target: target.to_string(),
                alias: alias.to_string(),
            }),
            // The docker CLI sends a link in both HostConfig and the
            // network's EndpointSettings: kept once.
            NetworkMode::Bridge(_) => {
                let link = format!("{target}:{alias}");
                if !first_opts.links.contains(&link) {
                    first_opts.links.push(link);
                }
            }
            other => {
                return Err(ApiError::bad_parameter(format!(
                    "links need a bridge network; --network {} has none",
                    other.name()
                )))
            }
        }
    }
    let mut extra_networks = Vec::new();
    for (name, e) in eps.iter().filter(|(k, _)| Some(*k) != first_key.as_ref()) {
        if !matches!(network, NetworkMode::Bridge(_)) {
            return Err(ApiError::bad_parameter(format!(
                "container cannot be connected to network {name:?}: --network {} allows no others",
                network.name()
            )));
        }
        let (aliases, opts) = endpoint_request(e)?;
        extra_networks.push(crate::engine::ExtraNetwork {
            name: name.clone(),
            aliases,
            opts,
        });
    }
    let raw = serde_json::to_value(body).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        CreateRequest {
            name,
            image: c.image.clone(),
            config,
            restart: restart_policy(&h.restart_policy)?,
            auto_remove: h.auto_remove,
            network: Some(network),
            ports,
            aliases,
            first_opts,
            extra_networks,
            links,
            raw,
        },
        volumes,
    ))
}

/// What a `--network container:<name or id>` container may not ask for,
/// with dockerd's words: it has no network of its own, and takes its
/// hostname and /etc files from the container it joins.
fn container_mode_conflicts(
    body: &api::ContainerCreateConfig,
    mode: &NetworkMode,
) -> Result<(), ApiError> {
    let (c, h) = (&body.config, &body.host_config);
    let eps = &body.networking_config.endpoints_config;
    let target = match mode {
        NetworkMode::Container(t) => t.as_str(),
        _ => "",
    };
    let conflict = if target.is_empty() {
        Some("invalid network mode: give container:<name|id> of the container to join")
    } else if !c.hostname.is_empty() {
        Some("conflicting options: hostname and the network mode")
    } else if h.links.as_ref().is_some_and(|l| !l.is_empty()) {
        Some("conflicting options: container type network can't be used with links. This would result in undefined behavior")
    } else if h.dns.as_ref().is_some_and(|d| !d.is_empty()) {
        Some("conflicting options: dns and the network mode")
    } else if h.extra_hosts.as_ref().is_some_and(|x| !x.is_empty()) {
        Some("conflicting options: custom host-to-IP mapping and the network mode")
    } else if h.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) || h.publish_all_ports {
        Some("conflicting options: port publishing and the container type network mode")
    } else if c.exposed_ports.as_ref().is_some_and(|p| !p.is_empty()) {
        Some("conflicting options: port exposing and the container type network mode")
    } else if c.mac_address.as_ref().is_some_and(|m| !m.is_empty())
        || eps.values().any(|e| !e.mac_address.is_empty())
    {
        Some("conflicting options: mac-address and the network mode")
    } else if eps
        .values()
        .any(|e| e.links.as_ref().is_some_and(|l| !l.is_empty()))
    {
        Some("conflicting options: container type network can't be used with links. This would result in undefined behavior")
    } else if eps
        .values()
        .any(|e| e.aliases.as_ref().is_some_and(|a| !a.is_empty()))
    {
        Some("network-scoped alias is supported only for containers in user defined networks")
    } else if eps.values().any(|e| {
        e.ipam_config
            .as_ref()
            .is_some_and(|i| !i.ipv4_address.is_empty() || !i.ipv6_address.is_empty())
    }) {
        Some("user specified IP address is supported on user defined networks only")
    } else if eps.keys().any(|k| NetworkMode::parse(k) != *mode) {
        Some("container sharing network namespace with another container or host cannot be connected to any other network")
    } else {
        None
    };
    match conflict {
        Some(m) => Err(ApiError::bad_parameter(m)),
        None => Ok(()),
    }
}

/// Docker's state word of a container.
pub fn state_word(status: Option<&ContainerStatus>) -> &'static str {
    match status.map(|s| s.phase) {
        None => "created",
        Some(Phase::Running) => "running",
        Some(Phase::Paused) => "paused",
        Some(Phase::Restarting) => "restarting",
        Some(Phase::Exited) => "exited",
    }
}

/// The `Status` column of `docker ps`: `Up 3 seconds`, `Exited (0) 2 seconds ago`.
pub fn status_text(status: Option<&ContainerStatus>, now: f64) -> String {
    let since = |t: &Option<String>| {
        t.as_deref()
            .and_then(time::parse_f64)
            .map(|t| time::human_duration(now - t))
            .unwrap_or_else(|| "Less than a second".into())
    };
    match status {
        None => "Created".into(),
        Some(s) => match s.phase {
            Phase::Running => format!("Up {}", since(&s.started_at)),
            Phase::Paused => format!("Up {} (Paused)", since(&s.started_at)),
            Phase::Restarting => format!(
                "Restarting ({}) {} ago",
                s.exit_code.unwrap_or(0),
                since(&s.finished_at)
            ),
            Phase::Exited => format!(
                "Exited ({}) {} ago",
                s.exit_code.unwrap_or(0),
                since(&s.finished_at)
            ),
        },
    }
}

/// Entrypoint and command as the container runs them.
pub fn path_and_args(r: &Record) -> (String, Vec<String>) {
    let entrypoint = r
        .config
        .entrypoint
        .clone()
        .unwrap_or_else(|| r.image_defaults.entrypoint.clone());
    let cmd = if !r.config.cmd.is_empty() {
        r.config.cmd.clone()
    } else if r.config.entrypoint.is_some() {
        Vec::new()
    } else {
        r.image_defaults.cmd.clone()
    };
    let mut all = entrypoint.into_iter().chain(cmd);
    let path = all.next().unwrap_or_default();
    (path, all.collect())
}

/// Published ports as `docker ps` lists them.
pub fn ports_list(r: &Record) -> Vec<api::Port> {
    let mut out: Vec<api::Port> = r
        .ports
        .iter()
        .map(|p| api::Port {
            ip: p
                .host_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "0.0.0.0".into()),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            kind: p.protocol.to_string(),
        })
        .collect();
    // Exposed but unpublished ports.
    let exposed = r
        .raw
        .get("ExposedPorts")
        .and_then(|v| v.as_object())
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    for key in exposed {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if !out
            .iter()
            .any(|p| p.private_port == port && p.kind == proto)
        {
            out.push(api::Port {
                ip: String::new(),
                private_port: port,
                public_port: None,
                kind: proto.to_string(),
            });
        }
    }
    out
}

/// `NetworkSettings.Ports` of inspect.
pub fn port_map(r: &Record) -> api::PortMap {
    let mut m = api::PortMap::new();
    for p in ports_list(r) {
        let key = format!("{}/{}", p.private_port, p.kind);
        let entry = m.entry(key).or_insert(None);
        if let Some(hp) = p.public_port {
            entry.get_or_insert_with(Vec::new).push(api::PortBinding {
                host_ip: p.ip,
                host_port: hp.to_string(),
            });
        }
    }
    m
}

/// The aliases and settings asked of one endpoint (create or connect), checked.
pub fn endpoint_request(
    e: &api::EndpointSettings,
) -> Result<(Vec<String>, crate::engine::EndpointExtras), ApiError> {
    let aliases = e.aliases.clone().unwrap_or_default();
    for a in &aliases {
        strato_network::files::validate_hostname(a).map_err(|_| {
            ApiError::bad_parameter(format!(
                "invalid network alias {a:?}: use letters, digits, '-', '_' and '.'"
            ))
        })?;
    }
    let ipam = e.ipam_config.clone().unwrap_or_default();
    let ip = match ipam.ipv4_address.as_str() {
        "" => None,
        s => Some(s.parse().map_err(|_| {
            ApiError::bad_parameter(format!(
                "invalid IPv4 address {s:?} in IPAMConfig.IPv4Address: give a dotted quad"
            ))
        })?),
    };
    let ip6 = match ipam.ipv6_address.as_str() {
        "" => None,
        s => Some(s.parse::<std::net::Ipv6Addr>().map_err(|_| {
            ApiError::bad_parameter(format!(
                "invalid IPv6 address {s:?} in IPAMConfig.IPv6Address: give an address like fd00:1::5"
            ))
        })?),
    };
    for l in &ipam.link_local_ips {
        l.parse::<std::net::IpAddr>().map_err(|_| {
            ApiError::bad_parameter(format!(
                "invalid link-local IP {l:?} in IPAMConfig.LinkLocalIPs"
            ))
        })?;
    }
    let mac = Some(e.mac_address.clone()).filter(|m| !m.is_empty());
    if let Some(m) = &mac {
        strato_network::parse_mac(m).map_err(|e| ApiError::bad_parameter(e.to_string()))?;
    }
    let links = e.links.clone().unwrap_or_default();
    for l in &links {
        let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
        let target = target.trim_start_matches('/');
        if target.is_empty() || strato_network::files::validate_hostname(alias).is_err() {
            return Err(ApiError::bad_parameter(format!(
                "invalid link {l:?}: give container:alias"
            )));
        }
    }
    let links = links
        .iter()
        .map(|l| {
            let (t, a) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            format!("{}:{a}", t.trim_start_matches('/'))
        })
        .collect();
    Ok((
        aliases,
        crate::engine::EndpointExtras {
            ip,
            ip6,
            mac,
            links,
            link_local_ips: ipam.link_local_ips,
            driver_opts: e.driver_opts.clone().unwrap_or_default(),
        },
    ))
}

/// What inspect shows of the settings asked for: IPAMConfig, Links,
/// DriverOpts, Aliases (with the short id on user-defined networks, as API
/// 1.44 does).
fn requested(
    s: &mut api::EndpointSettings,
    r: &Record,
    net: &str,
    aliases: &[String],
    o: &crate::engine::EndpointExtras,
) {
    if o.ip.is_some() || o.ip6.is_some() || !o.link_local_ips.is_empty() {
        s.ipam_config = Some(api::EndpointIpamConfig {
            ipv4_address: o.ip.map(|i| i.to_string()).unwrap_or_default(),
            ipv6_address: o.ip6.map(|i| i.to_string()).unwrap_or_default(),
            link_local_ips: o.link_local_ips.clone(),
        });
    }
    s.links = (!o.links.is_empty()).then(|| o.links.clone());
    s.driver_opts = (!o.driver_opts.is_empty()).then(|| o.driver_opts.clone());
    let mut a = aliases.to_vec();
    if net != "bridge" && net != "host" && net != "none" {
        let short = r.id[..12.min(r.id.len())].to_string();
        if !a.contains(&short) {
            a.push(short);
        }
    }
    s.aliases = (!a.is_empty()).then_some(a);
    if s.mac_address.is_empty() {
        s.mac_address = o.mac.clone().unwrap_or_default();
    }
}

/// Mount propagation modes of binds.
pub const PROPAGATIONS: &[&str] = &[
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

/// A bind's propagation (`rprivate` unless one was given).
pub fn bind_propagation(m: &MountSpec) -> &str {
    m.options
        .iter()
        .map(String::as_str)
        .find(|o| PROPAGATIONS.contains(o))
        .unwrap_or("rprivate")
}

/// The container's endpoints as `Networks` entries.
pub fn endpoint_settings(r: &Record, network_id: &str) -> BTreeMap<String, api::EndpointSettings> {
    let mut m = BTreeMap::new();
    match (&r.network, &r.endpoint) {
        (NetworkMode::Bridge(name), Some(ep)) => {
            m.insert(
                name.clone(),
                api::EndpointSettings {
                    network_id: network_id.to_string(),
                    endpoint_id: strato_image::Digest::of(
                        format!("{}/{}", ep.network, r.id).as_bytes(),
                    )
                    .hex()
                    .to_string(),
                    gateway: ep.gateway.to_string(),
                    ip_address: ep.ip.to_string(),
                    ip_prefix_len: i64::from(ep.prefix),
                    ipv6_gateway: ep.ipv6.map(|v| v.gateway.to_string()).unwrap_or_default(),
                    global_ipv6_address: ep.ipv6.map(|v| v.ip.to_string()).unwrap_or_default(),
                    global_ipv6_prefix_len: ep.ipv6.map_or(0, |v| i64::from(v.prefix)),
                    mac_address: ep.mac.clone(),
                    dns_names: Some(ep.names.clone()),
                    ..Default::default()
                },
            );
        }
        _ if r.first_detached => {}
        // In another container's namespace: on no network of its own.
        (NetworkMode::Container(_), _) => {}
        (mode, _) => {
            m.insert(
                mode.name().to_string(),
                api::EndpointSettings {
                    network_id: network_id.to_string(),
                    ..Default::default()
                },
            );
        }
    }
    if let Some(first) = m.values_mut().next() {
        requested(first, r, r.network.name(), &r.aliases, &r.first_opts);
    }
    // Networks connected after create; addresses while running.
    for extra in &r.extra_networks {
        let ep = r.extra_endpoints.iter().find(|e| e.network == extra.name);
        let mut s = api::EndpointSettings {
            network_id: crate::backend::network_id(&extra.name),
            ..Default::default()
        };
        if let Some(ep) = ep {
            s.endpoint_id = strato_image::Digest::of(format!("{}/{}", ep.network, r.id).as_bytes())
                .hex()
                .to_string();
            s.gateway = ep.gateway.to_string();
            s.ip_address = ep.ip.to_string();
            s.ip_prefix_len = i64::from(ep.prefix);
            if let Some(v6) = ep.ipv6 {
                s.ipv6_gateway = v6.gateway.to_string();
                s.global_ipv6_address = v6.ip.to_string();
                s.global_ipv6_prefix_len = i64::from(v6.prefix);
            }
            s.mac_address = ep.mac.clone();
            s.dns_names = Some(ep.names.clone());
        }
        requested(&mut s, r, &extra.name, &extra.aliases, &extra.opts);
        m.insert(extra.name.clone(), s);
    }
    m
}

/// Mounts as inspect and list report them.
pub fn mount_points(r: &Record, volumes_dir: &Path) -> Vec<api::MountPoint> {
    r.config
        .mounts
        .iter()
        .map(|m| {
            let vol = Path::new(&m.source)
                .strip_prefix(volumes_dir)
                .ok()
                .and_then(|p| p.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            let (kind, name, driver) = match (&vol, m.kind.as_str()) {
                (_, "tmpfs") => ("tmpfs", String::new(), String::new()),
                (Some(v), _) => ("volume", v.clone(), "local".to_string()),
                (None, _) => ("bind", String::new(), String::new()),
            };
            api::MountPoint {
                kind: kind.into(),
                name,
                source: m.source.clone(),
                destination: m.target.clone(),
                driver,
                mode: if m.read_only {
                    "ro".into()
                } else {
                    String::new()
                },
                rw: !m.read_only,
                propagation: if kind == "bind" {
                    bind_propagation(m).into()
                } else {
                    String::new()
                },
            }
        })
        .collect()
}

/// One line of `docker ps`.
pub fn summary(
    r: &Record,
    now: f64,
    network_id: &str,
    volumes_dir: &Path,
) -> api::ContainerSummary {
    let (path, args) = path_and_args(r);
    let command = std::iter::once(path)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ");
    api::ContainerSummary {
        id: r.id.clone(),
        names: vec![format!("/{}", r.name)],
        image: r.image_ref.clone(),
        image_id: r.image_id.clone(),
        command,
        created: time::unix(&r.created),
        // Docker lists published ports only while the container runs.
        ports: if r.endpoint.is_some() {
            ports_list(r)
        } else {
            Vec::new()
        },
        labels: r.config.labels.clone(),
        state: state_word(r.status.as_ref()).into(),
        status: status_text(r.status.as_ref(), now),
        host_config: api::SummaryHostConfig {
            network_mode: r.network.mode_string(),
        },
        network_settings: api::SummaryNetworkSettings {
            networks: endpoint_settings(r, network_id),
        },
        mounts: mount_points(r, volumes_dir),
        ..Default::default()
    }
}

/// Whether `r` passes the `docker ps` filters.
/// Whether container `r` passes the `docker ps` filters `f` that need only
/// its record (`before` and `since` need the others: see the backend).
/// Volumes are found under `volumes_dir`.
pub fn matches_filters(r: &Record, f: &api::Filters, volumes_dir: &Path) -> bool {
    let state = state_word(r.status.as_ref());
    let ports = || ports_list(r);
    f.match_any("id", |v| r.id.starts_with(v))
        && f.match_any("name", |v| r.name.contains(v.trim_start_matches('/')))
        && f.match_labels("label", &r.config.labels)
        && f.match_any("status", |v| v == state)
        && f.match_any("ancestor", |v| {
            v == r.image_ref
                || r.image_id == v
                || r.image_id.trim_start_matches("sha256:").starts_with(v)
                || format!("{v}:latest") == r.image_ref
                || v == format!("{}:latest", r.image_ref)
        })
        && f.match_any("exited", |v| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == Phase::Exited && s.exit_code.map(|c| c.to_string()).as_deref() == Some(v)
            })
        })
        && f.match_any("network", |v| {
            !matches!(r.network, NetworkMode::Container(_)) && r.network.name() == v
        })
        && f.match_any("volume", |v| {
            r.config.mounts.iter().any(|m| {
                m.target == v
                    || (m.kind == "bind"
                        && Path::new(&m.source).starts_with(volumes_dir)
                        && Path::new(&m.source) == volume_data(volumes_dir, v))
            })
        })
        && f.match_any("publish", |v| {
            port_filter(v).is_some_and(|want| {
                ports()
                    .iter()
                    .any(|p| p.public_port.is_some_and(|h| want.matches(h, &p.kind)))
            })
        })
        && f.match_any("expose", |v| {
            port_filter(v).is_some_and(|want| {
                ports()
                    .iter()
                    .any(|p| want.matches(p.private_port, &p.kind))
            })
        })
}

/// A `publish=` or `expose=` filter value: `80`, `80/udp`, `8000-8080/tcp`.
struct PortFilter {
    lo: u16,
    hi: u16,
    /// `None`: any protocol.
    proto: Option<String>,
}

impl PortFilter {
    fn matches(&self, port: u16, proto: &str) -> bool {
        (self.lo..=self.hi).contains(&port) && self.proto.as_deref().is_none_or(|p| p == proto)
    }
}

fn port_filter(v: &str) -> Option<PortFilter> {
    let (ports, proto) = match v.split_once('/') {
        Some((p, proto)) => (p, Some(proto.to_string())),
        None => (v, None),
    };
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    Some(PortFilter {
        lo: lo.parse().ok()?,
        hi: hi.parse().ok()?,
        proto,
    })
}

/// `State` of inspect.
pub fn state(r: &Record) -> api::ContainerState {
    let s = r.status.as_ref();
    let phase = s.map(|s| s.phase);
    api::ContainerState {
        status: state_word(s).into(),
        running: matches!(phase, Some(Phase::Running | Phase::Paused)),
        paused: phase == Some(Phase::Paused),
        restarting: phase == Some(Phase::Restarting),
        oom_killed: s.is_some_and(|s| s.oom_killed),
        dead: false,
        pid: s.map(|s| i64::from(s.pid)).unwrap_or(0),
        exit_code: s.and_then(|s| s.exit_code).map(i64::from).unwrap_or(0),
        error: s.and_then(|s| s.error.clone()).unwrap_or_default(),
        started_at: s
            .and_then(|s| s.started_at.clone())
            .unwrap_or_else(|| time::ZERO_TIME.into()),
        finished_at: s
            .and_then(|s| s.finished_at.clone())
            .unwrap_or_else(|| time::ZERO_TIME.into()),
        health: None,
    }
}

/// The `Config` of inspect: the create body's, with what the engine
/// filled in (hostname, the image's defaults) as Docker shows them.
pub fn inspect_config(r: &Record) -> api::ContainerConfig {
    let mut c: api::ContainerConfig = serde_json::from_value(r.raw.clone()).unwrap_or_default();
    c.hostname = r.config.hostname.clone();
    c.image = r.image_ref.clone();
    if c.cmd.as_ref().is_none_or(|v| v.is_empty()) && r.config.entrypoint.is_none() {
        c.cmd = Some(r.image_defaults.cmd.clone()).filter(|v| !v.is_empty());
    }
    if c.entrypoint.is_none() && !r.image_defaults.entrypoint.is_empty() {
        c.entrypoint = Some(r.image_defaults.entrypoint.clone());
    }
    if c.working_dir.is_empty() {
        c.working_dir = r.image_defaults.working_dir.clone();
    }
    if c.user.is_empty() {
        c.user = r.image_defaults.user.clone();
    }
    let mut env = r.image_defaults.env.clone();
    for e in &r.config.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    c.env = Some(env);
    if c.labels.is_none() {
        c.labels = Some(Default::default());
    }
    c
}

/// The limits and restart policy of `POST /containers/{id}/update`. Fields
/// this engine cannot change are refused when set (silently dropping them
/// would report an update that did not happen).
pub fn container_update(
    u: &api::ContainerUpdate,
) -> Result<(ResourceUpdate, Option<RestartPolicy>), ApiError> {
    let unsupported: Vec<&str> = u
        .extra
        .iter()
        .filter(|(k, _)| k.as_str() != "BlkioWeight")
        .filter(|(_, v)| match v {
            serde_json::Value::Null => false,
            serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
            serde_json::Value::String(s) => !s.is_empty(),
            serde_json::Value::Array(a) => !a.is_empty(),
            serde_json::Value::Object(o) => !o.is_empty(),
            serde_json::Value::Bool(b) => *b,
        })
        .map(|(k, _)| k.as_str())
        .collect();
    if !unsupported.is_empty() {
        return Err(ApiError::bad_parameter(format!(
            "cannot update {}: this engine updates Memory, MemorySwap, MemoryReservation, NanoCpus, CpuShares, CpuPeriod, CpuQuota, CpusetCpus, CpusetMems, PidsLimit, BlkioWeight and RestartPolicy",
            unsupported.join(", ")
        )));
    }
    let restart = u.restart_policy.as_ref().map(restart_policy).transpose()?;
    Ok((
        ResourceUpdate {
            memory: u.memory,
            memory_swap: u.memory_swap,
            memory_reservation: u.memory_reservation,
            nano_cpus: u.nano_cpus,
            cpu_shares: u.cpu_shares,
            cpu_quota: u.cpu_quota,
            cpu_period: u.cpu_period,
            cpuset_cpus: u.cpuset_cpus.clone(),
            cpuset_mems: u.cpuset_mems.clone(),
            pids_limit: u.pids_limit,
            blkio_weight: blkio_weight(u.extra.get("BlkioWeight"))?,
        },
        restart,
    ))
}

/// `HostConfig` of inspect: the create body's, with Docker's defaults.
pub fn inspect_host_config(r: &Record) -> api::HostConfig {
    let mut h: api::HostConfig = r
        .raw
        .get("HostConfig")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    if h.network_mode.is_empty()
        || h.network_mode == "default"
        || matches!(r.network, NetworkMode::Container(_))
    {
        // A joined container is shown by id, whatever name it was given by.
        h.network_mode = r.network.mode_string();
    }
    if h.log_config.kind.is_empty() {
        h.log_config.kind = "json-file".into();
    }
    if h.runtime.is_empty() {
        // The default runtime's name, as dockerd fills it in: `runc`, which
        // strato's own runtime (a runc work-alike) answers to. Clients that
        // assume dockerd's default (docker-py's tests, compose files naming
        // `runtime: runc`) see the name they expect.
        h.runtime = DEFAULT_RUNTIME.into();
    }
    h.restart_policy = restart_policy_api(&r.restart);
    // The limits as they are now (`docker update` changes them).
    let res = &r.config.resources;
    h.memory = res.memory;
    h.memory_swap = res.memory_swap;
    h.memory_reservation = res.memory_reservation;
    h.nano_cpus = res.nano_cpus;
    h.cpu_shares = res.cpu_shares;
    h.cpu_quota = res.cpu_quota;
    h.cpu_period = res.cpu_period;
    h.cpuset_cpus = res.cpuset_cpus.clone();
    h.cpuset_mems = res.cpuset_mems.clone();
    if res.pids_limit > 0 || h.pids_limit.is_some() {
        h.pids_limit = Some(res.pids_limit);
    }
    if h.shm_size == 0 {
        h.shm_size = 64 << 20;
    }
    if h.cgroupns_mode.is_empty() {
        h.cgroupns_mode = "private".into();
    }
    if h.ipc_mode.is_empty() {
        h.ipc_mode = "private".into();
    }
    h.port_bindings = Some(
        port_map(r)
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .collect(),
    );
    h
}

/// An image's OCI config in Docker's `Config` shape.
pub fn image_config(cfg: &oci_spec::image::Config) -> api::ContainerConfig {
    let set = |v: &Option<Vec<String>>| {
        v.as_ref().map(|v| {
            v.iter()
                .map(|k| (k.clone(), serde_json::json!({})))
                .collect::<BTreeMap<_, _>>()
        })
    };
    api::ContainerConfig {
        user: cfg.user().clone().unwrap_or_default(),
        exposed_ports: set(cfg.exposed_ports()),
        env: cfg.env().clone(),
        cmd: cfg.cmd().clone(),
        entrypoint: cfg.entrypoint().clone(),
        working_dir: cfg.working_dir().clone().unwrap_or_default(),
        volumes: set(cfg.volumes()),
        labels: cfg.labels().clone().map(|l| l.into_iter().collect()),
        stop_signal: cfg.stop_signal().clone(),
        ..Default::default()
    }
}

/// `--add-host NAME:IP` (or `NAME=IP`): the name checked as a host name, the
/// address as IPv4/IPv6 or `host-gateway` (the container's gateway).
fn extra_hosts(list: &[String]) -> Result<Vec<(String, String)>, ApiError> {
    list.iter()
        .map(|e| {
            let bad = || {
                ApiError::bad_parameter(format!(
                    "invalid extra host {e:?}: use NAME:IP, e.g. db:10.0.0.5 or gw:host-gateway"
                ))
            };
            let (name, ip) = e
                .split_once('=')
                .or_else(|| e.split_once(':'))
                .ok_or_else(bad)?;
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok || (ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err()) {
                return Err(bad());
            }
            Ok((name.to_string(), ip.to_string()))
        })
        .collect()
}

/// `--dns` addresses, checked.
fn dns_servers(list: &[String]) -> Result<Vec<String>, ApiError> {
    list.iter()
        .map(|d| {
            d.parse::<std::net::IpAddr>()
                .map(|ip| ip.to_string())
                .map_err(|_| {
                    ApiError::bad_parameter(format!(
                        "{d} is not an ip address: give --dns an IPv4 or IPv6 address"
                    ))
                })
        })
        .collect()
}

/// `--device HOST[:CONTAINER[:PERMS]]`: the host node's type and numbers.
fn device(d: &strato_api::types::DeviceMapping) -> Result<DeviceSpec, ApiError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let host = &d.path_on_host;
    let meta = std::fs::metadata(host).map_err(|e| {
        ApiError::bad_parameter(format!(
            "error gathering device information while adding custom device {host:?}: {e}"
        ))
    })?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Err(ApiError::bad_parameter(format!(
            "{host:?} is not a device node: --device takes a character or block device"
        )));
    };
    let path = if d.path_in_container.is_empty() {
        host.clone()
    } else {
        d.path_in_container.clone()
    };
    if !path.starts_with('/') {
        return Err(ApiError::bad_parameter(format!(
            "device path {path:?} in the container must be absolute"
        )));
    }
    let access = if d.cgroup_permissions.is_empty() {
        "rwm".to_string()
    } else {
        d.cgroup_permissions.clone()
    };
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(ApiError::bad_parameter(format!(
            "invalid device permissions {access:?}: use some of r, w and m"
        )));
    }
    let rdev = meta.rdev();
    Ok(DeviceSpec {
        path,
        kind: kind.into(),
        major: libc::major(rdev) as u64,
        minor: libc::minor(rdev) as u64,
        mode: meta.mode() & 0o7777,
        access,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_hosts_and_dns_servers_are_checked() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            extra_hosts(&v(&[
                "db:10.0.0.5",
                "v6=::1",
                "gw:host-gateway",
                "b:[fe80::1]"
            ]))
            .unwrap(),
            vec![
                ("db".into(), "10.0.0.5".into()),
                ("v6".into(), "::1".into()),
                ("gw".into(), "host-gateway".into()),
                ("b".into(), "fe80::1".into())
            ]
        );
        for bad in [
            "db",
            "db:300.1.1.1",
            ":1.2.3.4",
            "a b:1.2.3.4",
            "x:\n1.2.3.4",
        ] {
            let e = extra_hosts(&v(&[bad])).unwrap_err();
            assert!(e.to_string().contains("NAME:IP"), "{bad}: {e}");
        }
        assert_eq!(
            dns_servers(&v(&["9.9.9.9", "2001:db8::1"])).unwrap().len(),
            2
        );
        assert!(dns_servers(&v(&["dns.example"]))
            .unwrap_err()
            .to_string()
            .contains("not an ip address"));
    }

    #[test]
    fn exposed_ports_become_mappings_to_free_host_ports() {
        let m = exposed_port("80/tcp").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].container_port, m[0].host_port), (80, 0));
        assert_eq!(m[0].protocol, Protocol::Tcp);
        assert_eq!(exposed_port("53/udp").unwrap()[0].protocol, Protocol::Udp);
        let r = exposed_port("8000-8002").unwrap();
        let ports: Vec<u16> = r.iter().map(|p| p.container_port).collect();
        assert_eq!(ports, [8000, 8001, 8002]);
        for bad in ["x/tcp", "80/sctp", "9-8", "0"] {
            let e = exposed_port(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn cgroup_parents_stay_under_the_roots() {
        assert_eq!(cgroup_parent("/mygroup").unwrap(), "/mygroup");
        assert_eq!(cgroup_parent("").unwrap(), "");
        for bad in ["/../etc", "a/./b", ".."] {
            let e = cgroup_parent(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let mut c = ContainerConfig {
            id: "abc".into(),
            ..Default::default()
        };
        assert_eq!(c.cgroups_path(), "/strato/abc");
        c.cgroup_parent = "mygroup/".into();
        assert_eq!(c.cgroups_path(), "/mygroup/abc");
    }

    #[test]
    fn port_filters_take_a_port_a_range_and_a_protocol() {
        let f = port_filter("80").unwrap();
        assert!(f.matches(80, "tcp") && f.matches(80, "udp") && !f.matches(81, "tcp"));
        let f = port_filter("8000-8080/udp").unwrap();
        assert!(f.matches(8000, "udp") && f.matches(8080, "udp"));
        assert!(!f.matches(8001, "tcp") && !f.matches(8081, "udp"));
        assert!(port_filter("x").is_none());
    }

    #[test]
    fn swappiness_and_blkio_values_are_checked() {
        assert_eq!(swappiness(None).unwrap(), None);
        assert_eq!(swappiness(Some(-1)).unwrap(), None);
        assert_eq!(swappiness(Some(60)).unwrap(), Some(60));
        assert!(swappiness(Some(101))
            .unwrap_err()
            .to_string()
            .contains("101"));
        assert_eq!(blkio_weight(None).unwrap(), 0);
        assert_eq!(blkio_weight(Some(&serde_json::json!(300))).unwrap(), 300);
        let e = blkio_weight(Some(&serde_json::json!(5))).unwrap_err();
        assert!(e.to_string().contains("10 to 1000"), "{e}");
    }

    #[test]
    fn blkio_device_rules_resolve_block_devices_only() {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let dir = tempfile::tempdir().unwrap();
        let blk = dir.path().join("disk");
        mknod(
            &blk,
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o600),
            makedev(8, 16),
        )
        .expect("mknod (the tests run as root)");
        let extra =
            |json: serde_json::Value| -> api::Extra { serde_json::from_value(json).unwrap() };
        let p = blk.display().to_string();
        let rules = blkio_devices(&extra(serde_json::json!({
            "BlkioDeviceReadBps": [{"Path": p, "Rate": 1048576}],
            "BlkioWeightDevice": [{"Path": p, "Weight": 200}],
        })))
        .unwrap();
        assert_eq!(
            rules,
            vec![
                BlkioRule {
                    kind: "weight".into(),
                    major: 8,
                    minor: 16,
                    value: 200
                },
                BlkioRule {
                    kind: "read_bps".into(),
                    major: 8,
                    minor: 16,
                    value: 1 << 20
                },
            ]
        );
        // Not a block device, not there, or a weight out of range: refused,
        // naming the flag and the path.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        for (json, words) in [
            (
                serde_json::json!({"BlkioDeviceWriteIOps": [{"Path": file, "Rate": 5}]}),
                vec!["--device-write-iops", "not a block device"],
            ),
            (
                serde_json::json!({"BlkioDeviceReadBps": [{"Path": "/no/such", "Rate": 5}]}),
                vec!["--device-read-bps", "/no/such"],
            ),
            (
                serde_json::json!({"BlkioWeightDevice": [{"Path": p, "Weight": 5}]}),
                vec!["--blkio-weight-device", "10 to 1000"],
            ),
        ] {
            let e = blkio_devices(&extra(json)).unwrap_err().to_string();
            for w in words {
                assert!(e.contains(w), "{e}");
            }
        }
    }

    #[test]
    fn volumes_from_entries_name_a_container_and_a_mode() {
        assert_eq!(volumes_from("db").unwrap(), ("db", None));
        assert_eq!(volumes_from("db:ro").unwrap(), ("db", Some(true)));
        assert_eq!(volumes_from("db:rw,z").unwrap(), ("db", Some(false)));
        let e = volumes_from("db:rx").unwrap_err();
        assert!(e.to_string().contains("\"rx\""), "{e}");
        assert!(volumes_from(":ro").is_err());
    }

    fn body(json: &str) -> api::ContainerCreateConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(signal_number("SIGHUP").unwrap(), libc::SIGHUP);
        assert_eq!(signal_number("hup").unwrap(), libc::SIGHUP);
        assert_eq!(signal_number("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(signal_number("15").unwrap(), 15);
        assert_eq!(signal_number("NOPE").unwrap_err().status(), 400);
    }

    #[test]
    fn create_body_maps_to_the_engine_request() {
        let dir = Path::new("/var/lib/strato/volumes");
        let b = body(
            r#"{"Image":"busybox","Cmd":["sh","-c","x"],"Env":["A=1"],"Tty":true,
            "Entrypoint":[""],"Labels":{"k":"v"},"Volumes":{"/anon":{}},
            "HostConfig":{"Binds":["/host:/in:ro","data:/data"],"Tmpfs":{"/t":"size=1m"},
              "Memory":1048576,"PidsLimit":10,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":2},
              "PortBindings":{"8080/tcp":[{"HostIp":"127.0.0.1","HostPort":"9000"}]},
              "Ulimits":[{"Name":"nofile","Soft":10,"Hard":20}],"AutoRemove":true}}"#,
        );
        let (req, vols) = create_request(Some("web".into()), &b, dir).unwrap();
        assert_eq!(req.image, "busybox");
        assert_eq!(req.config.cmd, ["sh", "-c", "x"]);
        assert_eq!(req.config.entrypoint, Some(vec![]));
        assert!(req.config.tty);
        assert_eq!(req.config.resources.memory, 1 << 20);
        assert_eq!(req.config.resources.pids_limit, 10);
        assert_eq!(req.restart, RestartPolicy::OnFailure { max_retries: 2 });
        assert!(req.auto_remove);
        assert_eq!(req.ports.len(), 1);
        assert_eq!(req.ports[0].host_port, 9000);
        assert_eq!(req.ports[0].host_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(req.config.ulimits, vec![("nofile".to_string(), 10, 20)]);
        let m = &req.config.mounts;
        assert_eq!(m[0].source, "/host");
        assert!(m[0].read_only);
        assert_eq!(m[1].source, "/var/lib/strato/volumes/data/_data");
        assert_eq!(m[2].kind, "tmpfs");
        assert_eq!(m[2].options, ["size=1m"]);
        assert_eq!(m[3].target, "/anon");
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0], "data");
        assert_eq!(req.raw["HostConfig"]["Memory"], 1048576);
    }

    #[test]
    fn endpoints_config_gives_the_first_network_and_more() {
        let b = body(
            r#"{"Image":"busybox","HostConfig":{"NetworkMode":"front"},
            "NetworkingConfig":{"EndpointsConfig":{
              "front":{"Aliases":["web"],"IPAMConfig":{"IPv4Address":"172.28.5.24","LinkLocalIPs":["169.254.8.8"]},
                       "Links":["/db:database"],"MacAddress":"02:42:ac:11:00:02","DriverOpts":{"k":"v"}},
              "back":{"Aliases":["api"]}}}}"#,
        );
        let (req, _) = create_request(None, &b, Path::new("/v")).unwrap();
        assert_eq!(req.network, Some(NetworkMode::Bridge("front".into())));
        assert_eq!(req.aliases, ["web"]);
        let o = &req.first_opts;
        assert_eq!(o.ip, Some("172.28.5.24".parse().unwrap()));
        assert_eq!(o.mac.as_deref(), Some("02:42:ac:11:00:02"));
        assert_eq!(o.links, ["db:database"]);
        assert_eq!(o.link_target("DATABASE"), Some("db"));
        assert_eq!(o.link_target("db"), None);
        assert_eq!(o.link_local_ips, ["169.254.8.8"]);
        assert_eq!(o.driver_opts.get("k").map(String::as_str), Some("v"));
        assert_eq!(req.extra_networks.len(), 1);
        assert_eq!(req.extra_networks[0].name, "back");
        assert_eq!(req.extra_networks[0].aliases, ["api"]);
        // Bad endpoint settings are the client's error.
        for bad in [
            r#"{"MacAddress":"01:00:5e:00:00:01"}"#,
            r#"{"IPAMConfig":{"IPv4Address":"300.1.1.1"}}"#,
            r#"{"Links":[":x"]}"#,
        ] {
            let b = body(&format!(
                r#"{{"Image":"busybox","HostConfig":{{"NetworkMode":"n"}},"NetworkingConfig":{{"EndpointsConfig":{{"n":{bad}}}}}}}"#
            ));
            let e = create_request(None, &b, Path::new("/v")).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}: {e}");
        }
        // Bind propagation, from Binds or Mounts; a bad mode is refused.
        let b = body(
            r#"{"Image":"busybox","HostConfig":{"Binds":["/a:/a:rw,rshared","/b:/b"],
            "Mounts":[{"Type":"bind","Source":"/c","Target":"/c","BindOptions":{"Propagation":"rslave"}}]}}"#,
        );
        let (req, _) = create_request(None, &b, Path::new("/v")).unwrap();
        let props: Vec<&str> = req.config.mounts.iter().map(bind_propagation).collect();
        assert_eq!(props, ["rshared", "rprivate", "rslave"]);
        let b = body(r#"{"Image":"busybox","HostConfig":{"Binds":["/a:/a:rw,bogus"]}}"#);
        assert_eq!(
            create_request(None, &b, Path::new("/v"))
                .unwrap_err()
                .status(),
            400
        );
        // The deprecated top-level MacAddress is the first network's.
        let b = body(r#"{"Image":"busybox","MacAddress":"02:42:ac:11:00:0a"}"#);
        let (req, _) = create_request(None, &b, Path::new("/v")).unwrap();
        assert_eq!(req.first_opts.mac.as_deref(), Some("02:42:ac:11:00:0a"));
        // --network host allows no other network.
        let b = body(
            r#"{"Image":"busybox","HostConfig":{"NetworkMode":"host"},
            "NetworkingConfig":{"EndpointsConfig":{"other":{}}}}"#,
        );
        assert_eq!(
            create_request(None, &b, Path::new("/v"))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn network_container_mode_parses_and_refuses_what_dockerd_refuses() {
        let dir = Path::new("/v");
        let b = body(r#"{"Image":"busybox","HostConfig":{"NetworkMode":"container:web"}}"#);
        let (req, _) = create_request(None, &b, dir).unwrap();
        assert_eq!(req.network, Some(NetworkMode::Container("web".into())));
        assert!(req.ports.is_empty() && req.links.is_empty());
        // The CLI may name the mode in EndpointsConfig with nothing in it.
        let b = body(
            r#"{"Image":"busybox","HostConfig":{"NetworkMode":"container:web"},
            "NetworkingConfig":{"EndpointsConfig":{"container:web":{}}}}"#,
        );
        assert!(create_request(None, &b, dir).is_ok());
        for (config, host, eps, want) in [
            ("", "", "", "give container:<name|id>"),
            (
                r#""Hostname":"h","#,
                "",
                "",
                "hostname and the network mode",
            ),
            ("", r#""Links":["db:db"],"#, "", "can't be used with links"),
            ("", r#""Dns":["1.1.1.1"],"#, "", "dns and the network mode"),
            (
                "",
                r#""ExtraHosts":["a:1.2.3.4"],"#,
                "",
                "custom host-to-IP mapping",
            ),
            (
                "",
                r#""PortBindings":{"80/tcp":[{"HostPort":"8080"}]},"#,
                "",
                "port publishing and the container type network mode",
            ),
            ("", r#""PublishAllPorts":true,"#, "", "port publishing"),
            (r#""ExposedPorts":{"80/tcp":{}},"#, "", "", "port exposing"),
            (
                r#""MacAddress":"02:42:ac:11:00:02","#,
                "",
                "",
                "mac-address and the network mode",
            ),
            (
                "",
                "",
                r#""container:web":{"MacAddress":"02:42:ac:11:00:02"}"#,
                "mac-address",
            ),
            (
                "",
                "",
                r#""container:web":{"Aliases":["a"]}"#,
                "network-scoped alias",
            ),
            (
                "",
                "",
                r#""container:web":{"IPAMConfig":{"IPv4Address":"10.0.0.9"}}"#,
                "IP address",
            ),
            (
                "",
                "",
                r#""other":{}"#,
                "cannot be connected to any other network",
            ),
        ] {
            let mode = if want.starts_with("give") {
                "container:"
            } else {
                "container:web"
            };
            let json = format!(
                r#"{{{config}"Image":"busybox","HostConfig":{{{host}"NetworkMode":"{mode}"}},
                "NetworkingConfig":{{"EndpointsConfig":{{{eps}}}}}}}"#
            );
            let e = create_request(None, &body(&json), dir).unwrap_err();
            assert_eq!(e.status(), 400, "{json}: {e}");
            assert!(e.to_string().contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn a_joined_container_shows_its_target_by_id_and_no_networks() {
        let b = body(r#"{"Image":"busybox","HostConfig":{"NetworkMode":"container:web"}}"#);
        let (req, _) = create_request(None, &b, Path::new("/v")).unwrap();
        let r = Record {
            id: "j".into(),
            name: "joiner".into(),
            created: String::new(),
            image_ref: String::new(),
            image_id: String::new(),
            config: req.config,
            image_defaults: Default::default(),
            restart: Default::default(),
            auto_remove: false,
            network: NetworkMode::Container("0123abcd".into()),
            ports: Vec::new(),
            raw: req.raw,
            endpoint: None,
            status: None,
            aliases: Vec::new(),
            extra_networks: Vec::new(),
            extra_endpoints: Vec::new(),
            first_opts: Default::default(),
            first_detached: false,
            links: Vec::new(),
        };
        assert_eq!(inspect_host_config(&r).network_mode, "container:0123abcd");
        // No runtime asked: dockerd's default name, which ours answers to;
        // one asked by name is shown as given.
        assert_eq!(inspect_host_config(&r).runtime, "runc");
        let mut named = r.clone();
        named.raw["HostConfig"]["Runtime"] = "strato".into();
        assert_eq!(inspect_host_config(&named).runtime, "strato");
        assert!(endpoint_settings(&r, "x").is_empty());
        let s = summary(&r, 0.0, "x", Path::new("/v"));
        assert_eq!(s.host_config.network_mode, "container:0123abcd");
        assert!(s.network_settings.networks.is_empty());
        let f = api::Filters::parse(r#"{"network":["container"]}"#).unwrap();
        assert!(!matches_filters(&r, &f, Path::new("/v")));
    }

    #[test]
    fn bad_bodies_are_400() {
        let dir = Path::new("/v");
        for b in [
            r#"{"Image":"busybox","HostConfig":{"Binds":["../x:/y"]}}"#,
            r#"{"Image":"busybox","HostConfig":{"PortBindings":{"x/tcp":[{}]}}}"#,
            r#"{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#,
            r#"{"Image":"busybox","HostConfig":{"NetworkMode":"host","PortBindings":{"80/tcp":[{"HostPort":"80"}]}}}"#,
            r#"{"Image":""}"#,
        ] {
            let err = create_request(None, &body(b), dir).unwrap_err();
            assert_eq!(err.status(), 400, "{b}: {}", err.message);
        }
    }

    #[test]
    fn status_texts() {
        let st = |phase, code, started: &str, finished: Option<&str>| ContainerStatus {
            spec: strato_supervisor::ContainerSpec {
                id: "x".into(),
                bundle: "/b".into(),
                log_path: "/l".into(),
                tty: false,
                open_stdin: false,
                restart: RestartPolicy::No,
                auto_remove: false,
                netns: false,
                own_cgroup_parent: false,
            },
            phase,
            pid: 1,
            exit_code: code,
            oom_killed: false,
            started_at: Some(started.into()),
            finished_at: finished.map(String::from),
            restart_count: 0,
            stopped_by_user: false,
            error: None,
        };
        let now = time::parse_f64("2024-01-01T00:01:00Z").unwrap();
        assert_eq!(status_text(None, now), "Created");
        let s = st(Phase::Running, None, "2024-01-01T00:00:57Z", None);
        assert_eq!(status_text(Some(&s), now), "Up 3 seconds");
        let s = st(
            Phase::Exited,
            Some(3),
            "2024-01-01T00:00:00Z",
            Some("2024-01-01T00:00:58.5Z"),
        );
        assert_eq!(status_text(Some(&s), now), "Exited (3) 1 second ago");
        assert_eq!(state_word(Some(&s)), "exited");
    }
}
