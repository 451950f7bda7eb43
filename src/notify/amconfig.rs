//! Alertmanager's configuration format (`alertmanager.yml`), read as it
//! is: the route tree with Alertmanager's validation, receivers by name
//! and integration type. Errors name the file, line, column and key path
//! like argus's own config errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use super::matchers::parse_matchers;
use crate::config::{ConfigError, ConfigErrors, Pos, Positions, PromDuration, yaml_error_parts};

/// Integration types argus delivers to.
pub const SUPPORTED_INTEGRATIONS: &[&str] = &[
    "email_configs",
    "pagerduty_configs",
    "slack_configs",
    "webhook_configs",
];

/// Integration types Alertmanager has and argus does not.
pub const UNSUPPORTED_INTEGRATIONS: &[&str] = &[
    "discord_configs",
    "incidentio_configs",
    "jira_configs",
    "mattermost_configs",
    "msteams_configs",
    "msteamsv2_configs",
    "opsgenie_configs",
    "pushover_configs",
    "rocketchat_configs",
    "sns_configs",
    "telegram_configs",
    "victorops_configs",
    "webex_configs",
    "wechat_configs",
];

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmConfig {
    /// Defaults for integrations (read whole; checked with the receivers).
    #[serde(default)]
    pub global: Option<serde_json::Value>,
    /// The root of the route tree.
    pub route: Option<RouteConfig>,
    /// Inhibition rules.
    #[serde(default)]
    pub inhibit_rules: Vec<serde_json::Value>,
    /// Receivers by name.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Notification template files.
    #[serde(default)]
    pub templates: Vec<String>,
    /// Named time intervals.
    #[serde(default)]
    pub time_intervals: Vec<serde_json::Value>,
    /// Named time intervals (the older key).
    #[serde(default)]
    pub mute_time_intervals: Vec<serde_json::Value>,
    /// Alertmanager's tracing settings (not used by argus).
    #[serde(default)]
    pub tracing: Option<serde_json::Value>,
}

/// A node of the route tree as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver of alerts that stop here.
    #[serde(default)]
    pub receiver: String,
    /// Labels that group alerts; `['...']` groups by all labels.
    pub group_by: Option<Vec<String>>,
    /// Legacy equality matchers.
    #[serde(default, rename = "match")]
    pub match_eq: BTreeMap<String, String>,
    /// Legacy regex matchers (anchored).
    #[serde(default)]
    pub match_re: BTreeMap<String, Option<String>>,
    /// Matchers in Alertmanager's syntax, one or more per string.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Time intervals during which notifications are muted.
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Time intervals outside which notifications are muted.
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    /// Keep matching siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Child routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Wait before the first notification of a new group.
    pub group_wait: Option<PromDuration>,
    /// Wait before notifying about changes in a group.
    pub group_interval: Option<PromDuration>,
    /// Wait before repeating a notification.
    pub repeat_interval: Option<PromDuration>,
}

/// A receiver: its name and integrations.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReceiverConfig {
    /// Unique name routes refer to.
    #[serde(default)]
    pub name: String,
    /// Integration lists by key (`slack_configs`, …).
    #[serde(flatten)]
    pub integrations: BTreeMap<String, serde_json::Value>,
}

/// How strictly to read a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// Everything must be deliverable by argus: receivers with integration
    /// types argus lacks are refused.
    Deliver,
    /// Only routing matters (`argus config routes test`): receivers are
    /// names.
    Routing,
}

/// Reads and validates an Alertmanager config file.
pub fn load_am_config(path: &Path, strictness: Strictness) -> Result<AmConfig, ConfigErrors> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            pos: None,
            path: String::new(),
            msg: format!("cannot read: {e}"),
        }])
    })?;
    parse_am_config(&src, &name, strictness)
}

fn valid_label_name(n: &str) -> bool {
    crate::model::is_legacy_label_name(n)
}

/// Parses and validates Alertmanager config text; `file` names it in errors.
pub fn parse_am_config(
    src: &str,
    file: &str,
    strictness: Strictness,
) -> Result<AmConfig, ConfigErrors> {
    let positions = Positions::index(src);
    let at = |path: &str, msg: String, pos: Option<Pos>| ConfigError {
        file: file.to_string(),
        pos: pos.or_else(|| positions.of_path(path)),
        path: path.to_string(),
        msg,
    };
    let cfg: AmConfig = if src.trim().is_empty() {
        AmConfig::default()
    } else {
        serde_saphyr::from_str(src).map_err(|e| {
            let (pos, path, msg) = yaml_error_parts(&e, &positions);
            ConfigErrors(vec![at(&path, msg, pos)])
        })?
    };
    let mut errs = Vec::new();
    let mut err = |path: &str, msg: String| errs.push(at(path, msg, None));
    // Receivers.
    let mut names = BTreeSet::new();
    for (i, r) in cfg.receivers.iter().enumerate() {
        let p = format!("receivers[{i}]");
        if r.name.is_empty() {
            err(&p, "missing name in receiver".into());
        } else if !names.insert(r.name.as_str()) {
            err(
                &format!("{p}.name"),
                format!("notification config name {:?} is not unique", r.name),
            );
        }
        for key in r.integrations.keys() {
            let kp = format!("{p}.{key}");
            if key == "labels" || SUPPORTED_INTEGRATIONS.contains(&key.as_str()) {
                continue;
            }
            if UNSUPPORTED_INTEGRATIONS.contains(&key.as_str()) {
                if strictness == Strictness::Deliver {
                    err(
                        &kp,
                        format!(
                            "receiver {:?}: integration type {key:?} is not supported by argus (supported: {})",
                            r.name,
                            SUPPORTED_INTEGRATIONS.join(", ")
                        ),
                    );
                }
            } else {
                err(
                    &kp,
                    format!("unknown field `{key}` in receiver {:?}", r.name),
                );
            }
        }
    }
    // Time interval names.
    let mut intervals = BTreeSet::new();
    for (key, list) in [
        ("time_intervals", &cfg.time_intervals),
        ("mute_time_intervals", &cfg.mute_time_intervals),
    ] {
        for (i, t) in list.iter().enumerate() {
            let p = format!("{key}[{i}]");
            match t.get("name").and_then(|n| n.as_str()) {
                Some(n) if !n.is_empty() => {
                    if !intervals.insert(n.to_string()) {
                        err(&p, format!("time interval {n:?} is not unique"));
                    }
                }
                _ => err(&p, "missing name in time interval".into()),
            }
        }
    }
    // The route tree.
    match &cfg.route {
        None => err("", "no route provided in config".into()),
        Some(root) => {
            if root.receiver.is_empty() {
                err("route", "root route must specify a default receiver".into());
            }
            if !root.match_eq.is_empty() || !root.match_re.is_empty() || !root.matchers.is_empty() {
                err("route", "root route must not have any matchers".into());
            }
            if root.continue_matching {
                err(
                    "route.continue",
                    "cannot have continue in root route".into(),
                );
            }
            if !root.mute_time_intervals.is_empty() {
                err(
                    "route.mute_time_intervals",
                    "root route must not have any mute time intervals".into(),
                );
            }
            if !root.active_time_intervals.is_empty() {
                err(
                    "route.active_time_intervals",
                    "root route must not have any active time intervals".into(),
                );
            }
            check_route(root, "route", &names, &intervals, &mut err);
        }
    }
    if errs.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errs))
    }
}

fn check_route(
    r: &RouteConfig,
    p: &str,
    receivers: &BTreeSet<&str>,
    intervals: &BTreeSet<String>,
    err: &mut impl FnMut(&str, String),
) {
    if !r.receiver.is_empty() && !receivers.contains(r.receiver.as_str()) {
        err(
            &format!("{p}.receiver"),
            format!("undefined receiver {:?} used in route", r.receiver),
        );
    }
    if let Some(gb) = &r.group_by {
        let gp = format!("{p}.group_by");
        if gb.iter().any(|l| l == "...") && gb.len() > 1 {
            err(
                &gp,
                "cannot have wildcard group_by (`...`) and other labels at the same time".into(),
            );
        }
        let mut seen = BTreeSet::new();
        for l in gb.iter().filter(|l| *l != "...") {
            if !valid_label_name(l) {
                err(&gp, format!("invalid label name {l:?} in group_by list"));
            } else if !seen.insert(l) {
                err(&gp, format!("duplicated label {l:?} in group_by"));
            }
        }
    }
    for (k, d) in [
        ("group_interval", r.group_interval),
        ("repeat_interval", r.repeat_interval),
    ] {
        if d.is_some_and(|d| d.0.is_zero()) {
            err(&format!("{p}.{k}"), format!("{k} cannot be zero"));
        }
    }
    for k in r.match_eq.keys() {
        if !valid_label_name(k) {
            err(&format!("{p}.match"), format!("invalid label name {k:?}"));
        }
    }
    for (k, v) in &r.match_re {
        let mp = format!("{p}.match_re");
        if !valid_label_name(k) {
            err(&mp, format!("invalid label name {k:?}"));
        }
        match v {
            None => err(&mp, format!("invalid regexp value for {k:?}")),
            Some(v) => {
                if let Err(e) = crate::model::anchored_regex(v) {
                    err(&mp, format!("invalid regexp value for {k:?}: {e}"));
                }
            }
        }
    }
    for (i, m) in r.matchers.iter().enumerate() {
        if let Err(e) = parse_matchers(m) {
            err(&format!("{p}.matchers[{i}]"), e.to_string());
        }
    }
    for (k, list) in [
        ("mute_time_intervals", &r.mute_time_intervals),
        ("active_time_intervals", &r.active_time_intervals),
    ] {
        for t in list {
            if !intervals.contains(t) {
                err(
                    &format!("{p}.{k}"),
                    format!("undefined time interval {t:?} used in route"),
                );
            }
        }
    }
    for (i, c) in r.routes.iter().enumerate() {
        check_route(c, &format!("{p}.routes[{i}]"), receivers, intervals, err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<String> {
        parse_am_config(src, "am.yml", Strictness::Deliver)
            .err()
            .map(|e| e.0.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn validates_like_alertmanager() {
        assert!(errors("route: {receiver: a}\nreceivers: [{name: a}]\n").is_empty());
        let e = errors("route: {receiver: b}\nreceivers: [{name: a}]\n");
        assert!(
            e[0].contains("undefined receiver \"b\" used in route"),
            "{e:?}"
        );
        let e = errors(
            "route:\n  receiver: a\n  routes:\n    - match_re:\n        x:\n      receiver: a\nreceivers: [{name: a}]\n",
        );
        assert!(e[0].contains("invalid regexp value for \"x\""), "{e:?}");
        let e = errors(
            "route: {receiver: a}\nreceivers:\n  - name: a\n    opsgenie_configs: [{api_key: k}]\n",
        );
        assert!(
            e[0].starts_with("am.yml:4:5: receivers[0].opsgenie_configs: ")
                && e[0].contains("\"opsgenie_configs\" is not supported"),
            "{e:?}"
        );
        let e = errors("route: {receiver: a, group_by: ['...', x]}\nreceivers: [{name: a}]\n");
        assert!(e[0].contains("wildcard group_by"), "{e:?}");
        let e = errors("receivers: [{name: a}, {name: a}]\nroute: {receiver: a}\n");
        assert!(e[0].contains("is not unique"), "{e:?}");
        let e = errors("route: {receiver: a, match: {x: y}}\nreceivers: [{name: a}]\n");
        assert!(
            e[0].contains("root route must not have any matchers"),
            "{e:?}"
        );
    }
}
