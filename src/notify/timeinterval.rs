//! Alertmanager's time intervals: named sets of periods (times of day,
//! weekdays, days of the month, months, years, in a time zone) that routes
//! use to mute notifications (`mute_time_intervals`) or to allow them only
//! within (`active_time_intervals`). Checked as Alertmanager checks them;
//! evaluated with the IANA zone database bundled in the binary.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One period: every field that is set must match; unset fields match
/// everything.
#[derive(Clone, Debug)]
pub struct TimeInterval {
    /// Minutes of the day, `[start, end)`.
    times: Option<Vec<(u32, u32)>>,
    /// Weekdays, 0 = Sunday, inclusive ranges.
    weekdays: Option<Vec<(u32, u32)>>,
    /// Days of the month, negative from the end, inclusive ranges.
    days_of_month: Option<Vec<(i32, i32)>>,
    /// Months 1–12, inclusive ranges.
    months: Option<Vec<(u32, u32)>>,
    /// Years, inclusive ranges.
    years: Option<Vec<(i32, i32)>>,
    tz: jiff::tz::TimeZone,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    times: Option<Vec<TimeSpec>>,
    #[serde(default)]
    weekdays: Option<Vec<Value>>,
    #[serde(default)]
    days_of_month: Option<Vec<Value>>,
    #[serde(default)]
    months: Option<Vec<Value>>,
    #[serde(default)]
    years: Option<Vec<Value>>,
    #[serde(default)]
    location: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeSpec {
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    end_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time_intervals: Vec<Value>,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `a:b` or `a`, each side parsed by `one`.
fn range<T: Copy>(s: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<(T, T), String> {
    // A leading minus belongs to the number ("-3:-1").
    let split = s
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == ':')
        .map(|(i, _)| i);
    match split {
        Some(i) => Ok((one(s[..i].trim())?, one(s[i + 1..].trim())?)),
        None => {
            let v = one(s.trim())?;
            Ok((v, v))
        }
    }
}

fn minutes(s: &str) -> Result<u32, String> {
    let bad = || format!("couldn't parse timestamp {s}, invalid format");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) || s.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn compile_one(v: &Value) -> Result<TimeInterval, String> {
    let spec: Spec = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let times = match spec.times {
        None => None,
        Some(ts) => Some(
            ts.iter()
                .map(|t| {
                    let (Some(a), Some(b)) = (&t.start_time, &t.end_time) else {
                        return Err("both start and end times must be provided".to_string());
                    };
                    let (a, b) = (minutes(a)?, minutes(b)?);
                    if a >= b {
                        return Err("start time cannot be equal or greater than end time".into());
                    }
                    Ok((a, b))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let weekdays = match spec.weekdays {
        None => None,
        Some(l) => Some(
            l.iter()
                .map(|v| {
                    let s = text(v).to_lowercase();
                    let (a, b) = range(&s, |d| {
                        WEEKDAYS
                            .iter()
                            .position(|w| *w == d)
                            .map(|i| i as u32)
                            .ok_or_else(|| format!("{d} is not a valid weekday"))
                    })?;
                    if b < a {
                        return Err("start day cannot be before end day".to_string());
                    }
                    Ok((a, b))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let days_of_month = match spec.days_of_month {
        None => None,
        Some(l) => Some(
            l.iter()
                .map(|v| {
                    let s = text(v);
                    let (a, b) = range(&s, |d| {
                        d.parse::<i32>()
                            .map_err(|_| format!("invalid day of the month {d:?}"))
                    })?;
                    for d in [a, b] {
                        if d == 0 || !(-31..=31).contains(&d) {
                            return Err(format!(
                                "{d} is not a valid day of the month: out of range"
                            ));
                        }
                    }
                    if a < 0 && b > 0 {
                        return Err("end day must be negative if start day is negative".into());
                    }
                    if (a > 0 && b > 0 || a < 0 && b < 0) && b < a {
                        return Err(format!("end day {b} is always before start day {a}"));
                    }
                    Ok((a, b))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let months = match spec.months {
        None => None,
        Some(l) => Some(
            l.iter()
                .map(|v| {
                    let s = text(v).to_lowercase();
                    let (a, b) = range(&s, |m| {
                        MONTHS
                            .iter()
                            .position(|x| *x == m)
                            .map(|i| i as u32 + 1)
                            .or_else(|| m.parse::<u32>().ok().filter(|n| (1..=12).contains(n)))
                            .ok_or_else(|| format!("{m} is not a valid month"))
                    })?;
                    if b < a {
                        return Err(format!(
                            "end month {} is before start month {}",
                            MONTHS[b as usize - 1],
                            MONTHS[a as usize - 1]
                        ));
                    }
                    Ok((a, b))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let years = match spec.years {
        None => None,
        Some(l) => Some(
            l.iter()
                .map(|v| {
                    let s = text(v);
                    let (a, b) = range(&s, |y| {
                        y.parse::<i32>().map_err(|_| format!("invalid year {y:?}"))
                    })?;
                    if b < a {
                        return Err(format!("end year {b} is before start year {a}"));
                    }
                    Ok((a, b))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let tz = match spec.location.as_deref() {
        None | Some("") | Some("UTC") => jiff::tz::TimeZone::UTC,
        Some("Local") => jiff::tz::TimeZone::system(),
        Some(name) => {
            jiff::tz::TimeZone::get(name).map_err(|_| format!("unknown time zone {name:?}"))?
        }
    };
    Ok(TimeInterval {
        times,
        weekdays,
        days_of_month,
        months,
        years,
        tz,
    })
}

/// Compiles the `time_intervals` (or `mute_time_intervals`) entries of a
/// routing file; errors name the entry path under `key`.
pub fn compile(
    key: &str,
    list: &[Value],
    out: &mut BTreeMap<String, Vec<TimeInterval>>,
    err: &mut dyn FnMut(&str, String),
) {
    for (i, v) in list.iter().enumerate() {
        let p = format!("{key}[{i}]");
        let n: Named = match serde_json::from_value(v.clone()) {
            Ok(n) => n,
            Err(e) => {
                err(&p, e.to_string());
                continue;
            }
        };
        let mut compiled = Vec::new();
        for (j, t) in n.time_intervals.iter().enumerate() {
            match compile_one(t) {
                Ok(c) => compiled.push(c),
                Err(e) => err(&format!("{p}.time_intervals[{j}]"), e),
            }
        }
        out.insert(n.name, compiled);
    }
}

impl TimeInterval {
    /// Whether `ms` (Unix milliseconds) falls in the period.
    pub fn contains(&self, ms: i64) -> bool {
        let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
            return false;
        };
        let z = self.tz.to_datetime(ts);
        let minute = z.hour() as u32 * 60 + z.minute() as u32;
        if let Some(t) = &self.times {
            if !t.iter().any(|&(a, b)| minute >= a && minute < b) {
                return false;
            }
        }
        if let Some(w) = &self.weekdays {
            let wd = z.weekday().to_sunday_zero_offset() as u32;
            if !w.iter().any(|&(a, b)| wd >= a && wd <= b) {
                return false;
            }
        }
        if let Some(d) = &self.days_of_month {
            let len = z.days_in_month() as i32;
            let day = z.day() as i32;
            let hit = d.iter().any(|&(a, b)| {
                let a = if a < 0 { len + a + 1 } else { a };
                let b = if b < 0 { len + b + 1 } else { b };
                // A start past this month's end matches nothing; an end
                // past it stops at the last day.
                a <= len && day >= a.max(1) && day <= b.min(len)
            });
            if !hit {
                return false;
            }
        }
        if let Some(m) = &self.months {
            let mo = z.month() as u32;
            if !m.iter().any(|&(a, b)| mo >= a && mo <= b) {
                return false;
            }
        }
        if let Some(y) = &self.years {
            let yr = z.year() as i32;
            if !y.iter().any(|&(a, b)| yr >= a && yr <= b) {
                return false;
            }
        }
        true
    }
}

/// Whether any period of any of the named intervals contains `ms`.
pub fn any_contains(
    intervals: &BTreeMap<String, Vec<TimeInterval>>,
    names: &[String],
    ms: i64,
) -> bool {
    names
        .iter()
        .filter_map(|n| intervals.get(n))
        .flatten()
        .any(|t| t.contains(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(yaml: &str) -> Result<TimeInterval, String> {
        let v: Value = serde_saphyr::from_str(yaml).unwrap();
        compile_one(&v)
    }

    fn at(s: &str) -> i64 {
        crate::model::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn periods_match_in_their_zone() {
        let office = one(
            "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\nlocation: Europe/Berlin\n",
        )
        .unwrap();
        // Wednesday 2026-01-07 08:30 UTC is 09:30 in Berlin (CET).
        assert!(office.contains(at("2026-01-07T08:30:00Z")));
        assert!(!office.contains(at("2026-01-07T07:30:00Z")));
        // 16:30 UTC is 17:30 in Berlin: past the end (exclusive).
        assert!(!office.contains(at("2026-01-07T16:30:00Z")));
        // Summer time: 07:30 UTC is 09:30 CEST.
        assert!(office.contains(at("2026-07-08T07:30:00Z")));
        // Saturday.
        assert!(!office.contains(at("2026-01-10T10:00:00Z")));

        let month_end =
            one("days_of_month: ['-3:-1']\nmonths: ['february', '11:12']\nyears: ['2026']\n")
                .unwrap();
        assert!(month_end.contains(at("2026-02-26T12:00:00Z")));
        assert!(!month_end.contains(at("2026-02-25T12:00:00Z")));
        assert!(month_end.contains(at("2026-12-31T23:59:00Z")));
        assert!(!month_end.contains(at("2027-02-27T12:00:00Z")));
        assert!(!month_end.contains(at("2026-03-30T12:00:00Z")));
        let thirty = one("days_of_month: ['30:31']\n").unwrap();
        assert!(!thirty.contains(at("2026-02-28T12:00:00Z")));
        assert!(thirty.contains(at("2026-04-30T12:00:00Z")));
    }

    #[test]
    fn invalid_periods_say_why() {
        for (y, want) in [
            (
                "times: [{start_time: '10:00', end_time: '09:00'}]",
                "start time cannot be equal or greater than end time",
            ),
            (
                "times: [{start_time: '10:00'}]",
                "both start and end times must be provided",
            ),
            (
                "times: [{start_time: '25:00', end_time: '26:00'}]",
                "couldn't parse timestamp 25:00",
            ),
            ("weekdays: ['funday']", "funday is not a valid weekday"),
            (
                "weekdays: ['friday:monday']",
                "start day cannot be before end day",
            ),
            (
                "days_of_month: ['-1:5']",
                "end day must be negative if start day is negative",
            ),
            (
                "days_of_month: ['32']",
                "32 is not a valid day of the month: out of range",
            ),
            (
                "months: ['march:january']",
                "end month january is before start month march",
            ),
            (
                "years: ['2022:2020']",
                "end year 2020 is before start year 2022",
            ),
            ("location: Mars/Olympus", "unknown time zone"),
            ("weekday: [monday]", "unknown field"),
        ] {
            let e = one(y).unwrap_err();
            assert!(e.contains(want), "{y}: {e}");
        }
    }
}
