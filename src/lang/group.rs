//! Group files: `group NAME version="1.0" { statements }`, parsed and validated.
//!
//! A condition (`when COND { ... }` or `when=COND`) is the text of the `when` node's
//! entries joined by single spaces: string arguments as written (bare like `kernel`,
//! `!kernel`, `&&`, `||`, or quoted like `"(xen || kvm)"`) and an `arch=NAME` property
//! as `arch=NAME`. KDL itself forbids bare `(`, `)` and `#true`, so parentheses need
//! quotes: `when kernel && "!(xen || kvm)" { ... }`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use globset::Glob;
use kdl::{KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::container::{self, ContainerSetting};
use super::diag::{LangError, Location, Site, SourceFile, suggest};
use super::expr::{Expr, TermKind};
use super::flavor::{arch_names, debian_arch};
use super::node::{
    no_block, one_arg, prop_bool, prop_string, props, repr, statement_span, string_args, top_node,
    value_span, verbatim_start,
};
use crate::excerpt::excerpt;
use crate::resolve::Prefer;
use crate::source::Op;

/// A parsed and validated group file.
#[derive(Debug, Clone)]
pub struct GroupDef {
    /// The group's name, equal to the file name without `.kdl`.
    pub name: String,
    /// `version="1.0"`.
    pub version: String,
    /// `summary "..."`.
    pub summary: Option<String>,
    /// The flavors compiled by default (`flavors xen kvm`), each an existing flavor file.
    pub flavors: Vec<String>,
    /// The file, absolute.
    pub file: PathBuf,
    /// BLAKE3 of the file's bytes, lower-case hex.
    pub digest: String,
    /// The content statements, in file order.
    pub statements: Vec<Statement>,
    pub(crate) source: SourceFile,
}

/// One content statement of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `when COND { ... }`, or a statement carrying `when=COND` (its body is that statement).
    When {
        /// The condition.
        condition: Condition,
        /// Statements that apply when it holds.
        body: Vec<Statement>,
    },
    /// `include NAME...`: every statement of `groups/NAME.kdl`, in place.
    Include(Vec<Include>),
    /// `package NAME [version="OP VERSION"]`.
    Package {
        /// Package name.
        name: String,
        /// Version constraint.
        constraint: Option<(Op, String)>,
        /// The statement, for a request the packages cannot meet.
        site: Site,
    },
    /// `remove NAME...`: drop packages an included group named.
    Remove(Vec<Removal>),
    /// `exclude [GLOB...] [docs=#true] [licenses=#true]`: what is left out of the tree.
    Exclude(Exclude),
    /// `hostfile GLOB...`: host files copied in at compile time.
    Hostfile(Hostfile),
    /// `overlay "path"`: a folder or tarball laid over the tree.
    Overlay(Overlay),
    /// `paths GLOB...`: trim the tree to these paths and what they need to run.
    Paths(Vec<PathsGlob>),
    /// `module NAME...`: kernel modules for the initramfs.
    Module(Vec<String>),
    /// `cmd ARG...`: the command of container outputs.
    Cmd(Vec<String>),
    /// `env`, `label`, `run-as`, `workdir`, `expose` or `entrypoint`: the rest of a
    /// container output's config.
    Container(ContainerSetting),
    /// `file "/path" ...`: a file written into the tree.
    File(FileStatement),
    /// `prefer installed|newest`: which version of each package name to take.
    Prefer(Prefer),
    /// `user NAME ...` or `group NAME ...`: an account no package's script makes.
    Account(Account),
    /// `debconf LINE...`: answers debconf has before any maintainer script asks.
    Debconf(Vec<Preseed>),
    /// `enable UNIT...` or `disable UNIT...`: systemd units set once configured.
    Units(Vec<UnitChange>),
}

/// A `when` condition with its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The condition text (see the module documentation).
    pub text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// Where the condition starts.
    pub location: Location,
}

/// One name of an `include` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The included group.
    pub name: String,
    /// Where the name is written.
    pub location: Location,
    /// The name's byte span, to point at it in later errors (include cycles).
    pub span: SourceSpan,
}

/// One name of a `remove` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The package to drop.
    pub name: String,
    /// Where the name is written.
    pub location: Location,
}

/// One glob of a `paths` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathsGlob {
    /// The glob: absolute and normalised.
    pub glob: String,
    /// Where the glob is written, for one that matches nothing in the tree.
    pub site: Site,
}

/// What `exclude` statements leave out of the tree: paths matching globs (a directory
/// with its subtree), and the files packages mark as documentation or licenses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclude {
    /// The globs: absolute and normalised.
    pub globs: Vec<String>,
    /// `docs=#true`: files marked as documentation (rpm's `%doc`; on Debian, below
    /// `/usr/share/doc`, `/usr/share/man` and `/usr/share/info`, copyright files aside).
    pub docs: bool,
    /// `licenses=#true`: license texts (rpm's `%license`; Debian's copyright files).
    pub licenses: bool,
}

impl Exclude {
    /// Adds what `other` leaves out.
    pub fn extend(&mut self, other: &Exclude) {
        self.globs.extend_from_slice(&other.globs);
        self.docs |= other.docs;
        self.licenses |= other.licenses;
    }
}

/// A `hostfile GLOB... [secret=#true]` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostfile {
    /// The globs: absolute and normalised.
    pub globs: Vec<String>,
    /// `secret=#true`: the group means to copy host secrets (shadow files, SSH host
    /// keys, files others may not read), which are refused otherwise.
    pub secret: bool,
    /// The statement, for errors about what it matches on the host.
    pub site: Site,
}

/// An `overlay PATH [secret=#true]` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// The folder or tarball, made absolute against the group file's folder.
    pub path: PathBuf,
    /// `secret=#true`: a folder overlay may hold secrets (files others may not read),
    /// which are refused otherwise.
    pub secret: bool,
    /// The statement, for errors about what the overlay holds.
    pub site: Site,
}

/// A `file` statement: a regular file the group writes into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatement {
    /// Absolute, normalised path inside the appliance.
    pub path: String,
    /// Permission bits, `0o644` by default.
    pub mode: u32,
    /// Owner name (`owner=`), `root` by default.
    pub user: String,
    /// Group name (`group=`), `root` by default.
    pub group: String,
    /// The bytes (`content=`), empty by default.
    pub content: Vec<u8>,
    /// The statement.
    pub location: Location,
}

/// A `user` or `group` statement: an account made in the configured tree, with the
/// tree's own tools, when no package's script made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// The account's name.
    pub name: String,
    /// A user's settings, or that it is a group.
    pub kind: AccountKind,
    /// `uid=` or `gid=`; the tools choose a free one when `None`.
    pub id: Option<u32>,
    /// `system=#true`: a system account, with an id from the system range.
    pub system: bool,
    /// The statement.
    pub location: Location,
}

/// What kind of account a `user` or `group` statement makes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AccountKind {
    /// `group NAME`.
    Group,
    /// `user NAME`, with what it sets besides the id.
    User {
        /// `group=`: its primary group; by default a group of its own name.
        group: Option<String>,
        /// `home="/path"`.
        home: Option<String>,
        /// `shell="/bin/sh"`.
        shell: Option<String>,
    },
}

impl AccountKind {
    /// The statement's name: `user` or `group`.
    pub fn statement(&self) -> &'static str {
        match self {
            AccountKind::Group => "group",
            AccountKind::User { .. } => "user",
        }
    }
}

/// One line of a `debconf` statement: `owner question type value`, as
/// `debconf-set-selections` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preseed {
    /// The line.
    pub line: String,
    /// Where the line is written.
    pub location: Location,
}

/// One unit of an `enable` or `disable` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitChange {
    /// The unit, as written (`nginx` is `nginx.service`, as systemctl reads it).
    pub unit: String,
    /// `enable` (else `disable`).
    pub enable: bool,
    /// Where the unit is named.
    pub location: Location,
}

/// Names a group file may refer to, gathered from the workspace.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Every flag some flavor file sets.
    pub flags: BTreeSet<String>,
    /// Every flavor file's name.
    pub flavors: BTreeSet<String>,
    /// Every group file's name.
    pub groups: BTreeSet<String>,
}

/// Statement names besides the container ones, for suggestions.
const STATEMENTS: &[&str] = &[
    "cmd", "debconf", "disable", "enable", "exclude", "file", "flavors", "group", "hostfile",
    "include", "module", "overlay", "package", "paths", "prefer", "remove", "summary", "user",
    "when",
];

/// The types and flags a `debconf` line may set, as `debconf-set-selections` knows them
/// (`password` is left out: a lock is no place for a secret).
const DEBCONF_TYPES: &[&str] = &[
    "boolean",
    "multiselect",
    "note",
    "seen",
    "select",
    "string",
    "text",
    "title",
];

/// The unit types systemd knows, the suffix of a unit's name.
const UNIT_TYPES: &[&str] = &[
    "automount",
    "device",
    "mount",
    "path",
    "scope",
    "service",
    "slice",
    "socket",
    "swap",
    "target",
    "timer",
];

/// The highest id a `user` or `group` statement may ask for: the configure stage maps
/// ids 0-65535, 65534 is `nogroup`'s and `nobody`'s, and 65535 is no id at all.
const MAX_ID: u32 = 65533;

/// The properties each content statement takes (`when` is handled on its own).
fn allowed_props(statement: &str) -> Option<&'static [&'static str]> {
    Some(match statement {
        "package" => &["version", "when"],
        "file" => &["mode", "owner", "group", "content", "when"],
        "hostfile" | "overlay" => &["secret", "when"],
        "user" => &["uid", "group", "home", "shell", "system", "when"],
        "group" => &["gid", "system", "when"],
        "exclude" => &["docs", "licenses", "when"],
        "include" | "remove" | "paths" | "module" | "cmd" | "prefer" | "debconf" | "enable"
        | "disable" => &["when"],
        name if container::STATEMENTS.contains(&name) => &["when"],
        _ => return None,
    })
}

/// Parses `text` as the group file `file`, which must define the group named as the
/// file's stem (`groups/web.kdl` defines `web`). `file` only names the file in messages
/// and anchors relative `overlay` paths: nothing is read from disk, so untrusted text
/// can be checked (and fuzzed) on its own. `known` holds the names it may refer to.
pub fn parse_group_text(file: &Path, text: &str, known: &Known) -> Result<GroupDef, LangError> {
    let expected = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let src = SourceFile::new(file.to_path_buf(), text.to_string());
    parse_group(src, file.to_path_buf(), &expected, known)
}

/// Parses group file `file` (absolute; its text in `src`) that must define `expected`.
pub(crate) fn parse_group(
    src: SourceFile,
    file: PathBuf,
    expected: &str,
    known: &Known,
) -> Result<GroupDef, LangError> {
    let doc = src.parse_kdl()?;
    let (node, _) = top_node(&src, &doc, "group", expected)?;
    let version = match props(&src, node, &["version"])?.get("version") {
        Some(entry) => group_version(&src, entry)?,
        None => {
            return Err(src.invalid(
                node.name().span(),
                format!("group `{expected}` has no version"),
                "missing `version=`",
                Some(format!(
                    "write `group {expected} version=\"1.0\" {{ ... }}`"
                )),
            ));
        }
    };
    let dir = file.parent().unwrap_or(Path::new("/"));
    let parser = Parser {
        src: &src,
        known,
        dir,
    };
    let mut summary = None;
    let mut flavors = Vec::new();
    let mut statements = Vec::new();
    for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
        match child.name().value() {
            "summary" => {
                no_block(&src, child)?;
                props(&src, child, &[])?;
                let (text, _) = one_arg(&src, child, "a summary text")?;
                if summary.is_some() {
                    return Err(src.invalid(
                        child.name().span(),
                        format!("group `{expected}` has a second `summary`"),
                        "second summary",
                        None,
                    ));
                }
                summary = Some(text.to_string());
            }
            "flavors" => {
                no_block(&src, child)?;
                props(&src, child, &[])?;
                for (name, entry) in string_args(&src, child, 1, usize::MAX, "flavor names")? {
                    if !known.flavors.contains(name) {
                        return Err(src.invalid(
                            value_span(entry),
                            format!("unknown flavor `{name}`"),
                            "no such file in flavors/",
                            Some(suggest(
                                name,
                                known.flavors.iter().map(String::as_str),
                                "flavors",
                            )),
                        ));
                    }
                    flavors.push(name.to_string());
                }
            }
            _ => statements.push(parser.statement(child)?),
        }
    }
    let digest = blake3::hash(src.text.as_bytes()).to_hex().to_string();
    Ok(GroupDef {
        name: expected.to_string(),
        version,
        summary,
        flavors,
        file,
        digest,
        statements,
        source: src,
    })
}

/// The group version: a string, or a number as written (`version=1.0`). No `-`: the
/// lock address appends `-REVISION` (`web=1.0-3[...]`), which must stay unambiguous.
fn group_version(src: &SourceFile, entry: &KdlEntry) -> Result<String, LangError> {
    let text = match entry.value() {
        KdlValue::String(s) => s.clone(),
        KdlValue::Integer(_) | KdlValue::Float(_) => repr(entry),
        _ => String::new(),
    };
    let mut chars = text.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '_'));
    if valid {
        Ok(text)
    } else {
        Err(src.invalid(
            value_span(entry),
            format!("bad group version `{}`", repr(entry)),
            "not a version",
            Some("a version is letters, digits and `. + ~ _` (no `-`), like \"1.0\"".to_string()),
        ))
    }
}

/// Maps offsets in a condition's text back to the source file.
struct Segment {
    /// Where the piece starts in the condition text.
    at: usize,
    /// Its length in the condition text.
    len: usize,
    /// The source span of the value the piece came from.
    span: SourceSpan,
    /// Where the piece starts in the source, when written verbatim.
    verbatim: Option<usize>,
}

struct ConditionText {
    text: String,
    segments: Vec<Segment>,
    /// Used when there is no entry to point at.
    fallback: SourceSpan,
}

impl ConditionText {
    fn push(&mut self, piece: &str, span: SourceSpan, verbatim: Option<usize>) {
        self.segments.push(Segment {
            at: self.text.len(),
            len: piece.len(),
            span,
            verbatim,
        });
        self.text.push_str(piece);
    }

    /// The source span of `len` bytes at `offset` in the condition text.
    fn span(&self, offset: usize, len: usize) -> SourceSpan {
        let Some(seg) = self.segments.iter().rev().find(|s| s.at <= offset) else {
            return self.segments.first().map_or(self.fallback, |s| s.span);
        };
        let inside = offset - seg.at;
        match seg.verbatim {
            Some(start) if inside <= seg.len => {
                SourceSpan::from((start + inside, len.min(seg.len - inside)))
            }
            _ => seg.span,
        }
    }
}

struct Parser<'a> {
    src: &'a SourceFile,
    known: &'a Known,
    dir: &'a Path,
}

impl Parser<'_> {
    fn location(&self, span: SourceSpan) -> Location {
        self.src.location(span.offset())
    }

    fn statement(&self, node: &KdlNode) -> Result<Statement, LangError> {
        let src = self.src;
        let name = node.name().value();
        if name == "when" {
            return self.when_block(node);
        }
        if matches!(name, "summary" | "flavors") {
            return Err(src.invalid(
                node.name().span(),
                format!("`{name}` cannot be conditional"),
                "inside `when`",
                Some(format!(
                    "`{name}` describes the group: put it directly in the group block"
                )),
            ));
        }
        let Some(allowed) = allowed_props(name) else {
            let known: Vec<&str> = (STATEMENTS.iter().chain(&container::STATEMENTS))
                .copied()
                .collect();
            return Err(super::node::unknown_node(src, node, "statement", &known));
        };
        no_block(src, node)?;
        container::pairs_as_properties(src, node)?;
        let props = props(src, node, allowed)?;
        let many = |what| string_args(src, node, 1, usize::MAX, what);
        let statement = match name {
            "include" => Statement::Include(
                many("group names")?
                    .into_iter()
                    .map(|(name, entry)| self.include(name, entry))
                    .collect::<Result<_, _>>()?,
            ),
            "package" => {
                let (package, entry) = one_arg(src, node, "a package name")?;
                Statement::Package {
                    name: self.package_name(package, entry)?,
                    constraint: props
                        .get("version")
                        .map(|e| self.constraint(e))
                        .transpose()?,
                    site: Site::new(src, statement_span(node)),
                }
            }
            "remove" => Statement::Remove(
                many("package names")?
                    .into_iter()
                    .map(|(package, entry)| {
                        Ok(Removal {
                            name: self.package_name(package, entry)?,
                            location: self.location(value_span(entry)),
                        })
                    })
                    .collect::<Result<_, LangError>>()?,
            ),
            "exclude" => Statement::Exclude(self.exclude(node, &props)?),
            "hostfile" => Statement::Hostfile(Hostfile {
                globs: self.globs(node, 1, "glob patterns")?,
                secret: self.secret(&props)?,
                site: Site::new(src, node.name().span()),
            }),
            "paths" => Statement::Paths(
                (self.located_globs(node, 1, "glob patterns")?.into_iter())
                    .map(|(glob, span)| PathsGlob {
                        glob,
                        site: Site::new(src, span),
                    })
                    .collect(),
            ),
            "overlay" => Statement::Overlay(Overlay {
                path: self.overlay(node)?,
                secret: self.secret(&props)?,
                site: Site::new(src, node.name().span()),
            }),
            "module" => Statement::Module(strings(many("module names")?)),
            "cmd" => Statement::Cmd(strings(many("a command")?)),
            "prefer" => {
                let (word, entry) = one_arg(src, node, "`installed` or `newest`")?;
                Statement::Prefer(word.parse().map_err(|problem: String| {
                    src.invalid(
                        value_span(entry),
                        problem,
                        "not a preference",
                        Some(
                            "`prefer newest` takes the newest version of each package from \
                             any source; `prefer installed` (the default) the host's"
                                .to_string(),
                        ),
                    )
                })?)
            }
            "user" | "group" => Statement::Account(self.account(node, &props)?),
            name if container::STATEMENTS.contains(&name) => {
                Statement::Container(container::setting(src, node)?)
            }
            "debconf" => Statement::Debconf(
                many("preseed lines")?
                    .into_iter()
                    .map(|(line, entry)| self.preseed(line, entry))
                    .collect::<Result<_, _>>()?,
            ),
            "enable" | "disable" => Statement::Units(
                many("unit names")?
                    .into_iter()
                    .map(|(unit, entry)| self.unit(name == "enable", unit, entry))
                    .collect::<Result<_, _>>()?,
            ),
            _ => Statement::File(self.file(node, &props)?),
        };
        match props.get("when") {
            Some(entry) => {
                let value = prop_string(src, "when", entry)?;
                let mut text = ConditionText {
                    text: String::new(),
                    segments: Vec::new(),
                    fallback: value_span(entry),
                };
                text.push(value, value_span(entry), verbatim_start(entry, value));
                Ok(Statement::When {
                    condition: self.condition(text)?,
                    body: vec![statement],
                })
            }
            None => Ok(statement),
        }
    }

    fn when_block(&self, node: &KdlNode) -> Result<Statement, LangError> {
        let src = self.src;
        props(src, node, &["arch"])?;
        let mut text = ConditionText {
            text: String::new(),
            segments: Vec::new(),
            fallback: node.name().span(),
        };
        for entry in node.entries() {
            if !text.text.is_empty() {
                text.text.push(' ');
            }
            if let Some(key) = entry.name() {
                let value = prop_string(src, "arch", entry)?;
                text.push("arch=", key.span(), Some(key.span().offset()));
                text.push(value, value_span(entry), verbatim_start(entry, value));
                continue;
            }
            let Some(value) = entry.value().as_string() else {
                return Err(src.invalid(
                    value_span(entry),
                    format!(
                        "a condition holds flags and operators, found `{}`",
                        repr(entry)
                    ),
                    "not part of a condition",
                    Some("write flags like `when kernel && !xen { ... }`".to_string()),
                ));
            };
            text.push(value, value_span(entry), verbatim_start(entry, value));
        }
        let Some(children) = node.children() else {
            return Err(src.invalid(
                node.name().span(),
                format!("`when {}` has no block", text.text),
                "missing `{ ... }`",
                Some("write `when COND { statements }`, or `when=COND` on one statement".into()),
            ));
        };
        let condition = self.condition(text)?;
        let body = children
            .nodes()
            .iter()
            .map(|child| self.statement(child))
            .collect::<Result<_, _>>()?;
        Ok(Statement::When { condition, body })
    }

    /// Parses a condition and checks every flag and architecture it names.
    fn condition(&self, text: ConditionText) -> Result<Condition, LangError> {
        let src = self.src;
        let expr = Expr::parse(&text.text).map_err(|e| {
            src.invalid(
                text.span(e.offset, e.len),
                format!("bad condition `{}`: {}", text.text, e.message),
                "here",
                Some("conditions use flags, `arch=NAME`, `!`, `&&`, `||` and parentheses".into()),
            )
        })?;
        for term in expr.terms() {
            let span = text.span(term.offset, term.name.len());
            let name = term.name.as_str();
            match term.kind {
                TermKind::Flag if !self.known.flags.contains(name) => {
                    return Err(src.invalid(
                        span,
                        format!("unknown flag `{name}` in condition `{}`", text.text),
                        "no flavor file defines this flag",
                        Some(suggest(
                            name,
                            self.known.flags.iter().map(String::as_str),
                            "flags",
                        )),
                    ));
                }
                TermKind::Arch if debian_arch(name).is_none() => {
                    return Err(src.invalid(
                        span,
                        format!("unknown architecture `{name}` in condition `{}`", text.text),
                        "unknown architecture",
                        Some(suggest(name, arch_names(), "architectures")),
                    ));
                }
                _ => {}
            }
        }
        Ok(Condition {
            location: self.location(text.span(0, 0)),
            text: text.text,
            expr,
        })
    }

    fn include(&self, name: &str, entry: &KdlEntry) -> Result<Include, LangError> {
        let span = value_span(entry);
        if !self.known.groups.contains(name) {
            return Err(LangError::UnknownInclude {
                name: name.to_string(),
                diag: self.src.diag(
                    span,
                    "no such file in groups/",
                    Some(suggest(
                        name,
                        self.known.groups.iter().map(String::as_str),
                        "groups",
                    )),
                ),
            });
        }
        Ok(Include {
            name: name.to_string(),
            location: self.location(span),
            span,
        })
    }

    /// A Debian or RPM package name.
    fn package_name(&self, name: &str, entry: &KdlEntry) -> Result<String, LangError> {
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'));
        if valid {
            Ok(name.to_string())
        } else {
            Err(self.src.invalid(
                value_span(entry),
                format!("`{}` is not a package name", excerpt(name)),
                "not a package name",
                Some("package names are letters, digits and `+ - . _`".to_string()),
            ))
        }
    }

    /// `version=">= 1:9.2"`.
    fn constraint(&self, entry: &KdlEntry) -> Result<(Op, String), LangError> {
        let text = prop_string(self.src, "version", entry)?.trim();
        let split = text
            .find(|c: char| !matches!(c, '<' | '>' | '='))
            .unwrap_or(text.len());
        let (op, version) = (&text[..split], text[split..].trim());
        let error = |message: String, label: &str| {
            self.src.invalid(
                value_span(entry),
                message,
                label,
                Some("write an operator and a version: \">= 1:9.2\"; operators are <<, <=, =, >=, >>".into()),
            )
        };
        let op = match Op::parse(op) {
            Some(op) => op,
            None if op.is_empty() => {
                return Err(error(
                    format!("version constraint `{}` has no operator", excerpt(text)),
                    "missing operator",
                ));
            }
            None => {
                return Err(error(
                    format!(
                        "unknown version operator `{}` in `{}`",
                        excerpt(op),
                        excerpt(text)
                    ),
                    "not a Debian operator",
                ));
            }
        };
        if version.parse::<debversion::Version>().is_err() || version.contains(char::is_whitespace)
        {
            return Err(error(
                format!("bad version `{}` in `{}`", excerpt(version), excerpt(text)),
                "not a version",
            ));
        }
        Ok((op, version.to_string()))
    }

    /// The overlay path, resolved against the group file's folder.
    fn overlay(&self, node: &KdlNode) -> Result<PathBuf, LangError> {
        let (path, entry) = one_arg(self.src, node, "a path")?;
        if path.is_empty() {
            // An empty path would overlay the whole groups folder.
            return Err(self.src.invalid(
                value_span(entry),
                "`overlay` path is empty",
                "empty path",
                Some("name a folder or tarball relative to the group file".to_string()),
            ));
        }
        Ok(self.dir.join(path))
    }

    /// `secret=#true`.
    fn secret(&self, props: &BTreeMap<&str, &KdlEntry>) -> Result<bool, LangError> {
        props
            .get("secret")
            .map_or(Ok(false), |entry| prop_bool(self.src, "`secret`", entry))
    }

    /// An `exclude`: globs, marks, or both, but something.
    fn exclude(
        &self,
        node: &KdlNode,
        props: &BTreeMap<&str, &KdlEntry>,
    ) -> Result<Exclude, LangError> {
        let mark = |name: &str| {
            (props.get(name)).map_or(Ok(false), |entry| {
                prop_bool(self.src, &format!("`{name}`"), entry)
            })
        };
        let (docs, licenses) = (mark("docs")?, mark("licenses")?);
        let what = "glob patterns, `docs=#true` or `licenses=#true`";
        let globs = self.globs(node, usize::from(!docs && !licenses), what)?;
        Ok(Exclude {
            globs,
            docs,
            licenses,
        })
    }

    /// The node's glob arguments, at least `min` of them (`what` says what is missing).
    fn globs(&self, node: &KdlNode, min: usize, what: &str) -> Result<Vec<String>, LangError> {
        let globs = self.located_globs(node, min, what)?;
        Ok(globs.into_iter().map(|(glob, _)| glob).collect())
    }

    /// [`Parser::globs`], each with the span of its value.
    fn located_globs(
        &self,
        node: &KdlNode,
        min: usize,
        what: &str,
    ) -> Result<Vec<(String, SourceSpan)>, LangError> {
        string_args(self.src, node, min, usize::MAX, what)?
            .into_iter()
            .map(|(glob, entry)| {
                let problem = match Glob::new(glob) {
                    Err(e) => Some(format!("bad glob `{}`: {}", excerpt(glob), e.kind())),
                    Ok(_) if !glob.starts_with(['/', '*']) => Some(format!(
                        "glob `{}` never matches: paths in the tree are absolute",
                        excerpt(glob)
                    )),
                    Ok(_) => None,
                };
                match problem {
                    Some(message) => Err(self.src.invalid(
                        value_span(entry),
                        message,
                        "bad glob",
                        Some("write absolute patterns like \"/usr/share/doc/*\"".to_string()),
                    )),
                    None => {
                        self.normalised(node, glob, entry)?;
                        Ok((glob.to_string(), value_span(entry)))
                    }
                }
            })
            .collect()
    }

    /// Refuses a path (or glob) of `node` that is not in normalised form: the tree's
    /// paths are, so it would never match, or name a path no tree can hold. The help
    /// gives the normalised form.
    fn normalised(&self, node: &KdlNode, path: &str, entry: &KdlEntry) -> Result<(), LangError> {
        let normal = normal_form(path);
        if normal == path {
            return Ok(());
        }
        Err(self.src.invalid(
            value_span(entry),
            format!("`{}` path `{path}` is not normalised", node.name().value()),
            "not normalised",
            Some(format!(
                "write \"{normal}\": paths in the tree have no `.`, `..` or empty components and no trailing `/`"
            )),
        ))
    }

    fn file(
        &self,
        node: &KdlNode,
        props: &BTreeMap<&str, &KdlEntry>,
    ) -> Result<FileStatement, LangError> {
        let src = self.src;
        let (path, entry) = one_arg(src, node, "an absolute path")?;
        if path.starts_with('/') {
            self.normalised(node, path, entry)?;
        }
        if !normalised_absolute(path) {
            return Err(src.invalid(
                value_span(entry),
                format!(
                    "file path `{}` is not absolute and normalised",
                    excerpt(path)
                ),
                "bad path",
                Some(
                    "write a path like \"/etc/hostname\": no `.`, `..`, `//` or trailing `/`"
                        .into(),
                ),
            ));
        }
        if let Err(problem) = crate::lock::path::check(path) {
            return Err(src.invalid(
                value_span(entry),
                format!("file path `{}` {problem}", excerpt(path)),
                "no output can hold this path",
                None,
            ));
        }
        let mode = match props.get("mode") {
            Some(entry) => self.mode(entry)?,
            None => 0o644,
        };
        let name = |key: &str| -> Result<String, LangError> {
            let Some(entry) = props.get(key) else {
                return Ok("root".to_string());
            };
            let value = prop_string(src, key, entry)?;
            if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == ':') {
                return Err(src.invalid(
                    value_span(entry),
                    format!("`{}` is not a {key} name", excerpt(value)),
                    format!("bad {key}"),
                    None,
                ));
            }
            Ok(value.to_string())
        };
        Ok(FileStatement {
            path: path.to_string(),
            mode,
            user: name("owner")?,
            group: name("group")?,
            content: match props.get("content") {
                Some(entry) => prop_string(src, "content", entry)?.as_bytes().to_vec(),
                None => Vec::new(),
            },
            location: self.location(node.name().span()),
        })
    }

    /// `user NAME [uid=N] [group=G] [home=PATH] [shell=PATH] [system=#true]`, or
    /// `group NAME [gid=N] [system=#true]`.
    fn account(
        &self,
        node: &KdlNode,
        props: &BTreeMap<&str, &KdlEntry>,
    ) -> Result<Account, LangError> {
        let src = self.src;
        let (name, entry) = one_arg(src, node, "an account name")?;
        let user = node.name().value() == "user";
        let id_key = if user { "uid" } else { "gid" };
        let kind = if user {
            let path = |key: &str| {
                (props.get(key))
                    .map(|entry| self.account_path(key, entry))
                    .transpose()
            };
            AccountKind::User {
                group: (props.get("group"))
                    .map(|entry| {
                        let group = prop_string(src, "group", entry)?;
                        self.account_name(group, entry)
                    })
                    .transpose()?,
                home: path("home")?,
                shell: path("shell")?,
            }
        } else {
            AccountKind::Group
        };
        Ok(Account {
            name: self.account_name(name, entry)?,
            kind,
            id: (props.get(id_key))
                .map(|entry| self.account_id(id_key, entry))
                .transpose()?,
            system: (props.get("system"))
                .map_or(Ok(false), |entry| prop_bool(src, "`system`", entry))?,
            location: self.location(node.name().span()),
        })
    }

    /// A user or group name as Debian's tools take it (adduser's default rule).
    fn account_name(&self, name: &str, entry: &KdlEntry) -> Result<String, LangError> {
        let body = name.strip_suffix('$').unwrap_or(name);
        let mut chars = body.chars();
        let valid = name.len() <= 32
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if valid {
            return Ok(name.to_string());
        }
        let rule = "account names are lowercase letters, digits, `_` and `-`, starting with a \
                    letter or `_`, at most 32 characters";
        // `user "NAME:GROUP"` is how Dockerfiles say whom a container runs as.
        let help = if name.contains(':') {
            format!(
                "{rule}; to run a container as an account, write `run-as \"{}\"`",
                excerpt(name)
            )
        } else {
            rule.to_string()
        };
        Err(self.src.invalid(
            value_span(entry),
            format!("`{}` is not an account name", excerpt(name)),
            "not an account name",
            Some(help),
        ))
    }

    /// `uid=N` or `gid=N`.
    fn account_id(&self, key: &str, entry: &KdlEntry) -> Result<u32, LangError> {
        let problem = match entry.value().as_integer() {
            None => format!("`{key}` must be a number, found `{}`", repr(entry)),
            Some(id) => match u32::try_from(id) {
                Ok(id) if (1..=MAX_ID).contains(&id) => return Ok(id),
                _ => format!("{key} `{}` is out of range (1 to {MAX_ID})", repr(entry)),
            },
        };
        Err(self.src.invalid(
            value_span(entry),
            problem,
            format!("bad {key}"),
            Some(format!(
                "the configured tree has ids 0-65535: 0 is root's, 65534 nobody's and 65535 \
                 none; leave `{key}` out to take a free one"
            )),
        ))
    }

    /// `home=` or `shell=`: an absolute, normalised path that `/etc/passwd` can hold.
    fn account_path(&self, key: &str, entry: &KdlEntry) -> Result<String, LangError> {
        let path = prop_string(self.src, key, entry)?;
        let problem = if !normalised_absolute(path) || normal_form(path) != path {
            "is not an absolute, normalised path"
        } else if path.contains(|c: char| c == ':' || c.is_whitespace() || c.is_control()) {
            "holds a `:`, a blank or a control character, which /etc/passwd cannot take"
        } else if crate::lock::path::check(path).is_err() {
            "is a path no tree can hold"
        } else {
            return Ok(path.to_string());
        };
        Err(self.src.invalid(
            value_span(entry),
            format!("{key} `{}` {problem}", excerpt(path)),
            format!("bad {key}"),
            Some(format!(
                "write a path like {}",
                if key == "home" {
                    "\"/var/lib/app\""
                } else {
                    "\"/bin/sh\""
                }
            )),
        ))
    }

    /// One `debconf` line: `owner question type value` (the value may be empty), as
    /// `debconf-set-selections` reads it; what it would skip or misread is refused.
    fn preseed(&self, line: &str, entry: &KdlEntry) -> Result<Preseed, LangError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let problem = if line.contains(['\n', '\r']) {
            Some("holds a line break: write one line a string".to_string())
        } else if line.trim_end().ends_with('\\') {
            Some("ends in `\\`, which would join it to the next line".to_string())
        } else if words.first().is_some_and(|w| w.starts_with('#')) {
            Some("is a comment".to_string())
        } else if words.len() < 3 {
            Some(format!(
                "has {} fields, not the 3 or 4 of `owner question type value`",
                words.len()
            ))
        } else if !words[1].contains('/') {
            Some(format!(
                "names question `{}`, which has no `/` (questions are `package/name`)",
                excerpt(words[1])
            ))
        } else if !DEBCONF_TYPES.contains(&words[2]) {
            let help = if words[2] == "password" {
                "a password would be a secret in every machine of the lock: set it on the \
                 machine"
                    .to_string()
            } else {
                suggest(words[2], DEBCONF_TYPES.iter().copied(), "types")
            };
            return Err(self.src.invalid(
                value_span(entry),
                format!(
                    "debconf line `{}` has type `{}`, which it cannot preseed",
                    excerpt(line),
                    excerpt(words[2])
                ),
                "bad type",
                Some(help),
            ));
        } else {
            None
        };
        match problem {
            None => Ok(Preseed {
                line: line.to_string(),
                location: self.location(value_span(entry)),
            }),
            Some(problem) => Err(self.src.invalid(
                value_span(entry),
                format!("debconf line `{}` {problem}", excerpt(line)),
                "not a preseed line",
                Some(
                    "a line is `owner question type value`, like \
                     \"tzdata tzdata/Areas select Etc\""
                        .to_string(),
                ),
            )),
        }
    }

    /// One unit of `enable` or `disable`: a systemd unit name, with its type suffix or
    /// none (a service).
    fn unit(&self, enable: bool, unit: &str, entry: &KdlEntry) -> Result<UnitChange, LangError> {
        let error = |message: String, help: String| {
            Err(self
                .src
                .invalid(value_span(entry), message, "not a unit name", Some(help)))
        };
        let chars_ok = !unit.is_empty()
            && unit.len() <= 255
            && unit.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '\\' | '@' | '-')
            });
        if !chars_ok || unit.starts_with('.') {
            return error(
                format!("`{}` is not a unit name", excerpt(unit)),
                "unit names are letters, digits and `: _ . \\ @ -`, like \"nginx.service\" or \
                 \"getty@tty2.service\""
                    .to_string(),
            );
        }
        if let Some((_, suffix)) = unit.rsplit_once('.')
            && !UNIT_TYPES.contains(&suffix)
        {
            return error(
                format!(
                    "unit `{}` has type `.{}`, which systemd does not know",
                    excerpt(unit),
                    excerpt(suffix)
                ),
                suggest(suffix, UNIT_TYPES.iter().copied(), "unit types"),
            );
        }
        Ok(UnitChange {
            unit: unit.to_string(),
            enable,
            location: self.location(value_span(entry)),
        })
    }

    /// `mode=0o644`: octal is required, since a decimal `644` would be a different mode.
    fn mode(&self, entry: &KdlEntry) -> Result<u32, LangError> {
        let written = repr(entry);
        let problem = match entry.value().as_integer() {
            None => format!("mode must be an octal integer like 0o644, found `{written}`"),
            Some(_) if !written.starts_with("0o") => {
                format!("mode `{written}` is not written in octal")
            }
            Some(m) => match u32::try_from(m) {
                Ok(m) if m <= 0o7777 => return Ok(m),
                _ => format!("mode `{written}` is out of range (at most 0o7777)"),
            },
        };
        Err(self.src.invalid(
            value_span(entry),
            problem,
            "bad mode",
            Some("write modes in octal: mode=0o644".to_string()),
        ))
    }
}

fn strings(args: Vec<(&str, &KdlEntry)>) -> Vec<String> {
    args.into_iter().map(|(s, _)| s.to_string()).collect()
}

/// `path` with its empty and `.` components left out and each `..` taking away the
/// component before it, as the kernel would read it were there no symlinks: `/etc/../x`
/// is `/x`, `/etc//x/` is `/etc/x`. A relative path stays relative.
pub(super) fn normal_form(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            name => kept.push(name),
        }
    }
    let joined = kept.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// `/a/b`: absolute, no empty, `.` or `..` components, not `/` itself.
fn normalised_absolute(path: &str) -> bool {
    path.strip_prefix('/').is_some_and(|rest| {
        rest.split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Flavor;

    fn known() -> Known {
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        Known {
            flags: set(&["kernel", "xen", "kvm", "openvz"]),
            flavors: set(&["xen", "kvm", "openvz"]),
            groups: set(&["base", "web", "db"]),
        }
    }

    fn parse(text: &str) -> Result<GroupDef, LangError> {
        let src = SourceFile::new("groups/web.kdl".into(), text.to_string());
        parse_group(src, "/ws/groups/web.kdl".into(), "web", &known())
    }

    /// The error's Display and help for a group whose block is `body`.
    fn error(body: &str) -> (String, String) {
        let err = parse(&format!("group web version=\"1.0\" {{\n{body}\n}}\n")).unwrap_err();
        let help = miette::Diagnostic::help(&err)
            .map(|h| h.to_string())
            .unwrap_or_default();
        (err.to_string(), help)
    }

    fn flavor(flags: &[&str]) -> Flavor {
        Flavor {
            name: None,
            arch: "x86_64".into(),
            flags: flags.iter().map(|f| (f.to_string(), true)).collect(),
            format: None,
        }
    }

    #[test]
    fn parses_every_statement() {
        let def = parse(
            r#"group web version="1.0" {
    summary "nginx web appliance"
    flavors xen kvm
    include base db
    package nginx-light
    package openssh-server version=">= 1:9.2"
    package linux-image-amd64 when=kernel
    remove exim4-base exim4
    when kernel {
        module virtio_blk ext4
        when "xen" { module xen-blkfront; }
    }
    exclude "/usr/share/doc/*" "/usr/share/man/*"
    hostfile "/etc/ssl/certs/*.pem"
    overlay "overlays/web"
    file "/etc/hostname" mode=0o600 owner="www" group="adm" content="web\n"
    file "/etc/motd"
    cmd "/usr/sbin/nginx" "-g" "daemon off;"
}
"#,
        )
        .unwrap();
        assert_eq!((def.name.as_str(), def.version.as_str()), ("web", "1.0"));
        assert_eq!(def.summary.as_deref(), Some("nginx web appliance"));
        assert_eq!(def.flavors, ["xen", "kvm"]);
        assert_eq!(def.digest.len(), 64);
        let s = &def.statements;
        assert_eq!(s.len(), 12);
        let Statement::Include(inc) = &s[0] else {
            panic!("{:?}", s[0])
        };
        assert_eq!(
            inc.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["base", "db"]
        );
        assert_eq!(inc[1].location.to_string(), "groups/web.kdl:4:18");
        let Statement::Package {
            name,
            constraint,
            site,
        } = &s[2]
        else {
            panic!("{:?}", s[2])
        };
        assert_eq!(name, "openssh-server");
        assert_eq!(constraint, &Some((Op::Ge, "1:9.2".to_string())));
        assert_eq!(site.location().to_string(), "groups/web.kdl:6:5");
        // An error found later (by the resolver) marks the whole statement.
        let later = site.invalid("x", "here", None);
        let statement = "package openssh-server version=\">= 1:9.2\"";
        assert_eq!(later.diag().unwrap().span.len(), statement.len());
        let Statement::When { condition, body } = &s[3] else {
            panic!("{:?}", s[3])
        };
        assert_eq!(condition.text, "kernel");
        assert!(
            matches!(&body[..], [Statement::Package { name, constraint: None, .. }] if name == "linux-image-amd64")
        );
        let Statement::Remove(removals) = &s[4] else {
            panic!("{:?}", s[4])
        };
        assert_eq!(removals[1].name, "exim4");
        assert_eq!(removals[1].location.to_string(), "groups/web.kdl:8:23");
        let Statement::When { condition, body } = &s[5] else {
            panic!("{:?}", s[5])
        };
        assert_eq!(condition.location.to_string(), "groups/web.kdl:9:10");
        assert_eq!(
            body[0],
            Statement::Module(vec!["virtio_blk".into(), "ext4".into()])
        );
        assert!(matches!(&body[1], Statement::When { condition, body }
            if condition.text == "xen" && body == &[Statement::Module(vec!["xen-blkfront".into()])]));
        assert_eq!(
            s[6],
            Statement::Exclude(Exclude {
                globs: vec!["/usr/share/doc/*".into(), "/usr/share/man/*".into()],
                ..Exclude::default()
            })
        );
        let Statement::Hostfile(hostfile) = &s[7] else {
            panic!("{:?}", s[7])
        };
        assert_eq!(
            (hostfile.globs.as_slice(), hostfile.secret),
            (&["/etc/ssl/certs/*.pem".to_string()][..], false)
        );
        assert_eq!(hostfile.site.location().to_string(), "groups/web.kdl:14:5");
        let Statement::Overlay(overlay) = &s[8] else {
            panic!("{:?}", s[8])
        };
        assert_eq!(
            (overlay.path.as_path(), overlay.secret),
            (Path::new("/ws/groups/overlays/web"), false)
        );
        let Statement::File(file) = &s[9] else {
            panic!("{:?}", s[9])
        };
        assert_eq!(
            (
                file.path.as_str(),
                file.mode,
                file.user.as_str(),
                file.group.as_str()
            ),
            ("/etc/hostname", 0o600, "www", "adm")
        );
        assert_eq!(file.content, b"web\n");
        let Statement::File(motd) = &s[10] else {
            panic!("{:?}", s[10])
        };
        assert_eq!(
            (motd.mode, motd.user.as_str(), motd.content.len()),
            (0o644, "root", 0)
        );
        assert_eq!(
            s[11],
            Statement::Cmd(vec![
                "/usr/sbin/nginx".into(),
                "-g".into(),
                "daemon off;".into()
            ])
        );
    }

    #[test]
    fn parses_the_design_example() {
        let def = parse(
            r#"group web version="1.0" {
    summary "nginx web appliance"
    flavors xen kvm openvz          // compiled for these by default
    include base                    // everything group "base" contains (groups/base.kdl)
    package nginx-light
    package openssh-server version=">= 1:9.2"
    remove exim4-base               // drop a package an included group brought
    when kernel {                   // a flavor condition (see below)
        package linux-image-amd64
        module virtio_blk virtio_net ext4
    }
    when "xen" { module xen-blkfront xen-netfront }
    exclude "/usr/share/doc/*" "/usr/share/man/*" "/usr/share/locale/*"
    hostfile "/etc/ssl/certs/*.pem" // copied from the host at compile time (digest locked)
    overlay "overlays/web"          // a folder or tarball, relative to the group file
    file "/etc/hostname" mode=0o644 content="web\n"
    cmd "/usr/sbin/nginx" "-g" "daemon off;"   // for container outputs
}
"#,
        )
        .unwrap();
        assert_eq!(def.flavors, ["xen", "kvm", "openvz"]);
        assert_eq!(def.statements.len(), 11);
    }

    #[test]
    fn errors_render_with_miette() {
        let err = parse("group web version=\"1\" {\n  when \"xen || kernal\" {}\n}").unwrap_err();
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &err)
            .unwrap();
        assert!(out.contains("[groups/web.kdl:2:16]"), "{out}");
        assert!(out.contains("no flavor file defines this flag"), "{out}");
        assert!(out.contains("did you mean `kernel`?"), "{out}");
    }

    #[test]
    fn conditions_join_bare_arguments_and_arch_properties() {
        let def = parse(
            "group web version=1.0 {\n when xen || kvm { module a; }\n when !kernel && arch=aarch64 { module b; }\n when kernel \"&& !(xen || kvm)\" { module c; }\n}",
        )
        .unwrap();
        assert_eq!(def.version, "1.0");
        let conds: Vec<&Condition> = def
            .statements
            .iter()
            .map(|s| match s {
                Statement::When { condition, .. } => condition,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(conds[0].text, "xen || kvm");
        assert_eq!(conds[1].text, "!kernel && arch=aarch64");
        assert_eq!(conds[2].text, "kernel && !(xen || kvm)");
        assert!(conds[0].expr.eval(&flavor(&["kvm"])));
        assert!(!conds[1].expr.eval(&flavor(&[])), "x86_64 is not aarch64");
        assert!(conds[2].expr.eval(&flavor(&["kernel"])));
        assert!(!conds[2].expr.eval(&flavor(&["kernel", "xen"])));
    }

    #[test]
    fn unknown_statements_suggest_the_nearest() {
        let (msg, help) = error("    pakage nginx");
        assert_eq!(msg, "groups/web.kdl:2:5: unknown statement `pakage`");
        assert!(help.starts_with("did you mean `package`?"), "{help}");
        assert!(help.contains("known statements: cmd, debconf"), "{help}");
    }

    #[test]
    fn unknown_flags_point_inside_quoted_conditions_even_in_false_branches() {
        // `xen || kernal` is never evaluated here: validation happens at load.
        let (msg, help) = error("  when \"xen || kernal\" {\n    module a\n  }");
        assert_eq!(
            msg,
            "groups/web.kdl:2:16: unknown flag `kernal` in condition `xen || kernal`"
        );
        assert!(help.starts_with("did you mean `kernel`?"), "{help}");
        let (msg, _) = error("  when \"(!kvmm)\" { }");
        assert!(
            msg.starts_with("groups/web.kdl:2:11: unknown flag `kvmm`"),
            "{msg}"
        );
        // Bare arguments map to their own columns.
        let (msg, _) = error("  when xen && !xem {}");
        assert!(
            msg.starts_with("groups/web.kdl:2:16: unknown flag `xem`"),
            "{msg}"
        );
        // The short form: `when=` on a statement.
        let (msg, help) = error("  package a when=\"kernel && opnvz\"");
        assert!(
            msg.starts_with("groups/web.kdl:2:29: unknown flag `opnvz`"),
            "{msg}"
        );
        assert!(help.starts_with("did you mean `openvz`?"), "{help}");
        // An escape in the string: point at the whole value.
        let (msg, _) = error("  when \"xen\\t|| bad\" {}");
        assert!(
            msg.starts_with("groups/web.kdl:2:8: unknown flag `bad`"),
            "{msg}"
        );
    }

    #[test]
    fn bad_conditions_and_architectures_are_located() {
        let (msg, _) = error("  when \"xen &&\" {}");
        assert_eq!(
            msg,
            "groups/web.kdl:2:15: bad condition `xen &&`: the condition ends where a flag, `!` or `(` was expected"
        );
        let (msg, help) = error("  when arch=x86-64 {}");
        assert_eq!(
            msg,
            "groups/web.kdl:2:13: unknown architecture `x86-64` in condition `arch=x86-64`"
        );
        assert!(help.starts_with("did you mean `x86_64`?"), "{help}");
        let (msg, _) = error("  when {}");
        assert!(
            msg.contains("2:3: bad condition ``: empty condition"),
            "{msg}"
        );
        let (msg, _) = error("  when xen");
        assert!(msg.contains("2:3: `when xen` has no block"), "{msg}");
        let (msg, _) = error("  when #true {}");
        assert!(
            msg.contains("2:8: a condition holds flags and operators, found `#true`"),
            "{msg}"
        );
    }

    #[test]
    fn prefer_takes_a_word() {
        let def = parse(
            "group web version=\"1.0\" {\n    prefer newest\n    prefer installed when=kvm\n}\n",
        )
        .unwrap();
        assert_eq!(def.statements[0], Statement::Prefer(Prefer::Newest));
        let Statement::When { body, .. } = &def.statements[1] else {
            panic!("{:?}", def.statements[1]);
        };
        assert_eq!(body[..], [Statement::Prefer(Prefer::Installed)]);
        let (msg, help) = error("  prefer latest");
        assert_eq!(
            msg,
            "groups/web.kdl:2:10: `latest` is no preference: write `installed` or `newest`"
        );
        assert!(help.contains("newest version of each package"), "{help}");
        let (msg, _) = error("  prefer");
        assert!(
            msg.ends_with("2:3: `prefer` needs `installed` or `newest`"),
            "{msg}"
        );
        let (msg, _) = error("  prefer newest installed");
        assert!(msg.contains("2:17: `prefer` takes one argument"), "{msg}");
    }

    #[test]
    fn version_constraints_are_checked() {
        let (msg, help) = error("  package x version=\"=> 1.0\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:21: unknown version operator `=>` in `=> 1.0`"
        );
        assert!(help.contains("<<, <=, =, >=, >>"), "{help}");
        let (msg, _) = error("  package x version=\"1.0\"");
        assert!(
            msg.ends_with("version constraint `1.0` has no operator"),
            "{msg}"
        );
        let (msg, _) = error("  package x version=\">= 1 0\"");
        assert!(msg.ends_with("bad version `1 0` in `>= 1 0`"), "{msg}");
        let (msg, _) = error("  package \"a b\"");
        assert!(msg.ends_with("2:11: `a b` is not a package name"), "{msg}");
        let (msg, _) = error("  package a b");
        assert!(
            msg.ends_with("2:13: `package` takes one argument, found another: `b`"),
            "{msg}"
        );
    }

    #[test]
    fn accounts_preseeds_and_units_parse_also_under_when() {
        let def = parse(
            r#"group web version="1.0" {
    group app gid=2000 system=#true
    user app uid=2000 group="app" home="/var/lib/app" shell="/usr/sbin/nologin" system=#true
    user alice
    debconf "tzdata tzdata/Areas select Etc" "tzdata tzdata/Zones/Etc select UTC"
    debconf "app app/empty string"
    enable nginx.service "getty@tty2.service"
    disable ssh
    when kernel { enable systemd-timesyncd; }
    user bob when=openvz
}
"#,
        )
        .unwrap();
        let s = &def.statements;
        assert_eq!(s.len(), 9);
        let Statement::Account(group) = &s[0] else {
            panic!("{:?}", s[0])
        };
        assert_eq!(
            (group.name.as_str(), &group.kind, group.id, group.system),
            ("app", &AccountKind::Group, Some(2000), true)
        );
        assert_eq!(group.location.to_string(), "groups/web.kdl:2:5");
        let Statement::Account(user) = &s[1] else {
            panic!("{:?}", s[1])
        };
        assert_eq!(
            user.kind,
            AccountKind::User {
                group: Some("app".into()),
                home: Some("/var/lib/app".into()),
                shell: Some("/usr/sbin/nologin".into()),
            }
        );
        assert_eq!((user.id, user.system), (Some(2000), true));
        assert!(matches!(&s[2], Statement::Account(a)
            if a.name == "alice" && a.id.is_none() && !a.system
                && a.kind == AccountKind::User { group: None, home: None, shell: None }));
        let Statement::Debconf(lines) = &s[3] else {
            panic!("{:?}", s[3])
        };
        assert_eq!(lines[1].line, "tzdata tzdata/Zones/Etc select UTC");
        assert_eq!(lines[1].location.to_string(), "groups/web.kdl:5:46");
        assert!(matches!(&s[4], Statement::Debconf(l) if l[0].line == "app app/empty string"));
        let Statement::Units(units) = &s[5] else {
            panic!("{:?}", s[5])
        };
        let named: Vec<(&str, bool)> = units.iter().map(|u| (u.unit.as_str(), u.enable)).collect();
        assert_eq!(
            named,
            [("nginx.service", true), ("getty@tty2.service", true)]
        );
        assert_eq!(units[1].location.to_string(), "groups/web.kdl:7:26");
        assert!(matches!(&s[6], Statement::Units(u) if u[0].unit == "ssh" && !u[0].enable));
        let Statement::When { body, .. } = &s[7] else {
            panic!("{:?}", s[7])
        };
        assert!(matches!(&body[..], [Statement::Units(u)] if u[0].unit == "systemd-timesyncd"));
        assert!(matches!(&s[8], Statement::When { body, .. }
            if matches!(&body[..], [Statement::Account(a)] if a.name == "bob")));
    }

    #[test]
    fn accounts_are_checked_where_written() {
        let (msg, help) = error("  user Alice");
        assert_eq!(msg, "groups/web.kdl:2:8: `Alice` is not an account name");
        assert!(help.starts_with("account names are lowercase"), "{help}");
        let (msg, _) = error("  user app group=\"a:b\"");
        assert_eq!(msg, "groups/web.kdl:2:18: `a:b` is not an account name");
        let (msg, help) = error("  user app uid=70000");
        assert_eq!(
            msg,
            "groups/web.kdl:2:16: uid `70000` is out of range (1 to 65533)"
        );
        assert!(help.contains("leave `uid` out"), "{help}");
        let (msg, _) = error("  group app gid=0");
        assert!(
            msg.ends_with("2:17: gid `0` is out of range (1 to 65533)"),
            "{msg}"
        );
        let (msg, _) = error("  user app uid=\"12\"");
        assert!(
            msg.ends_with("`uid` must be a number, found `\"12\"`"),
            "{msg}"
        );
        let (msg, help) = error("  group app uid=12");
        assert_eq!(
            msg,
            "groups/web.kdl:2:13: unknown property `uid` for `group`"
        );
        assert!(help.contains("gid"), "{help}");
        let (msg, help) = error("  user app sytem=#true");
        assert!(
            msg.ends_with("unknown property `sytem` for `user`"),
            "{msg}"
        );
        assert!(help.starts_with("did you mean `system`?"), "{help}");
        let (msg, _) = error("  user app system=1");
        assert!(
            msg.ends_with("`system` must be #true or #false, found `1`"),
            "{msg}"
        );
        let (msg, help) = error("  user app home=\"var/app\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:17: home `var/app` is not an absolute, normalised path"
        );
        assert!(help.contains("\"/var/lib/app\""), "{help}");
        let (msg, _) = error("  user app home=\"/srv/../app\"");
        assert!(
            msg.ends_with("home `/srv/../app` is not an absolute, normalised path"),
            "{msg}"
        );
        let (msg, _) = error("  user app shell=\"/bin/my sh\"");
        assert!(
            msg.ends_with("shell `/bin/my sh` holds a `:`, a blank or a control character, which /etc/passwd cannot take"),
            "{msg}"
        );
        let (msg, _) = error("  user");
        assert!(msg.ends_with("2:3: `user` needs an account name"), "{msg}");
        let (msg, _) = error("  group a b");
        assert!(
            msg.ends_with("`group` takes one argument, found another: `b`"),
            "{msg}"
        );
    }

    #[test]
    fn debconf_lines_are_checked_where_written() {
        let (msg, help) = error("  debconf \"tzdata/Areas select Etc\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:11: debconf line `tzdata/Areas select Etc` names question `select`, which has no `/` (questions are `package/name`)"
        );
        assert!(
            help.contains("\"tzdata tzdata/Areas select Etc\""),
            "{help}"
        );
        let (msg, _) = error("  debconf \"ok ok/q string x\" \"tzdata tzdata/Areas\"");
        assert!(
            msg.ends_with("2:30: debconf line `tzdata tzdata/Areas` has 2 fields, not the 3 or 4 of `owner question type value`"),
            "{msg}"
        );
        let (msg, help) = error("  debconf \"tzdata tzdata/Areas selct Etc\"");
        assert!(
            msg.ends_with("has type `selct`, which it cannot preseed"),
            "{msg}"
        );
        assert!(help.starts_with("did you mean `select`?"), "{help}");
        let (msg, help) = error("  debconf \"app app/pw password hunter2\"");
        assert!(
            msg.ends_with("has type `password`, which it cannot preseed"),
            "{msg}"
        );
        assert!(help.contains("secret"), "{help}");
        let (msg, _) = error("  debconf \"a a/b string x\\\\\"");
        assert!(
            msg.ends_with("which would join it to the next line"),
            "{msg}"
        );
        let (msg, _) = error("  debconf \"a a/b string x\\nb b/c string y\"");
        assert!(
            msg.ends_with("holds a line break: write one line a string"),
            "{msg}"
        );
        let (msg, _) = error("  debconf \"# a a/b string\"");
        assert!(msg.ends_with("is a comment"), "{msg}");
        let (msg, _) = error("  debconf");
        assert!(msg.ends_with("`debconf` needs preseed lines"), "{msg}");
    }

    #[test]
    fn units_are_checked_where_written() {
        let (msg, help) = error("  enable nginx \"nginx.servce\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:16: unit `nginx.servce` has type `.servce`, which systemd does not know"
        );
        assert!(help.starts_with("did you mean `service`?"), "{help}");
        let (msg, help) = error("  disable \"/etc/systemd/system/x.service\"");
        assert!(
            msg.ends_with("2:11: `/etc/systemd/system/x.service` is not a unit name"),
            "{msg}"
        );
        assert!(help.contains("getty@tty2.service"), "{help}");
        let (msg, _) = error("  enable \".service\"");
        assert!(msg.ends_with("`.service` is not a unit name"), "{msg}");
        let (msg, _) = error("  enable 1");
        assert!(
            msg.ends_with("`enable` expects unit names, found `1`"),
            "{msg}"
        );
    }

    #[test]
    fn paths_take_absolute_globs() {
        let def = parse(
            "group web version=\"1.0\" {\n    paths \"/usr/sbin/nginx\" \"/etc/nginx\" when=openvz\n}\n",
        )
        .unwrap();
        let Statement::When { body, .. } = &def.statements[0] else {
            panic!("{:?}", def.statements[0])
        };
        let Statement::Paths(globs) = &body[0] else {
            panic!("{:?}", body[0])
        };
        let written: Vec<(&str, String)> = (globs.iter())
            .map(|g| (g.glob.as_str(), g.site.location().to_string()))
            .collect();
        assert_eq!(
            written,
            [
                ("/usr/sbin/nginx", "groups/web.kdl:2:11".to_string()),
                ("/etc/nginx", "groups/web.kdl:2:29".to_string())
            ]
        );
        let (msg, _) = error("  paths \"usr/bin/*\"");
        assert!(msg.contains("2:9: glob `usr/bin/*` never matches"), "{msg}");
    }

    #[test]
    fn exclude_takes_globs_marks_or_both_but_something() {
        let group = |body: &str| parse(&format!("group web version=\"1.0\" {{\n{body}\n}}\n"));
        let def = group("  exclude docs=#true\n  exclude \"/a\" licenses=#true").unwrap();
        assert_eq!(
            def.statements,
            [
                Statement::Exclude(Exclude {
                    docs: true,
                    ..Exclude::default()
                }),
                Statement::Exclude(Exclude {
                    globs: vec!["/a".into()],
                    licenses: true,
                    ..Exclude::default()
                }),
            ]
        );
        for body in ["  exclude", "  exclude docs=#false"] {
            let (msg, _) = error(body);
            assert!(
                msg.starts_with("groups/web.kdl:2:3: `exclude` needs glob patterns, `docs=#true` or `licenses=#true`"),
                "{msg}"
            );
        }
        let (msg, _) = error("  exclude docs=1");
        assert!(msg.contains("`docs` must be #true or #false"), "{msg}");
        let (msg, help) = error("  exclude \"/a\" doc=#true");
        assert!(
            msg.ends_with("unknown property `doc` for `exclude`"),
            "{msg}"
        );
        assert!(help.starts_with("did you mean `docs`?"), "{help}");
    }

    #[test]
    fn globs_paths_and_modes_are_checked() {
        let (msg, _) = error("  exclude \"/usr/[a\"");
        assert!(
            msg.starts_with("groups/web.kdl:2:11: bad glob `/usr/[a`"),
            "{msg}"
        );
        let (msg, _) = error("  hostfile \"etc/*\"");
        assert!(msg.contains("2:12: glob `etc/*` never matches"), "{msg}");
        for path in ["etc/x", "/"] {
            let (msg, help) = error(&format!("  file \"{path}\""));
            assert!(
                msg.starts_with(&format!(
                    "groups/web.kdl:2:8: file path `{path}` is not absolute"
                )),
                "{msg}"
            );
            assert!(help.contains("\"/etc/hostname\""), "{help}");
        }
        let long = "x".repeat(256);
        let (msg, _) = error(&format!("  file \"/srv/{long}\""));
        let name = format!("{}... (256 bytes)", "x".repeat(100));
        assert!(
            msg.starts_with("groups/web.kdl:2:8: file path `/srv/xxxx")
                && msg.ends_with(&format!(
                    "... (261 bytes)` has a component of 256 bytes (`{name}`), \
                     more than the 255 a filesystem name holds"
                )),
            "{msg}"
        );
        let (msg, _) = error("  file \"/etc/evil\\n/x\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:8: file path `/etc/evil\\n/x` contains a newline, \
             which dpkg's file lists cannot hold"
        );
        let (msg, _) = error("  file \"/x\" mode=0o17777");
        assert_eq!(
            msg,
            "groups/web.kdl:2:18: mode `0o17777` is out of range (at most 0o7777)"
        );
        let (msg, _) = error("  file \"/x\" mode=644");
        assert!(msg.ends_with("mode `644` is not written in octal"), "{msg}");
        let (msg, _) = error("  file \"/x\" mode=\"0644\"");
        assert!(
            msg.ends_with("mode must be an octal integer like 0o644, found `\"0644\"`"),
            "{msg}"
        );
        let (msg, _) = error("  file \"/x\" owner=\"a b\"");
        assert!(msg.ends_with("`a b` is not a owner name"), "{msg}");
        let (msg, help) = error("  file \"/x\" mdoe=0o644");
        assert!(
            msg.ends_with("2:13: unknown property `mdoe` for `file`"),
            "{msg}"
        );
        assert!(help.starts_with("did you mean `mode`?"), "{help}");
    }

    #[test]
    fn paths_must_be_normalised_and_the_help_says_how() {
        for (statement, written, normal) in [
            ("hostfile", "/etc/../etc/hostname", "/etc/hostname"),
            (
                "hostfile",
                "/etc//ssl/./certs/*.pem",
                "/etc/ssl/certs/*.pem",
            ),
            ("exclude", "/usr/share/doc/", "/usr/share/doc"),
            ("paths", "/usr/bin/../sbin/nginx", "/usr/sbin/nginx"),
            ("file", "/etc/../x", "/x"),
            ("file", "/./x", "/x"),
            ("file", "/etc//x/", "/etc/x"),
        ] {
            let (msg, help) = error(&format!("  {statement} \"{written}\""));
            // The value starts after two spaces, the name, a space and the quote.
            let column = statement.len() + 4;
            assert_eq!(
                msg,
                format!(
                    "groups/web.kdl:2:{column}: `{statement}` path `{written}` is not normalised"
                )
            );
            assert!(help.starts_with(&format!("write \"{normal}\":")), "{help}");
        }
        // Each glob of a statement is checked, not only the first.
        let (msg, _) = error("  exclude \"/a\" \"/b/..\"");
        assert!(
            msg.ends_with("2:16: `exclude` path `/b/..` is not normalised"),
            "{msg}"
        );
        assert_eq!(normal_form("/a/../../b"), "/b");
        assert_eq!(normal_form("**/./x"), "**/x");
    }

    #[test]
    fn hostfile_and_overlay_may_say_they_take_secrets() {
        let def = parse(
            "group web version=\"1\" {\n    hostfile \"/etc/ssh/ssh_host_ed25519_key\" secret=#true\n    overlay \"o\" secret=#false when=kernel\n    overlay \"p\"\n}",
        )
        .unwrap();
        let Statement::Hostfile(hostfile) = &def.statements[0] else {
            panic!("{:?}", def.statements[0])
        };
        assert!(hostfile.secret);
        assert_eq!(hostfile.site.location().to_string(), "groups/web.kdl:2:5");
        let Statement::When { body, .. } = &def.statements[1] else {
            panic!("{:?}", def.statements[1])
        };
        assert!(matches!(&body[0], Statement::Overlay(o) if !o.secret));
        assert!(matches!(&def.statements[2], Statement::Overlay(o) if !o.secret));
        let (msg, _) = error("  hostfile \"/etc/x\" secret=\"yes\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:28: `secret` must be #true or #false, found `\"yes\"`"
        );
        let (msg, _) = error("  file \"/x\" secret=#true");
        assert!(
            msg.ends_with("unknown property `secret` for `file`"),
            "{msg}"
        );
    }

    #[test]
    fn group_text_is_parsed_without_a_workspace() {
        let file = Path::new("/ws/groups/db.kdl");
        let def = parse_group_text(file, "group db version=\"2\" { package x }", &known()).unwrap();
        assert_eq!((def.name.as_str(), def.file.as_path()), ("db", file));
        let err = parse_group_text(file, "group db version=\"2\" { pakage x }", &known())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/ws/groups/db.kdl:1:24: unknown statement"),
            "{err}"
        );
    }

    #[test]
    fn group_level_errors() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            err("group webb version=\"1\" {}"),
            "groups/web.kdl:1:7: groups/web.kdl must define group `web`, not `webb`"
        );
        assert_eq!(
            err("group web {}"),
            "groups/web.kdl:1:1: group `web` has no version"
        );
        assert_eq!(
            err("group web version=\"1 0\" {}"),
            "groups/web.kdl:1:19: bad group version `\"1 0\"`"
        );
        assert!(err("group web version=\"1.0-2\"").ends_with("bad group version `\"1.0-2\"`"));
        assert!(err("").starts_with("groups/web.kdl:1:1: no `group` node"));
        assert_eq!(
            err("grup web version=\"1\""),
            "groups/web.kdl:1:1: unknown top-level node `grup`"
        );
        assert_eq!(
            err("group web version=\"1\"\ngroup db version=\"1\""),
            "groups/web.kdl:2:1: a group file holds one `group` node, found `group` after it"
        );
        let (msg, help) = error("  flavors xen kvn");
        assert_eq!(msg, "groups/web.kdl:2:15: unknown flavor `kvn`");
        assert!(help.starts_with("did you mean `kvm`?"), "{help}");
        let (msg, _) = error("  summary \"a\"\n  summary \"b\"");
        assert!(
            msg.ends_with("3:3: group `web` has a second `summary`"),
            "{msg}"
        );
        let (msg, _) = error("  when xen { summary \"a\"; }");
        assert!(
            msg.ends_with("2:14: `summary` cannot be conditional"),
            "{msg}"
        );
        let (msg, _) = error("  overlay \"\"");
        assert!(msg.ends_with("2:11: `overlay` path is empty"), "{msg}");
        let (msg, _) = error("  package a { }");
        assert!(msg.ends_with("2:13: `package` takes no block"), "{msg}");
    }

    #[test]
    fn unknown_includes_and_syntax_errors_are_located() {
        let err = parse("group web version=\"1\" {\n  include base bsae\n}").unwrap_err();
        assert!(matches!(&err, LangError::UnknownInclude { name, .. } if name == "bsae"));
        assert_eq!(
            err.to_string(),
            "groups/web.kdl:2:16: unknown group `bsae` in include"
        );
        let help = err.diag().unwrap().help.clone().unwrap();
        assert!(help.starts_with("did you mean `base`?"), "{help}");
        let err = parse("group web version=\"1\" {\n  package \"open\n}").unwrap_err();
        assert!(matches!(err, LangError::Syntax { .. }));
        assert!(err.to_string().starts_with("groups/web.kdl:"), "{err}");
    }
}
