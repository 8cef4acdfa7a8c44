//! Health checks (`HEALTHCHECK`, `docker run --health-*`): the probe a
//! container runs, and the state machine of its results (dockerd's rules).
//! No I/O: the backend runs the probes (as execs) and feeds the results in.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};
use strato_api::types::HealthConfig;

/// dockerd's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Results kept in `State.Health.Log`.
const LOG_ENTRIES: usize = 5;
/// Bytes of a probe's output kept.
pub const MAX_OUTPUT: usize = 4096;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// What to run, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The command (`CMD-SHELL x` becomes `/bin/sh -c x`).
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

impl Probe {
    /// The wait before the next probe: `start_interval` while in the start
    /// period (when one is set), else `interval`.
    pub fn next_wait(&self, in_start_period: bool, start_interval_set: bool) -> Duration {
        if in_start_period && start_interval_set {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// The health check config of a container: its own fields over the image's
/// (`HEALTHCHECK`), as dockerd merges them at create.
pub fn merged(
    container: Option<&HealthConfig>,
    image: Option<&HealthConfig>,
) -> Option<HealthConfig> {
    match (container, image) {
        (None, None) => None,
        (Some(c), None) => Some(c.clone()),
        (None, Some(i)) => Some(i.clone()),
        (Some(c), Some(i)) => {
            let mut m = c.clone();
            if m.test.as_ref().is_none_or(|t| t.is_empty()) {
                m.test = i.test.clone();
            }
            for (to, from) in [
                (&mut m.interval, i.interval),
                (&mut m.timeout, i.timeout),
                (&mut m.start_period, i.start_period),
                (&mut m.start_interval, i.start_interval),
                (&mut m.retries, i.retries),
            ] {
                if *to == 0 {
                    *to = from;
                }
            }
            Some(m)
        }
    }
}

/// The probe of a health check config; `None` when there is none to run
/// (no test, `NONE`).
pub fn probe(h: &HealthConfig) -> Option<Probe> {
    let test = h.test.as_ref()?;
    let cmd = match test.first().map(String::as_str) {
        Some("CMD") if test.len() > 1 => test[1..].to_vec(),
        Some("CMD-SHELL") if test.len() > 1 => {
            vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]
        }
        _ => return None,
    };
    let dur = |ns: i64, default: Duration| {
        if ns > 0 {
            Duration::from_nanos(ns as u64)
        } else {
            default
        }
    };
    Some(Probe {
        cmd,
        interval: dur(h.interval, DEFAULT_INTERVAL),
        timeout: dur(h.timeout, DEFAULT_TIMEOUT),
        start_period: dur(h.start_period, Duration::ZERO),
        start_interval: dur(h.start_interval, DEFAULT_START_INTERVAL),
        retries: if h.retries > 0 {
            h.retries
        } else {
            DEFAULT_RETRIES
        },
    })
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// RFC 3339.
    pub start: String,
    pub end: String,
    /// -1 when the probe timed out or could not run.
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health` of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    pub status: &'static str,
    pub failing_streak: i64,
    pub log: VecDeque<ProbeResult>,
}

impl Default for HealthState {
    fn default() -> Self {
        HealthState {
            status: STARTING,
            failing_streak: 0,
            log: VecDeque::new(),
        }
    }
}

impl HealthState {
    /// Takes a result in; returns whether the status changed. A failure in
    /// the start period, while still `starting`, does not count.
    pub fn record(&mut self, r: ProbeResult, retries: i64, in_start_period: bool) -> bool {
        let before = self.status;
        let ok = r.exit_code == 0;
        if self.log.len() == LOG_ENTRIES {
            self.log.pop_front();
        }
        self.log.push_back(r);
        if ok {
            self.failing_streak = 0;
            self.status = HEALTHY;
        } else if !(in_start_period && self.status == STARTING) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = UNHEALTHY;
            }
        }
        before != self.status
    }

    /// As the API shows it.
    pub fn api(&self) -> strato_api::types::Health {
        strato_api::types::Health {
            status: self.status.to_string(),
            failing_streak: self.failing_streak,
            log: self
                .log
                .iter()
                .map(|r| -> Value {
                    json!({"Start": r.start, "End": r.end, "ExitCode": r.exit_code, "Output": r.output})
                })
                .collect(),
        }
    }
}

/// A health config from an image config's `Healthcheck` JSON.
pub fn from_json(v: &Value) -> Option<HealthConfig> {
    serde_json::from_value(v.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(code: i64) -> ProbeResult {
        ProbeResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn probes_from_configs() {
        let h = |t: &[&str]| HealthConfig {
            test: Some(t.iter().map(|s| s.to_string()).collect()),
            interval: 1_000_000_000,
            ..Default::default()
        };
        let p = probe(&h(&["CMD-SHELL", "echo hi"])).unwrap();
        assert_eq!(p.cmd, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(p.interval, Duration::from_secs(1));
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        assert_eq!(p.retries, 3);
        assert_eq!(probe(&h(&["CMD", "true"])).unwrap().cmd, ["true"]);
        assert_eq!(probe(&h(&["NONE"])), None);
        assert_eq!(probe(&h(&[])), None);
        assert_eq!(probe(&HealthConfig::default()), None);
    }

    #[test]
    fn the_container_overrides_the_image_field_by_field() {
        let image = HealthConfig {
            test: Some(vec!["CMD".into(), "img".into()]),
            interval: 5,
            retries: 7,
            ..Default::default()
        };
        let container = HealthConfig {
            interval: 9,
            ..Default::default()
        };
        let m = merged(Some(&container), Some(&image)).unwrap();
        assert_eq!(m.test, image.test);
        assert_eq!((m.interval, m.retries), (9, 7));
        assert_eq!(merged(None, None), None);
    }

    #[test]
    fn statuses_follow_dockerds_rules() {
        let mut s = HealthState::default();
        // A failure in the start period does not count.
        assert!(!s.record(res(1), 1, true));
        assert_eq!((s.status, s.failing_streak), (STARTING, 0));
        assert!(s.record(res(0), 1, true));
        assert_eq!(s.status, HEALTHY);
        // After the start period: retries failures in a row.
        assert!(!s.record(res(1), 2, false));
        assert_eq!((s.status, s.failing_streak), (HEALTHY, 1));
        assert!(s.record(res(-1), 2, false));
        assert_eq!((s.status, s.failing_streak), (UNHEALTHY, 2));
        // Once healthy, failures in the start period count.
        let mut s = HealthState::default();
        s.record(res(0), 1, true);
        assert!(s.record(res(1), 1, true));
        assert_eq!(s.status, UNHEALTHY);
        // The log keeps the last five.
        for _ in 0..7 {
            s.record(res(0), 1, false);
        }
        assert_eq!(s.log.len(), LOG_ENTRIES);
        assert_eq!(s.api().log.len(), LOG_ENTRIES);
    }
}
