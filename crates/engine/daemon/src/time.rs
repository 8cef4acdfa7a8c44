//! RFC 3339 timestamps and Docker's human durations, without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// Docker's "never" time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Now as Unix seconds with a fraction.
pub fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub use strato_image::time::{format, parse_rfc3339_nanos as parse_rfc3339};

/// Unix seconds (with fraction) of an RFC 3339 timestamp.
pub fn parse_f64(s: &str) -> Option<f64> {
    parse_rfc3339(s).map(|(s, n)| s as f64 + f64::from(n) / 1e9)
}

/// Unix seconds of an RFC 3339 timestamp (0 when unparsable).
pub fn unix(s: &str) -> i64 {
    parse_rfc3339(s).map(|(s, _)| s).unwrap_or(0)
}

/// Docker's `units.HumanDuration`: `Less than a second`, `3 seconds`,
/// `About a minute`, `5 minutes`, `About an hour`, `3 hours`, `2 days`…
pub fn human_duration(secs: f64) -> String {
    strato_image::time::human_duration(secs.max(0.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2023-05-19T20:14:23.5Z"),
            Some((1_684_527_263, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2023-05-19T22:14:23+02:00"),
            Some((1_684_527_263, 0))
        );
        assert_eq!(format(1_684_527_263, 7), "2023-05-19T20:14:23.000000007Z");
        assert_eq!(parse_rfc3339("nope"), None);
        assert_eq!(parse_rfc3339("2023-05-19T20:14:23.5"), None);
    }

    #[test]
    fn human_durations_like_docker() {
        assert_eq!(human_duration(0.2), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(3.7), "3 seconds");
        assert_eq!(human_duration(65.0), "About a minute");
        assert_eq!(human_duration(600.0), "10 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(5.0 * 3600.0), "5 hours");
        assert_eq!(human_duration(3.0 * 86400.0), "3 days");
    }
}
