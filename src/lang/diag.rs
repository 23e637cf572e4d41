//! Errors of the language and the workspace, with the source spans miette renders.
//!
//! Every error that points into a file carries a [`Diag`]; its `Display` starts with
//! `path:line:column` and names the offending text, so a plain `eprintln!("{err}")` is
//! already useful, and miette's fancy report adds the snippet, label and help line.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

/// A position in a group or flavor file, for messages and `why` chains.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Location {
    /// The file, workspace-relative when it lies inside the workspace.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Where in a file an error is, with what miette needs to draw it.
#[derive(Debug)]
pub struct Diag {
    /// `path:line:column` of the start of the span.
    pub location: Location,
    /// The offending source text (first line of the span, shortened).
    pub text: String,
    /// The label under the span.
    pub label: String,
    /// Suggestions, e.g. the nearest known names.
    pub help: Option<String>,
    /// The byte span in the file.
    pub span: SourceSpan,
    src: NamedSource<Arc<String>>,
}

/// Everything that can go wrong finding a workspace or reading its groups and flavors.
#[derive(Debug, thiserror::Error)]
pub enum LangError {
    /// The file is not valid KDL v2.
    #[error("{}: invalid KDL: {message}", .diag.location)]
    Syntax {
        /// kdl's message, with the offending text.
        message: String,
        /// Where.
        diag: Box<Diag>,
    },
    /// A statement, value or name the language does not accept.
    #[error("{}: {message}", .diag.location)]
    Invalid {
        /// What is wrong, naming the offending text.
        message: String,
        /// Where.
        diag: Box<Diag>,
    },
    /// `include NAME` where `groups/NAME.kdl` does not exist.
    #[error("{}: unknown group `{name}` in include", .diag.location)]
    UnknownInclude {
        /// The included name.
        name: String,
        /// Where.
        diag: Box<Diag>,
    },
    /// Groups that include each other.
    #[error("{}: include cycle {cycle}", .diag.location)]
    IncludeCycle {
        /// The cycle, `web -> base -> web`.
        cycle: String,
        /// The include that closes the cycle.
        diag: Box<Diag>,
    },
    /// No folder at or above the start holds `groups/` or `store/`.
    #[error(
        "no workspace found: neither {} nor any folder above it holds `groups/` or `store/` (use --workspace DIR)",
        .start.display()
    )]
    NoWorkspace {
        /// Where the search started.
        start: PathBuf,
    },
    /// `--workspace` names something that is not a folder.
    #[error("workspace {} is not a folder", .path.display())]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A file or folder that cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A group spec that names no group file.
    #[error("unknown group `{spec}`")]
    UnknownGroup {
        /// What was asked for.
        spec: String,
        /// The nearest group names.
        help: String,
    },
    /// A flavor spec that names no flavor file.
    #[error("unknown flavor `{spec}`")]
    UnknownFlavor {
        /// What was asked for.
        spec: String,
        /// The nearest flavor names.
        help: String,
    },
    /// A canonical flavor string with a flag no flavor file sets and appliance does not
    /// read itself: a typo, which would store a lock for a flavor that does not exist.
    #[error("unknown flag `{flag}` in flavor `{spec}`: no flavor file sets it")]
    UnknownFlag {
        /// The canonical string given.
        spec: String,
        /// The flag.
        flag: String,
        /// The nearest known flags.
        help: String,
    },
    /// A canonical flavor string that does not parse.
    #[error("malformed flavor string `{text}`: {reason}")]
    BadFlavorString {
        /// The string given.
        text: String,
        /// What is wrong.
        reason: String,
    },
}

impl LangError {
    /// The file position, for errors that point into a file.
    pub fn diag(&self) -> Option<&Diag> {
        match self {
            LangError::Syntax { diag, .. }
            | LangError::Invalid { diag, .. }
            | LangError::UnknownInclude { diag, .. }
            | LangError::IncludeCycle { diag, .. } => Some(diag),
            _ => None,
        }
    }
}

impl Diagnostic for LangError {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.diag().map(|d| &d.src as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let d = self.diag()?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(d.label.clone()),
            d.span,
        ))))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let help = match self {
            LangError::UnknownGroup { help, .. }
            | LangError::UnknownFlavor { help, .. }
            | LangError::UnknownFlag { help, .. } => Some(help.as_str()),
            _ => self.diag().and_then(|d| d.help.as_deref()),
        };
        help.map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}

/// Where a statement is written, kept for errors found only when compile reads what the
/// statement names (a `hostfile` that would copy a secret): they point at the statement
/// with the same snippet and help as the errors found while parsing.
#[derive(Debug, Clone)]
pub struct Site {
    src: SourceFile,
    span: SourceSpan,
}

impl Site {
    pub(crate) fn new(src: &SourceFile, span: SourceSpan) -> Site {
        Site {
            src: src.clone(),
            span,
        }
    }

    /// `path:line:column` of the statement.
    pub fn location(&self) -> Location {
        self.src.location(self.span.offset())
    }

    /// A [`LangError::Invalid`] pointing at the statement.
    pub fn invalid(
        &self,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> LangError {
        self.src.invalid(self.span, message, label, help)
    }
}

/// Two sites are equal when they point at the same text of the same file.
impl PartialEq for Site {
    fn eq(&self, other: &Site) -> bool {
        self.src.name == other.src.name && self.span == other.span
    }
}

impl Eq for Site {}

/// A file's text and the name messages use for it.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// Workspace-relative when possible, else as read.
    pub(crate) name: PathBuf,
    pub(crate) text: Arc<String>,
}

impl SourceFile {
    pub(crate) fn new(name: PathBuf, text: String) -> SourceFile {
        SourceFile {
            name,
            text: Arc::new(text),
        }
    }

    /// Line and column of a byte offset (clamped to the text).
    pub(crate) fn location(&self, offset: usize) -> Location {
        let mut end = offset.min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &self.text[..end];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            file: self.name.clone(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// The error position for `span`.
    pub(crate) fn diag(
        &self,
        span: SourceSpan,
        label: impl Into<String>,
        help: Option<String>,
    ) -> Box<Diag> {
        let start = span.offset();
        let text = self
            .text
            .get(start..start + span.len())
            .map(snippet)
            .unwrap_or_default();
        Box::new(Diag {
            location: self.location(start),
            text,
            label: label.into(),
            help,
            span,
            src: NamedSource::new(self.name.display().to_string(), Arc::clone(&self.text)),
        })
    }

    /// An [`LangError::Invalid`] at `span`.
    pub(crate) fn invalid(
        &self,
        span: SourceSpan,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> LangError {
        LangError::Invalid {
            message: message.into(),
            diag: self.diag(span, label, help),
        }
    }

    /// Parses the file as KDL v2, wrapping kdl's error (which has no file name) in ours.
    pub(crate) fn parse_kdl(&self) -> Result<kdl::KdlDocument, LangError> {
        kdl::KdlDocument::parse_v2(&self.text).map_err(|err| {
            let first = err.diagnostics.first();
            let span = first.map_or_else(|| SourceSpan::from(0..0), |d| d.span);
            let what = first
                .and_then(|d| d.message.clone())
                .unwrap_or_else(|| "unexpected input".to_string());
            let at = self.text.get(span.offset()..span.offset() + span.len());
            // KDL v1 wrote bare keywords, a habit v2 refuses without saying why.
            let v1_keyword = match at {
                Some(word @ ("true" | "false" | "null" | "inf" | "-inf" | "nan")) => Some(format!(
                    "KDL v2 writes `#{word}`: a bare `{word}` is KDL v1"
                )),
                _ => None,
            };
            let diag = self.diag(
                span,
                first
                    .and_then(|d| d.label.clone())
                    .unwrap_or_else(|| "here".to_string()),
                v1_keyword.or_else(|| first.and_then(|d| d.help.clone())),
            );
            let message = if diag.text.is_empty() {
                format!("{what} at end of input")
            } else {
                format!("{what} at `{}`", diag.text)
            };
            LangError::Syntax { message, diag }
        })
    }
}

/// The first line of `text`, shortened to keep messages on one line.
fn snippet(text: &str) -> String {
    const MAX: usize = 40;
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > MAX {
        let short: String = line.chars().take(MAX).collect();
        format!("{short}…")
    } else {
        line.to_string()
    }
}

/// The (at most three) `candidates` nearest to `word`, nearest first: those a typo of
/// a third of its characters (one at least) away.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let mut close: Vec<(usize, &str)> = (candidates.into_iter())
        .map(|k| (strsim::damerau_levenshtein(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .collect();
    close.sort_unstable();
    close.dedup();
    close.into_iter().take(3).map(|(_, k)| k).collect()
}

/// A help line naming the known `what` nearest to `word`, then all of them (shortened).
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    what: &str,
) -> String {
    const LIST: usize = 12;
    let mut known: Vec<&str> = candidates.into_iter().collect();
    known.sort_unstable();
    known.dedup();
    if known.is_empty() {
        return format!("no {what} are defined");
    }
    let mut help = String::new();
    let close = nearest(word, known.iter().copied());
    if !close.is_empty() {
        let names: Vec<String> = close.iter().map(|k| format!("`{k}`")).collect();
        help = format!("did you mean {}? ", names.join(" or "));
    }
    help.push_str(&format!(
        "known {what}: {}",
        known[..known.len().min(LIST)].join(", ")
    ));
    if known.len() > LIST {
        help.push_str(", …");
    }
    help
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let src = SourceFile::new("g.kdl".into(), "ab\néx yz\n".to_string());
        let loc = src.location(6);
        assert_eq!((loc.line, loc.column), (2, 3));
        assert_eq!(loc.to_string(), "g.kdl:2:3");
        // Offsets past the end or inside a character are clamped, never a panic.
        assert_eq!(src.location(4).column, 1);
        assert_eq!(src.location(999).line, 3);
    }

    #[test]
    fn kdl_errors_name_the_file() {
        let src = SourceFile::new("groups/x.kdl".into(), "a {\nb \"open\n".to_string());
        let err = src.parse_kdl().unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("groups/x.kdl:"), "{text}");
        assert!(matches!(err, LangError::Syntax { .. }));
        assert!(err.labels().is_some() && err.source_code().is_some());
    }

    #[test]
    fn suggestions_rank_nearest_names() {
        let help = suggest("pakage", ["package", "remove", "cmd"], "statements");
        assert!(help.starts_with("did you mean `package`?"), "{help}");
        assert!(
            help.ends_with("known statements: cmd, package, remove"),
            "{help}"
        );
        assert_eq!(suggest("x", [], "flags"), "no flags are defined");
        let far = suggest("zzzzzz", ["xen"], "flags");
        assert_eq!(far, "known flags: xen");
    }

    #[test]
    fn nearest_names_are_a_typo_away() {
        let names = ["bash", "sh", "ls", "dash", "bashbug"];
        assert_eq!(nearest("bsh", names), ["bash", "sh"]);
        assert_eq!(nearest("bashbgu", names), ["bashbug"]);
        assert!(nearest("zzz", names).is_empty());
    }

    #[test]
    fn snippets_stay_on_one_line() {
        assert_eq!(snippet("a\nb"), "a");
        assert_eq!(snippet(&"x".repeat(50)).chars().count(), 41);
    }
}
