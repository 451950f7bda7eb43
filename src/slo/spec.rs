//! SLO specs as teams already write them for Sloth: its `prometheus/v1`
//! format, its Kubernetes `PrometheusServiceLevel` CRD and OpenSLO
//! `v1alpha` `SLO` documents, read into one model. A file may hold
//! several YAML documents. Errors name the file, line, column and field.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{Pos, Positions, yaml_error_parts};

/// Which format a spec came in; generated output follows it (a
/// `PrometheusRule` for the CRD).
#[derive(Clone, Debug, PartialEq)]
pub enum SpecKind {
    /// Sloth's `prometheus/v1`.
    Prometheus,
    /// Sloth's Kubernetes CRD, with the object's name and namespace.
    Kubernetes {
        /// `metadata.name`.
        name: String,
        /// `metadata.namespace`.
        namespace: String,
    },
    /// OpenSLO `v1alpha`.
    OpenSlo,
}

impl SpecKind {
    /// The `sloth_spec` label value.
    pub fn spec_label(&self) -> &'static str {
        match self {
            SpecKind::Prometheus => "prometheus/v1",
            SpecKind::Kubernetes { .. } => "sloth.slok.dev/v1",
            SpecKind::OpenSlo => "openslo/v1alpha",
        }
    }

    /// The `sloth_mode` label value.
    pub fn mode_label(&self) -> &'static str {
        match self {
            SpecKind::Prometheus => "cli-gen-prom",
            SpecKind::Kubernetes { .. } => "cli-gen-k8s",
            SpecKind::OpenSlo => "cli-gen-openslo",
        }
    }
}

/// How an SLI's error ratio is computed; queries contain `{{.window}}`.
#[derive(Clone, Debug, PartialEq)]
pub enum Sli {
    /// Bad events over all events.
    Events {
        /// Rate of bad events.
        error_query: String,
        /// Rate of all events.
        total_query: String,
    },
    /// A query that is the error ratio itself.
    Raw {
        /// The error ratio.
        error_ratio_query: String,
    },
}

/// One alert of the pair an SLO produces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertMeta {
    /// No such alert.
    pub disable: bool,
    /// Labels added to it.
    pub labels: BTreeMap<String, String>,
    /// Annotations added to it.
    pub annotations: BTreeMap<String, String>,
}

/// The alerting section of an SLO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alerting {
    /// Alert name (both alerts share it).
    pub name: String,
    /// Labels of both alerts.
    pub labels: BTreeMap<String, String>,
    /// Annotations of both alerts.
    pub annotations: BTreeMap<String, String>,
    /// The fast-burn alert.
    pub page: AlertMeta,
    /// The slow-burn alert.
    pub ticket: AlertMeta,
}

/// Where an SLO's latencies come from, for its quantile series.
#[derive(Clone, Debug, PartialEq)]
pub enum LatencySource {
    /// A classic histogram (`sli.latency`).
    Histogram {
        /// Base name.
        histogram: String,
        /// `{matchers}` selecting its series.
        selector: String,
    },
    /// A probe (`sli.probe`).
    Probe {
        /// The probe's name.
        name: String,
        /// Checks slower than this (seconds) are errors too; without
        /// it the SLI is the probe's availability.
        threshold: Option<f64>,
    },
}

/// One SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    /// Where its latencies come from, if it has any.
    pub latency: Option<LatencySource>,
    /// Name (unique within the service).
    pub name: String,
    /// `service-name`.
    pub id: String,
    /// Human description.
    pub description: String,
    /// Objective in percent (99.9).
    pub objective: f64,
    /// Labels of this SLO's series.
    pub labels: BTreeMap<String, String>,
    /// The SLI.
    pub sli: Sli,
    /// Alerts.
    pub alerting: Alerting,
    /// The SLO period in days.
    pub period_days: u32,
}

/// The SLOs of one document.
#[derive(Clone, Debug, PartialEq)]
pub struct SloSpec {
    /// The format it came in.
    pub kind: SpecKind,
    /// Service name.
    pub service: String,
    /// The SLOs.
    pub slos: Vec<Slo>,
}

/// A spec that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{}{path}: {msg}", .pos.map(|p| format!("{}:{}: ", p.line, p.col)).unwrap_or_default())]
pub struct SpecError {
    /// The file.
    pub file: String,
    /// Line and column, when known.
    pub pos: Option<Pos>,
    /// Field path within the document.
    pub path: String,
    /// What is wrong.
    pub msg: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlertMeta {
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl From<RawAlertMeta> for AlertMeta {
    fn from(r: RawAlertMeta) -> Self {
        AlertMeta {
            disable: r.disable,
            labels: r.labels,
            annotations: r.annotations,
        }
    }
}

// Sloth's prometheus/v1 document, which is also the `spec` of its
// Kubernetes CRD (where `version` is absent and names are camelCase).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromDoc {
    /// `prometheus/v1` (checked before parsing).
    #[serde(default, rename = "version")]
    _version: Option<String>,
    service: String,
    /// argus extension: the SLO period (`30d` by default; `7d`, `28d`, …).
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    slos: Vec<PromSlo>,
    #[serde(default, alias = "sloPlugins")]
    slo_plugins: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromSlo {
    name: String,
    #[serde(default)]
    description: String,
    /// Percent; may be left out for a latency SLI with `percentile`.
    #[serde(default)]
    objective: Option<f64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    sli: PromSli,
    #[serde(default)]
    alerting: PromAlerting,
    #[serde(default)]
    plugins: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromSli {
    #[serde(default)]
    events: Option<PromEvents>,
    /// argus extension: a latency SLI from a classic histogram.
    #[serde(default)]
    latency: Option<LatencySli>,
    /// argus extension: the share of failed checks of a `probe_configs`
    /// probe.
    #[serde(default)]
    probe: Option<ProbeSli>,
    #[serde(default)]
    raw: Option<PromRaw>,
    #[serde(default)]
    plugin: Option<serde_json::Value>,
}

/// `sli.latency`: requests slower than `threshold` are errors, counted
/// from a classic histogram's buckets (the threshold must be one of its
/// bucket bounds).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencySli {
    /// Base name of the histogram (`http_request_duration_seconds`).
    histogram: String,
    /// The latency objective (`200ms`).
    threshold: String,
    /// Matchers selecting the series, `{job="api"}`.
    #[serde(default)]
    selector: String,
    /// "p<percentile> < threshold": at least this percent of requests
    /// within the threshold; the SLO's objective when it sets none.
    #[serde(default)]
    percentile: Option<f64>,
}

/// `sli.probe`: a probe's failed checks are the errors, and with a
/// `threshold` also the checks slower than it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeSli {
    /// The probe's `name` in `probe_configs`.
    name: String,
    /// The latency objective (`200ms`): one of the probe's `buckets`.
    #[serde(default)]
    threshold: Option<String>,
    /// As in `sli.latency`.
    #[serde(default)]
    percentile: Option<f64>,
}

// The CRD spells the same fields in camelCase; one set of structs reads
// both spellings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromEvents {
    #[serde(alias = "errorQuery")]
    error_query: String,
    #[serde(alias = "totalQuery")]
    total_query: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromRaw {
    #[serde(alias = "errorRatioQuery")]
    error_ratio_query: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromAlerting {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, alias = "pageAlert")]
    page_alert: RawAlertMeta,
    #[serde(default, alias = "ticketAlert")]
    ticket_alert: RawAlertMeta,
}

// Sloth's Kubernetes CRD.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sDoc {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    metadata: K8sMeta,
    spec: PromDoc,
}

#[derive(Deserialize)]
struct K8sMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

// OpenSLO v1alpha.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OsDoc {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    metadata: OsMeta,
    spec: OsSpec,
}

#[derive(Deserialize)]
struct OsMeta {
    name: String,
}

// Fields are read so that valid OpenSLO documents load; not all are used.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OsSpec {
    service: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    budgeting_method: String,
    objectives: Vec<OsObjective>,
    #[serde(default)]
    time_windows: Vec<OsWindow>,
    #[serde(default)]
    indicator: Option<serde_json::Value>,
}

// Fields are read so that valid OpenSLO documents load; not all are used.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OsObjective {
    #[serde(default)]
    ratio_metrics: Option<OsRatio>,
    target: f64,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    op: Option<String>,
}

// Fields are read so that valid OpenSLO documents load; not all are used.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OsRatio {
    #[serde(default)]
    good: Option<OsQuery>,
    #[serde(default)]
    bad: Option<OsQuery>,
    total: OsQuery,
    #[serde(default)]
    incremental: Option<bool>,
}

// Fields are read so that valid OpenSLO documents load; not all are used.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OsQuery {
    #[serde(default)]
    source: String,
    #[serde(default)]
    query_type: String,
    query: String,
}

// Fields are read so that valid OpenSLO documents load; not all are used.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OsWindow {
    count: u32,
    unit: String,
    #[serde(default)]
    is_rolling: Option<bool>,
    #[serde(default)]
    calendar: Option<serde_json::Value>,
}

/// The YAML documents of a file with the line each starts at (0-based
/// offset added to positions).
fn documents(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let (mut start, mut cur) = (0usize, String::new());
    for (i, line) in src.lines().enumerate() {
        if line.trim_end() == "---" {
            out.push((start, std::mem::take(&mut cur)));
            start = i + 1;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    out.push((start, cur));
    out.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// Why a plugin cannot be honoured: argus runs no Sloth plugins.
const NO_PLUGINS: &str = "Sloth plugins are not supported by argus; use `sli.events` or `sli.raw`";

/// Reads every SLO document of a spec file (an SLO without a period gets
/// 30 days).
pub fn parse_spec(src: &str, file: &str) -> Result<Vec<SloSpec>, Vec<SpecError>> {
    parse_spec_with(src, file, 30)
}

/// [`parse_spec`] with the period (days) of SLOs that give none (Sloth's
/// `--default-slo-period`).
pub fn parse_spec_with(
    src: &str,
    file: &str,
    default_period_days: u32,
) -> Result<Vec<SloSpec>, Vec<SpecError>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (offset, doc) in documents(src) {
        let positions = Positions::index(&doc);
        let shift = |p: Option<Pos>| {
            p.map(|p| Pos {
                line: p.line + offset,
                col: p.col,
            })
        };
        let mut err = |path: &str, msg: String| {
            errs.push(SpecError {
                file: file.to_string(),
                pos: shift(positions.of_path(path)),
                path: path.to_string(),
                msg,
            })
        };
        let head: serde_json::Value = match crate::config::yaml::from_str(&doc) {
            Ok(v) => v,
            Err(e) => {
                let (pos, path, msg) = yaml_error_parts(&e, &positions);
                errs.push(SpecError {
                    file: file.to_string(),
                    pos: shift(pos),
                    path,
                    msg,
                });
                continue;
            }
        };
        let typed = |e: serde_saphyr::Error| {
            let (pos, path, msg) = yaml_error_parts(&e, &positions);
            SpecError {
                file: file.to_string(),
                pos: shift(pos),
                path,
                msg,
            }
        };
        let version = head["version"].as_str().unwrap_or("");
        let api = head["apiVersion"].as_str().unwrap_or("");
        let kind = head["kind"].as_str().unwrap_or("");
        let spec = if version == "prometheus/v1" {
            match crate::config::yaml::from_str::<PromDoc>(&doc) {
                Ok(d) => from_sloth(
                    d,
                    SpecKind::Prometheus,
                    "",
                    "slo_plugins",
                    default_period_days,
                    &mut err,
                ),
                Err(e) => {
                    errs.push(typed(e));
                    continue;
                }
            }
        } else if api == "sloth.slok.dev/v1" && kind == "PrometheusServiceLevel" {
            match crate::config::yaml::from_str::<K8sDoc>(&doc) {
                Ok(d) => from_sloth(
                    d.spec,
                    SpecKind::Kubernetes {
                        name: d.metadata.name,
                        namespace: d.metadata.namespace,
                    },
                    "spec.",
                    "sloPlugins",
                    default_period_days,
                    &mut err,
                ),
                Err(e) => {
                    errs.push(typed(e));
                    continue;
                }
            }
        } else if api == "openslo/v1alpha" && kind == "SLO" {
            match crate::config::yaml::from_str::<OsDoc>(&doc) {
                Ok(d) => from_openslo(d, default_period_days, &mut err),
                Err(e) => {
                    errs.push(typed(e));
                    continue;
                }
            }
        } else {
            err(
                if version.is_empty() {
                    "apiVersion"
                } else {
                    "version"
                },
                format!(
                    "unknown SLO spec: want `version: prometheus/v1`, `apiVersion: sloth.slok.dev/v1` with `kind: PrometheusServiceLevel`, or `apiVersion: openslo/v1alpha` with `kind: SLO` (got version {version:?}, apiVersion {api:?}, kind {kind:?})"
                ),
            );
            continue;
        };
        if let Some(s) = spec {
            validate(&s, &mut err);
            out.push(s);
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

fn sli_of(
    events: Option<(String, String)>,
    raw: Option<String>,
    plugin: bool,
    p: &str,
    err: &mut dyn FnMut(&str, String),
) -> Option<Sli> {
    match (events, raw, plugin) {
        (Some((e, t)), None, false) => Some(Sli::Events {
            error_query: e,
            total_query: t,
        }),
        (None, Some(r), false) => Some(Sli::Raw {
            error_ratio_query: r,
        }),
        (None, None, true) => {
            err(&format!("{p}.sli.plugin"), NO_PLUGINS.into());
            None
        }
        (None, None, false) => {
            err(&format!("{p}.sli"), "an SLI needs `events` or `raw`".into());
            None
        }
        _ => {
            err(
                &format!("{p}.sli"),
                "an SLI has exactly one of `events`, `raw` and `plugin`".into(),
            );
            None
        }
    }
}

/// The events queries of a latency SLI.
fn latency_events(l: &LatencySli) -> Result<(String, String), String> {
    // A threshold may be a duration or seconds (`0.2`), unlike the
    // durations of Prometheus's files.
    let secs = crate::model::parse_duration(&l.threshold)
        .map_err(|e| format!("invalid threshold {:?}: {e}", l.threshold))?
        .as_secs_f64();
    if secs <= 0.0 {
        return Err("the threshold must be above zero".into());
    }
    let inner = l
        .selector
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    let sep = if inner.is_empty() { "" } else { "," };
    // Prometheus 3 stores `le="1"` as `le="1.0"`, 2.x as scraped: match
    // both for whole seconds.
    let go = crate::template::go_float(secs);
    let le = if secs.fract() == 0.0 && !go.contains(['e', '.']) {
        format!("=~\"{go}|{go}.0\"")
    } else {
        format!("=\"{go}\"")
    };
    let count = format!(
        "sum(rate({}_count{{{inner}}}[{{{{.window}}}}]))",
        l.histogram
    );
    let fast = format!(
        "sum(rate({}_bucket{{{inner}{sep}le{le}}}[{{{{.window}}}}]))",
        l.histogram
    );
    Ok((format!("({count} - {fast})"), count))
}

/// Days of a period such as `30d`, `28d`, `4w`.
pub fn period_days(p: &str) -> Result<u32, String> {
    let d = crate::config::parse_duration(p).map_err(|e| format!("invalid period {p:?}: {e}"))?;
    let days = d.as_secs() / 86_400;
    if days == 0 || d.as_secs() % 86_400 != 0 {
        return Err(format!("the period {p:?} must be a whole number of days"));
    }
    Ok(days as u32)
}

/// A Sloth document in either form; field paths in errors start with
/// `prefix` and name plugins as `plugins_key`.
fn from_sloth(
    d: PromDoc,
    kind: SpecKind,
    prefix: &str,
    plugins_key: &str,
    default_period_days: u32,
    err: &mut dyn FnMut(&str, String),
) -> Option<SloSpec> {
    if d.slo_plugins.is_some() {
        err(&format!("{prefix}{plugins_key}"), NO_PLUGINS.into());
    }
    Some(SloSpec {
        kind,
        slos: slos_of(
            &d.service,
            d.period.as_deref(),
            &d.labels,
            d.slos,
            prefix,
            default_period_days,
            err,
        ),
        service: d.service,
    })
}

/// The SLOs of a Sloth document (either form); field paths in errors
/// start with `prefix`.
fn slos_of(
    service: &str,
    period: Option<&str>,
    spec_labels: &BTreeMap<String, String>,
    raw_slos: Vec<PromSlo>,
    prefix: &str,
    default_period_days: u32,
    err: &mut dyn FnMut(&str, String),
) -> Vec<Slo> {
    let period_days = match period.map(period_days) {
        None => default_period_days,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            err(&format!("{prefix}period"), e);
            default_period_days
        }
    };
    let mut slos = Vec::new();
    for (i, s) in raw_slos.into_iter().enumerate() {
        let p = format!("{prefix}slos[{i}]");
        if s.plugins.is_some() {
            err(&format!("{p}.plugins"), NO_PLUGINS.into());
        }
        let latency_src = match (&s.sli.latency, &s.sli.probe) {
            (Some(l), _) => {
                let inner = l
                    .selector
                    .trim()
                    .trim_start_matches('{')
                    .trim_end_matches('}')
                    .trim();
                Some(LatencySource::Histogram {
                    histogram: l.histogram.clone(),
                    selector: format!("{{{inner}}}"),
                })
            }
            (None, Some(pr)) => Some(LatencySource::Probe {
                name: pr.name.clone(),
                threshold: pr
                    .threshold
                    .as_deref()
                    .and_then(|t| crate::model::parse_duration(t).ok())
                    .map(|d| d.as_secs_f64()),
            }),
            _ => None,
        };
        // A probe with a threshold is a latency SLI over the probe's
        // histogram of check durations (failed checks only in +Inf).
        let probe_latency = s.sli.probe.as_ref().and_then(|pr| {
            Some(LatencySli {
                histogram: "probe_check_duration_seconds".into(),
                threshold: pr.threshold.clone()?,
                selector: format!(
                    "{{job=\"probe\", probe=\"{}\"}}",
                    pr.name.replace('\\', "\\\\").replace('"', "\\\"")
                ),
                percentile: pr.percentile,
            })
        });
        let (latency_sli, latency_field) = match (s.sli.latency, probe_latency) {
            (Some(l), _) => (Some(l), "latency"),
            (None, l) => (l, "probe"),
        };
        let percentile = match (&latency_sli, s.sli.probe.as_ref()) {
            (Some(l), _) => l.percentile,
            (None, Some(pr)) if pr.percentile.is_some() => {
                err(
                    &format!("{p}.sli.probe.percentile"),
                    "a percentile needs a threshold".into(),
                );
                continue;
            }
            _ => None,
        };
        let objective = match (s.objective, percentile) {
            (Some(o), Some(pc)) if o != pc => {
                err(
                    &format!("{p}.sli.{latency_field}.percentile"),
                    format!("percentile {pc} contradicts objective {o}: give one of them"),
                );
                continue;
            }
            (Some(o), _) | (None, Some(o)) => o,
            (None, None) => {
                err(&format!("{p}.objective"), "objective is required".into());
                continue;
            }
        };
        let latency = match latency_sli.map(|l| latency_events(&l)) {
            None => None,
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                err(&format!("{p}.sli.{latency_field}.threshold"), e);
                continue;
            }
        };
        let events = match (s.sli.events, latency) {
            (Some(_), Some(_)) => {
                err(
                    &format!("{p}.sli"),
                    "an SLI has exactly one of `events`, `raw`, `latency` and `plugin`".into(),
                );
                continue;
            }
            (Some(e), None) => Some((e.error_query, e.total_query)),
            (None, l) => l,
        };
        // Each check is one 0/1 sample of probe_success, so its average
        // over a window is the share of checks that passed.
        let probe = s.sli.probe.filter(|pr| pr.threshold.is_none()).map(|pr| {
            format!(
                "1 - avg_over_time(probe_success{{job=\"probe\", probe=\"{}\"}}[{{{{.window}}}}])",
                pr.name.replace('\\', "\\\\").replace('"', "\\\"")
            )
        });
        let raw = match (s.sli.raw.map(|r| r.error_ratio_query), probe) {
            (Some(_), Some(_)) => {
                err(
                    &format!("{p}.sli"),
                    "an SLI has exactly one of `events`, `raw`, `latency`, `probe` and `plugin`"
                        .into(),
                );
                continue;
            }
            (r, pr) => r.or(pr),
        };
        if raw.is_some() && events.is_some() {
            err(
                &format!("{p}.sli"),
                "an SLI has exactly one of `events`, `raw`, `latency`, `probe` and `plugin`".into(),
            );
            continue;
        }
        let Some(sli) = sli_of(events, raw, s.sli.plugin.is_some(), &p, err) else {
            continue;
        };
        let mut labels = spec_labels.clone();
        labels.extend(s.labels);
        slos.push(Slo {
            latency: latency_src,
            period_days,
            id: format!("{service}-{}", s.name),
            name: s.name,
            description: s.description,
            objective,
            labels,
            sli,
            alerting: Alerting {
                name: s.alerting.name,
                labels: s.alerting.labels,
                annotations: s.alerting.annotations,
                page: s.alerting.page_alert.into(),
                ticket: s.alerting.ticket_alert.into(),
            },
        });
    }
    slos
}

fn from_openslo(
    d: OsDoc,
    default_period_days: u32,
    err: &mut dyn FnMut(&str, String),
) -> Option<SloSpec> {
    let period_days = match d.spec.time_windows.first() {
        None => default_period_days,
        Some(w) => match w.unit.to_ascii_lowercase().as_str() {
            "day" | "d" => w.count,
            "week" | "w" => w.count * 7,
            other => {
                err(
                    "spec.timeWindows[0].unit",
                    format!("unsupported time window unit {other:?}: want Day or Week"),
                );
                30
            }
        },
    };
    let mut slos = Vec::new();
    for (i, o) in d.spec.objectives.into_iter().enumerate() {
        let p = format!("spec.objectives[{i}]");
        let Some(r) = o.ratio_metrics else {
            err(
                &format!("{p}.ratioMetrics"),
                "only ratioMetrics objectives are supported".into(),
            );
            continue;
        };
        let sli = match (r.good, r.bad) {
            (Some(g), None) => Sli::Raw {
                error_ratio_query: format!(
                    "1 - (\n  (\n    {}\n  )\n  /\n  (\n    {}\n  )\n)\n",
                    g.query.trim(),
                    r.total.query.trim()
                ),
            },
            (None, Some(b)) => Sli::Events {
                error_query: b.query,
                total_query: r.total.query,
            },
            _ => {
                err(
                    &format!("{p}.ratioMetrics"),
                    "exactly one of `good` and `bad` is needed".into(),
                );
                continue;
            }
        };
        let name = format!("{}-{i}", d.metadata.name);
        slos.push(Slo {
            latency: None,
            id: format!("{}-{name}", d.spec.service),
            name,
            description: d.spec.description.clone(),
            objective: o.target * 100.0,
            labels: BTreeMap::new(),
            sli,
            // Sloth generates no alerts from OpenSLO specs.
            alerting: Alerting {
                page: AlertMeta {
                    disable: true,
                    ..AlertMeta::default()
                },
                ticket: AlertMeta {
                    disable: true,
                    ..AlertMeta::default()
                },
                ..Alerting::default()
            },
            period_days,
        });
    }
    Some(SloSpec {
        kind: SpecKind::OpenSlo,
        service: d.spec.service,
        slos,
    })
}

fn validate(s: &SloSpec, err: &mut dyn FnMut(&str, String)) {
    let prefix = match s.kind {
        SpecKind::Prometheus => "slos",
        SpecKind::Kubernetes { .. } => "spec.slos",
        SpecKind::OpenSlo => "spec.objectives",
    };
    if s.service.is_empty() {
        err("service", "service is required".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, slo) in s.slos.iter().enumerate() {
        let p = format!("{prefix}[{i}]");
        if slo.name.is_empty() {
            err(&format!("{p}.name"), "name is required".into());
        } else if !seen.insert(&slo.name) {
            err(
                &format!("{p}.name"),
                format!("duplicate SLO name {:?}", slo.name),
            );
        }
        if !(slo.objective > 0.0 && slo.objective <= 100.0) {
            err(
                &format!("{p}.objective"),
                format!("objective must be in (0, 100], got {}", slo.objective),
            );
        }
        let queries: Vec<(&str, &String)> = match &slo.sli {
            Sli::Events {
                error_query,
                total_query,
            } => vec![
                ("sli.events.error_query", error_query),
                ("sli.events.total_query", total_query),
            ],
            Sli::Raw { error_ratio_query } => {
                vec![("sli.raw.error_ratio_query", error_ratio_query)]
            }
        };
        for (field, q) in queries {
            match super::render_window(q, "5m") {
                Ok(text) => {
                    if let Err(e) = crate::promql::limits::parse_expr(&text) {
                        err(&format!("{p}.{field}"), format!("invalid query: {e}"));
                    }
                }
                Err(e) => err(&format!("{p}.{field}"), e),
            }
        }
        let alerts_on = !(slo.alerting.page.disable && slo.alerting.ticket.disable);
        if alerts_on && slo.alerting.name.is_empty() && s.kind != SpecKind::OpenSlo {
            err(
                &format!("{p}.alerting.name"),
                "alerting.name is required unless both alerts are disabled".into(),
            );
        }
    }
}
