//! Prometheus rules for SLOs, series for series what Sloth generates:
//! error ratios per window (`slo:sli_error:ratio_rate<window>`), the
//! period's ratio as the average of the 5-minute ratios, objective,
//! error budget, burn rates, budget remaining, `sloth_slo_info`, and a
//! page and a ticket alert, each a pair of multiwindow burn-rate
//! conditions (Google's SRE workbook), with factors scaled to the period.

use std::collections::BTreeMap;

use serde::Serialize;

use super::render_window;
use super::spec::{LatencySource, Sli, Slo, SloSpec, SpecKind};

/// Windows longer than this (seconds) are the SLO engine's in native
/// mode: the store keeps a day of samples by default.
pub const NATIVE_FROM_S: u64 = 86_400;

/// Latency quantiles written per window (p50 … p99.9).
pub const LATENCY_QUANTILES: [&str; 5] = ["0.5", "0.9", "0.95", "0.99", "0.999"];

/// One burn-rate condition: the error budget share it would consume over
/// the period at this rate, and its two windows (seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlertWindow {
    /// Percent of the period's error budget.
    pub budget_percent: f64,
    /// Short window (s).
    pub short_s: u64,
    /// Long window (s).
    pub long_s: u64,
}

impl AlertWindow {
    /// The burn-rate factor: `budget% / 100 × period / long window`.
    pub fn factor(&self, period_days: u32) -> f64 {
        (self.budget_percent / 100.0) * ((period_days as u64 * 86_400) as f64 / self.long_s as f64)
    }
}

/// The four conditions: page (quick, slow) and ticket (quick, slow), the
/// workbook's for a 30-day period (2% in 1h, 5% in 6h, 10% in 1d, 10% in
/// 3d); other periods keep the shares and windows, so the factors scale
/// (28 days: 13.44, 5.6, 2.8, 0.93).
pub fn alert_windows() -> [AlertWindow; 4] {
    let w = |p, s, l| AlertWindow {
        budget_percent: p,
        short_s: s,
        long_s: l,
    };
    [
        w(2.0, 300, 3_600),
        w(5.0, 1_800, 21_600),
        w(10.0, 7_200, 86_400),
        w(10.0, 21_600, 259_200),
    ]
}

/// Options of a generation run.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// Labels added to every rule (`--label k=v`).
    pub extra_labels: BTreeMap<String, String>,
    /// Add argus's series to Sloth's (not in Sloth's output): the
    /// events-weighted error ratio and budget over the period (events
    /// SLIs) and latency quantiles per window (latency and probe SLIs).
    pub extensions: bool,
    /// The rules run in argus, whose SLO engine writes from its windows
    /// what would need more than a day of samples in the store (the 3d
    /// and period error ratios, the events-weighted period series) and
    /// the HDR latency quantiles of histogram SLIs: leave those rules out.
    pub native: bool,
    /// Alert windows by SLO period in days (Sloth's `AlertWindows`
    /// documents); a period not listed gets [`alert_windows`].
    pub windows: BTreeMap<u32, [AlertWindow; 4]>,
}

/// A Sloth `AlertWindows` document (`apiVersion: sloth.slok.dev/v1`):
/// the burn-rate windows for one SLO period.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WindowsDoc {
    api_version: String,
    kind: String,
    spec: WindowsSpec,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WindowsSpec {
    slo_period: String,
    page: WindowPair,
    ticket: WindowPair,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowPair {
    quick: WindowDoc,
    slow: WindowDoc,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WindowDoc {
    error_budget_percent: f64,
    short_window: crate::config::PromDuration,
    long_window: crate::config::PromDuration,
}

/// Reads a Sloth `AlertWindows` file: its SLO period in days and the
/// windows (page quick, page slow, ticket quick, ticket slow). Errors read
/// `FILE:LINE:COL: path: message`.
pub fn parse_alert_windows(src: &str, file: &str) -> Result<(u32, [AlertWindow; 4]), String> {
    let positions = crate::config::Positions::index(src);
    let at = |path: &str, msg: String| match positions.of_path(path) {
        Some(p) => format!("{file}:{}:{}: {path}: {msg}", p.line, p.col),
        None => format!("{file}: {path}: {msg}"),
    };
    let d: WindowsDoc = crate::config::yaml::from_str(src).map_err(|e| {
        let (pos, path, msg) = crate::config::yaml_error_parts(&e, &positions);
        match pos {
            Some(p) => format!("{file}:{}:{}: {path}: {msg}", p.line, p.col),
            None => format!("{file}: {msg}"),
        }
    })?;
    if d.api_version != "sloth.slok.dev/v1" || d.kind != "AlertWindows" {
        return Err(at(
            "kind",
            format!(
                "want apiVersion sloth.slok.dev/v1 and kind AlertWindows, got {:?} and {:?}",
                d.api_version, d.kind
            ),
        ));
    }
    let days = super::spec::period_days(&d.spec.slo_period).map_err(|e| at("spec.sloPeriod", e))?;
    let mut out = [alert_windows()[0]; 4];
    for (i, (path, w)) in [
        ("spec.page.quick", &d.spec.page.quick),
        ("spec.page.slow", &d.spec.page.slow),
        ("spec.ticket.quick", &d.spec.ticket.quick),
        ("spec.ticket.slow", &d.spec.ticket.slow),
    ]
    .into_iter()
    .enumerate()
    {
        let (short_s, long_s) = (w.short_window.0.as_secs(), w.long_window.0.as_secs());
        if !(w.error_budget_percent > 0.0 && w.error_budget_percent <= 100.0) {
            return Err(at(
                &format!("{path}.errorBudgetPercent"),
                "must be above 0 and at most 100".into(),
            ));
        }
        if short_s == 0 || short_s >= long_s {
            return Err(at(
                &format!("{path}.shortWindow"),
                "must be above zero and shorter than longWindow".into(),
            ));
        }
        out[i] = AlertWindow {
            budget_percent: w.error_budget_percent,
            short_s,
            long_s,
        };
    }
    Ok((days, out))
}

/// A rule group as written out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleGroup {
    /// Group name.
    pub name: String,
    /// Its rules.
    pub rules: Vec<RuleOut>,
}

/// A recording or alerting rule as written out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleOut {
    /// Recorded series name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Alert name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The expression.
    pub expr: String,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `5m`, `1h`, `1d`, `30d`: the largest unit that divides the duration.
pub(crate) fn window_name(s: u64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// Go's shortest float formatting (`0.999`, `0.0009999999999999432`, `6`).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn selector(slo: &Slo, service: &str) -> String {
    format!(
        "{{sloth_id=\"{}\", sloth_service=\"{service}\", sloth_slo=\"{}\"}}",
        slo.id, slo.name
    )
}

/// The rule groups of every SLO in `spec`.
pub fn generate(spec: &SloSpec, opts: &GenerateOptions) -> Result<Vec<RuleGroup>, String> {
    let mut out = Vec::new();
    for slo in &spec.slos {
        out.extend(generate_slo(spec, slo, opts)?);
    }
    Ok(out)
}

fn generate_slo(
    spec: &SloSpec,
    slo: &Slo,
    opts: &GenerateOptions,
) -> Result<Vec<RuleGroup>, String> {
    let service = &spec.service;
    let sel = selector(slo, service);
    let period_s = slo.period_days as u64 * 86_400;
    let period = window_name(period_s);
    let mut base = slo.labels.clone();
    base.extend(opts.extra_labels.clone());
    base.insert("sloth_id".into(), slo.id.clone());
    base.insert("sloth_service".into(), service.clone());
    base.insert("sloth_slo".into(), slo.name.clone());
    let windows = opts
        .windows
        .get(&slo.period_days)
        .copied()
        .unwrap_or_else(alert_windows);
    let mut ws: Vec<u64> = windows.iter().flat_map(|w| [w.short_s, w.long_s]).collect();
    ws.sort_unstable();
    ws.dedup();

    // SLI error ratios per window.
    let mut sli_rules = Vec::new();
    for &w in &ws {
        if opts.native && w > NATIVE_FROM_S {
            continue;
        }
        let name = window_name(w);
        let expr = match &slo.sli {
            Sli::Events {
                error_query,
                total_query,
            } => format!(
                "({})\n/\n({})\n",
                render_window(error_query, &name)?.trim(),
                render_window(total_query, &name)?.trim()
            ),
            Sli::Raw { error_ratio_query } => {
                format!("({})\n", render_window(error_ratio_query, &name)?.trim())
            }
        };
        let mut labels = base.clone();
        labels.insert("sloth_window".into(), name.clone());
        sli_rules.push(RuleOut {
            record: Some(format!("slo:sli_error:ratio_rate{name}")),
            alert: None,
            expr,
            labels,
            annotations: BTreeMap::new(),
        });
    }
    // The period's ratio: the average of the 5-minute ratios over it.
    if !opts.native {
        let mut labels = base.clone();
        labels.insert("sloth_window".into(), period.clone());
        sli_rules.push(RuleOut {
            record: Some(format!("slo:sli_error:ratio_rate{period}")),
            alert: None,
            expr: format!(
                "sum_over_time(slo:sli_error:ratio_rate5m{sel}[{period}])\n/ ignoring (sloth_window)\ncount_over_time(slo:sli_error:ratio_rate5m{sel}[{period}])\n"
            ),
            labels,
            annotations: BTreeMap::new(),
        });
    }

    // Metadata.
    let objective = slo.objective / 100.0;
    let record = |name: &str, expr: String, labels: &BTreeMap<String, String>| RuleOut {
        record: Some(name.to_string()),
        alert: None,
        expr,
        labels: labels.clone(),
        annotations: BTreeMap::new(),
    };
    let on = "on(sloth_id, sloth_slo, sloth_service) group_left";
    let mut info_labels = base.clone();
    info_labels.insert("sloth_mode".into(), spec.kind.mode_label().into());
    info_labels.insert("sloth_objective".into(), num(slo.objective));
    info_labels.insert("sloth_spec".into(), spec.kind.spec_label().into());
    info_labels.insert(
        "sloth_version".into(),
        concat!("argus-", env!("CARGO_PKG_VERSION")).into(),
    );
    let meta = vec![
        record(
            "slo:objective:ratio",
            format!("vector({})", num(objective)),
            &base,
        ),
        record(
            "slo:error_budget:ratio",
            format!("vector(1-{})", num(objective)),
            &base,
        ),
        record(
            "slo:time_period:days",
            format!("vector({})", slo.period_days),
            &base,
        ),
        record(
            "slo:current_burn_rate:ratio",
            format!("slo:sli_error:ratio_rate5m{sel}\n/ {on}\nslo:error_budget:ratio{sel}\n"),
            &base,
        ),
        record(
            "slo:period_burn_rate:ratio",
            format!("slo:sli_error:ratio_rate{period}{sel}\n/ {on}\nslo:error_budget:ratio{sel}\n"),
            &base,
        ),
        record(
            "slo:period_error_budget_remaining:ratio",
            format!("1 - slo:period_burn_rate:ratio{sel}"),
            &base,
        ),
        record("sloth_slo_info", "vector(1)".into(), &info_labels),
    ];
    let mut meta = meta;
    if let (
        true,
        false,
        Sli::Events {
            error_query,
            total_query,
        },
    ) = (opts.extensions, opts.native, &slo.sli)
    {
        // All errors over all events in the period: busy hours weigh
        // what they served, unlike the average of 5-minute ratios.
        meta.push(record(
            &format!("slo:sli_error_events:ratio_rate{period}"),
            format!(
                "({})\n/\n({})\n",
                render_window(error_query, &period)?.trim(),
                render_window(total_query, &period)?.trim()
            ),
            &base,
        ));
        meta.push(record(
            "slo:period_error_budget_remaining_events:ratio",
            format!(
                "1 - (slo:sli_error_events:ratio_rate{period}{sel}\n/ {on}\nslo:error_budget:ratio{sel})\n"
            ),
            &base,
        ));
    }

    if opts.extensions {
        // The burn rate over each alert window (Sloth records only the
        // current, 5-minute, one and the period's): how fast each window
        // spends the budget, the quantity the alerts compare.
        for &w in &ws {
            let name = window_name(w);
            let mut labels = base.clone();
            labels.insert("sloth_window".into(), name.clone());
            meta.push(record(
                "slo:burn_rate:ratio",
                format!(
                    "slo:sli_error:ratio_rate{name}{sel}\n/ {on}\nslo:error_budget:ratio{sel}\n"
                ),
                &labels,
            ));
        }
        match &slo.latency {
            Some(LatencySource::Histogram { .. }) if opts.native => {}
            Some(src) => meta.extend(latency_quantiles(src, &period, &base)),
            None => {}
        }
    }
    let mut groups = vec![
        RuleGroup {
            name: format!("sloth-slo-sli-recordings-{}", slo.id),
            rules: sli_rules,
        },
        RuleGroup {
            name: format!("sloth-slo-meta-recordings-{}", slo.id),
            rules: meta,
        },
    ];

    // Alerts: page on the two fast conditions, ticket on the two slow.
    let budget = (100.0 - slo.objective) / 100.0;
    let cond = |w: &AlertWindow| {
        let f = num(w.factor(slo.period_days));
        let b = num(budget);
        format!(
            "(\n    max(slo:sli_error:ratio_rate{s}{sel} > ({f} * {b})) without (sloth_window)\n    and\n    max(slo:sli_error:ratio_rate{l}{sel} > ({f} * {b})) without (sloth_window)\n)",
            s = window_name(w.short_s),
            l = window_name(w.long_s),
        )
    };
    let mut alerts = Vec::new();
    for (severity, meta, pair) in [
        ("page", &slo.alerting.page, [windows[0], windows[1]]),
        ("ticket", &slo.alerting.ticket, [windows[2], windows[3]]),
    ] {
        if meta.disable {
            continue;
        }
        let mut labels = slo.alerting.labels.clone();
        labels.extend(meta.labels.clone());
        labels.insert("sloth_severity".into(), severity.into());
        let mut annotations = BTreeMap::from([
            (
                "summary".to_string(),
                "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected.".to_string(),
            ),
            (
                "title".to_string(),
                format!("({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate is too fast."),
            ),
        ]);
        annotations.extend(slo.alerting.annotations.clone());
        annotations.extend(meta.annotations.clone());
        alerts.push(RuleOut {
            record: None,
            alert: Some(slo.alerting.name.clone()),
            expr: format!("{}\nor\n{}\n", cond(&pair[0]), cond(&pair[1])),
            labels,
            annotations,
        });
    }
    if !alerts.is_empty() {
        groups.push(RuleGroup {
            name: format!("sloth-slo-alerts-{}", slo.id),
            rules: alerts,
        });
    }
    Ok(groups)
}

/// Latency quantiles (p50 … p99.9) over 5m, 1h, 1d and the period:
/// `histogram_quantile` over the SLI's histogram (as exact as its
/// buckets), or the probe's HDR quantiles (exact to 0.3%).
fn latency_quantiles(
    src: &LatencySource,
    period: &str,
    base: &BTreeMap<String, String>,
) -> Vec<RuleOut> {
    let mut out = Vec::new();
    for w in ["5m", "1h", "1d", period] {
        for q in LATENCY_QUANTILES {
            let expr = match src {
                LatencySource::Histogram {
                    histogram,
                    selector,
                } => format!(
                    "histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{selector}[{w}])))"
                ),
                // The probe's windows: 5m, 1h, 1d, 30d.
                LatencySource::Probe { name, .. } if w == "30d" || w != period => format!(
                    "max without (job, instance, probe, window, quantile) (probe_latency_seconds{{job=\"probe\", probe=\"{name}\", quantile=\"{q}\", window=\"{w}\"}})"
                ),
                LatencySource::Probe { .. } => continue,
            };
            let mut labels = base.clone();
            labels.insert("quantile".into(), q.into());
            out.push(RuleOut {
                record: Some(format!("slo:sli_latency_seconds:rate{w}")),
                alert: None,
                expr,
                labels,
                annotations: BTreeMap::new(),
            });
        }
    }
    out
}

/// The rule file for the groups of one spec: a Prometheus rule file, or a
/// prometheus-operator `PrometheusRule` for Sloth's Kubernetes CRD.
pub fn to_yaml(kind: &SpecKind, groups: &[RuleGroup]) -> Result<String, String> {
    #[derive(Serialize)]
    struct File<'a> {
        groups: &'a [RuleGroup],
    }
    #[derive(Serialize)]
    struct Meta<'a> {
        labels: BTreeMap<&'a str, &'a str>,
        name: &'a str,
        namespace: &'a str,
    }
    #[derive(Serialize)]
    struct PromRule<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'a str,
        kind: &'a str,
        metadata: Meta<'a>,
        spec: File<'a>,
    }
    let head = "# Generated by argus slo generate; edit the SLO spec instead.\n";
    let body = match kind {
        SpecKind::Kubernetes { name, namespace } => serde_saphyr::to_string(&PromRule {
            api_version: "monitoring.coreos.com/v1",
            kind: "PrometheusRule",
            metadata: Meta {
                labels: BTreeMap::from([
                    ("app.kubernetes.io/component", "SLO"),
                    ("app.kubernetes.io/managed-by", "argus"),
                ]),
                name,
                namespace,
            },
            spec: File { groups },
        }),
        _ => serde_saphyr::to_string(&File { groups }),
    }
    .map_err(|e| e.to_string())?;
    Ok(format!("{head}{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_scale_with_the_period() {
        let f: Vec<f64> = alert_windows().iter().map(|w| w.factor(30)).collect();
        assert_eq!(f, vec![14.4, 6.0, 3.0, 1.0]);
        let f: Vec<String> = alert_windows()
            .iter()
            .map(|w| format!("{:.2}", w.factor(28)))
            .collect();
        assert_eq!(f, vec!["13.44", "5.60", "2.80", "0.93"]);
        assert_eq!(window_name(259_200), "3d");
        assert_eq!(window_name(1_800), "30m");
        assert_eq!(num(0.999), "0.999");
        assert_eq!(num((100.0 - 99.9) / 100.0), "0.0009999999999999432");
        assert_eq!(num(6.0), "6");
    }
}
