//! What each integration sends and how its answer is read: Slack (incoming
//! webhook or bot token with `chat.postMessage`), PagerDuty (Events API v2
//! and the v1 `service_key` API), webhooks (Alertmanager's version 4
//! payload) and email (SMTP via lettre). Messages are rendered from the
//! notification's data when they are sent, so no secret is ever written
//! to the outbox; errors name the integration and never a secret.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sha2::Digest;

use super::integrations::{
    DiscordConfig, EmailConfig, GlobalConfig, HttpConfig, IncidentioConfig, JiraConfig,
    MattermostConfig, MattermostField, MsTeamsConfig, MsTeamsV2Config, OPSGENIE_API_URL,
    OpsGenieConfig, PAGERDUTY_URL, PUSHOVER_API_URL, PagerdutyConfig, PushoverConfig,
    ROCKETCHAT_API_URL, RocketChatConfig, SLACK_APP_URL, SlackConfig, SnsConfig, TELEGRAM_API_URL,
    TelegramConfig, VICTOROPS_API_URL, VictorOpsConfig, WEBEX_API_URL, WECHAT_API_URL,
    WeChatConfig, WebexConfig, WebhookConfig,
};
use super::outbox::Outcome;
use super::tmpl::{NotificationData, Templates};
use super::webhook::{versioned_body, webhook_body};
use crate::config::{Secret, read_secret_file};
use crate::model::go_json_escape;
use crate::net::{build_client, error_chain};
use crate::template::Value;

/// Default per-request timeout of an integration.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Alertmanager's PagerDuty v1 endpoint.
pub const PAGERDUTY_V1_URL: &str =
    "https://events.pagerduty.com/generic/2010-04-15/create_event.json";
const SLACK_TITLE_MAX_RUNES: usize = 1024;
const PAGERDUTY_SUMMARY_MAX_RUNES: usize = 1024;
const PAGERDUTY_MAX_EVENT_BYTES: usize = 512_000;

/// Everything a message is rendered with besides the integration's own
/// settings.
pub struct RenderCtx<'a> {
    /// `global:` of the routing file.
    pub global: &'a GlobalConfig,
    /// Directory of the routing file: relative `*_file` paths start here.
    pub base_dir: &'a Path,
    /// The template set.
    pub templates: &'a Templates,
    /// The notification's data.
    pub data: &'a NotificationData,
    /// The same, as templates see it.
    pub value: Value,
    /// The route's labels.
    pub route_labels: &'a BTreeMap<String, String>,
    /// Now (ms).
    pub now: i64,
    /// Rendering for display (`argus template render`): a secret file
    /// that cannot be read stands in as `<secret>` instead of failing,
    /// and a template that fails is an error rather than text in place.
    pub render_only: bool,
    /// Templates that failed while rendering for delivery: each stands in
    /// its field as `[template error: …]`, and the caller counts them.
    pub template_errors: std::cell::RefCell<Vec<String>>,
    /// What the integration kept about this group at its last
    /// notification (the notification log's store).
    pub log_store: Note,
}

impl RenderCtx<'_> {
    fn text(&self, t: &str) -> Result<String, String> {
        self.rendered(
            self.templates
                .render(t, &self.value, false, self.now, self.route_labels),
        )
    }

    fn html(&self, t: &str) -> Result<String, String> {
        self.rendered(
            self.templates
                .render(t, &self.value, true, self.now, self.route_labels),
        )
    }

    /// A page with a broken field beats no page: when delivering, a
    /// failed template is replaced by its error (as vmalert does) and
    /// recorded, so the notification still goes out.
    fn rendered<E: std::fmt::Display>(&self, r: Result<String, E>) -> Result<String, String> {
        match r {
            Ok(s) => Ok(s),
            Err(e) if self.render_only => Err(e.to_string()),
            Err(e) => {
                let msg = e.to_string();
                let text = format!("[template error: {msg}]");
                self.template_errors.borrow_mut().push(msg);
                Ok(text)
            }
        }
    }

    fn opt(&self, t: &Option<String>, default: &str) -> Result<String, String> {
        self.text(t.as_deref().unwrap_or(default))
    }

    fn path(&self, f: &str) -> String {
        let p = Path::new(f);
        if p.is_absolute() {
            f.to_string()
        } else {
            self.base_dir.join(p).display().to_string()
        }
    }

    /// An integration's client settings (its own or `global`'s), with
    /// relative file paths made relative to the routing file.
    fn http(&self, own: &Option<HttpConfig>) -> Option<HttpConfig> {
        let mut h = own.clone().or_else(|| self.global.http_config.clone())?;
        let fix = |f: &mut Option<String>| {
            if let Some(p) = f.as_mut() {
                *p = self.path(p);
            }
        };
        fix(&mut h.bearer_token_file);
        if let Some(b) = h.basic_auth.as_mut() {
            fix(&mut b.password_file);
        }
        if let Some(a) = h.authorization.as_mut() {
            fix(&mut a.credentials_file);
        }
        h.tls_config = h.tls_config.as_ref().map(|t| self.tls(t));
        Some(h)
    }

    fn tls(&self, t: &crate::config::TlsConfig) -> crate::config::TlsConfig {
        let fix = |f: &Option<String>| f.as_ref().map(|p| self.path(p));
        crate::config::TlsConfig {
            ca_file: fix(&t.ca_file),
            cert_file: fix(&t.cert_file),
            key_file: fix(&t.key_file),
            ..t.clone()
        }
    }

    /// The integration's own secret (inline or file), else `global`'s;
    /// `missing` when neither is set.
    fn secret_or_global(
        &self,
        own: (&Option<Secret>, &Option<String>),
        global: (&Option<Secret>, &Option<String>),
        missing: &str,
    ) -> Result<Secret, String> {
        match self.secret(own.0, own.1)? {
            Some(s) => Ok(s),
            None => self
                .secret(global.0, global.1)?
                .ok_or_else(|| missing.to_string()),
        }
    }

    /// An inline secret or the trimmed content of its file.
    fn secret(
        &self,
        inline: &Option<Secret>,
        file: &Option<String>,
    ) -> Result<Option<Secret>, String> {
        match (inline, file) {
            (Some(s), _) if !s.is_empty() => Ok(Some(s.clone())),
            (_, Some(f)) if !f.is_empty() => match read_secret_file(&self.path(f)) {
                Ok(s) => Ok(Some(s)),
                Err(_) if self.render_only => Ok(Some(Secret::new("<secret>"))),
                Err(e) => Err(e),
            },
            _ => Ok(None),
        }
    }
}

/// A request ready to go.
pub enum Prepared {
    /// An HTTP request.
    Http(Box<HttpRequest>),
    /// HTTP requests made in order, delivered once all are: a failure
    /// retries the notification from the first (as Alertmanager does; the
    /// services that need several calls take them as idempotent updates).
    HttpSeq(Vec<HttpRequest>),
    /// WeChat Work: an access token fetched with the corporation's secret
    /// (and kept for two hours), then the message posted with it.
    WeChat(Box<WeChatRequest>),
    /// A request signed with AWS Signature V4 when it is sent (each try
    /// is signed at its own time): Amazon SNS.
    Signed(Box<HttpRequest>, SigV4),
    /// An email.
    Email(Box<EmailRequest>),
    /// Jira: the group's issue searched for, then created or updated, then
    /// moved through a transition when its alerts resolved or fired again.
    Jira(Box<JiraRequest>),
}

/// The calls of a Jira notification, as Alertmanager makes them.
pub struct JiraRequest {
    /// The search for the group's issue (by its `ALERT{hash}` label).
    pub search: HttpRequest,
    /// `api_url`, without a trailing `/`.
    pub base: String,
    /// The issue's fields for a new issue.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Whether an update rewrites the summary and the description.
    pub update_summary: bool,
    /// See `update_summary`.
    pub update_description: bool,
    /// Some alert of the group fires.
    pub firing: bool,
    /// The transition that reopens a done issue when alerts fire again.
    pub reopen_transition: String,
    /// The transition that resolves an open issue when all alerts did.
    pub resolve_transition: String,
}

/// The two calls of a WeChat notification.
pub struct WeChatRequest {
    /// `gettoken` with the corporation id and secret (a secret itself).
    pub token_url: Secret,
    /// `message/send`, without its `access_token` parameter yet.
    pub send: HttpRequest,
}

/// An HTTP method an integration uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// POST (nearly all).
    Post,
    /// PUT (OpsGenie's updates).
    Put,
    /// GET (WeChat's token), with no body.
    Get,
}

/// The content type of nearly every integration's body.
const JSON: &str = "application/json";

/// An HTTP request of an integration.
#[derive(Clone)]
pub struct HttpRequest {
    /// POST or PUT.
    pub method: Method,
    /// The body's content type.
    pub content_type: &'static str,
    /// Target (may hold a secret: never logged).
    pub url: Secret,
    /// Headers besides Content-Type (values may hold secrets).
    pub headers: Vec<(String, Secret)>,
    /// JSON body.
    pub body: Vec<u8>,
    /// Request timeout.
    pub timeout: Duration,
    /// Client settings.
    pub http: Option<HttpConfig>,
    /// Status codes besides 5xx worth retrying.
    pub retry_codes: &'static [u16],
    /// How a 2xx answer's body is judged.
    pub check: BodyCheck,
}

/// How an integration's successful status is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyCheck {
    /// Any 2xx is delivered.
    None,
    /// Slack: `ok` as text, or JSON with `"ok": true`.
    Slack,
    /// Telegram's Bot API: JSON with `"ok": true`; a 429 says how long to
    /// wait in `parameters.retry_after`.
    Telegram,
    /// WeChat: JSON with `errcode` 0; 42001 (the token expired) is tried
    /// again.
    WeChat,
    /// Rocket.Chat: JSON with `"success": true` (its errors come with a
    /// 200 too); an answer that is not JSON is tried again.
    RocketChat,
    /// An AWS query API: an error whose code is `Throttling` is tried
    /// again, though its status is 400.
    Aws,
}

/// An email of an integration.
pub struct EmailRequest {
    /// `host:port`.
    pub smarthost: String,
    /// `HELO` name.
    pub hello: String,
    /// Envelope and header sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Username and password, when the server wants them.
    pub auth: Option<(String, Secret)>,
    /// Insist on TLS (STARTTLS when not implicit).
    pub require_tls: bool,
    /// TLS from the first byte (port 465 or `force_implicit_tls`).
    pub implicit_tls: bool,
    /// TLS settings.
    pub tls: Option<crate::config::TlsConfig>,
    /// The message.
    pub message: lettre::Message,
}

/// `scheme://host` of a URL, the rest hidden (Slack webhook URLs carry
/// their secret in the path).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() {
                "/<redacted>"
            } else {
                ""
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => "<url>".into(),
    }
}

/// A JSON body with PagerDuty's keys hidden, pretty-printed.
pub fn redact_body(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut v) => {
            if let Some(m) = v.as_object_mut() {
                for k in ["routing_key", "service_key"] {
                    if let Some(x) = m.get_mut(k) {
                        *x = serde_json::Value::String("<secret>".into());
                    }
                }
            }
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = match self.method {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Get => "GET",
        };
        write!(
            f,
            "{m} {}\n{}",
            redact_url(self.url.expose()),
            redact_body(&self.body)
        )
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prepared::Http(h) => h.fmt(f),
            Prepared::HttpSeq(all) => {
                for (i, h) in all.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    h.fmt(f)?;
                }
                Ok(())
            }
            Prepared::WeChat(w) => {
                writeln!(f, "GET {}", redact_url(w.token_url.expose()))?;
                w.send.fmt(f)
            }
            Prepared::Signed(h, s) => {
                writeln!(f, "(signed for {} in {})", s.service, s.region)?;
                h.fmt(f)
            }
            Prepared::Jira(j) => {
                writeln!(f, "{:?}", j.search)?;
                write!(
                    f,
                    "then a new issue or an update at {}/issue:\n{}",
                    redact_url(&j.base),
                    serde_json::to_string_pretty(&serde_json::json!({ "fields": j.fields }))
                        .unwrap_or_default()
                )
            }
            Prepared::Email(e) => write!(
                f,
                "email via {} from {} to {}:\n{}",
                e.smarthost,
                e.from,
                e.to.join(", "),
                String::from_utf8_lossy(&e.message.formatted())
            ),
        }
    }
}

fn truncate_runes(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s,
        Some(_) => {
            let mut t: String = s.chars().take(max - 1).collect();
            t.push('…');
            t
        }
    }
}

/// Go's `json.Encoder` output: Go's escaping and a trailing newline.
fn go_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = go_json_escape(serde_json::to_vec(v).unwrap_or_default());
    b.push(b'\n');
    b
}

fn timeout(t: &Option<crate::config::PromDuration>) -> Duration {
    t.as_ref()
        .map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(SEND_TIMEOUT)
}

/// The SHA-256 of a group key, hex: Alertmanager's PagerDuty dedup key,
/// so one group is one incident (the same incident Alertmanager would
/// open for it).
pub fn group_key_hash(key: &str) -> String {
    let d = sha2::Sha256::digest(key.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

#[derive(Serialize)]
struct SlackAttachment {
    #[serde(skip_serializing_if = "is_empty")]
    title: String,
    #[serde(skip_serializing_if = "is_empty")]
    title_link: String,
    #[serde(skip_serializing_if = "is_empty")]
    pretext: String,
    #[serde(skip_serializing_if = "is_empty")]
    text: String,
    #[serde(skip_serializing_if = "is_empty")]
    fallback: String,
    #[serde(skip_serializing_if = "is_empty")]
    callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "is_empty")]
    image_url: String,
    #[serde(skip_serializing_if = "is_empty")]
    thumb_url: String,
    #[serde(skip_serializing_if = "is_empty")]
    footer: String,
    #[serde(skip_serializing_if = "is_empty")]
    color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mrkdwn_in: Vec<String>,
}

#[derive(Serialize)]
struct SlackRequest {
    #[serde(skip_serializing_if = "is_empty")]
    channel: String,
    /// The message `chat.update` edits.
    #[serde(skip_serializing_if = "is_empty")]
    ts: String,
    #[serde(skip_serializing_if = "is_empty")]
    username: String,
    #[serde(skip_serializing_if = "is_empty")]
    icon_emoji: String,
    #[serde(skip_serializing_if = "is_empty")]
    icon_url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    link_names: bool,
    #[serde(skip_serializing_if = "is_empty")]
    text: String,
    attachments: Vec<SlackAttachment>,
}

/// The Slack message of `c`.
pub fn slack(c: &SlackConfig, x: &RenderCtx) -> Result<Prepared, String> {
    let g = x.global;
    let fields = c
        .fields
        .iter()
        .map(|f| {
            Ok(serde_json::json!({
                "title": x.text(&f.title)?,
                "value": x.text(&f.value)?,
                "short": f.short.unwrap_or(c.short_fields),
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let actions = c
        .actions
        .iter()
        .map(|a| {
            let mut m = serde_json::Map::new();
            let mut put = |k: &str, v: String| {
                if !v.is_empty() {
                    m.insert(k.into(), serde_json::Value::String(v));
                }
            };
            put("type", x.text(&a.kind)?);
            put("text", x.text(&a.text)?);
            put("url", x.opt(&a.url, "")?);
            put("style", x.opt(&a.style, "")?);
            put("name", x.opt(&a.name, "")?);
            put("value", x.opt(&a.value, "")?);
            if let Some(cf) = &a.confirm {
                m.insert(
                    "confirm".into(),
                    serde_json::json!({
                        "title": x.opt(&cf.title, "")?,
                        "text": x.text(&cf.text)?,
                        "ok_text": x.opt(&cf.ok_text, "")?,
                        "dismiss_text": x.opt(&cf.dismiss_text, "")?,
                    }),
                );
            }
            Ok(serde_json::Value::Object(m))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let att = SlackAttachment {
        title: truncate_runes(
            x.opt(&c.title, r#"{{ template "slack.default.title" . }}"#)?,
            SLACK_TITLE_MAX_RUNES,
        ),
        title_link: x.opt(
            &c.title_link,
            r#"{{ template "slack.default.titlelink" . }}"#,
        )?,
        pretext: x.opt(&c.pretext, r#"{{ template "slack.default.pretext" . }}"#)?,
        text: x.opt(&c.text, r#"{{ template "slack.default.text" . }}"#)?,
        fallback: x.opt(&c.fallback, r#"{{ template "slack.default.fallback" . }}"#)?,
        callback_id: x.opt(
            &c.callback_id,
            r#"{{ template "slack.default.callbackid" . }}"#,
        )?,
        fields,
        actions,
        image_url: x.opt(&c.image_url, "")?,
        thumb_url: x.opt(&c.thumb_url, "")?,
        footer: x.opt(&c.footer, r#"{{ template "slack.default.footer" . }}"#)?,
        color: x.opt(
            &c.color,
            r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#,
        )?,
        mrkdwn_in: if c.mrkdwn_in.is_empty() {
            vec!["fallback".into(), "pretext".into(), "text".into()]
        } else {
            c.mrkdwn_in.clone()
        },
    };
    let mut req = SlackRequest {
        channel: x.opt(&c.channel, "")?,
        ts: String::new(),
        username: x.opt(&c.username, r#"{{ template "slack.default.username" . }}"#)?,
        icon_emoji: x.opt(
            &c.icon_emoji,
            r#"{{ template "slack.default.iconemoji" . }}"#,
        )?,
        icon_url: x.opt(&c.icon_url, r#"{{ template "slack.default.iconurl" . }}"#)?,
        link_names: c.link_names,
        text: x.opt(&c.message_text, "")?,
        attachments: vec![att],
    };
    // Bot-token mode posts to the App URL with the token as a bearer.
    let local_auth = c
        .http_config
        .as_ref()
        .is_some_and(|h| h.authorization.is_some());
    let url = x.secret(&c.api_url, &c.api_url_file)?.or(
        if c.app_token.is_none() && c.app_token_file.is_none() && !local_auth {
            x.secret(&g.slack_api_url, &g.slack_api_url_file)?
        } else {
            None
        },
    );
    let token = match x.secret(&c.app_token, &c.app_token_file)? {
        Some(t) => Some(t),
        None if url.is_none() && !local_auth => {
            x.secret(&g.slack_app_token, &g.slack_app_token_file)?
        }
        None => None,
    };
    let mut headers = Vec::new();
    let url = match (url, token) {
        (Some(u), _) => u,
        (None, Some(t)) => {
            headers.push((
                "Authorization".to_string(),
                Secret::new(format!("Bearer {}", t.expose())),
            ));
            Secret::new(
                c.app_url
                    .clone()
                    .or_else(|| g.slack_app_url.clone())
                    .unwrap_or_else(|| SLACK_APP_URL.to_string()),
            )
        }
        (None, None) => return Err("no Slack API URL nor App token".into()),
    };
    // With `update_message`, the group's later notifications edit the
    // message its first one posted (its timestamp and channel kept in the
    // notification log), through `chat.update` beside the configured
    // `chat.postMessage` (Alertmanager names Slack's own; the
    // configured URL's sibling also reaches a proxy or a stand-in).
    // Slack's own API can be named elsewhere (a proxy, or a stand-in in
    // tests): `update_message` requires `api_url` to be Slack's.
    let mut url = match std::env::var("ARGUS_SLACK_API_URL") {
        Ok(base) if url.expose() == SLACK_APP_URL => {
            Secret::new(format!("{}/chat.postMessage", base.trim_end_matches('/')))
        }
        _ => url,
    };
    if c.update_message {
        if let (Some(ts), Some(ch)) = (x.log_store.get("threadTs"), x.log_store.get("channelId")) {
            if !ts.is_empty() && !ch.is_empty() {
                req.ts = ts.clone();
                req.channel = ch.clone();
                let post = url.expose();
                let update = match post.strip_suffix("chat.postMessage") {
                    Some(base) => format!("{base}chat.update"),
                    None => SLACK_UPDATE_URL.to_string(),
                };
                url = Secret::new(update);
            }
        }
    }
    Ok(Prepared::Http(Box::new(HttpRequest {
        method: Method::Post,
        content_type: JSON,
        url,
        headers,
        body: go_json(&req),
        timeout: timeout(&c.timeout),
        http: x.http(&c.http_config),
        retry_codes: &[429],
        check: BodyCheck::Slack,
    })))
}

/// Renders string leaves of a details value as templates.
fn render_details(v: &serde_json::Value, x: &RenderCtx) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::String(s) => J::String(x.text(s)?),
        J::Array(a) => J::Array(
            a.iter()
                .map(|v| render_details(v, x))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(m) => J::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), render_details(v, x)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[derive(Serialize)]
struct PdPayload {
    summary: String,
    source: String,
    severity: String,
    #[serde(skip_serializing_if = "is_empty")]
    class: String,
    #[serde(skip_serializing_if = "is_empty")]
    component: String,
    #[serde(skip_serializing_if = "is_empty")]
    group: String,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    custom_details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct PdMessage {
    #[serde(skip_serializing_if = "is_empty")]
    routing_key: String,
    #[serde(skip_serializing_if = "is_empty")]
    service_key: String,
    #[serde(skip_serializing_if = "is_empty")]
    dedup_key: String,
    #[serde(skip_serializing_if = "is_empty")]
    incident_key: String,
    #[serde(skip_serializing_if = "is_empty")]
    event_type: String,
    #[serde(skip_serializing_if = "is_empty")]
    description: String,
    event_action: String,
    payload: Option<PdPayload>,
    #[serde(skip_serializing_if = "is_empty")]
    client: String,
    #[serde(skip_serializing_if = "is_empty")]
    client_url: String,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    details: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<serde_json::Value>,
}

/// The PagerDuty event of `c`: `trigger` while any alert of the group
/// fires, `resolve` after; the dedup key is derived from the group key.
pub fn pagerduty(c: &PagerdutyConfig, x: &RenderCtx) -> Result<Prepared, String> {
    let event = if x.data.status == "firing" {
        "trigger"
    } else {
        "resolve"
    };
    let mut details: BTreeMap<String, serde_json::Value> = [
        (
            "firing",
            r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
        ),
        (
            "resolved",
            r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
        ),
        ("num_firing", "{{ .Alerts.Firing | len }}"),
        ("num_resolved", "{{ .Alerts.Resolved | len }}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
    .collect();
    details.extend(c.details.iter().map(|(k, v)| (k.clone(), v.clone())));
    let details: serde_json::Map<String, serde_json::Value> = details
        .iter()
        .map(|(k, v)| Ok((k.clone(), render_details(v, x)?)))
        .collect::<Result<_, String>>()?;
    let client = x.opt(&c.client, r#"{{ template "pagerduty.default.client" . }}"#)?;
    let client_url = x.opt(
        &c.client_url,
        r#"{{ template "pagerduty.default.clientURL" . }}"#,
    )?;
    let description = truncate_runes(
        x.opt(
            &c.description,
            r#"{{ template "pagerduty.default.description" .}}"#,
        )?,
        PAGERDUTY_SUMMARY_MAX_RUNES,
    );
    let key = group_key_hash(&x.data.group_key);
    let v1 = x.secret(&c.service_key, &c.service_key_file)?;
    let mut msg = if let Some(sk) = &v1 {
        let trigger = event == "trigger";
        PdMessage {
            routing_key: String::new(),
            service_key: x.text(sk.expose())?,
            dedup_key: String::new(),
            incident_key: key,
            event_type: event.into(),
            description,
            event_action: String::new(),
            payload: None,
            client: if trigger { client } else { String::new() },
            client_url: if trigger { client_url } else { String::new() },
            details,
            images: Vec::new(),
            links: Vec::new(),
        }
    } else {
        let rk = x
            .secret(&c.routing_key, &c.routing_key_file)?
            .ok_or("missing PagerDuty routing key")?;
        let source = match &c.source {
            Some(s) if !s.is_empty() => x.text(s)?,
            _ => client.clone(),
        };
        let images = c
            .images
            .iter()
            .map(|i| {
                Ok(serde_json::json!({
                    "src": x.opt(&i.src, "")?,
                    "alt": x.opt(&i.alt, "")?,
                    "href": x.opt(&i.href, "")?,
                }))
            })
            .collect::<Result<Vec<_>, String>>()?
            .into_iter()
            .filter(|i| i["src"] != "")
            .collect();
        let links = c
            .links
            .iter()
            .map(|l| {
                Ok(serde_json::json!({
                    "href": x.opt(&l.href, "")?,
                    "text": x.opt(&l.text, "")?,
                }))
            })
            .collect::<Result<Vec<_>, String>>()?
            .into_iter()
            .filter(|l| l["href"] != "")
            .collect();
        PdMessage {
            routing_key: x.text(rk.expose())?,
            service_key: String::new(),
            dedup_key: key,
            incident_key: String::new(),
            event_type: String::new(),
            description: String::new(),
            event_action: event.into(),
            payload: Some(PdPayload {
                summary: description,
                source,
                severity: x.opt(&c.severity, "error")?,
                class: x.opt(&c.class, "")?,
                component: x.opt(&c.component, "")?,
                group: x.opt(&c.group, "")?,
                custom_details: details,
            }),
            client,
            client_url,
            details: serde_json::Map::new(),
            images,
            links,
        }
    };
    let mut body = go_json(&msg);
    if body.len() > PAGERDUTY_MAX_EVENT_BYTES {
        let note = serde_json::Map::from_iter([(
            "error".to_string(),
            serde_json::Value::String(format!(
                "Custom details have been removed because the original event exceeds the maximum size of {PAGERDUTY_MAX_EVENT_BYTES} bytes"
            )),
        )]);
        match &mut msg.payload {
            Some(p) => p.custom_details = note,
            None => msg.details = note,
        }
        body = go_json(&msg);
    }
    let url = match (&c.url, &x.global.pagerduty_url, &v1) {
        (Some(u), _, _) => u.clone(),
        (None, _, Some(_)) => PAGERDUTY_V1_URL.to_string(),
        (None, Some(g), None) => g.clone(),
        (None, None, None) => PAGERDUTY_URL.to_string(),
    };
    Ok(Prepared::Http(Box::new(HttpRequest {
        method: Method::Post,
        content_type: JSON,
        url: Secret::new(url),
        headers: Vec::new(),
        body,
        timeout: timeout(&c.timeout),
        http: c
            .http_config
            .clone()
            .or_else(|| x.global.http_config.clone()),
        // PagerDuty v1 rate-limits with 403; v2 with 429.
        retry_codes: if v1.is_some() { &[403] } else { &[429] },
        check: BodyCheck::None,
    })))
}

/// The webhook request of `c` (its data already cut to `max_alerts`).
pub fn webhook(c: &WebhookConfig, x: &RenderCtx) -> Result<Prepared, String> {
    let url = x.secret(&c.url, &c.url_file)?.ok_or("webhook has no url")?;
    Ok(Prepared::Http(Box::new(HttpRequest {
        method: Method::Post,
        content_type: JSON,
        url: Secret::new(url.expose().trim()),
        headers: Vec::new(),
        body: webhook_body(x.data),
        timeout: timeout(&c.timeout),
        http: c
            .http_config
            .clone()
            .or_else(|| x.global.http_config.clone()),
        retry_codes: &[429],
        check: BodyCheck::None,
    })))
}

/// An incident.io alert source call as Alertmanager makes it: the
/// webhook payload with version "1", the token as a bearer; a payload
/// above incident.io's 512 KiB keeps only the group's first alert.
pub fn incidentio(c: &IncidentioConfig, x: &RenderCtx) -> Result<Prepared, String> {
    const MAX_PAYLOAD: usize = 512 << 10;
    let url = x
        .secret(&c.url, &c.url_file)?
        .ok_or("incidentio has no url")?;
    let mut headers = Vec::new();
    if let Some(t) = x.secret(&c.alert_source_token, &c.alert_source_token_file)? {
        headers.push((
            "Authorization".to_string(),
            Secret::new(format!("Bearer {}", t.expose().trim())),
        ));
    }
    let mut body = versioned_body(x.data, "1");
    if body.len() > MAX_PAYLOAD && x.data.alerts.len() > 1 {
        let mut first = x.data.clone();
        first.alerts.truncate(1);
        body = versioned_body(&first, "1");
    }
    Ok(Prepared::Http(Box::new(HttpRequest {
        method: Method::Post,
        content_type: JSON,
        url: Secret::new(url.expose().trim()),
        headers,
        body,
        timeout: timeout(&c.timeout),
        http: x.http(&c.http_config),
        retry_codes: &[429],
        check: BodyCheck::None,
    })))
}

/// A Mattermost incoming-webhook message as Alertmanager sends it: the
/// text in one Slack-style attachment (or the configured attachments, the
/// text then on the message, cut to 16,383 characters), priority values
/// brought into what Mattermost takes.
pub fn mattermost(c: &MattermostConfig, x: &RenderCtx) -> Result<Prepared, String> {
    #[derive(Serialize)]
    struct Field {
        #[serde(skip_serializing_if = "String::is_empty")]
        title: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        value: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        short: Option<bool>,
    }
    #[derive(Serialize, Default)]
    struct Attachment {
        #[serde(skip_serializing_if = "String::is_empty")]
        fallback: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        color: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pretext: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        text: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        author_name: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        author_link: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        author_icon: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        title: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        title_link: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        fields: Vec<Field>,
        #[serde(skip_serializing_if = "String::is_empty")]
        thumb_url: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        footer: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        footer_icon: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        image_url: String,
    }
    #[derive(Serialize)]
    struct Priority {
        #[serde(skip_serializing_if = "String::is_empty")]
        priority: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        requested_ack: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        persistent_notifications: bool,
    }
    #[derive(Serialize)]
    struct Message {
        #[serde(skip_serializing_if = "String::is_empty")]
        text: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        channel: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        username: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        icon_url: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        icon_emoji: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
        #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
        kind: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        props: Option<serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        priority: Option<Priority>,
    }
    // Mattermost's limit on a message's text, in characters.
    const MAX_TEXT_RUNES: usize = 16383;
    let g = x.global;
    let url = x.secret_or_global(
        (&c.webhook_url, &c.webhook_url_file),
        (&g.mattermost_webhook_url, &g.mattermost_webhook_url_file),
        "mattermost has no webhook_url",
    )?;
    let fields = |list: &[MattermostField]| -> Result<Vec<Field>, String> {
        list.iter()
            .map(|f| {
                Ok(Field {
                    title: x.text(&f.title)?,
                    value: x.text(&f.value)?,
                    short: f.short,
                })
            })
            .collect()
    };
    let text = x.opt(&c.text, r#"{{ template "mattermost.default.text" . }}"#)?;
    let mut msg = Message {
        text: String::new(),
        channel: x.text(&c.channel)?,
        username: x.opt(
            &c.username,
            r#"{{ template "mattermost.default.username" . }}"#,
        )?,
        icon_url: x.text(&c.icon_url)?,
        icon_emoji: x.text(&c.icon_emoji)?,
        attachments: Vec::new(),
        kind: x.text(&c.kind)?,
        props: None,
        priority: None,
    };
    if let Some(p) = c.priority.as_ref().filter(|p| !p.priority.is_empty()) {
        // Values Mattermost does not take become `standard`; an ack only
        // goes with a raised priority, repeats only with `urgent`.
        let mut priority = x.text(&p.priority)?.to_lowercase();
        if !matches!(priority.as_str(), "urgent" | "important" | "standard") {
            priority = "standard".into();
        }
        msg.priority = Some(Priority {
            requested_ack: p.requested_ack && priority != "standard",
            persistent_notifications: p.persistent_notifications && priority == "urgent",
            priority,
        });
    }
    if let Some(p) = c.props.as_ref().filter(|p| !p.card.is_empty()) {
        msg.props = Some(serde_json::json!({ "card": x.text(&p.card)? }));
    }
    if c.attachments.is_empty() {
        msg.attachments.push(Attachment {
            text,
            fallback: x.opt(
                &c.fallback,
                r#"{{ template "mattermost.default.fallback" . }}"#,
            )?,
            color: x.opt(&c.color, r#"{{ template "mattermost.default.color" . }}"#)?,
            pretext: x.text(&c.pretext)?,
            author_name: x.text(&c.author_name)?,
            author_link: x.text(&c.author_link)?,
            author_icon: x.text(&c.author_icon)?,
            title: x.opt(&c.title, r#"{{ template "mattermost.default.title" . }}"#)?,
            title_link: x.opt(
                &c.title_link,
                r#"{{ template "mattermost.default.titlelink" . }}"#,
            )?,
            fields: fields(&c.fields)?,
            thumb_url: x.text(&c.thumb_url)?,
            footer: x.text(&c.footer)?,
            footer_icon: x.text(&c.footer_icon)?,
            image_url: x.text(&c.image_url)?,
        });
    } else {
        for a in &c.attachments {
            msg.attachments.push(Attachment {
                fallback: x.text(&a.fallback)?,
                color: x.text(&a.color)?,
                pretext: x.text(&a.pretext)?,
                text: x.text(&a.text)?,
                author_name: x.text(&a.author_name)?,
                author_link: x.text(&a.author_link)?,
                author_icon: x.text(&a.author_icon)?,
                title: x.text(&a.title)?,
                title_link: x.text(&a.title_link)?,
                fields: fields(&a.fields)?,
                thumb_url: x.text(&a.thumb_url)?,
                footer: x.text(&a.footer)?,
                footer_icon: x.text(&a.footer_icon)?,
                image_url: x.text(&a.image_url)?,
            });
        }
        msg.text = truncate_runes(text, MAX_TEXT_RUNES);
    }
    Ok(json_post(url, go_json(&msg), x.http(&c.http_config), &[]))
}

/// A Discord webhook message (an embed coloured by status), as
/// Alertmanager sends it.
pub fn discord(c: &DiscordConfig, x: &RenderCtx) -> Result<Prepared, String> {
    #[derive(Serialize)]
    struct Embed {
        title: String,
        description: String,
        color: u32,
    }
    #[derive(Serialize)]
    struct Message {
        content: String,
        embeds: Vec<Embed>,
        #[serde(skip_serializing_if = "String::is_empty")]
        username: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        avatar_url: String,
    }
    let url = x
        .secret(&c.webhook_url, &c.webhook_url_file)?
        .ok_or("discord has no webhook_url")?;
    let color = match x.data.status.as_str() {
        "firing" => 0x992D22,
        "resolved" => 0x2ECC71,
        _ => 0x95A5A6,
    };
    // Discord's limits, in characters.
    let msg = Message {
        content: truncate_runes(
            x.opt(&c.content, r#"{{ template "discord.default.content" . }}"#)?,
            2000,
        ),
        embeds: vec![Embed {
            title: truncate_runes(
                x.opt(&c.title, r#"{{ template "discord.default.title" . }}"#)?,
                256,
            ),
            description: truncate_runes(
                x.opt(&c.message, r#"{{ template "discord.default.message" . }}"#)?,
                4096,
            ),
            color,
        }],
        username: c.username.clone().unwrap_or_default(),
        avatar_url: c
            .avatar_url
            .clone()
            .filter(|u| reqwest::Url::parse(u).is_ok())
            .unwrap_or_default(),
    };
    Ok(json_post(
        url,
        go_json(&msg),
        x.http(&c.http_config),
        &[429],
    ))
}

/// A Microsoft Teams connector card (MessageCard), as Alertmanager's
/// `msteams` integration sends it.
pub fn msteams(c: &MsTeamsConfig, x: &RenderCtx) -> Result<Prepared, String> {
    #[derive(Serialize)]
    struct Card {
        #[serde(rename = "@context")]
        context: &'static str,
        #[serde(rename = "type")]
        kind: &'static str,
        title: String,
        summary: String,
        text: String,
        #[serde(rename = "themeColor")]
        theme_color: &'static str,
    }
    let url = x
        .secret(&c.webhook_url, &c.webhook_url_file)?
        .ok_or("msteams has no webhook_url")?;
    let card = Card {
        context: "http://schema.org/extensions",
        kind: "MessageCard",
        title: x.opt(&c.title, r#"{{ template "msteams.default.title" . }}"#)?,
        summary: x.opt(&c.summary, r#"{{ template "msteams.default.summary" . }}"#)?,
        text: x.opt(&c.text, r#"{{ template "msteams.default.text" . }}"#)?,
        theme_color: match x.data.status.as_str() {
            "firing" => "8C1A1A",
            "resolved" => "2DC72D",
            _ => "808080",
        },
    };
    Ok(json_post(
        url,
        go_json(&card),
        x.http(&c.http_config),
        &[429],
    ))
}

/// A Microsoft Teams message for a Power Automate flow (an adaptive card
/// with the title as a heading coloured by status), as Alertmanager's
/// `msteamsv2` integration sends it.
pub fn msteamsv2(c: &MsTeamsV2Config, x: &RenderCtx) -> Result<Prepared, String> {
    let url = x
        .secret(&c.webhook_url, &c.webhook_url_file)?
        .ok_or("msteamsv2 has no webhook_url")?;
    let color = match x.data.status.as_str() {
        "firing" => "Attention",
        "resolved" => "Good",
        _ => "Warning",
    };
    let title = x.opt(&c.title, r#"{{ template "msteamsv2.default.title" . }}"#)?;
    let text = x.opt(&c.text, r#"{{ template "msteamsv2.default.text" . }}"#)?;
    let body = serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.2",
                "body": [
                    {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
                     "wrap": true, "style": "heading", "color": color},
                    {"type": "TextBlock", "text": text, "wrap": true},
                ],
                "msteams": {"width": "full"},
            },
        }],
    });
    Ok(json_post(
        url,
        go_json(&body),
        x.http(&c.http_config),
        &[429],
    ))
}

/// Jira's limits on the summary and the description, in characters.
const JIRA_SUMMARY_MAX: usize = 255;
const JIRA_DESCRIPTION_MAX: usize = 32767;

/// A rendered custom field value as Alertmanager reads it: text that is
/// YAML for a list, a map, a number or a boolean becomes that value;
/// empty text is null; other text stays text.
fn jira_field_value(text: String) -> serde_json::Value {
    if text.trim().is_empty() {
        return serde_json::Value::Null;
    }
    match serde_saphyr::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::String(_)) | Err(_) => serde_json::Value::String(text),
        Ok(v) => v,
    }
}

/// Templates every string of a custom field, at every depth.
fn jira_template_value(v: &serde_json::Value, x: &RenderCtx) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match v {
        Value::String(t) => jira_field_value(x.text(t)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|e| jira_template_value(e, x))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, e)| Ok((k.clone(), jira_template_value(e, x)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A Jira notification as Alertmanager 0.34 makes it: the issue of the
/// group is found by the label `ALERT{<hash of the group key>}` in the
/// project (open issues, or with `reopen_transition` and
/// `reopen_duration` those resolved within it), then created (never for
/// a resolved group) or updated, then resolved or reopened by the named
/// transitions. An `api_url` ending in `/3` takes the description as
/// Atlassian Document Format (JSON). 429 and 5xx are tried again.
pub fn jira(c: &JiraConfig, x: &RenderCtx) -> Result<Prepared, String> {
    let api = c
        .api_url
        .clone()
        .or_else(|| x.global.jira_api_url.clone())
        .ok_or("jira has no api_url")?;
    let base = api.trim_end_matches('/').to_string();
    let url = reqwest::Url::parse(&base).map_err(|e| format!("jira api_url: {e}"))?;
    let v3 = url.path().trim_end_matches('/').ends_with("/3");
    let firing = x.data.status == "firing";
    let label = format!("ALERT{{{}}}", group_key_hash(&x.data.group_key));
    let project = x.text(&c.project)?;
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut jql = String::new();
    if !c.wont_fix_resolution.is_empty() {
        // `!=` alone would leave out unresolved issues (resolution EMPTY).
        jql.push_str(&format!(
            "(resolution is EMPTY or resolution != {}) and ",
            q(&c.wont_fix_resolution)
        ));
    }
    let reopen_minutes = c.reopen_duration.map_or(0, |d| d.0.as_secs() / 60);
    if firing && !c.reopen_transition.is_empty() && reopen_minutes > 0 {
        jql.push_str(&format!(
            "(resolutiondate is EMPTY OR resolutiondate >= -{reopen_minutes}m) and "
        ));
    } else {
        jql.push_str("statusCategory != Done and ");
    }
    jql.push_str(&format!(
        "project={} and labels={} order by status ASC,resolutiondate DESC",
        q(&project),
        q(&label)
    ));
    let api_type = c.api_type.as_deref().unwrap_or("auto");
    let cloud = api_type == "cloud"
        || (api_type == "auto" && url.host_str().is_some_and(|h| h.ends_with("atlassian.net")));
    let search_url = if cloud {
        format!("{base}/search/jql").replacen("/rest/api/2/", "/rest/api/3/", 1)
    } else {
        format!("{base}/search")
    };

    let summary = truncate_runes(
        x.text(
            c.summary
                .template(r#"{{ template "jira.default.summary" . }}"#),
        )?,
        JIRA_SUMMARY_MAX,
    );
    let description = truncate_runes(
        x.text(
            c.description
                .template(r#"{{ template "jira.default.description" . }}"#),
        )?,
        JIRA_DESCRIPTION_MAX,
    );
    let mut fields = serde_json::Map::new();
    fields.insert("project".into(), serde_json::json!({ "key": project }));
    fields.insert(
        "issuetype".into(),
        serde_json::json!({ "name": x.text(&c.issue_type)? }),
    );
    fields.insert("summary".into(), summary.into());
    if v3 {
        let d = description.trim();
        if !d.is_empty() {
            let adf: serde_json::Value = serde_json::from_str(d)
                .map_err(|_| "description template: invalid JSON for API v3".to_string())?;
            fields.insert("description".into(), adf);
        }
    } else if !description.is_empty() {
        fields.insert("description".into(), description.into());
    }
    let mut labels = c
        .labels
        .iter()
        .map(|l| x.text(l))
        .collect::<Result<Vec<_>, _>>()?;
    labels.push(label);
    labels.sort();
    fields.insert("labels".into(), labels.into());
    let priority = x.text(
        c.priority
            .as_deref()
            .unwrap_or(r#"{{ template "jira.default.priority" . }}"#),
    )?;
    if !priority.is_empty() {
        fields.insert("priority".into(), serde_json::json!({ "name": priority }));
    }
    for (k, v) in &c.fields {
        fields.insert(k.clone(), jira_template_value(v, x)?);
    }
    let search = HttpRequest {
        method: Method::Post,
        content_type: JSON,
        url: Secret::new(search_url),
        headers: vec![("Accept-Language".to_string(), Secret::new("en"))],
        body: go_json(&serde_json::json!({
            "fields": ["status"],
            "jql": jql,
            "maxResults": 2,
        })),
        timeout: timeout(&None),
        http: x.http(&c.http_config),
        retry_codes: &[429],
        check: BodyCheck::None,
    };
    Ok(Prepared::Jira(Box::new(JiraRequest {
        search,
        base,
        fields,
        update_summary: c.summary.updates(),
        update_description: c.description.updates(),
        firing,
        reopen_transition: c.reopen_transition.clone(),
        resolve_transition: c.resolve_transition.clone(),
    })))
}

/// Slack's API method that edits a message (`update_message`).
const SLACK_UPDATE_URL: &str = "https://slack.com/api/chat.update";

/// What an integration's answer leaves for its next notification of the
/// same group (kept in the notification log's store).
pub type Note = BTreeMap<String, String>;

/// A Pushover message as Alertmanager sends it: every parameter in the
/// query string of an empty `text/plain` POST (title cut to 250
/// characters, message to 1,024, URL to 512); emergency priority while
/// firing unless `priority` says otherwise; 5xx are tried again.
pub fn pushover(c: &PushoverConfig, x: &RenderCtx) -> Result<Prepared, String> {
    let secret = |inline: &Option<Secret>, file: &Option<String>, what: &str| {
        x.secret(inline, file)?
            .ok_or_else(|| format!("pushover has no {what}"))
    };
    let token = secret(&c.token, &c.token_file, "token")?;
    let user = secret(&c.user_key, &c.user_key_file, "user_key")?;
    let tmpl = |t: &Option<String>, default: &str| x.text(t.as_deref().unwrap_or(default));
    let mut params = BTreeMap::from([
        ("token", x.text(token.expose())?),
        ("user", x.text(user.expose())?),
        (
            "title",
            truncate_runes(
                tmpl(&c.title, r#"{{ template "pushover.default.title" . }}"#)?,
                250,
            ),
        ),
    ]);
    let message_t = c
        .message
        .as_deref()
        .unwrap_or(r#"{{ template "pushover.default.message" . }}"#);
    let message = if c.html {
        params.insert("html", "1".into());
        x.html(message_t)?
    } else {
        x.text(message_t)?
    };
    if c.monospace {
        params.insert("monospace", "1".into());
    }
    let message = truncate_runes(message, 1024).trim().to_string();
    params.insert(
        "message",
        if message.is_empty() {
            "(no details)".into()
        } else {
            message
        },
    );
    params.insert(
        "url",
        truncate_runes(
            tmpl(&c.url, r#"{{ template "pushover.default.url" . }}"#)?,
            512,
        ),
    );
    params.insert("url_title", tmpl(&c.url_title, "")?);
    params.insert(
        "priority",
        tmpl(
            &c.priority,
            r#"{{ if eq .Status "firing" }}2{{ else }}0{{ end }}"#,
        )?,
    );
    let secs = |d: Option<crate::config::PromDuration>, default: u64| {
        d.map_or(default, |d| d.0.as_secs()).to_string()
    };
    params.insert("retry", secs(c.retry, 60));
    params.insert("expire", secs(c.expire, 3600));
    params.insert("device", tmpl(&c.device, "")?);
    params.insert("sound", tmpl(&c.sound, "")?);
    if let Some(ttl) = c.ttl.filter(|t| t.0.as_secs() > 0) {
        params.insert("ttl", ttl.0.as_secs().to_string());
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::net::urlencode(v)))
        .collect();
    let base = std::env::var("ARGUS_PUSHOVER_API_URL").unwrap_or_else(|_| PUSHOVER_API_URL.into());
    Ok(Prepared::Http(Box::new(HttpRequest {
        method: Method::Post,
        content_type: "text/plain",
        url: Secret::new(format!("{base}?{}", query.join("&"))),
        headers: Vec::new(),
        body: Vec::new(),
        timeout: timeout(&None),
        http: x.http(&c.http_config),
        retry_codes: &[],
        check: BodyCheck::None,
    })))
}

/// A Telegram `sendMessage` call as Alertmanager makes it (through the
/// telebot library: every parameter a JSON string, link previews off).
pub fn telegram(c: &TelegramConfig, x: &RenderCtx) -> Result<Prepared, String> {
    const MAX_RUNES: usize = 4096;
    let g = x.global;
    let token = x.secret_or_global(
        (&c.bot_token, &c.bot_token_file),
        (&g.telegram_bot_token, &g.telegram_bot_token_file),
        "telegram has no bot_token",
    )?;
    let chat_id = match &c.chat_id_file {
        Some(f) if !f.is_empty() => {
            let text = x
                .secret(&None, &c.chat_id_file)?
                .ok_or("telegram has no chat_id")?;
            match text.expose().trim().parse::<i64>() {
                Ok(id) => id,
                Err(_) if x.render_only => 0,
                Err(e) => return Err(format!("could not parse chat_id from {f}: {e}")),
            }
        }
        _ => c.chat_id,
    };
    let parse_mode = c.parse_mode.clone().unwrap_or_else(|| "HTML".into());
    let template = c
        .message
        .as_deref()
        .unwrap_or(r#"{{ template "telegram.default.message" . }}"#);
    let text = if parse_mode == "HTML" {
        let t = x.html(template)?;
        // Cutting HTML could leave a tag open, which Telegram refuses.
        if t.chars().count() > MAX_RUNES {
            "argus could not send this notification: its message is longer than Telegram allows (4,096 characters). Check the template that produces it.".to_string()
        } else {
            t
        }
    } else {
        truncate_runes(x.text(template)?, MAX_RUNES)
    };
    let mut params = BTreeMap::from([
        ("chat_id", chat_id.to_string()),
        ("text", text),
        ("disable_web_page_preview", "true".to_string()),
    ]);
    if !parse_mode.is_empty() {
        params.insert("parse_mode", parse_mode);
    }
    if c.disable_notifications {
        params.insert("disable_notification", "true".into());
    }
    if c.message_thread_id != 0 {
        params.insert("message_thread_id", c.message_thread_id.to_string());
    }
    let base = c
        .api_url
        .as_deref()
        .or(g.telegram_api_url.as_deref())
        .unwrap_or(TELEGRAM_API_URL)
        .trim_end_matches('/');
    let url = Secret::new(format!("{base}/bot{}/sendMessage", token.expose().trim()));
    Ok(Prepared::Http(Box::new(HttpRequest {
        method: Method::Post,
        content_type: JSON,
        url,
        headers: Vec::new(),
        body: go_json(&params),
        timeout: timeout(&None),
        http: x.http(&c.http_config),
        retry_codes: &[429],
        check: BodyCheck::Telegram,
    })))
}

/// A Webex message as Alertmanager posts it: markdown (cut to Webex's
/// 7,439 bytes) to the room, the bot token as the client's
/// `authorization`.
pub fn webex(c: &WebexConfig, x: &RenderCtx) -> Result<Prepared, String> {
    #[derive(Serialize)]
    struct Message {
        markdown: String,
        #[serde(rename = "roomId", skip_serializing_if = "String::is_empty")]
        room_id: String,
    }
    let url = c
        .api_url
        .as_deref()
        .or(x.global.webex_api_url.as_deref())
        .unwrap_or(WEBEX_API_URL);
    let msg = Message {
        markdown: truncate_bytes(
            x.opt(&c.message, r#"{{ template "webex.default.message" . }}"#)?,
            7439,
        ),
        room_id: x.text(&c.room_id)?,
    };
    Ok(json_post(
        Secret::new(url),
        go_json(&msg),
        x.http(&c.http_config),
        &[429],
    ))
}

/// An API base URL as Alertmanager joins paths to it: with a trailing
/// slash.
fn base_url(own: Option<&str>, global: Option<&str>, default: &str) -> String {
    let mut u = own.or(global).unwrap_or(default).trim().to_string();
    let path_end = u.find(['?', '#']).unwrap_or(u.len());
    if !u[..path_end].ends_with('/') {
        u.insert(path_end, '/');
    }
    u
}

/// Splits on commas, dropping empty items, as Alertmanager reads OpsGenie's
/// `tags`, `actions` and `teams` lists.
fn comma_list(s: &str) -> Vec<String> {
    s.trim()
        .split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// OpsGenie's Alert API calls as Alertmanager makes them: an alert created
/// (or, resolved, closed) under the group's alias, the SHA-256 of its group
/// key; with `update_alerts`, its message and description updated too.
pub fn opsgenie(c: &OpsGenieConfig, x: &RenderCtx) -> Result<Prepared, String> {
    #[derive(Serialize)]
    struct Responder {
        #[serde(skip_serializing_if = "String::is_empty")]
        id: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        name: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        username: String,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(Serialize)]
    struct Create {
        alias: String,
        message: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        description: String,
        details: BTreeMap<String, String>,
        source: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        responders: Vec<Responder>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
        #[serde(skip_serializing_if = "String::is_empty")]
        note: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        priority: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        entity: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        actions: Vec<String>,
    }
    // OpsGenie's limit on an alert's message, in characters.
    const MAX_MESSAGE_RUNES: usize = 130;
    let g = x.global;
    let key = x.secret_or_global(
        (&c.api_key, &c.api_key_file),
        (&g.opsgenie_api_key, &g.opsgenie_api_key_file),
        "opsgenie has no api_key",
    )?;
    let auth = Secret::new(format!("GenieKey {}", x.text(key.expose())?.trim()));
    let base = base_url(
        c.api_url.as_deref(),
        g.opsgenie_api_url.as_deref(),
        OPSGENIE_API_URL,
    );
    let alias = group_key_hash(&x.data.group_key);
    let source = x.opt(&c.source, r#"{{ template "opsgenie.default.source" . }}"#)?;
    let request = |method, path: String, body: Vec<u8>| HttpRequest {
        method,
        content_type: JSON,
        url: Secret::new(format!("{base}{path}")),
        headers: vec![("Authorization".to_string(), auth.clone())],
        body,
        timeout: timeout(&None),
        http: x.http(&c.http_config),
        retry_codes: &[429],
        check: BodyCheck::None,
    };
    if x.data.status == "resolved" {
        let body = go_json(&serde_json::json!({ "source": source }));
        return Ok(Prepared::Http(Box::new(request(
            Method::Post,
            format!("v2/alerts/{alias}/close?identifierType=alias"),
            body,
        ))));
    }
    let mut details = x.data.common_labels.clone();
    for (k, v) in &c.details {
        details.insert(k.clone(), x.text(v)?);
    }
    let mut responders = Vec::new();
    for r in &c.responders {
        let r = Responder {
            id: x.text(&r.id)?,
            name: x.text(&r.name)?,
            username: x.text(&r.username)?,
            kind: x.text(&r.kind)?,
        };
        // All empty: filled from labels that this group does not have.
        if r.id.is_empty() && r.name.is_empty() && r.username.is_empty() && r.kind.is_empty() {
            continue;
        }
        if r.kind == "teams" {
            for team in comma_list(&r.name) {
                responders.push(Responder {
                    id: String::new(),
                    name: x.text(&team)?,
                    username: String::new(),
                    kind: "team".into(),
                });
            }
            continue;
        }
        responders.push(r);
    }
    let msg = Create {
        alias: alias.clone(),
        message: truncate_runes(
            x.opt(&c.message, r#"{{ template "opsgenie.default.message" . }}"#)?,
            MAX_MESSAGE_RUNES,
        ),
        description: x.opt(
            &c.description,
            r#"{{ template "opsgenie.default.description" . }}"#,
        )?,
        details,
        source,
        responders,
        tags: comma_list(&x.text(&c.tags)?),
        note: x.text(&c.note)?,
        priority: x.text(&c.priority)?,
        entity: x.text(&c.entity)?,
        actions: comma_list(&x.text(&c.actions)?),
    };
    let create = request(Method::Post, "v2/alerts".into(), go_json(&msg));
    if !c.update_alerts {
        return Ok(Prepared::Http(Box::new(create)));
    }
    let message = serde_json::json!({ "message": msg.message });
    let description = if msg.description.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "description": msg.description })
    };
    Ok(Prepared::HttpSeq(vec![
        create,
        request(
            Method::Put,
            format!("v2/alerts/{alias}/message?identifierType=alias"),
            go_json(&message),
        ),
        request(
            Method::Put,
            format!("v2/alerts/{alias}/description?identifierType=alias"),
            go_json(&description),
        ),
    ]))
}

/// A VictorOps (Splunk On-Call) REST event as Alertmanager posts it: the
/// group's entity id the SHA-256 of its group key, `RECOVERY` once
/// resolved, the custom fields beside the fixed ones.
pub fn victorops(c: &VictorOpsConfig, x: &RenderCtx) -> Result<Prepared, String> {
    // VictorOps's limit on a state message, in characters.
    const MAX_STATE_MESSAGE_RUNES: usize = 20480;
    let g = x.global;
    let key = x.secret_or_global(
        (&c.api_key, &c.api_key_file),
        (&g.victorops_api_key, &g.victorops_api_key_file),
        "victorops has no api_key",
    )?;
    let base = base_url(
        c.api_url.as_deref(),
        g.victorops_api_url.as_deref(),
        VICTOROPS_API_URL,
    );
    let url = Secret::new(format!(
        "{base}{}/{}",
        key.expose().trim(),
        x.text(&c.routing_key)?
    ));
    let mut message_type = x.opt(&c.message_type, "CRITICAL")?;
    if x.data.status == "resolved" {
        message_type = "RECOVERY".into();
    } else if !matches!(message_type.as_str(), "INFO" | "WARNING" | "CRITICAL") {
        message_type = "CRITICAL".into();
    }
    let mut msg = BTreeMap::from([
        ("message_type".to_string(), message_type),
        ("entity_id".to_string(), group_key_hash(&x.data.group_key)),
        (
            "entity_display_name".to_string(),
            x.opt(
                &c.entity_display_name,
                r#"{{ template "victorops.default.entity_display_name" . }}"#,
            )?,
        ),
        (
            "state_message".to_string(),
            truncate_runes(
                x.opt(
                    &c.state_message,
                    r#"{{ template "victorops.default.state_message" . }}"#,
                )?,
                MAX_STATE_MESSAGE_RUNES,
            ),
        ),
        (
            "monitoring_tool".to_string(),
            x.opt(
                &c.monitoring_tool,
                r#"{{ template "victorops.default.monitoring_tool" . }}"#,
            )?,
        ),
    ]);
    for (k, v) in &c.custom_fields {
        msg.insert(k.clone(), x.text(v)?);
    }
    Ok(json_post(url, go_json(&msg), x.http(&c.http_config), &[]))
}

/// AWS credentials and the scope of a Signature V4.
pub struct SigV4 {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: Secret,
    /// Session token of temporary credentials (`AWS_SESSION_TOKEN`).
    pub session_token: Option<Secret>,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Service, e.g. `sns`.
    pub service: &'static str,
}

impl SigV4 {
    /// The headers that sign `method url` with `body` at `now` (ms):
    /// `X-Amz-Date`, `X-Amz-Security-Token` with a session token, and
    /// `Authorization`. The signed headers are the content type, the host
    /// (with its port when the URL names one, as the client sends it) and
    /// the date.
    pub fn headers(
        &self,
        method: &str,
        url: &reqwest::Url,
        content_type: &str,
        body: &[u8],
        now: i64,
    ) -> Vec<(String, Secret)> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let sha = |b: &[u8]| hex(&sha2::Sha256::digest(b));
        let hmac = |key: &[u8], msg: &str| {
            use hmac::{KeyInit, Mac};
            let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
            m.update(msg.as_bytes());
            m.finalize().into_bytes().to_vec()
        };
        let stamp: String = crate::model::format_rfc3339(now - now.rem_euclid(1000))
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        let date = &stamp[..8];
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        };
        let mut query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (crate::net::urlencode(&k), crate::net::urlencode(&v)))
            .collect();
        query.sort();
        let query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers = vec![
            ("content-type", content_type.to_string()),
            ("host", host),
            ("x-amz-date", stamp.clone()),
        ];
        if let Some(t) = &self.session_token {
            headers.push(("x-amz-security-token", t.expose().to_string()));
        }
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed = headers
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(";");
        let request = format!(
            "{method}\n{}\n{query}\n{canonical_headers}\n{signed}\n{}",
            url.path(),
            sha(body)
        );
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            sha(request.as_bytes())
        );
        let mut key = hmac(format!("AWS4{}", self.secret_key.expose()).as_bytes(), date);
        for part in [self.region.as_str(), self.service, "aws4_request"] {
            key = hmac(&key, part);
        }
        let signature = hex(&hmac(&key, &to_sign));
        let mut out = vec![("X-Amz-Date".to_string(), Secret::new(stamp))];
        if let Some(t) = &self.session_token {
            out.push(("X-Amz-Security-Token".to_string(), t.clone()));
        }
        out.push((
            "Authorization".to_string(),
            Secret::new(format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                self.access_key
            )),
        ));
        out
    }
}

/// The content type of AWS's query APIs.
const AWS_FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The Amazon SNS `Publish` of `c`: to a topic (FIFO topics get the group
/// key's hash as group and deduplication id), a target or a phone number
/// (the message cut to 1,600 characters for SMS, to 256 KiB otherwise,
/// with a `truncated` attribute when cut), signed with the keys of
/// `sigv4` or of argus's environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). The region is
/// `sigv4.region`, else the ARN's, else `AWS_REGION`.
pub fn sns(c: &SnsConfig, x: &RenderCtx) -> Result<Prepared, String> {
    let sig = c.sigv4.clone().unwrap_or_default();
    let topic = x.opt(&c.topic_arn, "")?;
    let target = x.opt(&c.target_arn, "")?;
    let phone = x.opt(&c.phone_number, "")?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let region = sig
        .region
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            [&topic, &target]
                .iter()
                .find_map(|arn| arn.split(':').nth(3).filter(|r| !r.is_empty()))
                .map(str::to_string)
        })
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .ok_or("sns: no region (sigv4.region, the ARN's, or AWS_REGION)")?;
    let (access_key, secret_key, session_token) = match (&sig.access_key, &sig.secret_key) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => (a.clone(), s.clone(), None),
        _ => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(a), Some(s)) => (a, Secret::new(s), env("AWS_SESSION_TOKEN").map(Secret::new)),
            _ if x.render_only => ("<access key>".into(), Secret::new("<secret>"), None),
            _ => {
                return Err("sns: no AWS credentials (sigv4.access_key and sigv4.secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into());
            }
        },
    };
    let url = match c.api_url.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => u.trim().to_string(),
        None => format!("https://sns.{region}.amazonaws.com/"),
    };
    let mut form: Vec<(String, String)> = vec![
        ("Action".into(), "Publish".into()),
        ("Version".into(), "2010-03-31".into()),
    ];
    let mut limit = 256 * 1024;
    let mut sms = false;
    if !topic.is_empty() {
        if topic.ends_with(".fifo") {
            let id = group_key_hash(&x.data.group_key);
            form.push(("MessageDeduplicationId".into(), id.clone()));
            form.push(("MessageGroupId".into(), id));
        }
        form.push(("TopicArn".into(), topic));
    }
    if !phone.is_empty() {
        form.push(("PhoneNumber".into(), phone));
        limit = 1600;
        sms = true;
    }
    if !target.is_empty() {
        form.push(("TargetArn".into(), target));
    }
    let message = x.opt(&c.message, r#"{{ template "sns.default.message" . }}"#)?;
    let cut = if sms {
        truncate_runes(message.clone(), limit)
    } else {
        truncate_bytes(message.clone(), limit)
    };
    let mut attributes: BTreeMap<String, String> = c
        .attributes
        .iter()
        .map(|(k, v)| Ok((x.text(k)?, x.text(v)?)))
        .collect::<Result<_, String>>()?;
    if cut != message {
        attributes.insert("truncated".into(), "true".into());
    }
    form.push(("Message".into(), cut));
    let subject = x.opt(&c.subject, r#"{{ template "sns.default.subject" . }}"#)?;
    if !subject.is_empty() {
        form.push(("Subject".into(), subject));
    }
    for (i, (k, v)) in attributes.into_iter().enumerate() {
        let n = i + 1;
        form.push((format!("MessageAttributes.entry.{n}.Name"), k));
        form.push((
            format!("MessageAttributes.entry.{n}.Value.DataType"),
            "String".into(),
        ));
        form.push((format!("MessageAttributes.entry.{n}.Value.StringValue"), v));
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", crate::net::urlencode(k), crate::net::urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes();
    let req = HttpRequest {
        method: Method::Post,
        content_type: AWS_FORM,
        url: Secret::new(url),
        headers: Vec::new(),
        body,
        timeout: timeout(&None),
        http: x.http(&c.http_config),
        retry_codes: &[429],
        check: BodyCheck::Aws,
    };
    Ok(Prepared::Signed(
        Box::new(req),
        SigV4 {
            access_key,
            secret_key,
            session_token,
            region,
            service: "sns",
        },
    ))
}

/// The Rocket.Chat message of `c`: one attachment, posted with the
/// user's token and id as headers.
pub fn rocketchat(c: &RocketChatConfig, x: &RenderCtx) -> Result<Prepared, String> {
    // Rocket.Chat's limit on an attachment's title, in characters.
    const MAX_TITLE_RUNES: usize = 1024;
    let g = x.global;
    let token_id = x.secret_or_global(
        (&c.token_id, &c.token_id_file),
        (&g.rocketchat_token_id, &g.rocketchat_token_id_file),
        "rocketchat has no token_id",
    )?;
    let token = x.secret_or_global(
        (&c.token, &c.token_file),
        (&g.rocketchat_token, &g.rocketchat_token_file),
        "rocketchat has no token",
    )?;
    let base = base_url(
        c.api_url.as_deref(),
        g.rocketchat_api_url.as_deref(),
        ROCKETCHAT_API_URL,
    );
    let mut att = serde_json::Map::new();
    let title = truncate_runes(
        x.opt(&c.title, r#"{{ template "rocketchat.default.title" . }}"#)?,
        MAX_TITLE_RUNES,
    );
    for (key, v) in [
        ("title", title),
        (
            "title_link",
            x.opt(
                &c.title_link,
                r#"{{ template "rocketchat.default.titlelink" . }}"#,
            )?,
        ),
        (
            "text",
            x.opt(&c.text, r#"{{ template "rocketchat.default.text" . }}"#)?,
        ),
        ("image_url", x.opt(&c.image_url, "")?),
        ("thumb_url", x.opt(&c.thumb_url, "")?),
        (
            "color",
            x.opt(
                &c.color,
                r#"{{ if eq .Status "firing" }}red{{ else }}green{{ end }}"#,
            )?,
        ),
    ] {
        if !v.is_empty() {
            att.insert(key.into(), v.into());
        }
    }
    let fields = c
        .fields
        .iter()
        .map(|f| {
            let mut o = serde_json::Map::new();
            o.insert("short".into(), f.short.unwrap_or(c.short_fields).into());
            for (k, v) in [("title", x.text(&f.title)?), ("value", x.text(&f.value)?)] {
                if !v.is_empty() {
                    o.insert(k.into(), v.into());
                }
            }
            Ok(serde_json::Value::Object(o))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if !fields.is_empty() {
        att.insert("fields".into(), fields.into());
    }
    let actions = c
        .actions
        .iter()
        .map(|a| {
            let mut o = serde_json::Map::new();
            o.insert("type".into(), "button".into());
            for (k, v) in [
                ("text", x.text(&a.text)?),
                ("url", x.text(&a.url)?),
                ("msg", x.text(&a.msg)?),
            ] {
                if !v.is_empty() {
                    o.insert(k.into(), v.into());
                }
            }
            o.insert("is_webview".into(), false.into());
            o.insert("msg_in_chat_window".into(), false.into());
            Ok(serde_json::Value::Object(o))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if !actions.is_empty() {
        att.insert("actions".into(), actions.into());
    }
    let mut msg = serde_json::Map::new();
    for (key, v) in [
        ("channel", x.opt(&c.channel, "")?),
        (
            "emoji",
            x.opt(&c.emoji, r#"{{ template "rocketchat.default.emoji" . }}"#)?,
        ),
        (
            "avatar",
            x.opt(
                &c.icon_url,
                r#"{{ template "rocketchat.default.iconurl" . }}"#,
            )?,
        ),
    ] {
        if !v.is_empty() {
            msg.insert(key.into(), v.into());
        }
    }
    msg.insert(
        "attachments".into(),
        vec![serde_json::Value::Object(att)].into(),
    );
    let mut req = json_request(
        Secret::new(format!("{base}api/v1/chat.postMessage")),
        go_json(&msg),
        x.http(&c.http_config),
        &[],
    );
    req.headers = vec![
        ("X-Auth-Token".into(), Secret::new(token.expose().trim())),
        ("X-User-Id".into(), Secret::new(token_id.expose().trim())),
    ];
    req.check = BodyCheck::RocketChat;
    Ok(Prepared::Http(Box::new(req)))
}

/// The WeChat Work message of `c`.
pub fn wechat(c: &WeChatConfig, x: &RenderCtx) -> Result<Prepared, String> {
    let g = x.global;
    let secret = x.secret_or_global(
        (&c.api_secret, &c.api_secret_file),
        (&g.wechat_api_secret, &g.wechat_api_secret_file),
        "wechat has no api_secret",
    )?;
    let corp = c
        .corp_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(g.wechat_api_corp_id.as_deref())
        .unwrap_or("");
    let base = base_url(
        c.api_url.as_deref(),
        g.wechat_api_url.as_deref(),
        WECHAT_API_URL,
    );
    let mut token_url = reqwest::Url::parse(&format!("{base}gettoken"))
        .map_err(|e| format!("wechat api_url: {e}"))?;
    token_url
        .query_pairs_mut()
        .append_pair("corpsecret", &x.text(secret.expose())?)
        .append_pair("corpid", &x.text(corp)?);
    let markdown = c.message_type.as_deref() == Some("markdown");
    let content = serde_json::json!({
        "content": x.opt(&c.message, r#"{{ template "wechat.default.message" . }}"#)?,
    });
    let mut msg = serde_json::Map::new();
    msg.insert((if markdown { "markdown" } else { "text" }).into(), content);
    for (key, field, default) in [
        ("touser", &c.to_user, "wechat.default.to_user"),
        ("toparty", &c.to_party, "wechat.default.to_party"),
        ("totag", &c.to_tag, "wechat.default.to_tag"),
        ("agentid", &c.agent_id, "wechat.default.agent_id"),
    ] {
        let v = x.opt(field, &format!(r#"{{{{ template "{default}" . }}}}"#))?;
        if !v.is_empty() {
            msg.insert(key.into(), v.into());
        }
    }
    msg.insert("safe".into(), "0".into());
    msg.insert(
        "msgtype".into(),
        (if markdown { "markdown" } else { "text" }).into(),
    );
    let send = json_request(
        Secret::new(format!("{base}message/send")),
        go_json(&msg),
        x.http(&c.http_config),
        &[],
    );
    Ok(Prepared::WeChat(Box::new(WeChatRequest {
        token_url: Secret::new(token_url.to_string()),
        send,
    })))
}

/// Cuts `s` to at most `max` bytes on a character boundary, ending it
/// with `…` (three bytes) when cut, as Alertmanager cuts by bytes.
fn truncate_bytes(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    if max < 3 {
        return ".".repeat(max);
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut t = s[..end].to_string();
    t.push('…');
    t
}

/// A JSON POST to a URL that may hold a secret, with the default timeout.
fn json_post(
    url: Secret,
    body: Vec<u8>,
    http: Option<HttpConfig>,
    retry_codes: &'static [u16],
) -> Prepared {
    Prepared::Http(Box::new(json_request(url, body, http, retry_codes)))
}

/// A JSON POST with the default timeout, for integrations that add to it
/// (headers, a body check) or send it as part of more.
fn json_request(
    url: Secret,
    body: Vec<u8>,
    http: Option<HttpConfig>,
    retry_codes: &'static [u16],
) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        content_type: JSON,
        url: Secret::new(url.expose().trim()),
        headers: Vec::new(),
        body,
        timeout: timeout(&None),
        http,
        retry_codes,
        check: BodyCheck::None,
    }
}

/// The email of `c`.
pub fn email(c: &EmailConfig, x: &RenderCtx) -> Result<Prepared, String> {
    use lettre::message::{Mailbox, MultiPart, SinglePart, header};
    let g = x.global;
    let from = x.text(c.from.as_deref().or(g.smtp_from.as_deref()).unwrap_or(""))?;
    let to_text = x.text(&c.to)?;
    let smarthost = c
        .smarthost
        .clone()
        .or_else(|| g.smtp_smarthost.clone())
        .unwrap_or_default();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    headers.insert(
        "Subject".into(),
        r#"{{ template "email.default.subject" . }}"#.into(),
    );
    for (k, v) in &c.headers {
        headers.insert(k.clone(), v.clone());
    }
    let parse_box = |s: &str, what: &str| -> Result<Mailbox, String> {
        s.trim()
            .parse::<Mailbox>()
            .map_err(|e| format!("invalid {what} address {s:?}: {e}"))
    };
    let mut b = lettre::Message::builder().from(parse_box(&from, "from")?);
    let mut to = Vec::new();
    for addr in to_text.split(',').filter(|s| !s.trim().is_empty()) {
        let m = parse_box(addr, "to")?;
        to.push(m.email.to_string());
        b = b.to(m);
    }
    if to.is_empty() {
        return Err("email has no recipient".into());
    }
    for (k, v) in &headers {
        let value = x.text(v)?;
        match k.to_ascii_lowercase().as_str() {
            "subject" => b = b.subject(value),
            "to" | "from" => {}
            _ => {
                let name = header::HeaderName::new_from_ascii(k.clone())
                    .map_err(|e| format!("invalid header name {k:?}: {e}"))?;
                b = b.raw_header(header::HeaderValue::new(name, value));
            }
        }
    }
    let host_part = from
        .rsplit('@')
        .next()
        .unwrap_or("localhost")
        .trim_end_matches('>');
    b = b.message_id(Some(format!(
        "<{}.{}@{}>",
        x.now,
        &group_key_hash(&format!("{}{}", x.data.group_key, x.now))[..16],
        host_part
    )));
    let html = match c.html.as_deref() {
        Some(h) => x.html(h)?,
        None => x.html(r#"{{ template "email.default.html" . }}"#)?,
    };
    let text = match c.text.as_deref() {
        Some(t) => x.text(t)?,
        None => x.text(r#"{{ template "email.default.text" . }}"#)?,
    };
    let body = match (text.is_empty(), html.is_empty()) {
        (false, false) => MultiPart::alternative()
            .singlepart(SinglePart::plain(text))
            .singlepart(SinglePart::html(html)),
        (true, _) => MultiPart::mixed().singlepart(SinglePart::html(html)),
        (false, true) => MultiPart::mixed().singlepart(SinglePart::plain(text)),
    };
    let message = b
        .multipart(body)
        .map_err(|e| format!("cannot build the email: {e}"))?;
    let user = c
        .auth_username
        .clone()
        .or_else(|| g.smtp_auth_username.clone())
        .unwrap_or_default();
    let password = match x.secret(&c.auth_password, &c.auth_password_file)? {
        Some(p) => Some(p),
        None => x.secret(&g.smtp_auth_password, &g.smtp_auth_password_file)?,
    };
    let port = smarthost.rsplit(':').next().unwrap_or("");
    Ok(Prepared::Email(Box::new(EmailRequest {
        hello: c
            .hello
            .clone()
            .or_else(|| g.smtp_hello.clone())
            .unwrap_or_else(|| "localhost".into()),
        from: from.clone(),
        to,
        auth: (!user.is_empty()).then(|| (user, password.unwrap_or_default())),
        require_tls: c.require_tls.or(g.smtp_require_tls).unwrap_or(true),
        implicit_tls: c
            .force_implicit_tls
            .or(g.smtp_force_implicit_tls)
            .unwrap_or(port == "465"),
        tls: c
            .tls_config
            .as_ref()
            .or(g.smtp_tls_config.as_ref())
            .map(|t| x.tls(t)),
        smarthost,
        message,
    })))
}

/// An integration of a receiver: its name in the outbox and the
/// notification log (`slack/0`), whether it sends resolves, and its
/// `max_alerts` (webhooks; 0 for all).
pub struct IntegrationRef {
    /// `slack/0`, `webhook/1`, …
    pub name: String,
    /// Whether it sends resolves.
    pub send_resolved: bool,
    /// `max_alerts` (webhooks; 0 for all).
    pub max_alerts: u64,
}

/// The integrations of a receiver, in delivery order.
pub fn integrations(r: &super::amconfig::ReceiverConfig) -> Vec<IntegrationRef> {
    let mut out = Vec::new();
    let mut add = |kind: &str, i: usize, send_resolved: bool, max_alerts: u64| {
        out.push(IntegrationRef {
            name: format!("{kind}/{i}"),
            send_resolved,
            max_alerts,
        })
    };
    for (i, c) in r.webhook_configs.iter().enumerate() {
        add("webhook", i, c.send_resolved, c.max_alerts);
    }
    for (i, c) in r.slack_configs.iter().enumerate() {
        add("slack", i, c.send_resolved, 0);
    }
    for (i, c) in r.pagerduty_configs.iter().enumerate() {
        add("pagerduty", i, c.send_resolved, 0);
    }
    for (i, c) in r.email_configs.iter().enumerate() {
        add("email", i, c.send_resolved, 0);
    }
    for (i, c) in r.discord_configs.iter().enumerate() {
        add("discord", i, c.send_resolved, 0);
    }
    for (i, c) in r.msteams_configs.iter().enumerate() {
        add("msteams", i, c.send_resolved, 0);
    }
    for (i, c) in r.msteamsv2_configs.iter().enumerate() {
        add("msteamsv2", i, c.send_resolved, 0);
    }
    for (i, c) in r.telegram_configs.iter().enumerate() {
        add("telegram", i, c.send_resolved, 0);
    }
    for (i, c) in r.webex_configs.iter().enumerate() {
        add("webex", i, c.send_resolved, 0);
    }
    for (i, c) in r.opsgenie_configs.iter().enumerate() {
        add("opsgenie", i, c.send_resolved, 0);
    }
    for (i, c) in r.victorops_configs.iter().enumerate() {
        add("victorops", i, c.send_resolved, 0);
    }
    for (i, c) in r.incidentio_configs.iter().enumerate() {
        add("incidentio", i, c.send_resolved, c.max_alerts);
    }
    for (i, c) in r.mattermost_configs.iter().enumerate() {
        add("mattermost", i, c.send_resolved, 0);
    }
    for (i, c) in r.wechat_configs.iter().enumerate() {
        add("wechat", i, c.send_resolved, 0);
    }
    for (i, c) in r.rocketchat_configs.iter().enumerate() {
        add("rocketchat", i, c.send_resolved, 0);
    }
    for (i, c) in r.sns_configs.iter().enumerate() {
        add("sns", i, c.send_resolved, 0);
    }
    for (i, c) in r.pushover_configs.iter().enumerate() {
        add("pushover", i, c.send_resolved, 0);
    }
    for (i, c) in r.jira_configs.iter().enumerate() {
        add("jira", i, c.send_resolved, 0);
    }
    out
}

/// The request of integration `kind`/`idx` of receiver `r`: None when
/// the receiver has no such integration (any more), else the request or
/// why it cannot be made now. The one place an integration's name leads
/// to its builder, for delivery and for `argus template render`.
pub fn prepare(
    r: &super::amconfig::ReceiverConfig,
    kind: &str,
    idx: usize,
    x: &RenderCtx,
) -> Option<Result<Prepared, String>> {
    Some(match kind {
        "webhook" => webhook(r.webhook_configs.get(idx)?, x),
        "slack" => slack(r.slack_configs.get(idx)?, x),
        "pagerduty" => pagerduty(r.pagerduty_configs.get(idx)?, x),
        "email" => email(r.email_configs.get(idx)?, x),
        "discord" => discord(r.discord_configs.get(idx)?, x),
        "msteams" => msteams(r.msteams_configs.get(idx)?, x),
        "msteamsv2" => msteamsv2(r.msteamsv2_configs.get(idx)?, x),
        "telegram" => telegram(r.telegram_configs.get(idx)?, x),
        "webex" => webex(r.webex_configs.get(idx)?, x),
        "opsgenie" => opsgenie(r.opsgenie_configs.get(idx)?, x),
        "victorops" => victorops(r.victorops_configs.get(idx)?, x),
        "incidentio" => incidentio(r.incidentio_configs.get(idx)?, x),
        "mattermost" => mattermost(r.mattermost_configs.get(idx)?, x),
        "wechat" => wechat(r.wechat_configs.get(idx)?, x),
        "rocketchat" => rocketchat(r.rocketchat_configs.get(idx)?, x),
        "sns" => sns(r.sns_configs.get(idx)?, x),
        "pushover" => pushover(r.pushover_configs.get(idx)?, x),
        "jira" => jira(r.jira_configs.get(idx)?, x),
        _ => return None,
    })
}

/// Reads `Retry-After` (seconds or an HTTP date).
fn retry_after(h: Option<&reqwest::header::HeaderValue>, now: i64) -> Option<Duration> {
    let s = h?.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate_ms(s)?;
    Some(Duration::from_millis((at - now).max(0) as u64))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_ms(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, d, mon, y, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == mon)? + 1;
    let rfc = format!("{y}-{m:02}-{d:0>2}T{hms}Z");
    crate::model::parse_rfc3339(&rfc)
}

/// Sends requests, with clients per TLS setting.
pub struct Sender {
    default: reqwest::Client,
    /// Clients of integrations with a `tls_config`, by the settings and
    /// the contents of the files they name: building one is a TLS setup,
    /// and a rotated certificate still gets a new client without a reload.
    tls_clients: std::sync::Mutex<std::collections::HashMap<u64, reqwest::Client>>,
    /// WeChat access tokens by the hash of the `gettoken` URL (the
    /// corporation and its secret) and when each was fetched: WeChat
    /// limits how often a token may be asked for, and one lasts two hours.
    wechat_tokens: std::sync::Mutex<std::collections::HashMap<u64, (String, tokio::time::Instant)>>,
}

/// How long a WeChat access token is used before a new one is fetched.
const WECHAT_TOKEN_TTL: Duration = Duration::from_secs(2 * 3600);

/// Most TLS clients kept; past it the cache starts over.
const TLS_CLIENTS_MAX: usize = 64;

/// The cache key of a TLS setting: the setting and its files' contents.
fn tls_key(t: &crate::config::TlsConfig) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(t).unwrap_or_default().hash(&mut h);
    for f in [&t.ca_file, &t.cert_file, &t.key_file]
        .into_iter()
        .flatten()
    {
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

impl Sender {
    /// A sender with the default client.
    pub fn new() -> Result<Sender, String> {
        Ok(Sender {
            default: build_client(None)?,
            tls_clients: std::sync::Mutex::new(std::collections::HashMap::new()),
            wechat_tokens: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The client for `tls`: built once per setting and file contents.
    fn tls_client(&self, t: &crate::config::TlsConfig) -> Result<reqwest::Client, String> {
        let key = tls_key(t);
        let mut cache = self.tls_clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let c = build_client(Some(t))?;
        if cache.len() >= TLS_CLIENTS_MAX {
            cache.clear();
        }
        cache.insert(key, c.clone());
        Ok(c)
    }

    /// Sends `p`; `now` reads `Retry-After` dates.
    pub async fn send(&self, p: Prepared, now: i64) -> Outcome {
        self.send_noted(p, now).await.0
    }

    /// Sends `p`, with what the answer leaves for the group's next
    /// notification (Slack's message timestamp and channel).
    pub async fn send_noted(&self, p: Prepared, now: i64) -> (Outcome, Note) {
        match p {
            Prepared::Http(h) => self.http_noted(*h, now).await,
            other => (self.send_other(other, now).await, Note::new()),
        }
    }

    async fn send_other(&self, p: Prepared, now: i64) -> Outcome {
        match p {
            Prepared::Http(h) => self.http(*h, now).await,
            Prepared::HttpSeq(all) => {
                for h in all {
                    match self.http(h, now).await {
                        Outcome::Delivered => {}
                        other => return other,
                    }
                }
                Outcome::Delivered
            }
            Prepared::WeChat(w) => self.wechat(*w, now).await,
            Prepared::Signed(mut h, s) => {
                let url = match reqwest::Url::parse(h.url.expose()) {
                    Ok(u) => u,
                    Err(e) => return Outcome::Failed(format!("api_url: {e}")),
                };
                let method = match h.method {
                    Method::Post => "POST",
                    Method::Put => "PUT",
                    Method::Get => "GET",
                };
                h.headers
                    .extend(s.headers(method, &url, h.content_type, &h.body, now));
                self.http(*h, now).await
            }
            Prepared::Email(e) => send_email(*e).await,
            Prepared::Jira(j) => self.jira(*j, now).await,
        }
    }

    /// The calls of a Jira notification; any failure retries it from the
    /// search, which finds the issue an earlier try created.
    async fn jira(&self, j: JiraRequest, now: i64) -> Outcome {
        let call = |method: Method, path: &str, body: Vec<u8>| HttpRequest {
            method,
            content_type: JSON,
            url: Secret::new(format!("{}/{path}", j.base)),
            headers: j.search.headers.clone(),
            body,
            timeout: j.search.timeout,
            http: j.search.http.clone(),
            retry_codes: &[429],
            check: BodyCheck::None,
        };
        let found = match self.http_body(j.search.clone(), now).await {
            Ok(b) => b,
            Err(o) => return o,
        };
        let found: serde_json::Value = match serde_json::from_slice(&found) {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(format!("Jira search answer: {e}")),
        };
        let issue = &found["issues"][0];
        let key = issue["key"].as_str().filter(|k| !k.is_empty());
        let Some(key) = key else {
            // No issue: a resolved group has nothing to close.
            if !j.firing {
                return Outcome::Delivered;
            }
            let body = go_json(&serde_json::json!({ "fields": j.fields }));
            return self.http(call(Method::Post, "issue", body), now).await;
        };
        let mut fields = j.fields.clone();
        if !j.update_summary {
            fields.remove("summary");
        }
        if !j.update_description {
            fields.remove("description");
        }
        let body = go_json(&serde_json::json!({ "fields": fields }));
        match self
            .http(call(Method::Put, &format!("issue/{key}"), body), now)
            .await
        {
            Outcome::Delivered => {}
            other => return other,
        }
        let done = issue["fields"]["status"]["statusCategory"]["key"] == "done";
        if issue["fields"]["status"].is_null() {
            return Outcome::Delivered;
        }
        let transition = match (j.firing, done) {
            (true, true) => &j.reopen_transition,
            (false, false) => &j.resolve_transition,
            _ => return Outcome::Delivered,
        };
        if transition.is_empty() {
            return Outcome::Delivered;
        }
        let path = format!("issue/{key}/transitions");
        let list = match self
            .http_body(call(Method::Get, &path, Vec::new()), now)
            .await
        {
            Ok(b) => b,
            Err(o) => return o,
        };
        let list: serde_json::Value = serde_json::from_slice(&list).unwrap_or_default();
        let id = list["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == transition.as_str())
            .and_then(|t| t["id"].as_str());
        let Some(id) = id else {
            return Outcome::Failed(format!(
                "can't find transition {transition} for issue {key}"
            ));
        };
        let body = go_json(&serde_json::json!({ "transition": { "id": id } }));
        self.http(call(Method::Post, &path, body), now).await
    }

    /// A WeChat notification: the cached access token or a new one, then
    /// the message with it. Any failure of the message drops the token,
    /// so the retry asks for a new one (WeChat answers 42001 when a
    /// token expired early).
    async fn wechat(&self, w: WeChatRequest, now: i64) -> Outcome {
        let key = {
            let mut h = crate::model::FastHasher::default();
            std::hash::Hasher::write(&mut h, w.token_url.expose().as_bytes());
            std::hash::Hasher::finish(&h)
        };
        let lock = || self.wechat_tokens.lock().unwrap_or_else(|e| e.into_inner());
        let cached = lock()
            .get(&key)
            .filter(|(_, at)| at.elapsed() < WECHAT_TOKEN_TTL)
            .map(|(t, _)| t.clone());
        let token = match cached {
            Some(t) => t,
            None => {
                let get = HttpRequest {
                    method: Method::Get,
                    content_type: JSON,
                    url: w.token_url,
                    headers: Vec::new(),
                    body: Vec::new(),
                    timeout: w.send.timeout,
                    http: w.send.http.clone(),
                    retry_codes: &[429],
                    check: BodyCheck::None,
                };
                let body = match self.http_body(get, now).await {
                    Ok(b) => b,
                    Err(o) => return o,
                };
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                match v["access_token"].as_str().filter(|t| !t.is_empty()) {
                    Some(t) => {
                        lock().insert(key, (t.to_string(), tokio::time::Instant::now()));
                        t.to_string()
                    }
                    None => {
                        return Outcome::Failed(format!(
                            "WeChat gave no access token (check api_secret and corp_id): {}",
                            v["errmsg"].as_str().unwrap_or("no errmsg")
                        ));
                    }
                }
            }
        };
        let mut send = w.send;
        let url = match reqwest::Url::parse(send.url.expose()) {
            Ok(mut u) => {
                u.query_pairs_mut().append_pair("access_token", &token);
                u
            }
            Err(e) => return Outcome::Failed(format!("wechat api_url: {e}")),
        };
        send.url = Secret::new(url.to_string());
        send.check = BodyCheck::WeChat;
        let out = self.http(send, now).await;
        if !matches!(out, Outcome::Delivered) {
            lock().remove(&key);
        }
        out
    }

    /// Makes the request and reads the reply (within its byte budget).
    async fn exchange(&self, h: HttpRequest, now: i64) -> Result<Reply, Outcome> {
        let tls = h.http.as_ref().and_then(|c| c.tls_config.clone());
        let client = match tls {
            Some(t) => match self.tls_client(&t) {
                Ok(c) => c,
                Err(e) => return Err(Outcome::Failed(format!("client: {e}"))),
            },
            None => self.default.clone(),
        };
        let mut req = match h.method {
            Method::Post => client.post(h.url.expose()),
            Method::Put => client.put(h.url.expose()),
            Method::Get => client.get(h.url.expose()),
        }
        .timeout(h.timeout)
        .header("User-Agent", concat!("argus/", env!("CARGO_PKG_VERSION")));
        if h.method != Method::Get {
            req = req.header("Content-Type", h.content_type).body(h.body);
        }
        for (k, v) in &h.headers {
            req = req.header(k.as_str(), v.expose());
        }
        if let Some(c) = &h.http {
            req = crate::credentials_of!(c)
                .apply(req)
                .map_err(Outcome::Failed)?;
        }
        let resp = match req.send().await {
            Ok(r) => r,
            // The URL may carry a secret (Slack webhooks): report without it.
            Err(e) => {
                return Err(Outcome::Retry {
                    reason: error_chain(&e.without_url()),
                    after: None,
                });
            }
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers().get("retry-after"), now);
        let json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = crate::net::read_reply(resp).await.to_vec();
        Ok(Reply {
            status,
            after,
            json,
            body,
        })
    }

    /// The body of a 2xx reply, or the outcome of any other.
    async fn http_body(&self, h: HttpRequest, now: i64) -> Result<Vec<u8>, Outcome> {
        let retry_codes = h.retry_codes;
        let r = self.exchange(h, now).await?;
        if (200..300).contains(&r.status) {
            return Ok(r.body);
        }
        Err(status_outcome(&r, r.after, retry_codes))
    }

    async fn http(&self, h: HttpRequest, now: i64) -> Outcome {
        self.http_noted(h, now).await.0
    }

    async fn http_noted(&self, h: HttpRequest, now: i64) -> (Outcome, Note) {
        let mut note = Note::new();
        let outcome = self.http_checked(h, now, &mut note).await;
        (outcome, note)
    }

    async fn http_checked(&self, h: HttpRequest, now: i64, note: &mut Note) -> Outcome {
        let (check, retry_codes) = (h.check, h.retry_codes);
        let r = match self.exchange(h, now).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        let (status, json, body) = (r.status, r.json, &r.body);
        let snippet = r.snippet();
        if (200..300).contains(&status) {
            if check == BodyCheck::Slack {
                if json {
                    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                    if v["ok"] != true {
                        return Outcome::Failed(format!(
                            "error response from Slack: {}",
                            v["error"].as_str().unwrap_or(&snippet)
                        ));
                    }
                    if let (Some(ts), Some(ch)) = (v["ts"].as_str(), v["channel"].as_str()) {
                        if !ts.is_empty() && !ch.is_empty() {
                            note.insert("threadTs".into(), ts.into());
                            note.insert("channelId".into(), ch.into());
                        }
                    }
                } else if &body[..] != b"ok" {
                    return Outcome::Failed(format!("error response from Slack: {snippet}"));
                }
            }
            if check == BodyCheck::Telegram {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                if v["ok"] != true {
                    return Outcome::Failed(format!(
                        "error response from Telegram: {}",
                        v["description"].as_str().unwrap_or(&snippet)
                    ));
                }
            }
            if check == BodyCheck::RocketChat {
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
                    return Outcome::Retry {
                        reason: format!("answer from Rocket.Chat is not JSON: {snippet}"),
                        after: None,
                    };
                };
                if v["success"] != true {
                    return Outcome::Failed(format!(
                        "error response from Rocketchat: {}",
                        v["error"].as_str().unwrap_or(&snippet)
                    ));
                }
            }
            if check == BodyCheck::WeChat {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                let msg = v["errmsg"].as_str().unwrap_or(&snippet).to_string();
                return match v["errcode"].as_i64() {
                    Some(0) => Outcome::Delivered,
                    // An access token that expired early, or an answer
                    // that is not WeChat's: worth another try.
                    Some(42001) | None => Outcome::Retry {
                        reason: format!("error response from WeChat: {msg}"),
                        after: None,
                    },
                    Some(code) => {
                        Outcome::Failed(format!("error response from WeChat ({code}): {msg}"))
                    }
                };
            }
            return Outcome::Delivered;
        }
        if check == BodyCheck::Aws && snippet.contains("<Code>Throttling</Code>") {
            return Outcome::Retry {
                reason: format!("throttled by AWS: {snippet}"),
                after: r.after,
            };
        }
        let after = r.after.or_else(|| {
            // Telegram says how long to wait in its body.
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            (check == BodyCheck::Telegram)
                .then(|| v["parameters"]["retry_after"].as_u64())
                .flatten()
                .map(Duration::from_secs)
        });
        status_outcome(&r, after, retry_codes)
    }
}

/// A reply to an integration's request.
struct Reply {
    status: u16,
    after: Option<Duration>,
    json: bool,
    body: Vec<u8>,
}

impl Reply {
    /// The start of the body, for error messages.
    fn snippet(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(512)]).into_owned()
    }
}

/// What a non-2xx status means: 5xx and the integration's `retry_codes`
/// are tried again (after `after` when the server said), the rest fail.
fn status_outcome(r: &Reply, after: Option<Duration>, retry_codes: &[u16]) -> Outcome {
    let reason = format!("unexpected status code {}: {}", r.status, r.snippet());
    if r.status >= 500 || retry_codes.contains(&r.status) {
        Outcome::Retry { reason, after }
    } else {
        Outcome::Failed(reason)
    }
}

async fn send_email(e: EmailRequest) -> Outcome {
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::transport::smtp::extension::ClientId;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let (host, port) = match e.smarthost.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p,
            ),
            Err(_) => return Outcome::Failed(format!("invalid smarthost {:?}", e.smarthost)),
        },
        None => return Outcome::Failed(format!("smarthost {:?} has no port", e.smarthost)),
    };
    let t = e.tls.clone().unwrap_or_default();
    let mut tp = TlsParameters::builder(t.server_name.clone().unwrap_or_else(|| host.clone()));
    if let Some(ca) = &t.ca_file {
        let pem = match std::fs::read(ca) {
            Ok(p) => p,
            Err(err) => return Outcome::Failed(format!("unable to read CA file {ca}: {err}")),
        };
        match Certificate::from_pem(&pem) {
            Ok(c) => tp = tp.add_root_certificate(c),
            Err(err) => return Outcome::Failed(format!("unable to use CA file {ca}: {err}")),
        }
    }
    if t.insecure_skip_verify {
        tp = tp.dangerous_accept_invalid_certs(true);
    }
    let params = match tp.build_rustls() {
        Ok(p) => p,
        Err(err) => return Outcome::Failed(format!("TLS settings: {err}")),
    };
    let tls = if e.implicit_tls {
        Tls::Wrapper(params)
    } else if e.require_tls {
        Tls::Required(params)
    } else {
        Tls::Opportunistic(params)
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .hello_name(ClientId::Domain(e.hello.clone()))
        .timeout(Some(SEND_TIMEOUT));
    if let Some((u, p)) = &e.auth {
        b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
            u.clone(),
            p.expose().to_string(),
        ));
    }
    let transport = b.build();
    let envelope = match lettre::address::Envelope::new(
        e.from
            .trim()
            .parse::<lettre::message::Mailbox>()
            .ok()
            .map(|m| m.email),
        e.to.iter().filter_map(|t| t.parse().ok()).collect(),
    ) {
        Ok(v) => v,
        Err(err) => return Outcome::Failed(format!("envelope: {err}")),
    };
    match transport.send_raw(&envelope, &e.message.formatted()).await {
        Ok(_) => Outcome::Delivered,
        Err(err) if err.is_permanent() => Outcome::Failed(format!("SMTP: {}", error_chain(&err))),
        Err(err) => Outcome::Retry {
            reason: format!("SMTP: {}", error_chain(&err)),
            after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(s: &SigV4, method: &str, url: &str, body: &[u8], now: i64) -> String {
        let url = reqwest::Url::parse(url).unwrap();
        s.headers(method, &url, AWS_FORM, body, now)
            .into_iter()
            .find(|(k, _)| k == "Authorization")
            .unwrap()
            .1
            .expose()
            .to_string()
    }

    /// AWS's own Signature V4 example (IAM `ListUsers`, 2015-08-30
    /// 12:36:00), and an SNS `Publish` to a local endpoint as botocore
    /// signs it.
    #[test]
    fn sigv4_signs_as_aws_does() {
        let at = 1_440_938_160_000; // 2015-08-30T12:36:00Z
        let iam = SigV4 {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            region: "us-east-1".into(),
            service: "iam",
        };
        assert_eq!(
            auth(
                &iam,
                "GET",
                "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
                b"",
                at
            ),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        let sns = SigV4 {
            access_key: "AKID".into(),
            secret_key: Secret::new("SECRET"),
            session_token: None,
            region: "us-east-2".into(),
            service: "sns",
        };
        assert_eq!(
            auth(
                &sns,
                "POST",
                "http://127.0.0.1:8080/",
                b"Action=Publish&Message=hi&TopicArn=arn%3Aaws%3Asns%3Aus-east-2%3A123%3At&Version=2010-03-31",
                at + 999
            ),
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-2/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=f67dee7d6202009e3ebe3d079c03547973f0014abd0be486a09e93f251aa013c"
        );
    }
}
