//! Go text/template: the syntax Prometheus rule labels and annotations and
//! Alertmanager notifications are written in.
//!
//! A parser (`parse`) and an evaluator with output and step limits. The
//! built-in functions are Go's (`and or not len index print printf println
//! eq ne lt le gt ge html js urlquery`); callers add their own function sets
//! (Prometheus's set is in [`prometheus`]).

pub mod alertmanager;
mod gotime;
pub use gotime::GO_ZERO_TIME_MS;
mod parse;
pub mod prometheus;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;

use parse::{Arg, Node, Pipe};

/// A value templates compute with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Go's nil; prints `<no value>`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer (untyped integer constants are ints, as in Go).
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Value>),
    /// A map with arbitrary values (missing keys are `<no value>`).
    Map(BTreeMap<String, Value>),
    /// A `map[string]string` such as `$labels` (missing keys are "").
    StrMap(BTreeMap<String, String>),
    /// Alertmanager's `KV`: a `map[string]string` with the methods
    /// `SortedPairs`, `Names`, `Values` and `Remove`.
    Kv(BTreeMap<String, String>),
    /// Alertmanager's `Pairs`: name/value pairs (`.Name`, `.Value`) with
    /// the methods `Names` and `Values`.
    Pairs(Vec<(String, String)>),
    /// Alertmanager's `Alerts`: a list with the methods `Firing` and
    /// `Resolved`.
    Alerts(Vec<Value>),
    /// Go's `time.Time`.
    Time(GoTime),
    /// Text that is already HTML (html/template's `template.HTML`): not
    /// escaped again in HTML templates.
    Safe(String),
}

/// A point in time with the zone it is shown in.
#[derive(Clone, Debug, PartialEq)]
pub struct GoTime {
    /// Milliseconds since the Unix epoch.
    pub ms: i64,
    /// Offset from UTC in seconds.
    pub offset_s: i32,
    /// Zone abbreviation (`UTC`, `CET`, …).
    pub zone: Arc<str>,
}

impl GoTime {
    /// A UTC time.
    pub fn utc(ms: i64) -> GoTime {
        GoTime {
            ms,
            offset_s: 0,
            zone: Arc::from("UTC"),
        }
    }
}

impl Value {
    /// Go's truth: false, zero, nil and empty values are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::StrMap(m) | Value::Kv(m) => !m.is_empty(),
            Value::Pairs(p) => !p.is_empty(),
            Value::Alerts(l) => !l.is_empty(),
            // A struct is always true in Go.
            Value::Time(_) => true,
            Value::Safe(s) => !s.is_empty(),
        }
    }

    /// The value as the plain list, map or string it behaves as for
    /// `range`, `len`, `index` and comparisons.
    fn plain(&self) -> std::borrow::Cow<'_, Value> {
        use std::borrow::Cow;
        match self {
            Value::Kv(m) => Cow::Owned(Value::StrMap(m.clone())),
            Value::Pairs(p) => Cow::Owned(Value::List(p.iter().map(pair_value).collect())),
            Value::Alerts(l) => Cow::Owned(Value::List(l.clone())),
            Value::Safe(s) => Cow::Owned(Value::Str(s.clone())),
            other => Cow::Borrowed(other),
        }
    }

    /// Calls a method of the value, if its type has one by that name.
    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let no_args = |v: Value| {
            if args.is_empty() {
                Ok(v)
            } else {
                Err(format!(
                    "wrong number of args for {name}: want 0 got {}",
                    args.len()
                ))
            }
        };
        Some(match (self, name) {
            (Value::Kv(m), "SortedPairs") => no_args(Value::Pairs(
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            )),
            (Value::Kv(m), "Names") => no_args(str_list(m.keys())),
            (Value::Kv(m), "Values") => no_args(str_list(m.values())),
            (Value::Kv(m), "Remove") => {
                let [names] = args else {
                    return Some(Err(format!(
                        "wrong number of args for Remove: want 1 got {}",
                        args.len()
                    )));
                };
                let drop: Vec<String> = match names.plain().as_ref() {
                    Value::List(l) => l.iter().map(|v| v.to_string()).collect(),
                    other => vec![other.to_string()],
                };
                Ok(Value::Kv(
                    m.iter()
                        .filter(|(k, _)| !drop.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ))
            }
            (Value::Pairs(p), "Names") => no_args(str_list(p.iter().map(|x| &x.0))),
            (Value::Pairs(p), "Values") => no_args(str_list(p.iter().map(|x| &x.1))),
            (Value::Alerts(l), "Firing" | "Resolved") => {
                let want = if name == "Firing" {
                    "firing"
                } else {
                    "resolved"
                };
                no_args(Value::Alerts(
                    l.iter()
                        .filter(|a| matches!(a.field("Status"), Ok(Value::Str(s)) if s == want))
                        .cloned()
                        .collect(),
                ))
            }
            (Value::Time(t), _) => return gotime::method(t, name, args),
            _ => return None,
        })
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// `.name` of a map value (for function implementations).
    pub fn field_pub(&self, name: &str) -> Result<Value, String> {
        self.field(name)
    }

    fn field(&self, name: &str) -> Result<Value, String> {
        if let Some(r) = self.method(name, &[]) {
            return r;
        }
        match self {
            Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Nil)),
            Value::StrMap(m) | Value::Kv(m) => {
                Ok(Value::Str(m.get(name).cloned().unwrap_or_default()))
            }
            Value::Nil => Ok(Value::Nil),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map[string]interface {}",
            Value::StrMap(_) => "map[string]string",
            Value::Kv(_) => "template.KV",
            Value::Pairs(_) => "template.Pairs",
            Value::Alerts(_) => "template.Alerts",
            Value::Time(_) => "time.Time",
            Value::Safe(_) => "template.HTML",
        }
    }
}

fn str_list<'a>(it: impl Iterator<Item = &'a String>) -> Value {
    Value::List(it.map(|s| Value::Str(s.clone())).collect())
}

fn pair_value(p: &(String, String)) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Name".to_string(), Value::Str(p.0.clone()));
    m.insert("Value".to_string(), Value::Str(p.1.clone()));
    Value::Map(m)
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`):
/// the shortest digits, in exponent form when the exponent is below -4 or
/// at least 6 (so 1000000 prints as `1e+06`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{f:e}");
    let (m, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        return format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    format!("{f}")
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)` (`upper`: `'E'`): the
/// shortest digits in exponent form with at least two exponent digits,
/// `4.2e+01`, `1E+00`.
pub fn go_float_exp(v: f64, upper: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = if upper {
        format!("{v:E}")
    } else {
        format!("{v:e}")
    };
    let (m, e) = s.split_once(['e', 'E']).unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let letter = if upper { 'E' } else { 'e' };
    format!("{m}{letter}{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

impl std::fmt::Display for Value {
    /// Go's `fmt.Sprint` of the value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Nil => f.write_str("<no value>"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&go_float(*x)),
            Value::Str(s) => f.write_str(s),
            Value::List(l) | Value::Alerts(l) => write_seq(f, "[", l.iter()),
            Value::Map(m) => write_seq(f, "map[", m.iter().map(|(k, v)| format!("{k}:{v}"))),
            Value::StrMap(m) | Value::Kv(m) => {
                write_seq(f, "map[", m.iter().map(|(k, v)| format!("{k}:{v}")))
            }
            Value::Pairs(p) => write_seq(f, "[", p.iter().map(|(k, v)| format!("{{{k} {v}}}"))),
            Value::Time(t) => f.write_str(&gotime::string(t)),
            Value::Safe(s) => f.write_str(s),
        }
    }
}

/// Go's `%v` of a sequence: `open`, the items separated by spaces, `]`.
fn write_seq<T: std::fmt::Display>(
    f: &mut std::fmt::Formatter<'_>,
    open: &str,
    items: impl Iterator<Item = T>,
) -> std::fmt::Result {
    f.write_str(open)?;
    for (i, v) in items.enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{v}")?;
    }
    f.write_str("]")
}

/// Why a template failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The text does not parse.
    #[error("template: {name}:{line}: {msg}")]
    Parse {
        /// Template name.
        name: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// Execution failed (bad call, limit reached).
    #[error("template: {name}:{line}: executing {name:?}: {msg}")]
    Exec {
        /// Template name.
        name: String,
        /// 1-based line of the action.
        line: usize,
        /// What went wrong.
        msg: String,
    },
}

/// A template function.
pub type Func = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// Functions available to a template, by name.
#[derive(Clone, Default)]
pub struct Funcs(HashMap<String, Func>);

impl Funcs {
    /// Go's built-in functions.
    pub fn builtin() -> Funcs {
        let mut f = Funcs::default();
        f.add("not", |a| Ok(Value::Bool(!arg(a, 0)?.truthy())));
        f.add("len", |a| {
            Ok(Value::Int(match arg(a, 0)?.plain().as_ref() {
                Value::Str(s) => s.len() as i64,
                Value::List(l) => l.len() as i64,
                Value::Map(m) => m.len() as i64,
                Value::StrMap(m) => m.len() as i64,
                other => return Err(format!("len of type {}", other.type_name())),
            }))
        });
        f.add("index", |a| {
            let mut v = arg(a, 0)?.clone();
            for k in &a[1..] {
                v = match (v.plain().as_ref(), k.plain().as_ref()) {
                    (Value::List(l), k) => {
                        let i = k.as_f64().ok_or("cannot index slice with non-integer")? as usize;
                        l.get(i).cloned().ok_or_else(|| {
                            format!("error calling index: index out of range: {i}")
                        })?
                    }
                    (Value::Map(m), Value::Str(s)) => m.get(s).cloned().unwrap_or(Value::Nil),
                    (Value::StrMap(m), Value::Str(s)) => {
                        Value::Str(m.get(s).cloned().unwrap_or_default())
                    }
                    (other, _) => {
                        return Err(format!("can't index item of type {}", other.type_name()));
                    }
                };
            }
            Ok(v)
        });
        f.add("print", |a| Ok(Value::Str(sprint(a))));
        f.add("println", |a| {
            let s: Vec<String> = a.iter().map(|v| v.to_string()).collect();
            Ok(Value::Str(s.join(" ") + "\n"))
        });
        f.add("printf", |a| {
            let Value::Str(fmt) = arg(a, 0)? else {
                return Err("printf: format must be a string".into());
            };
            Ok(Value::Str(sprintf(fmt, &a[1..])))
        });
        for (name, op) in [
            ("eq", 0),
            ("ne", 1),
            ("lt", 2),
            ("le", 3),
            ("gt", 4),
            ("ge", 5),
        ] {
            f.add(name, move |a| compare(op, a).map(Value::Bool));
        }
        f.add("html", |a| Ok(Value::Str(html_escape(&sprint(a)))));
        f.add("js", |a| {
            let s = sprint(a);
            let mut o = String::new();
            for c in s.chars() {
                match c {
                    '\\' => o.push_str("\\\\"),
                    '\'' => o.push_str("\\'"),
                    '"' => o.push_str("\\\""),
                    '<' => o.push_str("\\u003C"),
                    '>' => o.push_str("\\u003E"),
                    '&' => o.push_str("\\u0026"),
                    '=' => o.push_str("\\u003D"),
                    '\n' => o.push_str("\\n"),
                    c => o.push(c),
                }
            }
            Ok(Value::Str(o))
        });
        f.add("urlquery", |a| Ok(Value::Str(url_escape(&sprint(a)))));
        f
    }

    /// Adds or replaces a function.
    pub fn add(
        &mut self,
        name: &str,
        f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) {
        self.0.insert(name.to_string(), Arc::new(f));
    }

    /// True if `name` is defined.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name) || name == "and" || name == "or"
    }
}

fn arg(a: &[Value], i: usize) -> Result<&Value, String> {
    a.get(i)
        .ok_or_else(|| format!("wrong number of args: want at least {}", i + 1))
}

fn sprint(a: &[Value]) -> String {
    // Go's Sprint puts spaces between operands when neither is a string.
    let mut s = String::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 && !matches!(v, Value::Str(_)) && !matches!(a[i - 1], Value::Str(_)) {
            s.push(' ');
        }
        let _ = write!(s, "{v}");
    }
    s
}

/// HTML-escapes as Go's `html` function does.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\'' => o.push_str("&#39;"),
            '"' => o.push_str("&#34;"),
            '\0' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// Query-escapes as Go's `url.QueryEscape`.
pub fn url_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            _ => {
                let _ = write!(o, "%{b:02X}");
            }
        }
    }
    o
}

fn compare(op: u8, a: &[Value]) -> Result<bool, String> {
    let x = arg(a, 0)?;
    let ys = if op == 0 {
        &a[1..]
    } else {
        &a[1..2.min(a.len())]
    };
    if ys.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let cmp = |x: &Value, y: &Value| -> Result<std::cmp::Ordering, String> {
        match (x.plain().as_ref(), y.plain().as_ref()) {
            (Value::Int(p), Value::Int(q)) => Ok(p.cmp(q)),
            (Value::Str(p), Value::Str(q)) => Ok(p.cmp(q)),
            (Value::Bool(p), Value::Bool(q)) if op <= 1 => Ok(p.cmp(q)),
            (Value::Nil, Value::Nil) if op <= 1 => Ok(std::cmp::Ordering::Equal),
            _ => match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => p
                    .partial_cmp(&q)
                    .ok_or_else(|| "incomparable NaN".to_string()),
                _ => Err("incompatible types for comparison".into()),
            },
        }
    };
    use std::cmp::Ordering::*;
    if op == 0 {
        for y in ys {
            if cmp(x, y)? == Equal {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let o = cmp(x, &ys[0])?;
    Ok(match op {
        1 => o != Equal,
        2 => o == Less,
        3 => o != Greater,
        4 => o == Greater,
        _ => o != Less,
    })
}

/// A subset of Go's `fmt.Sprintf`: flags `-+ 0#`, width, precision and the
/// verbs `v s d f F e E g G x X o b c q t %`.
pub fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut ai = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = it.peek() {
            if "-+ 0#".contains(f) {
                flags.push(f);
                it.next();
            } else {
                break;
            }
        }
        // Go gives up on a width or precision above a million: it writes
        // %!(NOVERB) and ignores the rest of the format.
        let Some(w) = go_fmt_number(&mut it) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let Some(p) = go_fmt_number(&mut it) else {
                out.push_str("%!(NOVERB)");
                break;
            };
            prec = Some(p.unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(v) = args.get(ai) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        ai += 1;
        let num = v.as_f64();
        let body = match verb {
            'v' | 's' => match (verb, prec, v) {
                ('s', Some(p), Value::Str(s)) => s.chars().take(p).collect(),
                _ => v.to_string(),
            },
            'd' => match v {
                Value::Int(i) => {
                    if flags.contains('+') && *i >= 0 {
                        format!("+{i}")
                    } else {
                        i.to_string()
                    }
                }
                _ => format!("%!d({} {v})", v.type_name()),
            },
            'f' | 'F' => match num {
                Some(x) if x.is_finite() => {
                    let s = fixed(x, prec.unwrap_or(6));
                    if flags.contains('+') && x >= 0.0 {
                        format!("+{s}")
                    } else {
                        s
                    }
                }
                Some(x) => go_float(x),
                None => format!("%!{verb}({} {v})", v.type_name()),
            },
            'e' | 'E' => match num {
                Some(x) => {
                    let s = scientific(x, prec.unwrap_or(6));
                    let s = match s.split_once('e') {
                        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
                        Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
                        None => s,
                    };
                    if verb == 'E' { s.to_uppercase() } else { s }
                }
                None => format!("%!{verb}({} {v})", v.type_name()),
            },
            'g' | 'G' => match (num, prec) {
                (Some(x), None) => go_float(x),
                (Some(x), Some(p)) => {
                    let p = p.max(1);
                    let exp = if x == 0.0 {
                        0
                    } else {
                        x.abs().log10().floor() as i32
                    };
                    if exp < -4 || exp >= p as i32 {
                        let s = scientific(x, p - 1);
                        match s.split_once('e') {
                            Some((m, e)) => {
                                let m = if m.contains('.') {
                                    m.trim_end_matches('0').trim_end_matches('.')
                                } else {
                                    m
                                };
                                let e: i32 = e.parse().unwrap_or(0);
                                format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                            }
                            None => s,
                        }
                    } else {
                        let d = (p as i64 - 1 - exp as i64).max(0) as usize;
                        let s = fixed(x, d);
                        if s.contains('.') {
                            s.trim_end_matches('0').trim_end_matches('.').to_string()
                        } else {
                            s
                        }
                    }
                }
                (None, _) => format!("%!{verb}({} {v})", v.type_name()),
            },
            'x' | 'X' => {
                let s = match v {
                    Value::Int(i) => format!("{i:x}"),
                    Value::Str(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                    _ => format!("%!x({} {v})", v.type_name()),
                };
                if verb == 'X' { s.to_uppercase() } else { s }
            }
            'o' => match v {
                Value::Int(i) => format!("{i:o}"),
                _ => format!("%!o({} {v})", v.type_name()),
            },
            'b' => match v {
                Value::Int(i) => format!("{i:b}"),
                _ => format!("%!b({} {v})", v.type_name()),
            },
            'c' => match v {
                Value::Int(i) => char::from_u32(*i as u32)
                    .map(String::from)
                    .unwrap_or_default(),
                _ => format!("%!c({} {v})", v.type_name()),
            },
            'q' => match v {
                Value::Str(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            },
            't' => match v {
                Value::Bool(b) => b.to_string(),
                _ => format!("%!t({} {v})", v.type_name()),
            },
            other => format!("%!{other}({} {v})", v.type_name()),
        };
        let w = w.unwrap_or(0);
        let n = body.chars().count();
        if n < w {
            let pad = w - n;
            if flags.contains('-') {
                out.push_str(&body);
                out.extend(std::iter::repeat_n(' ', pad));
            } else if flags.contains('0') && num.is_some() {
                let (sign, digits) = match body.strip_prefix('-') {
                    Some(d) => ("-", d),
                    None => ("", body.as_str()),
                };
                out.push_str(sign);
                out.extend(std::iter::repeat_n('0', pad));
                out.push_str(digits);
            } else {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if ai < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[ai..]
            .iter()
            .map(|v| format!("{}={v}", v.type_name()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// The largest width or precision Go's fmt takes.
const GO_FMT_MAX_NUMBER: usize = 1_000_000;

/// Reads a width or precision: `Some(None)` if there are no digits,
/// `None` if it is above Go's limit (the rest of the format is then
/// consumed, as Go does).
fn go_fmt_number(it: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Option<usize>> {
    let mut n: Option<usize> = None;
    while let Some(d) = it.peek().and_then(|c| c.to_digit(10)) {
        if n.is_some_and(|n| n > GO_FMT_MAX_NUMBER) {
            it.for_each(drop);
            return None;
        }
        n = Some(n.unwrap_or(0) * 10 + d as usize);
        it.next();
    }
    Some(n)
}

/// Digits of an `f64` beyond which every digit is zero: the exact
/// decimal expansion of any double ends within 1,074 fractional digits
/// and 767 significant ones.
const EXACT_FLOAT_DIGITS: usize = 1_100;

/// `x` with `prec` fractional digits, as Go prints it; Rust's formatter
/// takes at most 65,535, so the always-zero tail is added by hand.
fn fixed(x: f64, prec: usize) -> String {
    let mut s = format!("{:.*}", prec.min(EXACT_FLOAT_DIGITS), x);
    if prec > EXACT_FLOAT_DIGITS {
        s.extend(std::iter::repeat_n('0', prec - EXACT_FLOAT_DIGITS));
    }
    s
}

/// `x` in Rust's `e` notation with `prec` mantissa digits (zero tail
/// added by hand as in [`fixed`]).
fn scientific(x: f64, prec: usize) -> String {
    let s = format!("{:.*e}", prec.min(EXACT_FLOAT_DIGITS), x);
    if prec <= EXACT_FLOAT_DIGITS {
        return s;
    }
    match s.split_once('e') {
        Some((m, e)) => {
            let zeros = "0".repeat(prec - EXACT_FLOAT_DIGITS);
            format!("{m}{zeros}e{e}")
        }
        None => s,
    }
}

/// Execution limits: a runaway template fails instead of hanging or
/// exhausting memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest output in bytes.
    pub max_output: usize,
    /// Most nodes and commands evaluated.
    pub max_steps: usize,
    /// HTML output (Go's html/template): what actions print is
    /// HTML-escaped unless it is [`Value::Safe`].
    pub html: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output: 1 << 20,
            max_steps: 100_000,
            html: false,
        }
    }
}

/// A parsed template with its `define`d sub-templates.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    root: Vec<Node>,
    defines: HashMap<String, Vec<Node>>,
    /// Templates `define`d elsewhere that this one may call (a template
    /// set, as Alertmanager's notification templates form one).
    parent: Option<Arc<Template>>,
}

impl Template {
    /// Parses `text`. Function names are checked at execution, as the
    /// function set is the caller's; [`Template::check_funcs`] checks them
    /// ahead of time.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let p = parse::parse(name, text)?;
        Ok(Template {
            name: name.to_string(),
            root: p.root,
            defines: p.defines.into_iter().collect(),
            parent: None,
        })
    }

    /// Parses `text` in the set `base` belongs to: it may call every
    /// template `base` (and its parents) define; its own `define`s win.
    pub fn parse_in(
        name: &str,
        text: &str,
        base: &Arc<Template>,
    ) -> Result<Template, TemplateError> {
        let mut t = Template::parse(name, text)?;
        t.parent = Some(base.clone());
        Ok(t)
    }

    /// Adds the `define`s of `other` to this template's own (a later file
    /// redefining a name replaces it, as Go's template sets do).
    pub fn merge_defines(&mut self, other: Template) {
        self.defines.extend(other.defines);
    }

    /// The names of the templates this one can call, sorted.
    pub fn defined_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.defines.keys().cloned().collect();
        let mut p = self.parent.as_deref();
        while let Some(t) = p {
            out.extend(t.defines.keys().cloned());
            p = t.parent.as_deref();
        }
        out.sort();
        out.dedup();
        out
    }

    fn lookup(&self, name: &str) -> Option<&Vec<Node>> {
        let mut t = Some(self);
        while let Some(x) = t {
            if let Some(n) = x.defines.get(name) {
                return Some(n);
            }
            t = x.parent.as_deref();
        }
        None
    }

    /// Reports the first function the template calls that `funcs` lacks,
    /// as Go's parser does (`function "x" not defined`).
    pub fn check_funcs(&self, funcs: &Funcs) -> Result<(), TemplateError> {
        fn walk_pipe(p: &Pipe, funcs: &Funcs) -> Result<(), (usize, String)> {
            for cmd in &p.cmds {
                for a in cmd {
                    match a {
                        Arg::Ident(n) if !funcs.has(n) => {
                            return Err((p.line, format!("function {n:?} not defined")));
                        }
                        Arg::Sub(inner, _) => walk_pipe(inner, funcs)?,
                        _ => {}
                    }
                }
            }
            Ok(())
        }
        fn walk(nodes: &[Node], funcs: &Funcs) -> Result<(), (usize, String)> {
            for n in nodes {
                match n {
                    Node::Action(p) => walk_pipe(p, funcs)?,
                    Node::If(p, a, b) | Node::Range(p, a, b) | Node::With(p, a, b) => {
                        walk_pipe(p, funcs)?;
                        walk(a, funcs)?;
                        walk(b, funcs)?;
                    }
                    Node::Template(_, Some(p)) => walk_pipe(p, funcs)?,
                    _ => {}
                }
            }
            Ok(())
        }
        let mut all: Vec<&Vec<Node>> = vec![&self.root];
        all.extend(self.defines.values());
        let mut p = self.parent.as_deref();
        while let Some(t) = p {
            all.extend(t.defines.values());
            p = t.parent.as_deref();
        }
        for nodes in all {
            walk(nodes, funcs).map_err(|(line, msg)| TemplateError::Parse {
                name: self.name.clone(),
                line,
                msg,
            })?;
        }
        Ok(())
    }

    /// Runs the template with `data` as dot and `$`.
    pub fn execute(
        &self,
        data: &Value,
        funcs: &Funcs,
        limits: Limits,
    ) -> Result<String, TemplateError> {
        let mut ex = Exec {
            t: self,
            funcs,
            limits,
            out: String::new(),
            steps: 0,
            vars: vec![("$".to_string(), data.clone())],
            line: 1,
            depth: 0,
        };
        match ex.nodes(&self.root, data) {
            Ok(_) => Ok(ex.out),
            Err(msg) => Err(TemplateError::Exec {
                name: self.name.clone(),
                line: ex.line,
                msg,
            }),
        }
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    t: &'a Template,
    funcs: &'a Funcs,
    limits: Limits,
    out: String,
    steps: usize,
    vars: Vec<(String, Value)>,
    line: usize,
    depth: usize,
}

impl Exec<'_> {
    fn step(&mut self) -> Result<(), String> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(format!(
                "exceeded {} evaluation steps",
                self.limits.max_steps
            ));
        }
        Ok(())
    }

    fn emit(&mut self, s: &str) -> Result<(), String> {
        if self.out.len() + s.len() > self.limits.max_output {
            return Err(format!("output exceeds {} bytes", self.limits.max_output));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, String> {
        let mark = self.vars.len();
        let r = self.nodes_inner(nodes, dot);
        self.vars.truncate(mark);
        r
    }

    fn nodes_inner(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, String> {
        for n in nodes {
            self.step()?;
            match n {
                Node::Text(t) => self.emit(t)?,
                Node::Action(p) => {
                    self.line = p.line;
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        let s = match &v {
                            Value::Safe(s) => s.clone(),
                            v if self.limits.html => html_escape(&v.to_string()),
                            v => v.to_string(),
                        };
                        self.emit(&s)?;
                    }
                }
                Node::If(p, a, b) => {
                    self.line = p.line;
                    let v = self.pipe_scoped(p, dot)?;
                    let f = if v.truthy() {
                        self.nodes(a, dot)?
                    } else {
                        self.nodes(b, dot)?
                    };
                    if !matches!(f, Flow::Normal) {
                        return Ok(f);
                    }
                }
                Node::With(p, a, b) => {
                    self.line = p.line;
                    let v = self.pipe_scoped(p, dot)?;
                    let f = if v.truthy() {
                        self.nodes(a, &v)?
                    } else {
                        self.nodes(b, dot)?
                    };
                    if !matches!(f, Flow::Normal) {
                        return Ok(f);
                    }
                }
                Node::Range(p, body, els) => {
                    self.line = p.line;
                    let mark = self.vars.len();
                    let v = self.eval_cmds(p, dot)?;
                    let items: Vec<(Value, Value)> = match v.plain().into_owned() {
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Int(i as i64), v))
                            .collect(),
                        Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                        Value::StrMap(m) => m
                            .into_iter()
                            .map(|(k, v)| (Value::Str(k), Value::Str(v)))
                            .collect(),
                        // Every iteration is a step, so more than the step
                        // limit can never finish: none is materialised.
                        Value::Int(n) => (0..n.clamp(0, self.limits.max_steps as i64 + 1))
                            .map(|i| (Value::Int(i), Value::Int(i)))
                            .collect(),
                        Value::Nil => Vec::new(),
                        other => return Err(format!("range can't iterate over {other}")),
                    };
                    if items.is_empty() {
                        self.vars.truncate(mark);
                        self.nodes(els, dot)?;
                        continue;
                    }
                    for (k, v) in items {
                        self.step()?;
                        self.vars.truncate(mark);
                        match p.decl.len() {
                            0 => {}
                            1 => self.vars.push((p.decl[0].clone(), v.clone())),
                            _ => {
                                self.vars.push((p.decl[0].clone(), k));
                                self.vars.push((p.decl[1].clone(), v.clone()));
                            }
                        }
                        match self.nodes(body, &v)? {
                            Flow::Break => break,
                            _ => continue,
                        }
                    }
                    self.vars.truncate(mark);
                }
                Node::Template(name, arg) => {
                    let v = match arg {
                        Some(p) => self.pipe_scoped(p, dot)?,
                        None => Value::Nil,
                    };
                    let Some(body) = self.t.lookup(name) else {
                        return Err(format!("no such template {name:?}"));
                    };
                    self.depth += 1;
                    if self.depth > 100 {
                        return Err("exceeded maximum template depth (100)".into());
                    }
                    // A called template sees only its own `$`.
                    let saved =
                        std::mem::replace(&mut self.vars, vec![("$".to_string(), v.clone())]);
                    let r = self.nodes(body, &v);
                    self.vars = saved;
                    self.depth -= 1;
                    r?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    /// A pipeline whose variables live only for the control structure.
    fn pipe_scoped(&mut self, p: &Pipe, dot: &Value) -> Result<Value, String> {
        self.pipe(p, dot)
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, String> {
        let v = self.eval_cmds(p, dot)?;
        for name in &p.decl {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(format!("undefined variable: {name}")),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_cmds(&mut self, p: &Pipe, dot: &Value) -> Result<Value, String> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            self.step()?;
            prev = Some(self.command(cmd, dot, prev)?);
        }
        Ok(prev.unwrap_or(Value::Nil))
    }

    fn fields(mut v: Value, fields: &[String]) -> Result<Value, String> {
        for f in fields {
            v = v.field(f)?;
        }
        Ok(v)
    }

    fn operand(&mut self, a: &Arg, dot: &Value) -> Result<Value, String> {
        match a {
            Arg::Field(f) => Self::fields(dot.clone(), f),
            Arg::Var(name, f) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable: {name}"))?;
                Self::fields(v, f)
            }
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Num(n, is_int) => Ok(if *is_int {
                Value::Int(*n as i64)
            } else {
                Value::Float(*n)
            }),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Nil),
            Arg::Ident(name) => self.call(name, &[], dot, None),
            Arg::Sub(p, f) => {
                let v = self.eval_cmds(p, dot)?;
                Self::fields(v, f)
            }
        }
    }

    fn command(&mut self, cmd: &[Arg], dot: &Value, prev: Option<Value>) -> Result<Value, String> {
        // A field chain followed by arguments calls its last element as a
        // method with them (`.CommonLabels.Remove .GroupLabels.Names`).
        let chain = match &cmd[0] {
            Arg::Field(f) | Arg::Var(_, f) | Arg::Sub(_, f) if !f.is_empty() => Some(f),
            _ => None,
        };
        if let Some(fields) = chain.filter(|_| cmd.len() > 1 || prev.is_some()) {
            let (last, init) = fields.split_last().ok_or("empty field chain")?;
            let base = match &cmd[0] {
                Arg::Var(n, _) => self.operand(&Arg::Var(n.clone(), init.to_vec()), dot)?,
                Arg::Sub(p, _) => {
                    let v = self.eval_cmds(p, dot)?;
                    Self::fields(v, init)?
                }
                _ => Self::fields(dot.clone(), init)?,
            };
            let mut vals = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                vals.push(self.operand(a, dot)?);
            }
            vals.extend(prev);
            return base
                .method(last, &vals)
                .unwrap_or_else(|| Err(format!("{last} is not a method but has arguments")));
        }
        match &cmd[0] {
            Arg::Ident(name) => self.call(name, &cmd[1..], dot, prev),
            first => {
                if cmd.len() > 1 || prev.is_some() {
                    return Err(format!("can't give argument to non-function {first:?}"));
                }
                self.operand(first, dot)
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        args: &[Arg],
        dot: &Value,
        prev: Option<Value>,
    ) -> Result<Value, String> {
        // `and`/`or` short-circuit and return the deciding operand.
        if name == "and" || name == "or" {
            let mut last = Value::Nil;
            let total = args.len() + prev.is_some() as usize;
            if total < 1 {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            for a in args {
                last = self.operand(a, dot)?;
                if (name == "and") != last.truthy() {
                    return Ok(last);
                }
            }
            if let Some(p) = prev {
                last = p;
            }
            return Ok(last);
        }
        let f = self
            .funcs
            .0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("function {name:?} not defined"))?;
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.operand(a, dot)?);
        }
        if let Some(p) = prev {
            vals.push(p);
        }
        f(&vals).map_err(|e| format!("error calling {name}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &str, data: Value) -> Result<String, TemplateError> {
        Template::parse("t", t)?.execute(&data, &Funcs::builtin(), Limits::default())
    }

    fn labels() -> Value {
        let mut m = BTreeMap::new();
        m.insert("instance".to_string(), "host:9100".to_string());
        m.insert("job".to_string(), "node".to_string());
        let mut root = BTreeMap::new();
        root.insert("Labels".to_string(), Value::StrMap(m));
        root.insert("Value".to_string(), Value::Float(0.25));
        Value::Map(root)
    }

    #[test]
    fn printf_widths_and_precisions_have_gos_limits() {
        let out = run(r#"{{ printf "%.65536f" 1.0 }}"#, Value::Nil).unwrap();
        assert_eq!(out.len(), 2 + 65_536);
        assert!(out.starts_with("1.000") && out.ends_with('0'));
        let out = run(r#"{{ printf "%.2000e" 0.1 }}"#, Value::Nil).unwrap();
        assert!(
            out.starts_with("1.000000000000000055511151231257827"),
            "{out:.60}"
        );
        assert!(out.ends_with("0e-01"), "{}", &out[out.len() - 10..]);
        assert_eq!(
            run(r#"{{ printf "%999999999d|%d" 1 2 }}"#, Value::Nil).unwrap(),
            "%!(NOVERB)%!(EXTRA int=1, int=2)"
        );
        assert_eq!(
            run(r#"{{ printf "%.999999999f" 1.0 }}"#, Value::Nil).unwrap(),
            "%!(NOVERB)%!(EXTRA float64=1)"
        );
        assert_eq!(
            run(r#"{{ printf "%5d|%-4s|" 42 "ab" }}"#, Value::Nil).unwrap(),
            "   42|ab  |"
        );
        assert_eq!(
            run(r#"{{ printf "%.3g" 123456.0 }}"#, Value::Nil).unwrap(),
            "1.23e+05"
        );
    }

    #[test]
    fn a_huge_range_stops_at_the_step_limit() {
        let e = run("{{ range $i := 1000000000 }}{{ end }}", Value::Nil).unwrap_err();
        assert!(
            e.to_string().contains("exceeded 100000 evaluation steps"),
            "{e}"
        );
        assert_eq!(
            run("{{ range $i := 3 }}{{ $i }}{{ end }}", Value::Nil).unwrap(),
            "012"
        );
    }

    #[test]
    fn fields_variables_and_pipelines() {
        let out = run(
            "{{ $l := .Labels }}{{ $l.instance }} ({{ .Labels.job }}) {{ .Value }} {{ .Labels.missing }}|{{ .Nope }}|{{ \"x\" | printf \"%s-%s\" \"a\" }}",
            labels(),
        )
        .unwrap();
        assert_eq!(out, "host:9100 (node) 0.25 |<no value>|a-x");
    }

    #[test]
    fn control_structures_and_trimming() {
        let t = "{{- if gt .Value 0.5 -}} high {{- else if gt .Value 0.1 -}} mid {{- else -}} low {{- end }}\n{{ range $k, $v := .Labels }}{{ $k }}={{ $v }};{{ end }}{{ with .Nope }}x{{ else }}none{{ end }}";
        assert_eq!(
            run(t, labels()).unwrap(),
            "mid\ninstance=host:9100;job=node;none"
        );
        let t = "{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .Value }}{{ block \"y\" 3 }}<{{ . }}>{{ end }}";
        assert_eq!(run(t, labels()).unwrap(), "[0.25]<3>");
        let t = "{{ range $i, $e := .L }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ $e }}{{ end }}";
        let data = Value::Map(BTreeMap::from([(
            "L".to_string(),
            Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
        )]));
        assert_eq!(run(t, data).unwrap(), "12");
        assert_eq!(run("a {{/* note */}} b", Value::Nil).unwrap(), "a  b");
    }

    #[test]
    fn builtins_behave_as_go() {
        let v = Value::Nil;
        assert_eq!(
            run(
                "{{ printf \"%.2f|%5d|%-4s|%q|%x\" 3.14159 42 \"ab\" \"q\" 255 }}",
                v.clone()
            )
            .unwrap(),
            "3.14|   42|ab  |\"q\"|ff"
        );
        assert_eq!(
            run(
                "{{ and 1 0 2 }}{{ or 0 \"\" \"z\" }}{{ not true }}",
                v.clone()
            )
            .unwrap(),
            "0zfalse"
        );
        assert_eq!(
            run("{{ len \"abc\" }}{{ eq 1 2 1 }}{{ lt 1.5 2 }}", v.clone()).unwrap(),
            "3truetrue"
        );
        assert_eq!(
            run("{{ html \"<a&b>\" }} {{ urlquery \"a b&c\" }}", v.clone()).unwrap(),
            "&lt;a&amp;b&gt; a+b%26c"
        );
        assert_eq!(
            run("{{ 1000000.0 }} {{ 1e21 }} {{ 0.00001 }}", v.clone()).unwrap(),
            "1e+06 1e+21 1e-05"
        );
    }

    #[test]
    fn errors_name_the_line_and_limits_hold() {
        let e = Template::parse("t", "a\n{{ if }}").unwrap_err();
        assert!(matches!(e, TemplateError::Parse { line: 2, .. }), "{e}");
        let e = Template::parse("t", "{{ .a ").unwrap_err();
        assert!(e.to_string().contains("unclosed action"), "{e}");
        let e = run("x\n{{ nosuch 1 }}", Value::Nil).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: t:2: executing \"t\": function \"nosuch\" not defined"
        );
        let t = Template::parse("t", "{{ nosuch }}").unwrap();
        assert!(t.check_funcs(&Funcs::builtin()).is_err());
        let t = Template::parse(
            "t",
            "{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}",
        )
        .unwrap();
        assert!(
            t.execute(&Value::Nil, &Funcs::builtin(), Limits::default())
                .is_err()
        );
        let t = Template::parse("t", "{{ range 100000 }}xxxxxxxxxx{{ end }}").unwrap();
        let e = t
            .execute(
                &Value::Nil,
                &Funcs::builtin(),
                Limits {
                    max_output: 1000,
                    max_steps: 1 << 30,
                    html: false,
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("output exceeds 1000 bytes"), "{e}");
    }
}
