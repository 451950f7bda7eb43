//! Go templates: parsed and executed with Go's and Prometheus's
//! functions and the default limits, over a small alert-like value.
#![no_main]

use std::collections::BTreeMap;

use argus::template::{Funcs, Limits, Template, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Template::parse("fuzz", text) else {
        return;
    };
    let mut funcs = Funcs::builtin();
    argus::template::prometheus::add_prometheus_funcs(&mut funcs, "http://argus:9095", 1.7e9, None);
    let mut labels = BTreeMap::new();
    labels.insert("job".to_string(), "api".to_string());
    labels.insert("instance".to_string(), "x:1".to_string());
    let mut root = BTreeMap::new();
    root.insert("Labels".to_string(), Value::StrMap(labels));
    root.insert("Value".to_string(), Value::Float(0.25));
    root.insert(
        "List".to_string(),
        Value::List(vec![Value::Int(1), Value::Str("two".into())]),
    );
    let _ = t.execute(&Value::Map(root), &funcs, Limits::default());
});
