//! The Prometheus protobuf exposition format
//! (`application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`):
//! length-delimited `MetricFamily` messages, the only format in which
//! targets expose native histograms. Decoded by hand: the schema is small
//! and stable, and a generated-code dependency would cost more than the
//! decoder.
//!
//! Series come out as the text formats name them (`_bucket{le}`, `_sum`,
//! `_count`, `{quantile}`, with `le` and `quantile` formatted as
//! Prometheus 3 does), so a target switching formats keeps its series;
//! a native histogram is one series under the family name.

use crate::model::histogram::{CounterResetHint, FloatHistogram};

use super::parse::float_label;

/// The `Content-Type` (and `Accept` entry) of the format.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/// A malformed body, with the byte offset where decoding failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("protobuf body at byte {offset}: {msg}")]
pub struct ProtoError {
    /// Offset in the body.
    pub offset: usize,
    /// What is wrong.
    pub msg: String,
}

/// A sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtoValue {
    /// A float.
    Float(f64),
    /// A native histogram.
    Histogram(FloatHistogram),
}

/// One decoded sample.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtoSample {
    /// Bytes identifying the series within a body (name and label pairs,
    /// NUL-separated): the scrape cache's key.
    pub series: Vec<u8>,
    /// `__name__` first, then the labels as exposed.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: ProtoValue,
    /// The metric's own timestamp (ms), if it carries one.
    pub timestamp: Option<i64>,
}

/// A protobuf reader over one message.
#[derive(Clone, Copy)]
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    /// Offset of `b` in the whole body, for errors.
    base: usize,
}

/// A field's payload.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(Reader<'a>),
    Fixed32,
}

impl<'a> Reader<'a> {
    fn err(&self, msg: impl Into<String>) -> ProtoError {
        ProtoError {
            offset: self.base + self.i,
            msg: msg.into(),
        }
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let Some(&byte) = self.b.get(self.i) else {
                return Err(self.err("truncated varint"));
            };
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(self.err("varint longer than 10 bytes"));
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<Reader<'a>, ProtoError> {
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| self.err(format!("a field of {n} bytes runs past the end")))?;
        let r = Reader {
            b: &self.b[self.i..end],
            i: 0,
            base: self.base + self.i,
        };
        self.i = end;
        Ok(r)
    }

    /// The next (field number, payload), or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ProtoError> {
        if self.i >= self.b.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let f = match tag & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let r = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(r.b);
                Field::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| self.err("length out of range"))?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            w => return Err(self.err(format!("unsupported wire type {w}"))),
        };
        Ok(Some((tag >> 3, f)))
    }

    fn string(self) -> Result<String, ProtoError> {
        std::str::from_utf8(self.b)
            .map(str::to_string)
            .map_err(|_| self.err("a string is not valid UTF-8"))
    }
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn double(f: &Field) -> Option<f64> {
    match f {
        Field::Fixed64(v) => Some(f64::from_bits(*v)),
        _ => None,
    }
}

fn varint(f: &Field) -> Option<u64> {
    match f {
        Field::Varint(v) => Some(*v),
        _ => None,
    }
}

/// Repeated scalars, packed (one length-delimited field) or not.
fn repeated(f: Field, out: &mut Vec<u64>, fixed: bool) -> Result<(), ProtoError> {
    match f {
        Field::Varint(v) | Field::Fixed64(v) => out.push(v),
        Field::Bytes(mut r) => {
            while r.i < r.b.len() {
                if fixed {
                    let b = r.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b.b);
                    out.push(u64::from_le_bytes(a));
                } else {
                    out.push(r.varint()?);
                }
            }
        }
        Field::Fixed32 => {}
    }
    Ok(())
}

/// The parts of a `Histogram` message.
#[derive(Default)]
struct Hist {
    count: f64,
    sum: f64,
    /// (upper bound, cumulative count).
    buckets: Vec<(f64, f64)>,
    schema: i32,
    zero_threshold: f64,
    zero_count: f64,
    /// (offset, length) spans and deltas or absolute counts, per sign.
    spans: [Vec<(i32, u32)>; 2],
    deltas: [Vec<i64>; 2],
    counts: [Vec<f64>; 2],
    /// Any native part present (Prometheus's test for a native histogram).
    native: bool,
}

fn span(mut r: Reader) -> Result<(i32, u32), ProtoError> {
    let (mut off, mut len) = (0i32, 0u32);
    while let Some((n, f)) = r.next()? {
        match (n, varint(&f)) {
            (1, Some(v)) => off = zigzag(v) as i32,
            (2, Some(v)) => len = v as u32,
            _ => {}
        }
    }
    Ok((off, len))
}

fn histogram(mut r: Reader) -> Result<Hist, ProtoError> {
    let mut h = Hist::default();
    let (mut count_int, mut zero_int) = (None, None);
    let (mut count_float, mut zero_float) = (None, None);
    while let Some((n, f)) = r.next()? {
        match n {
            1 => count_int = varint(&f),
            4 => count_float = double(&f),
            2 => h.sum = double(&f).unwrap_or(0.0),
            3 => {
                let Field::Bytes(mut b) = f else { continue };
                let (mut upper, mut c_int, mut c_float) = (0.0, None, None);
                while let Some((n, f)) = b.next()? {
                    match n {
                        1 => c_int = varint(&f),
                        4 => c_float = double(&f),
                        2 => upper = double(&f).unwrap_or(0.0),
                        _ => {}
                    }
                }
                let c = c_float.unwrap_or(c_int.unwrap_or(0) as f64);
                h.buckets.push((upper, c));
            }
            5 => h.schema = varint(&f).map_or(0, |v| zigzag(v) as i32),
            6 => {
                h.zero_threshold = double(&f).unwrap_or(0.0);
                h.native |= h.zero_threshold > 0.0;
            }
            7 => zero_int = varint(&f),
            8 => zero_float = double(&f),
            9 | 12 => {
                let k = usize::from(n == 12);
                if let Field::Bytes(b) = f {
                    h.spans[k].push(span(b)?);
                    h.native = true;
                }
            }
            10 | 13 => {
                let mut v = Vec::new();
                repeated(f, &mut v, false)?;
                h.deltas[usize::from(n == 13)].extend(v.into_iter().map(zigzag));
            }
            11 | 14 => {
                let mut v = Vec::new();
                repeated(f, &mut v, true)?;
                h.counts[usize::from(n == 14)].extend(v.into_iter().map(f64::from_bits));
            }
            _ => {}
        }
    }
    h.count = count_float.unwrap_or(count_int.unwrap_or(0) as f64);
    h.zero_count = zero_float.unwrap_or(zero_int.unwrap_or(0) as f64);
    h.native |= h.zero_count > 0.0;
    Ok(h)
}

impl Hist {
    /// The native histogram: spans give bucket indexes (the first offset
    /// absolute, the others gaps after the previous span), integer
    /// histograms carry count deltas, float ones absolute counts.
    fn to_native(&self, gauge: bool, at: &Reader) -> Result<FloatHistogram, ProtoError> {
        // Custom buckets do not come over this format.
        if !(-4..=8).contains(&self.schema) {
            return Err(at.err("a native histogram has a schema outside -4 to 8"));
        }
        let mut sides: [Vec<(i32, f64)>; 2] = [Vec::new(), Vec::new()];
        for (k, side) in sides.iter_mut().enumerate() {
            let float = !self.counts[k].is_empty();
            let n_values = if float {
                self.counts[k].len()
            } else {
                self.deltas[k].len()
            };
            let (mut idx, mut j, mut running) = (0i32, 0usize, 0i64);
            for (s, &(off, len)) in self.spans[k].iter().enumerate() {
                idx = if s == 0 { off } else { idx.saturating_add(off) };
                for _ in 0..len {
                    if j >= n_values {
                        return Err(
                            at.err("a native histogram has fewer bucket counts than its spans")
                        );
                    }
                    let c = if float {
                        self.counts[k][j]
                    } else {
                        running = running.saturating_add(self.deltas[k][j]);
                        running as f64
                    };
                    if c != 0.0 {
                        side.push((idx, c));
                    }
                    j += 1;
                    idx = idx.saturating_add(1);
                }
            }
            if j != n_values {
                return Err(at.err("a native histogram has more bucket counts than its spans"));
            }
        }
        let [negative, positive] = sides;
        Ok(FloatHistogram {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive,
            negative,
            custom_values: Vec::new(),
            counter_reset_hint: if gauge {
                CounterResetHint::Gauge
            } else {
                CounterResetHint::Unknown
            },
        })
    }
}

/// Decodes a whole body. `classic_too`: also keep the classic buckets of
/// histograms that are native (`always_scrape_classic_histograms`).
pub fn parse(body: &[u8], classic_too: bool) -> Result<Vec<ProtoSample>, ProtoError> {
    let mut out = Vec::new();
    let mut r = Reader {
        b: body,
        i: 0,
        base: 0,
    };
    while r.i < r.b.len() {
        let n = r.varint()?;
        let n = usize::try_from(n).map_err(|_| r.err("length out of range"))?;
        family(r.take(n)?, classic_too, &mut out)?;
    }
    Ok(out)
}

const SUMMARY: u64 = 2;
const HISTOGRAM: u64 = 4;
const GAUGE_HISTOGRAM: u64 = 5;

fn family(mut r: Reader, classic_too: bool, out: &mut Vec<ProtoSample>) -> Result<(), ProtoError> {
    let start = r;
    let (mut name, mut typ) = (String::new(), 3u64);
    let mut metrics = Vec::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => name = b.string()?,
            (3, Field::Varint(v)) => typ = v,
            (4, Field::Bytes(b)) => metrics.push(b),
            _ => {}
        }
    }
    if name.is_empty() {
        return Err(start.err("a metric family without a name"));
    }
    for m in metrics {
        metric(m, &name, typ, classic_too, out)?;
    }
    Ok(())
}

fn metric(
    mut r: Reader,
    name: &str,
    typ: u64,
    classic_too: bool,
    out: &mut Vec<ProtoSample>,
) -> Result<(), ProtoError> {
    let at = r;
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut timestamp = None;
    let mut value = None;
    let mut summary = None;
    let mut hist = None;
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(mut b)) => {
                let (mut k, mut v) = (String::new(), String::new());
                while let Some((n, f)) = b.next()? {
                    match (n, f) {
                        (1, Field::Bytes(s)) => k = s.string()?,
                        (2, Field::Bytes(s)) => v = s.string()?,
                        _ => {}
                    }
                }
                if k.is_empty() {
                    return Err(at.err(format!("a label of {name} without a name")));
                }
                labels.push((k, v));
            }
            // gauge, counter, untyped: a message with the value in field 1.
            (2 | 3 | 5, Field::Bytes(mut b)) => {
                while let Some((n, f)) = b.next()? {
                    if n == 1 {
                        value = double(&f);
                    }
                }
            }
            (4, Field::Bytes(b)) => summary = Some(b),
            (7, Field::Bytes(b)) => hist = Some(histogram(b)?),
            (6, Field::Varint(v)) => timestamp = Some(v as i64),
            _ => {}
        }
    }
    let mut emit = |suffix: &str, extra: Option<(&str, String)>, v: ProtoValue| {
        let full = format!("{name}{suffix}");
        let mut l = Vec::with_capacity(labels.len() + 2);
        l.push(("__name__".to_string(), full));
        l.extend(labels.iter().cloned());
        if let Some((k, v)) = extra {
            l.push((k.to_string(), v));
        }
        let mut series = Vec::new();
        for (k, v) in &l {
            series.extend_from_slice(k.as_bytes());
            series.push(0);
            series.extend_from_slice(v.as_bytes());
            series.push(0);
        }
        out.push(ProtoSample {
            series,
            labels: l,
            value: v,
            timestamp,
        });
    };
    match typ {
        SUMMARY => {
            let Some(mut b) = summary else { return Ok(()) };
            let (mut count, mut sum) = (0.0, 0.0);
            let mut quantiles = Vec::new();
            while let Some((n, f)) = b.next()? {
                match (n, f) {
                    (1, f) => count = varint(&f).unwrap_or(0) as f64,
                    (2, f) => sum = double(&f).unwrap_or(0.0),
                    (3, Field::Bytes(mut q)) => {
                        let (mut qq, mut qv) = (0.0, 0.0);
                        while let Some((n, f)) = q.next()? {
                            match n {
                                1 => qq = double(&f).unwrap_or(0.0),
                                2 => qv = double(&f).unwrap_or(0.0),
                                _ => {}
                            }
                        }
                        quantiles.push((qq, qv));
                    }
                    _ => {}
                }
            }
            for (q, v) in quantiles {
                emit("", Some(("quantile", float_label(q))), ProtoValue::Float(v));
            }
            emit("_sum", None, ProtoValue::Float(sum));
            emit("_count", None, ProtoValue::Float(count));
        }
        HISTOGRAM | GAUGE_HISTOGRAM => {
            let Some(h) = hist else { return Ok(()) };
            if h.native {
                let nh = h.to_native(typ == GAUGE_HISTOGRAM, &at)?;
                emit("", None, ProtoValue::Histogram(nh));
                if !classic_too || h.buckets.is_empty() {
                    return Ok(());
                }
            }
            let mut inf = false;
            for &(upper, c) in &h.buckets {
                inf |= upper == f64::INFINITY;
                emit(
                    "_bucket",
                    Some(("le", float_label(upper))),
                    ProtoValue::Float(c),
                );
            }
            // The +Inf bucket is implicit in protobuf: it holds the count.
            if !inf {
                emit(
                    "_bucket",
                    Some(("le", "+Inf".to_string())),
                    ProtoValue::Float(h.count),
                );
            }
            emit("_sum", None, ProtoValue::Float(h.sum));
            emit("_count", None, ProtoValue::Float(h.count));
        }
        // Counters, gauges and untyped metrics.
        _ => emit("", None, ProtoValue::Float(value.unwrap_or(0.0))),
    }
    Ok(())
}
