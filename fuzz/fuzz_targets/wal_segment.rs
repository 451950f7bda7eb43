//! A write-ahead log segment, replayed into a store as `argus run` does at
//! start. With the first byte odd the rest is the segment's raw bytes
//! (framing, torn and zeroed tails); with it even the rest is a list of
//! `[kind u8][length u16 LE][payload]` that is framed with valid checksums
//! first, so the fuzzer reaches the record decoders and the replay into
//! the head rather than stopping at checksums. Bit 1 of the first byte
//! sets a retention bound.
#![no_main]

use argus::storage::{Queryable, Store, StoreOptions, wal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let segment = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        let mut out = Vec::new();
        let mut r = rest;
        while let [kind, a, b, tail @ ..] = r {
            let n = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
            wal::frame(*kind, &tail[..n], &mut out);
            r = &tail[n..];
        }
        out
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join(wal::DIR);
    std::fs::create_dir_all(&wal_dir).expect("mkdir");
    std::fs::write(wal_dir.join(wal::segment_name(1)), &segment).expect("write");
    let opts = StoreOptions {
        min_valid_t: (mode & 2 == 2).then_some(0),
        ..Default::default()
    };
    if let Ok((store, _)) = Store::open(dir.path(), opts) {
        let _ = store.head().select(&[], i64::MIN, i64::MAX);
    }
});
