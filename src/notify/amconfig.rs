//! Alertmanager's configuration format (`alertmanager.yml`), read as it
//! is: the route tree with Alertmanager's validation, receivers by name
//! and integration type. Errors name the file, line, column and key path
//! like argus's own config errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use super::integrations::{
    DiscordConfig, EmailConfig, GlobalConfig, IncidentioConfig, JiraConfig, MattermostConfig,
    MsTeamsConfig, MsTeamsV2Config, OpsGenieConfig, PagerdutyConfig, PushoverConfig,
    RocketChatConfig, SlackConfig, SnsConfig, TelegramConfig, VictorOpsConfig, WeChatConfig,
    WebexConfig, WebhookConfig,
};
use super::matchers::parse_matchers;
use crate::config::{ConfigError, ConfigErrors, Pos, Positions, PromDuration, yaml_error_parts};

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmConfig {
    /// Defaults for integrations.
    #[serde(default)]
    pub global: Option<GlobalConfig>,
    /// The root of the route tree.
    pub route: Option<RouteConfig>,
    /// Inhibition rules.
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
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
    /// Directory of the file: relative `templates` and `*_file` paths
    /// start here.
    #[serde(skip)]
    pub base_dir: std::path::PathBuf,
    /// Every `*_file` of `global` and the receivers (secrets, TLS files),
    /// where it is written, so their readability can be checked.
    #[serde(skip)]
    pub file_refs: Vec<FileRef>,
    /// The name errors give this configuration (its file, or argus's
    /// config for `alerting.routing`).
    #[serde(skip)]
    pub source: String,
}

/// A file a receiver or `global` names (`url_file`, `ca_file`, …).
#[derive(Clone, Debug, Default)]
pub struct FileRef {
    /// Key path (`receivers[0].webhook_configs[0].url_file`).
    pub path: String,
    /// Where the value is written.
    pub pos: Option<Pos>,
    /// The file as written (relative paths start at `base_dir`).
    pub file: String,
}

impl AmConfig {
    /// The files of [`AmConfig::file_refs`] that cannot be read now, as
    /// positioned errors: `check` refuses them; a running argus warns, as
    /// the file may appear later, and retries deliveries that need it.
    pub fn unreadable_files(&self) -> Vec<ConfigError> {
        self.file_refs
            .iter()
            .filter_map(|r| {
                let p = self.base_dir.join(&r.file);
                let e = std::fs::File::open(&p).err()?;
                Some(ConfigError {
                    file: self.source.clone(),
                    pos: r.pos,
                    path: r.path.clone(),
                    msg: format!("cannot read {:?}: {e}", r.file),
                })
            })
            .collect()
    }
}

/// The `*_file` keys under `global` and `receivers` of a parsed document.
fn file_refs(doc: &serde_json::Value, positions: &Positions) -> Vec<FileRef> {
    fn walk(v: &serde_json::Value, path: &str, positions: &Positions, out: &mut Vec<FileRef>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match v {
                        serde_json::Value::String(f) if k.ends_with("_file") && !f.is_empty() => {
                            out.push(FileRef {
                                pos: positions
                                    .value_of_path(&p)
                                    .or_else(|| positions.of_path(&p)),
                                path: p,
                                file: f.clone(),
                            })
                        }
                        _ => walk(v, &p, positions, out),
                    }
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), positions, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for key in ["global", "receivers"] {
        if let Some(v) = doc.get(key) {
            walk(v, key, positions, &mut out);
        }
    }
    out
}

/// An inhibition rule as written: alerts matching the target matchers are
/// muted while an alert matching the source matchers fires with the same
/// values of the `equal` labels.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Legacy equality matchers for the source.
    #[serde(default)]
    pub source_match: BTreeMap<String, String>,
    /// Legacy regex matchers for the source.
    #[serde(default)]
    pub source_match_re: BTreeMap<String, Option<String>>,
    /// Matchers for the source.
    #[serde(default)]
    pub source_matchers: Vec<String>,
    /// Legacy equality matchers for the target.
    #[serde(default)]
    pub target_match: BTreeMap<String, String>,
    /// Legacy regex matchers for the target.
    #[serde(default)]
    pub target_match_re: BTreeMap<String, Option<String>>,
    /// Matchers for the target.
    #[serde(default)]
    pub target_matchers: Vec<String>,
    /// Labels whose values source and target must share.
    #[serde(default)]
    pub equal: Vec<String>,
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
    /// Labels added to alerts routed through this node.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A receiver: its name and integrations.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name routes refer to.
    #[serde(default)]
    pub name: String,
    /// Labels of the receiver (must not contradict its name).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Slack.
    #[serde(default)]
    pub slack_configs: Vec<SlackConfig>,
    /// PagerDuty.
    #[serde(default)]
    pub pagerduty_configs: Vec<PagerdutyConfig>,
    /// Email.
    #[serde(default)]
    pub email_configs: Vec<EmailConfig>,
    /// Webhooks.
    #[serde(default)]
    pub webhook_configs: Vec<WebhookConfig>,
    /// Discord.
    #[serde(default)]
    pub discord_configs: Vec<DiscordConfig>,
    /// incident.io.
    #[serde(default)]
    pub incidentio_configs: Vec<IncidentioConfig>,
    /// Jira issues.
    #[serde(default)]
    pub jira_configs: Vec<JiraConfig>,
    /// Mattermost.
    #[serde(default)]
    pub mattermost_configs: Vec<MattermostConfig>,
    /// Microsoft Teams (connector webhooks).
    #[serde(default)]
    pub msteams_configs: Vec<MsTeamsConfig>,
    /// Microsoft Teams (Power Automate flows).
    #[serde(default)]
    pub msteamsv2_configs: Vec<MsTeamsV2Config>,
    /// OpsGenie.
    #[serde(default)]
    pub opsgenie_configs: Vec<OpsGenieConfig>,
    /// Pushover.
    #[serde(default)]
    pub pushover_configs: Vec<PushoverConfig>,
    /// Rocket.Chat.
    #[serde(default)]
    pub rocketchat_configs: Vec<RocketChatConfig>,
    /// Amazon SNS.
    #[serde(default)]
    pub sns_configs: Vec<SnsConfig>,
    /// Telegram.
    #[serde(default)]
    pub telegram_configs: Vec<TelegramConfig>,
    /// VictorOps (Splunk On-Call).
    #[serde(default)]
    pub victorops_configs: Vec<VictorOpsConfig>,
    /// Webex.
    #[serde(default)]
    pub webex_configs: Vec<WebexConfig>,
    /// WeChat Work.
    #[serde(default)]
    pub wechat_configs: Vec<WeChatConfig>,
}

impl AmConfig {
    /// The named time intervals, compiled (the file was validated, so
    /// periods that fail here were refused at load).
    pub fn time_intervals(&self) -> BTreeMap<String, Vec<super::timeinterval::TimeInterval>> {
        let mut out = BTreeMap::new();
        for (key, list) in [
            ("time_intervals", &self.time_intervals),
            ("mute_time_intervals", &self.mute_time_intervals),
        ] {
            super::timeinterval::compile(key, list, &mut out, &mut |_, _| {});
        }
        out
    }
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
    let (name, src) = crate::config::read_config_file(path)?;
    let mut cfg = parse_am_config(&src, &name, strictness)?;
    cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(cfg)
}

/// The routing argus's config asks for: `alerting.routing_file`, or
/// `alerting.routing` inline (errors then name the config file, its
/// positions and key paths under `alerting.routing`), or none.
pub fn routing_of(cfg: &crate::config::Config) -> Result<Option<AmConfig>, ConfigErrors> {
    if let Some(f) = &cfg.alerting.routing_file {
        return load_am_config(Path::new(f), Strictness::Deliver).map(Some);
    }
    let Some(inline) = &cfg.alerting.routing else {
        return Ok(None);
    };
    let file = cfg
        .source_file
        .as_ref()
        .map_or_else(|| "<config>".to_string(), |p| p.display().to_string());
    let text = serde_saphyr::to_string(&inline.0).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            pos: None,
            path: "alerting.routing".into(),
            msg: e.to_string(),
        }])
    })?;
    let positions = cfg
        .source_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|src| Positions::index(&src));
    let mut am = parse_am_config(&text, &file, Strictness::Deliver).map_err(|errs| {
        ConfigErrors(
            errs.0
                .into_iter()
                .map(|e| {
                    let path = if e.path.is_empty() {
                        "alerting.routing".to_string()
                    } else {
                        format!("alerting.routing.{}", e.path)
                    };
                    ConfigError {
                        pos: positions.as_ref().and_then(|p| {
                            p.of_path(&path).or_else(|| p.of_path("alerting.routing"))
                        }),
                        file: file.clone(),
                        path,
                        msg: e.msg,
                    }
                })
                .collect(),
        )
    })?;
    am.base_dir = cfg
        .source_file
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // The files are named where argus's config writes them.
    am.source = file;
    for r in &mut am.file_refs {
        r.path = format!("alerting.routing.{}", r.path);
        r.pos = positions
            .as_ref()
            .and_then(|p| p.value_of_path(&r.path).or_else(|| p.of_path(&r.path)));
    }
    Ok(Some(am))
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
    let cfg: AmConfig = crate::config::yaml::from_str(src).map_err(|e| {
        let (pos, path, msg) = yaml_error_parts(&e, &positions);
        ConfigErrors(vec![at(&path, msg, pos)])
    })?;
    let mut errs = Vec::new();
    let mut err = |path: &str, msg: String| errs.push(at(path, msg, None));
    let global = cfg.global.clone().unwrap_or_default();
    global.check(&mut err);
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
        if let Some(v) = r.labels.get("name") {
            if *v != r.name {
                err(
                    &format!("{p}.labels"),
                    format!(
                        "receiver label \"name\" must match receiver name {:?}, got {v:?}",
                        r.name
                    ),
                );
            }
        }
        for (j, c) in r.slack_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.slack_configs[{j}]"), &mut err);
        }
        for (j, c) in r.pagerduty_configs.iter().enumerate() {
            c.check(&format!("{p}.pagerduty_configs[{j}]"), &mut err);
        }
        for (j, c) in r.email_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.email_configs[{j}]"), &mut err);
        }
        for (j, c) in r.discord_configs.iter().enumerate() {
            c.check(&format!("{p}.discord_configs[{j}]"), &mut err);
        }
        for (j, c) in r.msteams_configs.iter().enumerate() {
            c.check(&format!("{p}.msteams_configs[{j}]"), &mut err);
        }
        for (j, c) in r.telegram_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.telegram_configs[{j}]"), &mut err);
        }
        for (j, c) in r.webex_configs.iter().enumerate() {
            c.check(&format!("{p}.webex_configs[{j}]"), &mut err);
        }
        for (j, c) in r.msteamsv2_configs.iter().enumerate() {
            c.check(&format!("{p}.msteamsv2_configs[{j}]"), &mut err);
        }
        for (j, c) in r.webhook_configs.iter().enumerate() {
            c.check(&format!("{p}.webhook_configs[{j}]"), &mut err);
        }
        for (j, c) in r.opsgenie_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.opsgenie_configs[{j}]"), &mut err);
        }
        for (j, c) in r.victorops_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.victorops_configs[{j}]"), &mut err);
        }
        for (j, c) in r.incidentio_configs.iter().enumerate() {
            c.check(&format!("{p}.incidentio_configs[{j}]"), &mut err);
        }
        for (j, c) in r.mattermost_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.mattermost_configs[{j}]"), &mut err);
        }
        for (j, c) in r.wechat_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.wechat_configs[{j}]"), &mut err);
        }
        for (j, c) in r.sns_configs.iter().enumerate() {
            c.check(&format!("{p}.sns_configs[{j}]"), &mut err);
            if strictness == Strictness::Deliver {
                if let Some(key) = c.unsupported() {
                    err(
                        &format!("{p}.sns_configs[{j}].{key}"),
                        format!(
                            "receiver {:?}: {key} is not supported by argus: give sigv4.access_key and sigv4.secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in argus's environment",
                            r.name
                        ),
                    );
                }
            }
        }
        for (j, c) in r.jira_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.jira_configs[{j}]"), &mut err);
        }
        for (j, c) in r.pushover_configs.iter().enumerate() {
            c.check(&format!("{p}.pushover_configs[{j}]"), &mut err);
        }
        for (j, c) in r.rocketchat_configs.iter().enumerate() {
            c.check(&global, &format!("{p}.rocketchat_configs[{j}]"), &mut err);
        }
    }
    // Time intervals: each period checked as Alertmanager checks it.
    let mut compiled = BTreeMap::new();
    for (key, list) in [
        ("time_intervals", &cfg.time_intervals),
        ("mute_time_intervals", &cfg.mute_time_intervals),
    ] {
        super::timeinterval::compile(key, list, &mut compiled, &mut err);
    }
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
    for (i, ir) in cfg.inhibit_rules.iter().enumerate() {
        let p = format!("inhibit_rules[{i}]");
        check_matchers(
            &p,
            "source_",
            &ir.source_match,
            &ir.source_match_re,
            &ir.source_matchers,
            &mut err,
        );
        check_matchers(
            &p,
            "target_",
            &ir.target_match,
            &ir.target_match_re,
            &ir.target_matchers,
            &mut err,
        );
        for l in &ir.equal {
            if !valid_label_name(l) {
                err(
                    &format!("{p}.equal"),
                    format!("invalid label name {l:?} in equal list"),
                );
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
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    let mut cfg = cfg;
    cfg.source = file.to_string();
    if let Ok(doc) = serde_saphyr::from_str::<serde_json::Value>(src) {
        cfg.file_refs = file_refs(&doc, &positions);
    }
    Ok(cfg)
}

/// Checks `match`/`match_re`/`matchers` style fields under `p`.
fn check_matchers(
    p: &str,
    prefix: &str,
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, Option<String>>,
    list: &[String],
    err: &mut impl FnMut(&str, String),
) {
    for k in eq.keys() {
        if !valid_label_name(k) {
            err(
                &format!("{p}.{prefix}match"),
                format!("invalid label name {k:?}"),
            );
        }
    }
    for (k, v) in re {
        let mp = format!("{p}.{prefix}match_re");
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
    for (i, m) in list.iter().enumerate() {
        if let Err(e) = parse_matchers(m) {
            err(&format!("{p}.{prefix}matchers[{i}]"), e.to_string());
        }
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
    check_matchers(p, "", &r.match_eq, &r.match_re, &r.matchers, err);
    for k in r.labels.keys() {
        if !valid_label_name(k) {
            err(
                &format!("{p}.labels"),
                format!("invalid label name {k:?} in route labels"),
            );
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
            "route: {receiver: a}\nreceivers:\n  - name: a\n    jira_configs: [{project: p}]\n",
        );
        assert!(
            e.len() == 2
                && e[0].starts_with("am.yml:4:20: receivers[0].jira_configs[0]: ")
                && e[0].contains("missing issue_type in jira_config")
                && e[1].contains("no global Jira Cloud URL set"),
            "{e:?}"
        );
        let e = errors(
            "global: {jira_api_url: 'https://x.atlassian.net/rest/api/3'}\nroute: {receiver: a}\nreceivers:\n  - name: a\n    jira_configs: [{project: p, issue_type: Bug, api_type: server}]\n",
        );
        assert!(
            e.len() == 1 && e[0].contains("unknown api_type on jira_config"),
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
