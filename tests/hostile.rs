//! Hostile targets: each gets up=0 with a clear lastError, argus stays
//! healthy, and a well-behaved target keeps its schedule.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn hostile_targets_fail_alone() {
    let good = Target::text("good_metric 1\n");
    let mut labels = String::from("many{");
    for i in 0..10_000 {
        labels.push_str(&format!("l{i}=\"v\","));
    }
    labels.push_str("} 1\n");
    let hostile: Vec<(&str, Target, &str)> = vec![
        (
            "malformed",
            Target::text("ok 1\nthis is { not valid\n"),
            "parse error: line 2",
        ),
        (
            "huge",
            Target::start(Reply::Huge { total: 100 << 20 }),
            "body size limit exceeded",
        ),
        ("labels", Target::text(&labels), "label_limit exceeded"),
        ("trickle", Target::start(Reply::Trickle), "timed out"),
        (
            "utf8",
            Target::start(Reply::Body {
                content_type: "text/plain".into(),
                body: b"bad{x=\"\xff\xfe\"} 1\n".to_vec(),
            }),
            "invalid UTF-8",
        ),
        (
            "dup",
            Target::text("d{a=\"1\"} 1\nd{a=\"1\"} 2\n"),
            "duplicate series",
        ),
        (
            "midbody",
            Target::start(Reply::CloseMidBody {
                prefix: b"partial_metric 1\npartial_metric".to_vec(),
            }),
            "body",
        ),
    ];
    let mut jobs = format!(
        "  - job_name: good\n    static_configs: [{{targets: ['{}']}}]\n",
        good.addr()
    );
    for (name, t, _) in &hostile {
        jobs.push_str(&format!(
            "  - job_name: {name}\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ));
    }
    let a = Argus::start(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  body_size_limit: 10MB\n  label_limit: 64\n  sample_limit: 100000\nscrape_configs:\n{jobs}"
        ),
        &[],
    );
    for (name, t, want) in &hostile {
        let target = wait_for(15, &format!("{name} target down"), || {
            let x = a.target(&t.addr())?;
            (x["health"] == "down").then_some(x)
        });
        let err = target["lastError"].as_str().unwrap();
        assert!(!err.is_empty(), "{name}: empty lastError");
        assert!(
            err.contains(want),
            "{name}: lastError {err:?} lacks {want:?}"
        );
        let up = a.federate(&format!("up{{job=\"{name}\"}}"));
        assert_eq!(up[0].1, 0.0, "{name}");
    }
    // Nothing partial was stored from the failed scrapes.
    assert!(
        a.federate("{__name__=~\"ok|partial_metric|huge_metric_with_a_long_name|many|d|bad\"}")
            .is_empty()
    );
    // argus stays healthy and the good target keeps its 1s schedule.
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
    let before = good.hit_count();
    std::thread::sleep(Duration::from_secs(4));
    let hits = good.hit_count() - before;
    assert!(
        (3..=5).contains(&hits),
        "good target scraped {hits} times in 4s"
    );
    let g = a.target(&good.addr()).unwrap();
    assert_eq!(g["health"], "up");
    // Memory stayed bounded: RSS well below the 100 MB body.
    let pid = a.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss_kb < 80_000, "peak RSS {rss_kb} kB");
}
