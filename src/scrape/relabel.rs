//! Relabeling with Prometheus's semantics: anchored regexes, `$1`/`${name}`
//! expansion, and all eleven actions.

use std::sync::Arc;

use regex::Regex;

use crate::config::RelabelConfig;
use crate::model::{LabelsBuilder, MatcherError};

/// A relabel action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Set `target_label` to the expanded replacement when the regex matches.
    Replace,
    /// Drop the target/sample unless the regex matches.
    Keep,
    /// Drop the target/sample when the regex matches.
    Drop,
    /// Drop unless the joined source value equals the target label's value.
    KeepEqual,
    /// Drop when the joined source value equals the target label's value.
    DropEqual,
    /// Set `target_label` to md5(joined) mod `modulus`.
    HashMod,
    /// Copy labels whose names match to names built from the replacement.
    LabelMap,
    /// Remove labels whose names match.
    LabelDrop,
    /// Remove labels whose names do not match.
    LabelKeep,
    /// Set `target_label` to the lowercased joined value.
    Lowercase,
    /// Set `target_label` to the uppercased joined value.
    Uppercase,
}

/// A compiled relabel step.
#[derive(Clone, Debug)]
pub struct Relabel {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: Action,
}

impl Relabel {
    /// Compiles a validated config entry with Prometheus's defaults.
    pub fn compile(c: &RelabelConfig) -> Result<Relabel, MatcherError> {
        let action = match c.action.as_deref().unwrap_or("replace") {
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => Action::Replace,
        };
        Ok(Relabel {
            source_labels: c.source_labels.clone(),
            separator: c.separator.clone().unwrap_or_else(|| ";".into()),
            regex: crate::model::anchored_regex(c.regex.as_deref().unwrap_or("(.*)"))?,
            modulus: c.modulus.unwrap_or(0),
            target_label: c.target_label.clone().unwrap_or_default(),
            replacement: c.replacement.clone().unwrap_or_else(|| "$1".into()),
            action,
        })
    }

    /// Compiles a list.
    pub fn compile_all(cs: &[RelabelConfig]) -> Result<Vec<Relabel>, MatcherError> {
        cs.iter().map(Relabel::compile).collect()
    }
}

/// Applies `steps` in order; returns false if the label set was dropped.
/// An empty result also counts as dropped, as in Prometheus.
pub fn process(b: &mut LabelsBuilder, steps: &[Relabel]) -> bool {
    for s in steps {
        if !apply(b, s) {
            return false;
        }
    }
    !b.is_empty()
}

fn apply(b: &mut LabelsBuilder, r: &Relabel) -> bool {
    let mut val = String::new();
    for (i, n) in r.source_labels.iter().enumerate() {
        if i > 0 {
            val.push_str(&r.separator);
        }
        val.push_str(b.get(n).unwrap_or(""));
    }
    match r.action {
        Action::Drop => {
            if r.regex.is_match(&val) {
                return false;
            }
        }
        Action::Keep => {
            if !r.regex.is_match(&val) {
                return false;
            }
        }
        Action::DropEqual => {
            if b.get(&r.target_label).unwrap_or("") == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if b.get(&r.target_label).unwrap_or("") != val {
                return false;
            }
        }
        Action::Replace => {
            let Some(caps) = r.regex.captures(&val) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&r.target_label, &mut target);
            if target.is_empty() {
                return true;
            }
            let mut res = String::new();
            caps.expand(&r.replacement, &mut res);
            b.set(Arc::from(target), Arc::from(res));
        }
        Action::Lowercase => b.set(
            Arc::from(r.target_label.as_str()),
            Arc::from(val.to_lowercase()),
        ),
        Action::Uppercase => b.set(
            Arc::from(r.target_label.as_str()),
            Arc::from(val.to_uppercase()),
        ),
        Action::HashMod => {
            let d = md5::compute(val.as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&d.0[8..16]);
            let m = u64::from_be_bytes(tail) % r.modulus.max(1);
            b.set(Arc::from(r.target_label.as_str()), Arc::from(m.to_string()));
        }
        Action::LabelMap => {
            let adds: Vec<(String, Arc<str>)> = b
                .labels()
                .iter()
                .filter_map(|l| {
                    let caps = r.regex.captures(&l.name)?;
                    let mut n = String::new();
                    caps.expand(&r.replacement, &mut n);
                    Some((n, l.value.clone()))
                })
                .collect();
            for (n, v) in adds {
                b.set(Arc::from(n), v);
            }
        }
        Action::LabelDrop => b.retain(|l| !r.regex.is_match(&l.name)),
        Action::LabelKeep => b.retain(|l| r.regex.is_match(&l.name)),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn run(yaml: &str, input: &[(&str, &str)]) -> Option<String> {
        let cs: Vec<RelabelConfig> = serde_saphyr::from_str(yaml).unwrap();
        let steps = Relabel::compile_all(&cs).unwrap();
        let mut b = Labels::from_pairs(input.iter().copied()).builder();
        process(&mut b, &steps).then(|| b.build().to_string())
    }

    // Examples follow the Prometheus configuration documentation.
    #[test]
    fn replace() {
        assert_eq!(
            run("- source_labels: [a, b]\n  regex: '(.*);(.*)'\n  target_label: c\n  replacement: '${2}-$1'\n", &[("a", "x"), ("b", "y")]).unwrap(),
            "{a=\"x\", b=\"y\", c=\"y-x\"}"
        );
        // No match: unchanged. `$1x` is the (missing) group "1x", as in Go.
        assert_eq!(
            run(
                "- source_labels: [a]\n  regex: 'z'\n  target_label: c\n",
                &[("a", "x")]
            )
            .unwrap(),
            "{a=\"x\"}"
        );
        assert_eq!(
            run(
                "- source_labels: [a]\n  target_label: c\n  replacement: '$1x'\n",
                &[("a", "v")]
            )
            .unwrap(),
            "{a=\"v\"}"
        );
        // Empty replacement deletes the target.
        assert_eq!(
            run(
                "- source_labels: [z]\n  target_label: a\n",
                &[("a", "x"), ("b", "1")]
            )
            .unwrap(),
            "{b=\"1\"}"
        );
        // Target label built from captures.
        assert_eq!(
            run(
                "- source_labels: [a]\n  regex: '(.+)'\n  target_label: 'l_$1'\n  replacement: v\n",
                &[("a", "k")]
            )
            .unwrap(),
            "{a=\"k\", l_k=\"v\"}"
        );
        // Regex is anchored.
        assert_eq!(
            run(
                "- source_labels: [a]\n  regex: 'b'\n  target_label: c\n  replacement: hit\n",
                &[("a", "abc")]
            )
            .unwrap(),
            "{a=\"abc\"}"
        );
    }

    #[test]
    fn keep_drop_and_equal() {
        assert!(
            run(
                "- source_labels: [a]\n  regex: 'x'\n  action: keep\n",
                &[("a", "y")]
            )
            .is_none()
        );
        assert!(
            run(
                "- source_labels: [a]\n  regex: 'x'\n  action: keep\n",
                &[("a", "x")]
            )
            .is_some()
        );
        assert!(
            run(
                "- source_labels: [a]\n  regex: 'x|y'\n  action: drop\n",
                &[("a", "y")]
            )
            .is_none()
        );
        assert!(
            run(
                "- source_labels: [a]\n  target_label: b\n  action: keepequal\n",
                &[("a", "1"), ("b", "1")]
            )
            .is_some()
        );
        assert!(
            run(
                "- source_labels: [a]\n  target_label: b\n  action: keepequal\n",
                &[("a", "1"), ("b", "2")]
            )
            .is_none()
        );
        assert!(
            run(
                "- source_labels: [a]\n  target_label: b\n  action: dropequal\n",
                &[("a", "1"), ("b", "1")]
            )
            .is_none()
        );
        // Dropping every label drops the set.
        assert!(run("- regex: '.*'\n  action: labeldrop\n", &[("a", "1")]).is_none());
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus: md5("foo") last 8 bytes big-endian mod 1000 = 846? Check a stable value.
        let got = run(
            "- source_labels: [a]\n  modulus: 1000\n  target_label: h\n  action: hashmod\n",
            &[("a", "foo")],
        )
        .unwrap();
        let d = md5::compute(b"foo");
        let want = u64::from_be_bytes(d.0[8..16].try_into().unwrap()) % 1000;
        assert_eq!(got, format!("{{a=\"foo\", h=\"{want}\"}}"));
    }

    #[test]
    fn label_actions_and_case() {
        assert_eq!(
            run(
                "- regex: '__meta_kubernetes_node_label_(.+)'\n  action: labelmap\n",
                &[("__meta_kubernetes_node_label_zone", "z1"), ("x", "1")]
            )
            .unwrap(),
            "{__meta_kubernetes_node_label_zone=\"z1\", x=\"1\", zone=\"z1\"}"
        );
        assert_eq!(
            run(
                "- regex: 'x|y'\n  action: labeldrop\n",
                &[("x", "1"), ("y", "1"), ("z", "1")]
            )
            .unwrap(),
            "{z=\"1\"}"
        );
        assert_eq!(
            run(
                "- regex: 'x|y'\n  action: labelkeep\n",
                &[("x", "1"), ("y", "1"), ("z", "1")]
            )
            .unwrap(),
            "{x=\"1\", y=\"1\"}"
        );
        assert_eq!(
            run(
                "- source_labels: [a]\n  target_label: b\n  action: lowercase\n",
                &[("a", "AbC")]
            )
            .unwrap(),
            "{a=\"AbC\", b=\"abc\"}"
        );
        assert_eq!(
            run(
                "- source_labels: [a]\n  target_label: b\n  action: uppercase\n",
                &[("a", "AbC")]
            )
            .unwrap(),
            "{a=\"AbC\", b=\"ABC\"}"
        );
    }
}
