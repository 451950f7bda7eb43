//! The text exposition parser (Prometheus text 0.0.4 and OpenMetrics 1.0):
//! every entry and its labels, to the end or the first error.
#![no_main]

use argus::model::LabelsBuilder;
use argus::scrape::parse::{Entry, Format, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let format = if first & 1 == 0 {
        Format::PrometheusText
    } else {
        Format::OpenMetrics
    };
    let mut p = Parser::new(body, format);
    let mut lb = LabelsBuilder::new();
    while let Ok(Some(e)) = p.next() {
        if let Entry::Sample(_) = e {
            let _ = p.labels(&mut lb);
        }
    }
});
