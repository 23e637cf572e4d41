//! `var/lib/dpkg`: status, file lists, md5sums and conffiles of exactly the locked
//! packages, so `dpkg -l`, `dpkg -V` and apt work inside the appliance.

use std::collections::BTreeMap;

use super::Generated;
use crate::source::dpkg::MultiArch;
use crate::source::dpkg::{Conffile, Diversion, DpkgError, InstalledPackage};

/// What dpkg's database says of one package, whatever source it came from.
pub struct PackageRecord<'a> {
    /// Package name.
    pub name: &'a str,
    /// Debian architecture.
    pub arch: &'a str,
    /// `Multi-Arch: same` packages have `name:arch` info files.
    pub multi_arch_same: bool,
    /// The status stanza, `Status: install ok installed` and `Conffiles` included.
    pub stanza: &'a str,
    /// Paths as dpkg lists them (`/bin/bash`, not the merged-/usr path).
    pub files: &'a [String],
    /// MD5 of each packaged file, keyed by absolute path.
    pub md5sums: &'a BTreeMap<String, String>,
    /// Conffiles.
    pub conffiles: &'a [Conffile],
    /// Its control files for `info/` (maintainer scripts, templates, triggers...), by
    /// name; empty for a tree that is not configured.
    pub info: Vec<(&'static str, Vec<u8>)>,
}

/// The state the status file gives every package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpacked {
    /// `installed`: configured, as the host's or as compile locks it.
    No,
    /// `unpacked`: files in place, maintainer scripts still to run (the staged tree
    /// compile configures).
    Yes,
}

impl<'a> TryFrom<&'a InstalledPackage> for PackageRecord<'a> {
    type Error = DpkgError;

    /// The record of an installed package, whose list of what it owns is read now.
    fn try_from(p: &'a InstalledPackage) -> Result<PackageRecord<'a>, DpkgError> {
        let owned = p.owned()?;
        Ok(PackageRecord {
            name: &p.package.name,
            arch: &p.package.arch,
            multi_arch_same: p.package.multi_arch == MultiArch::Same,
            stanza: &p.stanza,
            files: &owned.files,
            md5sums: &owned.md5sums,
            conffiles: &p.conffiles,
            info: Vec::new(),
        })
    }
}

/// The status stanza dpkg writes once it has installed a package from an archive: the
/// control file (which holds neither `Status` nor `Conffiles`: [`parse_control`] refuses
/// them) with `Status: install ok installed` after `Package` and a `Conffiles` field
/// (MD5 of each packaged conffile) before `Description`. Field names are matched as
/// dpkg matches them, whatever their case.
///
/// [`parse_control`]: crate::source::dpkg::parse_control
pub fn installed_stanza(control: &str, conffiles: &[Conffile]) -> String {
    let mut out = String::new();
    let conffiles_field: String = if conffiles.is_empty() {
        String::new()
    } else {
        let lines: String = conffiles
            .iter()
            .map(|c| format!(" {} {}\n", c.path, c.md5))
            .collect();
        format!("Conffiles:\n{lines}")
    };
    let mut placed_conffiles = false;
    let lines = (control.split('\n'))
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty());
    for line in lines {
        // A continuation line starts with a blank and names no field.
        let field = (!line.starts_with([' ', '\t']))
            .then(|| line.split_once(':').map_or(line, |(name, _)| name));
        let is = |name: &str| field.is_some_and(|f| f.eq_ignore_ascii_case(name));
        if is("Description") && !placed_conffiles {
            out += &conffiles_field;
            placed_conffiles = true;
        }
        out += line;
        out += "\n";
        if is("Package") {
            out += "Status: install ok installed\n";
        }
    }
    if !placed_conffiles {
        out += &conffiles_field;
    }
    out
}

/// The dpkg database of `packages`: `status` (sorted by name and arch, as dpkg writes it),
/// `info/<pkg>.list`, `.md5sums`, `.conffiles`, and the `diversions` whose diverting
/// package is among them.
pub fn dpkg_state(
    packages: &[PackageRecord],
    diversions: &[Diversion],
    unpacked: Unpacked,
) -> Generated {
    let mut sorted: Vec<&PackageRecord> = packages.iter().collect();
    sorted.sort_by_key(|p| (p.name, p.arch));
    let mut generated = Generated::default();
    let mut status = String::new();
    for p in &sorted {
        for line in p.stanza.trim_end_matches('\n').lines() {
            match line.strip_prefix("Status: ") {
                Some(state) if unpacked == Unpacked::Yes => {
                    let want = state.rsplit_once(' ').map_or(state, |(w, _)| w);
                    status += &format!("Status: {want} unpacked");
                }
                _ => status += line,
            }
            status += "\n";
        }
        status += "\n";
        let stem = if p.multi_arch_same {
            format!("/var/lib/dpkg/info/{}:{}", p.name, p.arch)
        } else {
            format!("/var/lib/dpkg/info/{}", p.name)
        };
        let mut list = String::from("/.\n");
        for path in p.files {
            list += path;
            list += "\n";
        }
        generated.root_file(&format!("{stem}.list"), list.into_bytes());
        // dpkg keeps one for every installed package, empty for one with no file
        // (python3-venv): `dpkg --audit` reports a package without it.
        let sums: String = p
            .md5sums
            .iter()
            .map(|(path, md5)| format!("{md5}  {}\n", path.trim_start_matches('/')))
            .collect();
        generated.root_file(&format!("{stem}.md5sums"), sums.into_bytes());
        let conffiles: String = p
            .conffiles
            .iter()
            .filter(|c| !c.obsolete)
            .map(|c| format!("{}\n", c.path))
            .collect();
        if !conffiles.is_empty() {
            generated.root_file(&format!("{stem}.conffiles"), conffiles.into_bytes());
        }
        for (name, text) in &p.info {
            let mode = if name.ends_with("inst") || name.ends_with("rm") || *name == "config" {
                0o755
            } else {
                0o644
            };
            let path = format!("{stem}.{name}");
            generated.file(&path, mode, (0, "root", 0, "root"), text.clone());
        }
    }
    generated.root_file("/var/lib/dpkg/status", status.into_bytes());
    // Without it dpkg takes the info folder for the pre-multiarch layout and misses every
    // `name:arch.list`.
    generated.root_file("/var/lib/dpkg/info/format", b"1\n".to_vec());
    let kept: String = diversions
        .iter()
        .filter(|d| {
            d.by.as_deref()
                .is_some_and(|by| sorted.iter().any(|p| p.name == by))
        })
        .map(|d| format!("{}\n{}\n{}\n", d.from, d.to, d.by.as_deref().unwrap_or(":")))
        .collect();
    generated.root_file("/var/lib/dpkg/diversions", kept.into_bytes());
    generated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(
        name: &'a str,
        stanza: &'a str,
        files: &'a [String],
        md5sums: &'a BTreeMap<String, String>,
        conffiles: &'a [Conffile],
    ) -> PackageRecord<'a> {
        PackageRecord {
            name,
            arch: "amd64",
            multi_arch_same: name.starts_with("lib"),
            stanza,
            files,
            md5sums,
            conffiles,
            info: Vec::new(),
        }
    }

    fn content(g: &Generated, path: &str) -> String {
        g.content(path)
    }

    #[test]
    fn control_becomes_an_installed_stanza() {
        let control = "Package: nginx\nVersion: 1.22\nArchitecture: amd64\nDescription: web server\n more text\n";
        let conf = [Conffile {
            path: "/etc/nginx/nginx.conf".into(),
            md5: "abc".into(),
            obsolete: false,
        }];
        assert_eq!(
            installed_stanza(control, &conf),
            "Package: nginx\nStatus: install ok installed\nVersion: 1.22\nArchitecture: amd64\nConffiles:\n /etc/nginx/nginx.conf abc\nDescription: web server\n more text\n"
        );
        assert_eq!(
            installed_stanza("Package: a\nVersion: 1\n", &[]),
            "Package: a\nStatus: install ok installed\nVersion: 1\n"
        );
        // dpkg (and the control parser) take field names in any case: `package:` got
        // no Status, and `\r\r\n` kept a `\r` that the parser drops.
        assert_eq!(
            installed_stanza(
                "package: ab\r\r\nVersion: 1\ndescription: d\n more\n\n",
                &conf
            ),
            "package: ab\nStatus: install ok installed\nVersion: 1\n\
             Conffiles:\n /etc/nginx/nginx.conf abc\ndescription: d\n more\n"
        );
    }

    #[test]
    fn writes_status_lists_sums_and_conffiles() {
        let files = vec!["/bin".to_string(), "/bin/bash".to_string()];
        let sums = BTreeMap::from([("/bin/bash".to_string(), "abc".to_string())]);
        let conf = vec![
            Conffile {
                path: "/etc/bash.bashrc".into(),
                md5: "def".into(),
                obsolete: false,
            },
            Conffile {
                path: "/etc/old".into(),
                md5: "0".into(),
                obsolete: true,
            },
        ];
        let none = BTreeMap::new();
        let packages = [
            record(
                "zsh",
                "Package: zsh\nStatus: install ok installed\n",
                &[],
                &none,
                &[],
            ),
            record(
                "bash",
                "Package: bash\nStatus: install ok installed\n\n",
                &files,
                &sums,
                &conf,
            ),
            record(
                "libc6",
                "Package: libc6\nStatus: install ok installed\n",
                &[],
                &none,
                &[],
            ),
        ];
        let diversions = [
            Diversion {
                from: "/a".into(),
                to: "/a.real".into(),
                by: Some("bash".into()),
            },
            Diversion {
                from: "/b".into(),
                to: "/b.real".into(),
                by: Some("absent".into()),
            },
        ];
        let g = dpkg_state(&packages, &diversions, Unpacked::No);
        assert_eq!(
            content(&g, "/var/lib/dpkg/status"),
            "Package: bash\nStatus: install ok installed\n\nPackage: libc6\nStatus: install ok installed\n\nPackage: zsh\nStatus: install ok installed\n\n"
        );
        assert_eq!(
            content(&g, "/var/lib/dpkg/info/bash.list"),
            "/.\n/bin\n/bin/bash\n"
        );
        assert_eq!(
            content(&g, "/var/lib/dpkg/info/bash.md5sums"),
            "abc  bin/bash\n"
        );
        assert_eq!(
            content(&g, "/var/lib/dpkg/info/bash.conffiles"),
            "/etc/bash.bashrc\n"
        );
        assert!(
            g.entries
                .iter()
                .any(|e| e.path == "/var/lib/dpkg/info/libc6:amd64.list")
        );
        // As dpkg keeps it for a package with no file: `dpkg --audit` wants one.
        assert_eq!(content(&g, "/var/lib/dpkg/info/zsh.md5sums"), "");
        assert_eq!(
            content(&g, "/var/lib/dpkg/diversions"),
            "/a\n/a.real\nbash\n"
        );
        for (entry, blob) in g.entries.iter().zip(&g.blobs) {
            assert_eq!(
                entry.digest.as_deref(),
                Some(blake3::hash(blob).to_hex().as_str())
            );
            assert_eq!(
                (entry.uid, entry.mode, entry.package.as_deref()),
                (0, 0o644, None)
            );
        }
    }

    #[test]
    fn an_unpacked_tree_has_unpacked_stanzas_and_the_maintainer_scripts() {
        let none = BTreeMap::new();
        let mut held = record(
            "nginx",
            "Package: nginx\nStatus: hold ok installed\nVersion: 1\n",
            &[],
            &none,
            &[],
        );
        held.multi_arch_same = false;
        held.info = vec![
            ("postinst", b"#!/bin/sh\n".to_vec()),
            ("templates", b"Template: x\n".to_vec()),
        ];
        let g = dpkg_state(&[held], &[], Unpacked::Yes);
        assert_eq!(
            content(&g, "/var/lib/dpkg/status"),
            "Package: nginx\nStatus: hold ok unpacked\nVersion: 1\n\n"
        );
        let mode = |path: &str| g.entries.iter().find(|e| e.path == path).map(|e| e.mode);
        assert_eq!(mode("/var/lib/dpkg/info/nginx.postinst"), Some(0o755));
        assert_eq!(mode("/var/lib/dpkg/info/nginx.templates"), Some(0o644));
        assert_eq!(
            content(&g, "/var/lib/dpkg/info/nginx.templates"),
            "Template: x\n"
        );
    }
}
