//! Debian relationship fields (`Depends`, `Provides`, `Conflicts`, ...).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::rules::{self, Broken};
use crate::excerpt::excerpt;
use crate::source::Op;

/// One package relation: `name[:arch] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Relation {
    /// Package or virtual package name.
    pub name: String,
    /// Architecture qualifier: `any`, `native` or a Debian arch.
    pub arch: Option<String>,
    /// Version constraint.
    pub constraint: Option<(Op, String)>,
}

/// One `Depends` entry: alternatives separated by `|`, the first satisfiable wins.
pub type Dependency = Vec<Relation>;

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(arch) = &self.arch {
            write!(f, ":{arch}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

/// A relation field that does not follow Debian policy's syntax, or names a package,
/// version or architecture that breaks dpkg's rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed relation `{}`: {reason}", excerpt(.text))]
pub struct RelationParseError {
    /// The offending relation text.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Relation {
    /// Parses one relation such as `libssl3 (>= 3.0.9)` or `python3:any`.
    ///
    /// Architecture restrictions (`[amd64]`) and build profiles (`<!nocheck>`) are
    /// accepted and dropped: they only matter for source packages.
    pub fn parse(text: &str) -> Result<Relation, RelationParseError> {
        let err = |reason: &str| RelationParseError {
            text: text.trim().to_string(),
            reason: reason.to_string(),
        };
        let broken = |e: Broken| err(&e.to_string());
        let mut rest = text.trim();
        // Restrictions follow the version constraint, whose operator may itself be `<<`.
        let after_constraint = rest.find(')').map_or(0, |i| i + 1);
        if let Some(i) = rest[after_constraint..].find(['[', '<']) {
            rest = rest[..after_constraint + i].trim_end();
        }
        let (head, constraint) = match rest.find('(') {
            Some(open) => {
                let close = rest.rfind(')').ok_or_else(|| err("missing `)`"))?;
                if close < open || !rest[close + 1..].trim().is_empty() {
                    return Err(err("text after `)`"));
                }
                let inner = rest[open + 1..close].trim();
                let split = inner
                    .find(|c: char| !matches!(c, '<' | '>' | '='))
                    .ok_or_else(|| err("missing version"))?;
                let op = Op::parse(&inner[..split]).ok_or_else(|| err("unknown operator"))?;
                let version = inner[split..].trim();
                rules::version(version).map_err(broken)?;
                (rest[..open].trim(), Some((op, version.to_string())))
            }
            None => (rest, None),
        };
        let (name, arch) = match head.split_once(':') {
            Some((n, a)) => (n, Some(a.to_string())),
            None => (head, None),
        };
        rules::package_name(name).map_err(broken)?;
        if let Some(arch) = &arch {
            rules::architecture(arch).map_err(broken)?;
        }
        Ok(Relation {
            name: name.to_string(),
            arch,
            constraint,
        })
    }

    /// Parses a comma-separated list without alternatives (`Provides`, `Conflicts`).
    pub fn parse_list(field: &str) -> Result<Vec<Relation>, RelationParseError> {
        split_commas(field).map(Relation::parse).collect()
    }
}

/// Parses a `Depends`-style field: comma-separated entries of `|`-separated alternatives.
pub fn parse_dependencies(field: &str) -> Result<Vec<Dependency>, RelationParseError> {
    split_commas(field)
        .map(|entry| entry.split('|').map(Relation::parse).collect())
        .collect()
}

fn split_commas(field: &str) -> impl Iterator<Item = &str> {
    field.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relations() {
        let r = Relation::parse("libssl3 (>= 3.0.9)").unwrap();
        assert_eq!(r.name, "libssl3");
        assert_eq!(r.constraint, Some((Op::Ge, "3.0.9".into())));
        let r = Relation::parse("python3:any (>=3.9~)").unwrap();
        assert_eq!(r.arch.as_deref(), Some("any"));
        assert_eq!(r.constraint, Some((Op::Ge, "3.9~".into())));
        let r = Relation::parse("libfoo (<< 2.0~) [amd64] <!nocheck>").unwrap();
        assert_eq!(r.constraint, Some((Op::Lt, "2.0~".into())));
        let r = Relation::parse("foo (<= 1)").unwrap();
        assert_eq!(r.constraint, Some((Op::Le, "1".into())));
        let r = Relation::parse("foo [amd64] <!nocheck>").unwrap();
        assert_eq!((r.name.as_str(), r.constraint), ("foo", None));
    }

    #[test]
    fn parses_alternatives() {
        let deps =
            parse_dependencies("libc6 (>= 2.34), default-mta | mail-transport-agent").unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[1].len(), 2);
        assert_eq!(deps[1][1].name, "mail-transport-agent");
        assert_eq!(deps[1][0].to_string(), "default-mta");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Relation::parse("foo (>= )").is_err());
        assert!(Relation::parse("foo (~~ 1)").is_err());
        assert!(Relation::parse("foo (>= 1").is_err());
        assert!(Relation::parse("fo o").is_err());
        assert!(Relation::parse("").is_err());
    }

    #[test]
    fn names_versions_and_arches_follow_dpkgs_rules() {
        for (text, reason) in [
            ("--foo", "bad package name `--foo`: must start"),
            ("Foo_Bar", "bad package name `Foo_Bar`"),
            (
                "foo (>= 1 beta)",
                "bad version `1 beta`: version string has embedded spaces",
            ),
            (
                "foo (>= x1)",
                "bad version `x1`: version number does not start with digit",
            ),
            ("foo:AMD64", "bad architecture `AMD64`"),
        ] {
            let err = Relation::parse(text).unwrap_err();
            assert!(err.reason.starts_with(reason), "{text}: {err}");
        }
        let huge = format!("{} (>= 1)", "A".repeat(70_000));
        let err = Relation::parse(&huge).unwrap_err().to_string();
        assert!(err.len() < 400, "{} bytes", err.len());
        assert!(err.contains("... (70007 bytes)"), "{err}");
    }
}
