//! `argus import openmetrics` against real processes: what is imported is
//! written to chunk files (the checkpoint keeps only labels and ids), a
//! second import adds to the first, and `argus run` serves all of it.

mod common;

use common::*;

/// Now, in Unix seconds (imported samples must fall inside retention).
fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn imports_go_to_chunk_files_and_are_served() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let now_s = now_s();
    // Three series, 1,000 samples each at 15 s, ending a minute ago.
    let start = now_s - 60 - 1000 * 15;
    let mut om = String::from("# TYPE imported gauge\n");
    for i in 0..1000u64 {
        for s in ["a", "b", "c"] {
            om.push_str(&format!(
                "imported{{s=\"{s}\"}} {} {}\n",
                i % 97,
                start + i * 15
            ));
        }
    }
    om.push_str("# EOF\n");
    let file = d.path().join("in.om");
    std::fs::write(&file, &om).unwrap();
    let import = || {
        let (code, out) = argus_cli([
            "import".as_ref(),
            "openmetrics".as_ref(),
            file.as_os_str(),
            "--storage.path".as_ref(),
            data.as_os_str(),
        ]);
        assert_eq!(code, Some(0), "{out}");
    };
    import();
    let chunk_bytes: u64 = std::fs::read_dir(data.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let snapshot = std::fs::metadata(data.join("head.snapshot")).unwrap().len();
    // 3,000 samples at about 1.3 bytes each; the checkpoint only labels.
    assert!(chunk_bytes > 1500, "{chunk_bytes}");
    assert!(snapshot < 1000, "{snapshot}");
    assert!(
        std::fs::read_dir(data.join("wal")).unwrap().count() == 0,
        "nothing left to replay"
    );

    // A second import, of a fourth series, adds to the first.
    let om2 = format!("imported{{s=\"d\"}} 5 {}\n# EOF\n", now_s - 30);
    std::fs::write(&file, om2).unwrap();
    import();

    let a = Argus::start_in(d.path(), "scrape_configs: []\n", &[]);
    assert_eq!(
        a.query_value("count(count_over_time(imported[1d]))"),
        Some(4.0)
    );
    assert_eq!(
        a.query_value("sum(count_over_time(imported[1d]))"),
        Some(3001.0)
    );
    // The values read back are the ones imported.
    assert_eq!(
        a.query_value("sum(sum_over_time(imported{s=\"b\"}[1d]))"),
        Some((0..1000u64).map(|i| (i % 97) as f64).sum())
    );
}

/// `--storage.retention-size`: three imports make three chunk files of
/// three different hours; with a budget that the store is over by less
/// than the oldest file, that file goes at the first retention pass (at
/// start), its hour is no longer served, the other two are, and the pass
/// is counted.
#[test]
fn a_size_budget_removes_the_oldest_chunk_files() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let now_s = now_s();
    let file = d.path().join("in.om");
    for hour in [3u64, 2, 1] {
        let start = now_s - hour * 3600;
        let mut om = String::from("# TYPE sized gauge\n");
        for i in 0..600u64 {
            for s in ["a", "b", "c"] {
                om.push_str(&format!(
                    "sized{{s=\"{s}\",hour=\"{hour}\"}} {} {}\n",
                    (i * 7919) % 1009,
                    start + i * 5
                ));
            }
        }
        om.push_str("# EOF\n");
        std::fs::write(&file, &om).unwrap();
        let (code, out) = argus_cli([
            "import".as_ref(),
            "openmetrics".as_ref(),
            file.as_os_str(),
            "--storage.path".as_ref(),
            data.as_os_str(),
        ]);
        assert_eq!(code, Some(0), "{out}");
    }
    fn tree_bytes(p: &std::path::Path) -> u64 {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.map(|e| {
                    let e = e.unwrap();
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        tree_bytes(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
            })
            .unwrap_or(0)
    }
    let chunks = data.join("chunks");
    let oldest = ["00000001", "00000001.index"]
        .iter()
        .map(|f| std::fs::metadata(chunks.join(f)).map_or(0, |m| m.len()))
        .sum::<u64>();
    let total = tree_bytes(&data);
    assert!(oldest > 2000, "the oldest file holds its hour: {oldest}");
    let budget = (total - oldest / 2).to_string();
    let a = Argus::start_in(
        d.path(),
        "scrape_configs: []\n",
        &[
            "--storage.retention-size",
            &budget,
            "--storage.tsdb.retention.time",
            "3650d",
        ],
    );
    a.wait_for(20, "the oldest chunk file removed", || {
        (!chunks.join("00000001").exists()).then_some(())
    });
    assert!(chunks.join("00000002").exists() && chunks.join("00000003").exists());
    assert_eq!(
        a.query_value("count(count_over_time(sized{hour=\"3\"}[4h]))"),
        None,
        "the oldest hour is gone"
    );
    for hour in ["2", "1"] {
        assert_eq!(
            a.query_value(&format!(
                "sum(count_over_time(sized{{hour=\"{hour}\"}}[4h]))"
            )),
            Some(1800.0),
            "hour {hour}"
        );
    }
    let (_, metrics) = http_get(&format!("{}/metrics", a.url())).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("argus_storage_size_retentions_total ") && !l.ends_with(" 0")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("size_retentions"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
