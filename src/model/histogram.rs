//! Native histograms (float flavour), with Prometheus's semantics for
//! exponential schemas (-4..8) and custom buckets (schema -53).
//!
//! Buckets are kept sparse as sorted `(index, count)` pairs. A bucket
//! present with count 0 is kept until [`FloatHistogram::compact`], because
//! Prometheus keeps such buckets in its spans and results are compared
//! span for span.

use super::kahan_inc;

/// Schema number of native histograms with custom bucket bounds (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// What the producer said about counter resets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CounterResetHint {
    /// Nothing known.
    #[default]
    Unknown,
    /// This sample follows a counter reset.
    Reset,
    /// This sample does not follow a reset.
    NotReset,
    /// The histogram is a gauge: resets do not apply.
    Gauge,
}

/// A histogram with float counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloatHistogram {
    /// Resolution: bucket boundaries grow by 2^(2^-schema); -53 means
    /// custom bounds.
    pub schema: i32,
    /// Width of the zero bucket `[-t, t]`.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// Total observations.
    pub count: f64,
    /// Sum of observations.
    pub sum: f64,
    /// Positive buckets, sorted by index.
    pub positive: Vec<(i32, f64)>,
    /// Negative buckets, sorted by index (index i covers
    /// `[-bound(i), -bound(i-1))`).
    pub negative: Vec<(i32, f64)>,
    /// Upper bounds of the custom buckets (schema -53), ascending, without
    /// +Inf.
    pub custom_values: Vec<f64>,
    /// Reset hint.
    pub counter_reset_hint: CounterResetHint,
}

/// One bucket with its bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Count.
    pub count: f64,
    /// Bucket index (0 for the zero bucket).
    pub index: i32,
    /// True for positive and custom buckets, false for negative ones.
    pub positive: bool,
    /// True for the zero bucket.
    pub zero: bool,
}

/// Adding or subtracting histograms of exponential and custom schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply this operation to histograms with exponential and custom bucket schemas")]
pub struct IncompatibleSchema;

/// The upper bound of exponential bucket `idx` at `schema`.
pub fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = (idx as i64) << (-schema);
        if exp >= 1024 {
            return f64::MAX;
        }
        return 2f64.powi(exp as i32);
    }
    let frac_idx = idx & ((1 << schema) - 1);
    let frac = 0.5 * 2f64.powf(frac_idx as f64 / (1i64 << schema) as f64);
    let exp = (idx >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    frac * 2f64.powi(exp)
}

/// Whether `schema` is one native histograms may have: exponential
/// schemas -4 to 8, or custom buckets.
pub fn valid_schema(schema: i32) -> bool {
    (-4..=8).contains(&schema) || schema == CUSTOM_BUCKETS_SCHEMA
}

fn target_idx(idx: i32, origin: i32, target: i32) -> i32 {
    // Schemas are checked where histograms come in; the clamp keeps a
    // wider difference from overflowing the shift all the same.
    (idx.saturating_sub(1) >> (origin - target).clamp(0, 31)).saturating_add(1)
}

fn reduce(buckets: &[(i32, f64)], from: i32, to: i32) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.len());
    for &(i, c) in buckets {
        let t = target_idx(i, from, to);
        match out.last_mut() {
            Some(l) if l.0 == t => l.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Merges `b` into `a` (sorted); `sign` is 1 or -1. Buckets of `b` whose
/// absolute upper bound is within `threshold` are skipped (they are in
/// the zero bucket).
fn add_buckets(a: &mut Vec<(i32, f64)>, b: &[(i32, f64)], sign: f64, skip: impl Fn(i32) -> bool) {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j < b.len() && skip(b[j].0) {
            j += 1;
            continue;
        }
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1 + sign * y.1));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.0, sign * y.1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    *a = out;
}

impl FloatHistogram {
    /// True for schema -53.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Multiplies all counts and the sum.
    pub fn mul(&mut self, f: f64) {
        self.zero_count *= f;
        self.count *= f;
        self.sum *= f;
        self.positive.iter_mut().for_each(|b| b.1 *= f);
        self.negative.iter_mut().for_each(|b| b.1 *= f);
        if f < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Divides all counts and the sum; dividing by zero drops the buckets.
    pub fn div(&mut self, f: f64) {
        self.zero_count /= f;
        self.count /= f;
        self.sum /= f;
        if f == 0.0 {
            self.positive.clear();
            self.negative.clear();
            return;
        }
        self.positive.iter_mut().for_each(|b| b.1 /= f);
        self.negative.iter_mut().for_each(|b| b.1 /= f);
        if f < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Equality as Prometheus's `Equals`: every field but the reset hint,
    /// with the sum compared bit for bit (so NaN sums compare equal).
    pub fn equals(&self, o: &FloatHistogram) -> bool {
        self.schema == o.schema
            && self.zero_threshold == o.zero_threshold
            && self.zero_count == o.zero_count
            && self.count == o.count
            && self.sum.to_bits() == o.sum.to_bits()
            && self.positive == o.positive
            && self.negative == o.negative
            && self.custom_values == o.custom_values
    }

    /// Drops empty buckets.
    pub fn compact(&mut self) {
        self.positive.retain(|b| b.1 != 0.0);
        self.negative.retain(|b| b.1 != 0.0);
    }

    /// Prometheus's `Compact(n)`: drops leading and trailing empty buckets
    /// and runs of more than `n` empty buckets, and joins buckets separated
    /// by gaps of at most `n` by filling the gaps with empty buckets.
    pub fn compact_n(&mut self, n: usize) {
        fn one(v: &mut Vec<(i32, f64)>, n: usize) {
            // Drop runs of zeros longer than n, and leading/trailing zeros.
            let mut kept: Vec<(i32, f64)> = Vec::with_capacity(v.len());
            let mut i = 0;
            while i < v.len() {
                if v[i].1 != 0.0 {
                    kept.push(v[i]);
                    i += 1;
                    continue;
                }
                let mut j = i;
                while j < v.len() && v[j].1 == 0.0 && (j == i || v[j].0 == v[j - 1].0 + 1) {
                    j += 1;
                }
                let leading = kept.is_empty();
                let trailing = j == v.len();
                let contiguous_before = i > 0 && v[i - 1].0 + 1 == v[i].0;
                let contiguous_after = j < v.len() && v[j - 1].0 + 1 == v[j].0;
                if !leading && !trailing && j - i <= n && contiguous_before && contiguous_after {
                    kept.extend_from_slice(&v[i..j]);
                }
                i = j;
            }
            // Fill small gaps.
            let mut out: Vec<(i32, f64)> = Vec::with_capacity(kept.len());
            for b in kept {
                if let Some(&(last, _)) = out.last() {
                    let gap = (b.0 - last - 1) as usize;
                    if gap > 0 && gap <= n {
                        for k in 1..=gap as i32 {
                            out.push((last + k, 0.0));
                        }
                    }
                }
                out.push(b);
            }
            *v = out;
        }
        one(&mut self.positive, n);
        one(&mut self.negative, n);
    }

    /// Lowers the resolution to `target` (no-op unless lower).
    pub fn reduce_resolution(&mut self, target: i32) {
        if self.uses_custom_buckets() || target >= self.schema {
            return;
        }
        self.positive = reduce(&self.positive, self.schema, target);
        self.negative = reduce(&self.negative, self.schema, target);
        self.schema = target;
    }

    /// The zero count if the zero bucket were widened to at least `t`,
    /// and the threshold actually reached (a bucket straddling `t` is
    /// swallowed whole).
    fn zero_count_for_larger_threshold(&self, larger: f64) -> (f64, f64) {
        if larger == self.zero_threshold {
            return (self.zero_count, larger);
        }
        let mut larger = larger;
        'outer: loop {
            let (mut zc, mut c) = (self.zero_count, 0.0);
            for &(i, cnt) in &self.positive {
                let lower = exponential_bound(i - 1, self.schema);
                let upper = exponential_bound(i, self.schema);
                if lower >= larger {
                    break;
                }
                (zc, c) = kahan_inc(cnt, zc, c);
                if upper > larger {
                    if cnt != 0.0 {
                        larger = upper;
                    }
                    break;
                }
            }
            for &(i, cnt) in &self.negative {
                let upper = -exponential_bound(i - 1, self.schema);
                let lower = -exponential_bound(i, self.schema);
                if upper <= -larger {
                    break;
                }
                (zc, c) = kahan_inc(cnt, zc, c);
                if lower < -larger {
                    if cnt != 0.0 {
                        larger = -lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zc + c, larger);
        }
    }

    fn trim_buckets_in_zero_bucket(&mut self) {
        let (t, s) = (self.zero_threshold, self.schema);
        for b in self.positive.iter_mut() {
            if exponential_bound(b.0 - 1, s) >= t {
                break;
            }
            b.1 = 0.0;
        }
        for b in self.negative.iter_mut() {
            if -exponential_bound(b.0 - 1, s) <= -t {
                break;
            }
            b.1 = 0.0;
        }
        self.compact();
    }

    /// Makes both zero buckets equally wide; returns `other`'s zero count
    /// at the common threshold.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_zc = other.zero_count;
        let mut other_t = other.zero_threshold;
        while other_t != self.zero_threshold {
            if self.zero_threshold > other_t {
                (other_zc, other_t) = other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_t > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_t);
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_zc
    }

    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        match (self.counter_reset_hint, other.counter_reset_hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.counter_reset_hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.counter_reset_hint = Unknown;
                false
            }
            _ => {
                self.counter_reset_hint = Unknown;
                true
            }
        }
    }

    /// `self += other`. Returns (counter reset collision, custom bounds
    /// reconciled).
    pub fn add(&mut self, other: &FloatHistogram) -> Result<(bool, bool), IncompatibleSchema> {
        self.add_signed(other, 1.0)
    }

    /// `self -= other`, as [`FloatHistogram::add`].
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<(bool, bool), IncompatibleSchema> {
        self.add_signed(other, -1.0)
    }

    fn add_signed(
        &mut self,
        other: &FloatHistogram,
        sign: f64,
    ) -> Result<(bool, bool), IncompatibleSchema> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(IncompatibleSchema);
        }
        let collision = self.adjust_counter_reset(other);
        if !self.uses_custom_buckets() {
            let ozc = self.reconcile_zero_buckets(other);
            self.zero_count += sign * ozc;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        if self.uses_custom_buckets() {
            if self.custom_values == other.custom_values {
                add_buckets(&mut self.positive, &other.positive, sign, |_| false);
                return Ok((collision, false));
            }
            let bounds = intersect_bounds(&self.custom_values, &other.custom_values);
            let mine = remap_custom(&self.positive, &self.custom_values, &bounds);
            let theirs = remap_custom(&other.positive, &other.custom_values, &bounds);
            self.positive = mine;
            add_buckets(&mut self.positive, &theirs, sign, |_| false);
            self.custom_values = bounds;
            return Ok((collision, true));
        }
        let mut op = other.positive.clone();
        let mut on = other.negative.clone();
        if other.schema < self.schema {
            self.positive = reduce(&self.positive, self.schema, other.schema);
            self.negative = reduce(&self.negative, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            op = reduce(&op, other.schema, self.schema);
            on = reduce(&on, other.schema, self.schema);
        }
        let (s, t) = (self.schema, self.zero_threshold);
        add_buckets(&mut self.positive, &op, sign, |i| {
            exponential_bound(i, s) <= t
        });
        add_buckets(&mut self.negative, &on, sign, |i| {
            exponential_bound(i, s) <= t
        });
        Ok((collision, false))
    }

    /// True if `self` cannot follow `prev` without a counter reset.
    pub fn detect_reset(&self, prev: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            _ => {}
        }
        if self.count < prev.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !prev.uses_custom_buckets() {
                return true;
            }
            if self.custom_values != prev.custom_values {
                let bounds = intersect_bounds(&self.custom_values, &prev.custom_values);
                let cur = remap_custom(&self.positive, &self.custom_values, &bounds);
                let old = remap_custom(&prev.positive, &prev.custom_values, &bounds);
                return buckets_decreased(&cur, &old);
            }
            return buckets_decreased(&self.positive, &prev.positive);
        }
        if prev.uses_custom_buckets() {
            return true;
        }
        if self.schema > prev.schema {
            return true;
        }
        if self.zero_threshold < prev.zero_threshold {
            return true;
        }
        let (pzc, t) = prev.zero_count_for_larger_threshold(self.zero_threshold);
        if t != self.zero_threshold {
            return true;
        }
        if self.zero_count < pzc {
            return true;
        }
        let (s, zt) = (self.schema, self.zero_threshold);
        let keep = |v: &Vec<(i32, f64)>| -> Vec<(i32, f64)> {
            v.iter()
                .copied()
                .filter(|&(i, _)| exponential_bound(i, s) > zt)
                .collect()
        };
        let pp = keep(&reduce(&prev.positive, prev.schema, s));
        let pn = keep(&reduce(&prev.negative, prev.schema, s));
        buckets_decreased(&keep(&self.positive), &pp)
            || buckets_decreased(&keep(&self.negative), &pn)
    }

    /// Every bucket in ascending order of value: negative buckets, the zero
    /// bucket (when it holds anything), positive buckets.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let mut out = Vec::with_capacity(self.positive.len() + self.negative.len() + 1);
        if self.uses_custom_buckets() {
            for &(i, c) in &self.positive {
                let lower = if i == 0 {
                    f64::NEG_INFINITY
                } else {
                    self.custom_values
                        .get(i as usize - 1)
                        .copied()
                        .unwrap_or(f64::INFINITY)
                };
                let upper = self
                    .custom_values
                    .get(i as usize)
                    .copied()
                    .unwrap_or(f64::INFINITY);
                out.push(Bucket {
                    lower,
                    upper,
                    count: c,
                    index: i,
                    positive: true,
                    zero: false,
                });
            }
            return out;
        }
        let t = self.zero_threshold;
        for &(i, c) in self.negative.iter().rev() {
            let mut upper = -exponential_bound(i - 1, self.schema);
            let lower = -exponential_bound(i, self.schema);
            if upper < 0.0 && upper > -t {
                upper = -t;
            }
            out.push(Bucket {
                lower,
                upper,
                count: c,
                index: i,
                positive: false,
                zero: false,
            });
        }
        if self.zero_count > 0.0 {
            out.push(Bucket {
                lower: -t,
                upper: t,
                count: self.zero_count,
                index: 0,
                positive: true,
                zero: true,
            });
        }
        for &(i, c) in &self.positive {
            let mut lower = exponential_bound(i - 1, self.schema);
            let upper = exponential_bound(i, self.schema);
            if lower > 0.0 && lower < t {
                lower = t;
            }
            out.push(Bucket {
                lower,
                upper,
                count: c,
                index: i,
                positive: true,
                zero: false,
            });
        }
        out
    }

    /// Estimated q-quantile of the observations; also whether NaN
    /// observations made the result NaN (`Some(true)`) or skewed it
    /// (`Some(false)`).
    pub fn quantile(&self, q: f64) -> (f64, Option<bool>) {
        if q < 0.0 {
            return (f64::NEG_INFINITY, None);
        }
        if q > 1.0 {
            return (f64::INFINITY, None);
        }
        if self.count == 0.0 || q.is_nan() {
            return (f64::NAN, None);
        }
        let mut buckets = self.all_buckets();
        let forward = self.sum.is_nan() || q < 0.5;
        if !forward {
            buckets.reverse();
        }
        let mut rank = if forward {
            q * self.count
        } else {
            (1.0 - q) * self.count
        };
        let mut count = 0.0;
        let mut idx = 0usize;
        let mut bucket = None;
        while idx < buckets.len() {
            let b = buckets[idx];
            idx += 1;
            if b.count == 0.0 {
                continue;
            }
            count += b.count;
            bucket = Some(b);
            if count >= rank {
                break;
            }
        }
        let Some(mut b) = bucket else {
            // No populated bucket at all: every observation was NaN.
            return (f64::NAN, self.sum.is_nan().then_some(true));
        };
        if !self.uses_custom_buckets() && b.lower < 0.0 && b.upper > 0.0 {
            if self.negative.is_empty() && !self.positive.is_empty() {
                b.lower = 0.0;
            } else if self.positive.is_empty() && !self.negative.is_empty() {
                b.upper = 0.0;
            }
        } else if self.uses_custom_buckets() {
            if b.lower == f64::NEG_INFINITY {
                if b.upper <= 0.0 {
                    return (b.upper, None);
                }
                b.lower = 0.0;
            } else if b.upper == f64::INFINITY {
                return (b.lower, None);
            }
        }
        if count > self.count {
            count = self.count;
        }
        if count < rank {
            if self.sum.is_nan() {
                return (f64::NAN, Some(true));
            }
            return (b.upper, None);
        }
        if forward {
            rank -= count - b.count;
        } else {
            rank = count - rank;
        }
        let mut nan_info = None;
        if self.sum.is_nan() {
            let rest: f64 = buckets[idx..].iter().map(|b| b.count).sum();
            if count + rest < self.count {
                nan_info = Some(false);
            }
        }
        let fraction = rank / b.count;
        if self.uses_custom_buckets() || (b.lower <= 0.0 && b.upper >= 0.0) {
            return (b.lower + (b.upper - b.lower) * fraction, nan_info);
        }
        let ll = b.lower.abs().log2();
        let lu = b.upper.abs().log2();
        if b.lower > 0.0 {
            return ((ll + (lu - ll) * fraction).exp2(), nan_info);
        }
        (-((lu + (ll - lu) * (1.0 - fraction)).exp2()), nan_info)
    }

    /// Estimated fraction of observations in `[lower, upper]`, and whether
    /// NaN observations were excluded.
    pub fn fraction(&self, lower: f64, upper: f64) -> (f64, bool) {
        if self.count == 0.0 || lower.is_nan() || upper.is_nan() {
            return (f64::NAN, false);
        }
        if lower >= upper {
            return (0.0, false);
        }
        let buckets = self.all_buckets();
        let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
        let (mut lower_set, mut upper_set) = (false, false);
        let mut idx = 0;
        while idx < buckets.len() {
            let mut b = buckets[idx];
            idx += 1;
            count += b.count;
            let mut zero = false;
            if b.lower <= 0.0 && b.upper >= 0.0 {
                zero = true;
                if self.negative.is_empty() && !self.positive.is_empty() {
                    b.lower = 0.0;
                } else if self.positive.is_empty() && !self.negative.is_empty() {
                    b.upper = 0.0;
                }
            }
            let linear = self.uses_custom_buckets() || zero;
            let interp = |v: f64| -> f64 {
                if linear {
                    if b.lower == f64::NEG_INFINITY {
                        return b.count;
                    }
                    return rank + b.count * (v - b.lower) / (b.upper - b.lower);
                }
                let (ll, lu, lv) = (b.lower.abs().log2(), b.upper.abs().log2(), v.abs().log2());
                let f = if v > 0.0 {
                    (lv - ll) / (lu - ll)
                } else {
                    1.0 - (lv - lu) / (ll - lu)
                };
                rank + b.count * f
            };
            if !lower_set && b.lower >= lower {
                lower_rank = rank;
                lower_set = true;
            }
            if !upper_set && b.lower >= upper {
                upper_rank = rank;
                upper_set = true;
            }
            if lower_set && upper_set {
                break;
            }
            if !lower_set && b.lower < lower && b.upper > lower {
                lower_rank = interp(lower);
                lower_set = true;
            }
            if !upper_set && b.lower < upper && b.upper > upper {
                upper_rank = interp(upper);
                upper_set = true;
            }
            if lower_set && upper_set {
                break;
            }
            rank += b.count;
        }
        let mut nan_excluded = false;
        if self.sum.is_nan() {
            count += buckets[idx..].iter().map(|b| b.count).sum::<f64>();
            nan_excluded = count < self.count;
        } else {
            count = self.count;
        }
        if !lower_set || lower_rank > count {
            lower_rank = count;
        }
        if !upper_set || upper_rank > count {
            upper_rank = count;
        }
        ((upper_rank - lower_rank) / self.count, nan_excluded)
    }

    /// Estimated variance of the observations (bucket midpoints).
    pub fn variance(&self) -> f64 {
        let mean = self.sum / self.count;
        let (mut v, mut c) = (0.0, 0.0);
        for b in self.all_buckets() {
            if b.count == 0.0 {
                continue;
            }
            let val = if self.uses_custom_buckets() {
                (b.upper + b.lower) / 2.0
            } else if b.lower <= 0.0 && b.upper >= 0.0 {
                0.0
            } else {
                let m = (b.upper * b.lower).sqrt();
                if b.upper < 0.0 { -m } else { m }
            };
            let d = val - mean;
            (v, c) = kahan_inc(b.count * d * d, v, c);
        }
        (v + c) / self.count
    }

    /// Spans and dense bucket counts, as Prometheus encodes buckets:
    /// (offset, length) pairs and the counts they cover.
    pub fn spans(buckets: &[(i32, f64)]) -> (Vec<(i32, u32)>, Vec<f64>) {
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut counts = Vec::with_capacity(buckets.len());
        let mut next = 0i32;
        for (k, &(i, c)) in buckets.iter().enumerate() {
            if k > 0 && i == next {
                if let Some(s) = spans.last_mut() {
                    s.1 += 1;
                }
            } else {
                let off = if k == 0 { i } else { i - next };
                spans.push((off, 1));
            }
            next = i + 1;
            counts.push(c);
        }
        (spans, counts)
    }
}

/// Sums histograms with compensated summation of `sum` and `count` (so
/// `1e100 + x - 1e100` keeps `x`), and averages them switching to an
/// incremental mean when the plain sum would overflow, as Prometheus does.
#[derive(Debug, Default)]
pub struct HistogramSum {
    acc: Option<FloatHistogram>,
    sum_c: f64,
    count_c: f64,
    mean: Option<FloatHistogram>,
    mean_sum_c: f64,
    mean_count_c: f64,
    n: f64,
    /// Averaging: switch to an incremental mean when the sum overflows.
    averaging: bool,
    /// A counter-reset hint of `Reset` was seen.
    pub reset_seen: bool,
    /// A counter-reset hint of `NotReset` was seen.
    pub not_reset_seen: bool,
    /// Custom bucket bounds had to be reconciled.
    pub reconciled: bool,
}

impl FloatHistogram {
    fn has_overflow(&self) -> bool {
        !self.count.is_finite()
            || !self.sum.is_finite() && !self.sum.is_nan()
            || !self.zero_count.is_finite()
            || self
                .positive
                .iter()
                .chain(&self.negative)
                .any(|b| b.1.is_infinite())
    }
}

impl HistogramSum {
    /// A sum for computing a mean (`avg`, `avg_over_time`).
    pub fn for_mean() -> Self {
        HistogramSum {
            averaging: true,
            ..Default::default()
        }
    }

    /// Adds one histogram.
    pub fn add(&mut self, h: &FloatHistogram) -> Result<(), IncompatibleSchema> {
        self.n += 1.0;
        match h.counter_reset_hint {
            CounterResetHint::Reset => self.reset_seen = true,
            CounterResetHint::NotReset => self.not_reset_seen = true,
            _ => {}
        }
        if let Some(mean) = &mut self.mean {
            let q = (self.n - 1.0) / self.n;
            let (old_sum, old_count) = (mean.sum * q, mean.count * q);
            mean.mul(q);
            let mut x = h.clone();
            x.div(self.n);
            let (_, rec) = mean.add(&x)?;
            self.reconciled |= rec;
            // Sum and count keep a compensation term, scaled like the mean.
            let (s, sc) = kahan_inc(h.sum / self.n, old_sum, q * self.mean_sum_c);
            let (c, cc) = kahan_inc(h.count / self.n, old_count, q * self.mean_count_c);
            mean.sum = s;
            mean.count = c;
            self.mean_sum_c = sc;
            self.mean_count_c = cc;
            return Ok(());
        }
        let Some(acc) = &mut self.acc else {
            self.acc = Some(h.clone());
            return Ok(());
        };
        let (old_sum, old_count) = (acc.sum, acc.count);
        let mut next = acc.clone();
        let (_, rec) = next.add(h)?;
        self.reconciled |= rec;
        let (s, sc) = kahan_inc(h.sum, old_sum, self.sum_c);
        let (c, cc) = kahan_inc(h.count, old_count, self.count_c);
        next.sum = s;
        next.count = c;
        if self.averaging && next.has_overflow() && self.n > 1.0 {
            // Switch to an incremental mean from what was summed so far.
            let mut mean = acc.clone();
            mean.div(self.n - 1.0);
            self.mean_sum_c = self.sum_c / (self.n - 1.0);
            self.mean_count_c = self.count_c / (self.n - 1.0);
            self.acc = None;
            self.mean = Some(mean);
            self.n -= 1.0;
            return self.add(h);
        }
        *acc = next;
        self.sum_c = sc;
        self.count_c = cc;
        Ok(())
    }

    /// The sum (infinite counts if it overflowed).
    pub fn sum(mut self) -> Option<FloatHistogram> {
        if let Some(mut m) = self.mean.take() {
            m.mul(self.n);
            return Some(m);
        }
        let mut h = self.acc?;
        h.sum += self.sum_c;
        h.count += self.count_c;
        Some(h)
    }

    /// The mean.
    pub fn mean(mut self) -> Option<FloatHistogram> {
        if let Some(mut m) = self.mean.take() {
            m.sum += self.mean_sum_c;
            m.count += self.mean_count_c;
            return Some(m);
        }
        let n = self.n;
        let mut h = self.sum()?;
        h.div(n);
        Some(h)
    }
}

/// True if any bucket of `old` holds more than the same bucket of `cur`.
fn buckets_decreased(cur: &[(i32, f64)], old: &[(i32, f64)]) -> bool {
    let mut j = 0;
    for &(i, c) in old {
        while j < cur.len() && cur[j].0 < i {
            j += 1;
        }
        let now = match cur.get(j) {
            Some(&(ci, cc)) if ci == i => cc,
            _ => 0.0,
        };
        if now < c {
            return true;
        }
    }
    false
}

/// Bounds present in both custom-bucket layouts.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().copied().filter(|x| b.contains(x)).collect()
}

/// Moves custom buckets onto a coarser layout whose bounds are a subset.
fn remap_custom(buckets: &[(i32, f64)], from: &[f64], to: &[f64]) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::new();
    for &(i, c) in buckets {
        let upper = from.get(i as usize).copied().unwrap_or(f64::INFINITY);
        let t = to.iter().position(|&b| b >= upper).unwrap_or(to.len()) as i32;
        match out.last_mut() {
            Some(l) if l.0 == t => l.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

impl std::fmt::Display for FloatHistogram {
    /// Prometheus's `String()`: count, sum, then every non-empty bucket
    /// with its bounds, e.g. `{count:3, sum:2, [-1,-0.5):1, (1,2]:2}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::format_float as g;
        write!(f, "{{count:{}, sum:{}", g(self.count), g(self.sum))?;
        if self.uses_custom_buckets() {
            for b in self.all_buckets().iter().filter(|b| b.count != 0.0) {
                write!(f, ", ({},{}]:{}", g(b.lower), g(b.upper), g(b.count))?;
            }
            return f.write_str("}");
        }
        for &(i, c) in self.negative.iter().rev().filter(|b| b.1 != 0.0) {
            let lower = -exponential_bound(i, self.schema);
            let upper = -exponential_bound(i - 1, self.schema);
            write!(f, ", [{},{}):{}", g(lower), g(upper), g(c))?;
        }
        if self.zero_count != 0.0 {
            let t = self.zero_threshold;
            write!(f, ", [{},{}]:{}", g(-t), g(t), g(self.zero_count))?;
        }
        for &(i, c) in self.positive.iter().filter(|b| b.1 != 0.0) {
            let lower = exponential_bound(i - 1, self.schema);
            let upper = exponential_bound(i, self.schema);
            write!(f, ", ({},{}]:{}", g(lower), g(upper), g(c))?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_schemas_far_apart_does_not_overflow() {
        // Only -4..8 come in, but a wider gap must not overflow the shift
        // (the fuzzer reached schema 40 through the unit-test notation).
        let mut a = h(40, &[(1, 1.0), (-7, 2.0)]);
        let b = h(0, &[(1, 1.0)]);
        assert!(a.add(&b).is_ok());
        assert_eq!(a.schema, 0);
        assert!(valid_schema(8) && valid_schema(-4) && valid_schema(CUSTOM_BUCKETS_SCHEMA));
        assert!(!valid_schema(9) && !valid_schema(-5) && !valid_schema(40));
    }

    fn h(schema: i32, pos: &[(i32, f64)]) -> FloatHistogram {
        let count = pos.iter().map(|b| b.1).sum();
        FloatHistogram {
            schema,
            count,
            sum: 10.0,
            positive: pos.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn bounds_follow_the_schema() {
        assert_eq!(exponential_bound(1, 0), 2.0);
        assert_eq!(exponential_bound(0, 0), 1.0);
        assert!((exponential_bound(1, 1) - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(exponential_bound(1, -1), 4.0);
    }

    #[test]
    fn adding_reduces_to_the_coarser_schema() {
        let mut a = h(1, &[(1, 1.0), (2, 1.0)]);
        let b = h(0, &[(1, 3.0)]);
        a.add(&b).unwrap();
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive, vec![(1, 5.0)]);
        assert_eq!(a.count, 5.0);
    }

    #[test]
    fn resets_are_detected_per_bucket() {
        let prev = h(0, &[(1, 2.0), (2, 2.0)]);
        let mut cur = h(0, &[(1, 3.0), (2, 1.0)]);
        assert!(cur.detect_reset(&prev));
        cur.positive[1].1 = 2.0;
        cur.count = 5.0;
        assert!(!cur.detect_reset(&prev));
    }

    #[test]
    fn quantile_interpolates_exponentially() {
        let x = h(0, &[(1, 1.0)]);
        let (q, _) = x.quantile(0.5);
        assert!((q - 2f64.sqrt()).abs() < 1e-12, "{q}");
    }

    #[test]
    fn spans_encode_runs() {
        let (s, c) = FloatHistogram::spans(&[(0, 1.0), (1, 0.0), (4, 2.0)]);
        assert_eq!(s, vec![(0, 2), (2, 1)]);
        assert_eq!(c, vec![1.0, 0.0, 2.0]);
    }
}
