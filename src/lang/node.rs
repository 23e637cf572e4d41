//! Reading KDL nodes the way group and flavor files use them, with located errors.

use std::collections::BTreeMap;

use kdl::{KdlDocument, KdlEntry, KdlNode};
use miette::SourceSpan;

use super::diag::{LangError, SourceFile, suggest};

/// The span of an entry's value alone (kdl's entry span starts at a property's key).
pub(crate) fn value_span(entry: &KdlEntry) -> SourceSpan {
    let span = entry.span();
    let repr = entry.format().map_or(0, |f| f.value_repr.len());
    let len = if repr == 0 || repr > span.len() {
        span.len()
    } else {
        repr
    };
    SourceSpan::from((span.offset() + span.len() - len, len))
}

/// The span of a statement as written: its name and entries, without its terminator
/// (kdl's node span takes the whitespace and line break around it too).
pub(crate) fn statement_span(node: &KdlNode) -> SourceSpan {
    let start = node.name().span().offset();
    let end = (node.entries().iter())
        .map(|e| e.span().offset() + e.span().len())
        .fold(start + node.name().span().len(), usize::max);
    SourceSpan::from(start..end)
}

/// Where the decoded text of a string value starts in the source, when it is written
/// verbatim (bare, quoted or raw without escapes): then offsets inside it map 1:1.
pub(crate) fn verbatim_start(entry: &KdlEntry, value: &str) -> Option<usize> {
    let repr = entry.format()?.value_repr.as_str();
    let at = repr.find(value)?;
    repr[..at]
        .chars()
        .all(|c| matches!(c, '"' | '#'))
        .then(|| value_span(entry).offset() + at)
}

/// The entry's value source text, for messages (`"644"`, `#true`, `12`).
pub(crate) fn repr(entry: &KdlEntry) -> String {
    entry
        .format()
        .map_or_else(|| entry.value().to_string(), |f| f.value_repr.clone())
}

/// The node's positional arguments as strings: at least `min`, at most `max`.
/// `what` names one argument for messages ("a package name").
pub(crate) fn string_args<'a>(
    src: &SourceFile,
    node: &'a KdlNode,
    min: usize,
    max: usize,
    what: &str,
) -> Result<Vec<(&'a str, &'a KdlEntry)>, LangError> {
    let name = node.name().value();
    let mut args = Vec::new();
    for entry in node.entries().iter().filter(|e| e.name().is_none()) {
        let Some(value) = entry.value().as_string() else {
            return Err(src.invalid(
                value_span(entry),
                format!("`{name}` expects {what}, found `{}`", repr(entry)),
                "not a string",
                Some("quote it: \"...\"".to_string()),
            ));
        };
        if args.len() == max {
            let message = if max == 1 {
                format!("`{name}` takes one argument, found another: `{value}`")
            } else {
                format!("`{name}` takes at most {max} arguments, found another: `{value}`")
            };
            return Err(src.invalid(value_span(entry), message, "extra argument", None));
        }
        args.push((value, entry));
    }
    if args.len() < min {
        return Err(missing(src, node, what));
    }
    Ok(args)
}

/// The node's single positional string argument.
pub(crate) fn one_arg<'a>(
    src: &SourceFile,
    node: &'a KdlNode,
    what: &str,
) -> Result<(&'a str, &'a KdlEntry), LangError> {
    let mut args = string_args(src, node, 1, 1, what)?;
    args.pop().ok_or_else(|| missing(src, node, what))
}

fn missing(src: &SourceFile, node: &KdlNode, what: &str) -> LangError {
    src.invalid(
        node.name().span(),
        format!("`{}` needs {what}", node.name().value()),
        format!("missing {what}"),
        None,
    )
}

/// The node's properties, checked against `allowed` (the rightmost of duplicates wins,
/// as KDL says).
pub(crate) fn props<'a>(
    src: &SourceFile,
    node: &'a KdlNode,
    allowed: &[&str],
) -> Result<BTreeMap<&'a str, &'a KdlEntry>, LangError> {
    let mut found = BTreeMap::new();
    for entry in node.entries() {
        let Some(key) = entry.name() else { continue };
        if !allowed.contains(&key.value()) {
            let help = if allowed.is_empty() {
                format!("`{}` takes no properties", node.name().value())
            } else {
                suggest(key.value(), allowed.iter().copied(), "properties")
            };
            return Err(src.invalid(
                key.span(),
                format!(
                    "unknown property `{}` for `{}`",
                    key.value(),
                    node.name().value()
                ),
                "unknown property",
                Some(help),
            ));
        }
        found.insert(key.value(), entry);
    }
    Ok(found)
}

/// A property's value as a string.
pub(crate) fn prop_string<'a>(
    src: &SourceFile,
    key: &str,
    entry: &'a KdlEntry,
) -> Result<&'a str, LangError> {
    entry.value().as_string().ok_or_else(|| {
        src.invalid(
            value_span(entry),
            format!("`{key}` must be a string, found `{}`", repr(entry)),
            "not a string",
            Some("quote it: \"...\"".to_string()),
        )
    })
}

/// A property's value as a boolean; `what` names it in the message (`` `secret` ``).
pub(crate) fn prop_bool(src: &SourceFile, what: &str, entry: &KdlEntry) -> Result<bool, LangError> {
    entry.value().as_bool().ok_or_else(|| {
        src.invalid(
            value_span(entry),
            format!("{what} must be #true or #false, found `{}`", repr(entry)),
            "not a boolean",
            None,
        )
    })
}

/// Refuses a `{ ... }` block on a node that takes none.
pub(crate) fn no_block(src: &SourceFile, node: &KdlNode) -> Result<(), LangError> {
    match node.children() {
        // kdl's span of a block starts after its `{` and the whitespace that follows.
        Some(children) => Err(src.invalid(
            SourceSpan::from((
                src.text
                    .get(..children.span().offset())
                    .and_then(|before| before.rfind('{'))
                    .unwrap_or(children.span().offset()),
                1,
            )),
            format!("`{}` takes no block", node.name().value()),
            "unexpected block",
            None,
        )),
        None => Ok(()),
    }
}

/// The error for a node name the context does not know.
pub(crate) fn unknown_node(
    src: &SourceFile,
    node: &KdlNode,
    what: &str,
    known: &[&str],
) -> LangError {
    let name = node.name().value();
    src.invalid(
        node.name().span(),
        format!("unknown {what} `{name}`"),
        format!("unknown {what}"),
        Some(suggest(name, known.iter().copied(), &format!("{what}s"))),
    )
}

/// The one top-level node of a group or flavor file (`kind` is `group` or `flavor`),
/// checked to be named `expected` by its first argument.
pub(crate) fn top_node<'a>(
    src: &SourceFile,
    doc: &'a KdlDocument,
    kind: &str,
    expected: &str,
) -> Result<(&'a KdlNode, &'a KdlEntry), LangError> {
    let mut nodes = doc.nodes().iter();
    let Some(node) = nodes.next() else {
        return Err(src.invalid(
            SourceSpan::from(0..0),
            format!(
                "no `{kind}` node: a {kind} file defines one {kind} `{kind} {expected} {{ ... }}`"
            ),
            format!("expected `{kind} {expected}`"),
            None,
        ));
    };
    if node.name().value() != kind {
        return Err(unknown_node(src, node, "top-level node", &[kind]));
    }
    if let Some(extra) = nodes.next() {
        return Err(src.invalid(
            extra.name().span(),
            format!(
                "a {kind} file holds one `{kind}` node, found `{}` after it",
                extra.name().value()
            ),
            "extra node",
            Some(format!("move it inside `{kind} {expected} {{ ... }}`")),
        ));
    }
    let (name, entry) = one_arg(src, node, &format!("a {kind} name"))?;
    if name != expected {
        return Err(src.invalid(
            value_span(entry),
            format!(
                "{} must define {kind} `{expected}`, not `{name}`",
                src.name.display()
            ),
            format!("expected `{expected}`"),
            Some(format!(
                "rename the {kind} or the file: the file name is the {kind} name"
            )),
        ));
    }
    if !valid_name(name) {
        return Err(src.invalid(
            value_span(entry),
            format!("`{name}` is not a valid {kind} name"),
            "invalid name",
            Some(NAME_RULE.to_string()),
        ));
    }
    Ok((node, entry))
}

/// The help line for names that [`valid_name`] refuses.
pub(crate) const NAME_RULE: &str =
    "names use ASCII letters, digits and `_ - . +`, starting with a letter, digit or `_`";

/// Whether `name` may name a group, flavor or flag: it must survive file names,
/// canonical flavor strings and conditions unchanged.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (SourceFile, KdlDocument) {
        let src = SourceFile::new("t.kdl".into(), text.to_string());
        let doc = src.parse_kdl().unwrap();
        (src, doc)
    }

    #[test]
    fn value_spans_skip_property_keys() {
        let (src, doc) = parse("n key=\"v x\" bare");
        let entries = doc.nodes()[0].entries();
        let span = value_span(&entries[0]);
        assert_eq!(&src.text[span.offset()..][..span.len()], "\"v x\"");
        assert_eq!(verbatim_start(&entries[0], "v x"), Some(7));
        assert_eq!(verbatim_start(&entries[1], "bare"), Some(12));
        let (_, doc) = parse("n \"a\\tb\" #\"r\"#");
        let entries = doc.nodes()[0].entries();
        assert_eq!(verbatim_start(&entries[0], "a\tb"), None);
        assert_eq!(verbatim_start(&entries[1], "r"), Some(11));
    }

    #[test]
    fn statement_spans_cover_the_name_and_entries_only() {
        let (src, doc) = parse("  package nginx version=\">= 1\" // why\nnext\n");
        let span = statement_span(&doc.nodes()[0]);
        assert_eq!(
            &src.text[span.offset()..][..span.len()],
            "package nginx version=\">= 1\""
        );
        let span = statement_span(&doc.nodes()[1]);
        assert_eq!(&src.text[span.offset()..][..span.len()], "next");
    }

    #[test]
    fn argument_counts_and_types_are_checked() {
        let (src, doc) = parse("a 1\nb\nc x y");
        let n = doc.nodes();
        let e = string_args(&src, &n[0], 1, 1, "a name").unwrap_err();
        assert_eq!(e.to_string(), "t.kdl:1:3: `a` expects a name, found `1`");
        let e = string_args(&src, &n[1], 1, 1, "a name").unwrap_err();
        assert_eq!(e.to_string(), "t.kdl:2:1: `b` needs a name");
        let e = string_args(&src, &n[2], 1, 1, "a name").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.kdl:3:5: `c` takes one argument, found another: `y`"
        );
        assert_eq!(string_args(&src, &n[2], 1, 9, "x").unwrap().len(), 2);
    }

    #[test]
    fn unknown_properties_get_suggestions() {
        let (src, doc) = parse("package x verison=\"1\"");
        let e = props(&src, &doc.nodes()[0], &["version", "when"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.kdl:1:11: unknown property `verison` for `package`"
        );
        let help = e.diag().unwrap().help.clone().unwrap();
        assert!(help.starts_with("did you mean `version`?"), "{help}");
    }

    #[test]
    fn names_are_restricted() {
        assert!(valid_name("web-2.0_x+y"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a b"));
    }
}
