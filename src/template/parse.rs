//! Lexer and parser for Go text/template syntax.

use super::TemplateError;

/// A parsed template body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Text(String),
    /// `{{ pipeline }}`: evaluates and prints unless it declares variables.
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    /// `{{ template "name" pipeline }}`
    Template(String, Option<Pipe>),
    /// `{{ break }}` / `{{ continue }}` inside range.
    Break,
    Continue,
}

/// A pipeline: optional variable declarations, then commands joined by `|`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pipe {
    pub decl: Vec<String>,
    /// `=` assigns to existing variables instead of declaring them.
    pub assign: bool,
    pub cmds: Vec<Vec<Arg>>,
    /// 1-based line of the action, for errors.
    pub line: usize,
}

/// One operand of a command.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    /// `.`, `.a.b`: fields of dot.
    Field(Vec<String>),
    /// `$`, `$x`, `$x.a.b`.
    Var(String, Vec<String>),
    Str(String),
    /// Value, and whether the literal was an integer.
    Num(f64, bool),
    Bool(bool),
    Nil,
    /// A function name.
    Ident(String),
    /// `( pipeline )`, optionally followed by fields.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Text(String),
    Open,
    Close,
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    /// Value, and whether the literal was an integer.
    Num(f64, bool),
    Pipe,
    LParen,
    RParen,
    Assign,
    Declare,
    Comma,
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
    name: &'a str,
}

impl<'a> Lexer<'a> {
    fn err(&self, msg: impl Into<String>) -> TemplateError {
        TemplateError::Parse {
            name: self.name.to_string(),
            line: self.line,
            msg: msg.into(),
        }
    }

    fn run(mut self) -> Result<Vec<(Tok, usize)>, TemplateError> {
        let mut out = Vec::new();
        while self.pos < self.s.len() {
            let rest = &self.s[self.pos..];
            let Some(open) = rest.find("{{") else {
                out.push((Tok::Text(rest.to_string()), self.line));
                self.line += rest.matches('\n').count();
                break;
            };
            let mut text = &rest[..open];
            let trim_left = rest[open + 2..].starts_with("- ")
                || rest[open + 2..].starts_with("-\t")
                || rest[open + 2..].starts_with("-\n");
            if trim_left {
                text = text.trim_end();
            }
            if !text.is_empty() {
                out.push((Tok::Text(text.to_string()), self.line));
            }
            self.line += rest[..open].matches('\n').count();
            self.pos += open + 2 + if trim_left { 1 } else { 0 };
            // Comments.
            let inner = self.s[self.pos..].trim_start();
            if inner.starts_with("/*") {
                let Some(end) = self.s[self.pos..].find("*/") else {
                    return Err(self.err("unclosed comment"));
                };
                let after = self.pos + end + 2;
                let tail = &self.s[after..];
                let tail_trimmed = tail.trim_start();
                let (close_len, trim_right) = if let Some(t) = tail_trimmed.strip_prefix("-}}") {
                    (tail.len() - t.len(), true)
                } else if let Some(t) = tail_trimmed.strip_prefix("}}") {
                    (tail.len() - t.len(), false)
                } else {
                    return Err(self.err("comment ends before closing delimiter"));
                };
                self.line += self.s[self.pos..after + close_len].matches('\n').count();
                self.pos = after + close_len;
                if trim_right {
                    self.skip_space();
                }
                continue;
            }
            out.push((Tok::Open, self.line));
            self.lex_action(&mut out)?;
        }
        Ok(out)
    }

    fn skip_space(&mut self) {
        let rest = &self.s[self.pos..];
        let t = rest.trim_start();
        self.line += rest[..rest.len() - t.len()].matches('\n').count();
        self.pos += rest.len() - t.len();
    }

    fn ident_chars(s: &str) -> usize {
        s.char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map(|(i, _)| i)
            .unwrap_or(s.len())
    }

    fn fields(&mut self) -> Vec<String> {
        let mut f = Vec::new();
        while self.s[self.pos..].starts_with('.') {
            let rest = &self.s[self.pos + 1..];
            let n = Self::ident_chars(rest);
            if n == 0 {
                break;
            }
            f.push(rest[..n].to_string());
            self.pos += 1 + n;
        }
        f
    }

    fn lex_action(&mut self, out: &mut Vec<(Tok, usize)>) -> Result<(), TemplateError> {
        loop {
            let rest = &self.s[self.pos..];
            if rest.is_empty() {
                return Err(self.err("unclosed action"));
            }
            let c = rest.chars().next().unwrap_or(' ');
            if c == '\n' || c == ' ' || c == '\t' || c == '\r' {
                if rest.trim_start().starts_with("-}}") {
                    self.skip_space();
                    self.pos += 3;
                    out.push((Tok::Close, self.line));
                    self.skip_space();
                    return Ok(());
                }
                self.skip_space();
                continue;
            }
            if rest.starts_with("}}") {
                self.pos += 2;
                out.push((Tok::Close, self.line));
                return Ok(());
            }
            let line = self.line;
            match c {
                '|' => {
                    out.push((Tok::Pipe, line));
                    self.pos += 1;
                }
                '(' => {
                    out.push((Tok::LParen, line));
                    self.pos += 1;
                }
                ')' => {
                    self.pos += 1;
                    // `(…).field`
                    let f = self.fields();
                    out.push((Tok::RParen, line));
                    if !f.is_empty() {
                        out.push((Tok::Dot(f), line));
                    }
                }
                ',' => {
                    out.push((Tok::Comma, line));
                    self.pos += 1;
                }
                ':' if rest.starts_with(":=") => {
                    out.push((Tok::Declare, line));
                    self.pos += 2;
                }
                '=' => {
                    out.push((Tok::Assign, line));
                    self.pos += 1;
                }
                '.' => {
                    let f = self.fields();
                    if f.is_empty() {
                        self.pos += 1;
                    }
                    out.push((Tok::Dot(f), line));
                }
                '$' => {
                    let n = Self::ident_chars(&rest[1..]);
                    let name = rest[..1 + n].to_string();
                    self.pos += 1 + n;
                    let f = self.fields();
                    out.push((Tok::Var(name, f), line));
                }
                '"' => {
                    let mut val = String::new();
                    let mut it = rest[1..].char_indices();
                    let mut end = None;
                    while let Some((i, ch)) = it.next() {
                        match ch {
                            '"' => {
                                end = Some(i + 2);
                                break;
                            }
                            '\\' => match it.next().map(|x| x.1) {
                                Some('n') => val.push('\n'),
                                Some('t') => val.push('\t'),
                                Some('r') => val.push('\r'),
                                Some('\\') => val.push('\\'),
                                Some('"') => val.push('"'),
                                Some('\'') => val.push('\''),
                                Some(o) => {
                                    val.push('\\');
                                    val.push(o);
                                }
                                None => return Err(self.err("unterminated quoted string")),
                            },
                            '\n' => return Err(self.err("unterminated quoted string")),
                            o => val.push(o),
                        }
                    }
                    let Some(end) = end else {
                        return Err(self.err("unterminated quoted string"));
                    };
                    self.pos += end;
                    out.push((Tok::Str(val), line));
                }
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return Err(self.err("unterminated raw quoted string"));
                    };
                    let v = rest[1..1 + end].to_string();
                    self.line += v.matches('\n').count();
                    self.pos += end + 2;
                    out.push((Tok::Str(v), line));
                }
                '\'' => {
                    let mut chars = rest[1..].chars();
                    let ch = chars
                        .next()
                        .ok_or_else(|| self.err("unterminated character constant"))?;
                    if chars.next() != Some('\'') {
                        return Err(self.err("bad character constant"));
                    }
                    self.pos += 2 + ch.len_utf8();
                    out.push((Tok::Num(ch as u32 as f64, true), line));
                }
                c if c.is_ascii_digit() || c == '-' || c == '+' => {
                    let n = rest
                        .char_indices()
                        .skip(1)
                        .find(|(_, ch)| {
                            !(ch.is_ascii_alphanumeric()
                                || *ch == '.'
                                || *ch == '_'
                                || *ch == '+'
                                || *ch == '-')
                        })
                        .map(|(i, _)| i)
                        .unwrap_or(rest.len());
                    let lit = &rest[..n];
                    let v = parse_number(lit)
                        .ok_or_else(|| self.err(format!("bad number syntax: {lit:?}")))?;
                    let is_int = lit.starts_with("0x")
                        || lit.starts_with("0X")
                        || !lit.contains(['.', 'e', 'E', 'p', 'P'])
                        || lit.trim_start_matches(['-', '+']).starts_with("0x");
                    self.pos += n;
                    out.push((Tok::Num(v, is_int), line));
                }
                c if c.is_alphabetic() || c == '_' => {
                    let n = Self::ident_chars(rest);
                    out.push((Tok::Ident(rest[..n].to_string()), line));
                    self.pos += n;
                }
                other => return Err(self.err(format!("unexpected {other:?} in command"))),
            }
        }
    }
}

fn parse_number(s: &str) -> Option<f64> {
    let t = s.replace('_', "");
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, t.trim_start_matches('+').to_string()),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()? as f64
    } else if let Some(o) = body.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()? as f64
    } else if let Some(b) = body.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()? as f64
    } else {
        body.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// A template's body and the `define`d templates it contains.
pub(crate) struct Parsed {
    pub root: Vec<Node>,
    pub defines: Vec<(String, Vec<Node>)>,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    name: String,
    defines: Vec<(String, Vec<Node>)>,
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else(Option<(String, Pipe)>),
}

impl Parser {
    fn err(&self, msg: impl Into<String>) -> TemplateError {
        let line = self
            .toks
            .get(self.pos.min(self.toks.len().saturating_sub(1)))
            .map(|t| t.1)
            .unwrap_or(1);
        TemplateError::Parse {
            name: self.name.clone(),
            line,
            msg: msg.into(),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }

    fn line(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.1).unwrap_or(1)
    }

    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, Stop::Eof)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t)),
                Some(Tok::Open) => {
                    let kw = match self.peek() {
                        Some(Tok::Ident(k)) => Some(k.clone()),
                        _ => None,
                    };
                    match kw.as_deref() {
                        Some("end") => {
                            self.pos += 1;
                            self.close()?;
                            return Ok((nodes, Stop::End));
                        }
                        Some("else") => {
                            self.pos += 1;
                            if let Some(Tok::Ident(k)) = self.peek().cloned() {
                                if k == "if" || k == "with" {
                                    self.pos += 1;
                                    let p = self.pipe()?;
                                    return Ok((nodes, Stop::Else(Some((k, p)))));
                                }
                            }
                            self.close()?;
                            return Ok((nodes, Stop::Else(None)));
                        }
                        Some(k @ ("if" | "range" | "with")) => {
                            let k = k.to_string();
                            self.pos += 1;
                            let p = self.pipe()?;
                            nodes.push(self.control(&k, p)?);
                        }
                        Some("define") => {
                            self.pos += 1;
                            let Some(Tok::Str(n)) = self.next() else {
                                return Err(self.err("define expects a name string"));
                            };
                            self.close()?;
                            let (body, end) = self.list()?;
                            if !matches!(end, Stop::End) {
                                return Err(self.err(format!("unexpected EOF in define {n:?}")));
                            }
                            self.defines.push((n, body));
                        }
                        Some(k @ ("template" | "block")) => {
                            let block = k == "block";
                            self.pos += 1;
                            let Some(Tok::Str(n)) = self.next() else {
                                return Err(self.err(format!("{k} expects a name string")));
                            };
                            let arg = if matches!(self.peek(), Some(Tok::Close)) {
                                self.close()?;
                                None
                            } else {
                                Some(self.pipe()?)
                            };
                            if block {
                                let (body, end) = self.list()?;
                                if !matches!(end, Stop::End) {
                                    return Err(self.err(format!("unexpected EOF in block {n:?}")));
                                }
                                self.defines.push((n.clone(), body));
                            }
                            nodes.push(Node::Template(n, arg));
                        }
                        Some("break") => {
                            self.pos += 1;
                            self.close()?;
                            nodes.push(Node::Break);
                        }
                        Some("continue") => {
                            self.pos += 1;
                            self.close()?;
                            nodes.push(Node::Continue);
                        }
                        _ => nodes.push(Node::Action(self.pipe()?)),
                    }
                }
                Some(t) => return Err(self.err(format!("unexpected {t:?}"))),
            }
        }
    }

    fn control(&mut self, kw: &str, p: Pipe) -> Result<Node, TemplateError> {
        let (body, end) = self.list()?;
        let els = match end {
            Stop::Eof => return Err(self.err(format!("unexpected EOF in {kw}"))),
            Stop::End => Vec::new(),
            Stop::Else(None) => {
                let (e, end) = self.list()?;
                if !matches!(end, Stop::End) {
                    return Err(self.err(format!("expected end after else in {kw}")));
                }
                e
            }
            Stop::Else(Some((k2, p2))) => vec![self.control(&k2, p2)?],
        };
        Ok(match kw {
            "if" => Node::If(p, body, els),
            "range" => Node::Range(p, body, els),
            _ => Node::With(p, body, els),
        })
    }

    fn close(&mut self) -> Result<(), TemplateError> {
        match self.next() {
            Some(Tok::Close) => Ok(()),
            other => Err(self.err(format!("unexpected {other:?}, expected }}}}"))),
        }
    }

    /// Parses a pipeline up to `}}` (consumed) or `)` (not consumed).
    fn pipe(&mut self) -> Result<Pipe, TemplateError> {
        let line = self.line();
        let mut decl = Vec::new();
        let mut assign = false;
        // `$x :=`, `$x, $y :=`, `$x =`
        let save = self.pos;
        let mut vars = Vec::new();
        while let Some(Tok::Var(v, f)) = self.peek().cloned() {
            if !f.is_empty() {
                break;
            }
            self.pos += 1;
            vars.push(v);
            if matches!(self.peek(), Some(Tok::Comma)) {
                self.pos += 1;
                continue;
            }
            break;
        }
        match self.peek() {
            Some(Tok::Declare) if !vars.is_empty() => {
                self.pos += 1;
                decl = vars;
            }
            Some(Tok::Assign) if !vars.is_empty() => {
                self.pos += 1;
                decl = vars;
                assign = true;
            }
            _ => self.pos = save,
        }
        let mut cmds = Vec::new();
        let mut cmd = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Tok::Close) => {
                    self.pos += 1;
                    break;
                }
                Some(Tok::RParen) => break,
                None => return Err(self.err("unclosed action")),
                Some(Tok::Pipe) => {
                    self.pos += 1;
                    if cmd.is_empty() {
                        return Err(self.err("missing command before |"));
                    }
                    cmds.push(std::mem::take(&mut cmd));
                }
                Some(Tok::LParen) => {
                    self.pos += 1;
                    let inner = self.pipe()?;
                    if !matches!(self.next(), Some(Tok::RParen)) {
                        return Err(self.err("unclosed left paren"));
                    }
                    let f = if let Some(Tok::Dot(f)) = self.peek().cloned() {
                        self.pos += 1;
                        f
                    } else {
                        Vec::new()
                    };
                    cmd.push(Arg::Sub(Box::new(inner), f));
                }
                Some(t) => {
                    self.pos += 1;
                    cmd.push(match t {
                        Tok::Dot(f) => Arg::Field(f),
                        Tok::Var(v, f) => Arg::Var(v, f),
                        Tok::Str(s) => Arg::Str(s),
                        Tok::Num(n, i) => Arg::Num(n, i),
                        Tok::Ident(i) if i == "true" => Arg::Bool(true),
                        Tok::Ident(i) if i == "false" => Arg::Bool(false),
                        Tok::Ident(i) if i == "nil" => Arg::Nil,
                        Tok::Ident(i) => Arg::Ident(i),
                        other => return Err(self.err(format!("unexpected {other:?} in operand"))),
                    });
                }
            }
        }
        if !cmd.is_empty() {
            cmds.push(cmd);
        }
        if cmds.is_empty() {
            return Err(self.err("missing value for command"));
        }
        Ok(Pipe {
            decl,
            assign,
            cmds,
            line,
        })
    }
}

/// Parses `text`; `name` is used in errors.
pub(crate) fn parse(name: &str, text: &str) -> Result<Parsed, TemplateError> {
    let toks = Lexer {
        s: text,
        pos: 0,
        line: 1,
        name,
    }
    .run()?;
    let mut p = Parser {
        toks,
        pos: 0,
        name: name.to_string(),
        defines: Vec::new(),
    };
    let (root, end) = p.list()?;
    match end {
        Stop::Eof => Ok(Parsed {
            root,
            defines: p.defines,
        }),
        Stop::End => Err(p.err("unexpected {{end}}")),
        Stop::Else(_) => Err(p.err("unexpected {{else}}")),
    }
}
