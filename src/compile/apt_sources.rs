//! The host's apt sources for a tree that has apt: without them the appliance's
//! `apt-get` knows no archive, and the tree cannot be managed after it is made.
//!
//! They are taken as a `hostfile` statement takes files (digest locked, owners named by
//! the tree's accounts, a file others may not read refused), from the places apt reads:
//! `/etc/apt/sources.list` and the `*.list` and `*.sources` files of
//! `/etc/apt/sources.list.d` (apt ignores any other name there). Keyrings come along
//! when the tree has none at their path: every `Signed-By` file the sources name, and,
//! when a source names none, the ones apt then trusts (`/etc/apt/trusted.gpg` and the
//! `*.gpg` and `*.asc` of `/etc/apt/trusted.gpg.d`). A path the tree already has (a
//! package's keyring, a file configuration made), the group's own statements made, or
//! the group excludes is never read from the host: the group's word wins.

use std::fs;
use std::path::Path;

use super::error::{CompileError, Result};
use super::extra;
use crate::lock::extra::{Extra, ExtraError, Layers, Statement};
use crate::source::accounts::Accounts;

/// apt's list of sources, and its folder of more.
const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// The keys apt trusts for a source with no `Signed-By`: the old single keyring, and
/// the folder of them.
const TRUSTED: &str = "/etc/apt/trusted.gpg";
const TRUSTED_DIR: &str = "/etc/apt/trusted.gpg.d";

/// The host's apt sources (under `sysroot`) and the keyrings they need, as entries laid
/// over `layers`, leaving out every path `taken` says the tree has decided already.
pub fn host_sources(
    sysroot: &Path,
    accounts: &Accounts,
    layers: &mut Layers,
    taken: impl Fn(&str) -> bool,
) -> Result<Extra> {
    let mut sources = vec![SOURCES_LIST.to_string()];
    sources.extend(names_in(sysroot, SOURCES_DIR, &[".list", ".sources"])?);
    let mut extra = Extra::default();
    let mut keyrings = Vec::new();
    let mut unsigned = false;
    for path in sources.iter().filter(|p| !taken(p)) {
        let Some(made) = take(sysroot, path, accounts, layers)? else {
            continue;
        };
        for blob in &made.blobs {
            let text = String::from_utf8_lossy(blob);
            let found = if path.ends_with(".sources") {
                signed_by_deb822(&text)
            } else {
                signed_by_one_line(&text)
            };
            keyrings.extend(found.keyrings);
            unsigned |= found.unsigned;
        }
        extra.entries.extend(made.entries);
        extra.blobs.extend(made.blobs);
    }
    if unsigned {
        keyrings.push(TRUSTED.to_string());
        keyrings.extend(names_in(sysroot, TRUSTED_DIR, &[".gpg", ".asc"])?);
    }
    keyrings.sort();
    keyrings.dedup();
    for path in keyrings.iter().filter(|p| !taken(p)) {
        if let Some(made) = take(sysroot, path, accounts, layers)? {
            extra.entries.extend(made.entries);
            extra.blobs.extend(made.blobs);
        }
    }
    Ok(extra)
}

/// The paths of `dir`'s entries under `sysroot` whose names end with one of `suffixes`,
/// sorted; none when the folder is missing.
fn names_in(sysroot: &Path, dir: &str, suffixes: &[&str]) -> Result<Vec<String>> {
    let host = sysroot.join(dir.trim_start_matches('/'));
    let items = match fs::read_dir(&host) {
        Ok(items) => items,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CompileError::Io { path: host, source }),
    };
    let mut names = Vec::new();
    for item in items {
        let item = item.map_err(|source| CompileError::Io {
            path: host.clone(),
            source,
        })?;
        // A name that is not UTF-8 is no name apt reads either.
        if let Ok(name) = item.file_name().into_string()
            && suffixes.iter().any(|s| name.ends_with(s))
        {
            names.push(format!("{dir}/{name}"));
        }
    }
    names.sort();
    Ok(names)
}

/// The host file `path`, as `hostfile "PATH"` takes it, laid over `layers`; `None` when
/// the host has no such file.
fn take(
    sysroot: &Path,
    path: &str,
    accounts: &Accounts,
    layers: &mut Layers,
) -> Result<Option<Extra>> {
    let statement = Statement::Hostfile(path.to_string());
    let made = match extra::hostfiles(sysroot, &[path.to_string()], accounts, false) {
        Ok(made) => made,
        Err(ExtraError::NoMatch { .. }) => return Ok(None),
        Err(secret @ ExtraError::Secret { .. }) => {
            return Err(CompileError::AptSourceSecret {
                path: path.to_string(),
                secret: Box::new(secret),
            });
        }
        Err(other) => return Err(other.into()),
    };
    layers.add(&statement, &made)?;
    Ok(Some(made))
}

/// What a sources file says about keys.
#[derive(Debug, Default, PartialEq, Eq)]
struct Keys {
    /// The keyring files its `Signed-By` options name.
    keyrings: Vec<String>,
    /// Some source names no key: apt checks it against every trusted keyring.
    unsigned: bool,
}

impl Keys {
    /// Notes one source whose `Signed-By` value is `value` (absent: `None`). Paths are
    /// absolute; fingerprints and an embedded key block are not files.
    fn source(&mut self, value: Option<&str>) {
        match value {
            None => self.unsigned = true,
            Some(value) => self.keyrings.extend(
                (value.split([',', ' ', '\t']))
                    .filter(|v| v.starts_with('/'))
                    .map(str::to_string),
            ),
        }
    }
}

/// The keys of a one-line-style file: `deb [signed-by=/path arch=amd64] URI SUITE...`.
fn signed_by_one_line(text: &str) -> Keys {
    let mut keys = Keys::default();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line
            .strip_prefix("deb-src")
            .or_else(|| line.strip_prefix("deb"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let options = match rest.strip_prefix('[') {
            Some(options) => options.split(']').next().unwrap_or_default(),
            None => "",
        };
        let value = (options.split_whitespace()).find_map(|o| o.strip_prefix("signed-by="));
        keys.source(value);
    }
    keys
}

/// The keys of a deb822-style file: stanzas with `Signed-By:`, those with `Enabled: no`
/// left out.
fn signed_by_deb822(text: &str) -> Keys {
    let mut keys = Keys::default();
    for stanza in text.split("\n\n") {
        let mut fields = Vec::new();
        for line in stanza.lines().filter(|l| !l.starts_with('#')) {
            if let Some((name, value)) = line.split_once(':')
                && !line.starts_with([' ', '\t'])
            {
                fields.push((name.trim().to_ascii_lowercase(), value.trim()));
            }
        }
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        if field("types").is_none() || field("enabled") == Some("no") {
            continue;
        }
        keys.source(field("signed-by"));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(root: &Path, path: &str, text: &str, mode: u32) {
        let host = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(&host, text).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn paths(extra: &Extra) -> Vec<&str> {
        extra.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn one_line_sources_name_their_keyrings() {
        let keys = signed_by_one_line(
            "# deb [signed-by=/commented.gpg] http://x y z\n\
             deb [arch=amd64 signed-by=/usr/share/keyrings/a.gpg,/etc/apt/keyrings/b.asc] http://a bookworm main\n\
             deb-src [ signed-by=/usr/share/keyrings/a.gpg ] http://a bookworm main\n",
        );
        assert_eq!(
            keys.keyrings,
            [
                "/usr/share/keyrings/a.gpg",
                "/etc/apt/keyrings/b.asc",
                "/usr/share/keyrings/a.gpg"
            ]
        );
        assert!(!keys.unsigned);
        assert!(signed_by_one_line("deb http://deb.debian.org/debian bookworm main\n").unsigned);
    }

    #[test]
    fn deb822_sources_name_their_keyrings_and_skip_disabled_stanzas() {
        let keys = signed_by_deb822(
            "Types: deb\nURIs: http://a\nSuites: bookworm\nSigned-By: /usr/share/keyrings/a.gpg\n\n\
             Types: deb\nURIs: http://b\nEnabled: no\n\n\
             Types: deb\nURIs: http://c\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n x\n",
        );
        assert_eq!(keys.keyrings, ["/usr/share/keyrings/a.gpg"]);
        assert!(!keys.unsigned);
        assert!(signed_by_deb822("Types: deb\nURIs: http://a\nSuites: b\n").unsigned);
    }

    #[test]
    fn takes_what_apt_reads_with_the_keyrings_it_needs_and_leaves_the_groups_paths() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        write(root, SOURCES_LIST, "deb http://a bookworm main\n", 0o644);
        write(
            root,
            "/etc/apt/sources.list.d/third.sources",
            "Types: deb\nURIs: http://t\nSuites: s\nSigned-By: /usr/share/keyrings/third.gpg\n",
            0o644,
        );
        write(
            root,
            "/etc/apt/sources.list.d/mine.list",
            "deb http://m s c\n",
            0o644,
        );
        write(
            root,
            "/etc/apt/sources.list.d/old.list.disabled",
            "x",
            0o644,
        );
        write(root, "/usr/share/keyrings/third.gpg", "key", 0o644);
        write(root, "/etc/apt/trusted.gpg.d/packaged.asc", "k1", 0o644);
        write(root, "/etc/apt/trusted.gpg.d/local.gpg", "k2", 0o644);
        write(root, "/etc/apt/trusted.gpg.d/README", "no key", 0o644);
        let taken = |p: &str| {
            p == "/etc/apt/sources.list.d/mine.list" || p == "/etc/apt/trusted.gpg.d/packaged.asc"
        };
        let made = host_sources(root, &Accounts::default(), &mut Layers::default(), taken).unwrap();
        assert_eq!(
            paths(&made),
            [
                "/etc/apt/sources.list",
                "/etc/apt/sources.list.d/third.sources",
                "/etc/apt/trusted.gpg.d/local.gpg",
                "/usr/share/keyrings/third.gpg",
            ]
        );
        assert!(made.entries.iter().all(|e| e.digest.is_some()));
        assert_eq!(made.blobs.len(), 4);

        // Every source signed: the keys apt trusts by default stay out.
        write(
            root,
            SOURCES_LIST,
            "deb [signed-by=/usr/share/keyrings/third.gpg] http://a b c\n",
            0o644,
        );
        let made = host_sources(root, &Accounts::default(), &mut Layers::default(), taken).unwrap();
        assert!(!paths(&made).contains(&"/etc/apt/trusted.gpg.d/local.gpg"));
    }

    #[test]
    fn a_private_source_is_refused_with_the_statements_that_decide() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        write(
            root,
            "/etc/apt/sources.list.d/creds.list",
            "deb https://u:p@x s c\n",
            0o600,
        );
        let err = host_sources(root, &Accounts::default(), &mut Layers::default(), |_| {
            false
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("/etc/apt/sources.list.d/creds.list"), "{err}");
        assert!(
            err.contains("`exclude \"/etc/apt/sources.list.d/creds.list\"`"),
            "{err}"
        );
        let none = host_sources(root, &Accounts::default(), &mut Layers::default(), |p| {
            p.ends_with("creds.list")
        })
        .unwrap();
        assert!(none.entries.is_empty());
    }
}
