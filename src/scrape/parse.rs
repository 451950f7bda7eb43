//! Parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0 text.
//!
//! Zero-copy: each sample comes back with the raw bytes of its series
//! (name and label block) which the scrape cache uses as a key; labels are
//! only decoded when the cache misses, via [`Parser::labels`].

use std::sync::Arc;

use crate::model::{Label, LabelsBuilder, METRIC_NAME};

/// The exposition format of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (also used for unknown content types).
    PrometheusText,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Delimited protobuf (`super::proto`).
    Protobuf,
}

impl Format {
    /// Picks the format from a `Content-Type` header value. A missing one
    /// is read as text (as Prometheus 2 did); a type that is none of the
    /// exposition formats fails the scrape, as in Prometheus 3, rather
    /// than having a JSON or HTML page parsed as text.
    pub fn from_content_type(ct: Option<&str>) -> Result<Format, String> {
        let Some(raw) = ct.filter(|c| !c.trim().is_empty()) else {
            return Ok(Format::PrometheusText);
        };
        let c = raw.trim_start().to_ascii_lowercase();
        let media = c.split(';').next().unwrap_or("").trim();
        match media {
            "application/openmetrics-text" => Ok(Format::OpenMetrics),
            "text/plain" => Ok(Format::PrometheusText),
            "application/vnd.google.protobuf"
                if c.contains("proto=io.prometheus.client.metricfamily") =>
            {
                Ok(Format::Protobuf)
            }
            _ => Err(format!(
                "received unsupported Content-Type {:?}",
                raw.chars().take(100).collect::<String>()
            )),
        }
    }
}

/// A metric family type as declared by `# TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// counter
    Counter,
    /// gauge
    Gauge,
    /// histogram
    Histogram,
    /// gaugehistogram (OpenMetrics)
    GaugeHistogram,
    /// summary
    Summary,
    /// info (OpenMetrics)
    Info,
    /// stateset (OpenMetrics)
    Stateset,
    /// untyped / unknown
    Unknown,
}

impl MetricType {
    fn parse(s: &[u8], om: bool) -> Option<MetricType> {
        Some(match s {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"summary" => MetricType::Summary,
            b"untyped" if !om => MetricType::Unknown,
            b"unknown" if om => MetricType::Unknown,
            b"gaugehistogram" if om => MetricType::GaugeHistogram,
            b"info" if om => MetricType::Info,
            b"stateset" if om => MetricType::Stateset,
            _ => return None,
        })
    }

    /// The name Prometheus uses in metadata APIs.
    pub fn as_str(&self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// A parse error with the 1-based line it was found on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// One parsed sample. `series` is the raw name-and-labels text.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    /// Raw bytes of the series part of the line; equal bytes mean equal series.
    pub series: &'a [u8],
    /// Sample value.
    pub value: f64,
    /// Explicit timestamp in milliseconds, if the line had one.
    pub timestamp: Option<i64>,
}

/// One parsed entry.
#[derive(Clone, Debug)]
pub enum Entry<'a> {
    /// A sample line.
    Sample(SampleRef<'a>),
    /// `# HELP name text` (text unescaped lazily by the caller if needed).
    Help {
        /// Family name.
        name: &'a str,
        /// Raw help text.
        text: &'a str,
    },
    /// `# TYPE name type`.
    Type {
        /// Family name.
        name: &'a str,
        /// Declared type.
        typ: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics).
    Unit {
        /// Family name.
        name: &'a str,
        /// Unit.
        unit: &'a str,
    },
}

#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: usize,
    end: usize,
    /// Quoted with escapes that need decoding.
    escaped: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct LabelSpan {
    name: Span,
    value: Span,
}

/// Streaming parser over a whole body.
pub struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    line: usize,
    om: bool,
    saw_eof: bool,
    family: &'a [u8],
    family_type: MetricType,
    name: Span,
    labels: Vec<LabelSpan>,
    /// Span from just inside the current sample's `{` to just past its `}`,
    /// if it has a label block. `next` only finds its end; `labels` parses
    /// it on demand.
    block: Option<(usize, usize)>,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn is_label_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn unescape(raw: &str, help: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if !help => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `le` and `quantile` values for a float, as Prometheus 3 writes them.
pub fn float_label(f: f64) -> String {
    let s = crate::template::go_float(f);
    normalize_float_label(&s).unwrap_or(s)
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` and adds
/// `.0` to integral values, the way Prometheus 3 normalizes `le` and
/// `quantile` label values.
pub fn normalize_float_label(v: &str) -> Option<String> {
    let f: f64 = parse_go_float(v)?;
    if f.is_nan() {
        return Some("NaN".into());
    }
    if f.is_infinite() {
        return Some(if f > 0.0 { "+Inf" } else { "-Inf" }.into());
    }
    if f == 0.0 {
        return Some(if f.is_sign_negative() { "-0.0" } else { "0.0" }.into());
    }
    // Shortest round-trip digits and decimal exponent.
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    // Go's 'g' with shortest precision switches to exponent form at 1e6.
    let s = if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    };
    if s.contains(['e', '.']) {
        Some(s)
    } else {
        Some(s + ".0")
    }
}

/// Parses a float the way Go's `strconv.ParseFloat` accepts exposition values.
fn parse_go_float(s: &str) -> Option<f64> {
    parse_float_bytes(s.as_bytes())
}

/// [`parse_go_float`] on raw bytes; integers (most exposed values) take a
/// fast path that needs no UTF-8 check and no general float parser.
fn parse_float_bytes(b: &[u8]) -> Option<f64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let n = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64;
        return Some(if digits.len() < b.len() { -n } else { n });
    }
    match b {
        b"+Inf" | b"Inf" | b"+inf" | b"inf" => return Some(f64::INFINITY),
        b"-Inf" | b"-inf" => return Some(f64::NEG_INFINITY),
        b"NaN" | b"nan" => return Some(f64::NAN),
        _ => {}
    }
    // Rust accepts "infinity"/"nan" in any case, as Go does; it rejects hex
    // floats and `_`, which no exposition library emits.
    if b.is_empty()
        || b.iter()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-')))
    {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse::<f64>().ok()
}

impl<'a> Parser<'a> {
    /// A parser for `buf` in `format`.
    pub fn new(buf: &'a [u8], format: Format) -> Self {
        Parser {
            buf,
            pos: 0,
            line: 0,
            om: format == Format::OpenMetrics,
            saw_eof: false,
            family: b"",
            family_type: MetricType::Unknown,
            name: Span::default(),
            labels: Vec::with_capacity(16),
            block: None,
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.line,
            msg: msg.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn text(&self, s: Span) -> Result<&'a str, ParseError> {
        std::str::from_utf8(&self.buf[s.start..s.end]).or_else(|_| self.err("invalid UTF-8"))
    }

    fn line_end(&self) -> usize {
        memchr::memchr(b'\n', &self.buf[self.pos..]).map_or(self.buf.len(), |i| self.pos + i)
    }

    /// The 1-based line the parser is on.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The next entry, `Ok(None)` at the end of the body.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        loop {
            if self.pos >= self.buf.len() {
                if self.om && !self.saw_eof {
                    self.line += 1;
                    return self.err("data does not end with # EOF");
                }
                return Ok(None);
            }
            self.line += 1;
            if self.saw_eof {
                return self.err("unexpected data after # EOF");
            }
            if !self.om {
                self.skip_blanks();
            }
            match self.peek() {
                Some(b'\n') => {
                    if self.om {
                        return self.err("blank lines are not allowed in OpenMetrics");
                    }
                    self.pos += 1;
                }
                Some(b'#') => {
                    if let Some(e) = self.comment()? {
                        return Ok(Some(e));
                    }
                }
                Some(_) => return self.sample().map(|s| Some(Entry::Sample(s))),
                None => return Ok(None),
            }
        }
    }

    fn end_line(&mut self) -> Result<(), ParseError> {
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
                Ok(())
            }
            None => Ok(()),
            Some(c) => self.err(format!("unexpected {:?} at end of line", c as char)),
        }
    }

    fn comment(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        let end = self.line_end();
        let line = &self.buf[self.pos..end];
        let rest = &line[1..];
        let (kw, after) = if let Some(r) = rest.strip_prefix(b" HELP ") {
            ("HELP", r)
        } else if let Some(r) = rest.strip_prefix(b" TYPE ") {
            ("TYPE", r)
        } else if let Some(r) = rest.strip_prefix(b" UNIT ").filter(|_| self.om) {
            ("UNIT", r)
        } else if self.om && rest == b" EOF" {
            self.saw_eof = true;
            self.pos = end;
            // A final newline after # EOF is allowed.
            if self.peek() == Some(b'\n') {
                self.pos += 1;
            }
            return Ok(None);
        } else {
            if self.om {
                return self.err(
                    "invalid comment: OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF",
                );
            }
            self.pos = end;
            self.end_line()?;
            return Ok(None);
        };
        let after_start = end - after.len();
        // Family name: legacy or quoted.
        let (name, consumed) = self.meta_name(after, after_start)?;
        let tail = &after[consumed..];
        let text = match tail {
            [] if kw == "HELP" => &b""[..],
            [b' ', t @ ..] => t,
            [b'\t', t @ ..] if !self.om => t,
            _ => {
                return self.err(format!(
                    "invalid {kw} line: expected a space after the metric name"
                ));
            }
        };
        let text = std::str::from_utf8(text).or_else(|_| self.err("invalid UTF-8"))?;
        self.pos = end;
        self.end_line()?;
        match kw {
            "HELP" => Ok(Some(Entry::Help { name, text })),
            "TYPE" => {
                let typ = MetricType::parse(text.trim_end().as_bytes(), self.om)
                    .map_or_else(|| self.err(format!("invalid metric type {text:?}")), Ok)?;
                self.family = name.as_bytes();
                self.family_type = typ;
                Ok(Some(Entry::Type { name, typ }))
            }
            _ => {
                if !text.is_empty() && !name.ends_with(&format!("_{text}")) {
                    return self.err(format!("unit {text:?} is not a suffix of metric {name:?}"));
                }
                Ok(Some(Entry::Unit { name, unit: text }))
            }
        }
    }

    fn meta_name(&self, s: &'a [u8], base: usize) -> Result<(&'a str, usize), ParseError> {
        if s.first() == Some(&b'"') {
            let mut i = 1;
            while i < s.len() && s[i] != b'"' {
                if s[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= s.len() {
                return self.err("unterminated quoted metric name");
            }
            let name = std::str::from_utf8(&s[1..i]).or_else(|_| self.err("invalid UTF-8"))?;
            let _ = base;
            return Ok((name, i + 1));
        }
        let n = s.iter().take_while(|&&c| is_name_char(c)).count();
        if n == 0 || !is_name_start(s[0]) {
            return self.err("invalid metric name in metadata line");
        }
        Ok((
            std::str::from_utf8(&s[..n]).or_else(|_| self.err("invalid UTF-8"))?,
            n,
        ))
    }

    /// Scans a quoted string starting at the opening quote.
    fn quoted(&mut self) -> Result<Span, ParseError> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                Some(b'"') => {
                    let s = Span {
                        start,
                        end: self.pos,
                        escaped,
                    };
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(b'\n') | None => return self.err("unterminated quoted string"),
                Some(_) => self.pos += 1,
            }
        }
    }

    fn sample(&mut self) -> Result<SampleRef<'a>, ParseError> {
        let start = self.pos;
        self.name = Span::default();
        self.block = None;
        let name_start = self.pos;
        self.pos += self.buf[self.pos..]
            .iter()
            .position(|&c| !is_name_char(c))
            .unwrap_or(self.buf.len() - self.pos);
        if self.pos > name_start {
            if !is_name_start(self.buf[name_start]) {
                return self.err("metric name must not start with a digit");
            }
            self.name = Span {
                start: name_start,
                end: self.pos,
                escaped: false,
            };
        }
        let before_blanks = self.pos;
        if !self.om {
            self.skip_blanks();
        }
        if self.peek() != Some(b'{') {
            self.pos = before_blanks;
        }
        if self.peek() == Some(b'{') {
            self.pos += 1;
            let block_start = self.pos;
            if self.om {
                self.skip_label_block()?;
            } else {
                // Text lines end with value and timestamp, which cannot
                // hold '}', so the block closes at the line's last '}'.
                // `labels` checks this against a full parse.
                let le = self.line_end();
                match memchr::memrchr(b'}', &self.buf[self.pos..le]) {
                    Some(o) => self.pos += o + 1,
                    None => return self.err("unexpected end of input in label set"),
                }
            }
            self.block = Some((block_start, self.pos));
        } else if self.name.end == 0 {
            return self.err(format!(
                "expected a metric name, got {:?}",
                String::from_utf8_lossy(&self.buf[self.pos..self.line_end().min(self.pos + 20)])
            ));
        }
        let series_end = self.pos;
        if self.skip_blanks() == 0 {
            return self.err("expected whitespace before the sample value");
        }
        let value = self.token_float()?;
        let mut timestamp = None;
        if self.skip_blanks() > 0 && !matches!(self.peek(), Some(b'\n' | b'#') | None) {
            timestamp = Some(self.token_timestamp()?);
            self.skip_blanks();
        }
        if self.om && self.peek() == Some(b'#') {
            self.exemplar()?;
        }
        self.end_line()?;
        // Trim trailing blanks the text format allows inside the series part.
        let mut se = series_end;
        while se > start && matches!(self.buf[se - 1], b' ' | b'\t') {
            se -= 1;
        }
        Ok(SampleRef {
            series: &self.buf[start..se],
            value,
            timestamp,
        })
    }

    /// Finds the end of a label block without interpreting it: the hot path
    /// for series the scrape cache already knows (and so already validated).
    fn skip_label_block(&mut self) -> Result<(), ParseError> {
        let b = self.buf;
        let mut i = self.pos;
        loop {
            match memchr::memchr3(b'}', b'"', b'\n', &b[i..]).map(|o| i + o) {
                Some(j) if b[j] == b'}' => {
                    self.pos = j + 1;
                    return Ok(());
                }
                Some(j) if b[j] == b'"' => {
                    i = j + 1;
                    loop {
                        match memchr::memchr3(b'"', b'\\', b'\n', &b[i..]).map(|o| i + o) {
                            Some(k) if b[k] == b'\\' => i = k + 2,
                            Some(k) if b[k] == b'"' => {
                                i = k + 1;
                                break;
                            }
                            _ => return self.err("unterminated quoted string"),
                        }
                        if i > b.len() {
                            return self.err("unterminated quoted string");
                        }
                    }
                }
                _ => return self.err("unexpected end of input in label set"),
            }
        }
    }

    fn label_block(&mut self) -> Result<(), ParseError> {
        loop {
            self.skip_blanks();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'"') => {
                    let s = self.quoted()?;
                    self.skip_blanks();
                    if matches!(self.peek(), Some(b',' | b'}')) {
                        if self.name.end != 0 {
                            return self.err("metric name given twice");
                        }
                        self.name = s;
                    } else {
                        self.label_value(s)?;
                    }
                }
                Some(c) if is_label_start(c) => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_label_char) {
                        self.pos += 1;
                    }
                    let s = Span {
                        start,
                        end: self.pos,
                        escaped: false,
                    };
                    self.skip_blanks();
                    self.label_value(s)?;
                }
                Some(c) => {
                    return self.err(format!("invalid label name starting with {:?}", c as char));
                }
                None => return self.err("unexpected end of input in label set"),
            }
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return self.err("expected ',' or '}' after label"),
            }
        }
    }

    fn label_value(&mut self, name: Span) -> Result<(), ParseError> {
        if self.peek() != Some(b'=') {
            return self.err("expected '=' after label name");
        }
        self.pos += 1;
        self.skip_blanks();
        if self.peek() != Some(b'"') {
            return self.err("expected '\"' to start label value");
        }
        let value = self.quoted()?;
        self.labels.push(LabelSpan { name, value });
        Ok(())
    }

    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        self.pos = memchr::memchr3(b' ', b'\t', b'\n', &self.buf[start..])
            .map_or(self.buf.len(), |o| start + o);
        &self.buf[start..self.pos]
    }

    fn token_float(&mut self) -> Result<f64, ParseError> {
        let t = self.token();
        parse_float_bytes(t).map_or_else(
            || {
                self.err(format!(
                    "invalid sample value {:?}",
                    String::from_utf8_lossy(t)
                ))
            },
            Ok,
        )
    }

    fn token_timestamp(&mut self) -> Result<i64, ParseError> {
        let t = self.token();
        let s = std::str::from_utf8(t).unwrap_or("");
        if self.om {
            match s.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok((f * 1000.0).round() as i64),
                _ => self.err(format!("invalid timestamp {s:?}")),
            }
        } else {
            s.parse::<i64>()
                .or_else(|_| self.err(format!("invalid timestamp {s:?}")))
        }
    }

    /// Parses and discards an OpenMetrics exemplar: ` # {labels} value [ts]`.
    fn exemplar(&mut self) -> Result<(), ParseError> {
        self.pos += 1;
        if self.skip_blanks() != 1 || self.peek() != Some(b'{') {
            return self.err("invalid exemplar: expected ' # {'");
        }
        self.pos += 1;
        // Exemplar labels must not clobber the sample's label spans.
        let (saved_name, saved) = (self.name, std::mem::take(&mut self.labels));
        let r = self.label_block();
        let ex_len: usize = self
            .labels
            .iter()
            .map(|l| l.name.end - l.name.start + l.value.end - l.value.start)
            .sum();
        self.labels = saved;
        let ex_name = std::mem::replace(&mut self.name, saved_name);
        r?;
        if ex_name.end != saved_name.end {
            return self.err("invalid exemplar: a metric name is not allowed");
        }
        if ex_len > 128 {
            return self.err("exemplar labels exceed 128 UTF-8 characters");
        }
        if self.skip_blanks() == 0 {
            return self.err("invalid exemplar: expected a value");
        }
        self.token_float()?;
        if self.skip_blanks() > 0 && !matches!(self.peek(), Some(b'\n') | None) {
            self.token_timestamp()?;
        }
        Ok(())
    }

    /// Decodes the labels of the sample last returned by [`Parser::next`]
    /// into `b` (cleared first): metric name, unescaped values, `le` and
    /// `quantile` normalized as Prometheus 3 does. Fails on duplicate label
    /// names, invalid UTF-8 and reserved names.
    pub fn labels(&self, b: &mut LabelsBuilder) -> Result<(), ParseError> {
        let mut sub = Parser {
            buf: self.buf,
            pos: self.block.map_or(0, |b| b.0),
            line: self.line,
            om: self.om,
            saw_eof: false,
            family: b"",
            family_type: MetricType::Unknown,
            name: self.name,
            labels: Vec::new(),
            block: None,
        };
        if let Some((_, end)) = self.block {
            sub.label_block()?;
            if sub.pos != end {
                return self.err("unexpected '}' after the label set");
            }
        }
        if sub.name.end == 0 {
            return self.err("metric name missing");
        }
        let name = self.decode(sub.name)?;
        if name.is_empty() {
            return self.err("empty metric name");
        }
        let normalize = match self.family_type {
            MetricType::Histogram | MetricType::GaugeHistogram => Some("le"),
            MetricType::Summary => Some("quantile"),
            _ => None,
        }
        .filter(|_| name.as_bytes().starts_with(self.family));
        static NAME: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        // Collect, then sort once: cheaper than keeping the set sorted on
        // every insert, and duplicates end up next to each other.
        let mut v = Vec::with_capacity(sub.labels.len() + 1);
        v.push(Label {
            name: NAME.get_or_init(|| Arc::from(METRIC_NAME)).clone(),
            value: Arc::from(&*name),
        });
        for l in &sub.labels {
            let n = self.decode(l.name)?;
            if n.is_empty() {
                return self.err("empty label name");
            }
            if n == METRIC_NAME {
                return self.err("label name \"__name__\" is reserved");
            }
            let mut val = self.decode(l.value)?;
            if normalize == Some(&*n) {
                if let Some(nv) = normalize_float_label(&val) {
                    val = std::borrow::Cow::Owned(nv);
                }
            }
            v.push(Label {
                name: Arc::from(&*n),
                value: Arc::from(&*val),
            });
        }
        v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = v.windows(2).find(|w| w[0].name == w[1].name) {
            return self.err(format!("duplicate label name {:?}", &*w[0].name));
        }
        // An empty value means the label is absent, as in Prometheus.
        v.retain(|l| !l.value.is_empty());
        *b = LabelsBuilder::from_sorted(v);
        Ok(())
    }

    fn decode(&self, s: Span) -> Result<std::borrow::Cow<'a, str>, ParseError> {
        let t = self.text(s)?;
        Ok(if s.escaped {
            std::borrow::Cow::Owned(unescape(t, false))
        } else {
            std::borrow::Cow::Borrowed(t)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn all(body: &str, f: Format) -> Result<Vec<(String, f64, Option<i64>)>, ParseError> {
        let mut p = Parser::new(body.as_bytes(), f);
        let mut out = Vec::new();
        while let Some(e) = p.next()? {
            if let Entry::Sample(s) = e {
                let mut b = LabelsBuilder::new();
                p.labels(&mut b)?;
                out.push((b.build().to_string(), s.value, s.timestamp));
            }
        }
        Ok(out)
    }

    #[test]
    fn text_format_features() {
        let body = "# HELP http_requests_total The total.\\nsecond line\n# TYPE http_requests_total counter\n\
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
http_requests_total{method=\"post\",code=\"400\",}    3   1395066363000\n\
\n  # a comment\n\
msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
metric_without_timestamp_and_labels 12.47\n\
something_weird{problem=\"division by zero\"} +Inf -3982045\n\
# TYPE h histogram\n\
h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 4\nh_bucket{le=\"0.05\"} 1\n\
{\"my.dotted\", \"label.x\"=\"v\"} NaN\n\
nolf 1";
        let got = all(body, Format::PrometheusText).unwrap();
        assert_eq!(got.len(), 10);
        assert_eq!(
            got[0].0,
            "http_requests_total{code=\"200\", method=\"post\"}"
        );
        assert_eq!(got[0].2, Some(1395066363000));
        assert_eq!(got[1].1, 3.0);
        assert_eq!(
            got[2].0,
            "msdos_file_access_time_seconds{error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\", path=\"C:\\\\DIR\\\\FILE.TXT\"}"
        );
        assert_eq!(got[4].1, f64::INFINITY);
        assert_eq!(got[4].2, Some(-3982045));
        assert_eq!(got[5].0, "h_bucket{le=\"1.0\"}");
        assert_eq!(got[6].0, "h_bucket{le=\"+Inf\"}");
        assert_eq!(got[7].0, "h_bucket{le=\"0.05\"}");
        assert!(got[8].1.is_nan());
        assert_eq!(got[8].0, "my.dotted{label.x=\"v\"}");
        assert_eq!(got[9].1, 1.0);
    }

    #[test]
    fn openmetrics_features() {
        let body = "# TYPE a counter\n# UNIT a_seconds seconds\n# HELP a help\n\
a_total{x=\"1\"} 1 1520879607.789 # {trace_id=\"abc\"} 0.5 1520879607.1\n\
a_created{x=\"1\"} 1520430000.123\n\
# TYPE s summary\ns{quantile=\"0.9\"} 2\ns_count 3\n# EOF\n";
        let got = all(body, Format::OpenMetrics).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].2, Some(1520879607789));
        assert_eq!(got[1].0, "a_created{x=\"1\"}");
        assert_eq!(got[2].0, "s{quantile=\"0.9\"}");
    }

    #[test]
    fn rejects_what_the_formats_forbid() {
        let cases: &[(&str, Format, usize, &str)] = &[
            (
                "a 1\nb{x=\"1} 2\n",
                Format::PrometheusText,
                2,
                "unterminated",
            ),
            ("a{x=1} 2\n", Format::PrometheusText, 1, "expected '\"'"),
            (
                "a 1\n\nb x\n",
                Format::PrometheusText,
                3,
                "invalid sample value",
            ),
            ("a 1 2 3\n", Format::PrometheusText, 1, "unexpected"),
            (
                "a{x=\"1\",x=\"2\"} 1\n",
                Format::PrometheusText,
                1,
                "duplicate label name",
            ),
            (
                "# TYPE a blah\n",
                Format::PrometheusText,
                1,
                "invalid metric type",
            ),
            ("a 1\n", Format::OpenMetrics, 2, "does not end with # EOF"),
            ("a 1\n\n# EOF\n", Format::OpenMetrics, 2, "blank lines"),
            ("# EOF\na 1\n", Format::OpenMetrics, 2, "after # EOF"),
            (
                "# random\n# EOF\n",
                Format::OpenMetrics,
                1,
                "invalid comment",
            ),
            (
                "# TYPE a_x counter\n# UNIT a_x seconds\n# EOF\n",
                Format::OpenMetrics,
                2,
                "not a suffix",
            ),
            (
                "1a 1\n",
                Format::PrometheusText,
                1,
                "must not start with a digit",
            ),
            ("a 1 1.5\n", Format::PrometheusText, 1, "invalid timestamp"),
            (
                "{x=\"1\"} 1\n",
                Format::PrometheusText,
                1,
                "metric name missing",
            ),
        ];
        for (body, f, line, msg) in cases {
            let e = all(body, *f).expect_err(body);
            assert_eq!(e.line, *line, "{body:?}: {e}");
            assert!(e.msg.contains(msg), "{body:?}: {e}");
        }
        let e = all("a{x=\"\u{0}\u{ff}\"} 1\n", Format::PrometheusText);
        assert!(e.is_ok());
        let bad = b"a{x=\"\xff\"} 1\n";
        let mut p = Parser::new(bad, Format::PrometheusText);
        assert!(matches!(p.next(), Ok(Some(Entry::Sample(_)))));
        assert!(p.labels(&mut LabelsBuilder::new()).is_err());
    }

    #[test]
    fn series_bytes_identify_series() {
        let body = "a{x=\"1\"} 1\na{x=\"1\"}   2 100\n";
        let mut p = Parser::new(body.as_bytes(), Format::PrometheusText);
        let mut keys = Vec::new();
        while let Some(Entry::Sample(s)) = p.next().unwrap() {
            keys.push(s.series.to_vec());
        }
        assert_eq!(keys[0], keys[1]);
    }

    #[test]
    fn float_label_normalization_matches_go() {
        for (i, o) in [
            ("1", "1.0"),
            ("0.5", "0.5"),
            ("1e6", "1e+06"),
            ("100000", "100000.0"),
            ("0.00001", "1e-05"),
            ("+Inf", "+Inf"),
        ] {
            assert_eq!(normalize_float_label(i).as_deref(), Some(o), "{i}");
        }
        let _ = Labels::empty();
    }

    #[test]
    fn damaged_input_never_panics() {
        let body = "# HELP a x\n# TYPE a histogram\na_bucket{le=\"1\",b=\"q\\\"z\"} 1 1000\n{\"u.v\",w=\"1\"} 2\n# EOF\n";
        let bytes = body.as_bytes();
        for f in [Format::PrometheusText, Format::OpenMetrics] {
            for cut in 0..bytes.len() {
                for flip in [0u8, b'"', b'{', b'}', b'\\', b'\n', 0xff, b' '] {
                    let mut b = bytes[..cut].to_vec();
                    if let Some(x) = b.last_mut() {
                        *x = flip;
                    }
                    let mut p = Parser::new(&b, f);
                    let mut lb = LabelsBuilder::new();
                    for _ in 0..100 {
                        match p.next() {
                            Ok(Some(Entry::Sample(_))) => {
                                let _ = p.labels(&mut lb);
                            }
                            Ok(Some(_)) => {}
                            _ => break,
                        }
                    }
                }
            }
        }
    }
}
