//! The expanding series notation of promtool unit tests and Prometheus's
//! promqltest scripts: `metric{a="b"} 1 2+3x4 _ _x2 stale -1-1x3`.

use std::sync::Arc;

use crate::model::histogram::{CounterResetHint, FloatHistogram};
use crate::model::{Labels, LabelsBuilder};

/// One value of an expanded sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqValue {
    /// A float sample.
    Value(f64),
    /// `_`: no sample at this step.
    Omitted,
    /// `stale`: a staleness marker.
    Stale,
    /// `{{…}}`: a native histogram, and whether its counter reset hint was
    /// written out (only then do test results compare it).
    Histogram(Arc<FloatHistogram>, bool),
}

/// Splits `desc values…` into the series descriptor and the value text.
fn split_descriptor(line: &str) -> (&str, &str) {
    let b = line.as_bytes();
    let mut i = 0;
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
        } else {
            match c {
                b'"' | b'\'' | b'`' => quote = Some(c),
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return (&line[..=i], line[i + 1..].trim());
                    }
                }
                c if c.is_ascii_whitespace() && depth == 0 => {
                    return (&line[..i], line[i..].trim());
                }
                _ => {}
            }
        }
        i += 1;
    }
    (line, "")
}

/// Reads a quoted string (", ' or `) at the start of `s`, with Go
/// escapes; returns the value and the rest.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a quoted string")?;
    let body = &s[q.len_utf8()..];
    if q == '`' {
        let end = body.find('`').ok_or("unterminated raw string")?;
        return Ok((body[..end].to_string(), &body[end + 1..]));
    }
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == q {
            // The caller may have taken any character for the quote.
            return Ok((out, &body[i + c.len_utf8()..]));
        }
        if c == '\\' {
            let (_, e) = chars.next().ok_or("unterminated escape")?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' => {
                    let h: String = (0..2).filter_map(|_| chars.next().map(|x| x.1)).collect();
                    let b = u8::from_str_radix(&h, 16).map_err(|_| "bad \\x escape")?;
                    out.push(b as char);
                }
                'u' | 'U' => {
                    let n = if e == 'u' { 4 } else { 8 };
                    let h: String = (0..n).filter_map(|_| chars.next().map(|x| x.1)).collect();
                    let cp = u32::from_str_radix(&h, 16).map_err(|_| "bad unicode escape")?;
                    out.push(char::from_u32(cp).ok_or("bad unicode escape")?);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated string".into())
}

fn ident_len(s: &str) -> usize {
    s.bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
        .count()
}

/// Parses a series descriptor (`name{l="v"}`, `{__name__="x"}`,
/// `{"quoted.name"}`, `{}`) into labels.
pub fn parse_labels(desc: &str) -> Result<Labels, String> {
    let err = |m: &str| format!("{desc}: {m}");
    let mut b = LabelsBuilder::new();
    let mut rest = desc.trim();
    let n = ident_len(rest);
    if n > 0 {
        b.set_str(crate::model::METRIC_NAME, &rest[..n]);
        rest = &rest[n..];
    }
    rest = rest.trim_start();
    if rest.is_empty() {
        return Ok(b.build());
    }
    rest = rest.strip_prefix('{').ok_or_else(|| err("expected '{'"))?;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            if !r.trim().is_empty() {
                return Err(err("unexpected text after '}'"));
            }
            break;
        }
        let name;
        if rest.starts_with(['"', '\'', '`']) {
            let (v, r) = quoted(rest).map_err(|e| err(&e))?;
            rest = r.trim_start();
            if !rest.starts_with('=') {
                // A lone quoted string is the metric name.
                b.set_str(crate::model::METRIC_NAME, &v);
                rest = rest.strip_prefix(',').unwrap_or(rest);
                continue;
            }
            name = v;
        } else {
            let n = ident_len(rest);
            if n == 0 {
                return Err(err("expected a label name"));
            }
            name = rest[..n].to_string();
            rest = rest[n..].trim_start();
        }
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| err("expected '='"))?
            .trim_start();
        let (v, r) = quoted(rest).map_err(|e| err(&e))?;
        b.set_str(&name, &v);
        rest = r.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(b.build())
}

/// Parses `desc values…`.
pub fn parse_series(line: &str) -> Result<(Labels, Vec<SeqValue>), String> {
    let (desc, vals) = split_descriptor(line.trim());
    let labels = parse_labels(desc)?;
    Ok((labels, parse_values(vals)?))
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => return Ok(f64::INFINITY),
        "-Inf" | "-inf" => return Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => return Ok(f64::NAN),
        _ => {}
    }
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16)
            .map(|v| v as f64)
            .map_err(|_| format!("invalid number {s:?}"));
    }
    s.parse::<f64>()
        .map_err(|_| format!("invalid number {s:?}"))
}

/// Splits on whitespace outside `{{ … }}`.
fn tokens(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut depth, mut start) = (0, 0i32, None);
    while i < b.len() {
        if b[i..].starts_with(b"{{") {
            depth += 1;
            start.get_or_insert(i);
            i += 2;
            continue;
        }
        if b[i..].starts_with(b"}}") {
            depth -= 1;
            i += 2;
            continue;
        }
        if b[i].is_ascii_whitespace() && depth == 0 {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
        } else {
            start.get_or_insert(i);
        }
        i += 1;
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

fn float_list(s: &str) -> Result<Vec<f64>, String> {
    let inner = s
        .trim()
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .ok_or_else(|| format!("expected [..], got {s:?}"))?;
    inner.split_whitespace().map(parse_float).collect()
}

/// Parses one `{{schema:0 sum:1 count:2 buckets:[1 1] …}}` literal.
pub fn parse_histogram(s: &str) -> Result<(FloatHistogram, bool), String> {
    let body = s
        .strip_prefix("{{")
        .and_then(|x| x.strip_suffix("}}"))
        .ok_or_else(|| format!("invalid histogram {s:?}"))?;
    let mut h = FloatHistogram::default();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let (mut off, mut noff) = (0i32, 0i32);
    let mut hint_set = false;
    // key:value pairs; list values are bracketed and may contain spaces.
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once(':')
            .ok_or_else(|| format!("invalid histogram field in {s:?}"))?;
        let key = key.trim();
        let after = after.trim_start();
        let (val, next) = if after.starts_with('[') {
            let end = after.find(']').ok_or("unterminated list")? + 1;
            (&after[..end], &after[end..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key {
            "schema" => {
                h.schema = val
                    .parse()
                    .ok()
                    .filter(|s| crate::model::histogram::valid_schema(*s))
                    .ok_or_else(|| format!("invalid schema {val:?}: must be -4 to 8, or -53"))?
            }
            "sum" => h.sum = parse_float(val)?,
            "count" => h.count = parse_float(val)?,
            "z_bucket" => h.zero_count = parse_float(val)?,
            "z_bucket_w" => h.zero_threshold = parse_float(val)?,
            "offset" => off = val.parse().map_err(|_| format!("invalid offset {val:?}"))?,
            "n_offset" => noff = val.parse().map_err(|_| format!("invalid offset {val:?}"))?,
            "buckets" => pos = float_list(val)?,
            "n_buckets" => neg = float_list(val)?,
            "custom_values" => h.custom_values = float_list(val)?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match val {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::Reset,
                    "not_reset" => CounterResetHint::NotReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("invalid counter_reset_hint {other:?}")),
                };
            }
            other => return Err(format!("unknown histogram field {other:?}")),
        }
        rest = next.trim_start();
    }
    h.positive = pos
        .into_iter()
        .enumerate()
        .map(|(i, c)| (off + i as i32, c))
        .collect();
    h.negative = neg
        .into_iter()
        .enumerate()
        .map(|(i, c)| (noff + i as i32, c))
        .collect();
    Ok((h, hint_set))
}

/// Expands a histogram token: `{{…}}`, `{{…}}xN`, `{{a}}+{{b}}xN` or
/// The most values one series line may expand to: a year at 15 s, far
/// beyond any test, and a bound on what `1x99999999999` can allocate.
pub const MAX_SERIES_VALUES: usize = 2_100_000;

/// Refuses an expansion of `n + 1` more values past [`MAX_SERIES_VALUES`].
fn room_for(out: &[SeqValue], n: usize, tok: &str) -> Result<(), String> {
    if n.saturating_add(1).saturating_add(out.len()) > MAX_SERIES_VALUES {
        return Err(format!(
            "{tok:?} expands the series past {MAX_SERIES_VALUES} values"
        ));
    }
    Ok(())
}

/// `{{a}}-{{b}}xN`.
fn histogram_token(tok: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    let close = tok.find("}}").ok_or("unterminated histogram")? + 2;
    let (first, hint) = parse_histogram(&tok[..close])?;
    let rest = &tok[close..];
    if rest.is_empty() {
        out.push(SeqValue::Histogram(Arc::new(first), hint));
        return Ok(());
    }
    if let Some(n) = rest.strip_prefix('x') {
        let n: usize = n
            .parse()
            .map_err(|_| format!("invalid repetition in {tok:?}"))?;
        room_for(out, n, tok)?;
        let h = Arc::new(first);
        for _ in 0..=n {
            out.push(SeqValue::Histogram(h.clone(), hint));
        }
        return Ok(());
    }
    let sign = match rest.as_bytes().first() {
        Some(b'+') => 1.0,
        Some(b'-') => -1.0,
        _ => return Err(format!("invalid histogram sequence {tok:?}")),
    };
    let inc_text = &rest[1..];
    let close2 = inc_text.find("}}").ok_or("unterminated histogram")? + 2;
    let (inc, _) = parse_histogram(&inc_text[..close2])?;
    let n: usize = inc_text[close2..]
        .strip_prefix('x')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("invalid repetition in {tok:?}"))?;
    // Each step is a histogram of its own, not a shared one: it counts
    // as many values as it holds numbers (16 plus its buckets).
    let weight =
        |h: &FloatHistogram| 16 + h.positive.len() + h.negative.len() + h.custom_values.len();
    room_for(out, n.saturating_mul(weight(&first).max(weight(&inc))), tok)?;
    let mut cur = first;
    for _ in 0..=n {
        out.push(SeqValue::Histogram(Arc::new(cur.clone()), hint));
        let r = if sign > 0.0 {
            cur.add(&inc)
        } else {
            cur.sub(&inc)
        };
        r.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Expands the value part of a series line.
pub fn parse_values(text: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for tok in tokens(text) {
        if tok.starts_with("{{") {
            histogram_token(tok, &mut out)?;
            continue;
        }
        if tok == "_" {
            out.push(SeqValue::Omitted);
            continue;
        }
        if tok == "stale" {
            out.push(SeqValue::Stale);
            continue;
        }
        // `head x count`; a trailing x-count is the only place an `x`
        // can appear apart from hex numbers.
        let (head, count) = match tok.rfind('x') {
            Some(p)
                if p > 0
                    && tok[p + 1..].bytes().all(|c| c.is_ascii_digit())
                    && p + 1 < tok.len() =>
            {
                let n: usize = tok[p + 1..]
                    .parse()
                    .map_err(|_| format!("invalid repetition in {tok:?}"))?;
                (&tok[..p], Some(n))
            }
            _ => (tok, None),
        };
        let Some(n) = count else {
            room_for(&out, 0, tok)?;
            out.push(SeqValue::Value(parse_float(head)?));
            continue;
        };
        room_for(&out, n, tok)?;
        if head == "_" {
            out.extend(std::iter::repeat_n(SeqValue::Omitted, n));
            continue;
        }
        if head == "stale" {
            out.extend(std::iter::repeat_n(SeqValue::Stale, n));
            continue;
        }
        // Split start and increment at a sign that is not leading and
        // does not belong to an exponent.
        let hb = head.as_bytes();
        let mut split = None;
        for i in 1..hb.len() {
            if (hb[i] == b'+' || hb[i] == b'-') && !matches!(hb[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        let (start, inc) = match split {
            Some(i) => {
                let start = parse_float(&head[..i])?;
                let mag = parse_float(&head[i + 1..])?;
                (start, if hb[i] == b'-' { -mag } else { mag })
            }
            None => (parse_float(head)?, 0.0),
        };
        for k in 0..=n {
            out.push(SeqValue::Value(start + inc * k as f64));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multibyte_character_where_a_quote_may_stand_is_an_error() {
        // Found by the unit_test_file fuzz target: a panic slicing inside
        // a character.
        assert!(parse_series("m{a=\u{55d}\u{742} 1}").is_err());
        assert!(parse_labels("{a=\u{55d}}").is_err());
    }

    #[test]
    fn expansions_are_bounded() {
        let e = parse_values("1x99999999999").unwrap_err();
        assert!(e.contains("expands the series past"), "{e}");
        let e = parse_values("{{count:1}}x99999999999").unwrap_err();
        assert!(e.contains("expands the series past"), "{e}");
        assert_eq!(parse_values("0+1x100000").unwrap().len(), 100_001);
        // Distinct histograms count by their size: a million steps of a
        // small one are refused (the fuzzer's input that took 34 s under
        // AddressSanitizer), ten thousand are not.
        let h = "{{schema:0 sum:4 count:4 buckets:[1 2 1]}}+{{schema:0 sum:-4 count:4 n_buckets:[1 2 1]}}";
        let e = parse_values(&format!("{h}x1183155")).unwrap_err();
        assert!(e.contains("expands the series past"), "{e}");
        assert_eq!(parse_values(&format!("{h}x10000")).unwrap().len(), 10_001);
        // Schemas outside Prometheus's (the fuzzer's `schema:40`, whose
        // bucket merge overflowed a shift) are refused.
        for bad in ["{{schema:40 count:1}}", "{{schema:-5}}", "{{schema:9}}"] {
            let e = parse_values(bad).unwrap_err();
            assert!(e.contains("invalid schema"), "{bad}: {e}");
        }
        // A multi-byte character where a quote was expected, closing the
        // "string" later (the fuzzer's `{type=ﺿ{ﺿ{[a`) is no panic.
        for line in [
            "{\u{fe3f}{[a\u{fe3f} 1",
            "m{a=\u{fe3f}x\u{fe3f}} 1",
            "{\u{fe3f}{[a",
            "{type=\u{fe3f}{\u{fe3f}{[a",
        ] {
            let _ = parse_series(line);
        }
        // Repeating one histogram shares it: counted once a value.
        assert_eq!(
            parse_values("{{count:1 buckets:[1]}}x1000000")
                .unwrap()
                .len(),
            1_000_001
        );
    }

    #[test]
    fn expands_all_forms() {
        let (l, v) = parse_series(r#"m{a="b c"} 1 2+3x2 _ _x2 stale -1-1x1 4x1 1e3"#).unwrap();
        assert_eq!(l.get("a"), Some("b c"));
        use SeqValue::*;
        assert_eq!(
            v,
            vec![
                Value(1.0),
                Value(2.0),
                Value(5.0),
                Value(8.0),
                Omitted,
                Omitted,
                Omitted,
                Stale,
                Value(-1.0),
                Value(-2.0),
                Value(4.0),
                Value(4.0),
                Value(1000.0)
            ]
        );
    }

    #[test]
    fn quoted_metric_names() {
        let (l, v) = parse_series(r#"{"my.metric", "x y"="z"} 1"#).unwrap();
        assert_eq!(l.metric_name(), Some("my.metric"));
        assert_eq!(l.get("x y"), Some("z"));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse_values("1+x").is_err());
        assert!(parse_values("abc").is_err());
    }
}
