//! Checkpoints (head.snapshot): kill -9 keeps everything; a damaged
//! checkpoint is detected, set aside, and does not stop argus.

mod common;

use common::*;

#[test]
fn kill9_restart_keeps_data_up_to_last_snapshot() {
    let t = Target::text("persisted 42\n");
    let d = tempfile::tempdir().unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: p\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr()
    );
    let mut a = Argus::start_in(d.path(), &cfg, &["--storage.snapshot-interval", "1s"]);
    wait_for(10, "scraped", || {
        (a.federate("persisted").len() == 1).then_some(())
    });
    let snap = d.path().join("data/head.snapshot");
    wait_for(10, "snapshot with the series", || {
        let b = std::fs::read(&snap).ok()?;
        b.windows(9).any(|w| w == b"persisted").then_some(())
    });
    a.kill9();
    // Restart without the target: the data must come from the snapshot.
    drop(t);
    let cfg2 = "global:\n  scrape_interval: 1s\nscrape_configs: []\n";
    let b = Argus::start_in(d.path(), cfg2, &[]);
    let s = b.api("/api/v1/series?match[]=persisted");
    assert_eq!(s.as_array().unwrap().len(), 1, "{s}");
    assert!(b.log().contains("store restored"), "{}", b.log());
}

#[test]
fn corrupt_and_truncated_snapshots_are_detected_and_set_aside() {
    for damage in ["flip", "truncate", "zero", "header"] {
        let d = tempfile::tempdir().unwrap();
        let t = Target::text("x 1\n");
        let cfg = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: p\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        );
        let mut a = Argus::start_in(d.path(), &cfg, &[]);
        wait_for(10, "scraped", || (a.federate("x").len() == 1).then_some(()));
        assert_eq!(a.stop().0, Some(0));
        let snap = d.path().join("data/head.snapshot");
        let mut bytes = std::fs::read(&snap).unwrap();
        let half = bytes.len() / 2;
        match damage {
            "flip" => bytes[half] ^= 0x01,
            "truncate" => bytes.truncate(bytes.len() - 7),
            "zero" => bytes[half..].iter_mut().for_each(|b| *b = 0),
            // Where the log starts is in the header.
            _ => bytes[14] ^= 0x01,
        }
        std::fs::write(&snap, &bytes).unwrap();
        drop(t);
        let b = Argus::start_in(d.path(), "scrape_configs: []\n", &[]);
        let log = b.log();
        let series = b.api("/api/v1/series?match[]=%7Bjob%3D%22p%22%7D");
        let n = series.as_array().unwrap().len();
        if damage == "header" {
            assert!(log.contains("snapshot is damaged"), "{damage}: {log}");
            let aside: Vec<_> = std::fs::read_dir(d.path().join("data"))
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
                .collect();
            assert_eq!(aside.len(), 1, "{damage}");
        } else {
            // One record a series: the damage costs the series it hits
            // (and, cut short, those after it), named with its offset.
            let line = log
                .lines()
                .find(|l| l.contains("checkpoint damaged"))
                .unwrap_or_else(|| panic!("{damage}: {log}"));
            assert!(line.contains("head.snapshot at offset"), "{damage}: {line}");
            assert!((1..6).contains(&n), "{damage}: {n} of 6 series restored");
        }
    }
}

#[test]
fn retention_frees_old_series() {
    let t = Target::text("short_lived 1\n");
    let d = tempfile::tempdir().unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: r\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr()
    );
    let mut a = Argus::start_in(d.path(), &cfg, &[]);
    wait_for(10, "scraped", || {
        (a.federate("short_lived").len() == 1).then_some(())
    });
    a.stop();
    // Restart without targets and with a retention shorter than the data's
    // age: the first retention pass (at start) removes the old series.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let b = Argus::start_in(
        d.path(),
        "scrape_configs: []\n",
        &["--storage.retention", "2s"],
    );
    assert!(b.log().contains("store restored"), "{}", b.log());
    wait_for(10, "series removed by retention", || {
        let s = b.api("/api/v1/series?match[]=short_lived");
        s.as_array().unwrap().is_empty().then_some(())
    });
    let m = http_get(&format!("{}/metrics", b.url())).unwrap().1;
    let removed = m
        .lines()
        .find(|l| l.starts_with("argus_head_series_removed_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(removed >= 1.0, "{m}");
}
