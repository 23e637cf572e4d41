//! dpkg's rules for what a package stanza names: package names, versions and
//! architectures. Every stanza from every source (pool archives, apt's lists, the dpkg
//! status) and every relation in it is held to them, so that no package enters a lock
//! whose status stanza dpkg inside the appliance would refuse, or read as another.

use crate::excerpt::excerpt;

/// The largest epoch dpkg takes (it keeps it in an `int`).
const EPOCH_MAX: u64 = i32::MAX as u64;

/// A package name, version or architecture that breaks dpkg's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {what} `{}`: {why}", excerpt(.value))]
pub struct Broken {
    /// What the value is: `package name`, `version` or `architecture`.
    pub what: &'static str,
    /// The value as written.
    pub value: String,
    /// The rule it breaks, in dpkg's own words where dpkg has them.
    pub why: String,
}

fn broken(what: &'static str, value: &str, why: impl Into<String>) -> Result<(), Broken> {
    Err(Broken {
        what,
        value: value.to_string(),
        why: why.into(),
    })
}

/// The first character of `text` outside `allowed`, as a message says it.
fn stray(text: &str, allowed: impl Fn(char) -> bool) -> Option<String> {
    (text.chars().find(|&c| !allowed(c))).map(|c| c.escape_default().to_string())
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A package (or virtual package) name, Debian policy 5.6.1 as dpkg applies it: at
/// least two characters, lowercase letters, digits and `+ - .`, starting with a letter
/// or digit. (dpkg folds upper case, so `Foo` would be installed as `foo`.)
pub fn package_name(name: &str) -> Result<(), Broken> {
    const WHAT: &str = "package name";
    if !name.starts_with(lower_alnum) {
        return broken(WHAT, name, "must start with a lowercase letter or a digit");
    }
    if let Some(c) = stray(name, |c| lower_alnum(c) || matches!(c, '+' | '-' | '.')) {
        return broken(
            WHAT,
            name,
            format!("character `{c}` is not allowed (only lowercase letters, digits and `+ - .`)"),
        );
    }
    if name.len() < 2 {
        return broken(WHAT, name, "must be at least two characters long");
    }
    Ok(())
}

/// A version, `[epoch:]upstream[-revision]`, by dpkg's `parseversion` with its strict
/// checks: blanks only around it, a decimal epoch that fits dpkg's `int`, an upstream
/// version starting with a digit, of letters, digits and `. + ~ - :`, and a revision of
/// letters, digits and `. + ~`.
pub fn version(version: &str) -> Result<(), Broken> {
    const WHAT: &str = "version";
    let bad = |why: &str| broken(WHAT, version, why);
    let text = version.trim_matches([' ', '\t']);
    if text.is_empty() {
        return bad("version string is empty");
    }
    if text.contains([' ', '\t']) {
        return bad("version string has embedded spaces");
    }
    let rest = match text.split_once(':') {
        None => text,
        Some(("", _)) => return bad("epoch in version is empty"),
        Some((epoch, rest)) => {
            let digits = epoch.strip_prefix('-').unwrap_or(epoch);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return bad("epoch in version is not number");
            }
            if digits.len() < epoch.len() {
                return bad("epoch in version is negative");
            }
            if digits.parse::<u64>().map_or(true, |e| e > EPOCH_MAX) {
                return bad("epoch in version is too big");
            }
            if rest.is_empty() {
                return bad("nothing after colon in version number");
            }
            rest
        }
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((_, "")) => return bad("revision number is empty"),
        Some((upstream, revision)) => (upstream, revision),
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return bad("version number is empty");
    }
    if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return bad("version number does not start with digit");
    }
    let alnum_or =
        |extra: &'static str| move |c: char| c.is_ascii_alphanumeric() || extra.contains(c);
    if stray(upstream, alnum_or(".-+~:")).is_some() {
        return bad("invalid character in version number");
    }
    if stray(revision, alnum_or(".+~")).is_some() {
        return bad("invalid character in revision number");
    }
    Ok(())
}

/// An architecture name (`amd64`, `all`, `any`, `native`), by dpkg's
/// `dpkg_arch_name_is_illegal` in lower case, as Debian names every architecture: a
/// lowercase letter or digit, then lowercase letters, digits and `-`.
pub fn architecture(arch: &str) -> Result<(), Broken> {
    const WHAT: &str = "architecture";
    if !arch.starts_with(lower_alnum) {
        return broken(WHAT, arch, "must start with a lowercase letter or a digit");
    }
    if let Some(c) = stray(arch, |c| lower_alnum(c) || c == '-') {
        return broken(
            WHAT,
            arch,
            format!("character `{c}` is not allowed (only lowercase letters, digits and `-`)"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(result: Result<(), Broken>) -> String {
        result.unwrap_err().why
    }

    #[test]
    fn package_names_follow_policy() {
        for name in [
            "libc6",
            "g++",
            "libstdc++6",
            "0ad",
            "python3.11",
            "a-b.c+d",
            "ab",
        ] {
            package_name(name).unwrap_or_else(|e| panic!("{e}"));
        }
        let starts = "must start with a lowercase letter or a digit";
        for (name, reason) in [
            ("--foo", starts),
            ("", starts),
            ("+x", starts),
            ("Foo", starts),
            ("a", "must be at least two characters long"),
            ("fOo", "character `O` is not allowed"),
            ("a_b", "character `_` is not allowed"),
            ("a b", "character ` ` is not allowed"),
            ("a\nb", "character `\\n` is not allowed"),
            ("aé", "character `\\u{e9}` is not allowed"),
        ] {
            let err = package_name(name).unwrap_err();
            assert!(err.why.starts_with(reason), "{name:?}: {err}");
        }
        let err = package_name("--foo").unwrap_err().to_string();
        assert_eq!(
            err,
            "bad package name `--foo`: must start with a lowercase letter or a digit"
        );
    }

    /// dpkg's own examples, from its `t-version.c`, with the messages of dpkg 1.21.
    #[test]
    fn versions_follow_dpkgs_parseversion() {
        for good in [
            "0",
            "0:0",
            "0:0-0",
            "0:0.0-0.0",
            "1:0",
            "5:1",
            "0:0-0-0",
            "0:0-0-0-0",
            "0:0:0-0",
            "0:0:0:0-0",
            "0:0:0-0-0",
            "0:0-0:0-0",
            "0:09azAZ.-+~:-0",
            "0:0-azAZ09.+~",
            "  \t0:0-1",
            "0:0-1\t  ",
            "\t  0:0-1  \t",
            "1:9.2p1-2+deb12u3",
            "2.36-9+deb12u4",
            "1.0~rc1+dfsg-2.1~bpo12+1",
            "00:1",
            "2147483647:1",
        ] {
            version(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        for (bad, reason) in [
            ("", "version string is empty"),
            ("  ", "version string is empty"),
            ("0:", "nothing after colon in version number"),
            ("0:0 0-1", "version string has embedded spaces"),
            ("1.0 beta; rm -rf /", "version string has embedded spaces"),
            ("-1:0-1", "epoch in version is negative"),
            (
                "999999999999999999999999:0-1",
                "epoch in version is too big",
            ),
            ("2147483648:0", "epoch in version is too big"),
            ("a:0-0", "epoch in version is not number"),
            ("A:0-0", "epoch in version is not number"),
            (":1", "epoch in version is empty"),
            ("1.0:2", "epoch in version is not number"),
            ("-0", "version number is empty"),
            ("0:-0", "version number is empty"),
            ("0:0-", "revision number is empty"),
            ("0:abc3-0", "version number does not start with digit"),
            ("0:0-0:0", "invalid character in revision number"),
            ("1.0\n2", "invalid character in version number"),
        ] {
            assert_eq!(why(version(bad)), reason, "{bad:?}");
        }
        // t-version.c: every one of these in the upstream version, then the revision.
        for c in "!#@$%&/|\\<>()[]{};,_=*^'".chars() {
            let upstream = format!("0:0{c}-0");
            assert_eq!(
                why(version(&upstream)),
                "invalid character in version number",
                "{upstream}"
            );
        }
        for c in "!#@$%&/|\\<>()[]{}:;,_=*^'".chars() {
            let revision = format!("0:0-{c}");
            assert_eq!(
                why(version(&revision)),
                "invalid character in revision number",
                "{revision}"
            );
        }
    }

    #[test]
    fn architectures_are_dpkgs_in_lower_case() {
        for arch in [
            "amd64",
            "all",
            "any",
            "native",
            "arm64",
            "x32",
            "musl-linux-amd64",
        ] {
            architecture(arch).unwrap_or_else(|e| panic!("{e}"));
        }
        for (arch, reason) in [
            ("", "must start"),
            ("-ab", "must start"),
            ("AMD64", "must start"),
            ("amd_64", "character `_` is not allowed"),
            ("a b", "character ` ` is not allowed"),
            ("amD64", "character `D` is not allowed"),
        ] {
            assert!(why(architecture(arch)).starts_with(reason), "{arch:?}");
        }
    }
}
