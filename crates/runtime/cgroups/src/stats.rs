//! Resource usage, shaped like the `data` of runc's `events --stats`.
//!
//! Collection is written against a "read this control file" closure so the
//! same code serves the host and unit tests. A missing or unparsable file
//! yields zeros, never an error: not every kernel has every file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Usage of one container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: CpuStats,
    /// Memory usage and limits.
    pub memory: MemoryStats,
    /// Process counts.
    pub pids: PidsStats,
}

/// CPU statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Time spent on CPUs.
    pub usage: CpuUsage,
    /// CFS bandwidth throttling.
    pub throttling: Throttling,
}

/// CPU time, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Total CPU time.
    pub total: u64,
    /// Total per CPU (v1 only; empty on v2).
    pub percpu: Vec<u64>,
    /// Time in kernel mode.
    pub kernel: u64,
    /// Time in user mode.
    pub user: u64,
}

/// CFS bandwidth throttling counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttling {
    /// Enforcement periods that elapsed.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Total time throttled, in nanoseconds.
    pub throttled_time: u64,
}

/// Memory statistics, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Page cache (`cache` on v1, `file` on v2, from memory.stat).
    pub cache: u64,
    /// Memory usage.
    pub usage: MemoryEntry,
    /// Memory plus swap, as v1's `memsw` reports it (v2 values are summed to
    /// match, like runc does).
    pub swap: MemoryEntry,
    /// Every counter of memory.stat.
    pub stats: BTreeMap<String, u64>,
}

/// One memory counter with its limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// Current usage.
    pub usage: u64,
    /// Peak usage (0 if the kernel does not report it).
    pub max: u64,
    /// Limit (`u64::MAX`-like huge values mean unlimited).
    pub limit: u64,
    /// How many times the limit was hit.
    pub failcnt: u64,
}

/// Process counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Processes and threads in the cgroup.
    pub current: u64,
    /// The limit; 0 means unlimited.
    pub limit: u64,
}

/// Parses a single number; `max` is `u64::MAX`.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events).
pub(crate) fn parse_keyed(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(' ')?;
            Some((k.to_owned(), parse_u64(v)?))
        })
        .collect()
}

/// Parses a space separated list of numbers (cpuacct.usage_percpu).
fn parse_list(s: &str) -> Vec<u64> {
    s.split_whitespace().filter_map(parse_u64).collect()
}

/// Collects v1 stats. `read(controller, file)` returns the file's content in
/// the hierarchy holding `controller`, or `None`. `clk_tck` is the USER_HZ
/// used by cpuacct.stat.
pub(crate) fn collect_v1(read: &dyn Fn(&str, &str) -> Option<String>, clk_tck: u64) -> Stats {
    let num = |c: &str, f: &str| read(c, f).and_then(|s| parse_u64(&s)).unwrap_or(0);
    let keyed = |c: &str, f: &str| read(c, f).map(|s| parse_keyed(&s)).unwrap_or_default();

    let mut usage = CpuUsage {
        total: num("cpuacct", "cpuacct.usage"),
        percpu: read("cpuacct", "cpuacct.usage_percpu")
            .map(|s| parse_list(&s))
            .unwrap_or_default(),
        kernel: 0,
        user: 0,
    };
    match (
        read("cpuacct", "cpuacct.usage_sys").and_then(|s| parse_u64(&s)),
        read("cpuacct", "cpuacct.usage_user").and_then(|s| parse_u64(&s)),
    ) {
        (Some(sys), Some(user)) => {
            usage.kernel = sys;
            usage.user = user;
        }
        _ => {
            let ticks = keyed("cpuacct", "cpuacct.stat");
            let ns_per_tick = 1_000_000_000 / clk_tck.max(1);
            usage.kernel = ticks.get("system").copied().unwrap_or(0) * ns_per_tick;
            usage.user = ticks.get("user").copied().unwrap_or(0) * ns_per_tick;
        }
    }
    let cpu_stat = keyed("cpu", "cpu.stat");
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let throttling = Throttling {
        periods: get(&cpu_stat, "nr_periods"),
        throttled_periods: get(&cpu_stat, "nr_throttled"),
        throttled_time: get(&cpu_stat, "throttled_time"),
    };

    let entry = |prefix: &str| MemoryEntry {
        usage: num("memory", &format!("{prefix}.usage_in_bytes")),
        max: num("memory", &format!("{prefix}.max_usage_in_bytes")),
        limit: num("memory", &format!("{prefix}.limit_in_bytes")),
        failcnt: num("memory", &format!("{prefix}.failcnt")),
    };
    let stats = keyed("memory", "memory.stat");
    let memory = MemoryStats {
        cache: get(&stats, "cache"),
        usage: entry("memory"),
        swap: entry("memory.memsw"),
        stats,
    };

    Stats {
        cpu: CpuStats { usage, throttling },
        memory,
        pids: pids_stats(&|f| read("pids", f)),
    }
}

/// Collects v2 stats; `read(file)` reads a file of the container's cgroup.
pub(crate) fn collect_v2(read: &dyn Fn(&str) -> Option<String>) -> Stats {
    let num = |f: &str| read(f).and_then(|s| parse_u64(&s)).unwrap_or(0);
    let keyed = |f: &str| read(f).map(|s| parse_keyed(&s)).unwrap_or_default();
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);

    let cpu_stat = keyed("cpu.stat");
    let us = |k: &str| get(&cpu_stat, k).saturating_mul(1000);
    let cpu = CpuStats {
        usage: CpuUsage {
            total: us("usage_usec"),
            percpu: Vec::new(),
            kernel: us("system_usec"),
            user: us("user_usec"),
        },
        throttling: Throttling {
            periods: get(&cpu_stat, "nr_periods"),
            throttled_periods: get(&cpu_stat, "nr_throttled"),
            throttled_time: us("throttled_usec"),
        },
    };

    let usage = MemoryEntry {
        usage: num("memory.current"),
        max: num("memory.peak"),
        limit: num("memory.max"),
        failcnt: get(&keyed("memory.events"), "max"),
    };
    let swap = MemoryEntry {
        usage: num("memory.swap.current").saturating_add(usage.usage),
        max: num("memory.swap.peak").saturating_add(usage.max),
        limit: num("memory.swap.max").saturating_add(usage.limit),
        failcnt: get(&keyed("memory.swap.events"), "max"),
    };
    let stats = keyed("memory.stat");
    let memory = MemoryStats {
        cache: get(&stats, "file"),
        usage,
        swap,
        stats,
    };

    Stats {
        cpu,
        memory,
        pids: pids_stats(read),
    }
}

fn pids_stats(read: &dyn Fn(&str) -> Option<String>) -> PidsStats {
    PidsStats {
        current: read("pids.current")
            .and_then(|s| parse_u64(&s))
            .unwrap_or(0),
        limit: match read("pids.max").and_then(|s| parse_u64(&s)) {
            Some(u64::MAX) | None => 0,
            Some(n) => n,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn v1_files() -> HashMap<(&'static str, &'static str), &'static str> {
        HashMap::from([
            (("cpuacct", "cpuacct.usage"), "5000\n"),
            (("cpuacct", "cpuacct.usage_percpu"), "3000 2000 \n"),
            (("cpuacct", "cpuacct.stat"), "user 3\nsystem 1\n"),
            (
                ("cpu", "cpu.stat"),
                "nr_periods 10\nnr_throttled 4\nthrottled_time 777\n",
            ),
            (("memory", "memory.usage_in_bytes"), "4096\n"),
            (("memory", "memory.max_usage_in_bytes"), "8192\n"),
            (("memory", "memory.limit_in_bytes"), "9223372036854771712\n"),
            (("memory", "memory.failcnt"), "2\n"),
            (("memory", "memory.memsw.usage_in_bytes"), "5000\n"),
            (("memory", "memory.stat"), "cache 100\nrss 200\nbogus\n"),
            (("pids", "pids.current"), "3\n"),
            (("pids", "pids.max"), "max\n"),
        ])
    }

    #[test]
    fn v1_collects_every_counter() {
        let files = v1_files();
        let read = |c: &str, f: &str| {
            files
                .iter()
                .find(|((fc, ff), _)| *fc == c && *ff == f)
                .map(|(_, v)| v.to_string())
        };
        let s = collect_v1(&read, 100);
        assert_eq!(s.cpu.usage.total, 5000);
        assert_eq!(s.cpu.usage.percpu, [3000, 2000]);
        assert_eq!(s.cpu.usage.user, 30_000_000);
        assert_eq!(s.cpu.usage.kernel, 10_000_000);
        assert_eq!(s.cpu.throttling.periods, 10);
        assert_eq!(s.cpu.throttling.throttled_periods, 4);
        assert_eq!(s.cpu.throttling.throttled_time, 777);
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.max, 8192);
        assert_eq!(s.memory.usage.limit, 9_223_372_036_854_771_712);
        assert_eq!(s.memory.usage.failcnt, 2);
        assert_eq!(s.memory.swap.usage, 5000);
        assert_eq!(s.memory.cache, 100);
        assert_eq!(s.memory.stats.get("rss"), Some(&200));
        assert_eq!(s.memory.stats.len(), 2);
        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, 0);
    }

    #[test]
    fn v1_prefers_nanosecond_user_and_sys_files() {
        let read = |_: &str, f: &str| match f {
            "cpuacct.usage_sys" => Some("11".to_owned()),
            "cpuacct.usage_user" => Some("22".to_owned()),
            "cpuacct.stat" => Some("user 3\nsystem 1\n".to_owned()),
            _ => None,
        };
        let s = collect_v1(&read, 100);
        assert_eq!((s.cpu.usage.kernel, s.cpu.usage.user), (11, 22));
    }

    #[test]
    fn missing_files_are_zeros() {
        assert_eq!(collect_v1(&|_, _| None, 100), Stats::default());
        assert_eq!(collect_v2(&|_| None), Stats::default());
        let garbage = |_: &str| Some("not a number".to_owned());
        assert_eq!(collect_v2(&garbage).memory.usage.usage, 0);
    }

    #[test]
    fn v2_collects_and_converts_microseconds() {
        let read = |f: &str| {
            Some(
                match f {
                    "cpu.stat" => "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 5\nnr_throttled 1\nthrottled_usec 2\n",
                    "memory.current" => "1000\n",
                    "memory.peak" => "2000\n",
                    "memory.max" => "max\n",
                    "memory.events" => "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n",
                    "memory.swap.current" => "24\n",
                    "memory.swap.max" => "4096\n",
                    "memory.stat" => "anon 10\nfile 20\n",
                    "pids.current" => "2\n",
                    "pids.max" => "50\n",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let s = collect_v2(&read);
        assert_eq!(s.cpu.usage.total, 10_000);
        assert_eq!(s.cpu.usage.user, 6_000);
        assert_eq!(s.cpu.usage.kernel, 4_000);
        assert!(s.cpu.usage.percpu.is_empty());
        assert_eq!(s.cpu.throttling.throttled_time, 2_000);
        assert_eq!(s.memory.usage.usage, 1000);
        assert_eq!(s.memory.usage.max, 2000);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.failcnt, 7);
        assert_eq!(s.memory.swap.usage, 1024);
        assert_eq!(s.memory.swap.limit, u64::MAX);
        assert_eq!(s.memory.cache, 20);
        assert_eq!(s.pids.limit, 50);
        assert_eq!(s.pids.current, 2);
    }

    #[test]
    fn serializes_like_runc_stats() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        for p in [
            "/cpu/usage/total",
            "/cpu/usage/percpu",
            "/cpu/usage/kernel",
            "/cpu/usage/user",
            "/cpu/throttling/periods",
            "/cpu/throttling/throttled_periods",
            "/cpu/throttling/throttled_time",
            "/memory/usage/usage",
            "/memory/usage/max",
            "/memory/usage/limit",
            "/memory/usage/failcnt",
            "/memory/stats",
            "/pids/current",
            "/pids/limit",
        ] {
            assert!(v.pointer(p).is_some(), "missing {p} in {v}");
        }
    }
}
