//! A chunk file, scanned at start and read by a query over every series.
//! With the first byte odd the rest is the file's raw bytes; with it even
//! the rest is a list of `[length u16 LE][body]` records (body: series id
//! u32, sample count u16, time span u32, stream: XOR, or decimal when the
//! count's top bit is set) that get the file header and valid checksums
//! first, so the fuzzer reaches both chunk decoders rather than stopping
//! at checksums. A log segment names series
//! 0 to 7, so chunks for those ids are attached and decoded.
//!
//! With bit 1 of the first byte set, the file has an index beside it: the
//! next two bytes (u16 LE) are its length, then its bytes; with bit 2 also
//! set those bytes are entries that get the index header, count and
//! checksum, so the fuzzer reaches the entry checks and, when they pass,
//! reads through the index.
#![no_main]

use argus::model::Labels;
use argus::storage::{Queryable, Store, StoreOptions, chunks, wal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (index, rest) = match rest {
        [a, b, tail @ ..] if mode & 2 == 2 => {
            let n = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
            let raw = &tail[..n];
            let ix = if mode & 4 == 4 {
                let whole = &raw[..raw.len() / 24 * 24];
                let mut out = b"ARGUSIDX\x01\x00\x00\x00".to_vec();
                out.extend_from_slice(&((whole.len() / 24) as u32).to_le_bytes());
                out.extend_from_slice(whole);
                out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
                out
            } else {
                raw.to_vec()
            };
            (Some(ix), &tail[n..])
        }
        _ => (None, rest),
    };
    let file = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        let mut out = b"ARGUSCHK\x01\x00\x00\x00".to_vec();
        let mut r = rest;
        while let [a, b, tail @ ..] = r {
            let n = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
            let body = &tail[..n];
            out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
            out.extend_from_slice(&(n as u32).to_le_bytes());
            out.extend_from_slice(body);
            r = &tail[n..];
        }
        out
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let chunk_dir = dir.path().join(chunks::DIR);
    std::fs::create_dir_all(&chunk_dir).expect("mkdir");
    std::fs::write(chunk_dir.join("00000001"), &file).expect("write");
    if let Some(ix) = index {
        std::fs::write(chunk_dir.join("00000001.index"), &ix).expect("write");
    }
    let mut series = wal::SeriesRecord::default();
    for id in 0..8u32 {
        series.push(id, &Labels::from_pairs([("__name__", format!("s{id}"))]));
    }
    let mut seg = Vec::new();
    wal::frame(1, series.as_bytes(), &mut seg);
    let wal_dir = dir.path().join(wal::DIR);
    std::fs::create_dir_all(&wal_dir).expect("mkdir");
    std::fs::write(wal_dir.join(wal::segment_name(1)), &seg).expect("write");
    if let Ok((store, _)) = Store::open(dir.path(), StoreOptions::default()) {
        let _ = store.head().select(&[], i64::MIN, i64::MAX);
        let _ = store.head().select_latest(&[], i64::MIN, i64::MAX);
    }
});
