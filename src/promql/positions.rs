//! Source positions of AST nodes.
//!
//! promql-parser's AST carries no positions, but Prometheus ends every
//! warning and info with the `(line:col)` of the expression it is about.
//! This walks the AST in source order alongside a small tokenizer and
//! records where each node starts, keyed by node address.

use std::collections::HashMap;

use promql_parser::parser::Expr;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num,
    Str,
    Punct(char),
}

fn tokenize(q: &str) -> Vec<(Tok, usize)> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' && c != b'`' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push((Tok::Str, start));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            out.push((Tok::Ident(q[start..i].to_string()), start));
        } else if c.is_ascii_digit()
            || (c == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                if (b[i] == b'e' || b[i] == b'E')
                    && b.get(i + 1).is_some_and(|d| *d == b'+' || *d == b'-')
                {
                    i += 1;
                }
                i += 1;
            }
            out.push((Tok::Num, start));
        } else {
            out.push((Tok::Punct(c as char), i));
            i += 1;
        }
    }
    out
}

/// Start offsets (bytes) of AST nodes, keyed by node address.
#[derive(Default, Debug)]
pub(crate) struct Positions {
    starts: HashMap<usize, usize>,
    text: String,
}

impl Positions {
    pub fn build(query: &str, expr: &Expr) -> Positions {
        let toks = tokenize(query);
        let mut p = Positions {
            starts: HashMap::new(),
            text: query.to_string(),
        };
        let mut cur = 0usize;
        p.walk(expr, &toks, &mut cur);
        p
    }

    /// `" (line:col)"` for the node, or "" when unknown.
    pub fn of(&self, e: &Expr) -> String {
        self.of_addr(e as *const Expr as usize)
    }

    /// As [`Positions::of`], for the struct inside a binary, call or
    /// aggregation node.
    pub fn of_node<T>(&self, n: &T) -> String {
        self.of_addr(n as *const T as usize)
    }

    fn of_addr(&self, addr: usize) -> String {
        let Some(&off) = self.starts.get(&addr) else {
            return String::new();
        };
        let before = &self.text[..off.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map(|n| off - n).unwrap_or(off + 1);
        format!(" ({line}:{col})")
    }

    fn find(
        toks: &[(Tok, usize)],
        cur: &mut usize,
        pred: impl Fn(&Tok, usize) -> bool,
    ) -> Option<usize> {
        for (i, (t, off)) in toks.iter().enumerate().skip(*cur) {
            if pred(t, i) {
                *cur = i + 1;
                return Some(*off);
            }
        }
        None
    }

    fn walk(&mut self, e: &Expr, toks: &[(Tok, usize)], cur: &mut usize) -> Option<usize> {
        let key = e as *const Expr as usize;
        let start = match e {
            Expr::NumberLiteral(n) => {
                let before = *cur;
                let s = Self::find(toks, cur, |t, _| matches!(t, Tok::Num | Tok::Ident(_)));
                // The parser folds a leading minus into the literal; the
                // literal then starts at the sign.
                let i = cur.saturating_sub(1);
                if n.val.is_sign_negative()
                    && i > before
                    && matches!(toks[i - 1].0, Tok::Punct('-'))
                {
                    Some(toks[i - 1].1)
                } else {
                    s
                }
            }
            Expr::StringLiteral(_) => Self::find(toks, cur, |t, _| matches!(t, Tok::Str)),
            Expr::VectorSelector(vs) => {
                let s = match &vs.name {
                    Some(n) => Self::find(toks, cur, |t, i| {
                        matches!(t, Tok::Ident(x) if x == n)
                            && !matches!(toks.get(i + 1), Some((Tok::Punct('('), _)))
                    }),
                    None => Self::find(toks, cur, |t, _| matches!(t, Tok::Punct('{'))),
                };
                // Skip the braces so label names inside are not taken for
                // later selectors.
                if matches!(toks.get(*cur), Some((Tok::Punct('{'), _))) || vs.name.is_none() {
                    let mut depth = if vs.name.is_none() { 1 } else { 0 };
                    while *cur < toks.len() {
                        match toks[*cur].0 {
                            Tok::Punct('{') => depth += 1,
                            Tok::Punct('}') => {
                                depth -= 1;
                                if depth == 0 {
                                    *cur += 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                        *cur += 1;
                    }
                }
                s
            }
            Expr::MatrixSelector(ms) => {
                let inner = &ms.vs;
                let s = match &inner.name {
                    Some(n) => Self::find(toks, cur, |t, i| {
                        matches!(t, Tok::Ident(x) if x == n)
                            && !matches!(toks.get(i + 1), Some((Tok::Punct('('), _)))
                    }),
                    None => Self::find(toks, cur, |t, _| matches!(t, Tok::Punct('{'))),
                };
                Self::find(toks, cur, |t, _| matches!(t, Tok::Punct(']')));
                s
            }
            Expr::Paren(p) => {
                let s = Self::find(toks, cur, |t, _| matches!(t, Tok::Punct('(')));
                self.walk(&p.expr, toks, cur);
                s
            }
            Expr::Unary(u) => {
                let s = Self::find(toks, cur, |t, _| {
                    matches!(t, Tok::Punct('-') | Tok::Punct('+'))
                });
                self.walk(&u.expr, toks, cur);
                s
            }
            Expr::Binary(b) => {
                let s = self.walk(&b.lhs, toks, cur);
                self.walk(&b.rhs, toks, cur);
                s
            }
            Expr::Subquery(sq) => {
                let s = self.walk(&sq.expr, toks, cur);
                Self::find(toks, cur, |t, _| matches!(t, Tok::Punct(']')));
                s
            }
            Expr::Call(c) => {
                let name = c.func.name;
                let s = Self::find(toks, cur, |t, i| {
                    matches!(t, Tok::Ident(x) if x == name)
                        && matches!(toks.get(i + 1), Some((Tok::Punct('('), _)))
                });
                for a in &c.args.args {
                    self.walk(a, toks, cur);
                }
                s
            }
            Expr::Aggregate(a) => {
                let op = a.op.to_string();
                let s = Self::find(toks, cur, |t, _| matches!(t, Tok::Ident(x) if *x == op));
                if let Some(p) = &a.param {
                    self.walk(p, toks, cur);
                }
                self.walk(&a.expr, toks, cur);
                s
            }
            Expr::Extension(_) => None,
        };
        if let Some(s) = start {
            self.starts.insert(key, s);
            let inner = match e {
                Expr::Binary(b) => Some(b as *const _ as usize),
                Expr::Call(c) => Some(c as *const _ as usize),
                Expr::Aggregate(a) => Some(a as *const _ as usize),
                _ => None,
            };
            if let Some(i) = inner {
                self.starts.insert(i, s);
            }
        }
        start
    }
}
