//! CPU and memory amounts written as Kubernetes quantities, the form Stratos's
//! `KUBERNETES_CONTAINER_CPU`/`_MEMORY` properties take (`500m`, `1.5`,
//! `512Mi`, `1G`).

use crate::Property;

/// Property names read as a cartridge's CPU limit (cores), first match wins.
pub const CPU_PROPERTIES: [&str; 2] = ["KUBERNETES_CONTAINER_CPU", "cpu"];
/// Property names read as a cartridge's memory limit (bytes).
pub const MEMORY_PROPERTIES: [&str; 2] = ["KUBERNETES_CONTAINER_MEMORY", "memory"];

/// Resources declared by a cartridge (per member) or a host (capacity).
/// `None` means not declared; Stratos's `"0"` also means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// Reads cpu and memory from `props`; the error is `(index, message)` of the
/// faulty property.
pub fn resources(props: &[Property]) -> Result<Resources, (usize, String)> {
    let mut out = Resources::default();
    for (i, p) in props.iter().enumerate() {
        if CPU_PROPERTIES.contains(&p.name.as_str()) && out.cpu_millis.is_none() {
            let v = cpu_millis(&p.value).map_err(|m| (i, m))?;
            if v > 0 && v < MIN_CPU_MILLIS {
                return Err((
                    i,
                    format!(
                        "cpu amount {:?} is below {MIN_CPU_MILLIS}m, the least a container can be limited to (the kernel's 1 ms CFS quota per 100 ms); give at least \"{MIN_CPU_MILLIS}m\", or 0 for no limit",
                        p.value
                    ),
                ));
            }
            out.cpu_millis = (v > 0).then_some(v);
        } else if MEMORY_PROPERTIES.contains(&p.name.as_str()) && out.memory_bytes.is_none() {
            let v = memory_bytes(&p.value).map_err(|m| (i, m))?;
            out.memory_bytes = (v > 0).then_some(v);
        }
    }
    Ok(out)
}

/// The least cpu a member may be given (Docker's 0.01 cpu).
pub const MIN_CPU_MILLIS: u64 = 10;

/// `"2"` → 2000, `"0.5"` → 500, `"250m"` → 250.
pub fn cpu_millis(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('m') {
        Some(n) => (n, 1.0),
        None => (t, 1000.0),
    };
    let v: f64 = num.parse().map_err(|_| {
        format!("{s:?} is not a cpu amount (cores like \"2\", \"0.5\" or \"250m\")")
    })?;
    if !v.is_finite() || v < 0.0 || v * scale > 1.0e9 {
        return Err(format!("cpu amount {s:?} is out of range"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((v * scale).round() as u64)
}

/// `"512Mi"` → 536870912, `"1G"` → 1000000000, `"1024"` → 1024 (bytes).
pub fn memory_bytes(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let t = s.trim();
    let (num, mult) = UNITS
        .iter()
        .find_map(|(u, m)| t.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((t, 1.0));
    let v: f64 = num.parse().map_err(|_| {
        format!("{s:?} is not a memory amount (bytes, or a quantity like \"512Mi\" or \"2G\")")
    })?;
    let bytes = v * mult;
    if !bytes.is_finite() || !(0.0..=1.0e19).contains(&bytes) {
        return Err(format!("memory amount {s:?} is out of range"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(cpu_millis("2"), Ok(2000));
        assert_eq!(cpu_millis("0.5"), Ok(500));
        assert_eq!(cpu_millis("250m"), Ok(250));
        assert!(cpu_millis("two").unwrap_err().contains("not a cpu amount"));
        assert!(cpu_millis("-1").unwrap_err().contains("out of range"));
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(memory_bytes("512Mi"), Ok(512 * 1024 * 1024));
        assert_eq!(memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(memory_bytes("1024"), Ok(1024));
        assert!(memory_bytes("lots")
            .unwrap_err()
            .contains("not a memory amount"));
        assert!(memory_bytes("99999E").unwrap_err().contains("out of range"));
    }

    #[test]
    fn resources_from_properties_and_zero_means_unset() {
        let p = |n: &str, v: &str| Property {
            name: n.into(),
            value: v.into(),
        };
        let r = resources(&[p("KUBERNETES_CONTAINER_CPU", "0"), p("memory", "256Mi")]).unwrap();
        assert_eq!(
            r,
            Resources {
                cpu_millis: None,
                memory_bytes: Some(256 << 20)
            }
        );
        assert_eq!(resources(&[p("x", "y"), p("cpu", "z")]).unwrap_err().0, 1);
        // Below what the kernel can enforce: refused, naming the fix.
        let (i, why) = resources(&[p("memory", "16Mi"), p("cpu", "5m")]).unwrap_err();
        assert_eq!(i, 1);
        assert!(
            why.contains("below 10m") && why.contains("\"10m\""),
            "{why}"
        );
        assert_eq!(resources(&[p("cpu", "10m")]).unwrap().cpu_millis, Some(10));
    }
}
