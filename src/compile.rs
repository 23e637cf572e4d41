//! Compiling one recipe into a lock: resolve over the catalog, gather the chosen
//! packages' entries (scanned on the host, or read from their archives), add the system
//! state and the group's own files, and assemble.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use md5::Digest;

use crate::error::{Error, Result, excerpt};
use crate::lock::extra::{self, Layers};
use crate::lock::scan::{Accounts, scan_installed};
use crate::lock::{self, FileEntry, FileKind, Lock, LockedPackage, Parts, Subtrees};
use crate::materialise::{self, MaterialiseError};
use crate::resolve::{self, RESOLVER_VERSION, Request, Universe, Wanted};
use crate::source::apt::{self, AptError, AptGet};
use crate::source::catalog::{Catalog, Provenance};
use crate::source::deb::{DebArchive, DebError, canonical_usrmerge};
use crate::source::dpkg::Conffile;
use crate::system::{self, PackageRecord};
use crate::workspace::Recipe;

/// base-passwd's masters of `/etc/passwd` and `/etc/group`.
const MASTER_PASSWD: &str = "/usr/share/base-passwd/passwd.master";
const MASTER_GROUP: &str = "/usr/share/base-passwd/group.master";

/// Where a compile reads and fetches.
pub struct Settings {
    /// The root under which host packages and files are read.
    pub sysroot: PathBuf,
    /// Where archives fetched from apt's lists are kept (`store/pool`).
    pub pool_dir: PathBuf,
    /// Forbid fetching: a package known only from apt's lists is an error.
    pub offline: bool,
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
    /// Bytes of the files compile itself reads (conffiles, account masters, what
    /// ldconfig reads), by merged-/usr path; the rest stays in the archive.
    contents: HashMap<String, Vec<u8>>,
    /// The status stanza dpkg would write after installing it.
    stanza: String,
    conffiles: Vec<Conffile>,
}

impl ArchivePackage {
    /// Reads the archive, keeping the bytes compile reads; with `every_file`, all of
    /// them (trimming to `paths` reads any file that may be a program).
    fn read(archive: DebArchive, every_file: bool) -> Result<ArchivePackage> {
        let conffile_paths: BTreeSet<&str> = archive.conffiles.iter().map(String::as_str).collect();
        let (raw, contents) = archive.entries_keeping(|path| {
            every_file
                || conffile_paths.contains(path)
                || read_by_compile(&canonical_usrmerge(path))
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
            md5sums: &self.archive.md5sums,
            conffiles: &self.conffiles,
        }
    }
}

/// The chosen packages' `preinst` and `postinst` scripts, in package order: read for
/// what they would make (accounts, alternatives), never run.
#[derive(Default)]
struct Scripts {
    /// Of packages installed on the host, whose effects the host's state already shows.
    installed: Vec<String>,
    /// Of packages from archives, which never ran here.
    archives: Vec<String>,
}

/// What system files are made from: the chosen packages' records, their scripts and
/// the archives of those that come from one.
struct Chosen<'a> {
    records: &'a [PackageRecord<'a>],
    scripts: &'a Scripts,
    archives: &'a [ArchivePackage],
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
    if !recipe.flavor.flag("kernel") {
        refuse_kernel(recipe, universe, &resolution)?;
    }
    let mut installed = Vec::new();
    let mut archives = Vec::new();
    for chosen in &resolution.chosen {
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
    let mut tree = gather(&settings.sysroot, catalog, &installed, &archives)?;
    let packages = resolution
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
    // Accounts are made in preinst or postinst; read in package order, preinst first.
    let mut scripts = Scripts::default();
    for &i in &installed {
        for name in ["preinst", "postinst"] {
            scripts
                .installed
                .extend(catalog.installed.packages[i].maintainer_script(name)?);
        }
    }
    for archive in &archives {
        for name in ["preinst", "postinst"] {
            let script = archive.archive.maintainer_script(name);
            scripts.archives.extend(script.map(str::to_string));
        }
    }
    let chosen = Chosen {
        records: &records,
        scripts: &scripts,
        archives: &archives,
    };
    let system = system_files(
        settings,
        catalog,
        &chosen,
        &tree,
        &excludes,
        recipe.flavor.flag("kernel"),
    )?;
    let mut group_files = system.entries;
    let mut blobs = system.blobs;
    blobs.extend(
        tree.pristine
            .iter()
            .filter_map(|p| tree.contents.get(p).cloned()),
    );
    // Hostfiles, then overlays, then `file` statements: the most specific statement wins
    // at a path (the recipe keeps each kind in its own list, so this is the order).
    // What the statements are laid over: the packages' entries that stay (an excluded
    // one cannot be cut off) and the generated system files.
    let mut layers = Layers::new(
        (tree.entries.iter())
            .filter(|e| !excludes.matches(&e.path))
            .chain(&group_files),
    );
    let statements = recipe
        .hostfiles
        .iter()
        .map(|glob| extra::Statement::Hostfile(glob.clone()))
        .chain(
            recipe
                .overlays
                .iter()
                .cloned()
                .map(extra::Statement::Overlay),
        );
    for statement in statements {
        let made = match &statement {
            extra::Statement::Hostfile(glob) => {
                extra::hostfiles(&settings.sysroot, std::slice::from_ref(glob), accounts)
            }
            extra::Statement::Overlay(path) => extra::overlay(path, accounts),
        };
        let made = made.and_then(|made| layers.add(&statement, &made).map(|()| made))?;
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
    let package_entries = std::mem::take(&mut tree.entries);
    let mut lock = lock::assemble(Parts {
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
    })?;
    if !recipe.paths.is_empty() {
        // Bytes of entries no package owns are the blobs compile made for them.
        let made: HashMap<String, &[u8]> = (blobs.iter().map(Vec::as_slice))
            .chain(recipe.files.iter().map(|f| f.content.as_slice()))
            .map(|b| (blake3::hash(b).to_hex().to_string(), b))
            .collect();
        let content = |entry: &FileEntry| match (&entry.package, entry.digest.as_deref()) {
            (Some(_), _) => tree.bytes(&settings.sysroot, entry),
            (None, Some(digest)) => made.get(digest).map(|b| b.to_vec()).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no bytes were made for it")
            }),
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
    Ok(Compiled {
        lock,
        missing: tree.missing,
        warnings: tree.warnings,
        blobs: blobs
            .into_iter()
            .chain(recipe.files.iter().map(|f| f.content.clone()))
            .collect(),
    })
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

/// dpkg's database of the chosen packages and the accounts they use, generated from
/// what is known of them (status stanzas or control files, file lists, base-passwd's
/// masters, the host's passwd lines of users that owners and maintainer scripts name;
/// never the host's shadow files), a minimal /dev, the alternatives, the linker's cache
/// and the kernel's module dependencies.
fn system_files(
    settings: &Settings,
    catalog: &Catalog,
    chosen: &Chosen,
    tree: &Tree,
    excludes: &Subtrees,
    kernel: bool,
) -> Result<system::Generated> {
    let Chosen {
        records,
        scripts,
        archives,
    } = chosen;
    let mut generated = system::dpkg_state(records, &catalog.installed.diversions);
    let read_host = |rel: &str| -> Result<Option<String>> {
        let path = settings.sysroot.join(rel);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    };
    let read_tree = |path: &str| -> Result<Option<String>> {
        let Ok(at) = tree.entries.binary_search_by(|e| e.path.as_str().cmp(path)) else {
            return Ok(None);
        };
        match tree.bytes(&settings.sysroot, &tree.entries[at]) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: settings.sysroot.join(path.trim_start_matches('/')),
                source,
            }),
        }
    };
    let master_passwd = read_tree(MASTER_PASSWD)?;
    let master_group = read_tree(MASTER_GROUP)?;
    let mut users: BTreeSet<String> = tree.entries.iter().map(|e| e.user.clone()).collect();
    let groups: BTreeSet<String> = tree.entries.iter().map(|e| e.group.clone()).collect();
    let requests: Vec<system::AccountRequest> = (scripts.installed.iter())
        .chain(&scripts.archives)
        .flat_map(|s| system::script_accounts(s))
        .collect();
    for request in &requests {
        users.extend(request.names().into_iter().map(str::to_string));
    }
    let host_passwd = read_host("etc/passwd")?.unwrap_or_default();
    let host_group = read_host("etc/group")?.unwrap_or_default();
    let sources = system::AccountSources {
        master_passwd: master_passwd.as_deref(),
        master_group: master_group.as_deref(),
        host_passwd: &host_passwd,
        host_group: &host_group,
    };
    // A name from a script may be a group (`addgroup`): offer it as both.
    let groups: BTreeSet<String> = groups.union(&users).cloned().collect();
    generated.extend(system::accounts(&sources, &users, &groups, &requests));
    let tty_gid = master_group
        .as_deref()
        .and_then(|g| system::group_id(g, "tty"));
    generated.extend(system::dev(tty_gid));
    let machine = if kernel {
        system::Machine::Virtual
    } else {
        system::Machine::Container
    };
    let present = |path: &str| {
        (tree.entries)
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .is_ok()
    };
    generated.extend(system::machine_files(machine, present));
    generated.extend(alternatives(
        &settings.sysroot,
        &tree.entries,
        excludes,
        &scripts.archives,
    )?);
    let kept: Vec<&FileEntry> = (tree.entries.iter())
        .filter(|e| !excludes.matches(&e.path))
        .collect();
    let bytes = |entry: &FileEntry| tree.bytes(&settings.sysroot, entry);
    generated
        .extend(system::ld_so_cache(&kept, bytes, &system::host_ldconfig())?.unwrap_or_default());
    let fill =
        |staging: &system::Staging| stage_for_depmod(&settings.sysroot, tree, archives, staging);
    generated.extend(system::module_data(&kept, fill, &system::host_depmod())?);
    Ok(generated)
}

/// Writes the bytes of the files depmod reads at their staged places: compile's own
/// copy when it holds one, the host file for an installed package's, and for an archive
/// package's one pass over its archive (a kernel's modules are too many bytes to keep
/// in memory, and a compressed archive cannot be read at random).
fn stage_for_depmod(
    sysroot: &Path,
    tree: &Tree,
    archives: &[ArchivePackage],
    staging: &system::Staging,
) -> std::result::Result<(), (String, std::io::Error)> {
    let mut from_archive: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for entry in staging.files() {
        let failed = |e| (entry.path.clone(), e);
        let archive = (entry.package.as_deref())
            .filter(|p| archives.iter().any(|a| a.archive.package.name == *p));
        if let Some(bytes) = tree.contents.get(&entry.path) {
            std::fs::write(staging.place(&entry.path), bytes).map_err(failed)?;
        } else if let Some(package) = archive {
            from_archive.entry(package).or_default().insert(&entry.path);
        } else {
            let at = entry.origin.as_deref().unwrap_or(&entry.path);
            std::fs::copy(
                sysroot.join(at.trim_start_matches('/')),
                staging.place(&entry.path),
            )
            .map_err(failed)?;
        }
    }
    for package in archives {
        let Some(wanted) = from_archive.get_mut(package.archive.package.name.as_str()) else {
            continue;
        };
        let archive = &package.archive;
        archive
            .for_each_file(|file| {
                let path = canonical_usrmerge(file.path());
                if !wanted.remove(path.as_str()) {
                    return Ok(());
                }
                let at = staging.place(&path);
                let mut out = std::fs::File::create(&at).map_err(|source| DebError::Write {
                    path: archive.path.clone(),
                    entry: path.clone(),
                    source,
                })?;
                file.copy_to(&mut out).map(drop)
            })
            .map_err(|e| (archive.path.display().to_string(), std::io::Error::other(e)))?;
        if let Some(missing) = wanted.first() {
            let why = format!("not in the archive {}", archive.path.display());
            return Err((missing.to_string(), std::io::Error::other(why)));
        }
    }
    Ok(())
}

/// Whether compile reads the bytes of a packaged file at (merged-/usr) `path` beyond
/// hashing it: base-passwd's account masters, what ldconfig reads and depmod's small
/// inputs.
fn read_by_compile(path: &str) -> bool {
    path == MASTER_PASSWD
        || path == MASTER_GROUP
        || system::ldconfig_reads(path)
        || system::depmod_reads(path)
}

/// The host's alternatives and those the archive packages' `scripts` install, cut down
/// to the choices this lock has.
fn alternatives(
    sysroot: &Path,
    entries: &[FileEntry],
    excludes: &Subtrees,
    scripts: &[String],
) -> Result<system::Generated> {
    let dir = sysroot.join("var/lib/dpkg/alternatives");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(list) => list
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .map_err(io(&dir))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(Error::Io { path: dir, source }),
    };
    names.sort();
    let mut host = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let alternative = system::Alternative::parse(&name, &text)
            .map_err(|why| Error::Usage(format!("{}: {why}", path.display())))?;
        let current = std::fs::read_link(sysroot.join("etc/alternatives").join(&name))
            .ok()
            .map(|t| t.to_string_lossy().into_owned());
        host.push((alternative, current));
    }
    let index: HashMap<&str, &FileEntry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
    // dpkg and update-alternatives speak of /bin/x; the lock keeps it where merged /usr
    // puts it, through the top-level links the scan recorded.
    let canonical = |path: &str| -> String {
        let rest = path.trim_start_matches('/');
        let (top, tail) = rest.split_once('/').unwrap_or((rest, ""));
        match index.get(format!("/{top}").as_str()) {
            Some(e) if e.kind == FileKind::Symlink && !tail.is_empty() => match &e.target {
                Some(t) if !t.starts_with('/') && !t.contains("..") => format!("/{t}/{tail}"),
                _ => path.to_string(),
            },
            _ => path.to_string(),
        }
    };
    let present = |path: &str| {
        index
            .get(path)
            .is_some_and(|e| e.kind != FileKind::Dir && !excludes.matches(path))
    };
    // Packages that come from archives never ran their postinst on the host: their
    // choices come from the script's `update-alternatives --install` lines.
    for script in scripts {
        for alternative in system::Alternative::from_script(script) {
            match host.iter_mut().find(|(a, _)| a.name == alternative.name) {
                Some((known, _)) => known.merge(&alternative),
                None => host.push((alternative, None)),
            }
        }
    }
    let mut generated = system::alternatives(&host, &present, &canonical);
    // A link into an excluded folder (a man page slave) would bring the folder back.
    generated.entries.retain(|e| !excludes.matches(&e.path));
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The host kernel's module folder, when it has ext4 and its dependencies.
    fn host_modules() -> Option<PathBuf> {
        let mut kernels: Vec<_> = std::fs::read_dir(system::MODULES_DIR)
            .ok()?
            .flatten()
            .collect();
        kernels.sort_by_key(|e| e.file_name());
        kernels
            .into_iter()
            .map(|e| e.path())
            .find(|p| p.join("kernel/fs/ext4/ext4.ko").is_file())
    }

    #[test]
    fn depmod_reads_an_archive_kernel_from_its_archive_and_nothing_from_the_host() {
        let Some(host) = host_modules().filter(|_| system::host_depmod().is_file()) else {
            eprintln!("skipped: the host has no kernel modules or no depmod");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pkg");
        let kernel = root.join("lib/modules/6.1.0-99-test");
        for name in [
            "modules.order",
            "modules.builtin",
            "modules.builtin.modinfo",
            "kernel/fs/ext4/ext4.ko",
            "kernel/fs/jbd2/jbd2.ko",
            "kernel/fs/mbcache.ko",
            "kernel/lib/crc16.ko",
        ] {
            let to = kernel.join(name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(host.join(name), to).unwrap();
        }
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            "Package: linux-image-test\nVersion: 1\nArchitecture: amd64\n\
             Maintainer: t <t@example.org>\nDescription: test kernel\n",
        )
        .unwrap();
        let deb = dir.path().join("linux-image-test_1_amd64.deb");
        let Ok(built) = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "-b"])
            .arg(&root)
            .arg(&deb)
            .output()
        else {
            eprintln!("skipped: no dpkg-deb");
            return;
        };
        assert!(built.status.success(), "{built:?}");

        let archive = ArchivePackage::read(DebArchive::open(&deb).unwrap(), false).unwrap();
        let order = "/usr/lib/modules/6.1.0-99-test/modules.order";
        assert!(
            archive.contents.contains_key(order),
            "small inputs are kept"
        );
        assert!(
            !(archive.contents.keys()).any(|p| p.ends_with(".ko")),
            "modules are not held in memory"
        );
        let mut entries = archive.entries.clone();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let tree = Tree {
            entries,
            warnings: Vec::new(),
            contents: archive.contents.clone(),
            pristine: Vec::new(),
            missing: Vec::new(),
        };
        // An empty host: every byte must come from compile's copy or the archive.
        let empty = dir.path().join("empty-host");
        std::fs::create_dir(&empty).unwrap();
        let refs: Vec<&FileEntry> = tree.entries.iter().collect();
        let archives = std::slice::from_ref(&archive);
        let made = system::module_data(
            &refs,
            |staging: &system::Staging| stage_for_depmod(&empty, &tree, archives, staging),
            &system::host_depmod(),
        )
        .unwrap();
        let dep = made
            .entries
            .iter()
            .position(|e| e.path == "/usr/lib/modules/6.1.0-99-test/modules.dep")
            .unwrap();
        let dep = String::from_utf8_lossy(&made.blobs[dep]);
        assert!(
            dep.lines()
                .any(|l| l.starts_with("kernel/fs/ext4/ext4.ko:") && l.contains("jbd2.ko")),
            "{dep}"
        );
    }
}
