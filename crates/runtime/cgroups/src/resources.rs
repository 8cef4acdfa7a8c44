//! Pure conversions from OCI resource values to cgroup file contents.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{Error, Result};

/// The CFS period the kernel uses when none is given (100 ms).
pub const CPU_PERIOD_DEFAULT_US: u64 = 100_000;

/// Converts v1 `cpu.shares` (2..=262144) to v2 `cpu.weight` (1..=10000) the
/// way runc does: `1 + ((shares - 2) * 9999) / 262142`.
///
/// `0` means "unset" and maps to `0`; out-of-range shares are clamped first.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Converts the OCI `memory.swap` (memory + swap, as on v1) to the v2
/// `memory.swap.max` value (swap alone), following runc.
///
/// `swap` and `memory` use the OCI encoding (`0` unset, `-1` unlimited).
/// Returns `None` when nothing is to be written and `Some(-1)` for `max`.
/// An unlimited memory limit with unset swap makes swap unlimited too.
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<Option<i64>> {
    if memory == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    match swap {
        0 => return Ok(None),
        -1 => return Ok(Some(-1)),
        _ => {}
    }
    if memory == 0 || memory == -1 {
        return Err(Error::InvalidResources(format!(
            "memory.swap {swap} needs a memory.limit as well"
        )));
    }
    if memory < 0 || swap < 0 {
        return Err(Error::InvalidResources(format!(
            "memory.limit {memory} and memory.swap {swap} must be positive or -1"
        )));
    }
    if swap < memory {
        return Err(Error::InvalidResources(format!(
            "memory.swap {swap} (memory+swap) is below memory.limit {memory}"
        )));
    }
    Ok(Some(swap - memory))
}

/// Formats a v2 limit: negative values are `max`.
pub(crate) fn v2_limit(value: i64) -> String {
    if value < 0 {
        "max".to_owned()
    } else {
        value.to_string()
    }
}

/// The `cpu.max` line for a quota and period, or `None` when neither is set.
///
/// A missing or non-positive quota is `max`; a missing period is the kernel
/// default of 100000 µs.
pub fn cpu_max_value(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.filter(|q| *q != 0);
    let period = period.filter(|p| *p != 0);
    if quota.is_none() && period.is_none() {
        return None;
    }
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".to_owned(),
    };
    Some(format!("{q} {}", period.unwrap_or(CPU_PERIOD_DEFAULT_US)))
}

/// Formats a device rule for v1 `devices.allow` / `devices.deny`, e.g.
/// `c 1:3 rwm`. A missing or negative major/minor is the wildcard `*`, a
/// missing type is `a` (all) and missing access is `rwm`.
pub fn device_rule(rule: &LinuxDeviceCgroup) -> String {
    let typ = rule.typ().unwrap_or(LinuxDeviceType::A);
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_owned(),
    };
    let access = rule
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    format!(
        "{} {}:{} {}",
        typ.as_str(),
        num(rule.major()),
        num(rule.minor()),
        access
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // Clamped rather than overflowing or exceeding the v2 range.
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }

    #[test]
    fn swap_conversion_follows_runc() {
        assert_eq!(swap_to_v2(0, -1).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(0, 100).unwrap(), None);
        assert_eq!(swap_to_v2(0, 0).unwrap(), None);
        assert_eq!(swap_to_v2(-1, 100).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(-1, 0).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(300, 100).unwrap(), Some(200));
        // Swap equal to the limit means "no swap": 0 must still be written.
        assert_eq!(swap_to_v2(100, 100).unwrap(), Some(0));
        assert!(swap_to_v2(-7, 100).is_err());
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
        assert!(swap_to_v2(50, -1).is_err());
        assert!(swap_to_v2(50, -5).is_err());
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(cpu_max_value(None, None), None);
        assert_eq!(cpu_max_value(Some(0), Some(0)), None);
        assert_eq!(
            cpu_max_value(Some(50_000), Some(100_000)).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(
            cpu_max_value(Some(20_000), None).as_deref(),
            Some("20000 100000")
        );
        assert_eq!(cpu_max_value(Some(-1), None).as_deref(), Some("max 100000"));
        assert_eq!(
            cpu_max_value(None, Some(250_000)).as_deref(),
            Some("max 250000")
        );
    }

    #[test]
    fn v2_limits() {
        assert_eq!(v2_limit(-1), "max");
        assert_eq!(v2_limit(4096), "4096");
    }

    fn rule(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn device_rules() {
        assert_eq!(
            device_rule(&rule(
                r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#
            )),
            "c 1:3 rwm"
        );
        assert_eq!(
            device_rule(&rule(
                r#"{"allow":true,"type":"c","major":136,"access":"rw"}"#
            )),
            "c 136:* rw"
        );
        assert_eq!(device_rule(&rule(r#"{"allow":false}"#)), "a *:* rwm");
        assert_eq!(
            device_rule(&rule(
                r#"{"allow":true,"type":"b","major":-1,"minor":-1,"access":""}"#
            )),
            "b *:* rwm"
        );
    }
}
