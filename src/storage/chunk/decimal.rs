//! The decimal encoding of a full chunk ([`super::DECIMAL`]).
//!
//! Stream: the first timestamp (64 bits, as in XOR, so a chunk's start is
//! read the same way in both), 4 bits of decimal places `K`, 1 bit of mode,
//! then the first value as an integer `m` (a value is `m / 10^K`), then
//! for each further sample its timestamp's delta of delta (XOR's buckets)
//! and either the integer's difference from the one before (mode 0) or
//! that difference's difference (mode 1: counters that grow at a steady
//! rate). Integers are written in buckets of a unary prefix and a
//! sign-extended payload: `0` for zero, then 5, 12, 22, 36 or 64 bits.
//!
//! A value is stored only if dividing its integer by `10^K` (exact for
//! `K` ≤ 22, and the integer is at most 2^53) gives back the same bit
//! pattern, so decoding is exact; NaN, infinities, stale markers and
//! `-0.0` keep a chunk in XOR.

use super::{
    BitReader, BitWriter, XorChunk, bucketed_bits, get_bucketed, get_dod, put_bucketed, put_dod,
};

/// Most decimal places tried (4 bits in the stream).
const MAX_PLACES: usize = 15;

/// Powers of ten, each exact in an f64.
const POW10: [f64; MAX_PLACES + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Largest integer magnitude stored: every integer up to it is exact in an
/// f64.
const MAX_INT: f64 = 9_007_199_254_740_992.0;

/// Payload widths of the integers' buckets.
const WIDTHS: [u8; 4] = [5, 12, 22, 36];

/// `v` as an integer of `places` decimal places, if it is exactly that.
fn to_int(v: f64, places: usize) -> Option<i64> {
    let p = POW10[places];
    let m = (v * p).round();
    // NaN and infinities fail this too.
    if m.is_nan() || m.abs() > MAX_INT {
        return None;
    }
    let i = m as i64;
    (from_int(i, p).to_bits() == v.to_bits()).then_some(i)
}

#[inline(always)]
fn from_int(m: i64, p: f64) -> f64 {
    // Division by an exact power of ten is correctly rounded: the float
    // nearest the decimal, which is what parsing its text gives.
    if p == 1.0 { m as f64 } else { m as f64 / p }
}

fn int_bits(x: i64) -> u32 {
    bucketed_bits(x, &WIDTHS)
}

fn put_int(w: &mut BitWriter, x: i64) {
    put_bucketed(w, x, &WIDTHS);
}

#[inline(always)]
fn get_int(r: &mut BitReader<'_>) -> i64 {
    get_bucketed(r, &WIDTHS)
}

/// The decimal stream of `c`, if every value is a decimal of at most
/// [`MAX_PLACES`] places.
pub(super) fn encode(c: &XorChunk) -> Option<Vec<u8>> {
    if c.count == 0 || c.count & super::DECIMAL != 0 {
        return None;
    }
    // The chunk is decoded once (cuts run on the scrape path). The fewest
    // places that hold every value; a value that no number of places
    // holds ends the attempt at once. Values read while fewer places
    // sufficed are converted again.
    let mut ts = Vec::with_capacity(usize::from(c.count));
    let mut read = Vec::with_capacity(usize::from(c.count));
    let mut places = 0;
    for (t, v) in c.iter() {
        let m = loop {
            if let Some(m) = to_int(v, places) {
                break m;
            }
            places += 1;
            if places > MAX_PLACES {
                return None;
            }
        };
        ts.push(t);
        read.push((m, places, v));
    }
    let ms: Vec<i64> = read
        .into_iter()
        .map(|(m, p, v)| {
            if p == places {
                Some(m)
            } else {
                to_int(v, places)
            }
        })
        .collect::<Option<_>>()?;
    let (mut delta_bits, mut dod_bits, mut prev) = (0u64, 0u64, 0i64);
    for w in ms.windows(2) {
        let d = w[1].wrapping_sub(w[0]);
        delta_bits += u64::from(int_bits(d));
        dod_bits += u64::from(int_bits(d.wrapping_sub(prev)));
        prev = d;
    }
    let dod_mode = dod_bits < delta_bits;
    let mut w = BitWriter::default();
    w.bytes.reserve(c.w.bytes.len());
    w.write_bits(ts[0] as u64, 64);
    w.write_bits(places as u64, 4);
    w.write_bit(dod_mode);
    put_int(&mut w, ms[0]);
    let (mut delta, mut dm) = (0i64, 0i64);
    for i in 1..ms.len() {
        let d = ts[i].wrapping_sub(ts[i - 1]);
        put_dod(&mut w, d.wrapping_sub(delta));
        delta = d;
        let x = ms[i].wrapping_sub(ms[i - 1]);
        put_int(&mut w, if dod_mode { x.wrapping_sub(dm) } else { x });
        dm = x;
    }
    Some(w.bytes)
}

/// Decodes a whole stream of `count` samples: the last timestamp if it
/// holds exactly them (no bit short, no byte over).
pub(super) fn check(stream: &[u8], count: u16) -> Option<i64> {
    let mut it = DecimalIter::new(stream, count);
    let mut n = 0u16;
    let mut last = 0;
    for (t, _) in it.by_ref() {
        last = t;
        n += 1;
    }
    (n == count && !it.failed && it.r.consumed().div_ceil(8) == stream.len()).then_some(last)
}

/// Decoder of a decimal stream.
#[derive(Clone, Debug)]
pub struct DecimalIter<'a> {
    r: BitReader<'a>,
    left: u16,
    read: u16,
    t: i64,
    delta: i64,
    m: i64,
    dm: i64,
    p: f64,
    dod_mode: bool,
    failed: bool,
}

impl<'a> DecimalIter<'a> {
    pub(super) fn new(bytes: &'a [u8], count: u16) -> Self {
        DecimalIter {
            r: BitReader::new(bytes),
            left: count,
            read: 0,
            t: 0,
            delta: 0,
            m: 0,
            dm: 0,
            p: 1.0,
            dod_mode: false,
            failed: false,
        }
    }

    #[inline(always)]
    fn step(&mut self) -> Option<(i64, f64)> {
        if self.read == 0 {
            self.t = self.r.read(64) as i64;
            self.p = POW10[self.r.read(4) as usize];
            self.dod_mode = self.r.read(1) == 1;
            self.m = get_int(&mut self.r);
        } else {
            self.delta = self.delta.wrapping_add(get_dod(&mut self.r));
            self.t = self.t.wrapping_add(self.delta);
            let x = get_int(&mut self.r);
            if self.dod_mode {
                self.dm = self.dm.wrapping_add(x);
            } else {
                self.dm = x;
            }
            self.m = self.m.wrapping_add(self.dm);
        }
        if self.r.overrun() {
            return None;
        }
        self.read += 1;
        Some((self.t, from_int(self.m, self.p)))
    }
}

impl DecimalIter<'_> {
    /// Calls `f` with each sample until it returns false: the header is
    /// read once, and the rest decoded by a loop made for the chunk's
    /// mode and scale, with its state in locals.
    #[inline]
    pub fn for_each_while(mut self, mut f: impl FnMut(i64, f64) -> bool) {
        let Some((t, v)) = self.next() else { return };
        if !f(t, v) {
            return;
        }
        match (self.dod_mode, self.p != 1.0) {
            (false, false) => self.rest::<false, false>(f),
            (false, true) => self.rest::<false, true>(f),
            (true, false) => self.rest::<true, false>(f),
            (true, true) => self.rest::<true, true>(f),
        }
    }

    #[inline(always)]
    fn rest<const DOD: bool, const SCALE: bool>(mut self, mut f: impl FnMut(i64, f64) -> bool) {
        let (mut t, mut delta, mut m, mut dm, p) = (self.t, self.delta, self.m, self.dm, self.p);
        for _ in 0..self.left {
            delta = delta.wrapping_add(get_dod(&mut self.r));
            t = t.wrapping_add(delta);
            let x = get_int(&mut self.r);
            dm = if DOD { dm.wrapping_add(x) } else { x };
            m = m.wrapping_add(dm);
            if self.r.overrun() {
                return;
            }
            let v = if SCALE { m as f64 / p } else { m as f64 };
            if !f(t, v) {
                return;
            }
        }
    }
}

sample_iterator!(DecimalIter<'_>);
