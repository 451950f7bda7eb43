//! Alertmanager's matcher syntax: `name="value"`, `name=~"regex"`,
//! `name!=value`, `name!~"regex"`, several separated by commas, optionally
//! inside braces, values quoted (with `\"`, `\\` and `\n` escapes) or bare.
//! Used by `matchers:` in routes and inhibit rules, by silences, and by
//! `argus config routes test` for its label arguments.

use crate::model::{MatchOp, Matcher};

/// A matcher that could not be parsed, with the text that was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad matcher format: {input}{}", if .reason.is_empty() { String::new() } else { format!(" ({})", .reason) })]
pub struct MatcherSyntaxError {
    /// The matcher text.
    pub input: String,
    /// What is wrong, when more can be said than the format.
    pub reason: String,
}

fn err(input: &str, reason: &str) -> MatcherSyntaxError {
    MatcherSyntaxError {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Splits a matcher list on commas outside double quotes.
fn split_list(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(raw: &str, input: &str) -> Result<String, MatcherSyntaxError> {
    let Some(inner) = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|_| raw.len() >= 2)
    else {
        return Ok(raw.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => return Err(err(input, "unterminated escape")),
        }
    }
    Ok(out)
}

/// Parses one matcher, `name op value`.
pub fn parse_matcher(s: &str) -> Result<Matcher, MatcherSyntaxError> {
    let t = s.trim();
    let name_end = t
        .char_indices()
        .find(|&(i, c)| {
            if i == 0 {
                !is_name_start(c)
            } else {
                !is_name_char(c)
            }
        })
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    if name_end == 0 {
        return Err(err(s, ""));
    }
    let name = &t[..name_end];
    let rest = t[name_end..].trim_start();
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchOp::Regex, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchOp::Equal, r)
    } else {
        return Err(err(s, ""));
    };
    let value = unquote(rest.trim(), s)?;
    Matcher::new(op, name, value).map_err(|e| err(s, &e.to_string()))
}

/// Parses a list of matchers, `{a="1", b=~"2|3"}` or without braces.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, MatcherSyntaxError> {
    let t = s.trim();
    let t = t.strip_prefix('{').unwrap_or(t);
    let t = t.strip_suffix('}').unwrap_or(t);
    let mut out = Vec::new();
    for part in split_list(t) {
        if part.trim().is_empty() {
            continue;
        }
        out.push(parse_matcher(part)?);
    }
    Ok(out)
}

/// Alertmanager's order for matchers: by name, then value, then operator.
pub fn sort_matchers(ms: &mut [Matcher]) {
    let rank = |op: MatchOp| match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::Regex => 2,
        MatchOp::NotRegex => 3,
    };
    ms.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| a.value.cmp(&b.value))
            .then_with(|| rank(a.op).cmp(&rank(b.op)))
    });
}

/// `{a="1",b=~"x"}`, as Alertmanager prints a matcher list.
pub fn matchers_string(ms: &[Matcher]) -> String {
    let parts: Vec<String> = ms
        .iter()
        .map(|m| {
            let v = m
                .value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{}{}\"{v}\"", m.name, m.op)
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alertmanager_matchers() {
        let ms =
            parse_matchers(r#"{foo="bar", baz=~"a|b", q!="x,y", n!~qux, esc="a\"b\\c"}"#).unwrap();
        let got: Vec<(String, MatchOp, String)> = ms
            .iter()
            .map(|m| (m.name.clone(), m.op, m.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("foo".into(), MatchOp::Equal, "bar".into()),
                ("baz".into(), MatchOp::Regex, "a|b".into()),
                ("q".into(), MatchOp::NotEqual, "x,y".into()),
                ("n".into(), MatchOp::NotRegex, "qux".into()),
                ("esc".into(), MatchOp::Equal, "a\"b\\c".into()),
            ]
        );
        assert!(ms[1].matches("a") && !ms[1].matches("ab"));
        assert_eq!(parse_matchers("a=1").unwrap()[0].value, "1");
        assert!(parse_matcher("1a=b").is_err());
        assert!(parse_matcher("a b").is_err());
        assert!(parse_matcher("a=~(").is_err());
        let mut ms = parse_matchers("b=1,a=~2,a=2").unwrap();
        sort_matchers(&mut ms);
        assert_eq!(matchers_string(&ms), r#"{a="2",a=~"2",b="1"}"#);
    }
}
