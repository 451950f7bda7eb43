//! The record format of argus's state files: one record a line, each with
//! its own checksum, so that a damaged byte costs the record it is in,
//! not the file. A file starts with [`MAGIC`]; each line is the CRC-32 of
//! the payload in eight hex digits, a space, and the payload (which must
//! not contain a newline: JSON written by serde_json never does).
//!
//! Files written before this format (one JSON document) have no magic;
//! [`decode`] says so and the caller reads them the old way. Records are
//! usually JSON values ([`json_records`], [`to_json_records`]).

/// First line of a record file.
pub const MAGIC: &[u8] = b"argus-records 1\n";

/// A record that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDamage {
    /// Byte offset of the line in the file.
    pub offset: usize,
    /// What was wrong with it.
    pub reason: String,
}

impl std::fmt::Display for RecordDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "offset {}: {}", self.offset, self.reason)
    }
}

/// Frames `payloads` as a record file.
pub fn encode<I, P>(payloads: I) -> Vec<u8>
where
    I: IntoIterator<Item = P>,
    P: AsRef<[u8]>,
{
    let mut out = MAGIC.to_vec();
    for p in payloads {
        let p = p.as_ref();
        out.extend_from_slice(format!("{:08x} ", crc32fast::hash(p)).as_bytes());
        out.extend_from_slice(p);
        out.push(b'\n');
    }
    out
}

/// What [`decode`] found: the intact records as `(offset, payload)`, and
/// the damaged ones.
pub type Decoded<'a> = (Vec<(usize, &'a [u8])>, Vec<RecordDamage>);

/// The intact records of a record file (as `(offset, payload)`) and the
/// damaged ones; `None` if `b` is not a record file. A last line without
/// its newline (a write cut short) is damage like any other.
pub fn decode(b: &[u8]) -> Option<Decoded<'_>> {
    let body = b.strip_prefix(MAGIC)?;
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let mut offset = MAGIC.len();
    for line in body.split_inclusive(|&c| c == b'\n') {
        let at = offset;
        offset += line.len();
        let Some(line) = line.strip_suffix(b"\n") else {
            bad.push(RecordDamage {
                offset: at,
                reason: "record cut short".into(),
            });
            continue;
        };
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .get(..9)
            .filter(|h| h[8] == b' ')
            .and_then(|h| std::str::from_utf8(&h[..8]).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match parsed {
            None => bad.push(RecordDamage {
                offset: at,
                reason: "no checksum".into(),
            }),
            Some(sum) if sum != crc32fast::hash(&line[9..]) => bad.push(RecordDamage {
                offset: at,
                reason: "checksum mismatch".into(),
            }),
            Some(_) => ok.push((at, &line[9..])),
        }
    }
    Some((ok, bad))
}

/// The records of a record file as JSON values of `T`; `None` for a file
/// in the older one-document form (the caller reads it as such). A record
/// that fails its checksum or does not parse is reported as damage and
/// skipped, so it costs itself only.
pub fn json_records<T: serde::de::DeserializeOwned>(
    b: &[u8],
) -> Option<(Vec<T>, Vec<RecordDamage>)> {
    let (ok, mut bad) = decode(b)?;
    let mut out = Vec::with_capacity(ok.len());
    for (offset, payload) in ok {
        match serde_json::from_slice(payload) {
            Ok(v) => out.push(v),
            Err(e) => bad.push(RecordDamage {
                offset,
                reason: e.to_string(),
            }),
        }
    }
    Some((out, bad))
}

/// A binary payload as a record (lowercase hex: records are lines).
pub fn hex(b: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    b.iter()
        .flat_map(|&x| [DIGITS[usize::from(x >> 4)], DIGITS[usize::from(x & 15)]])
        .collect()
}

/// The bytes of a [`hex`] payload; `None` if it is not hex.
pub fn unhex(h: &[u8]) -> Option<Vec<u8>> {
    if h.len() % 2 != 0 {
        return None;
    }
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    h.chunks(2)
        .map(|p| Some(val(p[0])? << 4 | val(p[1])?))
        .collect()
}

/// `values` as a record file of JSON values.
pub fn to_json_records<T: serde::Serialize>(values: impl IntoIterator<Item = T>) -> Vec<u8> {
    encode(
        values
            .into_iter()
            .filter_map(|v| serde_json::to_vec(&v).ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_damaged_byte_costs_one_record() {
        let f = encode([&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
        let (ok, bad) = decode(&f).unwrap();
        assert_eq!(ok.len(), 3);
        assert!(bad.is_empty());
        let originals: [&[u8]; 3] = [b"{\"a\":1}", b"{\"b\":2}", b"{\"c\":3}"];
        for i in MAGIC.len()..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x20;
            let (ok, _) = decode(&g).unwrap();
            // Nothing damaged is taken for good, and a flip costs at most
            // the two records a broken newline joins (a flip that changes
            // nothing, such as a hex digit's case, costs none).
            for (_, p) in &ok {
                assert!(originals.contains(p), "byte {i}: damaged record accepted");
            }
            assert!(!ok.is_empty(), "byte {i}");
        }
        let cut = &f[..f.len() - 3];
        let (ok, bad) = decode(cut).unwrap();
        assert_eq!((ok.len(), bad.len()), (2, 1));
        assert_eq!(bad[0].reason, "record cut short");
        assert!(decode(b"{\"legacy\":true}").is_none());
    }
}
