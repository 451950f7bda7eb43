//! Label matchers with Prometheus 3 semantics: regexes are fully anchored
//! and `.` matches newline.

use std::fmt;

use super::Labels;

/// The four matcher operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// A matcher's regex failed to compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {source}")]
pub struct MatcherError {
    /// The pattern as written.
    pub pattern: String,
    /// What the regex engine said.
    #[source]
    pub source: regex::Error,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    re: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

/// Compiles a pattern anchored at both ends, with `.` matching newline.
pub fn anchored_regex(pattern: &str) -> Result<regex::Regex, MatcherError> {
    regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|source| MatcherError {
        pattern: pattern.to_string(),
        source,
    })
}

impl Matcher {
    /// Builds a matcher; regex operators compile the pattern.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(anchored_regex(&value)?),
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// True if the label value `v` (empty for an absent label) matches.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// True if the matcher accepts the empty string, i.e. also selects
    /// series that lack the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// True if `labels` satisfies this matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}\"{}\"",
            self.name,
            self.op,
            super::escape_label_value(&self.value)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_dot_matches_newline() {
        let m = Matcher::new(MatchOp::Regex, "a", "fo.").unwrap();
        assert!(m.matches("foo"));
        assert!(m.matches("fo\n"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("fooo"));
        let n = Matcher::new(MatchOp::NotRegex, "a", "").unwrap();
        assert!(!n.matches_empty());
        assert!(n.matches("x"));
    }

    #[test]
    fn bad_regex_is_an_error() {
        let e = Matcher::new(MatchOp::Regex, "a", "(").unwrap_err();
        assert!(e.to_string().contains("invalid regular expression"));
    }
}
