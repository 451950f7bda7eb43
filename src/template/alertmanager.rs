//! Alertmanager's template functions, for notification templates: Go's
//! built-ins plus `toUpper toLower title trimSpace join match safeHtml
//! safeUrl urlUnescape reReplaceAll stringSlice date tz since
//! humanizeDuration toJson list dict` and friends.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::prometheus::{humanize_duration, title};
use super::{Funcs, GoTime, Value};

fn s<'a>(a: &'a [Value], i: usize, f: &str) -> Result<&'a str, String> {
    match a.get(i) {
        Some(Value::Str(x)) | Some(Value::Safe(x)) => Ok(x),
        Some(other) => Err(format!("{f}: expected a string, got {other}")),
        None => Err(format!("{f}: missing argument {}", i + 1)),
    }
}

fn time_arg<'a>(a: &'a [Value], i: usize, f: &str) -> Result<&'a GoTime, String> {
    match a.get(i) {
        Some(Value::Time(t)) => Ok(t),
        Some(other) => Err(format!("{f}: expected a time, got {other}")),
        None => Err(format!("{f}: missing argument {}", i + 1)),
    }
}

/// The time `t` in the IANA zone `name` (`UTC`, `Local`, `Europe/Berlin`).
pub fn in_zone(t: &GoTime, name: &str) -> Result<GoTime, String> {
    let tz = if name == "Local" {
        jiff::tz::TimeZone::system()
    } else if name.is_empty() || name == "UTC" {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))?
    };
    let ts = jiff::Timestamp::from_millisecond(t.ms).map_err(|e| e.to_string())?;
    let info = tz.to_offset_info(ts);
    Ok(GoTime {
        ms: t.ms,
        offset_s: info.offset().seconds(),
        zone: Arc::from(info.abbreviation()),
    })
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) | Value::Safe(s) => J::String(s.clone()),
        Value::Time(t) => J::String(crate::model::format_rfc3339(t.ms)),
        other => match other.plain().as_ref() {
            Value::List(l) => J::Array(l.iter().map(to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
            Value::StrMap(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), J::String(v.clone())))
                    .collect(),
            ),
            _ => J::Null,
        },
    }
}

/// Adds Alertmanager's functions to `f`; `now_ms` is the time `now` and
/// `since` measure from.
pub fn add_alertmanager_funcs(f: &mut Funcs, now_ms: i64) {
    f.add("toUpper", |a| {
        Ok(Value::Str(s(a, 0, "toUpper")?.to_uppercase()))
    });
    f.add("toLower", |a| {
        Ok(Value::Str(s(a, 0, "toLower")?.to_lowercase()))
    });
    f.add("title", |a| Ok(Value::Str(title(s(a, 0, "title")?))));
    f.add("trimSpace", |a| {
        Ok(Value::Str(s(a, 0, "trimSpace")?.trim().to_string()))
    });
    f.add("join", |a| {
        let sep = s(a, 0, "join")?;
        let items: Vec<String> = match a.get(1).map(|v| v.plain().into_owned()) {
            Some(Value::List(l)) => l.iter().map(|v| v.to_string()).collect(),
            Some(other) => return Err(format!("join: expected a list, got {other}")),
            None => return Err("join: missing list".into()),
        };
        Ok(Value::Str(items.join(sep)))
    });
    f.add("match", |a| {
        let re = regex::Regex::new(s(a, 0, "match")?).map_err(|e| e.to_string())?;
        Ok(Value::Bool(re.is_match(s(a, 1, "match")?)))
    });
    f.add("reReplaceAll", |a| {
        let re = regex::Regex::new(s(a, 0, "reReplaceAll")?).map_err(|e| e.to_string())?;
        // Go's expansion syntax ($1, ${name}) is the regex crate's.
        Ok(Value::Str(
            re.replace_all(s(a, 2, "reReplaceAll")?, s(a, 1, "reReplaceAll")?)
                .into_owned(),
        ))
    });
    f.add("safeHtml", |a| {
        Ok(Value::Safe(s(a, 0, "safeHtml")?.to_string()))
    });
    f.add("safeUrl", |a| {
        Ok(Value::Safe(s(a, 0, "safeUrl")?.to_string()))
    });
    f.add("urlUnescape", |a| {
        let raw = s(a, 0, "urlUnescape")?.replace('+', " ");
        let b = raw.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!(
                            "invalid URL escape {:?}",
                            raw.get(i..i + 3).unwrap_or(&raw[i..])
                        )
                    })?;
                out.push(hex);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out)
            .map(Value::Str)
            .map_err(|_| "urlUnescape: not UTF-8".to_string())
    });
    f.add("stringSlice", |a| {
        Ok(Value::List(
            a.iter().map(|v| Value::Str(v.to_string())).collect(),
        ))
    });
    f.add("list", |a| Ok(Value::List(a.to_vec())));
    f.add("append", |a| {
        let mut l = match a.first().map(|v| v.plain().into_owned()) {
            Some(Value::List(l)) => l,
            _ => return Err("append: first argument must be a list".into()),
        };
        l.extend_from_slice(&a[1..]);
        Ok(Value::List(l))
    });
    f.add("dict", |a| {
        if a.len() % 2 != 0 {
            return Err("dict requires an even number of arguments".into());
        }
        let mut m = BTreeMap::new();
        for kv in a.chunks(2) {
            m.insert(kv[0].to_string(), kv[1].clone());
        }
        Ok(Value::Map(m))
    });
    f.add("date", |a| {
        Ok(Value::Str(super::gotime::format(
            time_arg(a, 1, "date")?,
            s(a, 0, "date")?,
        )))
    });
    f.add("tz", |a| {
        Ok(Value::Time(in_zone(time_arg(a, 1, "tz")?, s(a, 0, "tz")?)?))
    });
    f.add("now", move |_| Ok(Value::Time(GoTime::utc(now_ms))));
    f.add("since", move |a| {
        let t = time_arg(a, 0, "since")?;
        // A Go Duration prints as 1h2m3.5s; as a value it is seconds here.
        Ok(Value::Str(super::prometheus::go_duration(
            (now_ms - t.ms) as f64 / 1000.0,
        )))
    });
    f.add("humanizeDuration", |a| {
        let v = match a.first() {
            Some(Value::Str(x)) => x.parse::<f64>().map_err(|e| e.to_string())?,
            Some(v) => v.as_f64().ok_or("humanizeDuration: expected a number")?,
            None => return Err("humanizeDuration: missing argument".into()),
        };
        Ok(Value::Str(humanize_duration(v)))
    });
    f.add("toJson", |a| {
        Ok(Value::Str(
            serde_json::to_string(&to_json(a.first().unwrap_or(&Value::Nil))).unwrap_or_default(),
        ))
    });
    // Replaced per notification by the route's labels.
    f.add("routeLabels", |_| Ok(Value::Str(String::new())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Limits, Template};

    fn run(t: &str, data: Value) -> String {
        let mut f = Funcs::builtin();
        add_alertmanager_funcs(&mut f, 1_700_000_000_000);
        Template::parse("t", t)
            .unwrap()
            .execute(&data, &f, Limits::default())
            .unwrap()
    }

    #[test]
    fn alertmanager_types_and_functions() {
        let kv = |p: &[(&str, &str)]| {
            Value::Kv(
                p.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            )
        };
        let alert = |st: &str| {
            let mut m = BTreeMap::new();
            m.insert("Status".into(), Value::Str(st.into()));
            m.insert("Labels".into(), kv(&[("alertname", "A"), ("x", st)]));
            m.insert(
                "StartsAt".into(),
                Value::Time(GoTime::utc(1_699_999_000_000)),
            );
            Value::Map(m)
        };
        let mut d = BTreeMap::new();
        d.insert(
            "Alerts".into(),
            Value::Alerts(vec![alert("firing"), alert("resolved"), alert("firing")]),
        );
        d.insert(
            "CommonLabels".into(),
            kv(&[("alertname", "A"), ("job", "j")]),
        );
        d.insert("GroupLabels".into(), kv(&[("alertname", "A")]));
        let d = Value::Map(d);
        assert_eq!(
            run(
                "{{ .Alerts.Firing | len }}/{{ len .Alerts.Resolved }} {{ .GroupLabels.SortedPairs.Values | join \",\" }} ({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join \" \" }}{{ end }})",
                d.clone()
            ),
            "2/1 A (j)"
        );
        assert_eq!(
            run(
                "{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}{{ range .Alerts.Firing }}{{ .StartsAt.Format \"15:04\" }} {{ since .StartsAt }} {{ (tz \"Europe/Berlin\" .StartsAt).Format \"15:04 MST\" }}{{ break }}{{ end }}",
                d
            ),
            "alertname=A;job=j;21:56 16m40s 22:56 CET"
        );
        assert_eq!(
            run(
                "{{ \"a-b\" | reReplaceAll \"(\\\\w)-(\\\\w)\" \"$2$1\" }} {{ toUpper \"x\" }} {{ title \"hello world\" }} {{ match \"^a\" \"abc\" }} {{ stringSlice \"a\" \"b\" | join \"+\" }} {{ urlUnescape \"a%20b\" }} {{ toJson (dict \"k\" 1) }}",
                Value::Nil
            ),
            "ba X Hello World true a+b a b {\"k\":1}"
        );
    }

    #[test]
    fn html_templates_escape_all_but_safe_values() {
        let mut f = Funcs::builtin();
        add_alertmanager_funcs(&mut f, 0);
        let t = Template::parse("t", "<b>{{ . }}</b>{{ \"<i>ok</i>\" | safeHtml }}").unwrap();
        let out = t
            .execute(
                &Value::Str("<script>".into()),
                &f,
                Limits {
                    html: true,
                    ..Limits::default()
                },
            )
            .unwrap();
        assert_eq!(out, "<b>&lt;script&gt;</b><i>ok</i>");
    }
}
