//! Prometheus rule files: parsing with positions and Prometheus 3's
//! validation, errors as `FILE:LINE:COL: group "g", rule N "name": message`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::config::{Pos, Positions, PromDuration, yaml_error_parts};
use crate::model::{METRIC_NAME, is_legacy_label_name, is_legacy_metric_name};
use crate::template::{Funcs, Template};

/// How metric and label names are validated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameValidation {
    /// Prometheus 3's default: any non-empty UTF-8 name.
    #[default]
    Utf8,
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` names only, as Prometheus 2.
    Legacy,
}

/// A rule file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The groups.
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

/// One group of rules, evaluated together.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    /// Unique within the file.
    #[serde(default)]
    pub name: String,
    /// Evaluation interval; the global one when absent.
    pub interval: Option<PromDuration>,
    /// How far back to evaluate (for late data).
    pub query_offset: Option<PromDuration>,
    /// Most series (or alerts) a rule may produce; 0 = no limit.
    #[serde(default)]
    pub limit: u64,
    /// Labels added to every rule's output.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The rules, in evaluation order.
    #[serde(default)]
    pub rules: Vec<RuleNode>,
}

/// A recording or alerting rule as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleNode {
    /// Recording rule: the output metric name. These three are read as
    /// written, as Prometheus reads them (`alert: null` names an alert
    /// "null"); an empty one is unset.
    #[serde(default, deserialize_with = "crate::config::yaml::as_written_name")]
    pub record: Option<String>,
    /// Alerting rule: the alert name.
    #[serde(default, deserialize_with = "crate::config::yaml::as_written_name")]
    pub alert: Option<String>,
    /// The PromQL expression.
    #[serde(default, deserialize_with = "crate::config::yaml::as_written")]
    pub expr: String,
    /// How long the condition must hold before firing.
    #[serde(rename = "for")]
    pub for_: Option<PromDuration>,
    /// How long an alert keeps firing after the condition clears.
    pub keep_firing_for: Option<PromDuration>,
    /// Labels to add or override.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Alert annotations (templates).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl RuleNode {
    /// The record or alert name.
    pub fn name(&self) -> &str {
        self.record
            .as_deref()
            .or(self.alert.as_deref())
            .unwrap_or("")
    }
}

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// The file.
    pub file: String,
    /// Where, when known.
    pub pos: Option<Pos>,
    /// `group "g", rule N "name"` context, or empty.
    pub context: String,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: ", self.file, p.line, p.col)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        f.write_str(&self.msg)
    }
}

/// Template functions rule labels and annotations may call, for checking
/// templates ahead of time.
fn template_funcs() -> Funcs {
    let mut f = Funcs::builtin();
    crate::template::prometheus::add_prometheus_funcs(
        &mut f,
        "",
        0.0,
        Some(std::sync::Arc::new(|_q: &str| Ok(Vec::new()))),
    );
    f
}

/// Only the first YAML document counts, as in Prometheus.
fn first_document(src: &str) -> &str {
    let mut seen_content = false;
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") {
            if seen_content {
                return &src[..offset];
            }
        } else if !t.trim_start().is_empty() && !t.trim_start().starts_with('#') {
            seen_content = true;
        }
        offset += line.len();
    }
    src
}

/// Parses and validates rule file text; `file` names it in errors.
pub fn parse_rule_file(
    src: &str,
    file: &str,
    names: NameValidation,
) -> Result<RuleFile, Vec<RuleError>> {
    parse_rule_file_with(src, file, names, false)
}

/// The keys Prometheus reads at each level of a rule file.
const FILE_KEYS: &[&str] = &["groups"];
const GROUP_KEYS: &[&str] = &[
    "name",
    "interval",
    "query_offset",
    "limit",
    "labels",
    "rules",
];
const RULE_KEYS: &[&str] = &[
    "record",
    "alert",
    "expr",
    "for",
    "keep_firing_for",
    "labels",
    "annotations",
];

/// Drops keys Prometheus does not read (`--ignore-unknown-fields`, for
/// files that carry extra metadata such as ownership). Scalars where the
/// format has strings become strings, as the typed parse would read them.
fn prune_unknown(v: &mut serde_json::Value) {
    fn keep(v: &mut serde_json::Value, keys: &[&str]) {
        if let serde_json::Value::Object(m) = v {
            m.retain(|k, _| keys.contains(&k.as_str()));
            for (k, x) in m.iter_mut() {
                if !matches!(k.as_str(), "groups" | "rules" | "limit") {
                    stringify(x);
                }
            }
        }
    }
    fn stringify(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => *v = serde_json::Value::String(n.to_string()),
            serde_json::Value::Bool(b) => *v = serde_json::Value::String(b.to_string()),
            serde_json::Value::Object(m) => m.values_mut().for_each(stringify),
            _ => {}
        }
    }
    keep(v, FILE_KEYS);
    let groups = v.get_mut("groups").and_then(|g| g.as_array_mut());
    for g in groups.into_iter().flatten() {
        keep(g, GROUP_KEYS);
        let rules = g.get_mut("rules").and_then(|r| r.as_array_mut());
        for r in rules.into_iter().flatten() {
            keep(r, RULE_KEYS);
        }
    }
}

/// [`parse_rule_file`], optionally ignoring keys Prometheus does not read.
pub fn parse_rule_file_with(
    src: &str,
    file: &str,
    names: NameValidation,
    ignore_unknown_fields: bool,
) -> Result<RuleFile, Vec<RuleError>> {
    let src = first_document(src);
    let positions = Positions::index(src);
    let rf: RuleFile = {
        let lenient = || -> Option<RuleFile> {
            let mut v: serde_json::Value = crate::config::yaml::from_str(src).ok()?;
            prune_unknown(&mut v);
            // Back through the one YAML reader, so that null values read
            // as they do without the option.
            let text = serde_saphyr::to_string(&v).ok()?;
            crate::config::yaml::from_str(&text).ok()
        };
        match crate::config::yaml::from_str(src) {
            Ok(rf) => rf,
            Err(e) => match ignore_unknown_fields.then(lenient).flatten() {
                Some(rf) => rf,
                None => {
                    let (pos, _, msg) = yaml_error_parts(&e, &positions);
                    return Err(vec![RuleError {
                        file: file.to_string(),
                        pos,
                        context: String::new(),
                        msg,
                    }]);
                }
            },
        }
    };
    let mut errs = Vec::new();
    let funcs = template_funcs();
    let valid_label = |n: &str| match names {
        NameValidation::Utf8 => !n.is_empty(),
        NameValidation::Legacy => is_legacy_label_name(n),
    };
    let valid_metric = |n: &str| match names {
        NameValidation::Utf8 => !n.is_empty(),
        NameValidation::Legacy => is_legacy_metric_name(n),
    };
    let mut seen_groups: BTreeMap<&str, ()> = BTreeMap::new();
    for (gi, g) in rf.groups.iter().enumerate() {
        let gpath = format!("groups[{gi}]");
        let mut err = |path: &str, context: String, msg: String| {
            errs.push(RuleError {
                file: file.to_string(),
                pos: positions
                    .of_path(path)
                    .or_else(|| positions.of_path(&gpath)),
                context,
                msg,
            })
        };
        if g.name.is_empty() {
            err(&gpath, String::new(), "Groupname must not be empty".into());
        } else if seen_groups.insert(&g.name, ()).is_some() {
            err(
                &format!("{gpath}.name"),
                String::new(),
                format!("groupname: {:?} is repeated in the same file", g.name),
            );
        }
        for k in g.labels.keys() {
            if !valid_label(k) || k == METRIC_NAME {
                err(
                    &format!("{gpath}.labels.{k}"),
                    format!("group {:?}", g.name),
                    format!("invalid label name: {k}"),
                );
            }
        }
        for (ri, r) in g.rules.iter().enumerate() {
            let rpath = format!("{gpath}.rules[{ri}]");
            let ctx = format!("group {:?}, rule {}, {:?}", g.name, ri + 1, r.name());
            let at = |field: &str| format!("{rpath}.{field}");
            match (&r.record, &r.alert) {
                (Some(_), Some(_)) => err(
                    &rpath,
                    ctx.clone(),
                    "only one of 'record' and 'alert' must be set".into(),
                ),
                (None, None) => err(
                    &rpath,
                    ctx.clone(),
                    "one of 'record' or 'alert' must be set".into(),
                ),
                _ => {}
            }
            if r.expr.trim().is_empty() {
                err(
                    &rpath,
                    ctx.clone(),
                    "field 'expr' must be set in rule".into(),
                );
            } else if let Err(e) = crate::promql::limits::parse_expr(&r.expr) {
                err(
                    &at("expr"),
                    ctx.clone(),
                    format!("could not parse expression: {}", e.replace('\n', " ")),
                );
            }
            if let Some(rec) = &r.record {
                if r.for_.is_some() {
                    err(
                        &at("for"),
                        ctx.clone(),
                        "invalid field 'for' in recording rule".into(),
                    );
                }
                if r.keep_firing_for.is_some() {
                    err(
                        &at("keep_firing_for"),
                        ctx.clone(),
                        "invalid field 'keep_firing_for' in recording rule".into(),
                    );
                }
                if !r.annotations.is_empty() {
                    err(
                        &at("annotations"),
                        ctx.clone(),
                        "invalid field 'annotations' in recording rule".into(),
                    );
                }
                // Under UTF-8 names any name is valid, but one that looks
                // like a selector (`name{label="v"}`) is always a mistake.
                if !valid_metric(rec) || rec.contains('{') {
                    err(
                        &at("record"),
                        ctx.clone(),
                        format!("invalid recording rule name: {rec}"),
                    );
                }
            }
            for (k, v) in &r.labels {
                if !valid_label(k) || k == METRIC_NAME {
                    err(
                        &at(&format!("labels.{k}")),
                        ctx.clone(),
                        format!("invalid label name: {k}"),
                    );
                    continue;
                }
                check_template(
                    &mut err,
                    &at(&format!("labels.{k}")),
                    &ctx,
                    "label",
                    k,
                    v,
                    &funcs,
                );
            }
            for (k, v) in &r.annotations {
                if !valid_label(k) {
                    err(
                        &at(&format!("annotations.{k}")),
                        ctx.clone(),
                        format!("invalid annotation name: {k}"),
                    );
                    continue;
                }
                check_template(
                    &mut err,
                    &at(&format!("annotations.{k}")),
                    &ctx,
                    "annotation",
                    k,
                    v,
                    &funcs,
                );
            }
        }
    }
    if errs.is_empty() { Ok(rf) } else { Err(errs) }
}

fn check_template(
    err: &mut impl FnMut(&str, String, String),
    path: &str,
    ctx: &str,
    what: &str,
    key: &str,
    text: &str,
    funcs: &Funcs,
) {
    let name = format!("__{what}_{key}");
    let r = Template::parse(&name, text).and_then(|t| t.check_funcs(funcs));
    if let Err(e) = r {
        err(path, ctx.to_string(), format!("{what} {key:?}: {e}"));
    }
}

/// Reads and validates a rule file.
pub fn load_rule_file(path: &Path, names: NameValidation) -> Result<RuleFile, Vec<RuleError>> {
    load_rule_file_with(path, names, false)
}

/// [`load_rule_file`], optionally ignoring keys Prometheus does not read.
pub fn load_rule_file_with(
    path: &Path,
    names: NameValidation,
    ignore_unknown_fields: bool,
) -> Result<RuleFile, Vec<RuleError>> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        vec![RuleError {
            file: name.clone(),
            pos: None,
            context: String::new(),
            msg: format!("cannot read: {e}"),
        }]
    })?;
    parse_rule_file_with(&src, &name, names, ignore_unknown_fields)
}

/// Rules that share a name and label set with another rule of the file
/// (promtool's `duplicate-rules` lint), each once, sorted by name then
/// labels.
pub fn duplicate_rules(rf: &RuleFile) -> Vec<(String, BTreeMap<String, String>)> {
    let mut all: Vec<(&str, &BTreeMap<String, String>)> = rf
        .groups
        .iter()
        .flat_map(|g| g.rules.iter().map(|r| (r.name(), &r.labels)))
        .collect();
    all.sort();
    let mut dups: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for pair in all.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let seen = dups.last().is_some_and(|(n, l)| n == b.0 && l == b.1);
        if a == b && !seen {
            dups.push((b.0.to_string(), b.1.clone()));
        }
    }
    dups
}

/// promtool's message for [`duplicate_rules`].
pub fn duplicate_rules_message(dups: &[(String, BTreeMap<String, String>)]) -> String {
    let mut m = format!("lint error {} duplicate rule(s) found.\n", dups.len());
    for (name, labels) in dups {
        m.push_str(&format!("Metric: {name}\nLabel(s):\n"));
        for (k, v) in labels {
            m.push_str(&format!("\t{k}: {v}\n"));
        }
    }
    m.push_str("Might cause inconsistency while recording expressions");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(src: &str) -> Vec<String> {
        parse_rule_file(src, "r.yml", NameValidation::Utf8)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn valid_files_parse() {
        let rf = parse_rule_file(
            "groups:\n  - name: g\n    interval: 30s\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 5m\n        labels: {severity: page}\n        annotations: {summary: '{{ $labels.instance }} is down ({{ $value | humanize }})'}\n      - record: job:up:sum\n        expr: sum by (job) (up)\n",
            "r.yml",
            NameValidation::Utf8,
        )
        .unwrap();
        assert_eq!(rf.groups[0].rules.len(), 2);
        assert_eq!(rf.groups[0].rules[0].for_, Some(PromDuration::secs(300)));
    }

    #[test]
    fn errors_name_file_position_group_and_rule() {
        let e =
            errs("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: rate(x)\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("r.yml:5:9: group \"g\", rule 1, \"r\": could not parse expression"),
            "{e:?}"
        );
        let e = errs(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          s: '{{ .x '\n",
        );
        assert!(
            e[0].contains("annotation \"s\": template: __annotation_s:1: unclosed action"),
            "{e:?}"
        );
        let e = errs("groups:\n  - name: g\n  - name: g\n");
        assert!(
            e[0].contains("groupname: \"g\" is repeated in the same file"),
            "{e:?}"
        );
        let e = errs(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotation: {}\n",
        );
        assert!(e[0].starts_with("r.yml:6:9: "), "{e:?}");
        assert!(e[0].contains("annotation"), "{e:?}");
    }

    #[test]
    fn unknown_fields_can_be_ignored() {
        let src = "groups:\n  - name: g\n    owner: {team: x}\n    rules:\n      - alert: A\n        expr: 1\n        runbook: y\n        for: 5m\n";
        assert!(parse_rule_file(src, "r.yml", NameValidation::Utf8).is_err());
        let rf = parse_rule_file_with(src, "r.yml", NameValidation::Utf8, true).unwrap();
        assert_eq!(rf.groups[0].rules[0].expr, "1");
        assert_eq!(rf.groups[0].rules[0].for_, Some(PromDuration::secs(300)));
    }

    #[test]
    fn only_the_first_document_counts() {
        let rf = parse_rule_file(
            "groups:\n  - name: a\n---\ngroups: []\n",
            "r.yml",
            NameValidation::Utf8,
        )
        .unwrap();
        assert_eq!(rf.groups.len(), 1);
    }
}
