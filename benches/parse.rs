//! Parser throughput on a realistic 10k-series exposition, in both formats:
//! the steady-state pass (series bytes only, as the scrape cache uses it)
//! and the cold pass that also decodes every label set.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use argus::model::LabelsBuilder;
use argus::scrape::parse::{Entry, Format, Parser};

fn count(body: &[u8], f: Format, labels: bool) -> usize {
    let mut p = Parser::new(body, f);
    let mut n = 0;
    let mut b = LabelsBuilder::new();
    while let Ok(Some(e)) = p.next() {
        if let Entry::Sample(_) = e {
            n += 1;
            if labels {
                p.labels(&mut b).expect("valid");
            }
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    for (name, f, om) in [
        ("text", Format::PrometheusText, false),
        ("openmetrics", Format::OpenMetrics, true),
    ] {
        let body = support::exposition(om);
        let samples = count(body.as_bytes(), f, true);
        assert_eq!(samples, 10_000);
        let mut g = c.benchmark_group(format!("parse_{name}"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("bytes/steady", |b| {
            b.iter(|| count(body.as_bytes(), f, false))
        });
        g.bench_function("bytes/with_labels", |b| {
            b.iter(|| count(body.as_bytes(), f, true))
        });
        g.throughput(Throughput::Elements(samples as u64));
        g.bench_function("samples/steady", |b| {
            b.iter(|| count(body.as_bytes(), f, false))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
