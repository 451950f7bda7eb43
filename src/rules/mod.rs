//! Alerting and recording rules: rule files (`file`), template expansion
//! (`expand`), group evaluation with the alert state machine (`group`),
//! scheduling (`manager`) and alert state that survives restarts
//! (`persist`).

mod expand;
mod file;
mod group;
mod manager;
mod persist;
mod unittest;

pub use expand::{AlertData, expand_alert_template};
pub use group::{
    Alert, AlertState, AlertingRule, EvalEnv, Group, RESOLVED_RETENTION_MS, RecordingRule, Rule,
};
pub use manager::{GroupState, RuleManager, RulesError, load_groups, rule_file_paths};
pub use persist::{ALERTS_FILE, PersistError, Restored, SavedState, load as load_alert_state};
pub use unittest::{
    AlertRuleRef, FileOutcome, GroupOutcome, UnitTestOptions, check_test_text,
    run_file as run_unit_test_file, test_expression,
};

pub use file::{
    NameValidation, RuleError, RuleFile, RuleGroup, RuleNode, duplicate_rules,
    duplicate_rules_message, load_rule_file, load_rule_file_with, parse_rule_file,
    parse_rule_file_with,
};
