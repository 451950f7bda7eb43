//! PromQL as the API takes it: parsed (with argus's limits), printed,
//! and evaluated over a small head, instant and range, with the API's
//! sample limit and a short timeout.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argus::model::Labels;
use argus::promql::{Engine, EngineOptions, Query, QueryOptions};
use argus::storage::{Appender, Head};
use libfuzzer_sys::fuzz_target;

fn head() -> &'static Arc<Head> {
    static HEAD: OnceLock<Arc<Head>> = OnceLock::new();
    HEAD.get_or_init(|| {
        let h = Arc::new(Head::new());
        let mut a = h.appender();
        for (name, job) in [("up", "a"), ("up", "b"), ("http_requests_total", "a")] {
            let l = Labels::from_pairs([("__name__", name), ("job", job), ("instance", "x:1")]);
            for k in 0..60i64 {
                let v = if name == "up" { (k % 2) as f64 } else { (k * 7) as f64 };
                let _ = a.append(&l, k * 15_000, v);
            }
        }
        a.commit();
        h
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = Query::parse(text) else {
        return;
    };
    let _ = q.expr().to_string();
    let _ = q.expr().prettify();
    let engine = Engine::new(EngineOptions {
        max_samples: 1_000_000,
        timeout: Duration::from_secs(2),
        ..Default::default()
    });
    let o = QueryOptions::default();
    let _ = engine.instant(head().as_ref(), &q, 600_000, &o);
    let _ = engine.range(head().as_ref(), &q, 0, 900_000, 60_000, &o);
});
