//! Getting alerts to people: forwarding to existing Alertmanagers
//! (`forward`, one queue per Alertmanager), Alertmanager's configuration
//! format (`amconfig`, with the integrations' settings in `integrations`),
//! its matcher syntax (`matchers`) and route tree
//! (`route`); argus's own dispatching (`dispatch`, `notifier`), inhibition
//! (`inhibit`) and silences (`silence`).

mod amconfig;
mod dispatch;
mod forward;
mod inhibit;
mod integrations;
mod matchers;
mod notifier;
mod outbox;
mod postable;
mod route;
mod send;
mod silence;
mod timeinterval;
mod tmpl;
mod webhook;

pub use amconfig::{
    AmConfig, InhibitRuleConfig, ReceiverConfig, RouteConfig, Strictness, load_am_config,
    parse_am_config, routing_of,
};
pub use dispatch::{
    Dispatcher, Flush, GroupedAlert, LogEntry, NotificationLog, fingerprint, label_set_string,
};
pub use forward::{Forwarder, MAX_BATCH, QUEUE_CAPACITY, alerts_body};
pub use inhibit::Inhibitor;
pub use integrations::{
    DiscordConfig, EmailConfig, GlobalConfig, HttpConfig, IncidentioConfig, MattermostConfig,
    MsTeamsConfig, MsTeamsV2Config, OPSGENIE_API_URL, OpsGenieConfig, OpsGenieResponder,
    PAGERDUTY_URL, PUSHOVER_API_URL, PagerdutyConfig, PushoverConfig, SLACK_APP_URL, SlackConfig,
    TELEGRAM_API_URL, TelegramConfig, VICTOROPS_API_URL, VictorOpsConfig, WEBEX_API_URL,
    WebexConfig, WebhookConfig,
};
pub use matchers::{
    MatcherSyntaxError, matchers_string, parse_matcher, parse_matchers, sort_matchers,
};
pub use notifier::{AlertView, Fanout, NFLOG_FILE, Notifier, OUTBOX_FILE, PeerSync, SILENCES_FILE};
pub use outbox::{
    LimiterClock, Next, Outbox, OutboxSettings, Outcome, Pending, QueueCounts, Rate, queue_key,
};
pub use postable::{PostableAlert, Posted};
pub use route::{Route, TreeNode, matching_tree, print_tree};
pub use send::{
    BodyCheck, EmailRequest, HttpRequest, IntegrationRef, PAGERDUTY_V1_URL, Prepared, RenderCtx,
    SEND_TIMEOUT, Sender, group_key_hash, integrations, prepare, redact_body, redact_url,
};
pub use silence::{
    ApiMatcher, SILENCE_RETENTION_MS, Silence, SilenceError, SilenceState, Silences, new_uuid,
};
pub use timeinterval::{TimeInterval, any_contains};
pub use tmpl::{
    AlertData, DEFAULT_TEMPLATES, NotificationData, Templates, TemplatesError, quote_meta,
};
pub use webhook::{alerts_to_send, webhook_body, webhook_data};
