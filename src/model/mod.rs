//! Core data types shared by every module: labels, samples, timestamps,
//! matchers and durations. Depends on std and `regex` only.

mod alert;
mod base64;
mod bytes;
mod duration;
mod fsutil;
mod gojson;
mod hash;
pub mod histogram;
mod labels;
mod matcher;
mod prefetch;
pub mod records;
mod time;

pub use alert::{Alert, AlertSink};
pub use base64::{base64_decode, base64_encode};
pub use bytes::{ByteReader, put_signed_varint, put_varint};
pub use duration::{DurationError, MAX_DURATION, format_duration, parse_duration};
pub use fsutil::{PacedFile, sync_dir, write_atomic};
pub use gojson::go_json_escape;
pub use hash::{FastHasher, FastMap, FastSet};
pub use labels::{
    Fnv64, Label, Labels, LabelsBuilder, METRIC_NAME, escape_label_value, is_legacy_label_name,
    is_legacy_metric_name,
};
pub use matcher::{MatchOp, Matcher, MatcherError, anchored_regex};
pub use prefetch::prefetch;
pub use records::RecordDamage;
pub use time::{civil_from_days, format_rfc3339, format_rfc3339_millis, parse_rfc3339};

/// Milliseconds since the Unix epoch, as Prometheus stores time.
pub type Timestamp = i64;

/// The bit pattern Prometheus uses to mark a series stale: a NaN that no
/// arithmetic produces, so it survives storage and is told apart from a
/// scraped NaN.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale marker as an `f64`.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True if `v` is the stale marker (not merely any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Timestamp in milliseconds.
    pub t: Timestamp,
    /// Value; may be the stale marker.
    pub v: f64,
}

/// One step of Neumaier-compensated summation, as Prometheus sums floats:
/// returns the new sum and compensation.
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's float comparison with relative tolerance `eps`: NaN equals
/// NaN, the stale marker only equals itself, and values near zero compare
/// against the smallest normal float.
pub fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let min_normal = f64::from_bits(0x0010_0000_0000_0000);
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < min_normal {
        return diff < eps * min_normal;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Current wall-clock time in milliseconds.
pub fn now_millis() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats a float as Prometheus does in JSON and exposition output.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Go's strconv.FormatFloat(v, 'f', -1, 64) for ordinary magnitudes and
        // exponent form for very large/small ones.
        let a = v.abs();
        if a != 0.0 && !(1e-4..1e21).contains(&a) {
            let s = format!("{v:e}");
            // Rust prints 1e21, Go prints 1e+21.
            match s.split_once('e') {
                Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
                Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
                None => s,
            }
        } else {
            format!("{v}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_print_like_prometheus() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(86400 * 8)), "1w1d");
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(1e21), "1e+21");
        assert_eq!(format_float(1.5e-7), "1.5e-07");
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }
}

/// Wall-clock source for sample timestamps. Scheduling uses tokio's time
/// (pausable in tests); timestamps come from here so tests can pin them.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> Timestamp {
        now_millis()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(t))
    }
    /// Sets the time.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t, std::sync::atomic::Ordering::SeqCst);
    }
    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> Timestamp {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
