//! Loading and validating a bundle's `config.json`.
//!
//! Everything that can be checked before a process is forked is checked here, so
//! that a bad bundle is refused before any state, cgroup or mount exists.

use std::fs::File;
use std::io::BufReader;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, IoContext, Result};

/// A bundle whose configuration parsed and passed validation.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute, canonical bundle directory.
    pub dir: PathBuf,
    /// The parsed configuration.
    pub spec: Spec,
    /// Absolute, canonical path of the root filesystem.
    pub rootfs: PathBuf,
    /// `linux.memoryPolicy`, which oci-spec does not model.
    pub memory_policy: Option<crate::mempolicy::MemPolicy>,
}

/// Reads `config.json` from `dir` and validates it for `create`/`run`.
pub fn load(dir: &Path) -> Result<Bundle> {
    let dir = dir
        .canonicalize()
        .ctx(|| format!("bundle {}", dir.display()))?;
    let path = dir.join("config.json");
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::config(
                &path,
                "not found: pass the bundle directory with --bundle, or create one with `strato runtime spec`",
            ))
        }
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut BufReader::new(file), &mut text)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let (spec, memory_policy) =
        parse_config_bytes(&text).map_err(|msg| Error::config(&path, msg))?;
    let rootfs = resolve_rootfs(&dir, &spec).map_err(|msg| Error::config(&path, msg))?;
    validate(&spec).map_err(|msg| Error::config(&path, msg))?;
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        memory_policy,
    })
}

/// Parses a configuration, naming the JSON path of the first fault.
pub fn parse<R: std::io::Read>(mut reader: R) -> std::result::Result<Spec, String> {
    let mut text = Vec::new();
    reader
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read the configuration: {e}"))?;
    parse_config_bytes(&text).map(|(spec, _)| spec)
}

/// [`parse_config`] of a whole file. The common case, a configuration
/// without faults or unknown capabilities, is read straight into the spec
/// (a third of the time: no JSON value tree, no path tracking); any other
/// takes the slow way, which names the fault.
fn parse_config_bytes(
    text: &[u8],
) -> std::result::Result<(Spec, Option<crate::mempolicy::MemPolicy>), String> {
    /// The field oci-spec does not model; the rest is skipped.
    #[derive(serde::Deserialize)]
    struct Extra {
        linux: Option<ExtraLinux>,
    }
    #[derive(serde::Deserialize)]
    struct ExtraLinux {
        #[serde(rename = "memoryPolicy")]
        memory_policy: Option<serde_json::Value>,
    }
    if let Ok(spec) = serde_json::from_slice::<Spec>(text) {
        if let Ok(extra) = serde_json::from_slice::<Extra>(text) {
            let policy = extra.linux.and_then(|l| l.memory_policy);
            let memory_policy = crate::mempolicy::from_value(policy.as_ref())?;
            return Ok((spec, memory_policy));
        }
    }
    parse_config(text)
}

/// Parses a configuration and the fields oci-spec does not model.
fn parse_config<R: std::io::Read>(
    reader: R,
) -> std::result::Result<(Spec, Option<crate::mempolicy::MemPolicy>), String> {
    let mut value: serde_json::Value =
        serde_json::from_reader(reader).map_err(|e| format!("invalid JSON: {e}"))?;
    drop_unknown_capabilities(&mut value);
    let memory_policy = crate::mempolicy::from_config(&value)?;
    let spec: Spec = serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        if at == "." {
            format!("invalid configuration: {}", e.inner())
        } else {
            format!("{at}: {}", e.inner())
        }
    })?;
    Ok((spec, memory_policy))
}

/// Capability names this build does not know are dropped with a warning (as
/// runc does), so a config written for a newer kernel still runs.
fn drop_unknown_capabilities(value: &mut serde_json::Value) {
    let Some(caps) = value
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return;
    };
    for (set, list) in caps.iter_mut() {
        let Some(list) = list.as_array_mut() else {
            continue;
        };
        list.retain(|name| {
            let known = serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
            if !known {
                eprintln!("strato: warning: unknown capability {name} in process.capabilities.{set}: ignored");
            }
            known
        });
    }
}

/// Checks the parts of the configuration that the runtime relies on.
pub fn validate(spec: &Spec) -> std::result::Result<(), String> {
    let version = spec.version();
    if version.is_empty() {
        return Err(
            "ociVersion is missing: set it to the runtime-spec version, e.g. \"1.2.0\"".into(),
        );
    }
    if !version.starts_with("1.") {
        return Err(format!(
            "ociVersion {version:?} is not supported: strato implements runtime-spec 1.x"
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or("process is missing: a container needs a process to run")?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err("process.args is empty: give the command to run".into()),
    }
    if !process.cwd().is_absolute() {
        return Err(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd().display()
        ));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or("linux is missing: strato runs Linux containers only")?;
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let mut seen = Vec::new();
    for ns in &namespaces {
        if seen.contains(&ns.typ()) {
            return Err(format!(
                "linux.namespaces lists {} twice",
                ns_name(ns.typ())
            ));
        }
        seen.push(ns.typ());
        if let Some(p) = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
            if !p.is_absolute() {
                return Err(format!(
                    "linux.namespaces: path {:?} of the {} namespace must be absolute",
                    p.display(),
                    ns_name(ns.typ())
                ));
            }
        }
    }
    if !seen.contains(&LinuxNamespaceType::Mount) && seen.contains(&LinuxNamespaceType::User) {
        return Err(
            "linux.namespaces has a user namespace but no mount namespace: the rootfs cannot be mounted from there; add {\"type\": \"mount\"}"
                .into(),
        );
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !seen.contains(&LinuxNamespaceType::Uts)
    {
        return Err(
            "hostname is set but linux.namespaces has no uts namespace: add {\"type\": \"uts\"}"
                .into(),
        );
    }
    let has_userns = seen.contains(&LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let new_userns = namespaces.iter().any(|n| {
        n.typ() == LinuxNamespaceType::User
            && n.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
    });
    if new_userns && !maps {
        return Err("a new user namespace needs linux.uidMappings and linux.gidMappings".into());
    }
    if maps && !has_userns {
        return Err("linux.uidMappings are set but linux.namespaces has no user namespace".into());
    }
    if let Some(offsets) = linux.time_offsets().as_ref().filter(|o| !o.is_empty()) {
        let new_timens = namespaces.iter().any(|n| {
            n.typ() == LinuxNamespaceType::Time
                && n.path().as_ref().is_none_or(|p| p.as_os_str().is_empty())
        });
        if !new_timens {
            return Err(
                "linux.timeOffsets are set but linux.namespaces creates no time namespace: add {\"type\": \"time\"}"
                    .into(),
            );
        }
        time_offsets(offsets)?;
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(format!(
                "mounts: destination {:?} must be an absolute path",
                m.destination().display()
            ));
        }
    }
    Ok(())
}

/// `linux.timeOffsets` as /proc/PID/timens_offsets takes them: one
/// `CLOCK SECS NANOSECS` line per clock, for `monotonic` and `boottime` (the
/// clocks a time namespace offsets).
pub fn time_offsets(
    offsets: &std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>,
) -> std::result::Result<String, String> {
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (clock, off) in clocks {
        if clock != "monotonic" && clock != "boottime" {
            return Err(format!(
                "linux.timeOffsets: unknown clock {clock:?}: a time namespace offsets \"monotonic\" and \"boottime\""
            ));
        }
        let nanos = off.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            return Err(format!(
                "linux.timeOffsets.{clock}.nanosecs {nanos} must be below 1000000000"
            ));
        }
        out.push_str(&format!("{clock} {} {nanos}\n", off.secs().unwrap_or(0)));
    }
    Ok(out)
}

/// Resolves `root.path` against the bundle. A relative path must stay inside the bundle.
fn resolve_rootfs(bundle: &Path, spec: &Spec) -> std::result::Result<PathBuf, String> {
    let root = spec
        .root()
        .as_ref()
        .ok_or("root is missing: set root.path to the container's root filesystem")?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        return Err("root.path is empty: set it to the container's root filesystem".into());
    }
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        if path.components().any(|c| matches!(c, Component::ParentDir)) && !lexically_inside(path) {
            return Err(format!(
                "root.path {:?} escapes the bundle {}: use a directory inside the bundle or an absolute path",
                path.display(),
                bundle.display()
            ));
        }
        bundle.join(path)
    };
    let canonical = joined.canonicalize().map_err(|e| {
        format!(
            "root.path {:?} ({}): {e}: create the root filesystem first",
            path.display(),
            joined.display()
        )
    })?;
    if !path.is_absolute() && !canonical.starts_with(bundle) {
        return Err(format!(
            "root.path {:?} resolves to {}, outside the bundle {}: use a directory inside the bundle or an absolute path",
            path.display(),
            canonical.display(),
            bundle.display()
        ));
    }
    if !canonical.is_dir() {
        return Err(format!(
            "root.path {} is not a directory",
            canonical.display()
        ));
    }
    Ok(canonical)
}

/// Whether a relative path never climbs above its start (`a/../b` is fine, `../a` is not).
fn lexically_inside(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for c in path.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// The short name of a namespace type as used in /proc/PID/ns and in config.json.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Validates a container id like runc does.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
    }"#;

    fn with_time(namespaces: &str, offsets: &str) -> std::result::Result<(), String> {
        let text = format!(
            r#"{{"ociVersion": "1.0.2",
                "process": {{"args": ["sh"], "cwd": "/", "user": {{"uid": 0, "gid": 0}}}},
                "root": {{"path": "rootfs"}},
                "linux": {{"namespaces": [{{"type": "mount"}}{namespaces}], "timeOffsets": {offsets}}}}}"#
        );
        validate(&parse(text.as_bytes()).unwrap())
    }

    #[test]
    fn time_offsets_render_for_the_kernel_and_need_a_new_time_namespace() {
        let offsets =
            r#"{"monotonic": {"secs": 7881, "nanosecs": 2718281}, "boottime": {"secs": -5}}"#;
        assert!(with_time(r#", {"type": "time"}"#, offsets).is_ok());
        let spec = parse(
            format!(r#"{{"ociVersion": "1.0.2", "linux": {{"timeOffsets": {offsets}}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        let text = time_offsets(
            spec.linux()
                .as_ref()
                .unwrap()
                .time_offsets()
                .as_ref()
                .unwrap(),
        );
        assert_eq!(text.unwrap(), "boottime -5 0\nmonotonic 7881 2718281\n");
        let e = with_time("", offsets).unwrap_err();
        assert!(e.contains("no time namespace"), "{e}");
        let e = with_time(r#", {"type": "time", "path": "/proc/1/ns/time"}"#, offsets).unwrap_err();
        assert!(e.contains("no time namespace"), "{e}");
        let e = with_time(r#", {"type": "time"}"#, r#"{"realtime": {"secs": 1}}"#).unwrap_err();
        assert!(e.contains("unknown clock \"realtime\""), "{e}");
        let e = with_time(
            r#", {"type": "time"}"#,
            r#"{"boottime": {"secs": 1, "nanosecs": 1000000000}}"#,
        )
        .unwrap_err();
        assert!(e.contains("nanosecs"), "{e}");
    }

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    #[test]
    fn the_quick_and_the_careful_parse_agree() {
        let with_linux = |linux: &str, caps: &str| {
            format!(
                r#"{{"ociVersion": "1.0.2",
                    "process": {{"args": ["sh"], "cwd": "/", "user": {{"uid": 0, "gid": 0}},
                                 "capabilities": {{"bounding": [{caps}]}}}},
                    "root": {{"path": "rootfs"}},
                    "linux": {linux}}}"#
            )
        };
        let policy = r#"{"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}}"#;
        for (linux, caps) in [
            (policy, r#""CAP_KILL""#),
            (r#"{}"#, r#""CAP_KILL""#),
            (r#"{"memoryPolicy": null}"#, r#""CAP_KILL""#),
            // Not for the quick way: a capability this build does not know.
            (policy, r#""CAP_KILL", "CAP_FROM_THE_FUTURE""#),
        ] {
            let text = with_linux(linux, caps);
            let (quick, quick_policy) = parse_config_bytes(text.as_bytes()).unwrap();
            let (careful, careful_policy) = parse_config(text.as_bytes()).unwrap();
            assert_eq!(quick, careful, "{text}");
            assert_eq!(quick_policy, careful_policy, "{text}");
            assert_eq!(quick_policy.is_some(), linux == policy, "{text}");
        }
        // A fault is named by either.
        let text = with_linux(r#"{"memoryPolicy": {"mode": "MPOL_NONSENSE"}}"#, "");
        let e = parse_config_bytes(text.as_bytes()).unwrap_err();
        assert!(e.contains("memoryPolicy"), "{e}");
        let e =
            parse_config_bytes(br#"{"ociVersion": "1.0.2", "process": {"args": 7}}"#).unwrap_err();
        assert!(e.contains("process.args"), "{e}");
    }

    #[test]
    fn minimal_bundle_loads() {
        let dir = bundle_with(MINIMAL);
        let b = load(dir.path()).unwrap();
        assert_eq!(b.rootfs, dir.path().canonicalize().unwrap().join("rootfs"));
    }

    #[test]
    fn wrong_type_names_the_json_path() {
        let dir = bundle_with(&MINIMAL.replace(r#"["sh"]"#, r#""sh""#));
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        assert!(err.contains("process.args"), "{err}");
    }

    #[test]
    fn missing_version_is_refused() {
        let dir = bundle_with(&MINIMAL.replace(r#""ociVersion": "1.0.2","#, ""));
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("ociVersion is missing"), "{err}");
    }

    #[test]
    fn missing_config_says_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json: not found"), "{err}");
    }

    #[test]
    fn missing_rootfs_is_refused() {
        let dir = bundle_with(MINIMAL);
        std::fs::remove_dir(dir.path().join("rootfs")).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("root.path \"rootfs\""), "{err}");
    }

    #[test]
    fn escaping_rootfs_is_refused() {
        let dir = bundle_with(&MINIMAL.replace(r#""path": "rootfs""#, r#""path": "../../etc""#));
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("escapes the bundle"), "{err}");
    }

    #[test]
    fn escaping_rootfs_through_a_symlink_is_refused() {
        let dir = bundle_with(&MINIMAL.replace(r#""path": "rootfs""#, r#""path": "link""#));
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("outside the bundle"), "{err}");
    }

    #[test]
    fn no_mount_namespace_is_allowed_but_not_with_a_user_namespace() {
        let host_mounts = MINIMAL.replace(r#"{"type": "mount"}, "#, "");
        assert_ne!(host_mounts, MINIMAL);
        load(bundle_with(&host_mounts).path()).unwrap();
        let with_userns = host_mounts.replace(
            r#""namespaces": ["#,
            r#""uidMappings": [{"containerID": 0, "hostID": 100000, "size": 1000}],
               "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 1000}],
               "namespaces": [{"type": "user"}, "#,
        );
        assert_ne!(with_userns, host_mounts);
        let err = load(bundle_with(&with_userns).path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no mount namespace"), "{err}");
    }

    #[test]
    fn hostname_needs_uts() {
        let dir = bundle_with(&MINIMAL.replace(r#""root""#, r#""hostname": "h", "root""#));
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("uts"), "{err}");
    }

    #[test]
    fn unknown_capabilities_are_dropped() {
        let cfg = MINIMAL.replace(
            r#""user": {"uid": 0, "gid": 0}}"#,
            r#""user": {"uid": 0, "gid": 0}, "capabilities": {"bounding": ["CAP_KILL", "CAP_UNKNOWN"]}}"#,
        );
        let spec = parse(cfg.as_bytes()).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn an_empty_namespace_path_means_new() {
        let dir = bundle_with(
            &MINIMAL.replace(r#"{"type": "mount"}"#, r#"{"type": "mount", "path": ""}"#),
        );
        load(dir.path()).unwrap();
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", "a/b", "..", "a b", "ä"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lexical() {
        assert!(lexically_inside(Path::new("a/../b")));
        assert!(!lexically_inside(Path::new("../a")));
        assert!(!lexically_inside(Path::new("a/../../b")));
    }
}
