//! A reference to one stored lock, as a person writes it on the command line.

use std::str::FromStr;

use super::HistoryError;

/// `GROUP`, `GROUP=VERSION` or `GROUP=VERSION-REVISION`, each optionally followed by a
/// flavor in brackets: the canonical string `appliance list` prints
/// (`[!kernel,openvz is: x86_64]`) or a flavor's name (`[openvz]`). `web=1.0-2[...]` is
/// the full address; the rest are resolved against the repository: no version means
/// the newest (dpkg ordering), a version without a revision its latest revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The group.
    pub group: String,
    /// `1.0` or `1.0-2`, as [`crate::repo::Repository::load`] takes it; `None`: the
    /// newest.
    pub version: Option<String>,
    /// What [`crate::workspace::Workspace::flavor`] takes: the bracketed canonical
    /// string, or a name; `None` when the reference names no flavor.
    pub flavor: Option<String>,
}

impl FromStr for Reference {
    type Err = HistoryError;

    fn from_str(text: &str) -> Result<Reference, HistoryError> {
        let bad = |reason: &str| HistoryError::Malformed {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let (head, flavor) = match text.split_once('[') {
            Some((head, rest)) => {
                let inner = (rest.strip_suffix(']'))
                    .ok_or_else(|| bad("its flavor does not end with `]`"))?;
                if inner.trim().is_empty() {
                    return Err(bad("its flavor is empty"));
                }
                // A canonical string always says `is: ARCH`; a flavor's name never can.
                let spec = if inner.contains("is:") {
                    format!("[{inner}]")
                } else {
                    inner.trim().to_string()
                };
                (head, Some(spec))
            }
            None => (text, None),
        };
        let (group, version) = match head.split_once('=') {
            Some((group, version)) => (group, Some(version)),
            None => (head, None),
        };
        let stray = |part: &str| part.contains(|c: char| c.is_whitespace() || "=]".contains(c));
        if group.is_empty() {
            return Err(bad("it names no group"));
        }
        if version == Some("") {
            return Err(bad("it has no version after `=`"));
        }
        if stray(group) || version.is_some_and(stray) {
            return Err(bad("a space, `=` or `]` is out of place"));
        }
        Ok(Reference {
            group: group.to_string(),
            version: version.map(str::to_string),
            flavor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, Option<String>, Option<String>) {
        let r: Reference = text.parse().unwrap();
        (r.group, r.version, r.flavor)
    }

    #[test]
    fn every_form_parses() {
        let s = |t: &str| Some(t.to_string());
        assert_eq!(
            parsed("web=1.0-2[!kernel,openvz is: x86_64]"),
            ("web".into(), s("1.0-2"), s("[!kernel,openvz is: x86_64]"))
        );
        assert_eq!(parsed("web=1.0-2"), ("web".into(), s("1.0-2"), None));
        assert_eq!(parsed("web=2.0-beta"), ("web".into(), s("2.0-beta"), None));
        assert_eq!(parsed("web"), ("web".into(), None, None));
        assert_eq!(parsed("web[kvm]"), ("web".into(), None, s("kvm")));
        assert_eq!(
            parsed("web[is: x86_64]"),
            ("web".into(), None, s("[is: x86_64]"))
        );
    }

    #[test]
    fn malformed_references_say_why_and_the_form() {
        for (text, why) in [
            ("", "it names no group"),
            ("=1.0", "it names no group"),
            ("web=", "it has no version after `=`"),
            ("web=1.0[openvz", "its flavor does not end with `]`"),
            ("web[]", "its flavor is empty"),
            ("web=1.0=2", "a space, `=` or `]` is out of place"),
            ("web]", "a space, `=` or `]` is out of place"),
            ("web 1.0", "a space, `=` or `]` is out of place"),
        ] {
            let err = text.parse::<Reference>().unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{text}` is no lock reference ({why})")),
                "{err}"
            );
            assert!(err.contains("GROUP=VERSION-REVISION"), "{err}");
        }
    }
}
