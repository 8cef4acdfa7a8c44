//! `linux.memoryPolicy` (runtime-spec 1.3): the NUMA memory policy set with
//! `set_mempolicy(2)` on the container's process before it executes.
//!
//! oci-spec 0.10 does not model this field in `Linux`, so it is read from the
//! configuration's JSON here, validated before anything is created, and kept
//! in the container's state so that `exec` applies it too (as runc does).

use serde::{Deserialize, Serialize};

/// Modes, by the names the runtime-spec uses, with their kernel values.
const MODES: &[(&str, i32)] = &[
    ("MPOL_DEFAULT", 0),
    ("MPOL_PREFERRED", 1),
    ("MPOL_BIND", 2),
    ("MPOL_INTERLEAVE", 3),
    ("MPOL_LOCAL", 4),
    ("MPOL_PREFERRED_MANY", 5),
    ("MPOL_WEIGHTED_INTERLEAVE", 6),
];

/// Mode flags (ORed into the mode argument).
const FLAGS: &[(&str, i32)] = &[
    ("MPOL_F_NUMA_BALANCING", 1 << 13),
    ("MPOL_F_RELATIVE_NODES", 1 << 14),
    ("MPOL_F_STATIC_NODES", 1 << 15),
];

/// Highest node number accepted in `nodes` (the kernel's MAX_NUMNODES is at
/// most 1024), so a hostile range cannot make us allocate a huge mask.
const MAX_NODE: usize = 4095;

/// Names accepted for `mode`, for `features` and error messages.
pub fn mode_names() -> Vec<&'static str> {
    MODES.iter().map(|(n, _)| *n).collect()
}

/// Names accepted in `flags`.
pub fn flag_names() -> Vec<&'static str> {
    FLAGS.iter().map(|(n, _)| *n).collect()
}

/// A validated policy, ready for `set_mempolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemPolicy {
    /// Mode ORed with its flags.
    pub mode: i32,
    /// Node mask, 64 nodes per word.
    pub mask: Vec<u64>,
}

/// Reads `linux.memoryPolicy` from a configuration; `None` when absent.
pub fn from_config(config: &serde_json::Value) -> Result<Option<MemPolicy>, String> {
    from_value(config.pointer("/linux/memoryPolicy"))
}

/// Reads the value of `linux.memoryPolicy`, if there is one.
pub fn from_value(value: Option<&serde_json::Value>) -> Result<Option<MemPolicy>, String> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .map_err(|e| format!("linux.memoryPolicy: {e}")),
    }
}

fn parse(v: &serde_json::Value) -> Result<MemPolicy, String> {
    let obj = v
        .as_object()
        .ok_or("invalid memory policy: expected an object with mode, nodes and flags")?;
    let mode_name = match obj.get("mode") {
        Some(serde_json::Value::String(s)) => s.as_str(),
        None => {
            return Err(format!(
                "invalid memory policy mode: mode is missing; use one of {}",
                mode_names().join(", ")
            ))
        }
        Some(other) => {
            return Err(format!(
                "invalid memory policy mode {other}: expected a string"
            ))
        }
    };
    let mode = MODES
        .iter()
        .find(|(n, _)| *n == mode_name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            format!(
                "invalid memory policy mode {mode_name:?}: use one of {}",
                mode_names().join(", ")
            )
        })?;
    let mut flags = 0;
    if let Some(list) = obj.get("flags") {
        let list = list
            .as_array()
            .ok_or("invalid memory policy flags: expected an array of strings")?;
        for f in list {
            let name = f.as_str().unwrap_or_default();
            let bit = FLAGS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    format!(
                        "invalid memory policy flag {f}: use any of {}",
                        flag_names().join(", ")
                    )
                })?;
            flags |= bit;
        }
    }
    let nodes = match obj.get("nodes") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => parse_nodes(s)?,
        Some(other) => {
            return Err(format!(
                "invalid memory policy nodes {other}: expected a string like \"0-3,7\""
            ))
        }
    };
    // MPOL_DEFAULT and MPOL_LOCAL take no nodes: the kernel would answer a
    // bare EINVAL, so say what is wrong instead.
    if matches!(mode_name, "MPOL_DEFAULT" | "MPOL_LOCAL") && !nodes.is_empty() {
        return Err(format!(
            "invalid memory policy: {mode_name} mode requires 0 nodes but got {}: remove nodes",
            nodes.len()
        ));
    }
    let mut mask = Vec::new();
    for n in nodes {
        let word = n / 64;
        if mask.len() <= word {
            mask.resize(word + 1, 0u64);
        }
        mask[word] |= 1u64 << (n % 64);
    }
    Ok(MemPolicy {
        mode: mode | flags,
        mask,
    })
}

/// Parses a node list such as `0-3,5` into sorted, distinct node numbers.
fn parse_nodes(s: &str) -> Result<Vec<usize>, String> {
    let bad = |why: &str| format!("invalid memory policy nodes {s:?}: {why}");
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: usize = lo.parse().map_err(|_| bad("expected numbers like 0-3,7"))?;
        let hi: usize = hi.parse().map_err(|_| bad("expected numbers like 0-3,7"))?;
        if lo > hi {
            return Err(bad("a range must go from low to high"));
        }
        if hi > MAX_NODE {
            return Err(bad(&format!("node numbers go up to {MAX_NODE}")));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Sets the policy of the calling thread (inherited by what it executes).
pub fn apply(p: &MemPolicy) -> Result<(), String> {
    let (ptr, maxnode) = if p.mask.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode - 1 bits.
        (p.mask.as_ptr(), p.mask.len() as libc::c_ulong * 64 + 1)
    };
    // SAFETY: `ptr` is null or points to `mask`, which holds maxnode - 1 bits
    // and outlives the call; the kernel only reads it.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, p.mode, ptr, maxnode) };
    if rc != 0 {
        return Err(format!(
            "set_mempolicy(mode {:#x}): {}: check linux.memoryPolicy against this host's NUMA nodes",
            p.mode,
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> Result<Option<MemPolicy>, String> {
        from_config(&json!({ "linux": { "memoryPolicy": v } }))
    }

    #[test]
    fn absent_is_none() {
        assert_eq!(from_config(&json!({"linux": {}})).unwrap(), None);
    }

    #[test]
    fn modes_flags_and_nodes() {
        let p = policy(
            json!({"mode": "MPOL_BIND", "nodes": "0-2,65", "flags": ["MPOL_F_STATIC_NODES"]}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.mode, 2 | (1 << 15));
        assert_eq!(p.mask, vec![0b111, 0b10]);
        let p = policy(json!({"mode": "MPOL_DEFAULT"})).unwrap().unwrap();
        assert_eq!(
            p,
            MemPolicy {
                mode: 0,
                mask: vec![]
            }
        );
    }

    #[test]
    fn errors_name_the_fault() {
        let e = policy(json!({})).unwrap_err();
        assert!(e.contains("invalid memory policy mode"), "{e}");
        let e = policy(json!({"mode": "INTERLEAVE", "nodes": "0"})).unwrap_err();
        assert!(
            e.contains("invalid memory policy mode \"INTERLEAVE\""),
            "{e}"
        );
        let e = policy(json!({"mode": "MPOL_PREFERRED", "flags": ["badflag"]})).unwrap_err();
        assert!(e.contains("invalid memory policy flag \"badflag\""), "{e}");
        let e = policy(json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"})).unwrap_err();
        assert!(e.contains("mode requires 0 nodes but got 8"), "{e}");
        let e = policy(json!({"mode": "MPOL_BIND", "nodes": "3-1"})).unwrap_err();
        assert!(e.contains("low to high"), "{e}");
        let e = policy(json!({"mode": "MPOL_BIND", "nodes": "0-99999"})).unwrap_err();
        assert!(e.contains("up to 4095"), "{e}");
        assert!(e.starts_with("linux.memoryPolicy: "), "{e}");
    }
}
