//! Gorilla-style XOR chunks: delta-of-delta timestamps and XOR'd float
//! values packed into a bit stream.
//!
//! The layout follows the Facebook Gorilla paper (VLDB 2015) and the bucket
//! sizes Prometheus uses for timestamp deltas. Stale markers survive because
//! values are stored by bit pattern.
//!
//! A full chunk whose values are all decimals of a few places (counters
//! of whole numbers, gauges such as `0.25` or `97.3`, which is what most
//! expositions carry) is stored in a second encoding when that is
//! smaller: the values as integers times one power of ten, each stored as
//! its difference (or its difference's difference) from the one before.
//! XOR costs a whole-number counter that moves every scrape 15 to 25 bits
//! a sample and a gauge of three digits about 60, since their bit
//! patterns change far from the last bit; as integers they cost a few
//! bits. The open chunk is always XOR (appending stays as cheap as it
//! was); the choice is made once, when the chunk is cut. The stored
//! sample count carries the encoding in its top bit ([`DECIMAL`]), so
//! files and snapshots written before it read unchanged.

use bytes::{Bytes, BytesMut};

/// The `Iterator` of a chunk decoder with `left`, `failed` and a `step`
/// that decodes one sample: `left` samples at most, none after the first
/// that fails.
macro_rules! sample_iterator {
    ($t:ty) => {
        impl Iterator for $t {
            type Item = (i64, f64);

            #[inline]
            fn next(&mut self) -> Option<(i64, f64)> {
                if self.left == 0 || self.failed {
                    return None;
                }
                self.left -= 1;
                let r = self.step();
                if r.is_none() {
                    self.failed = true;
                }
                r
            }
        }
    };
}

pub mod decimal;

/// Samples per chunk before it is cut; the same trade-off Prometheus makes
/// between compression ratio and decode cost for short ranges.
pub const SAMPLES_PER_CHUNK: u16 = 120;

#[derive(Clone, Debug, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0 when a new byte is needed).
    free: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if bit {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << (self.free - 1);
            }
        }
        self.free -= 1;
    }

    fn write_bits(&mut self, value: u64, mut n: u8) {
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let shift = n - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << (self.free - take);
            }
            self.free -= take;
            n -= take;
        }
    }
}

/// Reads a bit stream written by [`BitWriter`]. Every read is one
/// unaligned 64-bit load and two shifts; reads past the end see zeros and
/// are caught by the caller's overrun check.
#[derive(Clone, Debug)]
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    /// The next bits, left-aligned; at least 57 of them are real (fewer at
    /// the end of the buffer, padded with zeros).
    #[inline(always)]
    fn window(&self) -> u64 {
        let byte = self.pos >> 3;
        let off = (self.pos & 7) as u32;
        let w = match self.bytes.get(byte..byte + 8) {
            Some(s) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_be_bytes(a)
            }
            None => {
                let mut a = [0u8; 8];
                let tail = self.bytes.get(byte..).unwrap_or(&[]);
                a[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(a)
            }
        };
        w << off
    }

    /// Reads `n` (1..=64) bits.
    #[inline(always)]
    fn read(&mut self, n: u32) -> u64 {
        if n <= 57 {
            let v = self.window() >> (64 - n);
            self.pos += n as usize;
            v
        } else {
            let hi = self.window() >> (64 - (n - 32));
            self.pos += (n - 32) as usize;
            let lo = self.window() >> 32;
            self.pos += 32;
            (hi << 32) | lo
        }
    }

    #[inline(always)]
    fn skip(&mut self, n: u32) {
        self.pos += n as usize;
    }

    /// True once more bits were read than the stream holds.
    #[inline(always)]
    fn overrun(&self) -> bool {
        self.pos > self.bytes.len() * 8
    }

    /// Bits consumed so far.
    fn consumed(&self) -> usize {
        self.pos
    }
}

/// Payload widths of the timestamp delta-of-delta buckets (Prometheus's).
const DOD_WIDTHS: [u8; 3] = [14, 17, 20];

fn fits(v: i64, bits: u8) -> bool {
    // Symmetric range so the sign-extended decode is exact.
    let lim = 1i64 << (bits - 1);
    v > -lim && v < lim
}

/// The bucket of `x` among `widths`: `Some(i)` for the first width that
/// holds it, `None` when only the 64-bit escape does.
fn bucket_of(x: i64, widths: &[u8]) -> Option<usize> {
    widths.iter().position(|&b| fits(x, b))
}

/// Bits [`put_bucketed`] writes for `x`.
fn bucketed_bits(x: i64, widths: &[u8]) -> u32 {
    if x == 0 {
        return 1;
    }
    match bucket_of(x, widths) {
        Some(i) => i as u32 + 2 + u32::from(widths[i]),
        None => widths.len() as u32 + 1 + 64,
    }
}

/// Writes a signed integer in buckets: a zero bit for 0; for bucket `i`,
/// `i + 1` one bits, a zero bit and the value in `widths[i]` bits
/// (sign-extended when read); past the last bucket, `widths.len() + 1`
/// one bits and all 64. Timestamps' deltas of deltas use
/// [`DOD_WIDTHS`], decimal chunks' integers their own widths.
fn put_bucketed(w: &mut BitWriter, x: i64, widths: &[u8]) {
    if x == 0 {
        w.write_bit(false);
        return;
    }
    match bucket_of(x, widths) {
        Some(i) => {
            let ones = i as u8 + 1;
            // The ones then a zero: `ones + 1` bits.
            w.write_bits(((1u64 << ones) - 1) << 1, ones + 1);
            let bits = widths[i];
            w.write_bits((x as u64) & ((1u64 << bits) - 1), bits);
        }
        None => {
            let ones = widths.len() as u8 + 1;
            w.write_bits((1u64 << ones) - 1, ones);
            w.write_bits(x as u64, 64);
        }
    }
}

/// Reads what [`put_bucketed`] wrote with the same widths.
#[inline(always)]
fn get_bucketed<const N: usize>(r: &mut BitReader<'_>, widths: &[u8; N]) -> i64 {
    let escape = N as u32 + 1;
    let w = r.window();
    let ones = (!w).leading_zeros().min(escape);
    if ones == 0 {
        r.skip(1);
        return 0;
    }
    if ones == escape {
        r.skip(escape);
        return r.read(64) as i64;
    }
    let payload = u32::from(widths[ones as usize - 1]);
    let prefix = ones + 1;
    let raw = (w << prefix) >> (64 - payload);
    r.skip(prefix + payload);
    let shift = 64 - payload;
    ((raw << shift) as i64) >> shift
}

/// Writes a timestamp's delta of delta.
fn put_dod(w: &mut BitWriter, dod: i64) {
    put_bucketed(w, dod, &DOD_WIDTHS);
}

/// Reads what [`put_dod`] wrote.
#[inline(always)]
fn get_dod(r: &mut BitReader<'_>) -> i64 {
    get_bucketed(r, &DOD_WIDTHS)
}

/// An append-only XOR chunk with its encoder state.
#[derive(Clone, Debug, Default)]
pub struct XorChunk {
    w: BitWriter,
    count: u16,
    min_t: i64,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl XorChunk {
    /// An empty chunk.
    pub fn new() -> Self {
        XorChunk {
            leading: 0xff,
            ..Default::default()
        }
    }

    /// Number of samples.
    pub fn len(&self) -> u16 {
        self.count
    }

    /// True if no sample was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// First timestamp (undefined when empty).
    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    /// Last timestamp (undefined when empty).
    pub fn max_t(&self) -> i64 {
        self.t
    }

    /// Bits of the newest value (undefined when empty).
    pub fn last_value_bits(&self) -> u64 {
        self.v
    }

    /// Encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.w.bytes
    }

    /// Address of the last encoded byte (where the next sample's bits go),
    /// for prefetching.
    pub fn tail(&self) -> *const u8 {
        self.w
            .bytes
            .as_ptr()
            .wrapping_add(self.w.bytes.len().saturating_sub(1))
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_size(&self) -> usize {
        self.w.bytes.capacity()
    }

    /// Appends a sample. The caller guarantees `t` is after the last one.
    pub fn append(&mut self, t: i64, v: f64) {
        let vb = v.to_bits();
        match self.count {
            0 => {
                self.w.write_bits(t as u64, 64);
                self.w.write_bits(vb, 64);
                self.min_t = t;
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.delta);
                put_dod(&mut self.w, dod);
                self.delta = delta;
                self.write_value(vb);
            }
        }
        self.t = t;
        self.v = vb;
        self.count += 1;
    }

    fn write_value(&mut self, vb: u64) {
        let x = vb ^ self.v;
        if x == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.w.write_bits(x >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            self.w.write_bit(true);
            self.w.write_bits(u64::from(leading), 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits do not fit 6 bits; 0 stands for 64.
            self.w.write_bits(u64::from(sig & 63), 6);
            self.w.write_bits(x >> trailing, sig);
        }
    }

    /// Iterates the samples.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(&self.w.bytes, self.count)
    }

    /// Rebuilds a chunk (encoder state included) from bytes written by
    /// [`XorChunk::bytes`], so an open chunk restored from a snapshot keeps
    /// appending. Returns `None` if the bytes do not decode to `count` samples.
    pub fn from_bytes(bytes: &[u8], count: u16) -> Option<XorChunk> {
        let mut it = XorIter::new(bytes, count);
        let mut n = 0u16;
        let mut min_t = 0;
        for (t, _) in it.by_ref() {
            if n == 0 {
                min_t = t;
            }
            n += 1;
        }
        if n != count || it.failed {
            return None;
        }
        let used_bits = it.r.consumed();
        if used_bits.div_ceil(8) != bytes.len() {
            return None;
        }
        let free = ((8 - used_bits % 8) % 8) as u8;
        Some(XorChunk {
            w: BitWriter {
                bytes: bytes.to_vec(),
                free,
            },
            count,
            min_t,
            t: it.t,
            delta: it.delta,
            v: it.v,
            leading: it.leading,
            trailing: it.trailing,
        })
    }

    /// Freezes into an immutable chunk of its own (one exact-size
    /// allocation): for chunks restored at start, not cut by appends.
    pub fn freeze(self) -> FrozenChunk {
        let (word, stream) = self.frozen_parts();
        let mut b = BytesMut::with_capacity(stream.len() + 2);
        b.extend_from_slice(&word.to_le_bytes());
        b.extend_from_slice(&stream);
        FrozenChunk {
            bytes: b.freeze(),
            max_t: self.t,
        }
    }

    /// The count word and stream a frozen copy stores: the decimal
    /// encoding when it is smaller, else the XOR stream as it is.
    fn frozen_parts(&self) -> (u16, std::borrow::Cow<'_, [u8]>) {
        match decimal::encode(self) {
            Some(d) if d.len() < self.w.bytes.len() => (self.count | DECIMAL, d.into()),
            _ => (self.count, self.w.bytes.as_slice().into()),
        }
    }

    /// Empties the chunk for the next samples, keeping its buffer: sized to
    /// what the last chunk held and an eighth more, so that a series'
    /// chunks, which are much alike, seldom regrow it by doubling, and
    /// the buffer is not reallocated at every cut.
    fn reset(&mut self) {
        let mut bytes = std::mem::take(&mut self.w.bytes);
        let used = bytes.len();
        bytes.clear();
        if bytes.capacity() > used + used / 4 + 16 {
            bytes.shrink_to(used + used / 8 + 8);
        }
        *self = XorChunk::new();
        self.w.bytes = bytes;
    }
}

/// Where the bytes of chunks cut by appends go: blocks that many chunks
/// share. A full chunk waits in memory only until the storage thread
/// writes it (a tenth of a second), while the open chunks live as long as
/// their series; were each full chunk its own allocation, the holes those
/// left between the long-lived buffers would hold as much memory again as
/// the open chunks (the churn of 100,000 series cutting every two minutes
/// was most of the allocator's 40 MB of free-but-resident pages). A block
/// is freed whole once its last chunk is dropped.
#[derive(Debug, Default)]
pub struct Freezer {
    block: std::sync::Mutex<BytesMut>,
}

/// Bytes of one shared block.
const FREEZER_BLOCK: usize = 256 << 10;

impl Freezer {
    /// Moves the samples of `open` into a frozen chunk in the current
    /// block and empties `open`, which keeps its buffer for the next
    /// samples.
    pub fn cut(&self, open: &mut XorChunk) -> FrozenChunk {
        // Encoded before the block's lock, which every appender shares.
        let (word, stream) = open.frozen_parts();
        let need = stream.len() + 2;
        let bytes = {
            let mut b = self.block.lock().unwrap_or_else(|e| e.into_inner());
            if b.capacity() - b.len() < need {
                *b = BytesMut::with_capacity(FREEZER_BLOCK.max(need));
            }
            b.extend_from_slice(&word.to_le_bytes());
            b.extend_from_slice(&stream);
            b.split().freeze()
        };
        drop(stream);
        let max_t = open.t;
        open.reset();
        FrozenChunk { bytes, max_t }
    }
}

/// Top bit of a stored sample count: the stream is in the decimal
/// encoding, not XOR. The other 15 bits are the number of samples.
pub const DECIMAL: u16 = 0x8000;

/// The number of samples a stored count word stands for.
pub fn samples_in(word: u16) -> u16 {
    word & !DECIMAL
}

/// Iterates the samples of a stored stream and its count word (either
/// encoding).
pub fn iter_stream(stream: &[u8], word: u16) -> ChunkIter<'_> {
    if word & DECIMAL != 0 {
        ChunkIter::Decimal(decimal::DecimalIter::new(stream, samples_in(word)))
    } else {
        ChunkIter::Xor(XorIter::new(stream, word))
    }
}

/// Samples of a stored chunk in either encoding.
#[derive(Clone, Debug)]
pub enum ChunkIter<'a> {
    /// Gorilla XOR.
    Xor(XorIter<'a>),
    /// Decimal integers ([`DECIMAL`]).
    Decimal(decimal::DecimalIter<'a>),
}

impl ChunkIter<'_> {
    /// Calls `f` with each sample in order until it returns false. The
    /// encoding is matched once, not at every sample as `next` must.
    #[inline]
    pub fn for_each_while(self, mut f: impl FnMut(i64, f64) -> bool) {
        match self {
            ChunkIter::Xor(it) => {
                for (t, v) in it {
                    if !f(t, v) {
                        break;
                    }
                }
            }
            ChunkIter::Decimal(it) => it.for_each_while(f),
        }
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        match self {
            ChunkIter::Xor(it) => it.next(),
            ChunkIter::Decimal(it) => it.next(),
        }
    }
}

/// A full chunk: a handle to `[count word u16][stream]` in its own
/// allocation or in a [`Freezer`] block. The first timestamp is the
/// stream's first 64 bits in either encoding, so it is not stored twice.
#[derive(Clone, Debug)]
pub struct FrozenChunk {
    bytes: Bytes,
    max_t: i64,
}

impl FrozenChunk {
    /// Rebuilds a frozen chunk from its parts, checking that the stream
    /// decodes to the samples its count `word` says, ending at `max_t`.
    pub fn from_parts(stream: &[u8], word: u16, max_t: i64) -> Option<FrozenChunk> {
        if samples_in(word) == 0 {
            return None;
        }
        if word & DECIMAL == 0 {
            let c = XorChunk::from_bytes(stream, word)?;
            return (c.max_t() == max_t).then(|| c.freeze());
        }
        let last = decimal::check(stream, samples_in(word))?;
        (last == max_t).then(|| {
            let mut b = BytesMut::with_capacity(stream.len() + 2);
            b.extend_from_slice(&word.to_le_bytes());
            b.extend_from_slice(stream);
            FrozenChunk {
                bytes: b.freeze(),
                max_t,
            }
        })
    }

    /// Number of samples.
    pub fn count(&self) -> u16 {
        samples_in(self.word())
    }

    /// The stored count word: the number of samples and the encoding
    /// ([`DECIMAL`]).
    pub fn word(&self) -> u16 {
        u16::from_le_bytes([self.bytes[0], self.bytes[1]])
    }

    /// First timestamp.
    pub fn min_t(&self) -> i64 {
        let mut t = [0u8; 8];
        t.copy_from_slice(&self.bytes[2..10]);
        i64::from_be_bytes(t)
    }

    /// Last timestamp.
    pub fn max_t(&self) -> i64 {
        self.max_t
    }

    /// The encoded stream.
    pub fn stream(&self) -> &[u8] {
        &self.bytes[2..]
    }

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.bytes.len()
    }

    /// Iterates the samples.
    pub fn iter(&self) -> ChunkIter<'_> {
        iter_stream(self.stream(), self.word())
    }
}

/// Decoder over a chunk's bit stream.
#[derive(Clone, Debug)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    left: u16,
    read: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
    failed: bool,
}

impl<'a> XorIter<'a> {
    pub(crate) fn new(bytes: &'a [u8], count: u16) -> Self {
        XorIter {
            r: BitReader::new(bytes),
            left: count,
            read: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0xff,
            trailing: 0,
            failed: false,
        }
    }

    #[inline(always)]
    fn step(&mut self) -> Option<(i64, f64)> {
        if self.read == 0 {
            self.t = self.r.read(64) as i64;
            self.v = self.r.read(64);
        } else {
            let dod = get_dod(&mut self.r);
            self.delta = self.delta.wrapping_add(dod);
            self.t = self.t.wrapping_add(self.delta);
            // Value: 0 = unchanged; 10 = XOR within the previous window;
            // 11 = new window (5 bits leading zeros, 6 bits length).
            let w = self.r.window();
            if w >> 63 == 0 {
                self.r.skip(1);
            } else {
                if (w >> 62) & 1 == 1 {
                    self.leading = ((w >> 57) & 0x1f) as u8;
                    let mut sig = ((w >> 51) & 0x3f) as u8;
                    if sig == 0 {
                        sig = 64;
                    }
                    self.trailing = 64u8.checked_sub(self.leading + sig)?;
                    self.r.skip(13);
                } else if self.leading == 0xff {
                    return None;
                } else {
                    self.r.skip(2);
                }
                let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
                let bits = self.r.read(sig);
                self.v ^= bits << self.trailing;
            }
        }
        if self.r.overrun() {
            return None;
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.v)))
    }
}

sample_iterator!(XorIter<'_>);

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks cut through a freezer share its blocks, keep their samples
    /// after the open chunk (which keeps its buffer) moves on, and a new
    /// block is begun when one is full.
    #[test]
    fn freezer_cuts_share_blocks_and_the_open_buffer_is_kept() {
        let f = Freezer::default();
        let mut open = XorChunk::new();
        let mut cut = Vec::new();
        let mut t = 0i64;
        for round in 0..3000u32 {
            for _ in 0..120 {
                t += 15_000;
                open.append(t, f64::from(round) + (t % 7) as f64 * 0.25);
            }
            let before = open.w.bytes.as_ptr();
            let c = f.cut(&mut open);
            assert!(open.is_empty() && open.w.bytes.capacity() > 0);
            assert_eq!(open.w.bytes.as_ptr(), before, "buffer kept");
            cut.push(c);
        }
        let mut t = 0i64;
        for (round, c) in cut.iter().enumerate() {
            assert_eq!(c.count(), 120);
            for (ct, v) in c.iter() {
                t += 15_000;
                assert_eq!((ct, v), (t, round as f64 + (t % 7) as f64 * 0.25));
            }
            assert_eq!(c.max_t(), t);
        }
        // 3000 chunks of a few hundred bytes fill more than one block.
        let first = cut[0].bytes.as_ptr() as usize;
        let last = cut[2999].bytes.as_ptr() as usize;
        assert!(last.abs_diff(first) > FREEZER_BLOCK || last < first);
        let next = cut[1].bytes.as_ptr() as usize;
        assert_eq!(next, first + cut[0].bytes.len(), "one block, back to back");
    }

    fn roundtrip(samples: &[(i64, f64)]) {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v);
        }
        let got: Vec<_> = c.iter().collect();
        assert_eq!(got.len(), samples.len());
        for (a, b) in got.iter().zip(samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
        let re = XorChunk::from_bytes(c.bytes(), c.len()).expect("rebuild");
        let mut re2 = re.clone();
        let mut orig = c.clone();
        let last = samples.last().map(|s| s.0).unwrap_or(0);
        re2.append(last + 15_000, 42.5);
        orig.append(last + 15_000, 42.5);
        assert_eq!(re2.bytes(), orig.bytes());
        let f = c.freeze();
        assert_eq!(f.iter().count(), samples.len());
        assert_eq!(f.min_t(), samples[0].0);
        let back = FrozenChunk::from_parts(f.stream(), f.word(), f.max_t()).expect("parts");
        assert_eq!(back.iter().count(), samples.len());
        assert!(FrozenChunk::from_parts(&[], 0, 0).is_none());
        assert!(FrozenChunk::from_parts(f.stream(), f.word(), f.max_t() + 1).is_none());
    }

    #[test]
    fn regular_and_irregular_series_roundtrip() {
        let mut s = Vec::new();
        for i in 0..120 {
            s.push((1_700_000_000_000 + i * 15_000, (i * 3) as f64));
        }
        roundtrip(&s);
        let mut s = Vec::new();
        let mut t = 1_000i64;
        for i in 0..120i64 {
            t += 1 + (i * 7919) % 100_000_000;
            let v = match i % 5 {
                0 => f64::NAN,
                1 => crate::model::stale_nan(),
                2 => f64::INFINITY,
                3 => -1e300,
                _ => (i as f64).sqrt(),
            };
            s.push((t, v));
        }
        roundtrip(&s);
        roundtrip(&[(5, 1.0)]);
        roundtrip(&[(-5, 1.0), (i64::MAX / 2, 0.0)]);
        roundtrip(&[(i64::MIN, 1.0), (0, 2.0), (i64::MAX - 20_000, 3.0)]);
    }

    #[test]
    fn constant_regular_series_compresses_to_about_two_bits_per_sample() {
        let mut c = XorChunk::new();
        for i in 0..120 {
            c.append(i * 15_000, 1.0);
        }
        // 16 header bytes + first delta + 118 × 2 bits.
        assert!(c.bytes().len() < 16 + 4 + 30, "{}", c.bytes().len());
    }

    /// Cuts `samples` through a freezer and checks what comes back, bit
    /// for bit, in order; returns the frozen chunk.
    fn cut_roundtrip(samples: &[(i64, f64)]) -> FrozenChunk {
        let f = Freezer::default();
        let mut open = XorChunk::new();
        for &(t, v) in samples {
            open.append(t, v);
        }
        let xor_len = open.bytes().len();
        let c = f.cut(&mut open);
        let got: Vec<_> = c.iter().collect();
        assert_eq!(got.len(), samples.len());
        for (a, b) in got.iter().zip(samples) {
            assert_eq!((a.0, a.1.to_bits()), (b.0, b.1.to_bits()), "{a:?} {b:?}");
        }
        assert_eq!(c.count() as usize, samples.len());
        assert_eq!(c.min_t(), samples[0].0);
        assert!(c.stream().len() <= xor_len, "never larger than XOR");
        let back = FrozenChunk::from_parts(c.stream(), c.word(), c.max_t()).expect("parts");
        assert_eq!(back.iter().collect::<Vec<_>>().len(), samples.len());
        assert!(FrozenChunk::from_parts(c.stream(), c.word(), c.max_t() + 1).is_none());
        c
    }

    /// Whole-number counters and gauges of a few decimal places are cut
    /// to the decimal encoding, several times smaller than XOR, and read
    /// back exactly; values no power of ten holds stay XOR.
    #[test]
    fn decimal_values_are_cut_to_the_decimal_encoding() {
        let ts = |i: i64| 1_700_000_000_000 + i * 15_000;
        let mut counter = 0.0;
        let counters: Vec<_> = (0..120)
            .map(|i| {
                counter += (1_000 + (i * 37) % 50) as f64;
                (ts(i), counter)
            })
            .collect();
        let gauges: Vec<_> = (0..120)
            .map(|i| (ts(i), ((i * 7919) % 1000) as f64 / 10.0))
            .collect();
        let places: Vec<_> = (0..120)
            .map(|i| (ts(i), [0.25, 1.5, 97.3, -0.001, 12345.678][i as usize % 5]))
            .collect();
        for (name, s, most) in [
            ("counter", &counters, 2.0),
            ("gauge", &gauges, 2.5),
            ("places", &places, 4.0),
        ] {
            let mut x = XorChunk::new();
            for &(t, v) in s.iter() {
                x.append(t, v);
            }
            let c = cut_roundtrip(s);
            assert!(c.word() & DECIMAL != 0, "{name}");
            let per = c.stream().len() as f64 / 120.0;
            assert!(
                per < most,
                "{name}: {per} bytes a sample, XOR {}",
                x.bytes().len() as f64 / 120.0
            );
            assert!(
                c.stream().len() * 3 < x.bytes().len() * 2,
                "{name}: {} vs {}",
                c.stream().len(),
                x.bytes().len()
            );
        }
        // Not decimals (or not exactly): kept as XOR.
        for odd in [
            f64::NAN,
            crate::model::stale_nan(),
            f64::INFINITY,
            -0.0,
            0.1 + 0.2,
            1e300,
        ] {
            let mut s: Vec<_> = (0..30).map(|i| (ts(i), i as f64)).collect();
            s[7].1 = odd;
            let c = cut_roundtrip(&s);
            assert_eq!(c.word() & DECIMAL, 0, "{odd:?}");
        }
        // Integers at the edge of exactness, and a single sample.
        let big = 9_007_199_254_740_992.0;
        cut_roundtrip(&[(0, big), (1, -big), (2, big - 1.0), (3, 0.0)]);
        cut_roundtrip(&[(5, 42.0)]);
        // Irregular timestamps with decimal values.
        let s: Vec<_> = (0..100i64)
            .map(|i| (i * i * 977 - 5_000, (i % 9) as f64 * 0.5))
            .collect();
        let c = cut_roundtrip(&s);
        assert!(c.word() & DECIMAL != 0);
    }

    /// The decimal stream is a file format: these bytes (fuzz/seed.sh's
    /// decimal seed) must keep decoding to these samples.
    #[test]
    fn decimal_stream_layout_is_stable() {
        let stream = [0, 0, 0, 0, 0, 0, 3, 0xe8, 0x04, 0x18, 0x3e, 0x88, 0x20];
        let got: Vec<_> = iter_stream(&stream, 2 | DECIMAL).collect();
        assert_eq!(got, vec![(1000, 1.0), (2000, 2.0)]);
        let mut x = XorChunk::new();
        x.append(1000, 1.0);
        x.append(2000, 2.0);
        assert_eq!(decimal::encode(&x).as_deref(), Some(&stream[..]));
    }

    #[test]
    fn truncated_decimal_streams_do_not_panic() {
        let mut x = XorChunk::new();
        for i in 0..50 {
            x.append(i * 1000 + (i * i), (i * 3) as f64 / 100.0);
        }
        let c = Freezer::default().cut(&mut x);
        assert!(c.word() & DECIMAL != 0);
        let b = c.stream();
        for cut in 0..b.len() {
            let _ = iter_stream(&b[..cut], c.word()).count();
            assert!(FrozenChunk::from_parts(&b[..cut], c.word(), c.max_t()).is_none());
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(FrozenChunk::from_parts(&longer, c.word(), c.max_t()).is_none());
    }

    #[test]
    fn truncated_bytes_do_not_panic() {
        let mut c = XorChunk::new();
        for i in 0..50 {
            c.append(i * 1000 + (i * i), i as f64 * 1.1);
        }
        let b = c.bytes();
        for cut in 0..b.len() {
            let _ = XorIter::new(&b[..cut], 50).count();
            assert!(XorChunk::from_bytes(&b[..cut], 50).is_none());
        }
    }
}
