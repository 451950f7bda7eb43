//! Turning discovered groups into scrape targets: the special labels,
//! target relabeling, and the scrape URL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::discovery::TargetGroup;
use super::relabel::{Relabel, process};
use crate::config::{ScrapeConfig, parse_duration};
use crate::model::{Labels, LabelsBuilder};

/// One target to scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Labels attached to every sample (job, instance, …), `__` labels removed.
    pub labels: Labels,
    /// Labels as discovered, before relabeling (for the targets API).
    pub discovered: Labels,
    /// The scrape URL.
    pub url: String,
    /// Scrape interval.
    pub interval: Duration,
    /// Scrape timeout.
    pub timeout: Duration,
}

impl Target {
    /// Identity of the target within its job: a stable hash of its labels
    /// and URL, which also seeds its scrape offset.
    pub fn hash(&self) -> u64 {
        let mut h = crate::model::Fnv64::new();
        h.write(&self.labels.stable_hash().to_le_bytes());
        h.write(self.url.as_bytes());
        h.finish()
    }

    /// The `instance` label.
    pub fn instance(&self) -> &str {
        self.labels.get("instance").unwrap_or("")
    }
}

/// Result of building one target.
#[derive(Clone, Debug)]
pub enum Built {
    /// Scrape it.
    Active(Target),
    /// Relabeling dropped it.
    Dropped(Labels),
    /// It cannot be scraped (for example no `__address__`).
    Invalid(Labels, String),
}

/// Builds targets from the groups of one job.
pub fn build_targets(sc: &ScrapeConfig, relabel: &[Relabel], groups: &[TargetGroup]) -> Vec<Built> {
    let mut out = Vec::new();
    for g in groups {
        for t in &g.targets {
            out.push(build_one(sc, relabel, t, &g.labels));
        }
    }
    out
}

fn build_one(
    sc: &ScrapeConfig,
    relabel: &[Relabel],
    target: &BTreeMap<String, String>,
    group: &BTreeMap<String, String>,
) -> Built {
    let mut b = LabelsBuilder::new();
    // Defaults first; group labels, then target labels override them.
    b.set_str("job", &sc.job_name);
    b.set_str("__scheme__", &sc.scheme);
    b.set_str("__metrics_path__", &sc.metrics_path);
    b.set_str("__scrape_interval__", &sc.interval().to_string());
    b.set_str("__scrape_timeout__", &sc.timeout().to_string());
    for (k, v) in &sc.params {
        if let Some(first) = v.first() {
            b.set_str(&format!("__param_{k}"), first);
        }
    }
    for (k, v) in group.iter().chain(target.iter()) {
        b.set_str(k, v);
    }
    let discovered = b.clone().build();
    if !process(&mut b, relabel) {
        return Built::Dropped(discovered);
    }
    let Some(addr) = b.get("__address__").map(str::to_string) else {
        return Built::Invalid(discovered, "no address".into());
    };
    if addr.contains('/') {
        return Built::Invalid(discovered, format!("{addr:?} is not a valid hostname"));
    }
    let scheme = b.get("__scheme__").unwrap_or("http").to_string();
    let mut path = b.get("__metrics_path__").unwrap_or("/metrics").to_string();
    // As Go writes a URL with a host: a relative path gets its slash.
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let interval = match b.get("__scrape_interval__").map(parse_duration) {
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => return Built::Invalid(discovered, "scrape interval cannot be 0".into()),
        Some(Err(e)) => {
            return Built::Invalid(discovered, format!("error parsing scrape interval: {e}"));
        }
        None => sc.interval().0,
    };
    let timeout = match b.get("__scrape_timeout__").map(parse_duration) {
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => return Built::Invalid(discovered, "scrape timeout cannot be 0".into()),
        Some(Err(e)) => {
            return Built::Invalid(discovered, format!("error parsing scrape timeout: {e}"));
        }
        None => sc.timeout().0,
    };
    if timeout > interval {
        return Built::Invalid(
            discovered,
            format!(
                "scrape timeout cannot be greater than scrape interval ({timeout:?} > {interval:?})"
            ),
        );
    }
    // Query parameters: config params, with `__param_*` labels winning for
    // their first value, as in Prometheus.
    let mut params: BTreeMap<String, Vec<String>> = sc.params.clone();
    for l in b.labels() {
        if let Some(name) = l.name.strip_prefix("__param_") {
            let e = params.entry(name.to_string()).or_default();
            if e.is_empty() {
                e.push(l.value.to_string());
            } else {
                e[0] = l.value.to_string();
            }
        }
    }
    let mut url = format!("{scheme}://{addr}{path}");
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (k, vs) in &params {
        for v in vs {
            url.push(sep);
            url.push_str(&crate::net::urlencode(k));
            url.push('=');
            url.push_str(&crate::net::urlencode(v));
            sep = '&';
        }
    }
    if b.get("instance").is_none() {
        b.set(Arc::from("instance"), Arc::from(addr.as_str()));
    }
    b.retain(|l| !l.name.starts_with("__"));
    Built::Active(Target {
        labels: b.build(),
        discovered,
        url,
        interval,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn special_labels_relabeling_and_url() {
        let c = Config::load_str(
            "scrape_configs:\n  - job_name: node\n    params: {module: [a, b]}\n    static_configs:\n      - targets: ['h1:9100', 'h2:9100']\n        labels: {env: prod}\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: 'h2:.*'\n        action: drop\n      - target_label: __param_module\n        replacement: x\n      - source_labels: [__address__]\n        target_label: __metrics_path__\n        replacement: /probe\n",
            "c",
        )
        .unwrap();
        let sc = &c.scrape_configs[0];
        let rl = Relabel::compile_all(&sc.relabel_configs).unwrap();
        let built = build_targets(sc, &rl, &super::super::discovery::static_groups(sc));
        assert_eq!(built.len(), 2);
        let Built::Active(t) = &built[0] else {
            panic!("{:?}", built[0])
        };
        assert_eq!(
            t.labels.to_string(),
            "{env=\"prod\", instance=\"h1:9100\", job=\"node\"}"
        );
        assert_eq!(t.url, "http://h1:9100/probe?module=x&module=b");
        assert_eq!(t.interval, Duration::from_secs(60));
        assert!(matches!(built[1], Built::Dropped(_)));
    }
}
