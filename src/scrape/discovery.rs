//! Target discovery: static groups and file_sd (JSON or YAML files picked
//! up by glob, re-read when they change).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::watch;

use crate::config::{FileSdConfig, ScrapeConfig};

/// A group of targets sharing labels, as Prometheus discovery produces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetGroup {
    /// Where the group came from (`static/0`, a file path…).
    pub source: String,
    /// Per-target labels; each has at least `__address__`.
    pub targets: Vec<BTreeMap<String, String>>,
    /// Labels for every target in the group.
    pub labels: BTreeMap<String, String>,
}

/// The static groups of a scrape config.
pub fn static_groups(sc: &ScrapeConfig) -> Vec<TargetGroup> {
    sc.static_configs
        .iter()
        .enumerate()
        .map(|(i, s)| TargetGroup {
            source: format!("static/{i}"),
            targets: s
                .targets
                .iter()
                .map(|t| BTreeMap::from([("__address__".to_string(), t.clone())]))
                .collect(),
            labels: s.labels.clone(),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads one file_sd file into groups (`__meta_filepath` set on each).
pub fn read_file_groups(path: &std::path::Path) -> Result<Vec<TargetGroup>, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let groups: Vec<FileGroup> = if name.ends_with(".json") {
        serde_json::from_str(&text)
            .map_err(|e| format!("{name}:{}:{}: {e}", e.line(), e.column()))?
    } else {
        crate::config::yaml::from_str(&text).map_err(|e| match e.location() {
            Some(l) => format!(
                "{name}:{}:{}: {}",
                l.line(),
                l.column(),
                crate::config::yaml::message(&e)
            ),
            None => format!("{name}: {}", crate::config::yaml::message(&e)),
        })?
    };
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut labels = g.labels;
            labels.insert("__meta_filepath".into(), name.clone());
            TargetGroup {
                source: format!("{name}:{i}"),
                targets: g
                    .targets
                    .into_iter()
                    .map(|t| BTreeMap::from([("__address__".to_string(), t)]))
                    .collect(),
                labels,
            }
        })
        .collect())
}

fn expand(patterns: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = patterns
        .iter()
        .flat_map(|p| glob::glob(p).into_iter().flatten().filter_map(Result::ok))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Watches the files of one file_sd config: checks modification times every
/// second (cheap) and re-reads everything every `refresh_interval`. Sends
/// the full group list on every change. A file that fails to parse keeps
/// its last good groups, and the error is reported through `on_error`.
pub async fn run_file_sd(
    cfg: FileSdConfig,
    tx: watch::Sender<Vec<TargetGroup>>,
    on_error: impl Fn(String) + Send + 'static,
) {
    let mut last: HashMap<PathBuf, (Option<SystemTime>, Vec<TargetGroup>)> = HashMap::new();
    let mut last_full = tokio::time::Instant::now();
    let mut first = true;
    loop {
        let full = first || last_full.elapsed() >= cfg.refresh_interval.0;
        if full {
            last_full = tokio::time::Instant::now();
        }
        let files = expand(&cfg.files);
        let mut changed =
            first || files.len() != last.len() || files.iter().any(|f| !last.contains_key(f));
        let mut next = HashMap::new();
        for f in files {
            let mtime = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            let prev = last.remove(&f);
            let fresh = match &prev {
                Some((t, _)) => full || *t != mtime,
                None => true,
            };
            if !fresh {
                if let Some(p) = prev {
                    next.insert(f, p);
                }
                continue;
            }
            match read_file_groups(&f) {
                Ok(g) => {
                    if prev.as_ref().map(|p| &p.1) != Some(&g) {
                        changed = true;
                    }
                    next.insert(f, (mtime, g));
                }
                Err(e) => {
                    on_error(e);
                    let keep = prev.map(|p| p.1).unwrap_or_default();
                    next.insert(f, (mtime, keep));
                }
            }
        }
        last = next;
        if changed {
            let mut all: Vec<(&PathBuf, &Vec<TargetGroup>)> =
                last.iter().map(|(k, v)| (k, &v.1)).collect();
            all.sort_by(|a, b| a.0.cmp(b.0));
            let groups = all
                .into_iter()
                .flat_map(|(_, g)| g.iter().cloned())
                .collect();
            if tx.send(groups).is_err() {
                return;
            }
        }
        first = false;
        tokio::time::sleep(Duration::from_secs(1).min(cfg.refresh_interval.0)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_formats() {
        let d = tempfile::tempdir().unwrap();
        let j = d.path().join("a.json");
        std::fs::write(
            &j,
            r#"[{"targets": ["h1:9100", "h2:9100"], "labels": {"env": "prod"}}]"#,
        )
        .unwrap();
        let g = read_file_groups(&j).unwrap();
        assert_eq!(g[0].targets.len(), 2);
        assert_eq!(g[0].labels["env"], "prod");
        assert_eq!(g[0].labels["__meta_filepath"], j.display().to_string());
        let y = d.path().join("b.yml");
        std::fs::write(&y, "- targets: ['h3:1']\n").unwrap();
        assert_eq!(
            read_file_groups(&y).unwrap()[0].targets[0]["__address__"],
            "h3:1"
        );
        std::fs::write(&j, "[{\"targets\": [1]}]").unwrap();
        let e = read_file_groups(&j).unwrap_err();
        assert!(e.contains("a.json:1:"), "{e}");
    }
}
