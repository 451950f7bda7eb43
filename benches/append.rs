//! Head append throughput: the scrape path's steady state (cached series
//! references), with and without the write-ahead log, and series creation.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use argus::model::Labels;
use argus::storage::{Appender, Head, SeriesRef, Store, StoreOptions};

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__".to_string(), format!("metric_{}", i % 50)),
        (
            "instance".to_string(),
            format!("10.0.{}.{}:9100", i % 7, i % 250),
        ),
        ("job".to_string(), "node".to_string()),
        ("series".to_string(), i.to_string()),
    ])
}

fn bench(c: &mut Criterion) {
    const N: usize = 10_000;
    let all: Vec<Labels> = (0..N).map(labels).collect();
    let mut g = c.benchmark_group("head_append");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("create_series", |b| {
        b.iter_batched(
            || Arc::new(Head::new()),
            |h| {
                let mut a = h.appender();
                for l in &all {
                    a.append(l, 1000, 1.0).expect("append");
                }
                a.commit()
            },
            BatchSize::LargeInput,
        )
    });
    // The same steady state on a bare head and on a store that logs every
    // commit (the log's flusher writes in the background meanwhile).
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::open(
        dir.path(),
        StoreOptions {
            log: true,
            ..Default::default()
        },
    )
    .expect("store");
    for (name, h) in [
        ("append_ref_commit", Arc::new(Head::new())),
        ("append_ref_commit_wal", store.head().clone()),
    ] {
        let mut a = h.appender();
        let refs: Vec<SeriesRef> = all
            .iter()
            .map(|l| a.append(l, 0, 0.0).expect("append"))
            .collect();
        a.commit();
        let mut t = 0i64;
        g.bench_function(name, |b| {
            b.iter(|| {
                t += 15_000;
                let mut a = h.appender();
                for (i, r) in refs.iter().enumerate() {
                    a.append_ref(*r, t, (t / 1000 + i as i64) as f64)
                        .expect("ref");
                }
                a.commit()
            })
        });
    }
    g.finish();

    // A head far larger than the caches, appended to as 50 targets of
    // 2,000 series each commit (benches/compare's load): the per-sample
    // cost is dominated by fetching each series from memory.
    const BIG: usize = 100_000;
    const PER_TARGET: usize = 2_000;
    let mut g = c.benchmark_group("head_append_large");
    g.throughput(Throughput::Elements(BIG as u64));
    g.sample_size(20);
    let h = Arc::new(Head::new());
    let mut refs: Vec<Vec<SeriesRef>> = Vec::new();
    for target in 0..BIG / PER_TARGET {
        let mut a = h.appender();
        refs.push(
            (0..PER_TARGET)
                .map(|i| {
                    a.append(&labels(target * PER_TARGET + i), 0, 0.0)
                        .expect("append")
                })
                .collect(),
        );
        a.commit();
    }
    let mut t = 0i64;
    g.bench_function("append_ref_commit_100k_by_target", |b| {
        b.iter(|| {
            t += 1_000;
            for target in &refs {
                let mut a = h.appender();
                for (i, r) in target.iter().enumerate() {
                    a.append_ref(*r, t, (t / 1000 + i as i64) as f64)
                        .expect("ref");
                }
                a.commit();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
