//! What a query may ask for, checked before anything runs.
//!
//! Every PromQL text argus reads (the query API, rule files, `check`,
//! unit tests, SLO specs, `match[]` selectors) is parsed through
//! [`parse_expr`], so one set of limits protects them all:
//!
//! - the nesting depth of the expression, bounded from the tokens before
//!   promql-parser builds (and recursively checks, prints and drops) the
//!   tree, so no input can exhaust a thread's stack;
//! - every duration (`[5m]`, `[1h:1m]`, `offset 1d`) and `@` timestamp,
//!   checked with the one duration parser before promql-parser converts
//!   them (it panics on NaN, negative and overlong float durations);
//! - evaluation times ([`check_time`]) and step counts ([`step_count`]),
//!   so that `t ± offset ± range` over any nesting stays far from `i64`
//!   overflow and no allocation is sized by an unchecked product.

use lrpar::{Lexeme, Lexer, NonStreamingLexer};
use promql_parser::parser::Expr;
use promql_parser::parser::token::{
    T_AT, T_COLON, T_DURATION, T_LEFT_BRACE, T_LEFT_BRACKET, T_LEFT_PAREN, T_NUMBER, T_OFFSET,
    T_OPERATORS_END, T_OPERATORS_START, T_RIGHT_BRACE, T_RIGHT_BRACKET, T_RIGHT_PAREN, T_SUB,
};

use super::QueryError;
use crate::model::MAX_DURATION;

/// The deepest expression argus evaluates: nested brackets plus operators.
/// Far beyond hand-written and generated rules (Sloth's deepest is under
/// 20); it keeps parsing, evaluation, printing and dropping the tree within
/// a few hundred kilobytes of stack.
pub const MAX_DEPTH: usize = 512;

/// The largest query text, in bytes (Prometheus's HTTP server limits the
/// request; argus limits the text wherever it comes from).
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// The latest (and, negated, earliest) evaluation time in milliseconds:
/// 2^53 ms is about year 287,000. With durations at most
/// [`MAX_DURATION`] (2^43 ms) and at most [`MAX_DEPTH`] of them on one
/// path, every timestamp the evaluator computes stays below 2^54.
pub const MAX_TIME_MS: i64 = 1 << 53;

/// Parses `text` after checking it against the limits above. Errors are
/// promql-parser's, or `LINE:COL: parse error: …` for a limit.
pub fn parse_expr(text: &str) -> Result<Expr, String> {
    check_text(text)?;
    promql_parser::parser::parse(text)
}

/// Checks the size, depth, durations and `@` times of a query from its
/// tokens; see the module documentation.
pub fn check_text(text: &str) -> Result<(), String> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "query is {} bytes long, more than the limit of {MAX_QUERY_BYTES}",
            text.len()
        ));
    }
    // A text the lexer refuses is left to the parser for its own message.
    let Ok(lexer) = promql_parser::parser::lexer(text) else {
        return Ok(());
    };
    let mut nesting = 0usize;
    let mut max_nesting = 0usize;
    let mut operators = 0usize;
    let mut braces = 0usize;
    // The last two significant tokens, to see what a number stands after.
    let mut prev: [Option<u16>; 2] = [None, None];
    for lexeme in lexer.iter().flatten() {
        let id = lexeme.tok_id();
        let span = lexeme.span();
        match id {
            T_LEFT_PAREN | T_LEFT_BRACKET | T_LEFT_BRACE => {
                nesting += 1;
                max_nesting = max_nesting.max(nesting);
                if id == T_LEFT_BRACE {
                    braces += 1;
                }
            }
            T_RIGHT_PAREN | T_RIGHT_BRACKET | T_RIGHT_BRACE => {
                nesting = nesting.saturating_sub(1);
                if id == T_RIGHT_BRACE {
                    braces = braces.saturating_sub(1);
                }
            }
            // Matchers inside braces use `=` and `!=` without nesting.
            _ if id > T_OPERATORS_START && id < T_OPERATORS_END && braces == 0 => operators += 1,
            _ => {}
        }
        if max_nesting + operators > MAX_DEPTH {
            return Err(positioned(
                text,
                span.start(),
                &format!(
                    "expression nested deeper than the limit of {MAX_DEPTH} (brackets and operators)"
                ),
            ));
        }
        let s = lexer.span_str(span);
        let after =
            |want: u16| prev[0] == Some(want) || (prev[0] == Some(T_SUB) && prev[1] == Some(want));
        match id {
            T_DURATION => check_duration(text, span.start(), s)?,
            T_NUMBER if after(T_AT) => {
                let ok = parse_number(s).is_some_and(|secs| {
                    secs.is_finite() && (secs * 1000.0).abs() <= MAX_TIME_MS as f64
                });
                if !ok {
                    return Err(positioned(
                        text,
                        span.start(),
                        &format!("timestamp out of bounds for @ modifier: {s}"),
                    ));
                }
            }
            T_NUMBER
                if prev[0] == Some(T_LEFT_BRACKET)
                    || prev[0] == Some(T_COLON)
                    || after(T_OFFSET) =>
            {
                check_duration(text, span.start(), s)?
            }
            _ => {}
        }
        prev = [Some(id), prev[0]];
    }
    Ok(())
}

/// A duration token must parse with the one duration parser and be
/// within [`MAX_DURATION`].
fn check_duration(text: &str, at: usize, s: &str) -> Result<(), String> {
    // promql-parser takes hexadecimal seconds too.
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return match u64::from_str_radix(hex, 16) {
            Ok(secs) if secs <= MAX_DURATION.as_secs() => Ok(()),
            _ => Err(positioned(text, at, "duration out of range")),
        };
    }
    crate::model::parse_duration(s)
        .map(|_| ())
        .map_err(|e| positioned(text, at, &e.to_string()))
}

fn parse_number(s: &str) -> Option<f64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    s.parse().ok()
}

/// `LINE:COL: parse error: msg` for a byte offset, as Prometheus positions
/// parse errors (columns count characters from 1).
fn positioned(text: &str, at: usize, msg: &str) -> String {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{col}: parse error: {msg}")
}

/// Refuses an evaluation time outside ±[`MAX_TIME_MS`].
pub fn check_time(t: i64) -> Result<(), QueryError> {
    if t.checked_abs().is_some_and(|a| a <= MAX_TIME_MS) {
        Ok(())
    } else {
        Err(QueryError::BadData(format!(
            "evaluation time {t} ms is out of range (more than 2^53 ms from 1970)"
        )))
    }
}

/// How many steps `start..=end` every `step` ms has, refused with
/// [`QueryError::TooManySamples`] when it exceeds `budget` (each step of a
/// vector or scalar holds at least one sample, so a larger count could
/// never finish within the sample limit).
pub fn step_count(start: i64, end: i64, step: i64, budget: usize) -> Result<usize, QueryError> {
    if step <= 0 || end < start {
        return Ok(if end >= start { 1 } else { 0 });
    }
    let n = (end.checked_sub(start).ok_or(QueryError::TooManySamples)? / step) as u64 + 1;
    if n > budget as u64 {
        return Err(QueryError::TooManySamples);
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, n: usize, inner: &str) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn deep_expressions_are_refused_before_parsing() {
        for q in [
            nested("abs(", ")", 5_000, "up"),
            nested("sum(", ")", 5_000, "up"),
            nested("(", ")", 20_000, "1"),
            vec!["up"; 2_000].join("+"),
            format!("{}1", "-".repeat(5_000)),
        ] {
            let e = parse_expr(&q).expect_err("refused");
            assert!(e.contains("parse error: expression nested deeper"), "{e}");
        }
        let ok = nested("abs(", ")", 100, "up");
        assert!(parse_expr(&ok).is_ok());
        assert!(parse_expr(&vec!["up"; 200].join(" or ")).is_ok());
        assert!(parse_expr(r#"up{a="((((((((((((((((((((", b=~"-+-+-+-+"}"#).is_ok());
    }

    #[test]
    fn overlong_and_invalid_durations_are_positioned_errors() {
        for (q, want) in [
            ("up[1e309]", "1:4: parse error: not a valid duration string"),
            (
                "up offset 1e309",
                "1:11: parse error: not a valid duration string",
            ),
            ("up offset -1e309", "1:12: parse error"),
            ("up[5m:1e309]", "1:7: parse error"),
            ("up[1e300]", "1:4: parse error: duration out of range"),
            ("up[1000y]", "1:4: parse error: duration out of range"),
            (
                "up[0xffffffffffffffff]",
                "1:4: parse error: duration out of range",
            ),
            ("up @ 1e300", "1:6: parse error: timestamp out of bounds"),
            ("up @ -1e300", "1:7: parse error: timestamp out of bounds"),
            (
                "sum(\n  up @ 1e17)",
                "2:8: parse error: timestamp out of bounds",
            ),
        ] {
            let e = parse_expr(q).expect_err(q);
            assert!(e.starts_with(want), "{q}: {e}");
        }
        // The lexer refuses these itself.
        for q in ["up[Inf]", "up[NaN]", "up[-1]", "up[5m:-1]"] {
            assert!(parse_expr(q).is_err(), "{q}");
        }
        for q in [
            "up[5m]",
            "up[290y]",
            "up offset -5m",
            "up[1h:1m] offset 3",
            "up @ 1e9",
            "vector(1e309)",
        ] {
            assert!(parse_expr(q).is_ok(), "{q}");
        }
    }

    #[test]
    fn times_and_steps_are_bounded() {
        assert!(check_time(MAX_TIME_MS).is_ok());
        assert!(check_time(-MAX_TIME_MS).is_ok());
        assert!(check_time(i64::MIN).is_err());
        assert!(check_time(MAX_TIME_MS + 1).is_err());
        assert_eq!(step_count(0, 10, 1, 100), Ok(11));
        assert_eq!(step_count(0, 10, 1, 10), Err(QueryError::TooManySamples));
        assert_eq!(
            step_count(i64::MIN, i64::MAX, 1, usize::MAX),
            Err(QueryError::TooManySamples)
        );
    }
}
