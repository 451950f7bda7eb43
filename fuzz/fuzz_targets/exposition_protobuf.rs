//! The protobuf exposition decoder, native histograms included, with and
//! without the classic series of histograms.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = argus::scrape::proto::parse(data, false);
    let _ = argus::scrape::proto::parse(data, true);
});
