//! The state files under --storage.path, as they are read at start: the
//! head snapshot, alert state, SLO windows, silences, the notification
//! log and the outbox. The first byte picks the file.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir")).path()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            std::fs::write(dir().join("head.snapshot"), body).expect("write");
            let _ = argus::storage::snapshot::load(dir());
        }
        1 => {
            std::fs::write(dir().join(argus::rules::ALERTS_FILE), body).expect("write");
            let _ = argus::rules::load_alert_state(dir());
        }
        2 => {
            let _ = argus::slo::windows_from_bytes(body);
        }
        3 => {
            let _ = argus::notify::Silences::from_json(body);
        }
        4 => {
            let _ = argus::notify::NotificationLog::from_json(body);
        }
        _ => {
            let clock: std::sync::Arc<dyn argus::model::Clock> =
                std::sync::Arc::new(argus::model::SystemClock);
            let mut o = argus::notify::Outbox::new(argus::notify::OutboxSettings::default(), clock);
            let _ = o.restore(body);
        }
    }
});
