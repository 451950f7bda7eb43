//! `argus import openmetrics` against real processes: what is imported is
//! written to chunk files (the checkpoint keeps only labels and ids), a
//! second import adds to the first, and `argus run` serves all of it.

mod common;

use common::*;

#[test]
fn imports_go_to_chunk_files_and_are_served() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
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
