//! Target discovery: static groups, file_sd (JSON or YAML files picked
//! up by glob, re-read when they change) and http_sd (a JSON list of
//! groups fetched from a URL every refresh interval).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::watch;

use crate::config::{FileSdConfig, HttpSdConfig, ScrapeConfig};

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

/// A map key as a label name suffix (Prometheus's `SanitizeLabelName`): every character but letters, digits
/// and `_` becomes `_`.
pub(crate) fn sanitize_label_name(k: &str) -> String {
    k.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `host:port`, with brackets around an IPv6 host (Go's `JoinHostPort`).
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
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

/// A group in a YAML file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A group in JSON: `null` lists and maps taken as empty, as Go's JSON
/// decoder reads them; unknown keys refused, as Prometheus's group
/// decoder refuses them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// The format of a list of target groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupFormat {
    /// JSON (file_sd `.json` files, http_sd answers).
    Json,
    /// YAML (file_sd `.yml` and `.yaml` files).
    Yaml,
}

/// Decodes a list of target groups from `text`, as Prometheus decodes
/// them; each group gets `source`
/// `{name}:{index}` and the label `meta` = `name` (`__meta_filepath`,
/// `__meta_url`). Errors start with `name` and the line and column.
pub fn parse_groups(
    text: &str,
    format: GroupFormat,
    name: &str,
    meta: &str,
) -> Result<Vec<TargetGroup>, String> {
    let groups: Vec<(Vec<String>, BTreeMap<String, String>)> = match format {
        GroupFormat::Json => serde_json::from_str::<Vec<JsonGroup>>(text)
            .map_err(|e| format!("{name}:{}:{}: {e}", e.line(), e.column()))?
            .into_iter()
            .map(|g| (g.targets.unwrap_or_default(), g.labels.unwrap_or_default()))
            .collect(),
        GroupFormat::Yaml => crate::config::yaml::from_str::<Vec<YamlGroup>>(text)
            .map_err(|e| match e.location() {
                Some(l) => format!(
                    "{name}:{}:{}: {}",
                    l.line(),
                    l.column(),
                    crate::config::yaml::message(&e)
                ),
                None => format!("{name}: {}", crate::config::yaml::message(&e)),
            })?
            .into_iter()
            .map(|g| (g.targets, g.labels))
            .collect(),
    };
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, (targets, mut labels))| {
            labels.insert(meta.into(), name.to_string());
            TargetGroup {
                source: format!("{name}:{i}"),
                targets: targets
                    .into_iter()
                    .map(|t| BTreeMap::from([("__address__".to_string(), t)]))
                    .collect(),
                labels,
            }
        })
        .collect())
}

/// Reads one file_sd file into groups (`__meta_filepath` set on each).
pub fn read_file_groups(path: &std::path::Path) -> Result<Vec<TargetGroup>, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let format = if name.ends_with(".json") {
        GroupFormat::Json
    } else {
        GroupFormat::Yaml
    };
    parse_groups(&text, format, &name, "__meta_filepath")
}

/// Fetches the groups of one http_sd config once: a GET with Prometheus's
/// headers, a 200 answer of JSON (`application/json`, UTF-8) read within
/// the scrape body ceiling, `__meta_url` set on each group.
pub async fn fetch_http_groups(
    cfg: &HttpSdConfig,
    client: &reqwest::Client,
) -> Result<Vec<TargetGroup>, String> {
    let url = &cfg.url;
    let req = client
        .get(url)
        .timeout(cfg.refresh().0)
        .header("Accept", "application/json")
        .header("User-Agent", concat!("argus/", env!("CARGO_PKG_VERSION")))
        .header(
            "X-Prometheus-Refresh-Interval-Seconds",
            cfg.refresh().0.as_secs_f64().to_string(),
        );
    let req = crate::credentials_of!(cfg)
        .apply(req)
        .map_err(|e| format!("{url}: {e}"))?;
    let mut resp = req
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::net::error_chain(&e.without_url())))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!(
            "{url}: server returned HTTP status {}",
            resp.status()
        ));
    }
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_string();
    if !json_content_type(&ct) {
        return Err(format!("{url}: unsupported content type {ct:?}"));
    }
    let body = read_answer(&mut resp, url).await?;
    let text = std::str::from_utf8(&body).map_err(|e| format!("{url}: not UTF-8: {e}"))?;
    parse_groups(text, GroupFormat::Json, url, "__meta_url")
}

/// The body of a discovery answer (http_sd, Consul), read within the
/// scrape body ceiling; errors start with `url`.
pub(crate) async fn read_answer(
    resp: &mut reqwest::Response,
    url: &str,
) -> Result<Vec<u8>, String> {
    let limit = crate::config::DEFAULT_BODY_SIZE_LIMIT;
    let mut body = Vec::new();
    let whole = crate::net::read_body(resp, &mut body, limit)
        .await
        .map_err(|e| format!("{url}: {}", crate::net::error_chain(&e.without_url())))?;
    if !whole {
        return Err(format!("{url}: the answer is longer than {limit} bytes"));
    }
    Ok(body)
}

/// `application/json`, optionally with a UTF-8 charset, as Prometheus
/// takes it (any case).
fn json_content_type(ct: &str) -> bool {
    let lower = ct.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("application/json") else {
        return false;
    };
    let rest = rest.trim_start();
    if rest.is_empty() {
        return true;
    }
    let Some(param) = rest.strip_prefix(';') else {
        return false;
    };
    matches!(param.trim_start(), "charset=utf-8" | "charset=\"utf-8\"")
}

/// Asks one http_sd endpoint every `refresh_interval`. Sends the groups
/// when they change; a failed refresh keeps the last good groups (the
/// first one reports no groups, so the job's other targets start) and is
/// reported through `on_error`.
pub async fn run_http_sd(
    cfg: HttpSdConfig,
    client: reqwest::Client,
    tx: watch::Sender<Vec<TargetGroup>>,
    on_error: impl Fn(String) + Send + 'static,
) {
    let mut first = true;
    loop {
        match fetch_http_groups(&cfg, &client).await {
            Ok(groups) => {
                let changed = first || *tx.borrow() != groups;
                if changed && tx.send(groups).is_err() {
                    return;
                }
            }
            Err(e) => {
                on_error(e);
                if first && tx.send(Vec::new()).is_err() {
                    return;
                }
            }
        }
        first = false;
        tokio::time::sleep(cfg.refresh().0).await;
        if tx.is_closed() {
            return;
        }
    }
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
        let full = first || last_full.elapsed() >= cfg.refresh().0;
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
        tokio::time::sleep(Duration::from_secs(1).min(cfg.refresh().0)).await;
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

    /// Groups are read as Prometheus reads them: in JSON null lists and
    /// maps are empty and a null group is refused; unknown keys are
    /// refused in both formats.
    #[test]
    fn groups_read_as_prometheus_reads_them() {
        let g = parse_groups(
            r#"[{"targets": ["a:1"], "labels": null}, {"targets": null}]"#,
            GroupFormat::Json,
            "http://sd/x",
            "__meta_url",
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].source, "http://sd/x:0");
        assert_eq!(g[0].labels["__meta_url"], "http://sd/x");
        assert!(g[1].targets.is_empty());
        let e = parse_groups("[null]", GroupFormat::Json, "u", "m").unwrap_err();
        assert!(e.starts_with("u:1:"), "{e}");
        let e = parse_groups(
            r#"[{"targets": [], "extra": 1}]"#,
            GroupFormat::Json,
            "u",
            "m",
        )
        .unwrap_err();
        assert!(e.starts_with("u:1:") && e.contains("extra"), "{e}");
        let e = parse_groups(
            "- targets: []\n  extra: 1\n",
            GroupFormat::Yaml,
            "f.yml",
            "m",
        )
        .unwrap_err();
        assert!(e.starts_with("f.yml:2:"), "{e}");
        for (ct, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/json;charset=\"utf-8\"", true),
            ("application/json; charset=latin1", false),
            ("application/jsonx", false),
            ("text/plain", false),
            ("", false),
        ] {
            assert_eq!(json_content_type(ct), ok, "{ct}");
        }
    }
}
