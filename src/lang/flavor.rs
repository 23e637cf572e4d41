//! Flavors: an instruction set and a set of use flags, with Conary's canonical string.
//!
//! A flavor file `flavors/xen.kdl` reads
//! `flavor xen { arch x86_64; use xen=#true kernel=#true; format image }`.

use std::collections::BTreeMap;
use std::path::Path;

use kdl::KdlEntry;

use super::diag::{LangError, SourceFile, suggest};
use super::node::{
    NAME_RULE, no_block, one_arg, prop_bool, props, repr, top_node, valid_name, value_span,
};

/// Instruction sets (`uname -m` names) a flavor may use, with their Debian architectures.
const ARCHES: &[(&str, &str)] = &[
    ("x86_64", "amd64"),
    ("aarch64", "arm64"),
    ("i686", "i386"),
    ("i386", "i386"),
    ("armv7l", "armhf"),
    ("ppc64le", "ppc64el"),
    ("s390x", "s390x"),
    ("riscv64", "riscv64"),
];

/// Output formats a flavor may default to (`format` in a flavor file).
pub const FORMATS: &[&str] = &["chroot", "tar", "openvz", "image", "oci"];

/// The flags appliance reads itself (`kernel` makes a virtual machine, `openvz` and
/// `xen` choose what an output holds), known whether or not a flavor file sets them.
pub const BUILTIN_FLAGS: [&str; 3] = ["kernel", "openvz", "xen"];

/// The Debian architecture of an instruction set name (`x86_64` -> `amd64`).
pub fn debian_arch(arch: &str) -> Option<&'static str> {
    ARCHES.iter().find(|(a, _)| *a == arch).map(|(_, d)| *d)
}

/// The instruction set names flavors and `arch=` conditions accept.
pub(crate) fn arch_names() -> impl Iterator<Item = &'static str> {
    ARCHES.iter().map(|(a, _)| *a)
}

/// An instruction set and use flags: what a group is compiled for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flavor {
    /// The flavor file's name; `None` for a flavor given only as a canonical string.
    pub name: Option<String>,
    /// Instruction set (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// Use flags, each on or off; flags not listed are off.
    pub flags: BTreeMap<String, bool>,
    /// The default output format (`image`, `openvz`, ...).
    pub format: Option<String>,
}

impl Flavor {
    /// Conary's canonical string: flags sorted, negatives with `!`, then `is: ARCH`,
    /// e.g. `[!kernel,openvz is: x86_64]`, or `[is: x86_64]` without flags.
    pub fn canonical(&self) -> String {
        let flags: Vec<String> = self
            .flags
            .iter()
            .map(|(name, on)| {
                if *on {
                    name.clone()
                } else {
                    format!("!{name}")
                }
            })
            .collect();
        if flags.is_empty() {
            format!("[is: {}]", self.arch)
        } else {
            format!("[{} is: {}]", flags.join(","), self.arch)
        }
    }

    /// Parses a canonical string back (flags in any order; spaces around them allowed).
    pub fn parse_canonical(text: &str) -> Result<Flavor, LangError> {
        let bad = |reason: String| LangError::BadFlavorString {
            text: text.to_string(),
            reason,
        };
        let inner = text
            .trim()
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(|| bad("expected `[FLAGS is: ARCH]`".to_string()))?;
        let (flag_text, arch) = match inner.trim_start().strip_prefix("is:") {
            Some(arch) => ("", arch),
            None => inner
                .rfind(" is:")
                .map(|i| (&inner[..i], &inner[i + 4..]))
                .ok_or_else(|| bad("missing `is: ARCH`".to_string()))?,
        };
        let arch = arch.trim();
        if debian_arch(arch).is_none() {
            return Err(bad(format!(
                "unknown architecture `{arch}`; {}",
                suggest(arch, arch_names(), "architectures")
            )));
        }
        let mut flags = BTreeMap::new();
        if !flag_text.trim().is_empty() {
            for item in flag_text.split(',').map(str::trim) {
                let (name, on) = match item.strip_prefix('!') {
                    Some(name) => (name, false),
                    None => (item, true),
                };
                if !valid_name(name) {
                    return Err(bad(format!("bad flag `{item}`: {NAME_RULE}")));
                }
                if flags.insert(name.to_string(), on).is_some() {
                    return Err(bad(format!("flag `{name}` appears twice")));
                }
            }
        }
        Ok(Flavor {
            name: None,
            arch: arch.to_string(),
            flags,
            format: None,
        })
    }

    /// The Debian architecture (`amd64` for `x86_64`).
    pub fn debian_arch(&self) -> &str {
        debian_arch(&self.arch).unwrap_or(&self.arch)
    }

    /// Whether use flag `name` is on (an absent flag is off).
    pub fn flag(&self, name: &str) -> bool {
        self.flags.get(name).copied().unwrap_or(false)
    }
}

/// Parses `text` as the flavor file `file`, which must define the flavor named as the
/// file's stem (`flavors/xen.kdl` defines `xen`). Nothing is read from disk: `file` only
/// names the file in messages, so untrusted text can be checked (and fuzzed) on its own.
pub fn parse_flavor_text(file: &Path, text: &str) -> Result<Flavor, LangError> {
    let expected = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_flavor(
        &SourceFile::new(file.to_path_buf(), text.to_string()),
        &expected,
    )
}

/// Parses a flavor file that must define flavor `expected`.
pub(crate) fn parse_flavor(src: &SourceFile, expected: &str) -> Result<Flavor, LangError> {
    let doc = src.parse_kdl()?;
    let (node, _) = top_node(src, &doc, "flavor", expected)?;
    props(src, node, &[])?;
    let mut arch: Option<(&str, &KdlEntry)> = None;
    let mut format: Option<(&str, &KdlEntry)> = None;
    let mut flags = BTreeMap::new();
    for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
        let name = child.name().value();
        if !matches!(name, "arch" | "use" | "format") {
            return Err(super::node::unknown_node(
                src,
                child,
                "flavor statement",
                &["arch", "use", "format"],
            ));
        }
        no_block(src, child)?;
        match name {
            // `use` holds only properties, whose names are the flags.
            "use" => {
                for entry in child.entries() {
                    use_flag(src, entry, &mut flags)?;
                }
            }
            _ => {
                props(src, child, &[])?;
                let what = if name == "arch" {
                    "an architecture"
                } else {
                    "a format"
                };
                let (value, entry) = one_arg(src, child, what)?;
                let slot = if name == "arch" {
                    &mut arch
                } else {
                    &mut format
                };
                if slot.is_some() {
                    return Err(src.invalid(
                        child.name().span(),
                        format!("`{name}` given twice in flavor `{expected}`"),
                        "second one",
                        None,
                    ));
                }
                *slot = Some((value, entry));
            }
        }
    }
    let Some((arch, arch_entry)) = arch else {
        return Err(src.invalid(
            node.name().span(),
            format!("flavor `{expected}` has no `arch`"),
            "no `arch` in this flavor",
            Some(format!(
                "add e.g. `arch x86_64`; known architectures: {}",
                arch_names().collect::<Vec<_>>().join(", ")
            )),
        ));
    };
    if debian_arch(arch).is_none() {
        return Err(src.invalid(
            value_span(arch_entry),
            format!("unknown architecture `{arch}`"),
            "unknown architecture",
            Some(suggest(arch, arch_names(), "architectures")),
        ));
    }
    if let Some((format, entry)) = format
        && !FORMATS.contains(&format)
    {
        return Err(src.invalid(
            value_span(entry),
            format!("unknown format `{format}`"),
            "unknown format",
            Some(suggest(format, FORMATS.iter().copied(), "formats")),
        ));
    }
    Ok(Flavor {
        name: Some(expected.to_string()),
        arch: arch.to_string(),
        flags,
        format: format.map(|(f, _)| f.to_string()),
    })
}

/// One `name=#true` entry of a `use` node.
fn use_flag(
    src: &SourceFile,
    entry: &KdlEntry,
    flags: &mut BTreeMap<String, bool>,
) -> Result<(), LangError> {
    let Some(key) = entry.name() else {
        return Err(src.invalid(
            value_span(entry),
            format!(
                "`use` takes flags as `name=#true` or `name=#false`, found `{}`",
                repr(entry)
            ),
            "not a flag setting",
            Some(format!("write `{}=#true`", repr(entry))),
        ));
    };
    let name = key.value();
    if !valid_name(name) {
        return Err(src.invalid(
            key.span(),
            format!("`{name}` is not a valid flag name"),
            "invalid flag name",
            Some(NAME_RULE.to_string()),
        ));
    }
    let on = prop_bool(src, &format!("flag `{name}`"), entry)?;
    if flags.insert(name.to_string(), on).is_some() {
        return Err(src.invalid(
            key.span(),
            format!("flag `{name}` is set twice"),
            "set again here",
            None,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Flavor, LangError> {
        parse_flavor(
            &SourceFile::new("flavors/xen.kdl".into(), text.into()),
            "xen",
        )
    }

    fn error(text: &str) -> (String, String) {
        let err = parse(text).unwrap_err();
        let help = miette::Diagnostic::help(&err)
            .map(|h| h.to_string())
            .unwrap_or_default();
        (err.to_string(), help)
    }

    #[test]
    fn flavor_text_is_parsed_without_a_workspace() {
        let f = parse_flavor_text(
            Path::new("/x/flavors/kvm.kdl"),
            "flavor kvm { arch x86_64 }",
        )
        .unwrap();
        assert_eq!(f.name.as_deref(), Some("kvm"));
        let err = parse_flavor_text(Path::new("/x/flavors/kvm.kdl"), "flavor xen { }")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/x/flavors/kvm.kdl:1:8: "), "{err}");
    }

    #[test]
    fn parses_flavor_files() {
        let f =
            parse("flavor xen { arch x86_64; use xen=#true kernel=#true; format image }").unwrap();
        assert_eq!(f.name.as_deref(), Some("xen"));
        assert_eq!((f.arch.as_str(), f.debian_arch()), ("x86_64", "amd64"));
        assert!(f.flag("xen") && f.flag("kernel") && !f.flag("openvz"));
        assert_eq!(f.format.as_deref(), Some("image"));
        assert_eq!(f.canonical(), "[kernel,xen is: x86_64]");
        let f =
            parse("flavor xen {\n arch aarch64\n use openvz=#true\n use kernel=#false\n}").unwrap();
        assert_eq!(f.canonical(), "[!kernel,openvz is: aarch64]");
        assert_eq!((f.debian_arch(), f.format.as_deref()), ("arm64", None));
    }

    #[test]
    fn flavor_file_errors_are_located() {
        let (msg, help) = error("flavor xen {\n  arch amd64\n}");
        assert_eq!(msg, "flavors/xen.kdl:2:8: unknown architecture `amd64`");
        assert!(
            help.contains("known architectures: aarch64, armv7l"),
            "{help}"
        );
        let (msg, help) = error("flavor xen {\n  arch x86_64\n  format imag\n}");
        assert_eq!(msg, "flavors/xen.kdl:3:10: unknown format `imag`");
        assert!(help.starts_with("did you mean `image`?"), "{help}");
        let (msg, help) = error("flavor xen {\n  use xen=#true\n}");
        assert_eq!(msg, "flavors/xen.kdl:1:1: flavor `xen` has no `arch`");
        assert!(help.contains("x86_64"), "{help}");
        let (msg, _) = error("flavor kvm { arch x86_64 }");
        assert_eq!(
            msg,
            "flavors/xen.kdl:1:8: flavors/xen.kdl must define flavor `xen`, not `kvm`"
        );
        let (msg, _) = error("flavor xen { arch x86_64; use xen=1 }");
        assert_eq!(
            msg,
            "flavors/xen.kdl:1:35: flag `xen` must be #true or #false, found `1`"
        );
        let (msg, _) = error("flavor xen { arch x86_64; use xen }");
        assert!(
            msg.contains("1:31: `use` takes flags as `name=#true`"),
            "{msg}"
        );
        let (msg, _) = error("flavor xen { arch x86_64; use xen=#true xen=#false }");
        assert_eq!(msg, "flavors/xen.kdl:1:41: flag `xen` is set twice");
        let (msg, _) = error("flavor xen { arch x86_64; arch i686 }");
        assert_eq!(
            msg,
            "flavors/xen.kdl:1:27: `arch` given twice in flavor `xen`"
        );
        let (msg, help) = error("flavor xen { arch x86_64; uses a=#true }");
        assert_eq!(msg, "flavors/xen.kdl:1:27: unknown flavor statement `uses`");
        assert!(help.starts_with("did you mean `use`?"), "{help}");
    }

    #[test]
    fn canonical_strings_round_trip() {
        for text in [
            "[!kernel,openvz is: x86_64]",
            "[is: x86_64]",
            "[kernel,xen is: aarch64]",
            "[!a,b-c,d.e is: riscv64]",
        ] {
            let f = Flavor::parse_canonical(text).unwrap();
            assert_eq!(f.canonical(), text);
            assert_eq!(f.name, None);
        }
        let f = Flavor::parse_canonical(" [ openvz , !kernel  is:  i686 ] ").unwrap();
        assert_eq!(f.canonical(), "[!kernel,openvz is: i686]");
        assert_eq!(f.debian_arch(), "i386");
    }

    #[test]
    fn a_kdl_v1_keyword_gets_the_v2_spelling() {
        let err = parse("flavor xen {\n    arch x86_64\n    use openvz=true\n}\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("flavors/xen.kdl:3:16: invalid KDL"),
            "{err}"
        );
        let help = miette::Diagnostic::help(&err).map(|h| h.to_string());
        assert_eq!(
            help.as_deref(),
            Some("KDL v2 writes `#true`: a bare `true` is KDL v1")
        );
    }

    #[test]
    fn malformed_canonical_strings_are_refused() {
        let reason = |text: &str| match Flavor::parse_canonical(text) {
            Err(LangError::BadFlavorString { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason("kernel is: x86_64"), "expected `[FLAGS is: ARCH]`");
        assert_eq!(reason("[kernel]"), "missing `is: ARCH`");
        assert!(reason("[is: amd64]").starts_with("unknown architecture `amd64`"));
        assert!(reason("[a,,b is: x86_64]").starts_with("bad flag ``"));
        assert!(reason("[a b is: x86_64]").starts_with("bad flag `a b`"));
        assert_eq!(reason("[a,!a is: x86_64]"), "flag `a` appears twice");
        let err = Flavor::parse_canonical("[x]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed flavor string `[x]`: missing `is: ARCH`"
        );
    }
}
