//! Docker's restart policies and the decision after an exit.

use serde::{Deserialize, Serialize};

/// `--restart no|always|unless-stopped|on-failure[:N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure {
        /// 0 means no limit.
        #[serde(default)]
        max_retries: u32,
    },
}

impl RestartPolicy {
    /// Parses Docker's spelling (`on-failure:3`, `always`, `""` = no).
    pub fn parse(s: &str) -> Result<RestartPolicy, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure {
                max_retries: match arg {
                    Some(a) => a.parse().map_err(|_| {
                        format!("restart policy {s:?}: the retry count must be a number")
                    })?,
                    None => 0,
                },
            },
            _ => {
                return Err(format!(
                    "restart policy {s:?} is not one of no, always, unless-stopped, on-failure[:N]"
                ))
            }
        };
        if arg.is_some() && !matches!(policy, RestartPolicy::OnFailure { .. }) {
            return Err(format!(
                "restart policy {s:?}: only on-failure takes a retry count"
            ));
        }
        Ok(policy)
    }

    /// Whether a container that exited with `code`, restarted `count` times
    /// so far, is started again. A container stopped on request is not.
    pub fn should_restart(&self, code: i32, count: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max_retries } => {
                code != 0 && (*max_retries == 0 || count < *max_retries)
            }
        }
    }
}

/// Docker's back-off between restarts: 100 ms doubling, at most one minute;
/// it resets after the container ran for 10 s.
pub fn backoff_ms(previous_ms: u64, ran_for_ms: u64) -> u64 {
    if ran_for_ms >= 10_000 || previous_ms == 0 {
        100
    } else {
        (previous_ms * 2).min(60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_docker_spellings() {
        assert_eq!(RestartPolicy::parse("").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("always").unwrap(),
            RestartPolicy::Always
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("always:2").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }

    #[test]
    fn decisions() {
        let of = RestartPolicy::OnFailure { max_retries: 2 };
        assert!(of.should_restart(1, 0, false));
        assert!(of.should_restart(1, 1, false));
        assert!(!of.should_restart(1, 2, false));
        assert!(!of.should_restart(0, 0, false));
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
        assert!(!RestartPolicy::No.should_restart(1, 0, false));
        assert!(RestartPolicy::OnFailure { max_retries: 0 }.should_restart(2, 1000, false));
    }

    #[test]
    fn backoff_doubles_and_resets() {
        assert_eq!(backoff_ms(0, 0), 100);
        assert_eq!(backoff_ms(100, 50), 200);
        assert_eq!(backoff_ms(40_000, 50), 60_000);
        assert_eq!(backoff_ms(800, 20_000), 100);
    }

    #[test]
    fn serde_shape() {
        let j = serde_json::to_string(&RestartPolicy::OnFailure { max_retries: 2 }).unwrap();
        assert_eq!(j, r#"{"name":"on-failure","max_retries":2}"#);
    }
}
