//! Flag expressions: the conditions of `when` blocks and `when=` properties.
//!
//! Grammar, loosest first: `a || b`, `a && b`, `!a`, `(a)`, a bare flag, `arch=NAME`.
//! Names are ASCII letters, digits and `_ - . +`. Offsets are byte offsets into the
//! condition text, so callers can point at a flag inside the source file.

use super::flavor::{Flavor, debian_arch};

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A flag or an `arch=` test.
    Term(Term),
    /// `!a`
    Not(Box<Expr>),
    /// `a && b`
    And(Box<Expr>, Box<Expr>),
    /// `a || b`
    Or(Box<Expr>, Box<Expr>),
}

/// What a [`Term`] tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermKind {
    /// A use flag: true when the flavor sets it.
    Flag,
    /// `arch=NAME`: true when the flavor's architecture is NAME (compared as Debian arch).
    Arch,
}

/// A name in a condition, with its byte offset in the condition text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Flag or architecture test.
    pub kind: TermKind,
    /// The flag or architecture name.
    pub name: String,
    /// Byte offset of `name` in the condition text.
    pub offset: usize,
}

/// A condition that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// Byte offset of the problem in the condition text.
    pub offset: usize,
    /// Length in bytes of the offending token (0 at the end of the text).
    pub len: usize,
    /// What is wrong.
    pub message: String,
}

/// Deeper nesting is refused so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

impl Expr {
    /// Parses a condition such as `kernel && !(xen || arch=aarch64)`.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let tokens = lex(text)?;
        let mut parser = Parser {
            text,
            tokens,
            pos: 0,
        };
        let expr = parser.or(0)?;
        match parser.tokens.get(parser.pos) {
            None => Ok(expr),
            Some(t) if t.tok == Tok::Close => Err(parser.error(t, "unmatched `)`".to_string())),
            Some(t) => {
                let found = parser.show(t);
                Err(parser.error(t, format!("expected `&&` or `||` before {found}")))
            }
        }
    }

    /// Whether the condition holds for `flavor` (an unset flag is false).
    pub fn eval(&self, flavor: &Flavor) -> bool {
        match self {
            Expr::Term(t) => match t.kind {
                TermKind::Flag => flavor.flag(&t.name),
                TermKind::Arch => {
                    debian_arch(&t.name).unwrap_or(t.name.as_str()) == flavor.debian_arch()
                }
            },
            Expr::Not(e) => !e.eval(flavor),
            Expr::And(a, b) => a.eval(flavor) && b.eval(flavor),
            Expr::Or(a, b) => a.eval(flavor) || b.eval(flavor),
        }
    }

    /// Every flag and architecture named, left to right, for validation.
    pub fn terms(&self) -> Vec<&Term> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Term>) {
        match self {
            Expr::Term(t) => out.push(t),
            Expr::Not(e) => e.collect(out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Not,
    And,
    Or,
    Open,
    Close,
    Eq,
    Name,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    offset: usize,
    len: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')
}

fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        let (tok, len) = match c {
            c if c.is_whitespace() => continue,
            '!' => (Tok::Not, 1),
            '(' => (Tok::Open, 1),
            ')' => (Tok::Close, 1),
            '=' => (Tok::Eq, 1),
            '&' | '|' => {
                if chars.next_if(|&(_, n)| n == c).is_none() {
                    return Err(ExprError {
                        offset,
                        len: 1,
                        message: format!("`{c}` is not an operator; write `{c}{c}`"),
                    });
                }
                (if c == '&' { Tok::And } else { Tok::Or }, 2)
            }
            c if is_name_char(c) => {
                let mut end = offset + 1;
                while let Some((i, n)) = chars.next_if(|&(_, n)| is_name_char(n)) {
                    end = i + n.len_utf8();
                }
                (Tok::Name, end - offset)
            }
            c => {
                return Err(ExprError {
                    offset,
                    len: c.len_utf8(),
                    message: format!("unexpected character `{c}`"),
                });
            }
        };
        tokens.push(Token { tok, offset, len });
    }
    Ok(tokens)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn show(&self, t: &Token) -> String {
        format!("`{}`", &self.text[t.offset..t.offset + t.len])
    }

    fn error(&self, t: &Token, message: String) -> ExprError {
        ExprError {
            offset: t.offset,
            len: t.len,
            message,
        }
    }

    fn eat(&mut self, tok: Tok) -> bool {
        let hit = self.tokens.get(self.pos).is_some_and(|t| t.tok == tok);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let mut left = self.and(depth)?;
        while self.eat(Tok::Or) {
            left = Expr::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let mut left = self.unary(depth)?;
        while self.eat(Tok::And) {
            left = Expr::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let Some(t) = self.tokens.get(self.pos) else {
            let message = if self.tokens.is_empty() {
                "empty condition"
            } else {
                "the condition ends where a flag, `!` or `(` was expected"
            };
            return Err(ExprError {
                offset: self.text.len(),
                len: 0,
                message: message.to_string(),
            });
        };
        if depth >= MAX_DEPTH {
            return Err(self.error(t, "the condition nests too deeply".to_string()));
        }
        self.pos += 1;
        match t.tok {
            Tok::Not => Ok(Expr::Not(Box::new(self.unary(depth + 1)?))),
            Tok::Open => {
                let open = self.pos - 1;
                let inner = self.or(depth + 1)?;
                if !self.eat(Tok::Close) {
                    let open = &self.tokens[open];
                    return Err(self.error(open, "unclosed `(`".to_string()));
                }
                Ok(inner)
            }
            Tok::Name => self.term(self.pos - 1),
            _ => Err(self.error(
                t,
                format!("expected a flag, `!` or `(`, found {}", self.show(t)),
            )),
        }
    }

    /// A name token at `at`: a flag, or `arch` followed by `= NAME`.
    fn term(&mut self, at: usize) -> Result<Expr, ExprError> {
        let text = self.text;
        let (offset, len) = (self.tokens[at].offset, self.tokens[at].len);
        let name = &text[offset..offset + len];
        if !self.eat(Tok::Eq) {
            return Ok(Expr::Term(Term {
                kind: TermKind::Flag,
                name: name.to_string(),
                offset,
            }));
        }
        let t = &self.tokens[at];
        if name != "arch" {
            return Err(self.error(t, format!("only `arch=` takes a value, not `{name}=`")));
        }
        match self.tokens.get(self.pos) {
            Some(v) if v.tok == Tok::Name => {
                self.pos += 1;
                Ok(Expr::Term(Term {
                    kind: TermKind::Arch,
                    name: text[v.offset..v.offset + v.len].to_string(),
                    offset: v.offset,
                }))
            }
            _ => Err(self.error(t, "expected an architecture after `arch=`".to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn flavor(arch: &str, flags: &[(&str, bool)]) -> Flavor {
        Flavor {
            name: None,
            arch: arch.to_string(),
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            format: None,
        }
    }

    fn eval(text: &str, f: &Flavor) -> bool {
        Expr::parse(text).unwrap().eval(f)
    }

    #[test]
    fn not_binds_tighter_than_and_tighter_than_or() {
        let f = flavor("x86_64", &[("a", true), ("b", false), ("c", true)]);
        // `!a && b` is `(!a) && b`, not `!(a && b)`.
        assert!(!eval("!a && b", &f));
        assert!(eval("!(a && b)", &f));
        // `a || b && !c` is `a || (b && !c)`.
        assert!(eval("a || b && !c", &f));
        assert!(!eval("(a || b) && !c", &f));
        // `b && c || a` is `(b && c) || a`.
        assert!(eval("b && c || a", &f));
        assert!(!eval("b && (c || a)", &f));
        assert!(eval("!!a", &f));
        // Absent flags are false.
        assert!(!eval("zzz", &f));
    }

    #[test]
    fn tree_shape_follows_precedence() {
        let e = Expr::parse("a || b && c").unwrap();
        let Expr::Or(left, right) = e else {
            panic!("expected ||")
        };
        assert!(matches!(*left, Expr::Term(Term { ref name, .. }) if name == "a"));
        assert!(matches!(*right, Expr::And(..)));
    }

    #[test]
    fn arch_tests_compare_debian_architectures() {
        let f = flavor("i686", &[]);
        assert!(eval("arch=i686", &f));
        assert!(eval("arch = i386", &f));
        assert!(!eval("arch=x86_64", &f));
        assert!(eval("!arch=x86_64 && !kernel", &f));
        let terms = Expr::parse("kvm || arch=aarch64").unwrap();
        let terms = terms.terms();
        assert_eq!(terms.len(), 2);
        assert_eq!(
            (terms[1].kind, terms[1].name.as_str(), terms[1].offset),
            (TermKind::Arch, "aarch64", 12)
        );
        assert_eq!(terms[0].offset, 0);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = |t: &str| Expr::parse(t).unwrap_err();
        assert_eq!(err("").message, "empty condition");
        let e = err("a & b");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (2, "`&` is not an operator; write `&&`")
        );
        let e = err("(a || b");
        assert_eq!((e.offset, e.message.as_str()), (0, "unclosed `(`"));
        let e = err("a b");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (2, "expected `&&` or `||` before `b`")
        );
        assert_eq!(err("a)").message, "unmatched `)`");
        assert_eq!(err("a &&").offset, 4);
        assert_eq!(
            err("xen=1").message,
            "only `arch=` takes a value, not `xen=`"
        );
        assert_eq!(
            err("arch=").message,
            "expected an architecture after `arch=`"
        );
        assert_eq!(err("a && é").message, "unexpected character `é`");
        assert_eq!(
            err("|| a").message,
            "expected a flag, `!` or `(`, found `||`"
        );
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(err(&deep).message, "the condition nests too deeply");
    }
}
