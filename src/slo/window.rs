//! An SLI's event counts and HDR latency histogram over time, composable
//! into any window from 5 minutes to the SLO period with bounded memory.
//!
//! Time is cut into slots in four tiers — 5 minutes (the last hour),
//! 30 minutes (6 hours), 2 hours (3 days) and 1 day (the period) — each
//! coarser slot built from the finer ones when it completes, so a 30-day
//! window reads ~30 slots, not 8,640. Only the current 5-minute slot is a
//! full histogram; closed slots keep their non-empty buckets as varint
//! deltas. A window is assembled from the finest slots back to the last
//! boundary of the next tier, then from that tier, and so on: it starts
//! at a slot boundary of the coarsest tier it reaches, so it may reach
//! back up to one such slot further than asked (5 minutes for windows up
//! to 1 hour, 30 minutes up to 6 hours, 2 hours up to 3 days, a day
//! beyond).

use std::collections::{BTreeMap, VecDeque};

use hdrhistogram::Histogram;

use crate::model::{ByteReader, put_varint};

/// Latencies are kept in microseconds from 1 µs to 1 hour.
const MAX_MICROS: u64 = 3_600_000_000;
/// HDR precision: two significant digits (≤ 1% relative error).
const SIGFIG: u8 = 2;

/// Slot length of each tier (ms) and how many slots it keeps (the last
/// tier's count is the period in days plus one).
const TIERS: [(i64, usize); 3] = [(300_000, 12), (1_800_000, 12), (7_200_000, 36)];
const DAY_MS: i64 = 86_400_000;

fn new_hist() -> Histogram<u64> {
    // Bounds are constants within the crate's limits.
    Histogram::new_with_bounds(1, MAX_MICROS, SIGFIG)
        .unwrap_or_else(|e| unreachable!("HDR bounds are valid: {e}"))
}

/// A histogram's non-empty buckets as (value delta, count) varints.
fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = 0;
    for v in h.iter_recorded() {
        let value = h.lowest_equivalent(v.value_iterated_to());
        put_varint(&mut out, value - prev);
        put_varint(&mut out, v.count_at_value());
        prev = value;
    }
    out.shrink_to_fit();
    out
}

/// Adds an encoded histogram into `h`.
fn decode_into(b: &[u8], h: &mut Histogram<u64>) {
    let mut r = ByteReader::new(b, 0);
    let mut value = 0u64;
    while r.remaining() > 0 {
        let (Some(d), Some(c)) = (r.varint(), r.varint()) else {
            return;
        };
        value = value.saturating_add(d);
        let _ = h.record_n(value.clamp(1, MAX_MICROS), c);
    }
}

/// One closed slot.
#[derive(Clone, Debug)]
struct Slot {
    start: i64,
    end: i64,
    errors: u64,
    total: u64,
    latency: Vec<u8>,
}

/// What a window holds.
#[derive(Clone, Debug)]
pub struct WindowStats {
    /// Bad events.
    pub errors: u64,
    /// All events.
    pub total: u64,
    /// Latency observations (µs), when the SLI has latencies.
    pub latency: Option<Histogram<u64>>,
    /// Where the window actually starts (a slot boundary at or before the
    /// asked start).
    pub from: i64,
}

impl WindowStats {
    /// Errors over events; `None` without events.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.total > 0).then(|| self.errors as f64 / self.total as f64)
    }

    /// The latency at quantile `q` (0–1) in seconds: the middle of the
    /// HDR bucket holding it.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let h = self.latency.as_ref().filter(|h| !h.is_empty())?;
        let v = h.median_equivalent(h.value_at_quantile(q));
        Some(v as f64 / 1e6)
    }
}

/// The windows of one SLI.
#[derive(Clone, Debug)]
pub struct SliWindows {
    with_latency: bool,
    tiers: Vec<(i64, usize, VecDeque<Slot>)>,
    /// Per tier above the first, the end of the last slot built.
    rolled_until: Vec<i64>,
    cur_start: i64,
    cur_errors: u64,
    cur_total: u64,
    cur_latency: Option<Histogram<u64>>,
}

impl SliWindows {
    /// Windows for an SLI over a period of `period_days`; `with_latency`
    /// keeps a latency histogram beside the event counts.
    pub fn new(with_latency: bool, period_days: u32, now: i64) -> SliWindows {
        let mut tiers: Vec<(i64, usize, VecDeque<Slot>)> = TIERS
            .iter()
            .map(|&(ms, n)| (ms, n, VecDeque::new()))
            .collect();
        tiers.push((DAY_MS, period_days as usize + 1, VecDeque::new()));
        SliWindows {
            with_latency,
            rolled_until: vec![i64::MIN; tiers.len()],
            tiers,
            cur_start: now - now.rem_euclid(TIERS[0].0),
            cur_errors: 0,
            cur_total: 0,
            cur_latency: with_latency.then(new_hist),
        }
    }

    /// Moves time to `now`: closes the current slot when `now` is past it
    /// and builds the coarser slots that became complete.
    pub fn advance(&mut self, now: i64) {
        let slot = TIERS[0].0;
        if now < self.cur_start + slot {
            return;
        }
        let empty = self.cur_total == 0 && self.cur_latency.as_ref().is_none_or(|h| h.is_empty());
        if !empty {
            let s = Slot {
                start: self.cur_start,
                end: self.cur_start + slot,
                errors: self.cur_errors,
                total: self.cur_total,
                latency: self.cur_latency.as_ref().map(encode).unwrap_or_default(),
            };
            self.push(0, s);
        }
        self.cur_start = now - now.rem_euclid(slot);
        self.cur_errors = 0;
        self.cur_total = 0;
        if let Some(h) = &mut self.cur_latency {
            h.reset();
        }
        for k in 1..self.tiers.len() {
            self.roll_up(k);
        }
    }

    fn push(&mut self, k: usize, s: Slot) {
        let (_, cap, q) = &mut self.tiers[k];
        q.push_back(s);
        while q.len() > *cap {
            q.pop_front();
        }
    }

    /// Builds tier `k`'s slots from tier `k-1`'s complete groups.
    fn roll_up(&mut self, k: usize) {
        let len = self.tiers[k].0;
        // A group is complete once the current slot is past its end.
        let complete_before = self.cur_start - self.cur_start.rem_euclid(len);
        let mut groups: Vec<(i64, Vec<Slot>)> = Vec::new();
        for s in &self.tiers[k - 1].2 {
            let g = s.start - s.start.rem_euclid(len);
            if g < self.rolled_until[k] || g + len > complete_before {
                continue;
            }
            match groups.last_mut() {
                Some((start, v)) if *start == g => v.push(s.clone()),
                _ => groups.push((g, vec![s.clone()])),
            }
        }
        for (g, parts) in groups {
            let mut h = self.with_latency.then(new_hist);
            let (mut errors, mut total) = (0, 0);
            for p in &parts {
                errors += p.errors;
                total += p.total;
                if let Some(h) = &mut h {
                    decode_into(&p.latency, h);
                }
            }
            self.push(
                k,
                Slot {
                    start: g,
                    end: g + len,
                    errors,
                    total,
                    latency: h.as_ref().map(encode).unwrap_or_default(),
                },
            );
            self.rolled_until[k] = g + len;
        }
    }

    /// Counts `errors` bad events out of `total` at `now`.
    pub fn observe_events(&mut self, now: i64, errors: u64, total: u64) {
        self.advance(now);
        self.cur_errors += errors;
        self.cur_total += total;
    }

    /// Records one latency (seconds) at `now`.
    pub fn observe_latency(&mut self, now: i64, seconds: f64) {
        self.advance(now);
        if let Some(h) = &mut self.cur_latency {
            let us = (seconds * 1e6).round().clamp(1.0, MAX_MICROS as f64) as u64;
            let _ = h.record(us);
        }
    }

    /// Records `count` observations known only to lie in
    /// `(lower, upper]` seconds (a histogram bucket's increase): spread
    /// evenly over up to 16 points of the bucket, the linear
    /// interpolation `histogram_quantile` assumes, so a quantile read
    /// back is off by at most the bucket's width. Bounds are clamped to
    /// what the windows keep (1 µs to 1 h).
    pub fn observe_bucket(&mut self, now: i64, lower: f64, upper: f64, count: u64) {
        self.advance(now);
        let Some(h) = &mut self.cur_latency else {
            return;
        };
        if count == 0 || upper.is_nan() || lower.is_nan() || upper < lower {
            return;
        }
        let to_us = |s: f64| (s * 1e6).clamp(1.0, MAX_MICROS as f64);
        let (lo, hi) = (to_us(lower.max(0.0)), to_us(upper));
        let points = count.min(16);
        for i in 0..points {
            let n = count / points + u64::from(i < count % points);
            let at = lo + (hi - lo) * (i as f64 + 0.5) / points as f64;
            let _ = h.record_n(at.round() as u64, n);
        }
    }

    /// The period (days) the windows reach back.
    pub fn period_days(&self) -> u32 {
        self.tiers
            .last()
            .map_or(0, |t| t.1.saturating_sub(1) as u32)
    }

    /// Whether these windows keep latencies.
    pub fn has_latency(&self) -> bool {
        self.with_latency
    }

    /// The window of `window_ms` ending at `now`.
    pub fn window(&mut self, now: i64, window_ms: i64) -> WindowStats {
        self.advance(now);
        let lo = now - window_ms;
        let mut st = WindowStats {
            errors: self.cur_errors,
            total: self.cur_total,
            latency: self.cur_latency.clone(),
            from: self.cur_start,
        };
        // `hi`: the end of what is left to cover. Each tier serves the
        // window alone if its retention reaches back to the start;
        // otherwise it serves what its next tier does not hold yet.
        let mut hi = self.cur_start;
        let n = self.tiers.len();
        for k in 0..n {
            if hi <= lo {
                break;
            }
            let (len, cap, _) = self.tiers[k];
            let retained_from = hi - cap as i64 * len;
            let seg_lo = if k + 1 < n && lo < retained_from && self.rolled_until[k + 1] != i64::MIN
            {
                self.rolled_until[k + 1].max(lo)
            } else {
                lo
            };
            for s in self.tiers[k].2.iter().rev() {
                if s.end > hi {
                    continue;
                }
                if s.end <= seg_lo {
                    break;
                }
                st.errors += s.errors;
                st.total += s.total;
                if let Some(h) = &mut st.latency {
                    decode_into(&s.latency, h);
                }
                st.from = st.from.min(s.start);
            }
            st.from = st.from.min(seg_lo.max(lo));
            hi = seg_lo;
        }
        st
    }

    /// The windows as bytes (for state files); [`from_bytes`](Self::from_bytes)
    /// reads them back.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"SLIW1");
        b.push(u8::from(self.with_latency));
        b.extend_from_slice(&self.cur_start.to_le_bytes());
        b.extend_from_slice(&self.cur_errors.to_le_bytes());
        b.extend_from_slice(&self.cur_total.to_le_bytes());
        let cur = self.cur_latency.as_ref().map(encode).unwrap_or_default();
        b.extend_from_slice(&(cur.len() as u32).to_le_bytes());
        b.extend_from_slice(&cur);
        b.extend_from_slice(&(self.tiers.len() as u32).to_le_bytes());
        for (k, (len, cap, q)) in self.tiers.iter().enumerate() {
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&(*cap as u32).to_le_bytes());
            b.extend_from_slice(&self.rolled_until[k].to_le_bytes());
            b.extend_from_slice(&(q.len() as u32).to_le_bytes());
            for s in q {
                b.extend_from_slice(&s.start.to_le_bytes());
                b.extend_from_slice(&s.end.to_le_bytes());
                b.extend_from_slice(&s.errors.to_le_bytes());
                b.extend_from_slice(&s.total.to_le_bytes());
                b.extend_from_slice(&(s.latency.len() as u32).to_le_bytes());
                b.extend_from_slice(&s.latency);
            }
        }
        b
    }

    /// Reads windows written by [`to_bytes`](Self::to_bytes); `None` when
    /// the bytes are not such windows.
    pub fn from_bytes(b: &[u8]) -> Option<SliWindows> {
        let mut r = ByteReader::new(b, 0);
        if r.take(5)? != b"SLIW1" {
            return None;
        }
        let with_latency = r.take(1)?[0] == 1;
        let cur_start = r.i64()?;
        let cur_errors = r.u64()?;
        let cur_total = r.u64()?;
        let cur = r.sized()?.to_vec();
        let cur_latency = with_latency.then(|| {
            let mut h = new_hist();
            decode_into(&cur, &mut h);
            h
        });
        let ntiers = r.u32()? as usize;
        if ntiers > 16 {
            return None;
        }
        let (mut tiers, mut rolled_until) = (Vec::new(), Vec::new());
        for _ in 0..ntiers {
            let len = r.i64()?;
            let cap = r.u32()? as usize;
            rolled_until.push(r.i64()?);
            let count = r.u32()? as usize;
            let mut q = VecDeque::with_capacity(count.min(1024));
            for _ in 0..count {
                let start = r.i64()?;
                let end = r.i64()?;
                let errors = r.u64()?;
                let total = r.u64()?;
                let latency = r.sized()?.to_vec();
                q.push_back(Slot {
                    start,
                    end,
                    errors,
                    total,
                    latency,
                });
            }
            if len <= 0 {
                return None;
            }
            tiers.push((len, cap, q));
        }
        Some(SliWindows {
            with_latency,
            tiers,
            rolled_until,
            cur_start,
            cur_errors,
            cur_total,
            cur_latency,
        })
    }

    /// Bytes held: closed slots plus the current histogram.
    pub fn memory_bytes(&self) -> usize {
        let slots: usize = self
            .tiers
            .iter()
            .flat_map(|t| t.2.iter())
            .map(|s| std::mem::size_of::<Slot>() + s.latency.capacity())
            .sum();
        let cur = self
            .cur_latency
            .as_ref()
            .map_or(0, |h| h.distinct_values() * 8 + 512);
        std::mem::size_of::<Self>() + slots + cur
    }
}

/// Named windows (per probe, per SLO) as a state file: magic, count,
/// then per entry its name and windows, each length-prefixed; a CRC-32
/// of all that closes the file.
pub fn windows_to_bytes(all: &BTreeMap<String, SliWindows>) -> Vec<u8> {
    // One record per SLI (its name and windows, in hex), so that damage
    // costs one SLI's history, not every one's.
    crate::model::records::encode(all.iter().map(|(name, w)| {
        let mut b = (name.len() as u32).to_le_bytes().to_vec();
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&w.to_bytes());
        crate::model::records::hex(&b)
    }))
}

/// Reads a file written by [`windows_to_bytes`] (or the older form, one
/// checksummed block); damaged records are skipped and returned.
pub fn windows_from_bytes(
    b: &[u8],
) -> Result<
    (
        BTreeMap<String, SliWindows>,
        Vec<crate::model::RecordDamage>,
    ),
    String,
> {
    let Some((records, mut damage)) = crate::model::records::decode(b) else {
        return legacy_windows_from_bytes(b).map(|w| (w, Vec::new()));
    };
    let mut out = BTreeMap::new();
    for (offset, payload) in records {
        let entry = crate::model::records::unhex(payload).and_then(|raw| {
            let mut r = ByteReader::new(&raw, 0);
            let n = r.u32()? as usize;
            let name = String::from_utf8(r.take(n)?.to_vec()).ok()?;
            let w = SliWindows::from_bytes(r.take(r.remaining())?)?;
            Some((name, w))
        });
        match entry {
            Some((name, w)) => {
                out.insert(name, w);
            }
            None => damage.push(crate::model::RecordDamage {
                offset,
                reason: "not an SLI's windows".into(),
            }),
        }
    }
    Ok((out, damage))
}

/// The format before records: one block with one checksum.
fn legacy_windows_from_bytes(b: &[u8]) -> Result<BTreeMap<String, SliWindows>, String> {
    let bad = || "damaged windows file".to_string();
    if b.len() < 16 || &b[..8] != b"ARGPROBW" {
        return Err(bad());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("windows file fails its checksum".into());
    }
    let mut r = ByteReader::new(body, 8);
    let n = r.u32().ok_or_else(bad)?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let name = String::from_utf8(r.sized().ok_or_else(bad)?.to_vec()).map_err(|_| bad())?;
        let w = SliWindows::from_bytes(r.sized().ok_or_else(bad)?).ok_or_else(bad)?;
        out.insert(name, w);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_damaged_windows_record_costs_one_sli() {
        let t0 = 1_800_000_000_000 - 1_800_000_000_000 % DAY_MS;
        let mut all = BTreeMap::new();
        for name in ["api", "web"] {
            let mut w = SliWindows::new(true, 30, t0);
            w.observe_events(t0, 1, 10);
            all.insert(name.to_string(), w);
        }
        let mut b = windows_to_bytes(&all);
        let (back, damage) = windows_from_bytes(&b).unwrap();
        assert_eq!(back.len(), 2);
        assert!(damage.is_empty());
        // Damage the last record (web's): api's windows survive.
        let last_line = b[..b.len() - 1].iter().rposition(|&c| c == b'\n').unwrap() + 1;
        b[last_line + 20] = b'x';
        let (back, damage) = windows_from_bytes(&b).unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), ["api"]);
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].offset, last_line);
    }

    #[test]
    fn windows_compose_from_tiers_and_count_exactly() {
        let t0 = 1_800_000_000_000 - 1_800_000_000_000 % DAY_MS;
        let mut w = SliWindows::new(true, 30, t0);
        // One event per minute for 4 days; every tenth is an error; the
        // latency is the minute of the day in ms.
        for m in 0..(4 * 1440) {
            let now = t0 + m * MIN;
            w.observe_events(now, u64::from(m % 10 == 0), 1);
            w.observe_latency(now, ((m % 1440) + 1) as f64 / 1000.0);
        }
        let now = t0 + 4 * 1440 * MIN;
        for (win, want) in [
            (5 * MIN, 5),
            (30 * MIN, 30),
            (60 * MIN, 60),
            (120 * MIN, 120),
            (360 * MIN, 360),
            (1440 * MIN, 1440),
            (3 * 1440 * MIN, 3 * 1440),
        ] {
            let st = w.window(now, win);
            assert_eq!(st.total, want as u64, "window {}m", win / MIN);
            assert_eq!(st.errors, want as u64 / 10, "window {}m", win / MIN);
            assert_eq!(st.from, now - win);
        }
        let all = w.window(now, 30 * 1440 * MIN);
        assert_eq!(all.total, 4 * 1440);
        // The last day's latencies are 1..1440 ms: p50 ≈ 720 ms.
        let day = w.window(now, 1440 * MIN);
        let p50 = day.latency_quantile(0.5).unwrap();
        assert!((p50 - 0.720).abs() / 0.720 < 0.01, "{p50}");
        let p99 = day.latency_quantile(0.99).unwrap();
        assert!((p99 - 1.4256).abs() / 1.4256 < 0.01, "{p99}");
        assert!(w.memory_bytes() < 256 * 1024, "{}", w.memory_bytes());
    }

    #[test]
    fn windows_survive_a_round_trip_through_bytes() {
        let t0 = 1_800_000_000_000;
        let mut w = SliWindows::new(true, 30, t0);
        for m in 0..600 {
            w.observe_events(t0 + m * MIN, u64::from(m % 4 == 0), 1);
            w.observe_latency(t0 + m * MIN, (m % 100 + 1) as f64 / 100.0);
        }
        let now = t0 + 600 * MIN + 30_000;
        let mut back = SliWindows::from_bytes(&w.to_bytes()).unwrap();
        for win in [5 * MIN, 60 * MIN, 360 * MIN, 1440 * MIN] {
            let (a, b) = (w.window(now, win), back.window(now, win));
            assert_eq!((a.errors, a.total, a.from), (b.errors, b.total, b.from));
            assert_eq!(a.latency_quantile(0.95), b.latency_quantile(0.95));
        }
        assert!(SliWindows::from_bytes(b"nonsense").is_none());
        assert!(SliWindows::from_bytes(&w.to_bytes()[..40]).is_none());
    }

    #[test]
    fn varints_round_trip() {
        let mut h = new_hist();
        for v in [1u64, 2, 3, 1000, 1001, 123_456_789, MAX_MICROS] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        let mut back = new_hist();
        decode_into(&encode(&h), &mut back);
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }
}
