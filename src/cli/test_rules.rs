//! `argus test rules`: promtool's rule unit tests, with promtool's output
//! and exit codes, plus JUnit XML and a coverage list of alerting rules
//! no test checked.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::rules::{AlertRuleRef, FileOutcome, UnitTestOptions, run_unit_test_file};

/// What `argus test rules` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct TestRulesArgs {
    /// Unit-test files.
    pub files: Vec<PathBuf>,
    /// `--run` patterns; a group runs when its name matches any.
    pub run: Vec<String>,
    /// Ignore unknown keys in rule files.
    pub ignore_unknown_fields: bool,
    /// Write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Print the alerting rules no `alert_rule_test` names.
    pub coverage: bool,
}

/// Why the tests could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum TestRulesError {
    /// A `--run` pattern is not a valid regular expression.
    #[error("--run: {0}")]
    Run(String),
    /// The JUnit file cannot be written.
    #[error("--junit {path}: {msg}")]
    Junit {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
}

/// Runs every file, printing as promtool does (`Unit Testing:  FILE`, then
/// `  SUCCESS` or `  FAILED:` and each failure on stderr). Returns whether
/// all passed.
pub fn test_rules(args: &TestRulesArgs) -> Result<bool, TestRulesError> {
    let run = if args.run.is_empty() {
        None
    } else {
        Some(
            regex::Regex::new(&args.run.join("|"))
                .map_err(|e| TestRulesError::Run(e.to_string()))?,
        )
    };
    let opts = UnitTestOptions {
        run,
        ignore_unknown_fields: args.ignore_unknown_fields,
    };
    let mut all_ok = true;
    let mut outcomes = Vec::new();
    for f in &args.files {
        println!("Unit Testing:  {}", f.display());
        let o = run_unit_test_file(f, &opts);
        if o.passed() {
            println!("  SUCCESS");
        } else {
            all_ok = false;
            eprintln!("  FAILED:");
            for e in o.failures() {
                eprintln!("{e}");
                println!();
            }
        }
        println!();
        outcomes.push(o);
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit_xml(&outcomes)).map_err(|e| TestRulesError::Junit {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
    }
    if args.coverage {
        print!("{}", coverage_report(&outcomes));
    }
    Ok(all_ok)
}

/// Alerting rules that no `alert_rule_test` of any file names.
pub fn untested_alerts(outcomes: &[FileOutcome]) -> Vec<AlertRuleRef> {
    let tested: std::collections::BTreeSet<&String> = outcomes
        .iter()
        .flat_map(|o| o.tested_alerts.iter())
        .collect();
    let all: std::collections::BTreeSet<&AlertRuleRef> =
        outcomes.iter().flat_map(|o| o.alert_rules.iter()).collect();
    all.into_iter()
        .filter(|r| !tested.contains(&r.alert))
        .cloned()
        .collect()
}

fn coverage_report(outcomes: &[FileOutcome]) -> String {
    let total: std::collections::BTreeSet<&AlertRuleRef> =
        outcomes.iter().flat_map(|o| o.alert_rules.iter()).collect();
    let untested = untested_alerts(outcomes);
    let mut s = format!(
        "Alerting rule coverage: {} of {} alerting rules have an alert_rule_test\n",
        total.len() - untested.len(),
        total.len()
    );
    for r in &untested {
        let _ = writeln!(
            s,
            "  not tested: {} (group {:?}, {})",
            r.alert, r.group, r.file
        );
    }
    s
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            '\n' => o.push_str("&#xA;"),
            '\t' => o.push_str("&#x9;"),
            '\r' => o.push_str("&#xD;"),
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML as promtool writes it: one `testsuite` per file, one
/// `testcase` per test group, a `failure` per failure and an `error` for
/// a file that could not run.
pub fn junit_xml(outcomes: &[FileOutcome]) -> String {
    let now = crate::model::format_rfc3339(crate::model::now_millis());
    let stamp = now.get(..19).unwrap_or(&now);
    let mut s = String::from("<testsuites>");
    for o in outcomes {
        let failures: usize = o.groups.iter().map(|g| g.failures.len()).sum();
        let errors = usize::from(o.error.is_some());
        let _ = write!(
            s,
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" timestamp=\"{stamp}\">",
            xml_escape(&o.file),
            o.groups.len().max(errors)
        );
        if let Some(e) = &o.error {
            let _ = write!(
                s,
                "<testcase name=\"unknown\"><error>{}</error></testcase>",
                xml_escape(e)
            );
        }
        for g in &o.groups {
            let _ = write!(
                s,
                "<testcase name=\"{}\" time=\"{:.3}\">",
                xml_escape(&g.name),
                g.seconds
            );
            for f in &g.failures {
                let _ = write!(s, "<failure>{}</failure>", xml_escape(f));
            }
            s.push_str("</testcase>");
        }
        s.push_str("</testsuite>");
    }
    s.push_str("</testsuites>");
    s
}
