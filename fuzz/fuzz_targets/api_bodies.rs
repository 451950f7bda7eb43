//! Request bodies from the network: posted alerts (Alertmanager's
//! /api/v2/alerts), posted silences, and peer heartbeats.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(alerts) = serde_json::from_slice::<Vec<argus::notify::PostableAlert>>(data) {
        for a in alerts {
            let _ = a.check();
        }
    }
    let _ = argus::api::alertmanager::decode_silence(data, 1_700_000_000_000);
    let _ = serde_json::from_slice::<argus::ha::Heartbeat>(data);
});
