//! Installed packages whose host files were altered after dpkg unpacked them.
//!
//! A package installed on the host is locked from the host's files, owner and mode
//! included. What another package's script or an admin changed there afterwards would
//! leak into every appliance: ssl-cert's `dpkg-statoverride` makes openssl's
//! `/etc/ssl/private` `root:ssl-cert 0710`, polkitd's postinst chowns a folder systemd
//! ships to `polkitd`, an account no appliance without polkitd has. Such a package is
//! *altered*: a path of it has a statoverride, or an entry is owned by an id that is no
//! static Debian id (base-passwd's masters), so some script made it; or a file of it no
//! longer holds the bytes dpkg unpacked (its MD5 is not the one the package's
//! `.md5sums` records: `npm install -g npm` rewrote nodejs's own files, a CA bundle was
//! replaced by hand), which the lock would pass off as the package's and no archive
//! could supply elsewhere. Its files and metadata must come from its archive, as a
//! fresh install has them (configuration then runs its own scripts, which do what they
//! do on a fresh install), so the resolver avoids it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::error::{CompileError, Result};
use super::read_once::{Checks, ReadOnce};
use crate::excerpt::excerpt;
use crate::resolve::{self, Request, Resolution, Universe};
use crate::source::accounts::{Accounts, read_ids};
use crate::source::dpkg::DpkgError;
use crate::source::dpkg::catalog::{Catalog, Provenance};

/// dpkg's statoverride database, relative to the sysroot.
const STATOVERRIDE: &str = "var/lib/dpkg/statoverride";

/// base-passwd's masters: the users and groups every Debian system has at fixed ids.
const MASTERS: [&str; 2] = [
    "usr/share/base-passwd/passwd.master",
    "usr/share/base-passwd/group.master",
];

/// An altered package of which no archive is at hand to take it from.
#[derive(Debug, thiserror::Error)]
#[error(
    "the host's {} {} has altered files ({}: {}), so the lock must take the package from \
     its archive, and {}",
    excerpt(&.alteration.name),
    excerpt(&.alteration.version),
    excerpt(&.alteration.path),
    .alteration.change,
    .remedy
)]
pub struct AlteredError {
    /// What the host changed.
    pub alteration: Box<Alteration>,
    /// Why no archive is at hand, and what to do.
    pub remedy: String,
}

/// One installed package's altered path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alteration {
    /// Universe index of the installed package.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its architecture.
    pub arch: String,
    /// The first path of it the host altered.
    pub path: String,
    /// What the host made of it (`a statoverride makes it root:ssl-cert 0710`).
    pub change: String,
}

/// The host's record of what it altered, and the installed packages found altered.
pub struct Altered {
    /// Path -> `owner group mode` of dpkg's statoverrides.
    overrides: HashMap<String, String>,
    static_users: HashSet<u32>,
    static_groups: HashSet<u32>,
    accounts: Accounts,
    sysroot: PathBuf,
    /// Installed packages already looked at.
    examined: HashSet<usize>,
    /// The altered ones, by universe index.
    found: BTreeMap<usize, Alteration>,
}

impl Altered {
    /// Reads the statoverrides, base-passwd's masters and the accounts under `sysroot`.
    /// Without masters, only root's id 0 counts as static.
    pub fn read(sysroot: &Path) -> Result<Altered> {
        let path = sysroot.join(STATOVERRIDE);
        let overrides = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .filter_map(|line| {
                    let fields: Vec<&str> = line.splitn(4, ' ').collect();
                    let [user, group, mode, path] = fields[..] else {
                        return None;
                    };
                    Some((path.to_string(), format!("{user}:{group} {mode:0>4}")))
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => return Err(CompileError::Io { path, source }),
        };
        let [users, groups] = MASTERS.map(|master| read_ids(&sysroot.join(master)));
        let fixed =
            |ids: HashMap<u32, String>| -> HashSet<u32> { ids.into_keys().chain([0]).collect() };
        Ok(Altered {
            overrides,
            static_users: fixed(users?),
            static_groups: fixed(groups?),
            accounts: Accounts::read(sysroot)?,
            sysroot: sysroot.to_path_buf(),
            examined: HashSet::new(),
            found: BTreeMap::new(),
        })
    }

    /// Resolves `request`, adding every altered installed package it chooses to the
    /// packages it avoids and resolving again, until it chooses none it has not
    /// examined.
    pub fn resolve(
        &mut self,
        catalog: &Catalog,
        universe: &Universe,
        request: &mut Request,
        read: &ReadOnce,
    ) -> Result<Resolution> {
        loop {
            let resolution = resolve::resolve(universe, request)?;
            let fresh: Vec<usize> = (resolution.chosen.iter())
                .map(|c| c.index)
                .filter(|&i| matches!(catalog.provenance(i), Provenance::Installed(_)))
                .filter(|&i| self.examined.insert(i))
                .collect();
            if fresh.is_empty() {
                // A turn that chose no installed package not yet examined: no threads
                // to start.
                return Ok(resolution);
            }
            let checks = read.checks(&self.sysroot)?;
            // Reading every file of a cold host waits on the disk, not the CPU.
            let examined = crate::io_pool::in_io_pool(|| {
                (fresh.par_iter())
                    .map(|&i| self.examine(catalog, i, checks))
                    .collect::<Result<Vec<_>, _>>()
            })?;
            let found: Vec<Alteration> = examined.into_iter().flatten().collect();
            if found.is_empty() {
                return Ok(resolution);
            }
            for alteration in found {
                request.avoid.insert(alteration.index);
                self.found.insert(alteration.index, alteration);
            }
        }
    }

    /// The first altered path of installed package `index`: one with a statoverride,
    /// else one owned by an id no static account has, else a file whose bytes changed.
    fn examine(
        &self,
        catalog: &Catalog,
        index: usize,
        checks: &Checks,
    ) -> Result<Option<Alteration>, DpkgError> {
        let Provenance::Installed(i) = catalog.provenance(index) else {
            return Ok(None);
        };
        let installed = &catalog.installed.packages[i];
        let found = (installed.owned()?.files.iter()).find_map(|path| {
            if let Some(set) = self.overrides.get(path) {
                return Some((path, format!("a statoverride makes it {set}")));
            }
            let meta = std::fs::symlink_metadata(self.sysroot.join(path.trim_start_matches('/')));
            let meta = meta.ok()?;
            let (uid, gid) = (meta.uid(), meta.gid());
            if self.static_users.contains(&uid) && self.static_groups.contains(&gid) {
                return None;
            }
            let name = |name: &str, id: u32| match name {
                "" => id.to_string(),
                name => name.to_string(),
            };
            Some((
                path,
                format!(
                    "the host has it owned by {}:{} ({uid}:{gid}), mode {:04o}, ids a script made",
                    name(self.accounts.user(uid), uid),
                    name(self.accounts.group(gid), gid),
                    meta.mode() & 0o7777
                ),
            ))
        });
        let found = match found {
            Some((path, change)) => Some((path.clone(), change)),
            None => {
                let changed = checks.changed(&self.sysroot, &catalog.installed, i)?;
                Option::clone(&changed).map(|c| (c.path, c.what))
            }
        };
        let p = &installed.package;
        Ok(found.map(|(path, change)| Alteration {
            index,
            name: p.name.clone(),
            version: p.version.clone(),
            arch: p.arch.clone(),
            path,
            change,
        }))
    }

    /// Checks that every altered package `built` holds comes from an archive compile
    /// can use, and says which version replaced the host's. `offline` forbids taking an
    /// archive from apt's lists.
    pub fn check(
        &self,
        built: &Resolution,
        universe: &Universe,
        catalog: &Catalog,
        offline: bool,
    ) -> Result<Vec<String>, AlteredError> {
        let mut warnings = Vec::new();
        for alteration in self.found.values() {
            let Some(chosen) = (built.chosen.iter()).map(|c| c.index).find(|&i| {
                let p = universe.packages()[i];
                p.name == alteration.name && p.arch == alteration.arch
            }) else {
                continue;
            };
            let deb = format!(
                "{}_{}_{}.deb",
                alteration.name, alteration.version, alteration.arch
            );
            let version = &universe.packages()[chosen].version;
            let refuse = |remedy: String| AlteredError {
                alteration: Box::new(alteration.clone()),
                remedy,
            };
            let from = match catalog.provenance(chosen) {
                Provenance::Installed(_) => {
                    return Err(refuse(format!(
                        "neither a pool nor apt's lists hold {}: put {deb} in a pool (--pool DIR), \
                         or run apt-get update",
                        excerpt(&alteration.name)
                    )));
                }
                Provenance::Apt(_) if offline => {
                    return Err(refuse(format!(
                        "--offline forbids downloading {}={} from apt's lists: put {deb} in a \
                         pool (--pool DIR), or drop --offline",
                        excerpt(&alteration.name),
                        excerpt(version)
                    )));
                }
                Provenance::Apt(_) => "apt's lists",
                Provenance::Pool(_) => "the pool",
            };
            let taken = if *version == alteration.version {
                format!("the lock takes that version from {from}")
            } else {
                format!("no archive holds that version: the lock takes {version} from {from}")
            };
            warnings.push(format!(
                "the host's {} {} has altered files ({}: {}); {taken}",
                alteration.name, alteration.version, alteration.path, alteration.change
            ));
        }
        Ok(warnings)
    }
}
