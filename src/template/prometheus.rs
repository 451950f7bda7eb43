//! Prometheus's template functions for rule labels and annotations:
//! humanize and friends, string helpers, links, and the query helpers
//! (`query`, `first`, `label`, `value`, `strvalue`, `sortByLabel`) backed
//! by a caller-supplied query function.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Funcs, Value, sprintf, url_escape};

/// Runs a PromQL query for the `query` function: sample label sets and
/// values.
pub type QueryFn =
    Arc<dyn Fn(&str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> + Send + Sync>;

fn num(v: &Value, f: &str) -> Result<f64, String> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(x) => Ok(*x),
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{f}: cannot convert {s:?} to float")),
        other => Err(format!("{f}: cannot convert {other} to float")),
    }
}

fn one<'a>(a: &'a [Value], f: &str) -> Result<&'a Value, String> {
    match a {
        [v] => Ok(v),
        _ => Err(format!("{f}: wrong number of args: want 1 got {}", a.len())),
    }
}

fn g4(v: f64) -> String {
    sprintf("%.4g", &[Value::Float(v)])
}

/// `humanize`: SI prefixes with four significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

/// `humanizeDuration`: seconds as `1d 2h 3m 4s`.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Go's `time.Time.String()` for a UTC Unix time in seconds.
pub fn go_time(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as i64;
    let s = crate::model::format_rfc3339(ms);
    // 2006-01-02T15:04:05.000Z → 2006-01-02 15:04:05 +0000 UTC
    let (date, rest) = s.split_once('T').unwrap_or((&s, ""));
    let time = rest.trim_end_matches('Z');
    let time = match time.split_once('.') {
        Some((hms, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                hms.to_string()
            } else {
                format!("{hms}.{frac}")
            }
        }
        None => time.to_string(),
    };
    format!("{date} {time} +0000 UTC")
}

/// Go's `time.Duration.String()` for seconds.
pub fn go_duration(secs: f64) -> String {
    let ns = (secs * 1e9).round() as i128;
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.abs();
    if ns < 1_000 {
        return format!("{sign}{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{sign}{}µs", trim_frac(ns as f64 / 1e3));
    }
    if ns < 1_000_000_000 {
        return format!("{sign}{}ms", trim_frac(ns as f64 / 1e6));
    }
    let total_s = ns as f64 / 1e9;
    let h = (ns / 3_600_000_000_000) as i64;
    let m = ((ns / 60_000_000_000) % 60) as i64;
    let s = total_s - (h * 3600 + m * 60) as f64;
    let mut out = String::from(sign);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_frac(s)));
    out
}

fn trim_frac(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `stripDomain`: `host.example.com:80` → `host:80`; IP addresses stay.
pub fn strip_domain(hp: &str) -> String {
    let (host, port) = match hp.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h, Some(p)),
        _ => (hp, None),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let short = host.split('.').next().unwrap_or(host);
    match port {
        Some(p) => format!("{short}:{p}"),
        None => short.to_string(),
    }
}

/// `stripPort`: the host of `host:port`, or the input when it has no port.
pub fn strip_port(hp: &str) -> String {
    if let Some(rest) = hp.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once("]:") {
            if !p.is_empty() {
                return h.to_string();
            }
        }
        return hp.to_string();
    }
    match hp.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h.to_string(),
        _ => hp.to_string(),
    }
}

/// Title-cases each word's first letter, as Prometheus's `title`.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !(c.is_alphanumeric() || c == '\'' || c == '_');
    }
    out
}

fn sample(labels: BTreeMap<String, String>, v: f64) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Labels".to_string(), Value::StrMap(labels));
    m.insert("Value".to_string(), Value::Float(v));
    Value::Map(m)
}

/// Adds Prometheus's template functions to `f`. `external_url` feeds
/// `externalURL`, `pathPrefix` and the link helpers; `now` is the
/// evaluation time in seconds; `query` backs the query helpers.
pub fn add_prometheus_funcs(f: &mut Funcs, external_url: &str, now: f64, query: Option<QueryFn>) {
    f.add("humanize", |a| {
        Ok(Value::Str(humanize(num(one(a, "humanize")?, "humanize")?)))
    });
    f.add("humanize1024", |a| {
        Ok(Value::Str(humanize1024(num(
            one(a, "humanize1024")?,
            "humanize1024",
        )?)))
    });
    f.add("humanizeDuration", |a| {
        Ok(Value::Str(humanize_duration(num(
            one(a, "humanizeDuration")?,
            "humanizeDuration",
        )?)))
    });
    f.add("humanizePercentage", |a| {
        let v = num(one(a, "humanizePercentage")?, "humanizePercentage")?;
        Ok(Value::Str(format!("{}%", g4(v * 100.0))))
    });
    f.add("humanizeTimestamp", |a| {
        let v = num(one(a, "humanizeTimestamp")?, "humanizeTimestamp")?;
        if v.is_nan() || v.is_infinite() {
            return Ok(Value::Str(g4(v)));
        }
        Ok(Value::Str(go_time(v)))
    });
    f.add("toTime", |a| {
        Ok(Value::Str(go_time(num(one(a, "toTime")?, "toTime")?)))
    });
    f.add("toDuration", |a| {
        Ok(Value::Str(go_duration(num(
            one(a, "toDuration")?,
            "toDuration",
        )?)))
    });
    f.add("parseDuration", |a| {
        let s = one(a, "parseDuration")?.to_string();
        crate::model::parse_duration(&s)
            .map(|d| Value::Float(d.as_secs_f64()))
            .map_err(|e| format!("parseDuration: {e}"))
    });
    f.add("title", |a| {
        Ok(Value::Str(title(&one(a, "title")?.to_string())))
    });
    f.add("toUpper", |a| {
        Ok(Value::Str(one(a, "toUpper")?.to_string().to_uppercase()))
    });
    f.add("toLower", |a| {
        Ok(Value::Str(one(a, "toLower")?.to_string().to_lowercase()))
    });
    f.add("reReplaceAll", |a| {
        let [p, r, t] = a else {
            return Err("reReplaceAll: want 3 args".into());
        };
        let re = regex::Regex::new(&p.to_string()).map_err(|e| format!("reReplaceAll: {e}"))?;
        Ok(Value::Str(
            re.replace_all(&t.to_string(), r.to_string().as_str())
                .into_owned(),
        ))
    });
    f.add("match", |a| {
        let [p, t] = a else {
            return Err("match: want 2 args".into());
        };
        let re = regex::Regex::new(&p.to_string()).map_err(|e| format!("match: {e}"))?;
        Ok(Value::Bool(re.is_match(&t.to_string())))
    });
    f.add("stripPort", |a| {
        Ok(Value::Str(strip_port(&one(a, "stripPort")?.to_string())))
    });
    f.add("stripDomain", |a| {
        Ok(Value::Str(strip_domain(
            &one(a, "stripDomain")?.to_string(),
        )))
    });
    f.add("safeHtml", |a| {
        Ok(Value::Str(one(a, "safeHtml")?.to_string()))
    });
    f.add("urlQueryEscape", |a| {
        Ok(Value::Str(url_escape(
            &one(a, "urlQueryEscape")?.to_string(),
        )))
    });
    f.add("args", |a| {
        let m = a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("arg{i}"), v.clone()))
            .collect();
        Ok(Value::Map(m))
    });
    let ext = external_url.to_string();
    let path = ext
        .split_once("://")
        .and_then(|(_, rest)| {
            rest.find('/')
                .map(|i| rest[i..].trim_end_matches('/').to_string())
        })
        .unwrap_or_default();
    {
        let ext = ext.clone();
        f.add("externalURL", move |_| Ok(Value::Str(ext.clone())));
    }
    {
        let p = path.clone();
        f.add("pathPrefix", move |_| Ok(Value::Str(p.clone())));
    }
    for (name, tab) in [("graphLink", 0), ("tableLink", 1)] {
        let p = path.clone();
        f.add(name, move |a| {
            let e = one(a, name)?.to_string();
            Ok(Value::Str(format!(
                "{p}/graph?g0.expr={}&g0.tab={tab}",
                url_escape(&e)
            )))
        });
    }
    f.add("now", move |_| Ok(Value::Float(now)));
    if let Some(q) = query {
        f.add("query", move |a| {
            let rows = q(&one(a, "query")?.to_string())?;
            Ok(Value::List(
                rows.into_iter().map(|(l, v)| sample(l, v)).collect(),
            ))
        });
    }
    f.add("first", |a| match one(a, "first")? {
        Value::List(l) => l
            .first()
            .cloned()
            .ok_or_else(|| "first() called on vector with no elements".into()),
        other => Err(format!("first: expected query result, got {other}")),
    });
    f.add("label", |a| {
        let [l, s] = a else {
            return Err("label: want 2 args".into());
        };
        let labels = s.field_pub("Labels")?;
        labels.field_pub(&l.to_string())
    });
    f.add("value", |a| one(a, "value")?.field_pub("Value"));
    f.add("strvalue", |a| {
        one(a, "strvalue")?
            .field_pub("Labels")?
            .field_pub("__value__")
    });
    f.add("sortByLabel", |a| {
        let [l, Value::List(items)] = a else {
            return Err("sortByLabel: want a label and a query result".into());
        };
        let key = l.to_string();
        let mut v = items.clone();
        v.sort_by_key(|x| {
            x.field_pub("Labels")
                .and_then(|ls| ls.field_pub(&key))
                .map(|x| x.to_string())
                .unwrap_or_default()
        });
        Ok(Value::List(v))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Limits, Template};

    #[test]
    fn humanize_family_matches_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234.0), "1.234k");
        assert_eq!(humanize(1_234_567_890.0), "1.235G");
        assert_eq!(humanize(0.0012), "1.2m");
        assert_eq!(humanize(12345.0), "12.35k");
        assert_eq!(humanize1024(1024.0), "1ki");
        assert_eq!(humanize1024(1_048_576.0 * 3.5), "3.5Mi");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(61.0), "1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.025), "25ms");
        assert_eq!(
            go_time(1_435_065_584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(go_duration(3723.5), "1h2m3.5s");
        assert_eq!(strip_port("host:9100"), "host");
        assert_eq!(strip_port("[::1]:9100"), "::1");
        assert_eq!(strip_domain("node.example.com:9100"), "node:9100");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(title("hello wide_world"), "Hello Wide_world");
    }

    #[test]
    fn templates_use_the_prometheus_functions() {
        let mut f = Funcs::builtin();
        let q: QueryFn = Arc::new(|_q: &str| {
            Ok(vec![
                (
                    BTreeMap::from([("instance".to_string(), "b".to_string())]),
                    2.0,
                ),
                (
                    BTreeMap::from([("instance".to_string(), "a".to_string())]),
                    1.0,
                ),
            ])
        });
        add_prometheus_funcs(
            &mut f,
            "http://prom.example.com:9090/prefix/",
            1000.0,
            Some(q),
        );
        let t = Template::parse(
            "t",
            "{{ 0.9876 | humanizePercentage }} {{ \"up\" | graphLink }} {{ pathPrefix }} \
             {{ range query \"up\" | sortByLabel \"instance\" }}{{ label \"instance\" . }}={{ value . }};{{ end }} \
             {{ with query \"up\" }}{{ . | first | value | humanize }}{{ end }} {{ reReplaceAll \"(a)b\" \"${1}x\" \"abab\" }}",
        )
        .unwrap();
        let out = t.execute(&Value::Nil, &f, Limits::default()).unwrap();
        assert_eq!(
            out,
            "98.76% /prefix/graph?g0.expr=up&g0.tab=0 /prefix a=1;b=2; 2 axax"
        );
    }
}
