//! Value types of the config: Prometheus durations, byte sizes and secrets.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the Prometheus way (`15s`, `1h30m`, `1y` = 365d).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    /// From seconds.
    pub const fn secs(s: u64) -> Self {
        PromDuration(Duration::from_secs(s))
    }
    /// Milliseconds.
    pub fn as_millis(&self) -> i64 {
        self.0.as_millis() as i64
    }
}

/// Parses a Prometheus duration string with [`crate::model::parse_duration`],
/// the one duration parser, keeping its Prometheus wording.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    // A file takes Prometheus's syntax only (`0`, or numbers each with a
    // unit): the bare seconds the query API takes are refused, as
    // Prometheus refuses them in its files.
    let units = s.starts_with(|c: char| c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric());
    if s != "0" && !units {
        return Err(format!("not a valid duration string: {s:?}"));
    }
    crate::model::parse_duration(s).map_err(|e| e.to_string())
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A null is Go's zero duration; the places where Prometheus reads
        // zero as "unset" do the same with it.
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Ok(PromDuration(Duration::ZERO));
        };
        parse_duration(&s)
            .map(PromDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::model::format_duration(self.0))
    }
}

/// A size in bytes written as Prometheus does (`10MB`, `512KiB`, base 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ByteSize(pub u64);

/// Parses `10MB`, `1GiB`, `512` (bytes). KB/MB/… are base 2, as in Prometheus.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mul: u64 = match unit {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        "PB" | "PiB" => 1 << 50,
        "EB" | "EiB" => 1 << 60,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(ByteSize(0)),
            Some(Raw::N(n)) => Ok(ByteSize(n)),
            Some(Raw::S(s)) => parse_bytes(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        let text = if n == 0 {
            "0B".to_string()
        } else {
            let units = [
                ("EB", 60),
                ("PB", 50),
                ("TB", 40),
                ("GB", 30),
                ("MB", 20),
                ("KB", 10),
            ];
            units
                .iter()
                .find(|(_, sh)| n % (1u64 << sh) == 0)
                .map(|(u, sh)| format!("{}{u}", n >> sh))
                .unwrap_or_else(|| format!("{n}B"))
        };
        s.serialize_str(&text)
    }
}

/// A secret string: never printed, serialized as `<secret>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("10MB").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("1KiB").unwrap(), 1024);
        assert_eq!(parse_bytes("77").unwrap(), 77);
        assert!(parse_bytes("1XB").is_err());
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("1y").unwrap(),
            Duration::from_secs(365 * 86400)
        );
        assert!(parse_duration("5 s").is_err());
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<secret>");
    }
}
