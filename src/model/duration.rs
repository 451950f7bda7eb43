//! Prometheus durations: the one parser of them, used by every loader (YAML
//! configs, rule and test files, SLO specs), the HTTP API's duration
//! parameters, templates and the PromQL pre-check, so that all of them
//! refuse the same inputs with the same words.

use std::time::Duration;

/// The longest duration argus accepts: Go's `time.Duration` holds at most
/// 2^63-1 nanoseconds (about 292 years), so Prometheus refuses anything
/// longer, and every millisecond sum argus does with such durations stays
/// far from `i64` overflow.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// Why a duration string was refused, worded as Prometheus words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("empty duration string")]
    Empty,
    /// Not `<number><unit>...` with units from largest to smallest, and not
    /// a non-negative finite number of seconds.
    #[error("not a valid duration string: {0:?}")]
    Invalid(String),
    /// A unit Prometheus does not know.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Longer than [`MAX_DURATION`].
    #[error("duration out of range")]
    OutOfRange,
}

/// Units from largest to smallest with their length in milliseconds; a
/// duration names each at most once, in this order.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Formats a duration the way Prometheus prints one (`1h30m`, `15s`, `0s`).
pub fn format_duration(d: std::time::Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&(ms / size).to_string());
            out.push_str(unit);
            ms %= size;
        }
    }
    out
}

/// Parses a Prometheus duration (`1h30m`, `15s`, `0`, `0s`) or, as
/// argus has always also accepted, a non-negative number of seconds
/// (`15`, `0.5`). Negative, NaN, infinite and overlong values are refused.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    if !bytes[0].is_ascii_digit() || bytes.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        return parse_seconds(s);
    }
    let max_ms = MAX_DURATION.as_millis() as u64;
    let mut total: u64 = 0;
    let mut next_unit = 0usize;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return parse_seconds(s);
        }
        let letters = rest[digits..]
            .bytes()
            .take_while(|b| !b.is_ascii_digit())
            .count();
        if letters == 0 {
            return Err(DurationError::Invalid(s.to_string()));
        }
        let unit = &rest[digits..digits + letters];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            if unit.contains(['.', 'e', 'E', '-', '+']) {
                return parse_seconds(s);
            }
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
                input: s.to_string(),
            });
        };
        if pos < next_unit {
            return Err(DurationError::Invalid(s.to_string()));
        }
        next_unit = pos + 1;
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::OutOfRange)?;
        total = n
            .checked_mul(UNITS[pos].1)
            .and_then(|ms| total.checked_add(ms))
            .filter(|t| *t <= max_ms)
            .ok_or(DurationError::OutOfRange)?;
        rest = &rest[digits + letters..];
    }
    Ok(Duration::from_millis(total))
}

/// A number of seconds: finite, not negative, not longer than
/// [`MAX_DURATION`]; rounded to the millisecond as Prometheus stores it.
fn parse_seconds(s: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(s.to_string());
    // Rust's float parser takes "inf", "nan" and a leading '+'; a duration
    // is digits with an optional fraction and exponent only.
    if !s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(invalid());
    }
    let f: f64 = s.parse().map_err(|_| invalid())?;
    if !f.is_finite() || f < 0.0 {
        return Err(invalid());
    }
    let ms = (f * 1000.0).round();
    if ms > MAX_DURATION.as_millis() as f64 {
        return Err(DurationError::OutOfRange);
    }
    Ok(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations_parse() {
        let ok = [
            ("0", 0),
            ("0s", 0),
            ("0m", 0),
            ("15s", 15_000),
            ("1h30m", 5_400_000),
            ("1y", 365 * 86_400_000),
            ("2w1d", 15 * 86_400_000),
            ("1s500ms", 1_500),
            ("15", 15_000),
            ("0.5", 500),
            ("1e3", 1_000_000),
            ("292y", 292 * 365 * 86_400_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
    }

    #[test]
    fn hostile_durations_are_refused_in_prometheus_words() {
        for s in [
            "-1", "-0", "NaN", "nan", "inf", "+Inf", "1e309", "-1s", "+5m",
        ] {
            let e = parse_duration(s).expect_err(s);
            assert!(
                matches!(e, DurationError::Invalid(_) | DurationError::OutOfRange),
                "{s}: {e}"
            );
        }
        assert_eq!(
            parse_duration("-1").unwrap_err().to_string(),
            "not a valid duration string: \"-1\""
        );
        assert_eq!(parse_duration("1e300"), Err(DurationError::OutOfRange));
        assert_eq!(parse_duration("293y"), Err(DurationError::OutOfRange));
        assert_eq!(
            parse_duration("99999999999999999999999s"),
            Err(DurationError::OutOfRange)
        );
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("1m1h"),
            Err(DurationError::Invalid("1m1h".into()))
        );
        assert_eq!(
            parse_duration("1s1s"),
            Err(DurationError::Invalid("1s1s".into()))
        );
        assert_eq!(
            parse_duration("5x"),
            Err(DurationError::UnknownUnit {
                unit: "x".into(),
                input: "5x".into()
            })
        );
        assert_eq!(
            parse_duration("5m3"),
            Err(DurationError::Invalid("5m3".into()))
        );
    }
}
