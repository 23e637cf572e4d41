//! Compiling one recipe into a lock: resolve over the catalog, gather the chosen
//! packages' entries (scanned on the host, or read from their archives), stage them
//! unpacked, configure them with their own maintainer scripts, capture the configured
//! tree, add the machine files and the group's own files, and assemble.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use md5::Digest;

use crate::error::{Error, Result, excerpt};
use crate::lang::Site;
use crate::lock::extra::{self, ExtraError, Layers};
use crate::lock::scan::{Accounts, scan_installed};
use crate::lock::{self, FileEntry, FileKind, Lock, LockedPackage, Parts, Subtrees};
use crate::materialise::{self, MaterialiseError};
use crate::resolve::{self, RESOLVER_VERSION, Request, Universe, Wanted};
use crate::source::apt::{self, AptError, AptGet};
use crate::source::catalog::{Catalog, Provenance};
use crate::source::deb::{DebArchive, canonical_usrmerge};
use crate::source::dpkg::Conffile;
use crate::system::{self, PackageRecord};
use crate::workspace::Recipe;

mod capture;
mod configure;
mod setup;
mod stage;

pub use capture::CaptureError;
pub use configure::ConfigureError;
pub use setup::SetupError;

/// base-passwd's master of `/etc/group`, which fixes the `tty` group of `/dev`.
const MASTER_GROUP: &str = "/usr/share/base-passwd/group.master";

/// Where a compile reads and fetches.
pub struct Settings {
    /// The root under which host packages and files are read.
    pub sysroot: PathBuf,
    /// Where archives fetched from apt's lists are kept (`store/pool`).
    pub pool_dir: PathBuf,
    /// Forbid fetching: a package known only from apt's lists is an error.
    pub offline: bool,
    /// Where the configure stage stages trees (`store/`).
    pub scratch: PathBuf,
}

/// A lock ready to store, with the bytes its generated and archive entries point at.
pub struct Compiled {
    /// The lock.
    pub lock: Lock,
    /// Paths dpkg lists that the host lacks: (package, path).
    pub missing: Vec<(String, String)>,
    /// Things the user should know about the lock.
    pub warnings: Vec<String>,
    /// Contents for the blob store.
    pub blobs: Vec<Vec<u8>>,
}

/// A chosen package that comes from an archive, read once.
struct ArchivePackage {
    archive: DebArchive,
    /// Paths as dpkg lists them (the archive's names, `/` left out).
    listed: Vec<String>,
    /// Entries at their merged-/usr paths.
    entries: Vec<FileEntry>,
    /// Bytes of the files compile itself reads (conffiles, base-passwd's group master),
    /// by merged-/usr path; the rest stays in the archive.
    contents: HashMap<String, Vec<u8>>,
    /// The status stanza dpkg would write after installing it.
    stanza: String,
    conffiles: Vec<Conffile>,
    /// The archive's md5sums, or, when it ships none, the ones dpkg computes as it
    /// unpacks (`dpkg --audit` calls a package without them broken).
    md5sums: BTreeMap<String, String>,
}

impl ArchivePackage {
    /// Reads the archive, keeping the bytes compile reads; with `every_file`, all of
    /// them (trimming to `paths` reads any file that may be a program).
    fn read(archive: DebArchive, every_file: bool) -> Result<ArchivePackage> {
        let conffile_paths: BTreeSet<&str> = archive.conffiles.iter().map(String::as_str).collect();
        let sums_missing = archive.md5sums.is_empty();
        let (raw, contents) = archive.entries_keeping(|path| {
            every_file
                || sums_missing
                || conffile_paths.contains(path)
                || canonical_usrmerge(path) == MASTER_GROUP
        })?;
        // Debian's md5sums leave conffiles out; dpkg records their MD5 in `Conffiles`.
        let conffile_md5: HashMap<&str, String> = contents
            .iter()
            .filter(|(path, _)| conffile_paths.contains(path.as_str()))
            .map(|(path, bytes)| (path.as_str(), hex::encode(md5::Md5::digest(bytes))))
            .collect();
        let listed = raw
            .iter()
            .filter(|e| e.path != "/")
            .map(|e| e.path.clone())
            .collect();
        let entries = raw
            .into_iter()
            .map(|mut e| {
                e.path = canonical_usrmerge(&e.path);
                if e.kind == FileKind::Hardlink {
                    e.target = e.target.map(|t| canonical_usrmerge(&t));
                }
                e
            })
            .collect();
        let conffiles: Vec<Conffile> = archive
            .conffiles
            .iter()
            .map(|path| Conffile {
                path: path.clone(),
                md5: conffile_md5
                    .get(path.as_str())
                    .cloned()
                    .unwrap_or_else(|| "newconffile".to_string()),
                obsolete: false,
            })
            .collect();
        let stanza = system::installed_stanza(&archive.control, &conffiles);
        let md5sums = if sums_missing {
            (contents.iter())
                .map(|(path, bytes)| (path.clone(), hex::encode(md5::Md5::digest(bytes))))
                .collect()
        } else {
            archive.md5sums.clone()
        };
        let contents = contents
            .into_iter()
            .map(|(path, bytes)| (canonical_usrmerge(&path), bytes))
            .collect();
        Ok(ArchivePackage {
            archive,
            listed,
            entries,
            contents,
            stanza,
            conffiles,
            md5sums,
        })
    }

    fn record(&self) -> PackageRecord<'_> {
        let p = &self.archive.package;
        PackageRecord {
            name: &p.name,
            arch: &p.arch,
            multi_arch_same: p.multi_arch == crate::source::MultiArch::Same,
            stanza: &self.stanza,
            files: &self.listed,
            md5sums: &self.md5sums,
            conffiles: &self.conffiles,
            info: Vec::new(),
        }
    }
}

/// The chosen packages' file entries with the bytes that only archives hold.
struct Tree {
    /// Sorted by path.
    entries: Vec<FileEntry>,
    /// What the user should know about the tree (modified conffiles).
    warnings: Vec<String>,
    /// Bytes compile reads that the host does not hold at the entry's path (archive
    /// files, packaged conffiles), by path.
    contents: HashMap<String, Vec<u8>>,
    /// Paths whose locked bytes are a packaged conffile replacing the host's modified
    /// one: kept in the blob store, since the host cannot supply them.
    pristine: Vec<String>,
    missing: Vec<(String, String)>,
}

impl Tree {
    /// The bytes of `entry` of the tree: compile's copy when it read them from an
    /// archive (or took a packaged conffile), else the host file under `sysroot` at the
    /// entry's origin (a diverted file's real place). A hard link's are its target's.
    fn bytes(&self, sysroot: &Path, entry: &FileEntry) -> std::io::Result<Vec<u8>> {
        let path = match entry.kind {
            FileKind::Hardlink => entry.target.as_deref().unwrap_or(&entry.path),
            _ => &entry.path,
        };
        match self.contents.get(path) {
            Some(bytes) => Ok(bytes.clone()),
            None => {
                let at = entry.origin.as_deref().unwrap_or(path);
                std::fs::read(sysroot.join(at.trim_start_matches('/')))
            }
        }
    }
}

/// Compiles one recipe.
pub fn compile_recipe(
    settings: &Settings,
    recipe: &Recipe,
    catalog: &Catalog,
    universe: &Universe,
    accounts: &Accounts,
) -> Result<Compiled> {
    let request = Request {
        wanted: recipe
            .packages
            .iter()
            .map(|p| Wanted {
                name: p.name.clone(),
                constraint: p.constraint.clone(),
                reason: p.reason.clone(),
                root: recipe.group.clone(),
            })
            .collect(),
        removes: recipe.removes.iter().map(|r| r.name.clone()).collect(),
        essential: true,
    };
    let resolution = resolve::resolve(universe, &request)?;
    let mut warnings = Vec::new();
    if !recipe.flavor.flag("kernel") {
        refuse_kernel(recipe, universe, &resolution)?;
    } else if !(resolution.chosen.iter()).any(|c| is_kernel(universe.packages()[c.index])) {
        warnings.push(format!(
            "group {} has no kernel for flavor {}, so its image cannot boot: add a kernel \
             package under `when kernel {{ package linux-image-amd64 }}`",
            recipe.group,
            recipe.flavor.canonical()
        ));
    }
    // Maintainer scripts may use any essential package (`sed`, `grep`): one the group
    // removes is there while the tree is configured, and purged after, as a minimal
    // image is made with dpkg. The tree is built from that fuller closure.
    let essential_removed: Vec<&str> = (recipe.removes.iter())
        .map(|r| r.name.as_str())
        .filter(|name| (universe.packages().iter()).any(|p| p.name == *name && p.essential))
        .collect();
    let fuller;
    let (built, purged) = if essential_removed.is_empty() {
        (&resolution, Vec::new())
    } else {
        // All removals wait for the purge: one may be what an essential package needs.
        let request = Request {
            removes: Vec::new(),
            ..request.clone()
        };
        fuller = resolve::resolve(universe, &request)?;
        let kept: HashSet<usize> = resolution.chosen.iter().map(|c| c.index).collect();
        let gone: Vec<&crate::source::Package> = (fuller.chosen.iter())
            .filter(|c| !kept.contains(&c.index))
            .map(|c| universe.packages()[c.index])
            .collect();
        (&fuller, purge_order(&gone))
    };
    let mut installed = Vec::new();
    let mut archives = Vec::new();
    for chosen in &built.chosen {
        match catalog.provenance(chosen.index) {
            Provenance::Installed(i) => installed.push(i),
            Provenance::Pool(i) => archives.push(DebArchive::open(&catalog.pool.archives[i].path)?),
            Provenance::Apt(i) => {
                let wanted = &catalog.apt.packages[i];
                if settings.offline {
                    return Err(AptError::Offline {
                        name: wanted.package.name.clone(),
                        version: wanted.package.version.clone(),
                    }
                    .into());
                }
                let path = apt::fetch(wanted, &settings.pool_dir, &AptGet)?;
                archives.push(DebArchive::open(&path)?);
            }
        }
    }
    let archives: Vec<ArchivePackage> = archives
        .into_iter()
        .map(|archive| ArchivePackage::read(archive, !recipe.paths.is_empty()))
        .collect::<Result<_>>()?;
    let tree = gather(&settings.sysroot, catalog, &installed, &archives)?;
    let packages: Vec<LockedPackage> = resolution
        .chosen
        .iter()
        .map(|c| {
            let p = &universe.packages()[c.index];
            LockedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                source: p.origin.as_str().to_string(),
                reason: c.reason.clone(),
            }
        })
        .collect();
    let excludes = Subtrees::new(&recipe.excludes)?;
    let mut records: Vec<PackageRecord> = installed
        .iter()
        .map(|&i| PackageRecord::from(&catalog.installed.packages[i]))
        .collect();
    records.extend(archives.iter().map(ArchivePackage::record));
    let pristine: Vec<Vec<u8>> = (tree.pristine.iter())
        .filter_map(|p| tree.contents.get(p).cloned())
        .collect();
    let machine = if recipe.flavor.flag("kernel") {
        system::Machine::Virtual
    } else {
        system::Machine::Container
    };
    // A tree with dpkg is configured by its packages' own scripts; one without (a
    // hand-made package set) has no dpkg to run them, and is locked as unpacked.
    let dpkg = records.iter().find(|r| r.name == "dpkg").map(|r| r.stanza);
    if dpkg.is_some() {
        for (record, &i) in records.iter_mut().zip(&installed) {
            let package = &catalog.installed.packages[i];
            for name in crate::source::INFO_FILES {
                if let Some(text) = package.info_file(name)? {
                    record.info.push((name, text));
                }
            }
        }
        for (record, archive) in records[installed.len()..].iter_mut().zip(&archives) {
            for name in crate::source::INFO_FILES {
                if let Some(text) = archive.archive.info_file(name) {
                    record.info.push((name, text.to_string()));
                }
            }
        }
    }
    let has = |path: &str| (tree.entries.binary_search_by(|e| e.path.as_str().cmp(path))).is_ok();
    let setup = setup::requests(recipe, machine, has, dpkg.is_some())?;
    warnings.extend(setup.warnings.iter().cloned());
    let unpacked = match dpkg {
        Some(_) => system::Unpacked::Yes,
        None => system::Unpacked::No,
    };
    let system_files = unpacked_system(catalog, &records, &tree, &settings.sysroot, unpacked)?;
    let mut system_blobs = system_files.blobs;
    system_blobs.extend(pristine);
    let (package_entries, system_entries, mut blobs, configure_warnings, accounts) = match dpkg {
        Some(dpkg) => {
            let staging = lock::assemble(parts(
                recipe,
                packages.clone(),
                tree.entries.clone(),
                system_files.entries,
            ))?;
            let mut pools: Vec<PathBuf> = (archives.iter())
                .filter_map(|a| a.archive.path.parent().map(Path::to_path_buf))
                .collect();
            pools.sort();
            pools.dedup();
            let staged = stage::stage(
                &settings.scratch,
                &settings.sysroot,
                pools,
                &staging,
                &system_blobs,
            )?;
            setup::place_units(recipe, &staged.root, staged.ids)?;
            let version = dpkg
                .lines()
                .find_map(|l| l.strip_prefix("Version: "))
                .unwrap_or_default();
            configure::configure(
                &staged.root,
                staged.ids,
                &records
                    .iter()
                    .map(|r| configure::Unpacked {
                        name: r.name.to_string(),
                        arch: r.arch.to_string(),
                        multi_arch_same: r.multi_arch_same,
                    })
                    .collect::<Vec<_>>(),
                &configure::Environment {
                    source_date_epoch: 0,
                    dpkg_version: version,
                    preseeds: &setup.preseeds,
                    asked: &setup.asked,
                    purge: &purged,
                },
                &staged.log,
            )?;
            let captured = capture::capture(&staged.root, staged.ids, &staging.files)?;
            let accounts = Accounts::read(&staged.root)?;
            let mut warnings = staged.warnings.clone();
            warnings.extend((captured.strangers.iter()).map(|s| {
                format!(
                    "the configured tree has files owned by {s}, which its accounts do not name"
                )
            }));
            let mut blobs = system_blobs;
            blobs.extend(captured.blobs);
            (captured.entries, Vec::new(), blobs, warnings, accounts)
        }
        None => {
            let warnings = vec![format!(
                "group {} is not configured: its closure has no dpkg",
                recipe.group
            )];
            (
                tree.entries.clone(),
                system_files.entries,
                system_blobs,
                warnings,
                accounts.clone(),
            )
        }
    };
    warnings.extend(configure_warnings);
    let accounts = &accounts;
    let present = |path: &str| package_entries.iter().any(|e| e.path == path);
    let machine_files = system::machine_files(machine, present);
    let mut group_files = system_entries;
    group_files.extend(machine_files.entries);
    blobs.extend(machine_files.blobs);
    // Hostfiles, then overlays, then `file` statements: the most specific statement wins
    // at a path (the recipe keeps each kind in its own list, so this is the order).
    // What the statements are laid over: the packages' entries that stay (an excluded
    // one cannot be cut off) and the generated system files.
    let mut layers = Layers::new(
        (package_entries.iter())
            .filter(|e| !excludes.matches(&e.path))
            .chain(&group_files),
    );
    let hostfiles = (recipe.hostfiles.iter()).flat_map(|h| {
        (h.globs.iter()).map(|glob| (extra::Statement::Hostfile(glob.clone()), h.secret, &h.site))
    });
    let overlays = (recipe.overlays.iter())
        .map(|o| (extra::Statement::Overlay(o.path.clone()), o.secret, &o.site));
    for (statement, secret, site) in hostfiles.chain(overlays) {
        let made = match &statement {
            extra::Statement::Hostfile(glob) => extra::hostfiles(
                &settings.sysroot,
                std::slice::from_ref(glob),
                accounts,
                secret,
            ),
            extra::Statement::Overlay(path) => extra::overlay(path, accounts, secret),
        };
        let made = made
            .and_then(|made| layers.add(&statement, &made).map(|()| made))
            .map_err(|err| at_statement(err, site))?;
        group_files.extend(made.entries);
        blobs.extend(made.blobs);
    }
    for file in &recipe.files {
        let uid = accounts.uid_of(&file.user).ok_or_else(|| {
            Error::Usage(format!(
                "{}: owner `{}` of {} is not a user of the system (etc/passwd under {})",
                file.location,
                excerpt(&file.user),
                excerpt(&file.path),
                settings.sysroot.display()
            ))
        })?;
        let gid = accounts.gid_of(&file.group).ok_or_else(|| {
            Error::Usage(format!(
                "{}: group `{}` of {} is not a group of the system (etc/group under {})",
                file.location,
                excerpt(&file.group),
                excerpt(&file.path),
                settings.sysroot.display()
            ))
        })?;
        group_files.push(FileEntry {
            kind: FileKind::File,
            mode: file.mode,
            uid,
            gid,
            user: file.user.clone(),
            group: file.group.clone(),
            size: file.content.len() as u64,
            digest: Some(blake3::hash(&file.content).to_hex().to_string()),
            ..FileEntry::directory(&file.path)
        });
    }
    let mut lock = lock::assemble(parts(recipe, packages, package_entries, group_files))?;
    if !recipe.paths.is_empty() {
        // Bytes of entries no package owns are the blobs compile made for them.
        let made: HashMap<String, &[u8]> = (blobs.iter().map(Vec::as_slice))
            .chain(recipe.files.iter().map(|f| f.content.as_slice()))
            .map(|b| (blake3::hash(b).to_hex().to_string(), b))
            .collect();
        let content = |entry: &FileEntry| match (&entry.package, entry.digest.as_deref()) {
            (_, Some(digest)) if made.contains_key(digest) => Ok(made[digest].to_vec()),
            (Some(_), _) => tree.bytes(&settings.sysroot, entry),
            (None, Some(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no bytes were made for it",
            )),
            (None, None) => Ok(Vec::new()),
        };
        lock::trim(&mut lock, &Subtrees::new(&recipe.paths)?, content)?;
        lock.normalise();
    }
    // The archives' and statements' own checks see one source at a time; what only
    // their sum gets wrong (one package's files below another's symlink) is caught
    // here, before the lock is stored.
    materialise::check_lock(&lock).map_err(|err| match err {
        MaterialiseError::InvalidLock { path, problem } => {
            let package =
                (lock.files.iter().find(|e| e.path == path)).and_then(|e| e.package.clone());
            Error::from(UnwritableTree {
                path,
                package,
                problem,
            })
        }
        other => Error::from(other),
    })?;
    warnings.extend(tree.warnings);
    // Only the bytes the lock points at: the stage's own that configuration replaced
    // (the unpacked status) are not kept.
    let wanted: HashSet<&str> = (lock.files.iter())
        .filter_map(|e| e.digest.as_deref())
        .collect();
    let blobs = (blobs.into_iter())
        .chain(recipe.files.iter().map(|f| f.content.clone()))
        .filter(|b| wanted.contains(blake3::hash(b).to_hex().as_str()))
        .collect();
    Ok(Compiled {
        lock,
        missing: tree.missing,
        warnings,
        blobs,
    })
}

/// A statement's error, pointing at the statement when the fix is there: a secret it
/// would copy without saying `secret=#true`.
fn at_statement(err: ExtraError, site: &Site) -> Error {
    match err {
        secret @ ExtraError::Secret { .. } => Error::from(site.invalid(
            secret.to_string(),
            "copies a secret",
            Some(
                "if the appliance is meant to carry it, write `secret=#true` on this statement \
                 (the blob store keeps what it copies private)"
                    .to_string(),
            ),
        )),
        other => Error::from(other),
    }
}

/// The parts of `recipe`'s lock with these packages and entries: the staged tree's and
/// the final one's.
fn parts(
    recipe: &Recipe,
    packages: Vec<LockedPackage>,
    package_entries: Vec<FileEntry>,
    group_files: Vec<FileEntry>,
) -> Parts {
    Parts {
        group: recipe.group.clone(),
        version: recipe.version.clone(),
        flavor: recipe.flavor.canonical(),
        inputs: lock::Inputs {
            group_files: recipe.inputs.clone(),
            resolver: RESOLVER_VERSION,
        },
        cmd: recipe.cmd.clone(),
        modules: recipe.modules.clone(),
        packages,
        package_entries,
        excludes: recipe.excludes.clone(),
        group_files,
    }
}

/// The order to purge `packages` in, one at a time: what the others depend on after
/// them, and essential packages, whose tools (`update-rc.d`, `sed`) scripts use without
/// saying so, after all the rest.
fn purge_order(packages: &[&crate::source::Package]) -> Vec<String> {
    let needed_by = |p: &crate::source::Package| {
        (packages.iter())
            .filter(|other| {
                (other.depends.iter().chain(&other.pre_depends))
                    .flatten()
                    .any(|r| r.name == p.name)
            })
            .count()
    };
    let mut order: Vec<(bool, usize, &str)> = (packages.iter())
        .map(|p| (p.essential, needed_by(p), p.name.as_str()))
        .collect();
    order.sort();
    order
        .into_iter()
        .map(|(_, _, name)| name.to_string())
        .collect()
}

/// A compiled tree that no output could be written from, such as one package's file
/// below another package's symlink: the lock is not stored.
#[derive(Debug, thiserror::Error)]
#[error(
    "the compiled tree cannot be materialised: entry {} ({}): {problem}",
    excerpt(.path),
    package.as_ref().map_or_else(|| "no package".to_string(), |p| format!("package {}", excerpt(p)))
)]
pub struct UnwritableTree {
    /// The entry's path.
    pub path: String,
    /// The package it comes from; `None` for the group's and generated entries.
    pub package: Option<String>,
    /// What is wrong with it.
    pub problem: crate::materialise::LockProblem,
}

/// A kernel package in the closure of a flavor whose `kernel` flag is off: the group
/// asked for it (named it, or named a package that depends on it) where no kernel may go.
#[derive(Debug, thiserror::Error)]
#[error(
    "{location}: package {} brings a kernel ({}) into flavor {flavor}, whose kernel flag is off ({})",
    excerpt(.named),
    excerpt(.kernel),
    chain.iter().map(|link| excerpt(link).to_string()).collect::<Vec<_>>().join(" -> ")
)]
pub struct UnwantedKernel {
    /// The `package` statement that asked for it (`groups/web.kdl:7:5`), or `essential`.
    pub location: String,
    /// The package that statement names.
    pub named: String,
    /// The kernel package.
    pub kernel: String,
    /// The flavor's canonical string.
    pub flavor: String,
    /// The group and the packages from the named one down to the kernel.
    pub chain: Vec<String>,
}

impl miette::Diagnostic for UnwantedKernel {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(format!(
            "put `package {}` under `when kernel {{ ... }}`, or `remove {}`",
            self.named, self.kernel
        )))
    }
}

/// Whether `package` is a kernel: Debian's kernel images are `linux-image-*` packages
/// (the versioned image and the metapackages that pull it in) and provide `linux-image`.
fn is_kernel(package: &crate::source::Package) -> bool {
    package.name.starts_with("linux-image-")
        || package.provides.iter().any(|p| p.name == "linux-image")
}

/// Refuses a resolution that holds a kernel, naming the group line that brought it in.
fn refuse_kernel(
    recipe: &Recipe,
    universe: &Universe,
    resolution: &resolve::Resolution,
) -> Result<(), UnwantedKernel> {
    let packages = universe.packages();
    let Some(kernel) = resolution
        .chosen
        .iter()
        .map(|c| c.index)
        .find(|&i| is_kernel(packages[i]))
    else {
        return Ok(());
    };
    let chain = resolution.chain(kernel);
    let first = chain.first().map_or(kernel, |&i| i);
    let named = packages[first].name.clone();
    let request = recipe
        .packages
        .iter()
        .find(|r| r.name == named || packages[first].provides.iter().any(|p| p.name == r.name));
    let location = request.map_or_else(|| "essential".to_string(), |r| r.location.to_string());
    let mut names = vec![recipe.group.clone()];
    names.extend(chain.iter().map(|&i| packages[i].name.clone()));
    Err(UnwantedKernel {
        location,
        named: request.map_or(named, |r| r.name.clone()),
        kernel: packages[kernel].name.clone(),
        flavor: recipe.flavor.canonical(),
        chain: names,
    })
}

/// The entries of the chosen packages: installed ones scanned on the host, archive ones
/// as their archives say. One entry per path, installed first; merged /usr's top-level
/// links are added when archives bring `/usr/bin` and friends and nothing else did.
fn gather(
    sysroot: &Path,
    catalog: &Catalog,
    installed: &[usize],
    archives: &[ArchivePackage],
) -> Result<Tree> {
    let scan = scan_installed(sysroot, &catalog.installed, installed)?;
    let mut entries: BTreeMap<String, FileEntry> = scan
        .entries
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    let mut contents = HashMap::new();
    for package in archives {
        for entry in &package.entries {
            if entries.contains_key(&entry.path) {
                continue;
            }
            if let Some(bytes) = package.contents.get(&entry.path) {
                contents.insert(entry.path.clone(), bytes.clone());
            }
            entries.insert(entry.path.clone(), entry.clone());
        }
    }
    let (warnings, pristine) =
        pristine_conffiles(sysroot, catalog, installed, &mut entries, &mut contents)?;
    if !archives.is_empty() {
        for top in ["bin", "sbin", "lib", "lib64"] {
            let usr = format!("/usr/{top}");
            let link = format!("/{top}");
            if entries.get(&usr).is_some_and(|e| e.kind == FileKind::Dir)
                && !entries.contains_key(&link)
            {
                entries.insert(
                    link.clone(),
                    FileEntry {
                        kind: FileKind::Symlink,
                        mode: 0o777,
                        target: Some(format!("usr/{top}")),
                        ..FileEntry::directory(&link)
                    },
                );
            }
        }
    }
    Ok(Tree {
        entries: entries.into_values().collect(),
        contents,
        pristine,
        missing: scan.missing,
        warnings,
    })
}

/// Conffiles the host has modified (their MD5 differs from the one dpkg recorded) are
/// taken as packaged when the package's archive at the same version is in the pool, and
/// kept as the host has them otherwise; either way the user is told. Returns the
/// warnings and the paths that took the packaged bytes.
fn pristine_conffiles(
    sysroot: &Path,
    catalog: &Catalog,
    installed: &[usize],
    entries: &mut BTreeMap<String, FileEntry>,
    contents: &mut HashMap<String, Vec<u8>>,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut pristine_paths = Vec::new();
    for &i in installed {
        let installed = &catalog.installed.packages[i];
        let p = &installed.package;
        let mut archive_files: Option<HashMap<String, Vec<u8>>> = None;
        for conffile in installed.conffiles.iter().filter(|c| !c.obsolete) {
            let host = sysroot.join(conffile.path.trim_start_matches('/'));
            let bytes = match std::fs::read(&host) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::Io { path: host, source }),
            };
            if hex::encode(md5::Md5::digest(&bytes)) == conffile.md5 {
                continue;
            }
            let Some(entry) = entries.get_mut(&conffile.path) else {
                continue;
            };
            if archive_files.is_none() {
                archive_files = match catalog.pool.find(&p.name, &p.version, &p.arch) {
                    Some(archive) => {
                        let conffiles: BTreeSet<&str> = installed
                            .conffiles
                            .iter()
                            .map(|c| c.path.as_str())
                            .collect();
                        Some(archive.entries_keeping(|path| conffiles.contains(path))?.1)
                    }
                    None => Some(HashMap::new()),
                };
            }
            match archive_files.as_ref().and_then(|f| f.get(&conffile.path)) {
                Some(pristine) => {
                    entry.size = pristine.len() as u64;
                    entry.digest = Some(blake3::hash(pristine).to_hex().to_string());
                    contents.insert(conffile.path.clone(), pristine.clone());
                    pristine_paths.push(conffile.path.clone());
                    warnings.push(format!(
                        "conffile {} of {} was modified on the host: the lock takes the packaged version",
                        conffile.path, p.name
                    ));
                }
                None => warnings.push(format!(
                    "conffile {} of {} was modified on the host: the lock takes the host's version (put {}_{}_{}.deb in a pool to take the packaged one)",
                    conffile.path, p.name, p.name, p.version, p.arch
                )),
            }
        }
    }
    Ok((warnings, pristine_paths))
}

/// The dpkg database of the chosen packages, each `unpacked` or not, with a minimal
/// `/dev`: what the packages' files need around them to be a tree dpkg can configure.
fn unpacked_system(
    catalog: &Catalog,
    records: &[PackageRecord],
    tree: &Tree,
    sysroot: &Path,
    unpacked: system::Unpacked,
) -> Result<system::Generated> {
    let mut generated = system::dpkg_state(records, &catalog.installed.diversions, unpacked);
    // /dev/tty and the ptys belong to group tty, whose id base-passwd's master fixes.
    let master = (tree
        .entries
        .binary_search_by(|e| e.path.as_str().cmp(MASTER_GROUP))
        .ok())
    .map(|at| tree.bytes(sysroot, &tree.entries[at]))
    .transpose()
    .map_err(|source| Error::Io {
        path: sysroot.join(MASTER_GROUP.trim_start_matches('/')),
        source,
    })?;
    let tty = master.and_then(|m| system::group_id(&String::from_utf8_lossy(&m), "tty"));
    generated.extend(system::dev(tty));
    Ok(generated)
}
