//! Licenses as an SBOM states them: SPDX license expressions, from a Debian package's
//! machine-readable copyright file (DEP-5) or from an RPM header's `License` tag.
//!
//! Debian's short names are mostly SPDX ids already, or one by a fixed rule (`GPL-2+`
//! is `GPL-2.0-or-later`); a name that is neither becomes a `LicenseRef-` of its own,
//! which the document must then declare. Anything not understood is no license at all
//! (`NOASSERTION`), never a guess.

use std::collections::BTreeSet;

/// The `Format:` values of a machine-readable copyright file: copyright-format 1.0
/// (by either scheme) and the DEP-5 drafts before it, whose stanzas read the same.
const FORMATS: [&str; 2] = [
    "www.debian.org/doc/packaging-manuals/copyright-format/1.0",
    "dep.debian.net/deps/dep5",
];

/// SPDX ids that Debian writes as they are (compared without case).
const SPDX_IDS: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.0",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "curl",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ICU",
    "IJG",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "Libpng",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "OFL-1.1",
    "OpenSSL",
    "PostgreSQL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Sleepycat",
    "TCL",
    "Unicode-DFS-2016",
    "Unlicense",
    "Vim",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];

/// Debian's short names that are no SPDX id (or a deprecated one: `GPL-2.0`), and the
/// id each stands for. The GNU ones
/// take `+` (or later) by the rule in [`spdx_id`].
const DEBIAN_NAMES: &[(&str, &str)] = &[
    ("AGPL-3", "AGPL-3.0"),
    ("Artistic", "Artistic-1.0"),
    ("BSD-2-clause", "BSD-2-Clause"),
    ("BSD-3-clause", "BSD-3-Clause"),
    ("BSD-4-clause", "BSD-4-Clause"),
    ("Expat", "MIT"),
    ("GFDL-1.2", "GFDL-1.2"),
    ("GFDL-1.3", "GFDL-1.3"),
    ("GPL-1", "GPL-1.0"),
    ("GPL-1.0", "GPL-1.0"),
    ("GPL-2.0", "GPL-2.0"),
    ("GPL-3.0", "GPL-3.0"),
    ("LGPL-2.0", "LGPL-2.0"),
    ("LGPL-3.0", "LGPL-3.0"),
    ("AGPL-3.0", "AGPL-3.0"),
    ("GPL-2", "GPL-2.0"),
    ("GPL-3", "GPL-3.0"),
    ("LGPL-2", "LGPL-2.0"),
    ("LGPL-2.1", "LGPL-2.1"),
    ("LGPL-3", "LGPL-3.0"),
    ("PSF-2", "PSF-2.0"),
    ("Zope-2.1", "ZPL-2.1"),
];

/// The GNU licenses, whose SPDX ids say `-only` or `-or-later` instead of a bare `+`.
const GNU: [&str; 4] = ["GPL-", "LGPL-", "AGPL-", "GFDL-"];

/// A license expression in SPDX syntax, and the `LicenseRef-` ids it uses (each must be
/// declared where the expression is used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    /// `GPL-2.0-or-later OR Artistic-1.0`.
    pub text: String,
    /// `LicenseRef-public-domain`, with the short name it stands for.
    pub refs: BTreeSet<(String, String)>,
}

/// The license of a machine-readable copyright file: the `License:` of its `Files: *`
/// stanza as an SPDX expression. `None` when the file is not machine-readable, has no
/// such stanza, or its expression cannot be read.
pub fn from_dep5(text: &str) -> Option<Expression> {
    let mut stanzas = stanzas(text);
    let header = stanzas.next()?;
    let format = field(&header, "Format").or_else(|| field(&header, "Format-Specification"))?;
    let format = format.trim().trim_end_matches('/');
    let readable = FORMATS
        .iter()
        .any(|known| format.strip_suffix(known).is_some_and(is_scheme));
    if !readable {
        return None;
    }
    let everything = stanzas.find(|stanza| {
        field(stanza, "Files").is_some_and(|files| files.split_whitespace().any(|f| f == "*"))
    })?;
    let license = field(&everything, "License")?;
    from_debian(license.lines().next()?)
}

/// Whether what precedes a known format is `http://` or `https://`.
fn is_scheme(prefix: &str) -> bool {
    prefix == "http://" || prefix == "https://"
}

/// The stanzas of a control-style file, each as its (field, value) pairs, the value's
/// continuation lines joined with newlines.
fn stanzas(text: &str) -> std::vec::IntoIter<Vec<(String, String)>> {
    text.split('\n')
        .collect::<Vec<_>>()
        .split(|line| line.trim().is_empty())
        .map(|lines| {
            let mut fields: Vec<(String, String)> = Vec::new();
            for line in lines.iter().map(|l| l.trim_end_matches('\r')) {
                if line.starts_with('#') {
                    continue;
                }
                match (line.starts_with([' ', '\t']), fields.last_mut()) {
                    (true, Some((_, value))) => {
                        value.push('\n');
                        value.push_str(line.trim());
                    }
                    (true, None) => {}
                    (false, _) => {
                        if let Some((name, value)) = line.split_once(':') {
                            fields.push((name.trim().to_string(), value.trim().to_string()));
                        }
                    }
                }
            }
            fields
        })
        .filter(|fields| !fields.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

/// The value of field `name` (any case) of a stanza.
fn field<'s>(stanza: &'s [(String, String)], name: &str) -> Option<&'s str> {
    (stanza.iter())
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A DEP-5 license line (`GPL-2+ or Artistic, and BSD-3-clause`) as an SPDX expression.
/// `and` binds tighter than `or`, as in SPDX; a comma ends a group that binds loosest,
/// so each group is parenthesised when the line has several.
pub fn from_debian(line: &str) -> Option<Expression> {
    let mut refs = BTreeSet::new();
    let groups: Vec<&str> = line.split(',').map(str::trim).collect();
    let several = groups.len() > 1;
    let mut text = String::new();
    for (i, group) in groups.into_iter().enumerate() {
        let mut words = group.split_whitespace().peekable();
        if i > 0 {
            let op = operator(words.next()?)?;
            text += &format!(" {op} ");
        }
        let mut part = String::new();
        let mut terms = 0;
        while words.peek().is_some() {
            if terms > 0 {
                let op = operator(words.next()?)?;
                part += &format!(" {op} ");
            }
            // A term is every word up to the next operator: `GPL-2+ with OpenSSL exception`.
            let mut term = Vec::new();
            while let Some(word) = words.next_if(|w| operator(w).is_none()) {
                term.push(word);
            }
            part += &license_id(&term.join(" "), &mut refs)?;
            terms += 1;
        }
        if terms == 0 {
            return None;
        }
        text += &if several && terms > 1 {
            format!("({part})")
        } else {
            part
        };
    }
    Some(Expression { text, refs })
}

/// `OR` or `AND` for DEP-5's `or` and `and`.
fn operator(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "or" => Some("OR"),
        "and" => Some("AND"),
        _ => None,
    }
}

/// The SPDX id of one Debian license name, else a `LicenseRef-` made of it (added to
/// `refs`). `None` for an empty name.
fn license_id(name: &str, refs: &mut BTreeSet<(String, String)>) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    if let Some(id) = spdx_id(name) {
        return Some(id);
    }
    let id = format!("LicenseRef-{}", id_safe(name));
    refs.insert((id.clone(), name.to_string()));
    Some(id)
}

/// The SPDX id a Debian short name is, or stands for by [`DEBIAN_NAMES`] and the GNU
/// `+` rule: `GPL-2+` is `GPL-2.0-or-later`, `GPL-2` is `GPL-2.0-only`.
pub fn spdx_id(name: &str) -> Option<String> {
    let (base, later) = match name.strip_suffix('+') {
        Some(base) => (base, true),
        None => (name, false),
    };
    if let Some(id) = SPDX_IDS.iter().find(|id| id.eq_ignore_ascii_case(base)) {
        return Some(if later {
            format!("{id}+")
        } else {
            id.to_string()
        });
    }
    let (_, id) = DEBIAN_NAMES
        .iter()
        .find(|(debian, _)| debian.eq_ignore_ascii_case(base))?;
    if GNU.iter().any(|prefix| id.starts_with(prefix)) {
        let suffix = if later { "or-later" } else { "only" };
        return Some(format!("{id}-{suffix}"));
    }
    Some(if later {
        format!("{id}+")
    } else {
        id.to_string()
    })
}

/// An RPM header's `License` tag as an SPDX expression: modern Fedora writes SPDX
/// already, so a tag made of SPDX ids, `AND`, `OR`, `WITH` and parentheses is taken as
/// it is; anything else (an old Fedora short name list) is one `LicenseRef-`.
pub fn from_rpm(tag: &str) -> Option<Expression> {
    let tag = tag.trim();
    if tag.is_empty() {
        return None;
    }
    let spaced = tag.replace('(', " ( ").replace(')', " ) ");
    let mut after_with = false;
    let spdx = spaced.split_whitespace().all(|word| {
        let ok = match word {
            "(" | ")" | "AND" | "OR" => true,
            "WITH" => {
                after_with = true;
                return true;
            }
            // An exception id (`Classpath-exception-2.0`) is on no list kept here.
            exception if after_with => exception.chars().all(is_id_char),
            id => SPDX_IDS
                .iter()
                .any(|known| *known == id.strip_suffix('+').unwrap_or(id)),
        };
        after_with = false;
        ok
    });
    let mut refs = BTreeSet::new();
    let text = if spdx {
        tag.to_string()
    } else {
        license_id(tag, &mut refs)?
    };
    Some(Expression { text, refs })
}

/// Whether `c` may stand in an SPDX id or `LicenseRef-`.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

/// `name` as the part of an SPDX id after its prefix (`LicenseRef-`, `SPDXRef-`):
/// letters, digits, `.` and `-`, each run of anything else one `-`.
pub(super) fn id_safe(name: &str) -> String {
    let mut safe = String::with_capacity(name.len());
    for c in name.chars() {
        if is_id_char(c) {
            safe.push(c);
        } else if !safe.ends_with('-') {
            safe.push('-');
        }
    }
    safe.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP5: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hello

Files: debian/*
Copyright: 2024 Someone
License: GPL-3+

Files: *
Copyright: 1992-2024 Free Software Foundation
License: GPL-2+ or Artistic, and BSD-3-clause
 A paragraph of text that follows the short name.

Files: lib/*
License: Expat

License: Artistic
 The text of the license.
";

    #[test]
    fn the_files_star_stanza_gives_the_license() {
        let found = from_dep5(DEP5).unwrap();
        assert_eq!(
            found.text,
            "(GPL-2.0-or-later OR Artistic-1.0) AND BSD-3-Clause"
        );
        assert!(found.refs.is_empty());
    }

    #[test]
    fn a_file_that_is_not_machine_readable_gives_none() {
        assert_eq!(from_dep5("This is bash, by the FSF.\n\nGPL-3+\n"), None);
        let other = DEP5.replace("copyright-format/1.0/", "copyright-format/2.0/");
        assert_eq!(from_dep5(&other), None);
        let old = DEP5.replace(
            "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
            "http://dep.debian.net/deps/dep5",
        );
        assert!(from_dep5(&old).is_some());
        let no_star = DEP5.replace("Files: *\n", "Files: src/*\n");
        assert_eq!(from_dep5(&no_star), None);
    }

    #[test]
    fn debian_names_map_to_spdx_ids() {
        let id = |name| spdx_id(name).unwrap_or_default();
        assert_eq!(id("GPL-2+"), "GPL-2.0-or-later");
        assert_eq!(id("GPL-2"), "GPL-2.0-only");
        assert_eq!(id("LGPL-2.1+"), "LGPL-2.1-or-later");
        assert_eq!(id("Expat"), "MIT");
        assert_eq!(id("BSD-3-clause"), "BSD-3-Clause");
        assert_eq!(id("zlib"), "Zlib");
        assert_eq!(id("Apache-2.0+"), "Apache-2.0+");
        assert_eq!(spdx_id("public-domain"), None);
    }

    #[test]
    fn other_names_become_declared_license_refs() {
        let found = from_debian("public-domain and GPL-2+ with OpenSSL exception").unwrap();
        assert_eq!(
            found.text,
            "LicenseRef-public-domain AND LicenseRef-GPL-2-with-OpenSSL-exception"
        );
        let ids: Vec<&str> = found.refs.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "LicenseRef-GPL-2-with-OpenSSL-exception",
                "LicenseRef-public-domain"
            ]
        );
        assert_eq!(from_debian("GPL-2+ or"), None);
        assert_eq!(from_debian(""), None);
    }

    #[test]
    fn rpm_tags_in_spdx_are_kept_and_others_are_refs() {
        let kept = from_rpm("GPL-3.0-or-later AND (MIT OR Apache-2.0)").unwrap();
        assert_eq!(kept.text, "GPL-3.0-or-later AND (MIT OR Apache-2.0)");
        assert!(kept.refs.is_empty());
        let old = from_rpm("GPLv2+ and BSD").unwrap();
        assert_eq!(old.text, "LicenseRef-GPLv2-and-BSD");
        assert_eq!(from_rpm("  "), None);
    }
}
