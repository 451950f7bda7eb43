//! Alerting and recording rules: rule files (`file`), template expansion
//! (`expand`) and group evaluation with the alert state machine (`group`).
//! Scheduling, persistence and sending come with the rule evaluation issue.

mod expand;
mod file;
mod group;
mod manager;

pub use expand::{AlertData, expand_alert_template};
pub use group::{
    Alert, AlertState, AlertingRule, EvalEnv, Group, RESOLVED_RETENTION_MS, RecordingRule, Rule,
};
pub use manager::{GroupState, RuleManager, RulesError, load_groups};

pub use file::{
    NameValidation, RuleError, RuleFile, RuleGroup, RuleNode, load_rule_file, parse_rule_file,
};
