//! Alerting and recording rules: rule files (`file`), and, as the rule
//! evaluation issue lands, group evaluation, the alert state machine and
//! its persistence.

mod expand;
mod file;

pub use expand::{AlertData, expand_alert_template};

pub use file::{
    NameValidation, RuleError, RuleFile, RuleGroup, RuleNode, load_rule_file, parse_rule_file,
};
