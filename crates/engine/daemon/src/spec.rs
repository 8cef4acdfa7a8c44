//! Docker container configuration → OCI runtime config (config.json), with
//! Docker's defaults: its capability set, its seccomp profile, masked and
//! read-only paths, /dev, /dev/shm and friends, and the image's settings
//! merged under the container's.

use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use crate::model::{ContainerConfig, ImageDefaults, Resources};

/// Why a container configuration can't become a runnable spec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("no command: the image has no Cmd or Entrypoint, give one after the image name")]
    NoCommand,
    #[error("{0}")]
    User(String),
    #[error("capability {0:?} is not known: use names like NET_ADMIN or CAP_NET_ADMIN, or ALL")]
    Capability(String),
    #[error("ulimit {0:?} is not known: use names like nofile, nproc, core, memlock, stack")]
    Ulimit(String),
    #[error("mount target {0:?} must be an absolute path")]
    MountTarget(String),
    #[error("generated config is invalid: {0}")]
    Invalid(String),
}

/// Docker's paths hidden from containers: the runtime's defaults and
/// /proc/interrupts.
pub fn masked_paths() -> Vec<&'static str> {
    let mut v = strato_container::specgen::MASKED_PATHS.to_vec();
    v.push("/proc/interrupts");
    v
}

/// Every capability in the daemon's own bounding set (`--privileged`,
/// `--cap-add ALL`): a container gets no more than the daemon holds, and
/// asking for one the daemon lacks fails the container's `capset` (hosts
/// that drop some, as sandboxes do, exist).
pub fn all_caps() -> Vec<String> {
    let held = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let mut v: Vec<String> = held.into_iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

fn normalize_cap(c: &str) -> Result<String, BuildError> {
    let up = c.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    name.parse::<caps::Capability>()
        .map_err(|_| BuildError::Capability(c.to_string()))?;
    Ok(name)
}

/// The capability set: Docker's defaults, `cap_add`, minus `cap_drop`.
pub fn capabilities(cfg: &ContainerConfig) -> Result<Vec<String>, BuildError> {
    if cfg.privileged {
        return Ok(all_caps());
    }
    let add: Vec<String> = cfg
        .cap_add
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = cfg
        .cap_drop
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let mut set: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all_caps()
    } else {
        let mut v: Vec<String> = strato_seccomp::DOCKER_DEFAULT_CAPABILITIES
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(add.into_iter().filter(|c| c != "ALL"));
        v
    };
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
        // `--cap-drop ALL --cap-add X` keeps X.
        set.extend(
            cfg.cap_add
                .iter()
                .filter_map(|c| normalize_cap(c).ok())
                .filter(|c| c != "ALL"),
        );
    } else {
        set.retain(|c| !drop.contains(c));
    }
    set.sort();
    set.dedup();
    Ok(set)
}

fn merge_env(image: &[String], container: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for kv in image.iter().chain(container) {
        let key = kv.split('=').next().unwrap_or_default();
        out.retain(|e| e.split('=').next() != Some(key));
        out.push(kv.clone());
    }
    out
}

fn rlimit_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        "as" => "RLIMIT_AS",
        _ => return None,
    })
}

/// Builds the OCI config of container `cfg` from image `image`. The root
/// filesystem goes at `rootfs`: mounted there by the runtime, in the
/// container's mount namespace, from `root_mount` (overlayfs options: the
/// first mount, destination `/`), or already there when it is `None`.
/// `accounts` are the root filesystem's /etc/passwd and /etc/group.
pub fn build(
    cfg: &ContainerConfig,
    image: &ImageDefaults,
    rootfs: &Path,
    root_mount: Option<Vec<String>>,
    accounts: &crate::users::Accounts,
) -> Result<Spec, BuildError> {
    build_json(cfg, image, rootfs, root_mount, accounts).map(|(spec, _)| spec)
}

/// [`build`], with the config.json text the spec was parsed from (compact,
/// as containerd writes it: the starter parses it at every start): written
/// as it is, the spec is serialized once per start, not twice.
pub fn build_json(
    cfg: &ContainerConfig,
    image: &ImageDefaults,
    rootfs: &Path,
    root_mount: Option<Vec<String>>,
    accounts: &crate::users::Accounts,
) -> Result<(Spec, Vec<u8>), BuildError> {
    let entrypoint = cfg
        .entrypoint
        .clone()
        .unwrap_or_else(|| image.entrypoint.clone());
    // A new entrypoint resets the image's cmd, as in Docker.
    let cmd = if !cfg.cmd.is_empty() {
        cfg.cmd.clone()
    } else if cfg.entrypoint.is_some() {
        Vec::new()
    } else {
        image.cmd.clone()
    };
    let mut args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(BuildError::NoCommand);
    }
    // `--init`: the host's init runs first, as process 1, and runs the
    // command as its child (it reaps orphans and passes signals on).
    if cfg.init_binary.is_some() {
        args.splice(0..0, [crate::hostdev::INIT_TARGET.to_string(), "--".into()]);
    }
    let user_str = if cfg.user.is_empty() {
        &image.user
    } else {
        &cfg.user
    };
    let user =
        crate::users::resolve_in(accounts, user_str, &cfg.group_add).map_err(BuildError::User)?;
    let mut env = vec![format!("PATH={}", strato_container::process::DEFAULT_PATH)];
    env.push(format!("HOSTNAME={}", cfg.hostname));
    env = merge_env(&env, &image.env);
    if cfg.tty {
        env = merge_env(&env, &["TERM=xterm".to_string()]);
    }
    env = merge_env(&env, &cfg.env);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = if !cfg.working_dir.is_empty() {
        cfg.working_dir.clone()
    } else if !image.working_dir.is_empty() {
        image.working_dir.clone()
    } else {
        "/".to_string()
    };
    let caps = capabilities(cfg)?;
    let mut rlimits = Vec::new();
    for (name, soft, hard) in &cfg.ulimits {
        let t = rlimit_name(name).ok_or_else(|| BuildError::Ulimit(name.clone()))?;
        rlimits.push(json!({"type": t, "soft": soft, "hard": hard}));
    }
    let nnp = cfg.security_opt.iter().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    });
    let unconfined = cfg.privileged
        || cfg
            .security_opt
            .iter()
            .any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined");

    let shm = if cfg.shm_size > 0 {
        cfg.shm_size
    } else {
        64 << 20
    };
    let mut mounts = Vec::new();
    if let Some(options) = root_mount {
        mounts.push(
            json!({"destination": "/", "type": "overlay", "source": "overlay", "options": options}),
        );
    }
    mounts.extend([
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if cfg.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if cfg.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
    ]);
    for (path, dest) in &cfg.etc_files {
        mounts.push(json!({"destination": dest, "type": "bind", "source": path, "options": ["rbind", "rprivate"]}));
    }
    if let Some(init) = &cfg.init_binary {
        mounts.push(json!({"destination": crate::hostdev::INIT_TARGET, "type": "bind", "source": init, "options": ["bind", "ro", "rprivate"]}));
    }
    for m in &cfg.mounts {
        if !m.target.starts_with('/') {
            return Err(BuildError::MountTarget(m.target.clone()));
        }
        if m.kind == "tmpfs" {
            let mut opts = vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "noexec".to_string(),
            ];
            opts.extend(m.options.iter().cloned());
            if m.read_only {
                opts.push("ro".into());
            }
            mounts.push(json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts}));
        } else {
            let mut opts = vec!["rbind", crate::convert::bind_propagation(m)];
            if m.read_only {
                opts.push("ro");
            }
            mounts.push(json!({"destination": m.target, "type": "bind", "source": m.source, "options": opts}));
        }
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    match cfg.netns.as_deref() {
        None => {}
        Some("") => namespaces.push(json!({"type": "network"})),
        Some(path) => namespaces.push(json!({"type": "network", "path": path})),
    }
    let r = &cfg.resources;
    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
    });
    if cfg.privileged {
        resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else if let Some(rules) = resources["devices"].as_array_mut() {
        for d in &cfg.devices {
            rules.push(json!({"allow": true, "type": d.kind, "major": d.major, "minor": d.minor, "access": d.access}));
        }
    }
    for (k, v) in limits(r) {
        resources[k] = v;
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": cfg.cgroups_path(),
        "sysctl": cfg.sysctls,
    });
    if !cfg.devices.is_empty() {
        linux["devices"] = cfg
            .devices
            .iter()
            .map(|d| json!({"path": d.path, "type": d.kind, "major": d.major, "minor": d.minor, "fileMode": d.mode, "uid": d.uid, "gid": d.gid}))
            .collect();
    }
    // As dockerd: a shared bind makes the root rshared (else pivot_root's
    // private parent would cut it off), a slave one rslave.
    let props: Vec<&str> = cfg
        .mounts
        .iter()
        .filter(|m| m.kind != "tmpfs")
        .map(crate::convert::bind_propagation)
        .collect();
    if props.iter().any(|p| p.ends_with("shared")) {
        linux["rootfsPropagation"] = json!("rshared");
    } else if props.iter().any(|p| p.ends_with("slave")) {
        linux["rootfsPropagation"] = json!("rslave");
    }
    if !cfg.privileged {
        linux["maskedPaths"] = json!(masked_paths());
        linux["readonlyPaths"] = json!(strato_container::specgen::READONLY_PATHS);
    }
    if !unconfined {
        linux["seccomp"] = default_seccomp(&caps)?;
    }
    let spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": cfg.tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": rlimits,
            "noNewPrivileges": nnp,
            "oomScoreAdj": cfg.oom_score_adj,
        },
        "root": {"path": rootfs, "readonly": cfg.read_only_rootfs},
        "hostname": cfg.hostname,
        "domainname": cfg.domainname,
        "mounts": mounts,
        "linux": linux,
        "annotations": cfg.labels,
    });
    let text = serde_json::to_vec(&spec).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let parsed = strato_container::spec::parse(text.as_slice()).map_err(BuildError::Invalid)?;
    strato_container::spec::validate(&parsed).map_err(BuildError::Invalid)?;
    Ok((parsed, text))
}

/// Docker's seccomp profile for a container with capabilities `caps`, as
/// JSON. The last one made is kept: nearly every container has the default
/// capabilities, and making it (some 350 syscall names) took a fifth of
/// the config's build.
fn default_seccomp(caps: &[String]) -> Result<Value, BuildError> {
    static LAST: std::sync::Mutex<Option<(Vec<String>, Value)>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().expect("seccomp profile lock");
    if let Some((for_caps, profile)) = last.as_ref() {
        if for_caps == caps {
            return Ok(profile.clone());
        }
    }
    let profile = serde_json::to_value(strato_seccomp::default_profile_for(caps))
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    *last = Some((caps.to_vec(), profile.clone()));
    Ok(profile)
}

/// The OCI `linux.resources` members (memory, cpu, pids) for Docker's
/// resource fields; those without a limit are absent.
pub fn limits(r: &Resources) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let mut memory = serde_json::Map::new();
    if r.memory > 0 {
        memory.insert("limit".into(), json!(r.memory));
        let swap = match r.memory_swap {
            0 => r.memory * 2,
            s => s,
        };
        memory.insert("swap".into(), json!(swap));
    }
    if r.memory_reservation > 0 {
        memory.insert("reservation".into(), json!(r.memory_reservation));
    }
    if let Some(n) = r.memory_swappiness {
        memory.insert("swappiness".into(), json!(n));
    }
    if r.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        out.push(("memory", Value::Object(memory)));
    }
    let mut cpu = serde_json::Map::new();
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(r.cpu_shares));
    }
    if r.nano_cpus > 0 {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(r.nano_cpus * period / 1_000_000_000));
    } else {
        if r.cpu_quota > 0 {
            cpu.insert("quota".into(), json!(r.cpu_quota));
        }
        if r.cpu_period > 0 {
            cpu.insert("period".into(), json!(r.cpu_period));
        }
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(r.cpuset_mems));
    }
    if r.cpu_rt_runtime != 0 {
        cpu.insert("realtimeRuntime".into(), json!(r.cpu_rt_runtime));
    }
    if r.cpu_rt_period > 0 {
        cpu.insert("realtimePeriod".into(), json!(r.cpu_rt_period));
    }
    if !cpu.is_empty() {
        out.push(("cpu", Value::Object(cpu)));
    }
    let mut bio = serde_json::Map::new();
    if r.blkio_weight > 0 {
        bio.insert("weight".into(), json!(r.blkio_weight));
    }
    for (kind, key, value_key) in [
        ("weight", "weightDevice", "weight"),
        ("read_bps", "throttleReadBpsDevice", "rate"),
        ("write_bps", "throttleWriteBpsDevice", "rate"),
        ("read_iops", "throttleReadIOPSDevice", "rate"),
        ("write_iops", "throttleWriteIOPSDevice", "rate"),
    ] {
        let list: Vec<Value> = r
            .blkio_devices
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| json!({"major": d.major, "minor": d.minor, value_key: d.value}))
            .collect();
        if !list.is_empty() {
            bio.insert(key.into(), Value::Array(list));
        }
    }
    if !bio.is_empty() {
        out.push(("blockIO", Value::Object(bio)));
    }
    if r.pids_limit > 0 {
        out.push(("pids", json!({"limit": r.pids_limit})));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec of `c` over `img`, users from the rootfs at `root`.
    fn try_build(
        c: &ContainerConfig,
        img: &ImageDefaults,
        root: &Path,
    ) -> Result<Spec, BuildError> {
        build(c, img, root, None, &crate::users::Accounts::read(root))
    }

    /// The spec of `c` over the test image.
    fn spec_for(c: &ContainerConfig, root: &Path) -> Spec {
        try_build(c, &image(), root).unwrap()
    }

    #[test]
    fn the_written_config_is_the_spec_the_runtime_reads() {
        // config.json is written from the text the spec was parsed from:
        // what the starter parses back is that spec, seccomp included.
        let root = rootfs();
        for privileged in [false, true] {
            let c = ContainerConfig {
                privileged,
                ..cfg()
            };
            let accounts = crate::users::Accounts::read(root.path());
            let (spec, text) = build_json(
                &c,
                &image(),
                root.path(),
                Some(vec!["lowerdir=/l".into()]),
                &accounts,
            )
            .unwrap();
            let read = strato_container::spec::parse(text.as_slice()).unwrap();
            assert_eq!(read, spec);
            let seccomp = read.linux().as_ref().unwrap().seccomp().as_ref();
            assert_eq!(seccomp.is_some(), !privileged);
            // A container with the default capabilities has the profile the
            // supervisor compiles ahead: its starts reuse that program.
            if let Some(s) = seccomp {
                assert!(*s == strato_seccomp::default_profile());
            }
        }
    }

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nweb:x:33:\n").unwrap();
        d
    }

    fn image() -> ImageDefaults {
        ImageDefaults {
            env: vec!["PATH=/usr/bin:/bin".into(), "A=image".into()],
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            working_dir: "/srv".into(),
            user: String::new(),
            healthcheck: None,
        }
    }

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            id: "abc".into(),
            hostname: "abc".into(),
            netns: Some(String::new()),
            ..Default::default()
        }
    }

    #[test]
    fn image_defaults_and_overrides() {
        let r = rootfs();
        let spec = try_build(&cfg(), &image(), r.path()).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &vec!["sh".to_string()]);
        assert_eq!(p.cwd(), Path::new("/srv"));
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"PATH=/usr/bin:/bin".to_string()), "{env:?}");
        assert!(env.contains(&"HOSTNAME=abc".to_string()));
        assert!(env.contains(&"HOME=/root".to_string()));

        let mut c = cfg();
        c.cmd = vec!["echo".into(), "hi".into()];
        c.env = vec!["A=container".into()];
        c.user = "web".into();
        let spec = spec_for(&c, r.path());
        let p = spec.process().as_ref().unwrap();
        assert_eq!(
            p.args().as_ref().unwrap(),
            &vec!["echo".to_string(), "hi".into()]
        );
        assert!(p
            .env()
            .as_ref()
            .unwrap()
            .contains(&"A=container".to_string()));
        assert!(!p.env().as_ref().unwrap().contains(&"A=image".to_string()));
        assert_eq!((p.user().uid(), p.user().gid()), (33, 33));
    }

    #[test]
    fn entrypoint_override_resets_cmd() {
        let r = rootfs();
        let mut img = image();
        img.entrypoint = vec!["/entry".into()];
        img.cmd = vec!["default-arg".into()];
        let spec = try_build(&cfg(), &img, r.path()).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &vec!["/entry".to_string(), "default-arg".into()]
        );
        let mut c = cfg();
        c.entrypoint = Some(vec!["/other".into()]);
        let spec = try_build(&c, &img, r.path()).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &vec!["/other".to_string()]
        );
        let mut img = image();
        img.cmd.clear();
        assert_eq!(
            try_build(&cfg(), &img, r.path()).unwrap_err(),
            BuildError::NoCommand
        );
    }

    #[test]
    fn an_init_runs_the_command_and_is_bound_read_only() {
        let r = rootfs();
        let mut img = image();
        img.entrypoint = vec!["/entry".into()];
        img.cmd = vec!["arg".into()];
        let mut c = cfg();
        c.init_binary = Some("/usr/bin/tini-static".into());
        let spec = try_build(&c, &img, r.path()).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &vec![
                "/sbin/docker-init".to_string(),
                "--".into(),
                "/entry".into(),
                "arg".into()
            ]
        );
        let mounts = spec.mounts().as_ref().unwrap();
        let init = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sbin/docker-init"))
            .expect("init mount");
        assert_eq!(
            init.source().as_deref(),
            Some(Path::new("/usr/bin/tini-static"))
        );
        assert!(init.options().as_ref().unwrap().contains(&"ro".to_string()));
        // Without one: the command alone, nothing bound.
        let spec = try_build(&cfg(), &img, r.path()).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap()[0],
            "/entry"
        );
        assert!(!spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.destination() == Path::new("/sbin/docker-init")));
    }

    #[test]
    fn capabilities_follow_docker() {
        let mut c = cfg();
        let caps = capabilities(&c).unwrap();
        assert_eq!(
            caps.len(),
            strato_seccomp::DOCKER_DEFAULT_CAPABILITIES.len()
        );
        assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));
        c.cap_add = vec!["sys_admin".into()];
        c.cap_drop = vec!["NET_RAW".into()];
        let caps = capabilities(&c).unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        c.cap_add = vec!["NET_BIND_SERVICE".into()];
        c.cap_drop = vec!["ALL".into()];
        assert_eq!(
            capabilities(&c).unwrap(),
            vec!["CAP_NET_BIND_SERVICE".to_string()]
        );
        c.cap_add = vec!["CAP_BOGUS".into()];
        assert!(matches!(capabilities(&c), Err(BuildError::Capability(_))));
    }

    #[test]
    fn each_capability_set_gets_its_own_seccomp_profile() {
        let r = rootfs();
        let mut admin = cfg();
        admin.cap_add = vec!["SYS_ADMIN".into()];
        let profile =
            |c: &ContainerConfig| strato_seccomp::default_profile_for(&capabilities(c).unwrap());
        assert_ne!(profile(&cfg()), profile(&admin));
        // Alternating: the profile kept from the last build is not reused
        // for other capabilities.
        for c in [cfg(), admin.clone(), admin, cfg()] {
            let spec = spec_for(&c, r.path());
            let linux = spec.linux().as_ref().unwrap();
            assert_eq!(linux.seccomp().as_ref(), Some(&profile(&c)));
        }
    }

    #[test]
    fn security_defaults_and_resources() {
        let r = rootfs();
        let mut c = cfg();
        c.resources.memory = 64 << 20;
        c.resources.nano_cpus = 500_000_000;
        c.resources.pids_limit = 50;
        c.read_only_rootfs = true;
        let spec = spec_for(&c, r.path());
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_some());
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert_eq!(res.pids().as_ref().unwrap().limit(), 50);
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        c.privileged = true;
        let spec = spec_for(&c, r.path());
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert!(linux.masked_paths().is_none());
        c.privileged = false;
        c.security_opt = vec!["seccomp=unconfined".into(), "no-new-privileges".into()];
        let spec = spec_for(&c, r.path());
        assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
        assert_eq!(
            spec.process().as_ref().unwrap().no_new_privileges(),
            Some(true)
        );
    }

    #[test]
    fn swappiness_oom_killer_realtime_and_block_io_limits() {
        use crate::model::BlkioRule;
        let r = rootfs();
        let mut c = cfg();
        let none = spec_for(&c, r.path());
        let res = none.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert!(res.block_io().is_none() && res.memory().is_none());
        c.resources.memory_swappiness = Some(0);
        c.resources.oom_kill_disable = true;
        c.resources.cpu_rt_runtime = 950_000;
        c.resources.cpu_rt_period = 1_000_000;
        c.resources.blkio_weight = 300;
        let rule = |kind: &str, value| BlkioRule {
            kind: kind.into(),
            major: 8,
            minor: 16,
            value,
        };
        c.resources.blkio_devices = vec![
            rule("weight", 500),
            rule("read_bps", 1 << 20),
            rule("write_bps", 2 << 20),
            rule("read_iops", 100),
            rule("write_iops", 200),
        ];
        let spec = spec_for(&c, r.path());
        let res = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        let mem = res.memory().as_ref().unwrap();
        assert_eq!(mem.swappiness(), Some(0));
        assert_eq!(mem.disable_oom_killer(), Some(true));
        let cpu = res.cpu().as_ref().unwrap();
        assert_eq!(cpu.realtime_runtime(), Some(950_000));
        assert_eq!(cpu.realtime_period(), Some(1_000_000));
        let bio = res.block_io().as_ref().unwrap();
        assert_eq!(bio.weight(), Some(300));
        let wd = &bio.weight_device().as_ref().unwrap()[0];
        assert_eq!((wd.major(), wd.minor(), wd.weight()), (8, 16, Some(500)));
        let rate = |l: &Option<Vec<oci_spec::runtime::LinuxThrottleDevice>>| {
            let t = &l.as_ref().unwrap()[0];
            (t.major(), t.minor(), t.rate())
        };
        assert_eq!(rate(bio.throttle_read_bps_device()), (8, 16, 1 << 20));
        assert_eq!(rate(bio.throttle_write_bps_device()), (8, 16, 2 << 20));
        assert_eq!(rate(bio.throttle_read_iops_device()), (8, 16, 100));
        assert_eq!(rate(bio.throttle_write_iops_device()), (8, 16, 200));
    }

    #[test]
    fn network_modes() {
        let r = rootfs();
        let mut c = cfg();
        c.netns = None;
        let spec = spec_for(&c, r.path());
        let has_net = |s: &Spec| {
            s.linux()
                .as_ref()
                .unwrap()
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
                .map(|n| n.path().clone())
        };
        assert_eq!(has_net(&spec), None);
        c.netns = Some("/run/strato/netns/abc".into());
        let spec = spec_for(&c, r.path());
        assert_eq!(has_net(&spec), Some(Some("/run/strato/netns/abc".into())));
    }

    #[test]
    fn bad_mounts_and_ulimits_are_refused() {
        let r = rootfs();
        let mut c = cfg();
        c.mounts.push(crate::model::MountSpec {
            source: "/x".into(),
            target: "rel".into(),
            kind: "bind".into(),
            read_only: false,
            options: vec![],
        });
        assert!(matches!(
            try_build(&c, &image(), r.path()),
            Err(BuildError::MountTarget(_))
        ));
        let mut c = cfg();
        c.ulimits.push(("bogus".into(), 1, 1));
        assert!(matches!(
            try_build(&c, &image(), r.path()),
            Err(BuildError::Ulimit(_))
        ));
    }
}
