//! The gather stage of an RPM compile: each chosen package's entries as its header
//! lists them, with their BLAKE3 from the bytes (the host's installed files, checked
//! against rpm's own digests, or the archive's payload, checked as it is read), its
//! header blob for the tree's rpmdb, its scriptlets and its `sysusers.d` files.
//!
//! `%ghost` files are in the rpmdb only, as rpm leaves them. An installed package whose
//! files the host changed is taken from its archive at the same version when a pool has
//! it; otherwise the compile is refused, naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::scriptlets::Scriptlet as Step;
use super::sysusers::SysusersFile;
use crate::compile::error::{CompileError, Result};
use crate::compile::gather::Tree;
use crate::lock::{Documentation, FileEntry, FileKind};
use crate::source::rpm::catalog::{RpmCatalog, RpmProvenance};
use crate::source::rpm::{
    HeaderFile, RpmArchive, RpmError, RpmHeader, RpmPackage, Scriptlet, Scriptlets, digest,
};

/// Why an installed package's files cannot be taken from the host.
#[derive(Debug, thiserror::Error)]
pub enum HostDrift {
    /// A file differs from what its package installed, and no pool has the package's
    /// archive to take it from.
    #[error(
        "{path} of {package} {why}, and no pool folder holds {package}.rpm to take it \
         from: restore the file (`rpm --root ROOT --dbpath /var/lib/rpm -V` names every \
         change) or put the archive in a pool (--pool DIR)"
    )]
    Changed {
        /// The package, `name-evr.arch`.
        package: String,
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The header could not be read.
    #[error(transparent)]
    Rpm(#[from] RpmError),
}

/// Where `sysusers.d` files are.
const SYSUSERS: &str = "/usr/lib/sysusers.d/";

/// What the chosen packages bring, in install order.
pub struct Gathered {
    /// Their files.
    pub tree: Tree,
    /// Their header blobs, for the tree's rpmdb.
    pub headers: Vec<Vec<u8>>,
    /// Each package's name and scriptlets.
    scriptlets: Vec<(String, Scriptlets)>,
    /// Their `sysusers.d` files.
    pub sysusers: Vec<SysusersFile>,
    /// The folders of the archives read.
    archives: Vec<PathBuf>,
    /// The text of the tree's `/etc/group`.
    group_file: Option<String>,
}

impl Gathered {
    /// The folders the archives are in, for the stage to take their bytes from.
    pub fn pools(&self) -> Vec<PathBuf> {
        let mut pools = self.archives.clone();
        pools.sort();
        pools.dedup();
        pools
    }

    /// The id the tree's own `/etc/group` gives `name`.
    pub fn group_id(&self, name: &str) -> Option<u32> {
        crate::system::group_id(self.group_file.as_deref()?, name)
    }

    /// The scriptlets in rpm's order for a fresh install: each package's `%pre` and
    /// `%post`, the `%filetriggerin` scripts, every `%posttrans`, the
    /// `%transfiletriggerin` scripts; a trigger gets the tree's paths it matches.
    pub fn steps(&self) -> Vec<Step> {
        let step = |what: String, s: &Scriptlet, args: &[&str], input: Option<String>| Step {
            what,
            program: s.program.clone(),
            body: s.body.clone(),
            // rpm passes the arguments to a script only: `%post -p /sbin/ldconfig` runs
            // the program alone.
            args: match s.body {
                Some(_) => args.iter().map(|a| a.to_string()).collect(),
                None => Vec::new(),
            },
            input,
        };
        let mut steps = Vec::new();
        for (name, s) in &self.scriptlets {
            if let Some(pre) = &s.pre {
                steps.push(step(format!("%pre of {name}"), pre, &["1"], None));
            }
            if let Some(post) = &s.post {
                steps.push(step(format!("%post of {name}"), post, &["1"], None));
            }
        }
        let triggers = |transaction: bool| {
            let mut found: Vec<(u32, &str, &Scriptlet, Vec<&str>)> = Vec::new();
            for (name, s) in &self.scriptlets {
                for t in s
                    .file_triggers
                    .iter()
                    .filter(|t| t.transaction == transaction)
                {
                    let matched: Vec<&str> = (self.tree.entries.iter())
                        .map(|e| e.path.as_str())
                        .filter(|p| {
                            t.prefixes
                                .iter()
                                .any(|prefix| p.starts_with(prefix.as_str()))
                        })
                        .collect();
                    if !matched.is_empty() {
                        found.push((t.priority, name, &t.script, matched));
                    }
                }
            }
            // Higher priority first; equal ones in install order (the sort is stable).
            found.sort_by_key(|t| std::cmp::Reverse(t.0));
            found
        };
        for (_, name, script, matched) in triggers(false) {
            let what = format!("%filetriggerin of {name}");
            steps.push(step(what, script, &["1", "1"], Some(lines(&matched))));
        }
        for (name, s) in &self.scriptlets {
            if let Some(posttrans) = &s.posttrans {
                steps.push(step(
                    format!("%posttrans of {name}"),
                    posttrans,
                    &["0"],
                    None,
                ));
            }
        }
        for (_, name, script, matched) in triggers(true) {
            let what = format!("%transfiletriggerin of {name}");
            steps.push(step(what, script, &["0"], Some(lines(&matched))));
        }
        steps
    }
}

/// The paths, one a line.
fn lines(paths: &[&str]) -> String {
    paths.iter().map(|p| format!("{p}\n")).collect()
}

/// Reads the packages of `order` (universe indices of `catalog`): entries, headers,
/// scriptlets; `every_file` keeps all archive bytes (the recipe trims to `paths`).
pub fn gather(
    sysroot: &Path,
    catalog: &RpmCatalog,
    order: &[usize],
    every_file: bool,
) -> Result<Gathered> {
    let mut entries: BTreeMap<String, FileEntry> = BTreeMap::new();
    let mut gathered = Gathered {
        tree: Tree::default(),
        headers: Vec::new(),
        scriptlets: Vec::new(),
        sysusers: Vec::new(),
        archives: Vec::new(),
        group_file: None,
    };
    for &index in order {
        let read = match catalog.provenance(index) {
            RpmProvenance::Installed(i) => {
                let installed = &catalog.installed[i];
                match from_host(sysroot, &installed.header) {
                    Ok(read) => read,
                    Err(drift) => {
                        let p = &installed.package;
                        let (HostDrift::Changed { path, why, .. }, Some(archive)) =
                            (&drift, catalog.candidates(&p.name, &p.evr, &p.arch).next())
                        else {
                            return Err(drift.into());
                        };
                        gathered.tree.warnings.push(format!(
                            "{path} of {} {why}: the package is taken from {}",
                            p.nevra(),
                            archive_path(archive)?.display()
                        ));
                        from_archive(archive, every_file, &mut gathered.archives)?
                    }
                }
            }
            RpmProvenance::Archive(i) => {
                from_archive(&catalog.archives[i], every_file, &mut gathered.archives)?
            }
        };
        let name = catalog.package(index).name.clone();
        for (file, digest) in read.files {
            let entry = entry(&file, &name, digest);
            if let Some(bytes) = read.kept.get(&file.path) {
                if is_sysusers(&file.path) {
                    gathered.sysusers.push(SysusersFile {
                        path: file.path.clone(),
                        package: name.clone(),
                        text: String::from_utf8_lossy(bytes).into_owned(),
                    });
                }
                if file.path == "/etc/group" && gathered.group_file.is_none() {
                    gathered.group_file = Some(String::from_utf8_lossy(bytes).into_owned());
                }
                if read.from_archive {
                    (gathered.tree.contents).insert(file.path.clone(), bytes.clone());
                }
            }
            entries.entry(file.path.clone()).or_insert(entry);
        }
        // An archive's header gets the tags rpm adds as it installs (install time 0).
        gathered.headers.push(match read.from_archive {
            true => crate::system::installed_blob(&read.header.blob(), 0)?,
            false => read.header.blob(),
        });
        gathered.scriptlets.push((name, read.header.scriptlets()?));
    }
    // rpm makes the folders a package's files need and no package owns, as root 0755.
    let unowned: Vec<String> = (entries.keys())
        .flat_map(|path| crate::lock::path::ancestors(path))
        .filter(|dir| !entries.contains_key(*dir))
        .map(str::to_string)
        .collect();
    for dir in unowned {
        entries.insert(dir.clone(), FileEntry::directory(&dir));
    }
    gathered.tree.entries = entries.into_values().collect();
    Ok(gathered)
}

/// One package's header and files with their BLAKE3, and the bytes compile reads.
struct Read {
    header: RpmHeader,
    /// Files that are not ghosts, with the BLAKE3 of each regular one.
    files: Vec<(HeaderFile, Option<String>)>,
    /// Bytes by path: `sysusers.d` files, `/etc/group`, or (with `every_file`) all.
    kept: std::collections::HashMap<String, Vec<u8>>,
    from_archive: bool,
}

/// Whether `path` is a `sysusers.d` file.
fn is_sysusers(path: &str) -> bool {
    path.starts_with(SYSUSERS) && path.ends_with(".conf")
}

/// Whether compile reads the bytes of `path`.
fn read_always(path: &str) -> bool {
    is_sysusers(path) || path == "/etc/group"
}

/// An installed package's files as the host holds them, each regular one checked
/// against the header's digest; a changed or missing one (not `%missingok`) is drift.
fn from_host(sysroot: &Path, header: &RpmHeader) -> std::result::Result<Read, HostDrift> {
    let package = header.nevra();
    let mut files = Vec::new();
    let mut kept = std::collections::HashMap::new();
    for file in header.files()? {
        if file.ghost {
            continue;
        }
        let digest = if file.kind == FileKind::File {
            let at = sysroot.join(file.path.trim_start_matches('/'));
            let drift = |why: String| HostDrift::Changed {
                package: package.clone(),
                path: file.path.clone(),
                why,
            };
            let bytes = match crate::no_follow::read(&at) {
                Ok(bytes) => bytes,
                Err(_) if file.missingok => continue,
                Err(e) => return Err(drift(format!("cannot be read on the host: {e}"))),
            };
            if let Some((algorithm, expected)) = &file.digest
                && digest(*algorithm, &bytes) != *expected
            {
                return Err(drift(
                    "differs on the host from its package's digest".into(),
                ));
            }
            if read_always(&file.path) {
                kept.insert(file.path.clone(), bytes.clone());
            }
            Some(blake3::hash(&bytes).to_hex().to_string())
        } else {
            None
        };
        files.push((file, digest));
    }
    Ok(Read {
        header: header.clone(),
        files,
        kept,
        from_archive: false,
    })
}

/// The archive of `package` (every package the catalog does not have installed has one).
fn archive_path(package: &RpmPackage) -> Result<&Path> {
    (package.archive.as_deref()).ok_or_else(|| CompileError::NoArchive {
        package: package.nevra(),
    })
}

/// A package's files as its archive holds them (checked while read); `dirs` gets the
/// archive's folder.
fn from_archive(package: &RpmPackage, every_file: bool, dirs: &mut Vec<PathBuf>) -> Result<Read> {
    let path = archive_path(package)?;
    if let Some(dir) = path.parent() {
        dirs.push(dir.to_path_buf());
    }
    let archive = RpmArchive::open_as(path, package)?;
    let mut digests = std::collections::HashMap::new();
    let mut kept = std::collections::HashMap::new();
    archive.for_each_file(|file, bytes| {
        digests.insert(file.path.clone(), blake3::hash(bytes).to_hex().to_string());
        if every_file || read_always(&file.path) {
            kept.insert(file.path.clone(), bytes.to_vec());
        }
        Ok(())
    })?;
    let files = (archive.header.files()?.into_iter())
        .filter(|f| !f.ghost)
        .map(|f| {
            let digest = digests.get(&f.path).cloned();
            (f, digest)
        })
        .collect();
    Ok(Read {
        header: archive.header.clone(),
        files,
        kept,
        from_archive: true,
    })
}

/// The lock entry of a header file of `package`; owners are names, their ids are the
/// configured tree's (0 until then).
fn entry(file: &HeaderFile, package: &str, digest: Option<String>) -> FileEntry {
    FileEntry {
        path: file.path.clone(),
        kind: file.kind,
        mode: file.mode,
        uid: 0,
        gid: 0,
        user: file.user.clone(),
        group: file.group.clone(),
        size: if file.kind == FileKind::File {
            file.size
        } else {
            0
        },
        digest: if file.kind == FileKind::File {
            digest
        } else {
            None
        },
        target: file.target.clone(),
        device: file.device,
        caps: file.caps.clone(),
        package: Some(package.to_string()),
        conffile: file.config,
        origin: None,
        // A hard link's member carries the time too, so no extractor stamps the shared
        // inode with another.
        mtime: matches!(file.kind, FileKind::File | FileKind::Hardlink).then_some(file.mtime),
        documentation: match file.kind {
            FileKind::Dir => None,
            _ if file.license => Some(Documentation::License),
            _ if file.doc => Some(Documentation::Doc),
            _ => None,
        },
    }
}
