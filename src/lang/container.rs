//! The statements that set a container image's config besides `cmd`: `env`, `label`,
//! `run-as`, `workdir`, `expose` and `entrypoint`, each checked where it is written.
//!
//! `env` and `label` take `"KEY=VALUE"` strings, the form OCI's `Env` and Dockerfile's
//! `ENV` use: KDL properties would do too, but a variable or label named `when` would then
//! be the statement's condition. The account a container runs as is `run-as`, since
//! `user` makes accounts.

use kdl::{KdlEntry, KdlNode};

use super::diag::{LangError, Site, SourceFile, suggest};
use super::group::normal_form;
use super::node::{one_arg, repr, string_args, value_span};
use crate::excerpt::excerpt;
use crate::lock::Container;

/// The statement names this module reads.
pub(super) const STATEMENTS: [&str; 6] =
    ["entrypoint", "env", "expose", "label", "run-as", "workdir"];

/// The protocols an exposed port may name; a port without one is TCP.
const PROTOCOLS: [&str; 3] = ["sctp", "tcp", "udp"];

/// The largest uid or gid `run-as` takes: the kernel's ids are 32 bits, and the highest,
/// `(uid_t) -1`, means no id.
const MAX_ID: u64 = u32::MAX as u64 - 1;

/// One container statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerSetting {
    /// `env "KEY=VALUE"...`: environment variables, each key once.
    Env(Vec<(String, String)>),
    /// `label "KEY=VALUE"...`: image labels, each key once.
    Label(Vec<(String, String)>),
    /// `run-as "USER[:GROUP]"` or `run-as UID`.
    RunAs(RunAs),
    /// `workdir "/path"`: absolute and normalised.
    Workdir(String),
    /// `expose PORT...`: as `PORT/PROTOCOL`, each once.
    Expose(Vec<String>),
    /// `entrypoint ARG...`.
    Entrypoint(Vec<String>),
}

impl ContainerSetting {
    /// Lays the statement over what earlier statements set: variables and labels are
    /// added (a key set again takes the new value), ports are added, and the user,
    /// working directory and entrypoint are replaced.
    pub fn apply(&self, container: &mut Container) {
        match self {
            ContainerSetting::Env(pairs) => container.env.extend(pairs.iter().cloned()),
            ContainerSetting::Label(pairs) => container.labels.extend(pairs.iter().cloned()),
            ContainerSetting::RunAs(run_as) => container.user = Some(run_as.spec()),
            ContainerSetting::Workdir(dir) => container.workdir = Some(dir.clone()),
            ContainerSetting::Expose(ports) => container.ports.extend(ports.iter().cloned()),
            ContainerSetting::Entrypoint(args) => container.entrypoint = args.clone(),
        }
    }
}

/// A `run-as` statement: who the container's process is. Names are checked against the
/// tree's accounts at compile time, when they are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// A user name or a uid, as written.
    pub user: String,
    /// A group name or a gid, as written, if any.
    pub group: Option<String>,
    /// The statement's value, for the compile-time error.
    pub site: Site,
}

impl RunAs {
    /// `USER` or `USER:GROUP`, as the image config's `User` takes it.
    pub fn spec(&self) -> String {
        match &self.group {
            Some(group) => format!("{}:{group}", self.user),
            None => self.user.clone(),
        }
    }
}

/// Whether `part` of a `run-as` (or a port) is all digits: an id rather than a name.
fn is_id(part: &str) -> bool {
    part.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a statement whose name is one of [`STATEMENTS`] (the last, `entrypoint`, is
/// what any other name is taken for).
pub(super) fn setting(src: &SourceFile, node: &KdlNode) -> Result<ContainerSetting, LangError> {
    Ok(match node.name().value() {
        "env" => ContainerSetting::Env(pairs(src, node, Pairs::Env)?),
        "label" => ContainerSetting::Label(pairs(src, node, Pairs::Label)?),
        "run-as" => ContainerSetting::RunAs(run_as(src, node)?),
        "workdir" => ContainerSetting::Workdir(workdir(src, node)?),
        "expose" => ContainerSetting::Expose(ports(src, node)?),
        _ => ContainerSetting::Entrypoint(
            string_args(src, node, 1, usize::MAX, "a command")?
                .into_iter()
                .map(|(arg, _)| arg.to_string())
                .collect(),
        ),
    })
}

/// Refuses `env KEY="VALUE"` and `label KEY="VALUE"`, properties the statements do not
/// take, with the form they do take: the generic unknown-property error would not say it.
pub(super) fn pairs_as_properties(src: &SourceFile, node: &KdlNode) -> Result<(), LangError> {
    let name = node.name().value();
    if !matches!(name, "env" | "label") {
        return Ok(());
    }
    let property = (node.entries().iter()).find_map(|entry| {
        entry
            .name()
            .filter(|key| key.value() != "when")
            .map(|key| (key, entry))
    });
    match property {
        None => Ok(()),
        Some((key, entry)) => Err(src.invalid(
            key.span(),
            format!(
                "`{name}` takes \"KEY=VALUE\" strings, not a property `{}`",
                key.value()
            ),
            "a property",
            Some(format!(
                "write `{name} \"{}={}\"`",
                key.value(),
                entry
                    .value()
                    .as_string()
                    .map_or_else(|| repr(entry), str::to_string)
            )),
        )),
    }
}

/// The two statements of `KEY=VALUE` strings.
#[derive(Clone, Copy)]
enum Pairs {
    Env,
    Label,
}

impl Pairs {
    /// What a key is, for messages.
    fn key(self) -> &'static str {
        match self {
            Pairs::Env => "variable",
            Pairs::Label => "label",
        }
    }

    /// An entry to show in help lines.
    fn example(self) -> &'static str {
        match self {
            Pairs::Env => "\"LANG=C.UTF-8\"",
            Pairs::Label => "\"org.opencontainers.image.source=https://example.org/web\"",
        }
    }

    /// Why `key` cannot be one, with the rule, or `None` when it can.
    fn refuse(self, key: &str) -> Option<(String, &'static str)> {
        match self {
            Pairs::Env => {
                let mut chars = key.chars();
                let valid = chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
                (!valid).then(|| {
                    (
                        format!("`{}` is not an environment variable name", excerpt(key)),
                        "names are ASCII letters, digits and `_`, not starting with a digit",
                    )
                })
            }
            Pairs::Label => {
                let blank = |c: char| c.is_whitespace() || c.is_control();
                (key.is_empty() || key.contains(blank)).then(|| {
                    (
                        format!("`{}` is not a label key", excerpt(key)),
                        "a key is not empty and holds no blank or control character; \
                         reverse-DNS keys like `org.opencontainers.image.source` are the rule",
                    )
                })
            }
        }
    }
}

/// The `KEY=VALUE` arguments of an `env` or `label` statement, each key once.
fn pairs(
    src: &SourceFile,
    node: &KdlNode,
    kind: Pairs,
) -> Result<Vec<(String, String)>, LangError> {
    let name = node.name().value();
    let what = format!("`KEY=VALUE` strings like {}", kind.example());
    let mut found: Vec<(String, String)> = Vec::new();
    for (text, entry) in string_args(src, node, 1, usize::MAX, &what)? {
        let span = value_span(entry);
        let Some((key, value)) = text.split_once('=') else {
            return Err(src.invalid(
                span,
                format!("`{name}` entry `{}` has no `=`", excerpt(text)),
                "not KEY=VALUE",
                Some(format!(
                    "write {}; an empty value is \"{}=\"",
                    kind.example(),
                    excerpt(text)
                )),
            ));
        };
        if let Some((message, rule)) = kind.refuse(key) {
            return Err(src.invalid(
                span,
                message,
                format!("bad {}", kind.key()),
                Some(format!("{rule}, like {}", kind.example())),
            ));
        }
        if value.contains('\0') {
            return Err(src.invalid(
                span,
                format!("the value of `{}` holds a NUL character", excerpt(key)),
                "NUL in value",
                Some("a container's environment and config strings cannot carry NUL".into()),
            ));
        }
        if found.iter().any(|(k, _)| k == key) {
            return Err(src.invalid(
                span,
                format!("`{name}` sets {} `{}` twice", kind.key(), excerpt(key)),
                "set again",
                Some(format!(
                    "one statement sets each {} once; a later `{name}` statement replaces \
                     an earlier one's value",
                    kind.key()
                )),
            ));
        }
        found.push((key.to_string(), value.to_string()));
    }
    Ok(found)
}

/// `run-as "USER[:GROUP]"` or `run-as UID`: names as passwd holds them, or ids.
fn run_as(src: &SourceFile, node: &KdlNode) -> Result<RunAs, LangError> {
    let mut args = node.entries().iter().filter(|e| e.name().is_none());
    let (Some(entry), None) = (args.next(), args.next()) else {
        return Err(src.invalid(
            node.name().span(),
            "`run-as` takes one user: a name, a uid, or \"USER:GROUP\"",
            "one user",
            Some(
                "write `run-as \"www-data\"`, `run-as 33` or `run-as \"www-data:www-data\"`".into(),
            ),
        ));
    };
    let span = value_span(entry);
    let text = match (entry.value().as_string(), entry.value().as_integer()) {
        (Some(text), _) => text.to_string(),
        (None, Some(id)) => id.to_string(),
        (None, None) => {
            return Err(src.invalid(
                span,
                format!("`run-as` expects a user, found `{}`", repr(entry)),
                "not a user",
                Some("write a name or uid, with a group after `:`: \"www-data:www-data\"".into()),
            ));
        }
    };
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text.as_str(), None),
    };
    for (part, role) in [(Some(user), "user"), (group, "group")] {
        if let Some(part) = part
            && let Some(problem) = account_problem(part)
        {
            return Err(src.invalid(
                span,
                format!("`run-as` {role} `{}` {problem}", excerpt(part)),
                format!("bad {role}"),
                Some(
                    "write \"USER\" or \"USER:GROUP\", each a name (letters, digits, `_ - .`, \
                     not starting with `-`) or an id (0 to 4294967294)"
                        .into(),
                ),
            ));
        }
    }
    Ok(RunAs {
        user: user.to_string(),
        group: group.map(str::to_string),
        site: Site::new(src, span),
    })
}

/// Why `part` can be neither an account name that `/etc/passwd` or `/etc/group` holds
/// nor an id; `None` when it can be one.
fn account_problem(part: &str) -> Option<&'static str> {
    if part.is_empty() {
        Some("is empty")
    } else if is_id(part) {
        let fits = part.parse::<u64>().is_ok_and(|id| id <= MAX_ID);
        (!fits).then_some("is out of range (ids are 0 to 4294967294)")
    } else {
        let body = part.strip_suffix('$').unwrap_or(part);
        let valid = part.len() <= 32
            && !body.starts_with('-')
            && !body.is_empty()
            && body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        (!valid).then_some("is not an account name")
    }
}

/// `workdir "/path"`: absolute and normalised.
fn workdir(src: &SourceFile, node: &KdlNode) -> Result<String, LangError> {
    let (path, entry) = one_arg(src, node, "an absolute path")?;
    let span = value_span(entry);
    let normal = normal_form(path);
    if !path.starts_with('/') {
        return Err(src.invalid(
            span,
            format!("workdir `{}` is relative", excerpt(path)),
            "not absolute",
            Some(format!(
                "a container's working directory is absolute: write \"/{normal}\""
            )),
        ));
    }
    if normal != path {
        return Err(src.invalid(
            span,
            format!("workdir `{}` is not normalised", excerpt(path)),
            "not normalised",
            Some(format!(
                "write \"{normal}\": no `.`, `..` or empty components and no trailing `/`"
            )),
        ));
    }
    if let Err(problem) = crate::lock::path::check(path) {
        return Err(src.invalid(
            span,
            format!("workdir `{}` {problem}", excerpt(path)),
            "no tree can hold this path",
            None,
        ));
    }
    Ok(path.to_string())
}

/// `expose 80 "443/tcp" "53/udp"`: each port once, as `PORT/PROTOCOL`.
fn ports(src: &SourceFile, node: &KdlNode) -> Result<Vec<String>, LangError> {
    let mut found: Vec<String> = Vec::new();
    for entry in node.entries().iter().filter(|e| e.name().is_none()) {
        let port = port(src, entry)?;
        if found.contains(&port) {
            return Err(src.invalid(
                value_span(entry),
                format!("`expose` names port {port} twice"),
                "named again",
                Some("a port without a protocol is TCP: `80` and \"80/tcp\" are one".into()),
            ));
        }
        found.push(port);
    }
    if found.is_empty() {
        return Err(src.invalid(
            node.name().span(),
            "`expose` needs a port",
            "missing port",
            Some("write ports like `expose 80 \"443/tcp\" \"53/udp\"`".into()),
        ));
    }
    Ok(found)
}

/// One port of `expose`: a number, or `"PORT[/PROTOCOL]"`.
fn port(src: &SourceFile, entry: &KdlEntry) -> Result<String, LangError> {
    let span = value_span(entry);
    let help = || {
        Some(
            "write a port from 1 to 65535, with `/tcp`, `/udp` or `/sctp` after it in quotes \
             if not TCP: `expose 80 \"53/udp\"`"
                .to_string(),
        )
    };
    let (number, protocol) = match (entry.value().as_integer(), entry.value().as_string()) {
        (Some(n), _) => (n.to_string(), "tcp"),
        (None, Some(text)) => match text.split_once('/') {
            Some((number, protocol)) => (number.to_string(), protocol),
            None => (text.to_string(), "tcp"),
        },
        (None, None) => {
            return Err(src.invalid(
                span,
                format!("`expose` expects a port, found `{}`", repr(entry)),
                "not a port",
                help(),
            ));
        }
    };
    if !PROTOCOLS.contains(&protocol) {
        return Err(src.invalid(
            span,
            format!(
                "unknown protocol `{}` in port `{}`",
                excerpt(protocol),
                excerpt(&repr(entry))
            ),
            "unknown protocol",
            Some(suggest(
                &protocol.to_ascii_lowercase(),
                PROTOCOLS,
                "protocols",
            )),
        ));
    }
    let digits = !number.is_empty() && is_id(&number);
    match number.parse::<u32>() {
        Ok(n @ 1..=65535) if digits => Ok(format!("{n}/{protocol}")),
        _ if digits || number.starts_with('-') => Err(src.invalid(
            span,
            format!("port `{}` is out of range (1 to 65535)", excerpt(&number)),
            "bad port",
            help(),
        )),
        _ => Err(src.invalid(
            span,
            format!("`{}` is not a port number", excerpt(&number)),
            "bad port",
            help(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::lang::group::{Known, Statement, parse_group_text};

    fn parse(body: &str) -> Result<Vec<Statement>, LangError> {
        let known = Known {
            flags: ["kernel".to_string()].into(),
            ..Known::default()
        };
        let text = format!("group web version=\"1.0\" {{\n{body}\n}}\n");
        parse_group_text(Path::new("groups/web.kdl"), &text, &known).map(|def| def.statements)
    }

    /// The error's Display and help for a group whose block is `body`.
    fn error(body: &str) -> (String, String) {
        let err = parse(body).unwrap_err();
        let help = miette::Diagnostic::help(&err)
            .map(|h| h.to_string())
            .unwrap_or_default();
        (err.to_string(), help)
    }

    /// The settings of `statements` (`when` bodies included) laid over each other.
    fn container(statements: &[Statement]) -> Container {
        let mut container = Container::default();
        let mut pending: Vec<&Statement> = statements.iter().rev().collect();
        while let Some(statement) = pending.pop() {
            match statement {
                Statement::Container(setting) => setting.apply(&mut container),
                Statement::When { body, .. } => pending.extend(body.iter().rev()),
                other => panic!("{other:?}"),
            }
        }
        container
    }

    #[test]
    fn every_statement_parses_also_under_when_and_later_ones_win() {
        let statements = parse(
            r#"  env "LANG=C.UTF-8" "EMPTY=" "PATH=/opt/bin:/usr/bin" "X=a=b"
  label "org.opencontainers.image.source=https://example.org/web" "tier=front"
  run-as "www-data:www-data"
  workdir "/srv/www"
  expose 80 "443/tcp" "53/udp" "9000/sctp"
  entrypoint "/usr/bin/tini" "--"
  when kernel { env "LANG=C"; expose 8080; run-as 33; }
  label "tier=edge" when=kernel
  workdir "/"
  entrypoint "/init""#,
        )
        .unwrap();
        assert_eq!(statements.len(), 10);
        let Statement::Container(ContainerSetting::RunAs(run_as)) = &statements[2] else {
            panic!("{:?}", statements[2])
        };
        assert_eq!(
            (run_as.user.as_str(), run_as.group.as_deref()),
            ("www-data", Some("www-data"))
        );
        assert_eq!(run_as.site.location().to_string(), "groups/web.kdl:4:10");
        let c = container(&statements);
        assert_eq!(c.user.as_deref(), Some("33"));
        let env: Vec<(&str, &str)> = (c.env.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("EMPTY", ""),
                ("LANG", "C"),
                ("PATH", "/opt/bin:/usr/bin"),
                ("X", "a=b")
            ]
        );
        assert_eq!(c.labels["tier"], "edge");
        assert_eq!(
            c.labels["org.opencontainers.image.source"],
            "https://example.org/web"
        );
        let ports: Vec<&str> = c.ports.iter().map(String::as_str).collect();
        assert_eq!(
            ports,
            ["443/tcp", "53/udp", "80/tcp", "8080/tcp", "9000/sctp"]
        );
        assert_eq!(c.workdir.as_deref(), Some("/"));
        assert_eq!(c.entrypoint, ["/init"]);
    }

    #[test]
    fn env_and_label_entries_are_checked_where_written() {
        let (msg, help) = error("  env \"LANG\"");
        assert_eq!(msg, "groups/web.kdl:2:7: `env` entry `LANG` has no `=`");
        assert!(help.contains("an empty value is \"LANG=\""), "{help}");
        let (msg, help) = error("  env \"A=1\" \"1X=2\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:13: `1X` is not an environment variable name"
        );
        assert!(help.starts_with("names are ASCII letters"), "{help}");
        let (msg, _) = error("  env \"MY-VAR=1\"");
        assert!(
            msg.ends_with("`MY-VAR` is not an environment variable name"),
            "{msg}"
        );
        let (msg, help) = error("  env \"A=1\" \"B=2\" \"A=3\"");
        assert_eq!(msg, "groups/web.kdl:2:19: `env` sets variable `A` twice");
        assert!(help.contains("a later `env` statement replaces"), "{help}");
        let (msg, _) = error("  label \"a=1\" \"a=2\"");
        assert!(msg.ends_with("`label` sets label `a` twice"), "{msg}");
        let (msg, _) = error("  label \"=x\"");
        assert!(msg.ends_with("2:9: `` is not a label key"), "{msg}");
        let (msg, _) = error("  label \"my key=x\"");
        assert!(msg.ends_with("`my key` is not a label key"), "{msg}");
        let (msg, _) = error("  env \"A=\\u{0}\"");
        assert!(
            msg.ends_with("the value of `A` holds a NUL character"),
            "{msg}"
        );
        let (msg, help) = error("  env LANG=\"C.UTF-8\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:7: `env` takes \"KEY=VALUE\" strings, not a property `LANG`"
        );
        assert_eq!(help, "write `env \"LANG=C.UTF-8\"`");
        let (msg, _) = error("  env");
        assert!(
            msg.ends_with("2:3: `env` needs `KEY=VALUE` strings like \"LANG=C.UTF-8\""),
            "{msg}"
        );
        let (msg, _) = error("  env 1");
        assert!(msg.contains("`env` expects `KEY=VALUE` strings"), "{msg}");
    }

    #[test]
    fn run_as_workdir_and_ports_are_checked_where_written() {
        let cases = [
            ("  run-as \"\"", "2:10: `run-as` user `` is empty"),
            ("  run-as \"www-data:\"", "`run-as` group `` is empty"),
            (
                "  run-as \"a:b:c\"",
                "`run-as` group `b:c` is not an account name",
            ),
            (
                "  run-as \"-x\"",
                "`run-as` user `-x` is not an account name",
            ),
            (
                "  run-as 4294967295",
                "`run-as` user `4294967295` is out of range (ids are 0 to 4294967294)",
            ),
            ("  run-as -1", "`run-as` user `-1` is not an account name"),
            ("  run-as #true", "`run-as` expects a user, found `#true`"),
            (
                "  run-as a b",
                "2:3: `run-as` takes one user: a name, a uid, or \"USER:GROUP\"",
            ),
            (
                "  run-as",
                "2:3: `run-as` takes one user: a name, a uid, or \"USER:GROUP\"",
            ),
            (
                "  workdir \"srv/www\"",
                "2:11: workdir `srv/www` is relative",
            ),
            (
                "  workdir \"/srv/../www/\"",
                "workdir `/srv/../www/` is not normalised",
            ),
            (
                "  workdir \"/a\" \"/b\"",
                "`workdir` takes one argument, found another: `/b`",
            ),
            ("  expose 0", "2:10: port `0` is out of range (1 to 65535)"),
            (
                "  expose \"70000/udp\"",
                "port `70000` is out of range (1 to 65535)",
            ),
            ("  expose -5", "port `-5` is out of range (1 to 65535)"),
            ("  expose \"http\"", "`http` is not a port number"),
            ("  expose \"8000-8010\"", "`8000-8010` is not a port number"),
            ("  expose 1.5", "`expose` expects a port, found `1.5`"),
            (
                "  expose 80 \"80/tcp\"",
                "2:13: `expose` names port 80/tcp twice",
            ),
            ("  expose", "2:3: `expose` needs a port"),
            ("  entrypoint", "2:3: `entrypoint` needs a command"),
        ];
        for (body, expected) in cases {
            let (msg, _) = error(body);
            assert!(msg.ends_with(expected), "{body}: {msg}");
        }
        let (msg, help) = error("  expose \"80/tpc\"");
        assert_eq!(
            msg,
            "groups/web.kdl:2:10: unknown protocol `tpc` in port `\"80/tpc\"`"
        );
        assert!(help.starts_with("did you mean `tcp`?"), "{help}");
        let (_, help) = error("  expose \"53/UDP\"");
        assert!(help.starts_with("did you mean `udp`?"), "{help}");
        let (_, help) = error("  workdir \"srv/./www\"");
        assert!(help.ends_with("write \"/srv/www\""), "{help}");
    }

    #[test]
    fn names_point_at_the_container_statements() {
        let (msg, help) = error("  entrypont \"/init\"");
        assert_eq!(msg, "groups/web.kdl:2:3: unknown statement `entrypont`");
        assert!(help.starts_with("did you mean `entrypoint`?"), "{help}");
        let (_, help) = error("  runas \"www-data\"");
        assert!(help.starts_with("did you mean `run-as`?"), "{help}");
        let (msg, help) = error("  user \"www-data:www-data\"");
        assert!(
            msg.ends_with("`www-data:www-data` is not an account name"),
            "{msg}"
        );
        assert!(
            help.ends_with(
                "to run a container as an account, write `run-as \"www-data:www-data\"`"
            ),
            "{help}"
        );
        let (msg, _) = error("  workdir \"/srv\" when=\"xen\"");
        assert!(
            msg.ends_with("unknown flag `xen` in condition `xen`"),
            "{msg}"
        );
    }
}
