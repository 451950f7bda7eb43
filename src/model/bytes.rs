//! Reading little-endian binary state files (snapshots, the WAL, SLI
//! windows): every read is bounds-checked and answers `None` past the end,
//! so a truncated or damaged file is an error, never a panic. Varints are
//! LEB128 (as protobuf's), signed ones zigzag-encoded.

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded, so small negative numbers stay short.
pub fn put_signed_varint(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A cursor over a byte slice.
pub struct ByteReader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// Reads `b` from offset `pos`.
    pub fn new(b: &'a [u8], pos: usize) -> Self {
        ByteReader { b, pos }
    }

    /// The offset of the next read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// An `i32`.
    pub fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_le_bytes)
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// An `i64`.
    pub fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    /// An `f64`.
    pub fn f64(&mut self) -> Option<f64> {
        self.array().map(f64::from_le_bytes)
    }

    /// An unsigned LEB128 varint; `None` past the end or beyond 64 bits.
    pub fn varint(&mut self) -> Option<u64> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return None;
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }

    /// A zigzag-encoded signed varint.
    pub fn signed_varint(&mut self) -> Option<i64> {
        let u = self.varint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint length, then that many bytes.
    pub fn varint_sized(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    /// A `u32` length, then that many bytes.
    pub fn sized(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_overlong() {
        let mut b = Vec::new();
        let us = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let is = [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX];
        for u in us {
            put_varint(&mut b, u);
        }
        for i in is {
            put_signed_varint(&mut b, i);
        }
        let mut r = ByteReader::new(&b, 0);
        for u in us {
            assert_eq!(r.varint(), Some(u));
        }
        for i in is {
            assert_eq!(r.signed_varint(), Some(i));
        }
        assert_eq!(r.varint(), None);
        // Eleven continuation bytes, or a tenth byte above 1, overflow.
        assert_eq!(ByteReader::new(&[0xff; 11], 0).varint(), None);
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(ByteReader::new(&over, 0).varint(), None);
    }
}
