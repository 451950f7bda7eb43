//! Decoding full chunks, XOR against the decimal encoding, on the value
//! kinds of benches/restart.rs (whole-number counters, three-digit
//! gauges, constants): what a query pays per sample for each, and the
//! bytes each takes (printed once).

use criterion::{Criterion, criterion_group, criterion_main};

use argus::storage::chunk::{Freezer, FrozenChunk, XorChunk};

/// 1,000 chunks of 120 samples at 15 s of one kind of value.
fn chunks(kind: usize) -> (Vec<XorChunk>, Vec<FrozenChunk>) {
    let freezer = Freezer::default();
    let mut xor = Vec::new();
    let mut frozen = Vec::new();
    let mut counter = 0.0;
    for c in 0..1000usize {
        let mut x = XorChunk::new();
        for s in 0..120usize {
            let i = c * 120 + s;
            let v = match kind {
                0 => {
                    counter += ((i + c) % 5) as f64;
                    counter
                }
                1 => ((i * 7 + c) % 1000) as f64 / 10.0,
                _ => 1.0,
            };
            x.append(i as i64 * 15_000, v);
        }
        let mut open = x.clone();
        frozen.push(freezer.cut(&mut open));
        xor.push(x);
    }
    (xor, frozen)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_decode");
    for (kind, name) in ["counter", "gauge", "constant"].iter().enumerate() {
        let (xor, frozen) = chunks(kind);
        let xb: usize = xor.iter().map(|x| x.bytes().len()).sum();
        let fb: usize = frozen.iter().map(|f| f.stream().len()).sum();
        println!(
            "{name}: XOR {:.2} bytes a sample, as cut {:.2}",
            xb as f64 / 120_000.0,
            fb as f64 / 120_000.0
        );
        g.bench_function(format!("{name}/xor"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for x in &xor {
                    for (_, v) in x.iter() {
                        sum += v;
                    }
                }
                sum
            })
        });
        g.bench_function(format!("{name}/xor_enum"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for x in &xor {
                    for (_, v) in argus::storage::chunk::ChunkIter::Xor(x.iter()) {
                        sum += v;
                    }
                }
                sum
            })
        });
        g.bench_function(format!("{name}/as_cut"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for f in &frozen {
                    f.iter().for_each_while(|_, v| {
                        sum += v;
                        true
                    });
                }
                sum
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
