//! `run`/`create` flags and their translation into a create body, plus the
//! small value parsers they need (`-p`, `-e`, `-v`, `-m`, `--cpus`,
//! `--restart`, `-l`, `--filter`). Pure functions: no daemon, no I/O.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use strato_api::types::*;

/// The container flags `run` and `create` share.
#[derive(Debug, Args, Default, Clone)]
pub struct ContainerOpts {
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (NAME=value, or NAME to pass the local value).
    #[arg(short = 'e', long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Publish a container's port to the host ([ip:][hostPort:]containerPort[/proto]).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Bind mount a host path or named volume (src:dst[:ro]), or an anonymous volume (dst).
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Connect to a network (bridge, host, none or a user-defined network).
    #[arg(long)]
    pub network: Option<String>,
    /// Restart policy: no, always, unless-stopped, on-failure[:max-retries].
    #[arg(long)]
    pub restart: Option<String>,
    /// Overwrite the image's ENTRYPOINT.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: name|uid[:group|gid]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Memory limit (e.g. 512m, 1g).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Number of CPUs (e.g. 1.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Tune the container's pids limit (-1 for unlimited).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Add Linux capabilities.
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Set metadata on the container (key=value).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Mount a tmpfs directory (dst[:options]).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Signal to stop the container.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds to wait for the container to stop before killing it.
    #[arg(long)]
    pub stop_timeout: Option<i64>,
}

/// Builds the create body for `image` and `cmd` from the flags. `lookup_env`
/// answers `-e NAME` (the local environment in the CLI).
pub fn create_config(
    o: &ContainerOpts,
    image: &str,
    cmd: &[String],
    attach: bool,
    lookup_env: impl Fn(&str) -> Option<String>,
) -> Result<ContainerCreateConfig> {
    let mut c = ContainerCreateConfig::default();
    let cfg = &mut c.config;
    cfg.image = image.to_string();
    if !cmd.is_empty() {
        cfg.cmd = Some(cmd.to_vec());
    }
    cfg.tty = o.tty;
    cfg.open_stdin = o.interactive;
    cfg.stdin_once = o.interactive && attach;
    cfg.attach_stdin = o.interactive && attach;
    cfg.attach_stdout = attach;
    cfg.attach_stderr = attach;
    let env: Vec<String> = o
        .env
        .iter()
        .filter_map(|e| parse_env(e, &lookup_env))
        .collect::<Result<_>>()?;
    if !env.is_empty() {
        cfg.env = Some(env);
    }
    if let Some(ep) = &o.entrypoint {
        // Docker: an empty --entrypoint resets it; otherwise one word.
        cfg.entrypoint = Some(if ep.is_empty() {
            vec![String::new()]
        } else {
            vec![ep.clone()]
        });
    }
    cfg.working_dir = o.workdir.clone().unwrap_or_default();
    if !cfg.working_dir.is_empty() && !cfg.working_dir.starts_with('/') {
        bail!(
            "invalid -w {:?}: the working directory must be an absolute path",
            cfg.working_dir
        );
    }
    cfg.user = o.user.clone().unwrap_or_default();
    cfg.hostname = o.hostname.clone().unwrap_or_default();
    if !o.label.is_empty() {
        cfg.labels = Some(parse_labels(&o.label)?);
    }
    cfg.stop_signal = o.stop_signal.clone();
    cfg.stop_timeout = o.stop_timeout;

    let h = &mut c.host_config;
    h.auto_remove = o.rm;
    h.network_mode = o.network.clone().unwrap_or_else(|| "bridge".into());
    if let Some(r) = &o.restart {
        h.restart_policy = parse_restart(r)?;
        if o.rm && !matches!(h.restart_policy.name.as_str(), "" | "no") {
            bail!("conflicting options: cannot combine --restart {r} with --rm (a removed container cannot restart)");
        }
    }
    if !o.publish.is_empty() {
        let mut ports = PortMap::new();
        let mut exposed = BTreeMap::new();
        for p in &o.publish {
            for (key, binding) in parse_publish(p)? {
                exposed.insert(key.clone(), Value::Object(Default::default()));
                ports
                    .entry(key)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(binding);
            }
        }
        cfg.exposed_ports = Some(exposed);
        h.port_bindings = Some(ports);
    }
    let mut binds = Vec::new();
    let mut anon = BTreeMap::new();
    for v in &o.volume {
        match parse_volume(v)? {
            VolumeFlag::Bind(b) => binds.push(b),
            VolumeFlag::Anonymous(dst) => {
                anon.insert(dst, Value::Object(Default::default()));
            }
        }
    }
    if !binds.is_empty() {
        h.binds = Some(binds);
    }
    if !anon.is_empty() {
        cfg.volumes = Some(anon);
    }
    if !o.tmpfs.is_empty() {
        let mut t = StringMap::new();
        for m in &o.tmpfs {
            let (dst, opts) = m.split_once(':').unwrap_or((m.as_str(), ""));
            if !dst.starts_with('/') {
                bail!("invalid --tmpfs {m:?}: the mount point must be an absolute path");
            }
            t.insert(dst.to_string(), opts.to_string());
        }
        h.tmpfs = Some(t);
    }
    if let Some(m) = &o.memory {
        h.memory = parse_bytes(m).with_context(|| format!("invalid -m {m:?}"))?;
    }
    if let Some(cpus) = &o.cpus {
        h.nano_cpus = parse_cpus(cpus)?;
    }
    h.pids_limit = o.pids_limit;
    h.readonly_rootfs = o.read_only;
    h.privileged = o.privileged;
    if o.init {
        h.init = Some(true);
    }
    if !o.cap_add.is_empty() {
        h.cap_add = Some(o.cap_add.clone());
    }
    if !o.cap_drop.is_empty() {
        h.cap_drop = Some(o.cap_drop.clone());
    }
    Ok(c)
}

/// `-e NAME=value` as given; `-e NAME` takes the local value and is dropped
/// when NAME is not set locally (as docker does).
pub fn parse_env(e: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<Result<String>> {
    let name = e.split('=').next().unwrap_or("");
    if name.is_empty() {
        return Some(Err(anyhow::anyhow!(
            "invalid environment variable {e:?}: the name is empty; use NAME=value"
        )));
    }
    if e.contains('=') {
        return Some(Ok(e.to_string()));
    }
    lookup(name).map(|v| Ok(format!("{name}={v}")))
}

/// `-l key=value` (or `key`, an empty value).
pub fn parse_labels(labels: &[String]) -> Result<StringMap> {
    let mut m = StringMap::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("invalid label {l:?}: the key is empty; use key=value");
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let (name, max) = s.split_once(':').unwrap_or((s, ""));
    let maximum_retry_count = if max.is_empty() {
        0
    } else {
        if name != "on-failure" {
            bail!("invalid restart policy {s:?}: only on-failure takes a maximum retry count");
        }
        max.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .with_context(|| {
                format!("invalid restart policy {s:?}: {max:?} is not a retry count")
            })?
    };
    match name {
        "no" | "always" | "unless-stopped" | "on-failure" => Ok(RestartPolicy {
            name: name.to_string(),
            maximum_retry_count,
        }),
        _ => bail!("invalid restart policy {s:?}: use no, always, unless-stopped or on-failure[:max-retries]"),
    }
}

/// `-p [ip:][hostPort:]containerPort[/proto]`, ports or equal-length ranges
/// (`8000-8001:80-81`). Returns (`80/tcp`, binding) pairs.
pub fn parse_publish(s: &str) -> Result<Vec<(String, PortBinding)>> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, p),
        None => (s, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        bail!("invalid -p {s:?}: unknown protocol {proto:?}; use tcp, udp or sctp");
    }
    // An IPv6 address is written in brackets: [::1]:8080:80.
    let (ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, rest) = r
            .split_once("]:")
            .with_context(|| format!("invalid -p {s:?}: unclosed [ in the address"))?;
        (ip.to_string(), rest)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), spec),
            3 => (parts[0].to_string(), &spec[parts[0].len() + 1..]),
            _ => bail!("invalid -p {s:?}: use [ip:][hostPort:]containerPort[/protocol]"),
        }
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid -p {s:?}: {ip:?} is not an IP address");
    }
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest),
    };
    let range = |r: &str| -> Result<(u16, u16)> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let p = |x: &str| {
            x.parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("invalid -p {s:?}: {x:?} is not a port number (1-65535)"))
        };
        let (a, b) = (p(a)?, p(b)?);
        if b < a {
            bail!("invalid -p {s:?}: the range {r:?} ends before it starts");
        }
        Ok((a, b))
    };
    let (c0, c1) = range(container)?;
    let hosts = if host.is_empty() {
        None
    } else {
        Some(range(host)?)
    };
    if let Some((h0, h1)) = hosts {
        if h1 - h0 != c1 - c0 && h0 != h1 {
            bail!("invalid -p {s:?}: the host and container port ranges differ in length");
        }
    }
    let mut out = Vec::new();
    for (i, cp) in (c0..=c1).enumerate() {
        let host_port = match hosts {
            Some((h0, h1)) if h0 == h1 => h0.to_string(),
            Some((h0, _)) => (h0 + i as u16).to_string(),
            None => String::new(),
        };
        out.push((
            format!("{cp}/{proto}"),
            PortBinding {
                host_ip: ip.clone(),
                host_port,
            },
        ));
    }
    Ok(out)
}

/// What a `-v` flag asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum VolumeFlag {
    /// A `Binds` entry: `/host:/ctr[:opts]` or `name:/ctr[:opts]`.
    Bind(String),
    /// An anonymous volume at this container path.
    Anonymous(String),
}

/// `-v /host:/ctr[:ro]`, `-v name:/ctr`, `-v /ctr`.
pub fn parse_volume(s: &str) -> Result<VolumeFlag> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => {
            if !dst.starts_with('/') {
                bail!("invalid -v {s:?}: the container path must be absolute");
            }
            return Ok(VolumeFlag::Anonymous(dst.to_string()));
        }
        [src, dst] => (*src, *dst, None),
        [src, dst, mode] => (*src, *dst, Some(*mode)),
        _ => bail!("invalid -v {s:?}: use /host/path:/container/path[:ro] or name:/container/path"),
    };
    if !dst.starts_with('/') {
        bail!("invalid -v {s:?}: the container path {dst:?} must be absolute");
    }
    if dst == "/" {
        bail!("invalid -v {s:?}: cannot mount over the container's root /");
    }
    if src.is_empty() {
        bail!("invalid -v {s:?}: the source is empty");
    }
    if !src.starts_with('/') {
        let valid = src
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && src
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            bail!(
                "invalid -v {s:?}: {src:?} includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed; to bind a host directory, give its absolute path"
            );
        }
    }
    if let Some(m) = mode {
        for o in m.split(',') {
            if !matches!(
                o,
                "ro" | "rw"
                    | "z"
                    | "Z"
                    | "nocopy"
                    | "private"
                    | "rprivate"
                    | "shared"
                    | "rshared"
                    | "slave"
                    | "rslave"
            ) {
                bail!("invalid -v {s:?}: unknown mode {o:?}; use ro or rw");
            }
        }
    }
    Ok(VolumeFlag::Bind(s.to_string()))
}

/// Sizes like docker's RAMInBytes: `512`, `64k`, `512m`, `1.5g` (binary units).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|x| !x.is_empty()).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .with_context(|| {
            format!("{s:?} is not a size; use a number with an optional unit b, k, m or g")
        })?;
    Ok((n * mult as f64) as i64)
}

/// `--cpus 1.5` → NanoCpus.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let n: f64 = s
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .with_context(|| format!("invalid --cpus {s:?}: give a positive number like 0.5 or 2"))?;
    Ok((n * 1e9).round() as i64)
}

/// `--filter key=value` (repeatable) into the API's filters.
pub fn parse_filters(f: &[String]) -> Result<Filters> {
    let mut out = Filters::default();
    for s in f {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("invalid filter {s:?}: use key=value, like status=exited"))?;
        out.0
            .entry(k.trim().to_string())
            .or_default()
            .push(v.to_string());
    }
    Ok(out)
}

/// Times for `--since`/`--until`: a unix timestamp (`1700000000[.5]`), an
/// RFC 3339 time, or a duration before `now` (`10m`, `1h30m`, `45s`).
pub fn parse_time(s: &str, now: f64) -> Result<f64> {
    if let Ok(t) = s.parse::<f64>() {
        return Ok(t);
    }
    if let Some((secs, nanos)) = strato_image::time::parse_rfc3339_nanos(s) {
        return Ok(secs as f64 + f64::from(nanos) / 1e9);
    }
    Ok(now
        - parse_duration(s).with_context(|| {
            format!(
            "invalid time {s:?}: give a unix timestamp, an RFC 3339 time or a duration like 10m"
        )
        })?)
}

/// Go durations: `1h30m`, `10m`, `45s`, `500ms`.
pub fn parse_duration(s: &str) -> Result<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end]
            .parse()
            .with_context(|| format!("bad number in {s:?}"))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            u => bail!("unknown unit {u:?} in duration {s:?}"),
        };
        rest = &rest[u_end..];
        total += n * unit;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: ip.into(),
            host_port: port.into(),
        }
    }

    #[test]
    fn publish_forms() {
        assert_eq!(
            parse_publish("80").unwrap(),
            vec![("80/tcp".into(), b("", ""))]
        );
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            vec![("80/tcp".into(), b("", "8080"))]
        );
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp").unwrap(),
            vec![("80/udp".into(), b("127.0.0.1", "8080"))]
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            vec![("80/tcp".into(), b("127.0.0.1", ""))]
        );
        assert_eq!(
            parse_publish("[::1]:8080:80").unwrap(),
            vec![("80/tcp".into(), b("::1", "8080"))]
        );
        assert_eq!(
            parse_publish("8000-8001:80-81").unwrap(),
            vec![
                ("80/tcp".into(), b("", "8000")),
                ("81/tcp".into(), b("", "8001"))
            ]
        );
        for bad in [
            "",
            "0",
            "70000",
            "8080:80/icmp",
            "1.2.3:80:80",
            "80-79",
            "a:b:c:d",
            "8000-8002:80-81",
        ] {
            let e = parse_publish(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn env_forms() {
        let look = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(parse_env("A=b=c", look).unwrap().unwrap(), "A=b=c");
        assert_eq!(parse_env("A=", look).unwrap().unwrap(), "A=");
        assert_eq!(parse_env("HOME", look).unwrap().unwrap(), "HOME=/root");
        assert!(parse_env("UNSET_HERE", look).is_none());
        assert!(parse_env("=x", look).unwrap().is_err());
    }

    #[test]
    fn volume_forms() {
        assert_eq!(
            parse_volume("/data").unwrap(),
            VolumeFlag::Anonymous("/data".into())
        );
        assert_eq!(
            parse_volume("/h:/c:ro").unwrap(),
            VolumeFlag::Bind("/h:/c:ro".into())
        );
        assert_eq!(
            parse_volume("vol1:/c").unwrap(),
            VolumeFlag::Bind("vol1:/c".into())
        );
        for (bad, want) in [
            ("rel", "absolute"),
            ("./x:/c", "absolute path"),
            ("/h:rel", "must be absolute"),
            ("/h:/c:rx", "unknown mode"),
            ("/h:/", "root"),
            ("a:b:c:d", "use /host/path"),
        ] {
            let e = parse_volume(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_cpus_restart_filters_times() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("0").is_err());
        assert_eq!(
            parse_restart("on-failure:3").unwrap().maximum_retry_count,
            3
        );
        assert_eq!(parse_restart("always").unwrap().name, "always");
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("sometimes").is_err());
        let f = parse_filters(&[
            "status=exited".into(),
            "label=a=b".into(),
            "status=created".into(),
        ])
        .unwrap();
        assert_eq!(f.get("status"), ["exited", "created"]);
        assert_eq!(f.get("label"), ["a=b"]);
        assert!(parse_filters(&["nokey".into()]).is_err());
        assert_eq!(parse_time("1700000000", 0.0).unwrap(), 1_700_000_000.0);
        assert_eq!(parse_time("10m", 1000.0).unwrap(), 400.0);
        assert_eq!(parse_time("1h30m", 10_000.0).unwrap(), 4600.0);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", 0.0).unwrap(),
            1_700_000_000.0
        );
        assert!(parse_time("yesterday", 0.0).is_err());
    }

    #[test]
    fn create_config_from_flags() {
        let o = ContainerOpts {
            interactive: true,
            tty: true,
            rm: true,
            env: vec!["A=1".into(), "NOPE".into()],
            publish: vec!["8080:80".into(), "9090:80".into()],
            volume: vec!["/h:/c:ro".into(), "/anon".into()],
            memory: Some("64m".into()),
            cpus: Some("0.5".into()),
            pids_limit: Some(20),
            read_only: true,
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["ALL".into()],
            label: vec!["app=web".into()],
            entrypoint: Some("/bin/sh".into()),
            workdir: Some("/tmp".into()),
            user: Some("1000:1000".into()),
            hostname: Some("box".into()),
            network: Some("none".into()),
            ..Default::default()
        };
        let c =
            create_config(&o, "busybox", &["-c".into(), "true".into()], true, |_| None).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["Image"], "busybox");
        assert_eq!(v["Cmd"], serde_json::json!(["-c", "true"]));
        assert_eq!(v["Entrypoint"], serde_json::json!(["/bin/sh"]));
        assert_eq!(v["Env"], serde_json::json!(["A=1"]));
        assert_eq!(
            (
                v["Tty"].clone(),
                v["OpenStdin"].clone(),
                v["StdinOnce"].clone()
            ),
            (true.into(), true.into(), true.into())
        );
        assert_eq!(v["Labels"]["app"], "web");
        assert_eq!(v["Volumes"], serde_json::json!({"/anon": {}}));
        assert_eq!(v["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        let h = &v["HostConfig"];
        assert_eq!(h["AutoRemove"], true);
        assert_eq!(h["NetworkMode"], "none");
        assert_eq!(h["Binds"], serde_json::json!(["/h:/c:ro"]));
        assert_eq!(h["PortBindings"]["80/tcp"].as_array().unwrap().len(), 2);
        assert_eq!(h["Memory"], 64 << 20);
        assert_eq!(h["NanoCpus"], 500_000_000);
        assert_eq!(h["PidsLimit"], 20);
        assert_eq!(h["ReadonlyRootfs"], true);
        assert_eq!(h["CapAdd"], serde_json::json!(["NET_ADMIN"]));
        assert_eq!(v["WorkingDir"], "/tmp");
        assert_eq!(v["User"], "1000:1000");
        assert_eq!(v["Hostname"], "box");
        // --rm with a restart policy is refused before anything is created.
        let bad = ContainerOpts {
            rm: true,
            restart: Some("always".into()),
            ..Default::default()
        };
        assert!(create_config(&bad, "busybox", &[], false, |_| None).is_err());
        let bad = ContainerOpts {
            workdir: Some("rel".into()),
            ..Default::default()
        };
        assert!(create_config(&bad, "busybox", &[], false, |_| None).is_err());
    }
}
