//! The parts of an Alertmanager config that integrations read: `global`
//! and the integration types argus delivers to, typed with
//! Alertmanager's keys and checked with its rules (`*_file` secrets
//! exclusive with inline ones, values taken from `global` where a receiver
//! leaves them out).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{Authorization, BasicAuth, PromDuration, Secret, TlsConfig};

/// Alertmanager's default Slack App URL (bot-token mode).
pub const SLACK_APP_URL: &str = "https://slack.com/api/chat.postMessage";
/// Alertmanager's default PagerDuty Events API v2 URL.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `http_config`: Prometheus's common HTTP client settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// Authorization header.
    pub authorization: Option<Authorization>,
    /// Bearer token (deprecated form).
    pub bearer_token: Option<Secret>,
    /// Bearer token file (deprecated form).
    pub bearer_token_file: Option<String>,
    /// TLS settings.
    pub tls_config: Option<TlsConfig>,
    /// Proxy URL (read; argus connects directly).
    pub proxy_url: Option<String>,
    /// Hosts not to proxy.
    pub no_proxy: Option<String>,
    /// Use the proxy environment variables.
    #[serde(default)]
    pub proxy_from_environment: bool,
    /// Headers for proxy CONNECT.
    pub proxy_connect_header: Option<serde_json::Value>,
    /// Follow redirects (default true).
    pub follow_redirects: Option<bool>,
    /// Allow HTTP/2 (default true).
    pub enable_http2: Option<bool>,
    /// OAuth 2 client credentials (read; not used by argus yet).
    pub oauth2: Option<serde_json::Value>,
    /// Extra headers.
    pub http_headers: Option<serde_json::Value>,
}

/// `global:`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct GlobalConfig {
    /// How long an alert without `endsAt` stays firing after it was last
    /// received (5m).
    pub resolve_timeout: Option<PromDuration>,
    /// HTTP client settings for every integration that sets none.
    pub http_config: Option<HttpConfig>,
    pub smtp_from: Option<String>,
    pub smtp_hello: Option<String>,
    pub smtp_smarthost: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<Secret>,
    pub smtp_auth_password_file: Option<String>,
    pub smtp_auth_secret: Option<Secret>,
    pub smtp_auth_secret_file: Option<String>,
    pub smtp_auth_identity: Option<String>,
    /// Require STARTTLS (default true).
    pub smtp_require_tls: Option<bool>,
    pub smtp_tls_config: Option<TlsConfig>,
    pub smtp_force_implicit_tls: Option<bool>,
    pub slack_api_url: Option<Secret>,
    pub slack_api_url_file: Option<String>,
    pub slack_app_token: Option<Secret>,
    pub slack_app_token_file: Option<String>,
    pub slack_app_url: Option<String>,
    pub pagerduty_url: Option<String>,
    pub opsgenie_api_url: Option<String>,
    pub opsgenie_api_key: Option<Secret>,
    pub opsgenie_api_key_file: Option<String>,
    pub victorops_api_url: Option<String>,
    pub victorops_api_key: Option<Secret>,
    pub victorops_api_key_file: Option<String>,
    pub mattermost_webhook_url: Option<Secret>,
    pub mattermost_webhook_url_file: Option<String>,
    pub jira_api_url: Option<String>,
    pub wechat_api_url: Option<String>,
    pub wechat_api_secret: Option<Secret>,
    pub wechat_api_secret_file: Option<String>,
    pub wechat_api_corp_id: Option<String>,
    pub telegram_api_url: Option<String>,
    pub telegram_bot_token: Option<Secret>,
    pub telegram_bot_token_file: Option<String>,
    pub webex_api_url: Option<String>,
    pub rocketchat_api_url: Option<String>,
    pub rocketchat_token: Option<Secret>,
    pub rocketchat_token_file: Option<String>,
    pub rocketchat_token_id: Option<Secret>,
    pub rocketchat_token_id_file: Option<String>,
}

fn set<T>(o: &Option<T>) -> bool {
    o.is_some()
}

fn set_s(o: &Option<Secret>) -> bool {
    o.as_ref().is_some_and(|s| !s.is_empty())
}

fn set_f(o: &Option<String>) -> bool {
    o.as_ref().is_some_and(|s| !s.is_empty())
}

/// Alertmanager's check of a URL setting: an `http` or `https` scheme
/// and a host, with Alertmanager's wording.
pub fn check_url(url: &str, p: &str, err: &mut dyn FnMut(&str, String)) {
    let (scheme, rest) = match url.split_once(':') {
        Some((s, r))
            if s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) =>
        {
            (s.to_ascii_lowercase(), r)
        }
        _ => (String::new(), url),
    };
    if scheme != "http" && scheme != "https" {
        err(p, format!("unsupported scheme {scheme:?} for URL"));
        return;
    }
    let host = rest
        .strip_prefix("//")
        .map(|a| a.split(['/', '?', '#']).next().unwrap_or(""))
        .map(|a| a.rsplit('@').next().unwrap_or(""))
        .unwrap_or("");
    if host.is_empty() {
        err(p, "host for URL must not be empty".into());
    }
}

/// [`check_url`] on a setting that may be unset (null or left out; an
/// empty string is set, and refused as Alertmanager refuses it).
fn check_opt_url(url: Option<&str>, p: &str, err: &mut dyn FnMut(&str, String)) {
    if let Some(u) = url {
        check_url(u, p, err);
    }
}

impl GlobalConfig {
    /// Alertmanager's checks of `global`: URLs are http(s) with a host,
    /// inline secrets and their `_file` forms are exclusive.
    pub fn check(&self, err: &mut dyn FnMut(&str, String)) {
        for (key, url) in [
            (
                "slack_api_url",
                self.slack_api_url.as_ref().map(|s| s.expose()),
            ),
            ("slack_app_url", self.slack_app_url.as_deref()),
            ("pagerduty_url", self.pagerduty_url.as_deref()),
            ("jira_api_url", self.jira_api_url.as_deref()),
            ("opsgenie_api_url", self.opsgenie_api_url.as_deref()),
            ("wechat_api_url", self.wechat_api_url.as_deref()),
            ("victorops_api_url", self.victorops_api_url.as_deref()),
            ("telegram_api_url", self.telegram_api_url.as_deref()),
            ("webex_api_url", self.webex_api_url.as_deref()),
            ("rocketchat_api_url", self.rocketchat_api_url.as_deref()),
            (
                "mattermost_webhook_url",
                self.mattermost_webhook_url.as_ref().map(|s| s.expose()),
            ),
        ] {
            check_opt_url(url, &format!("global.{key}"), err);
        }
        let pairs: [(&str, bool, bool); 11] = [
            (
                "slack_app_token",
                set_s(&self.slack_app_token),
                set_f(&self.slack_app_token_file),
            ),
            (
                "slack_api_url",
                set(&self.slack_api_url),
                set_f(&self.slack_api_url_file),
            ),
            (
                "opsgenie_api_key",
                set_s(&self.opsgenie_api_key),
                set_f(&self.opsgenie_api_key_file),
            ),
            (
                "victorops_api_key",
                set_s(&self.victorops_api_key),
                set_f(&self.victorops_api_key_file),
            ),
            (
                "telegram_bot_token",
                set_s(&self.telegram_bot_token),
                set_f(&self.telegram_bot_token_file),
            ),
            (
                "smtp_auth_password",
                set_s(&self.smtp_auth_password),
                set_f(&self.smtp_auth_password_file),
            ),
            (
                "rocketchat_token",
                set(&self.rocketchat_token),
                set_f(&self.rocketchat_token_file),
            ),
            (
                "rocketchat_token_id",
                set(&self.rocketchat_token_id),
                set_f(&self.rocketchat_token_id_file),
            ),
            (
                "smtp_auth_secret",
                set_s(&self.smtp_auth_secret),
                set_f(&self.smtp_auth_secret_file),
            ),
            (
                "wechat_api_secret",
                set_s(&self.wechat_api_secret),
                set_f(&self.wechat_api_secret_file),
            ),
            (
                "mattermost_webhook_url",
                set(&self.mattermost_webhook_url),
                set_f(&self.mattermost_webhook_url_file),
            ),
        ];
        for (k, a, b) in pairs {
            if a && b {
                err(
                    &format!("global.{k}"),
                    format!("at most one of {k} & {k}_file must be configured"),
                );
            }
        }
        let token = set_s(&self.slack_app_token) || set_f(&self.slack_app_token_file);
        let url = set(&self.slack_api_url) || set_f(&self.slack_api_url_file);
        // Alertmanager tolerates both when the API URL is the App URL (the
        // old workaround for bot tokens).
        let app_url = self.slack_app_url.as_deref().unwrap_or(SLACK_APP_URL);
        let same = self
            .slack_api_url
            .as_ref()
            .is_some_and(|u| u.expose() == app_url);
        if token && url && !same {
            err(
                "global.slack_app_token",
                "at most one of slack_app_token/slack_app_token_file & slack_api_url/slack_api_url_file must be configured".into(),
            );
        }
    }
}

/// `send_resolved`, common to every integration.
fn default_true() -> bool {
    true
}

/// A field of a Slack attachment.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    pub short: Option<bool>,
}

/// A Slack message button's confirmation dialog.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SlackConfirm {
    pub title: Option<String>,
    pub text: String,
    pub ok_text: Option<String>,
    pub dismiss_text: Option<String>,
}

/// A Slack message button.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SlackAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub url: Option<String>,
    pub style: Option<String>,
    pub name: Option<String>,
    pub value: Option<String>,
    pub confirm: Option<SlackConfirm>,
}

/// `slack_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SlackConfig {
    #[serde(default)]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub api_url: Option<Secret>,
    pub api_url_file: Option<String>,
    pub app_token: Option<Secret>,
    pub app_token_file: Option<String>,
    pub app_url: Option<String>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub pretext: Option<String>,
    pub text: Option<String>,
    pub message_text: Option<String>,
    #[serde(default)]
    pub fields: Vec<SlackField>,
    #[serde(default)]
    pub short_fields: bool,
    pub footer: Option<String>,
    pub fallback: Option<String>,
    pub callback_id: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub image_url: Option<String>,
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub link_names: bool,
    #[serde(default)]
    pub mrkdwn_in: Vec<String>,
    #[serde(default)]
    pub actions: Vec<SlackAction>,
    #[serde(default)]
    pub update_message: bool,
    pub timeout: Option<PromDuration>,
}

/// A PagerDuty image.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PagerdutyImage {
    pub src: Option<String>,
    pub alt: Option<String>,
    pub href: Option<String>,
}

/// A PagerDuty link.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PagerdutyLink {
    pub href: Option<String>,
    pub text: Option<String>,
}

/// `pagerduty_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PagerdutyConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub service_key: Option<Secret>,
    pub service_key_file: Option<String>,
    pub routing_key: Option<Secret>,
    pub routing_key_file: Option<String>,
    pub url: Option<String>,
    pub client: Option<String>,
    pub client_url: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub images: Vec<PagerdutyImage>,
    #[serde(default)]
    pub links: Vec<PagerdutyLink>,
    pub source: Option<String>,
    pub severity: Option<String>,
    pub class: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    pub timeout: Option<PromDuration>,
}

/// Email threading.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ThreadingConfig {
    #[serde(default)]
    pub enabled: bool,
    pub thread_by_date: Option<String>,
}

/// `email_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EmailConfig {
    #[serde(default)]
    pub send_resolved: bool,
    #[serde(default)]
    pub to: String,
    pub from: Option<String>,
    pub hello: Option<String>,
    pub smarthost: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<Secret>,
    pub auth_password_file: Option<String>,
    pub auth_secret: Option<Secret>,
    pub auth_secret_file: Option<String>,
    pub auth_identity: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub require_tls: Option<bool>,
    pub tls_config: Option<TlsConfig>,
    pub force_implicit_tls: Option<bool>,
    pub threading: Option<ThreadingConfig>,
}

/// `webhook_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct WebhookConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub url: Option<Secret>,
    pub url_file: Option<String>,
    #[serde(default)]
    pub max_alerts: u64,
    pub timeout: Option<PromDuration>,
    pub payload: Option<serde_json::Value>,
}

/// `discord_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DiscordConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<String>,
    pub content: Option<String>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
}

/// `msteams_configs[]` (Office 365 connector webhooks, MessageCard).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MsTeamsConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
}

/// `msteamsv2_configs[]` (Power Automate flows, an adaptive card).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MsTeamsV2Config {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<String>,
    pub title: Option<String>,
    pub text: Option<String>,
}

impl MsTeamsV2Config {
    /// Alertmanager's checks.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_url_or_file(
            &self.webhook_url,
            &self.webhook_url_file,
            "webhook_url",
            p,
            err,
        );
    }
}

/// Webex's messages API, where `global.webex_api_url` does not say.
pub const WEBEX_API_URL: &str = "https://webexapis.com/v1/messages";

/// `webex_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct WebexConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub api_url: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub room_id: String,
}

impl WebexConfig {
    /// Alertmanager's checks: a room, and a bot token as the client's
    /// `authorization`.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(self.api_url.as_deref(), &format!("{p}.api_url"), err);
        if self.room_id.is_empty() {
            err(p, "missing room_id on webex_config".into());
        }
        if self
            .http_config
            .as_ref()
            .is_none_or(|h| h.authorization.is_none())
        {
            err(p, "missing webex_configs.http_config.authorization".into());
        }
    }
}

/// OpsGenie's API, where `global.opsgenie_api_url` does not say.
pub const OPSGENIE_API_URL: &str = "https://api.opsgenie.com/";

/// `opsgenie_configs[].responders[]`: one of id, name and username.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OpsGenieResponder {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub username: String,
    /// team, teams (a comma-separated list of names), user, escalation or
    /// schedule; may be a template.
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// `opsgenie_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OpsGenieConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub api_key: Option<Secret>,
    pub api_key_file: Option<String>,
    pub api_url: Option<String>,
    pub message: Option<String>,
    pub description: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    #[serde(default)]
    pub entity: String,
    #[serde(default)]
    pub responders: Vec<OpsGenieResponder>,
    #[serde(default)]
    pub actions: String,
    #[serde(default)]
    pub tags: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub priority: String,
    /// Also update the message and description of an alert OpsGenie
    /// already has (two more requests a notification).
    #[serde(default)]
    pub update_alerts: bool,
}

impl OpsGenieConfig {
    /// Alertmanager's checks, with `global` filling the key.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(self.api_url.as_deref(), &format!("{p}.api_url"), err);
        check_secret_or_global(
            (&self.api_key, &self.api_key_file),
            (&g.opsgenie_api_key, &g.opsgenie_api_key_file),
            "api_key",
            "no global OpsGenie API Key set either inline or in a file",
            p,
            err,
        );
        for (i, r) in self.responders.iter().enumerate() {
            let rp = format!("{p}.responders[{i}]");
            let shown = format!("{{{} {} {} {}}}", r.id, r.name, r.username, r.kind);
            if r.id.is_empty() && r.name.is_empty() && r.username.is_empty() {
                err(
                    &rp,
                    format!(
                        "opsGenieConfig responder {shown} has to have at least one of id, username or name specified"
                    ),
                );
            }
            let templated = r.kind.contains("{{");
            if !templated
                && !matches!(
                    r.kind.to_ascii_lowercase().as_str(),
                    "team" | "teams" | "user" | "escalation" | "schedule"
                )
            {
                err(
                    &format!("{rp}.type"),
                    format!(
                        "opsGenieConfig responder {shown} type does not match valid options ^(team|teams|user|escalation|schedule)$"
                    ),
                );
            }
        }
    }
}

/// VictorOps's (Splunk On-Call's) REST endpoint, where
/// `global.victorops_api_url` does not say.
pub const VICTOROPS_API_URL: &str =
    "https://alert.victorops.com/integrations/generic/20131114/alert/";

/// `victorops_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct VictorOpsConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub api_key: Option<Secret>,
    pub api_key_file: Option<String>,
    pub api_url: Option<String>,
    #[serde(default)]
    pub routing_key: String,
    /// CRITICAL unless set; INFO and WARNING are the others VictorOps
    /// takes for a firing group.
    pub message_type: Option<String>,
    pub state_message: Option<String>,
    pub entity_display_name: Option<String>,
    pub monitoring_tool: Option<String>,
    #[serde(default)]
    pub custom_fields: BTreeMap<String, String>,
}

impl VictorOpsConfig {
    /// Alertmanager's checks, with `global` filling the key.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(self.api_url.as_deref(), &format!("{p}.api_url"), err);
        if self.routing_key.is_empty() {
            err(p, "missing Routing key in VictorOps config".into());
        }
        check_secret_or_global(
            (&self.api_key, &self.api_key_file),
            (&g.victorops_api_key, &g.victorops_api_key_file),
            "api_key",
            "no global VictorOps API Key set",
            p,
            err,
        );
        for key in [
            "routing_key",
            "message_type",
            "state_message",
            "entity_display_name",
            "monitoring_tool",
            "entity_id",
            "entity_state",
        ] {
            if self.custom_fields.contains_key(key) {
                err(
                    &format!("{p}.custom_fields"),
                    format!(
                        "victorOps config contains custom field {key} which cannot be used as it conflicts with the fixed/static fields"
                    ),
                );
            }
        }
    }
}

/// `sns_configs[]`: Amazon SNS's Publish, signed with AWS Signature V4.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SnsConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    /// The SNS endpoint; `https://sns.<region>.amazonaws.com/` unless set.
    pub api_url: Option<String>,
    #[serde(default)]
    pub sigv4: Option<SigV4Config>,
    pub topic_arn: Option<String>,
    pub phone_number: Option<String>,
    pub target_arn: Option<String>,
    pub subject: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// `sigv4:` of an SNS integration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SigV4Config {
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    /// Read, and refused for delivery: argus signs with keys only.
    pub profile: Option<String>,
    /// Read, and refused for delivery: argus does not call STS.
    pub role_arn: Option<String>,
}

impl SnsConfig {
    /// Alertmanager's checks.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        let empty = |s: &Option<String>| s.as_deref().unwrap_or("").is_empty();
        // Alertmanager's own test, kept as it is written (it lets all
        // three through, not only one).
        if (empty(&self.target_arn) != empty(&self.topic_arn)) != empty(&self.phone_number) {
            err(
                p,
                "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config"
                    .into(),
            );
        }
        if let Some(s) = &self.sigv4 {
            let key = s.access_key.as_deref().unwrap_or("").is_empty();
            let secret = s.secret_key.as_ref().is_none_or(|k| k.is_empty());
            if key != secret {
                err(
                    &format!("{p}.sigv4"),
                    "must provide a AWS SigV4 Access key and Secret Key if credentials are specified in the SigV4 config".into(),
                );
            }
        }
        // `api_url` is not checked: Alertmanager hands it to the AWS SDK
        // as it is; a bad one fails the send.
    }

    /// What argus cannot deliver with: credentials from a profile or a
    /// role (argus signs with keys from the config or the environment).
    pub fn unsupported(&self) -> Option<&'static str> {
        let s = self.sigv4.as_ref()?;
        if s.profile.as_deref().is_some_and(|x| !x.is_empty()) {
            Some("sigv4.profile")
        } else if s.role_arn.as_deref().is_some_and(|x| !x.is_empty()) {
            Some("sigv4.role_arn")
        } else {
            None
        }
    }
}

/// Rocket.Chat's server, where `global.rocketchat_api_url` does not say.
pub const ROCKETCHAT_API_URL: &str = "https://open.rocket.chat/";

/// `rocketchat_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RocketChatConfig {
    /// Off unless set, as in Alertmanager.
    #[serde(default)]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub api_url: Option<String>,
    pub token_id: Option<Secret>,
    pub token_id_file: Option<String>,
    pub token: Option<Secret>,
    pub token_file: Option<String>,
    pub channel: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub fields: Vec<MattermostField>,
    #[serde(default)]
    pub short_fields: bool,
    pub emoji: Option<String>,
    pub icon_url: Option<String>,
    pub image_url: Option<String>,
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub link_names: bool,
    #[serde(default)]
    pub actions: Vec<RocketChatAction>,
}

/// `rocketchat_configs[].actions[]`: buttons (the only type Rocket.Chat's
/// attachments take from Alertmanager).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RocketChatAction {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub msg: String,
}

impl RocketChatConfig {
    /// Alertmanager's checks, with `global` filling the token and its id.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(self.api_url.as_deref(), &format!("{p}.api_url"), err);
        for (key, own, global, missing) in [
            (
                "token_id",
                (&self.token_id, &self.token_id_file),
                (&g.rocketchat_token_id, &g.rocketchat_token_id_file),
                "no global Rocketchat TokenID set either inline or in a file",
            ),
            (
                "token",
                (&self.token, &self.token_file),
                (&g.rocketchat_token, &g.rocketchat_token_file),
                "no global Rocketchat Token set either inline or in a file",
            ),
        ] {
            check_secret_or_global(own, global, key, missing, p, err);
        }
    }
}

/// WeChat Work's API, where `global.wechat_api_url` does not say.
pub const WECHAT_API_URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/";

/// `wechat_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct WeChatConfig {
    /// Off unless set, as in Alertmanager.
    #[serde(default)]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub api_secret: Option<Secret>,
    pub api_secret_file: Option<String>,
    pub corp_id: Option<String>,
    pub message: Option<String>,
    pub api_url: Option<String>,
    pub to_user: Option<String>,
    pub to_party: Option<String>,
    pub to_tag: Option<String>,
    pub agent_id: Option<String>,
    /// `text` (the default) or `markdown`.
    pub message_type: Option<String>,
}

impl WeChatConfig {
    /// Alertmanager's checks, with `global` filling the secret and the
    /// corporation.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(self.api_url.as_deref(), &format!("{p}.api_url"), err);
        let t = self.message_type.as_deref().unwrap_or("");
        if !matches!(t, "" | "text" | "markdown") {
            err(
                &format!("{p}.message_type"),
                format!("weChat message type {t:?} does not match valid options ^(text|markdown)$"),
            );
        }
        check_secret_or_global(
            (&self.api_secret, &self.api_secret_file),
            (&g.wechat_api_secret, &g.wechat_api_secret_file),
            "api_secret",
            "no global Wechat ApiSecret set",
            p,
            err,
        );
        let own = self.corp_id.as_deref().is_some_and(|c| !c.is_empty());
        let global = g
            .wechat_api_corp_id
            .as_deref()
            .is_some_and(|c| !c.is_empty());
        if !own && !global {
            err(p, "no global Wechat CorpID set".into());
        }
    }
}

/// Pushover's message API. Alertmanager has no setting for it;
/// `ARGUS_PUSHOVER_API_URL` in the environment names another (a proxy,
/// or a stand-in in tests).
pub const PUSHOVER_API_URL: &str = "https://api.pushover.net/1/messages.json";

/// `pushover_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PushoverConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub user_key: Option<Secret>,
    pub user_key_file: Option<String>,
    pub token: Option<Secret>,
    pub token_file: Option<String>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub url: Option<String>,
    pub url_title: Option<String>,
    pub device: Option<String>,
    pub sound: Option<String>,
    pub priority: Option<String>,
    /// How often an emergency message is repeated until acknowledged (1m).
    pub retry: Option<PromDuration>,
    /// How long it is repeated (1h).
    pub expire: Option<PromDuration>,
    /// How long the message lives on the device; unset or zero: forever.
    pub ttl: Option<PromDuration>,
    #[serde(default)]
    pub html: bool,
    #[serde(default)]
    pub monospace: bool,
}

impl PushoverConfig {
    /// Alertmanager's checks.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        for (key, inline, file) in [
            ("user_key", &self.user_key, &self.user_key_file),
            ("token", &self.token, &self.token_file),
        ] {
            let (s, f) = (set_s(inline), set_f(file));
            if !s && !f {
                err(p, format!("one of {key} or {key}_file must be configured"));
            }
            if s && f {
                err(
                    p,
                    format!("at most one of {key} & {key}_file must be configured"),
                );
            }
        }
        if self.html && self.monospace {
            err(
                p,
                "at most one of monospace & html must be configured".into(),
            );
        }
    }
}

/// A Jira field's template: a string, or (Alertmanager 0.29 on) an
/// object that can also keep the field from being rewritten when the
/// issue is updated.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum JiraField {
    #[default]
    Unset,
    Text(String),
    Object(JiraFieldObject),
}

/// The object form of [`JiraField`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct JiraFieldObject {
    pub template: Option<String>,
    /// False keeps the field as it is when an existing issue is updated.
    pub enable_update: Option<bool>,
}

impl JiraField {
    /// The template, or `default` when none is given.
    pub fn template<'a>(&'a self, default: &'a str) -> &'a str {
        match self {
            JiraField::Text(t) => t,
            JiraField::Object(JiraFieldObject {
                template: Some(t), ..
            }) => t,
            _ => default,
        }
    }

    /// Whether updates of an existing issue rewrite the field (true
    /// unless `enable_update: false`).
    pub fn updates(&self) -> bool {
        match self {
            JiraField::Object(o) => o.enable_update.unwrap_or(true),
            _ => true,
        }
    }
}

/// `jira_configs[]` (Alertmanager 0.28 on): one issue per alert group,
/// found again by a label holding the group's key hash.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct JiraConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    /// The REST API's base (`https://x.atlassian.net/rest/api/2`); a path
    /// ending in `/3` makes the description Atlassian Document Format.
    pub api_url: Option<String>,
    /// `auto` (when unset), `cloud` or `datacenter`: which search
    /// endpoint is used.
    pub api_type: Option<String>,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub summary: JiraField,
    #[serde(default)]
    pub description: JiraField,
    #[serde(default)]
    pub labels: Vec<String>,
    pub priority: Option<String>,
    #[serde(default)]
    pub issue_type: String,
    #[serde(default)]
    pub reopen_transition: String,
    #[serde(default)]
    pub resolve_transition: String,
    #[serde(default)]
    pub wont_fix_resolution: String,
    pub reopen_duration: Option<PromDuration>,
    /// Other issue fields (custom ones by id), templated at every level.
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl JiraConfig {
    /// Alertmanager's checks, with `global.jira_api_url` filling the URL.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        if self.project.is_empty() {
            err(p, "missing project in jira_config".into());
        }
        if self.issue_type.is_empty() {
            err(p, "missing issue_type in jira_config".into());
        }
        if !matches!(
            self.api_type.as_deref(),
            None | Some("auto" | "cloud" | "datacenter")
        ) {
            err(
                &format!("{p}.api_type"),
                "unknown api_type on jira_config, must be auto, cloud or datacenter".into(),
            );
        }
        check_opt_url(self.api_url.as_deref(), &format!("{p}.api_url"), err);
        if self.api_url.is_none() && g.jira_api_url.is_none() {
            err(p, "no global Jira Cloud URL set".into());
        }
    }
}

/// Telegram's Bot API, where `global.telegram_api_url` does not say.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";

/// `telegram_configs[]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct TelegramConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub api_url: Option<String>,
    pub bot_token: Option<Secret>,
    pub bot_token_file: Option<String>,
    #[serde(default)]
    pub chat_id: i64,
    pub chat_id_file: Option<String>,
    #[serde(default)]
    pub message_thread_id: i64,
    pub message: Option<String>,
    #[serde(default)]
    pub disable_notifications: bool,
    /// `HTML` unless set; `""` sends plain text.
    pub parse_mode: Option<String>,
}

impl TelegramConfig {
    /// Alertmanager's checks, with `global` filling the token and URL.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(self.api_url.as_deref(), &format!("{p}.api_url"), err);
        check_secret_or_global(
            (&self.bot_token, &self.bot_token_file),
            (&g.telegram_bot_token, &g.telegram_bot_token_file),
            "bot_token",
            "missing bot_token on telegram_config",
            p,
            err,
        );
        let chat_file = set_f(&self.chat_id_file);
        if self.chat_id == 0 && !chat_file {
            err(
                p,
                "missing chat_id or chat_id_file on telegram_config".into(),
            );
        }
        if self.chat_id != 0 && chat_file {
            err(
                p,
                "at most one of chat_id & chat_id_file must be configured".into(),
            );
        }
        if !matches!(
            self.parse_mode.as_deref(),
            None | Some("" | "Markdown" | "MarkdownV2" | "HTML")
        ) {
            err(
                &format!("{p}.parse_mode"),
                "unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML or empty string".into(),
            );
        }
    }
}

/// Alertmanager's check of a secret an integration has inline (`key`), in
/// a file (`key_file`) or from `global`: not both of its own, and one of
/// the three (`missing` otherwise).
fn check_secret_or_global(
    own: (&Option<Secret>, &Option<String>),
    global: (&Option<Secret>, &Option<String>),
    key: &str,
    missing: &str,
    p: &str,
    err: &mut dyn FnMut(&str, String),
) {
    let (s, f) = (set_s(own.0), set_f(own.1));
    if s && f {
        err(
            p,
            format!("at most one of {key} & {key}_file must be configured"),
        );
    }
    if !s && !f && !set_s(global.0) && !set_f(global.1) {
        err(p, missing.to_string());
    }
}

/// Alertmanager's check of an integration that posts to one URL given
/// inline (`key`) or in a file (`key_file`): exactly one of the two.
fn check_url_or_file(
    inline: &Option<Secret>,
    file: &Option<String>,
    key: &str,
    p: &str,
    err: &mut dyn FnMut(&str, String),
) {
    check_opt_url(
        inline.as_ref().map(|s| s.expose()),
        &format!("{p}.{key}"),
        err,
    );
    let (u, f) = (set_s(inline), set_f(file));
    if !u && !f {
        err(p, format!("one of {key} or {key}_file must be configured"));
    }
    if u && f {
        err(
            p,
            format!("at most one of {key} & {key}_file must be configured"),
        );
    }
}

impl DiscordConfig {
    /// Alertmanager's checks.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_url_or_file(
            &self.webhook_url,
            &self.webhook_url_file,
            "webhook_url",
            p,
            err,
        );
    }
}

impl MsTeamsConfig {
    /// Alertmanager's checks.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_url_or_file(
            &self.webhook_url,
            &self.webhook_url_file,
            "webhook_url",
            p,
            err,
        );
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` → `Content-Type`.
fn canonical_header(h: &str) -> String {
    h.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

impl SlackConfig {
    /// Alertmanager's checks, with `global` filling what is left out.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(
            self.api_url.as_ref().map(|s| s.expose()),
            &format!("{p}.api_url"),
            err,
        );
        check_opt_url(self.app_url.as_deref(), &format!("{p}.app_url"), err);
        let url = set(&self.api_url) || set_f(&self.api_url_file);
        let token = set_s(&self.app_token) || set_f(&self.app_token_file);
        if set(&self.api_url) && set_f(&self.api_url_file) {
            err(
                p,
                "at most one of api_url & api_url_file must be configured".into(),
            );
        }
        if set_s(&self.app_token) && set_f(&self.app_token_file) {
            err(
                p,
                "at most one of app_token & app_token_file must be configured".into(),
            );
        }
        if url && token {
            err(
                p,
                "at most one of api_url/api_url_file & app_token/app_token_file must be configured"
                    .into(),
            );
        }
        if self.update_message && self.api_url.as_ref().map(|u| u.expose()) != Some(SLACK_APP_URL) {
            err(
                &format!("{p}.update_message"),
                format!(
                    "update_message can only be used with bot tokens. api_url must be set to {SLACK_APP_URL}"
                ),
            );
        }
        let local_auth = self
            .http_config
            .as_ref()
            .is_some_and(|h| h.authorization.is_some());
        let g_token = !local_auth
            && !set(&self.api_url)
            && (set_s(&g.slack_app_token) || set_f(&g.slack_app_token_file));
        let g_url = set(&g.slack_api_url) || set_f(&g.slack_api_url_file);
        let eff_token = token || g_token;
        let eff_url = url || g_url;
        if !eff_url && !eff_token {
            err(
                p,
                "no Slack API URL nor App token set either inline or in a file".into(),
            );
        }
        if eff_token && local_auth {
            err(
                p,
                "http authorization can't be set when using Slack App tokens".into(),
            );
        }
    }
}

impl PagerdutyConfig {
    /// Alertmanager's checks.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(self.url.as_deref(), &format!("{p}.url"), err);
        let rk = set_s(&self.routing_key);
        let sk = set_s(&self.service_key);
        if !rk && !sk && !set_f(&self.routing_key_file) && !set_f(&self.service_key_file) {
            err(
                p,
                "missing service or routing key in PagerDuty config".into(),
            );
        }
        if rk && set_f(&self.routing_key_file) {
            err(
                p,
                "at most one of routing_key & routing_key_file must be configured".into(),
            );
        }
        if sk && set_f(&self.service_key_file) {
            err(
                p,
                "at most one of service_key & service_key_file must be configured".into(),
            );
        }
    }
}

impl EmailConfig {
    /// Alertmanager's checks, with `global` filling what is left out.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        if self.to.is_empty() {
            err(p, "missing to address in email config".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for h in self.headers.keys() {
            let c = canonical_header(h);
            if !seen.insert(c.clone()) {
                err(
                    &format!("{p}.headers"),
                    format!("duplicate header {c:?} in email config"),
                );
            }
        }
        if let Some(t) = &self.threading {
            if t.enabled {
                for h in ["References", "In-Reply-To"] {
                    if seen.contains(h) {
                        err(
                            &format!("{p}.threading"),
                            format!(
                                "conflicting configuration: threading.enabled conflicts with custom {h} header"
                            ),
                        );
                    }
                }
                let by = t.thread_by_date.as_deref().unwrap_or("");
                if by != "none" && by != "daily" {
                    err(
                        &format!("{p}.threading"),
                        "threading.thread_by_date must be either 'none' or 'daily'".into(),
                    );
                }
            }
        }
        if self
            .smarthost
            .as_deref()
            .or(g.smtp_smarthost.as_deref())
            .unwrap_or("")
            .is_empty()
        {
            err(p, "no global SMTP smarthost set".into());
        }
        if self
            .from
            .as_deref()
            .or(g.smtp_from.as_deref())
            .unwrap_or("")
            .is_empty()
        {
            err(p, "no global SMTP from set".into());
        }
        if set_s(&self.auth_password) && set_f(&self.auth_password_file) {
            err(
                p,
                "at most one of auth_password & auth_password_file must be configured".into(),
            );
        }
        if set_s(&self.auth_secret) && set_f(&self.auth_secret_file) {
            err(
                p,
                "at most one of auth_secret & auth_secret_file must be configured".into(),
            );
        }
    }
}

impl WebhookConfig {
    /// Alertmanager's checks.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_url_or_file(&self.url, &self.url_file, "url", p, err);
    }
}

/// `mattermost_configs[].fields[]` (and an attachment's): title and
/// value required.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MattermostField {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    pub short: Option<bool>,
}

/// `mattermost_configs[].attachments[]`: Slack-style message blocks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MattermostAttachment {
    #[serde(default)]
    pub fallback: String,
    #[serde(default)]
    pub color: String,
    #[serde(default)]
    pub pretext: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub author_name: String,
    #[serde(default)]
    pub author_link: String,
    #[serde(default)]
    pub author_icon: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub title_link: String,
    #[serde(default)]
    pub fields: Vec<MattermostField>,
    #[serde(default)]
    pub thumb_url: String,
    #[serde(default)]
    pub footer: String,
    #[serde(default)]
    pub footer_icon: String,
    #[serde(default)]
    pub image_url: String,
}

/// `mattermost_configs[].props`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MattermostProps {
    #[serde(default)]
    pub card: String,
}

/// `mattermost_configs[].priority`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MattermostPriority {
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub requested_ack: bool,
    #[serde(default)]
    pub persistent_notifications: bool,
}

/// `mattermost_configs[]`: an incoming webhook.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct MattermostConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<String>,
    #[serde(default)]
    pub channel: String,
    pub username: Option<String>,
    pub text: Option<String>,
    pub fallback: Option<String>,
    pub color: Option<String>,
    #[serde(default)]
    pub pretext: String,
    #[serde(default)]
    pub author_name: String,
    #[serde(default)]
    pub author_link: String,
    #[serde(default)]
    pub author_icon: String,
    pub title: Option<String>,
    pub title_link: Option<String>,
    #[serde(default)]
    pub fields: Vec<MattermostField>,
    #[serde(default)]
    pub thumb_url: String,
    #[serde(default)]
    pub footer: String,
    #[serde(default)]
    pub footer_icon: String,
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub icon_url: String,
    #[serde(default)]
    pub icon_emoji: String,
    #[serde(default)]
    pub attachments: Vec<MattermostAttachment>,
    #[serde(default, rename = "type")]
    pub kind: String,
    pub props: Option<MattermostProps>,
    pub priority: Option<MattermostPriority>,
}

impl MattermostConfig {
    /// Alertmanager's checks, with `global` filling the webhook URL.
    pub fn check(&self, g: &GlobalConfig, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_opt_url(
            self.webhook_url.as_ref().map(|s| s.expose()),
            &format!("{p}.webhook_url"),
            err,
        );
        let (u, f) = (set(&self.webhook_url), set_f(&self.webhook_url_file));
        if u && f {
            err(
                p,
                "at most one of webhook_url & webhook_url_file must be configured".into(),
            );
        }
        if !u && !f && !set(&g.mattermost_webhook_url) && !set_f(&g.mattermost_webhook_url_file) {
            err(
                p,
                "missing webhook_url or webhook_url_file on mattermost_config".into(),
            );
        }
        let fields = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("{p}.fields[{i}]"), f))
            .chain(self.attachments.iter().enumerate().flat_map(|(a, att)| {
                att.fields
                    .iter()
                    .enumerate()
                    .map(move |(i, f)| (format!("{p}.attachments[{a}].fields[{i}]"), f))
            }));
        for (fp, f) in fields {
            if f.title.is_empty() {
                err(
                    &fp,
                    "missing title in Mattermost field configuration".into(),
                );
            }
            if f.value.is_empty() {
                err(
                    &fp,
                    "missing value in Mattermost field configuration".into(),
                );
            }
        }
    }
}

/// `incidentio_configs[]`: an incident.io HTTP alert source.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct IncidentioConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    pub http_config: Option<HttpConfig>,
    pub url: Option<Secret>,
    pub url_file: Option<String>,
    pub alert_source_token: Option<Secret>,
    pub alert_source_token_file: Option<String>,
    #[serde(default)]
    pub max_alerts: u64,
    pub timeout: Option<PromDuration>,
}

impl IncidentioConfig {
    /// Alertmanager's checks: a URL, and a token or the client's
    /// `authorization`, not both.
    pub fn check(&self, p: &str, err: &mut dyn FnMut(&str, String)) {
        check_url_or_file(&self.url, &self.url_file, "url", p, err);
        let (t, f) = (
            set_s(&self.alert_source_token),
            set_f(&self.alert_source_token_file),
        );
        if t && f {
            err(
                p,
                "at most one of alert_source_token & alert_source_token_file must be configured"
                    .into(),
            );
        }
        let authz = self
            .http_config
            .as_ref()
            .is_some_and(|h| h.authorization.is_some());
        if authz && (t || f) {
            err(
                p,
                "cannot specify alert_source_token or alert_source_token_file when using http_config.authorization".into(),
            );
        }
        if !authz && !t && !f {
            err(
                p,
                "at least one of alert_source_token, alert_source_token_file or http_config.authorization must be configured".into(),
            );
        }
    }
}
