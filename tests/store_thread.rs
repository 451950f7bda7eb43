//! A dropped store leaves no thread behind (found by the fuzz targets'
//! leak checks: the storage thread used to be detached and outlive the
//! store for up to 100 ms). Alone in its test binary, so no other store's
//! thread is counted.

use argus::storage::{Store, StoreOptions};

fn storage_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == "argus-storage")
        .count()
}

#[test]
fn a_dropped_store_stops_its_thread_before_drop_returns() {
    let dir = tempfile::tempdir().unwrap();
    for log in [false, true] {
        let (store, _) = Store::open(
            dir.path(),
            StoreOptions {
                log,
                ..Default::default()
            },
        )
        .unwrap();
        // The thread names itself once it runs.
        let t0 = std::time::Instant::now();
        while storage_threads() == 0 && t0.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(storage_threads(), 1);
        drop(store);
        assert_eq!(storage_threads(), 0, "log: {log}");
    }
}
