//! rpm's rich (boolean) dependencies, `(foo >= 1.2 or (bar if baz))`, parsed with the
//! rules of rpm's `rpmrich.c`: one operator per parenthesised level (`and`, `or` and
//! `with` chain), `else` only after the condition of `if` or `unless`, and `with` or
//! `without` only between capabilities.

use std::fmt;

use super::evr::relation_text;
use crate::excerpt::excerpt;
use crate::source::Op;
use crate::source::rpm::Capability;

/// A parsed rich dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    /// A capability with an optional version relation.
    Cap(Capability),
    /// Every operand.
    And(Vec<Expr>),
    /// At least one operand.
    Or(Vec<Expr>),
    /// One package matching every operand.
    With(Vec<Expr>),
    /// One package matching the first operand and not the second.
    Without(Box<Expr>, Box<Expr>),
    /// `(then if cond)`, `(then if cond else otherwise)`.
    If(Conditional),
    /// `(then unless cond)`, `(then unless cond else otherwise)`.
    Unless(Conditional),
}

/// The operands of `if` and `unless`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Conditional {
    then: Box<Expr>,
    cond: Box<Expr>,
    otherwise: Option<Box<Expr>>,
}

/// A conditional as a decision on whether `cond` holds over the chosen set.
pub(super) struct Branches<'e> {
    /// The condition.
    pub cond: &'e Expr,
    /// What must hold when the condition does (nothing when `None`).
    pub when_in: Option<&'e Expr>,
    /// What must hold when it does not.
    pub when_out: Option<&'e Expr>,
}

impl Expr {
    /// The decision an `if` or `unless` stands for; `None` for the other operators.
    pub(super) fn branches(&self) -> Option<Branches<'_>> {
        match self {
            Expr::If(c) => Some(Branches {
                cond: &c.cond,
                when_in: Some(&c.then),
                when_out: c.otherwise.as_deref(),
            }),
            Expr::Unless(c) => Some(Branches {
                cond: &c.cond,
                when_in: c.otherwise.as_deref(),
                when_out: Some(&c.then),
            }),
            _ => None,
        }
    }
}

impl Expr {
    /// Whether the expression is a test on one package, as `with` and `without` need:
    /// a capability, or a `with` or `without` of them.
    pub(super) fn matches_one_package(&self) -> bool {
        matches!(self, Expr::Cap(_) | Expr::With(_) | Expr::Without(..))
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |f: &mut fmt::Formatter<'_>, operands: &[&Expr], word: &str| {
            let texts: Vec<String> = operands.iter().map(|e| e.to_string()).collect();
            write!(f, "({})", texts.join(&format!(" {word} ")))
        };
        let conditional = |f: &mut fmt::Formatter<'_>, c: &Conditional, word: &str| {
            write!(f, "({} {word} {}", c.then, c.cond)?;
            if let Some(otherwise) = &c.otherwise {
                write!(f, " else {otherwise}")?;
            }
            f.write_str(")")
        };
        match self {
            Expr::Cap(capability) => f.write_str(&relation_text(capability)),
            Expr::And(all) => joined(f, &all.iter().collect::<Vec<_>>(), "and"),
            Expr::Or(any) => joined(f, &any.iter().collect::<Vec<_>>(), "or"),
            Expr::With(all) => joined(f, &all.iter().collect::<Vec<_>>(), "with"),
            Expr::Without(a, b) => joined(f, &[a, b], "without"),
            Expr::If(c) => conditional(f, c, "if"),
            Expr::Unless(c) => conditional(f, c, "unless"),
        }
    }
}

/// Whether a capability name is a rich dependency (the header stores it whole, in
/// parentheses, as the name).
pub(super) fn is_rich(name: &str) -> bool {
    name.starts_with('(')
}

/// Parses a rich dependency; the error says what is wrong and where.
pub(super) fn parse(text: &str) -> Result<Expr, String> {
    let mut parser = Parser { text, at: 0 };
    parser.skip_space();
    let expr = parser.group()?;
    parser.skip_space();
    match parser.rest() {
        "" => Ok(expr),
        rest => Err(format!(
            "`{}` follows the closing parenthesis",
            excerpt(rest)
        )),
    }
}

struct Parser<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Parser<'t> {
    fn rest(&self) -> &'t str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.rest().starts_with(c);
        if found {
            self.at += c.len_utf8();
        }
        found
    }

    /// A run of text up to white space or an unbalanced `)`: a name (which may hold
    /// balanced parentheses, `perl(Foo::Bar)`), an EVR, or an operator word.
    fn token(&mut self) -> &'t str {
        let rest = self.rest();
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                c if c.is_whitespace() => {
                    end = i;
                    break;
                }
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = i;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        self.at += end;
        &rest[..end]
    }

    /// `( operand [word operand]... [else operand] )`.
    fn group(&mut self) -> Result<Expr, String> {
        if !self.eat('(') {
            return Err(format!("expected `(` at `{}`", excerpt(self.rest())));
        }
        let mut operands = vec![self.operand()?];
        let mut word: Option<&str> = None;
        let mut otherwise = None;
        loop {
            self.skip_space();
            if self.eat(')') {
                break;
            }
            let next = self.token();
            match (next, word) {
                ("", _) => return Err("a `(` is never closed".to_string()),
                (_, _) if otherwise.is_some() => {
                    return Err(format!("`{}` follows the `else` operand", excerpt(next)));
                }
                ("else", Some("if" | "unless")) => otherwise = Some(self.operand()?),
                ("else", _) => {
                    return Err("`else` follows only the condition of `if` or `unless`".into());
                }
                ("and" | "or" | "if" | "unless" | "with" | "without", None) => {
                    word = Some(next);
                    operands.push(self.operand()?);
                }
                ("and" | "or" | "with", Some(same)) if same == next => {
                    operands.push(self.operand()?);
                }
                ("and" | "or" | "if" | "unless" | "with" | "without", Some(first)) => {
                    return Err(format!(
                        "`{first}` and `{next}` at one level: add parentheses"
                    ));
                }
                (other, _) => {
                    return Err(format!(
                        "`{}` is no operator (and, or, if, unless, else, with, without)",
                        excerpt(other)
                    ));
                }
            }
        }
        if let Some(with @ ("with" | "without")) = word
            && let Some(bad) = operands.iter().find(|e| !e.matches_one_package())
        {
            return Err(format!("`{with}` takes capabilities, not `{bad}`"));
        }
        let expr = match word {
            None => operands.swap_remove(0),
            Some("and") => Expr::And(operands),
            Some("or") => Expr::Or(operands),
            Some("with") => Expr::With(operands),
            Some(word) => {
                // The loop lets `if`, `unless` and `without` take exactly one more operand.
                let [first, second]: [Expr; 2] =
                    (operands.try_into()).map_err(|_| format!("`{word}` takes two operands"))?;
                let (first, second) = (Box::new(first), Box::new(second));
                let conditional = |then, cond| Conditional {
                    then,
                    cond,
                    otherwise: otherwise.map(Box::new),
                };
                match word {
                    "if" => Expr::If(conditional(first, second)),
                    "unless" => Expr::Unless(conditional(first, second)),
                    _ => Expr::Without(first, second),
                }
            }
        };
        Ok(expr)
    }

    /// A nested group, or a capability with an optional `op evr`.
    fn operand(&mut self) -> Result<Expr, String> {
        self.skip_space();
        if self.rest().starts_with('(') {
            return self.group();
        }
        let name = self.token();
        if name.is_empty() || name.starts_with(['<', '>', '=']) {
            return Err(format!(
                "expected a capability at `{}`",
                excerpt(self.rest())
            ));
        }
        let before_op = self.at;
        self.skip_space();
        let op = match self
            .rest()
            .split_once(char::is_whitespace)
            .map(|(op, _)| op)
        {
            Some("<") => Op::Lt,
            Some("<=") => Op::Le,
            Some("=" | "==") => Op::Eq,
            Some(">=") => Op::Ge,
            Some(">") => Op::Gt,
            _ => {
                self.at = before_op;
                return Ok(Expr::Cap(Capability {
                    name: name.to_string(),
                    constraint: None,
                }));
            }
        };
        self.token();
        self.skip_space();
        let evr = self.token();
        if evr.is_empty() {
            return Err(format!("`{name}` has an operator and no version"));
        }
        Ok(Expr::Cap(Capability {
            name: name.to_string(),
            constraint: Some((op, evr.to_string())),
        }))
    }
}
