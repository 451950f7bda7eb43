//! Go's `time.Time` as templates see it: its `String()` form and the
//! methods notification templates call (`Format` with Go's reference
//! layouts, `Unix`, `UTC`, …).

use super::{GoTime, Value};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Broken-down local time.
struct Civil {
    year: i64,
    month: usize,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
    ms: i64,
    weekday: usize,
    yday: i64,
}

fn civil(t: &GoTime) -> Civil {
    let local = t.ms + t.offset_s as i64 * 1000;
    let secs = local.div_euclid(1000);
    let days = secs.div_euclid(86400);
    let (year, month, day) = crate::model::civil_from_days(days);
    // Day of the year: days since this year's January 1st.
    let mut yday = 1;
    for m in 1..month {
        yday += month_len(year, m);
    }
    yday += day - 1;
    let sod = secs.rem_euclid(86400);
    Civil {
        year,
        month: month as usize,
        day,
        hour: sod / 3600,
        min: sod % 3600 / 60,
        sec: sod % 60,
        ms: local.rem_euclid(1000),
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
        yday,
    }
}

fn month_len(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn zone_offset(off: i32, colon: bool, seconds: bool, hours_only: bool) -> String {
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    let sep = if colon { ":" } else { "" };
    let mut out = format!("{sign}{h:02}");
    if !hours_only {
        out.push_str(&format!("{sep}{m:02}"));
    }
    if seconds {
        out.push_str(&format!("{sep}{s:02}"));
    }
    out
}

/// Go's `Time.Format(layout)`: the reference time
/// `Mon Jan 2 15:04:05 MST 2006` written the way the output should look.
pub fn format(t: &GoTime, layout: &str) -> String {
    let c = civil(t);
    let b = layout.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let at = |i: usize, p: &str| layout[i..].starts_with(p);
    while i < b.len() {
        let hour12 = if c.hour % 12 == 0 { 12 } else { c.hour % 12 };
        // Zones: the longest form first.
        let zones: [(&str, bool, bool, bool, bool); 10] = [
            ("Z07:00:00", true, true, false, true),
            ("-07:00:00", true, true, false, false),
            ("Z070000", false, true, false, true),
            ("-070000", false, true, false, false),
            ("Z07:00", true, false, false, true),
            ("-07:00", true, false, false, false),
            ("Z0700", false, false, false, true),
            ("-0700", false, false, false, false),
            ("Z07", false, false, true, true),
            ("-07", false, false, true, false),
        ];
        if let Some((p, colon, secs, hours, z)) = zones.iter().find(|z| at(i, z.0)) {
            if *z && t.offset_s == 0 {
                out.push('Z');
            } else {
                out.push_str(&zone_offset(t.offset_s, *colon, *secs, *hours));
            }
            i += p.len();
            continue;
        }
        let (text, n): (String, usize) = if at(i, "January") {
            (MONTHS[c.month - 1].to_string(), 7)
        } else if at(i, "Jan") {
            (MONTHS[c.month - 1][..3].to_string(), 3)
        } else if at(i, "Monday") {
            (DAYS[c.weekday].to_string(), 6)
        } else if at(i, "Mon") {
            (DAYS[c.weekday][..3].to_string(), 3)
        } else if at(i, "MST") {
            (t.zone.to_string(), 3)
        } else if at(i, "2006") {
            (format!("{:04}", c.year), 4)
        } else if at(i, "002") {
            (format!("{:03}", c.yday), 3)
        } else if at(i, "__2") {
            (format!("{:>3}", c.yday), 3)
        } else if at(i, "_2") && !at(i, "_2006") {
            (format!("{:>2}", c.day), 2)
        } else if at(i, "01") {
            (format!("{:02}", c.month), 2)
        } else if at(i, "02") {
            (format!("{:02}", c.day), 2)
        } else if at(i, "03") {
            (format!("{hour12:02}"), 2)
        } else if at(i, "04") {
            (format!("{:02}", c.min), 2)
        } else if at(i, "05") {
            (format!("{:02}", c.sec), 2)
        } else if at(i, "06") {
            (format!("{:02}", c.year.rem_euclid(100)), 2)
        } else if at(i, "15") {
            (format!("{:02}", c.hour), 2)
        } else if at(i, "1") {
            (c.month.to_string(), 1)
        } else if at(i, "2") {
            (c.day.to_string(), 1)
        } else if at(i, "3") {
            (hour12.to_string(), 1)
        } else if at(i, "4") {
            (c.min.to_string(), 1)
        } else if at(i, "5") {
            (c.sec.to_string(), 1)
        } else if at(i, "PM") {
            ((if c.hour >= 12 { "PM" } else { "AM" }).to_string(), 2)
        } else if at(i, "pm") {
            ((if c.hour >= 12 { "pm" } else { "am" }).to_string(), 2)
        } else if (b[i] == b'.' || b[i] == b',')
            && i + 1 < b.len()
            && (b[i + 1] == b'0' || b[i + 1] == b'9')
        {
            let d = b[i + 1];
            let mut j = i + 1;
            while j < b.len() && b[j] == d {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                (layout[i..i + 1].to_string(), 1)
            } else {
                let digits = j - i - 1;
                let full = format!("{:03}000000", c.ms);
                let frac = &full[..digits.min(9)];
                let s = if d == b'9' {
                    let f = frac.trim_end_matches('0');
                    if f.is_empty() {
                        String::new()
                    } else {
                        format!("{}{f}", b[i] as char)
                    }
                } else {
                    format!("{}{frac}", b[i] as char)
                };
                (s, j - i)
            }
        } else {
            let ch = layout[i..].chars().next().unwrap_or(' ');
            (ch.to_string(), ch.len_utf8())
        };
        out.push_str(&text);
        i += n;
    }
    out
}

/// Go's `Time.String()`.
pub fn string(t: &GoTime) -> String {
    format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// The methods of `time.Time` templates use.
pub fn method(t: &GoTime, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    let none = |v: Value| {
        if args.is_empty() {
            Ok(v)
        } else {
            Err(format!(
                "wrong number of args for {name}: want 0 got {}",
                args.len()
            ))
        }
    };
    Some(match name {
        "Format" => match args {
            [Value::Str(l)] => Ok(Value::Str(format(t, l))),
            _ => Err("Format takes one string layout".into()),
        },
        "String" => none(Value::Str(string(t))),
        "Unix" => none(Value::Int(t.ms.div_euclid(1000))),
        "UnixMilli" => none(Value::Int(t.ms)),
        "UnixNano" => none(Value::Int(t.ms.saturating_mul(1_000_000))),
        "UTC" => none(Value::Time(GoTime::utc(t.ms))),
        "Local" => none(Value::Time(t.clone())),
        "IsZero" => none(Value::Bool(t.ms == GO_ZERO_TIME_MS)),
        "Year" => none(Value::Int(civil(t).year)),
        "Day" => none(Value::Int(civil(t).day)),
        "Hour" => none(Value::Int(civil(t).hour)),
        "Minute" => none(Value::Int(civil(t).min)),
        _ => return None,
    })
}

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix milliseconds, as
/// Alertmanager's data carries it for an alert without an end.
pub const GO_ZERO_TIME_MS: i64 = -62_135_596_800_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_format_as_go_does() {
        // 2024-02-29T13:04:05.120Z, a Thursday.
        let t = GoTime::utc(1_709_211_845_120);
        assert_eq!(string(&t), "2024-02-29 13:04:05.12 +0000 UTC");
        assert_eq!(
            format(&t, "2006-01-02T15:04:05Z07:00"),
            "2024-02-29T13:04:05Z"
        );
        assert_eq!(
            format(&t, "Mon Jan _2 3:04PM 2006 MST"),
            "Thu Feb 29 1:04PM 2024 UTC"
        );
        assert_eq!(
            format(&t, "Monday, January 2 002 .000 .999"),
            "Thursday, February 29 060 .120 .12"
        );
        let cet = GoTime {
            ms: t.ms,
            offset_s: 3600,
            zone: "CET".into(),
        };
        assert_eq!(
            format(&cet, "15:04 -0700 Z07:00 MST"),
            "14:04 +0100 +01:00 CET"
        );
        assert_eq!(string(&GoTime::utc(0)), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            string(&GoTime::utc(GO_ZERO_TIME_MS)),
            "0001-01-01 00:00:00 +0000 UTC"
        );
    }
}
