//! Resolution failures, each with the chain from the compiled group to the problem.

use std::fmt;

use crate::excerpt::excerpt;

/// A relation that cannot be satisfied, or a conflict in the chosen set.
///
/// `chain` starts at the compiled group (or `essential` for packages added because they
/// are essential), goes through the packages that pulled each other in, and ends with
/// the relation that failed, e.g. `web -> nginx-light -> libssl3 (>= 3.0.9)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", joined(.chain, " -> "))]
pub struct ResolveError {
    /// The group, the packages, and the failing relation, outermost first.
    pub chain: Vec<String>,
    /// What went wrong at the end of the chain.
    pub problem: Problem,
    /// The position in [`super::Request::wanted`] of the request whose chain this is,
    /// which the caller can point at; `None` for a chain that began at the essential
    /// packages.
    pub wanted: Option<usize>,
}

/// What is wrong with one relation or with the chosen set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Nothing in the universe has or provides the name.
    #[error("no such package{}", did_you_mean(.suggestions))]
    NoSuchPackage {
        /// The nearest known names, best first (at most three).
        suggestions: Vec<String>,
    },
    /// The name exists for this architecture, but no version satisfies the relation.
    #[error("only {} available", joined(.available, ", "))]
    Unavailable {
        /// The versions that exist, lowest first, then what providers offer.
        available: Vec<String>,
    },
    /// The name exists only for architectures the relation cannot use.
    #[error("not available for this architecture (found {})", joined(.found, ", "))]
    WrongArch {
        /// `name:arch` of every package named or providing the name.
        found: Vec<String>,
    },
    /// Only a package the group removes has the name.
    #[error("removed by the group")]
    Removed,
    /// Only packages the group removes provide the name.
    #[error("only provided by removed packages ({})", joined(.providers, ", "))]
    ProvidedOnlyByRemoved {
        /// The removed providers.
        providers: Vec<String>,
    },
    /// A satisfying version exists, but another version of it is already chosen.
    #[error(
        "{} is already chosen, through {}",
        excerpt(.chosen),
        joined(.through, " -> ")
    )]
    AlreadyChosen {
        /// The chosen package and version, `libssl3 (3.0.8)`.
        chosen: String,
        /// How the chosen version came in, from the group down to it.
        through: Vec<String>,
    },
    /// No alternative of a `a | b` entry can be satisfied; each one's reason.
    #[error("no alternative can be installed: {}", alternatives(.0))]
    NoAlternative(Vec<(String, Problem)>),
    /// Only packages obsoleted by others have the name (RPM), and none of their
    /// obsoleters provides what was asked.
    #[error("obsoleted by {}, which does not provide it", joined(.by, ", "))]
    Obsoleted {
        /// The obsoleting packages, `name-evr.arch`.
        by: Vec<String>,
    },
    /// An RPM rich dependency that does not parse: why.
    #[error("malformed rich dependency: {0}")]
    Malformed(String),
    /// An `rpmlib(...)` feature that rpm 4.18 does not have.
    #[error("not a feature of rpm 4.18")]
    UnknownRpmlib,
    /// Two chosen packages conflict (or one breaks the other).
    #[error(transparent)]
    Conflict(Box<Conflict>),
    /// A source refused a stanza of the package, which might have been the one to
    /// choose: the reason, naming the stanza.
    #[error("{0}")]
    Refused(String),
}

/// A `Conflicts` or `Breaks` relation of one chosen package matching another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind}: {} {} {}, {} {}, which comes from {}",
    excerpt(.package),
    kind.verb(),
    excerpt(.relation),
    matched_how(*.provided),
    excerpt(.other),
    joined(.other_chain, " -> ")
)]
pub struct Conflict {
    /// `Conflicts` or `Breaks`.
    pub kind: ConflictKind,
    /// The package declaring the relation, `exim4 (4.96)`.
    pub package: String,
    /// The relation as declared, `mail-transport-agent`.
    pub relation: String,
    /// The chosen package it matches, `postfix (3.7)`.
    pub other: String,
    /// Whether `other` matches through its `Provides` (a virtual name).
    pub provided: bool,
    /// How `other` came in, from the group down to it.
    pub other_chain: Vec<String>,
}

/// Which negative relation field a conflict comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// `Conflicts:`.
    Conflicts,
    /// `Breaks:`, which for a set installed together means the same.
    Breaks,
}

impl ConflictKind {
    /// The verb used between the two packages in a message.
    fn verb(self) -> &'static str {
        match self {
            ConflictKind::Conflicts => "conflicts with",
            ConflictKind::Breaks => "breaks",
        }
    }
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictKind::Conflicts => "conflicts",
            ConflictKind::Breaks => "breaks",
        })
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", joined(suggestions, ", "))
    }
}

fn alternatives(reasons: &[(String, Problem)]) -> String {
    let reasons: Vec<String> = (reasons.iter())
        .map(|(r, p)| format!("{}: {p}", excerpt(r)))
        .collect();
    reasons.join("; ")
}

/// `items`, each as errors quote input (package names and versions come from any
/// stanza), joined with `separator`.
fn joined(items: &[String], separator: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|i| excerpt(i).to_string()).collect();
    quoted.join(separator)
}

fn matched_how(provided: bool) -> &'static str {
    if provided {
        "provided by"
    } else {
        "matched by"
    }
}
