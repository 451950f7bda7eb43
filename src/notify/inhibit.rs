//! Inhibition with Alertmanager's semantics: an alert matching a rule's
//! target matchers is muted while some other firing alert matches its
//! source matchers and has the same values of the `equal` labels. When the
//! muted alert matches both sides, sources that also match the target side
//! do not count (Alertmanager's guard against two alerts muting each
//! other).
//!
//! Each rule keeps its source alerts indexed by their `equal` values, so a
//! check costs a hash lookup per rule, not a scan of every alert
//! (Alertmanager scans, which is quadratic at scale: its #3932).

use std::collections::HashMap;

use super::amconfig::InhibitRuleConfig;
use super::matchers::parse_matchers;
use crate::model::{Alert, Labels, MatchOp, Matcher};

struct Source {
    ends_at: i64,
    matches_target: bool,
}

struct Rule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
    /// Source alerts by the values of their `equal` labels, then by
    /// fingerprint.
    sources: HashMap<String, HashMap<u64, Source>>,
}

fn all_match(ms: &[Matcher], l: &Labels) -> bool {
    ms.iter().all(|m| m.matches_labels(l))
}

fn legacy(
    eq: &std::collections::BTreeMap<String, String>,
    re: &std::collections::BTreeMap<String, Option<String>>,
    list: &[String],
) -> Vec<Matcher> {
    let mut out: Vec<Matcher> = eq
        .iter()
        .filter_map(|(k, v)| Matcher::new(MatchOp::Equal, k.clone(), v.clone()).ok())
        .collect();
    out.extend(re.iter().filter_map(|(k, v)| {
        let v = v.as_ref()?;
        Matcher::new(MatchOp::Regex, k.clone(), format!("^(?:{v})$")).ok()
    }));
    for l in list {
        out.extend(parse_matchers(l).unwrap_or_default());
    }
    out
}

impl Rule {
    fn key(&self, l: &Labels) -> String {
        let mut k = String::new();
        for n in &self.equal {
            k.push_str(l.get(n).unwrap_or(""));
            k.push('\u{ff}');
        }
        k
    }
}

/// The inhibition rules of a configuration with their source index.
#[derive(Default)]
pub struct Inhibitor {
    rules: Vec<Rule>,
}

impl Inhibitor {
    /// Rules from a validated configuration.
    pub fn new(cfgs: &[InhibitRuleConfig]) -> Self {
        Inhibitor {
            rules: cfgs
                .iter()
                .map(|c| Rule {
                    source: legacy(&c.source_match, &c.source_match_re, &c.source_matchers),
                    target: legacy(&c.target_match, &c.target_match_re, &c.target_matchers),
                    equal: c.equal.clone(),
                    sources: HashMap::new(),
                })
                .collect(),
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Takes note of an alert (a new one, or a new version of one).
    pub fn observe(&mut self, fp: u64, a: &Alert) {
        for r in self.rules.iter_mut() {
            if !all_match(&r.source, &a.labels) {
                continue;
            }
            let key = r.key(&a.labels);
            let matches_target = all_match(&r.target, &a.labels);
            r.sources.entry(key).or_default().insert(
                fp,
                Source {
                    ends_at: a.ends_at,
                    matches_target,
                },
            );
        }
    }

    /// Drops sources that ended before `before` (ms).
    pub fn gc(&mut self, before: i64) {
        for r in self.rules.iter_mut() {
            r.sources.retain(|_, m| {
                m.retain(|_, s| s.ends_at >= before);
                !m.is_empty()
            });
        }
    }

    /// Whether an alert with `labels` (fingerprint `fp`) is muted at `now`.
    pub fn is_inhibited(&self, fp: u64, labels: &Labels, now: i64) -> bool {
        self.rules.iter().any(|r| {
            if !all_match(&r.target, labels) {
                return false;
            }
            let two_sided = all_match(&r.source, labels);
            r.sources.get(&r.key(labels)).is_some_and(|m| {
                m.iter().any(|(sfp, s)| {
                    s.ends_at > now && *sfp != fp && !(two_sided && s.matches_target)
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::amconfig::{Strictness, parse_am_config};
    use std::collections::BTreeMap;

    fn alert(pairs: &[(&str, &str)], ends: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(pairs.iter().copied()),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at: ends,
            generator_url: String::new(),
        }
    }

    #[test]
    fn mutes_as_alertmanager_does() {
        let cfg = parse_am_config(
            "route: {receiver: r}\nreceivers: [{name: r}]\ninhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [alertname, service]\n  - source_match: {alertname: Outage}\n    target_match_re: {alertname: '.*'}\n",
            "am.yml",
            Strictness::Routing,
        )
        .unwrap();
        let mut inh = Inhibitor::new(&cfg.inhibit_rules);
        let crit = alert(
            &[
                ("alertname", "Lat"),
                ("service", "api"),
                ("severity", "critical"),
            ],
            100,
        );
        let warn = alert(
            &[
                ("alertname", "Lat"),
                ("service", "api"),
                ("severity", "warning"),
            ],
            100,
        );
        let other = alert(
            &[
                ("alertname", "Lat"),
                ("service", "db"),
                ("severity", "warning"),
            ],
            100,
        );
        inh.observe(1, &crit);
        assert!(inh.is_inhibited(2, &warn.labels, 50));
        assert!(
            !inh.is_inhibited(3, &other.labels, 50),
            "equal labels differ"
        );
        assert!(!inh.is_inhibited(1, &crit.labels, 50), "not a target");
        // The source resolved: no longer muting.
        assert!(!inh.is_inhibited(2, &warn.labels, 100));
        // Outage mutes everything but itself (matches both sides).
        let outage = alert(&[("alertname", "Outage")], 1000);
        inh.observe(9, &outage);
        assert!(inh.is_inhibited(3, &other.labels, 500));
        assert!(!inh.is_inhibited(9, &outage.labels, 500));
        // Another Outage alert matches both sides too: sources that match
        // the target side do not mute it.
        let outage2 = alert(&[("alertname", "Outage"), ("zone", "b")], 1000);
        assert!(!inh.is_inhibited(10, &outage2.labels, 500));
        inh.gc(2000);
        assert!(!inh.is_inhibited(3, &other.labels, 500));
    }
}
