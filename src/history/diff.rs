//! What changed from one lock to another: packages upgraded, downgraded, added and
//! removed, with their installed-size change, every path new, gone or changed, and the
//! lock's own settings. Pure: two locks in, a [`LockDiff`] borrowing from them out.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::lock::Backend;
use crate::lock::{FileEntry, Inputs, Lock, LockedPackage};

/// Everything that differs between an old and a new lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockDiff<'a> {
    /// The package manager whose ordering told upgrades from downgrades.
    pub backend: Backend,
    /// Packages at a newer version in the new lock, by name and architecture.
    pub upgraded: Vec<PackageChange<'a>>,
    /// Packages at an older version in the new lock.
    pub downgraded: Vec<PackageChange<'a>>,
    /// Packages only the new lock holds.
    pub added: Vec<PackageChange<'a>>,
    /// Packages only the old lock holds.
    pub removed: Vec<PackageChange<'a>>,
    /// Every path that is new, gone or changed, sorted by path.
    pub files: Vec<FileChange<'a>>,
    /// The lock's own fields that differ, besides its packages and files.
    pub settings: Vec<Setting>,
}

/// One package's change, in one of [`LockDiff`]'s four sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageChange<'a> {
    /// The package's name.
    pub name: &'a str,
    /// Its architecture.
    pub arch: &'a str,
    /// Its version in the old lock; `None` when added.
    pub old: Option<&'a str>,
    /// Its version in the new lock; `None` when removed.
    pub new: Option<&'a str>,
    /// The sum of its files' sizes in the old lock (0 when added).
    pub old_size: u64,
    /// The sum of its files' sizes in the new lock (0 when removed).
    pub new_size: u64,
    /// Another architecture of the same name is in one of the locks, so the package is
    /// named `name:arch` (their files, which name only the package, count for each).
    pub multiarch: bool,
}

impl PackageChange<'_> {
    /// How many bytes its installed size grew (negative: shrank).
    pub fn size_change(&self) -> i128 {
        i128::from(self.new_size) - i128::from(self.old_size)
    }

    /// The name a person reads: `name`, or `name:arch` when the name is not enough.
    pub fn label(&self) -> String {
        if self.multiarch {
            format!("{}:{}", self.name, self.arch)
        } else {
            self.name.to_string()
        }
    }
}

/// One path that differs between the locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange<'a> {
    /// The path.
    pub path: &'a str,
    /// Its entry in the old lock; `None` when new.
    pub old: Option<&'a FileEntry>,
    /// Its entry in the new lock; `None` when gone.
    pub new: Option<&'a FileEntry>,
    /// What differs when it is in both; empty for a new or gone path.
    pub aspects: Vec<Aspect>,
}

impl FileChange<'_> {
    /// `new`, `gone` or `changed`.
    pub fn state(&self) -> &'static str {
        match (self.old, self.new) {
            (None, _) => "new",
            (_, None) => "gone",
            _ => "changed",
        }
    }
}

/// What about a path that is in both locks changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aspect {
    /// The kind (file, dir, symlink...).
    Kind,
    /// A regular file's bytes (digest or size).
    Content,
    /// The permission bits.
    Mode,
    /// The owner or group, by number or name.
    Owner,
    /// A symlink's text or a hard link's target.
    Link,
    /// A device's numbers.
    Device,
    /// The `security.capability` xattr.
    Capabilities,
    /// The package that owns the path.
    Package,
    /// The conffile mark.
    Conffile,
    /// Where the host keeps the bytes (a dpkg diversion).
    Origin,
    /// The time the package database records for the file.
    Mtime,
    /// The documentation or license mark.
    Documentation,
}

impl Aspect {
    /// The lower-case word the text and the JSON use.
    pub fn as_str(self) -> &'static str {
        match self {
            Aspect::Kind => "kind",
            Aspect::Content => "content",
            Aspect::Mode => "mode",
            Aspect::Owner => "owner",
            Aspect::Link => "link",
            Aspect::Device => "device",
            Aspect::Capabilities => "capabilities",
            Aspect::Package => "package",
            Aspect::Conffile => "conffile",
            Aspect::Origin => "origin",
            Aspect::Mtime => "mtime",
            Aspect::Documentation => "documentation",
        }
    }
}

/// A lock field, other than its packages and files, that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Setting {
    /// The group's name.
    Group,
    /// The group's version.
    Version,
    /// The flavor.
    Flavor,
    /// The group files read, or their digests.
    GroupFiles,
    /// The resolver rules' version.
    Resolver,
    /// The package manager.
    Backend,
    /// The container command.
    Cmd,
    /// The rest of the container config (`env`, `run-as`, `workdir`, `expose`, `label`,
    /// `entrypoint`).
    Container,
    /// The kernel modules loaded at boot.
    Modules,
}

impl Setting {
    /// The words the text and the JSON use.
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Group => "group",
            Setting::Version => "version",
            Setting::Flavor => "flavor",
            Setting::GroupFiles => "group files",
            Setting::Resolver => "resolver",
            Setting::Backend => "backend",
            Setting::Cmd => "cmd",
            Setting::Container => "container config",
            Setting::Modules => "modules",
        }
    }
}

/// Orders two versions of a package as `backend` does (dpkg's ordering, or rpm's EVR
/// ordering); spellings it deems equal (`1.0`, `1.00`) by their bytes, so only the same
/// string is the same version.
pub fn compare_versions(backend: Backend, a: &str, b: &str) -> Ordering {
    let order = match backend {
        Backend::Dpkg => crate::source::dpkg::version::compare(a, b),
        Backend::Rpm => crate::resolve::rpm::evr::compare(a, b),
    };
    order.then_with(|| a.cmp(b))
}

/// What changed from `old` to `new` (both normalised, as the repository loads them).
/// Versions are ordered by the new lock's backend.
pub fn diff<'a>(old: &'a Lock, new: &'a Lock) -> LockDiff<'a> {
    let backend = new.inputs.backend;
    let mut out = LockDiff {
        backend,
        upgraded: Vec::new(),
        downgraded: Vec::new(),
        added: Vec::new(),
        removed: Vec::new(),
        files: file_changes(&old.files, &new.files),
        settings: settings(old, new),
    };
    let (old_sizes, new_sizes) = (sizes(old), sizes(new));
    let multiarch = multiarch(&[old, new]);
    merge(&old.packages, &new.packages, package_key, |old, new| {
        let either = old.or(new).map(package_key);
        let Some((name, arch)) = either else { return };
        let size = |sizes: &HashMap<&str, u64>, p: Option<&LockedPackage>| {
            p.map_or(0, |_| sizes.get(name).copied().unwrap_or(0))
        };
        let change = PackageChange {
            name,
            arch,
            old: old.map(|p| p.version.as_str()),
            new: new.map(|p| p.version.as_str()),
            old_size: size(&old_sizes, old),
            new_size: size(&new_sizes, new),
            multiarch: multiarch.contains(name),
        };
        let section = match (change.old, change.new) {
            (None, _) => &mut out.added,
            (_, None) => &mut out.removed,
            (Some(a), Some(b)) => match compare_versions(backend, a, b) {
                Ordering::Less => &mut out.upgraded,
                Ordering::Greater => &mut out.downgraded,
                Ordering::Equal => return,
            },
        };
        section.push(change);
    });
    out
}

/// A package's place in a lock: packages are sorted, and unique, by name and arch.
fn package_key(p: &LockedPackage) -> (&str, &str) {
    (&p.name, &p.arch)
}

/// Walks two lists sorted by `key`, calling `visit` with each key's item on either side.
fn merge<'a, T, K: Ord>(
    old: &'a [T],
    new: &'a [T],
    key: impl Fn(&'a T) -> K,
    mut visit: impl FnMut(Option<&'a T>, Option<&'a T>),
) {
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => key(x).cmp(&key(y)),
        };
        match order {
            Ordering::Less => visit(a.next(), None),
            Ordering::Greater => visit(None, b.next()),
            Ordering::Equal => visit(a.next(), b.next()),
        }
    }
}

/// Every path new, gone or changed between two path-sorted file lists.
fn file_changes<'a>(old: &'a [FileEntry], new: &'a [FileEntry]) -> Vec<FileChange<'a>> {
    let mut changes = Vec::new();
    merge(
        old,
        new,
        |f| f.path.as_str(),
        |old, new| {
            let aspects = match (old, new) {
                (Some(a), Some(b)) => aspects(a, b),
                _ => Vec::new(),
            };
            if old.is_some() && new.is_some() && aspects.is_empty() {
                return;
            }
            if let Some(path) = old.or(new).map(|f| f.path.as_str()) {
                changes.push(FileChange {
                    path,
                    old,
                    new,
                    aspects,
                });
            }
        },
    );
    changes
}

/// What differs between two entries of one path.
fn aspects(old: &FileEntry, new: &FileEntry) -> Vec<Aspect> {
    // Every field is named, so a field added to the lock cannot go unnoticed here.
    let FileEntry {
        path: _,
        kind,
        mode,
        uid,
        gid,
        user,
        group,
        size,
        digest,
        target,
        device,
        caps,
        package,
        conffile,
        origin,
        mtime,
        documentation,
    } = old;
    let owner = (uid, gid, user, group) != (&new.uid, &new.gid, &new.user, &new.group);
    [
        (Aspect::Kind, *kind != new.kind),
        (Aspect::Content, (size, digest) != (&new.size, &new.digest)),
        (Aspect::Mode, *mode != new.mode),
        (Aspect::Owner, owner),
        (Aspect::Link, *target != new.target),
        (Aspect::Device, *device != new.device),
        (Aspect::Capabilities, *caps != new.caps),
        (Aspect::Package, *package != new.package),
        (Aspect::Conffile, *conffile != new.conffile),
        (Aspect::Origin, *origin != new.origin),
        (Aspect::Mtime, *mtime != new.mtime),
        (Aspect::Documentation, *documentation != new.documentation),
    ]
    .into_iter()
    .filter_map(|(aspect, differs)| differs.then_some(aspect))
    .collect()
}

/// The lock fields besides packages and files that differ.
fn settings(old: &Lock, new: &Lock) -> Vec<Setting> {
    // Named in full for the same reason as in `aspects`.
    let Lock {
        group,
        version,
        flavor,
        inputs:
            Inputs {
                group_files,
                resolver,
                backend,
            },
        cmd,
        container,
        modules,
        packages: _,
        files: _,
    } = old;
    [
        (Setting::Group, *group != new.group),
        (Setting::Version, *version != new.version),
        (Setting::Flavor, *flavor != new.flavor),
        (Setting::GroupFiles, *group_files != new.inputs.group_files),
        (Setting::Resolver, *resolver != new.inputs.resolver),
        (Setting::Backend, *backend != new.inputs.backend),
        (Setting::Cmd, *cmd != new.cmd),
        (Setting::Container, *container != new.container),
        (Setting::Modules, *modules != new.modules),
    ]
    .into_iter()
    .filter_map(|(setting, differs)| differs.then_some(setting))
    .collect()
}

/// Each package name's installed size in `lock`: the sum of its files' sizes.
fn sizes(lock: &Lock) -> HashMap<&str, u64> {
    let mut sizes = HashMap::new();
    for file in &lock.files {
        if let Some(package) = &file.package {
            let size = sizes.entry(package.as_str()).or_insert(0u64);
            *size = size.saturating_add(file.size);
        }
    }
    sizes
}

/// The names some lock holds for more than one architecture.
fn multiarch<'a>(locks: &[&'a Lock]) -> BTreeSet<&'a str> {
    let mut arches: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for p in locks.iter().flat_map(|lock| &lock.packages) {
        arches.entry(&p.name).or_default().insert(&p.arch);
    }
    (arches.into_iter())
        .filter(|(_, arches)| arches.len() > 1)
        .map(|(name, _)| name)
        .collect()
}

impl LockDiff<'_> {
    /// Whether the two locks are the same.
    pub fn is_empty(&self) -> bool {
        self.packages_unchanged() && self.files.is_empty() && self.settings.is_empty()
    }

    /// Whether every package is at the same version in both locks.
    pub fn packages_unchanged(&self) -> bool {
        [&self.upgraded, &self.downgraded, &self.added, &self.removed]
            .iter()
            .all(|section| section.is_empty())
    }

    /// How many paths are new, gone and changed, each with its word.
    pub fn path_counts(&self) -> [(&'static str, usize); 3] {
        ["new", "gone", "changed"].map(|state| {
            (
                state,
                self.files.iter().filter(|c| c.state() == state).count(),
            )
        })
    }

    /// The sections in the order they are printed, each with its name.
    pub fn sections(&self) -> [(&'static str, &[PackageChange<'_>]); 4] {
        [
            ("upgraded", &self.upgraded),
            ("downgraded", &self.downgraded),
            ("added", &self.added),
            ("removed", &self.removed),
        ]
    }
}

/// One line for a person: `3 upgraded, 1 added`; `packages unchanged, 12 files
/// changed`; `packages and files unchanged, cmd changed`; `identical`.
impl fmt::Display for LockDiff<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.packages_unchanged() {
            let parts: Vec<String> = (self.sections().iter())
                .filter(|(_, changes)| !changes.is_empty())
                .map(|(name, changes)| format!("{} {name}", changes.len()))
                .collect();
            return f.write_str(&parts.join(", "));
        }
        match (self.files.len(), self.settings.as_slice()) {
            (0, []) => f.write_str("identical"),
            (1, _) => f.write_str("packages unchanged, 1 file changed"),
            (0, settings) => {
                let names: Vec<&str> = settings.iter().map(|s| s.as_str()).collect();
                write!(
                    f,
                    "packages and files unchanged, {} changed",
                    names.join(", ")
                )
            }
            (n, _) => write!(f, "packages unchanged, {n} files changed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{FileKind, Reason};

    fn package(name: &str, version: &str, arch: &str) -> LockedPackage {
        LockedPackage {
            name: name.to_string(),
            version: version.to_string(),
            arch: arch.to_string(),
            source: "installed".to_string(),
            reason: Reason::Essential,
        }
    }

    fn file(path: &str, owner: &str, size: u64) -> FileEntry {
        FileEntry {
            kind: FileKind::File,
            mode: 0o644,
            size,
            digest: Some(format!("{size:064x}")),
            package: Some(owner.to_string()),
            ..FileEntry::directory(path)
        }
    }

    fn lock(packages: Vec<LockedPackage>, files: Vec<FileEntry>) -> Lock {
        let mut lock = Lock {
            packages,
            ..Lock::of_files(files)
        };
        lock.normalise();
        lock
    }

    fn names<'a>(changes: &'a [PackageChange<'_>]) -> Vec<(String, Option<&'a str>, i128)> {
        (changes.iter())
            .map(|c| (c.label(), c.new.or(c.old), c.size_change()))
            .collect()
    }

    #[test]
    fn packages_fall_into_the_four_sections_with_their_size_change() {
        let old = lock(
            vec![
                package("bash", "5.2-1", "amd64"),
                package("mawk", "1.3", "amd64"),
                package("nginx", "1.24-1", "amd64"),
                package("same", "1", "amd64"),
            ],
            vec![
                file("/usr/bin/bash", "bash", 1000),
                file("/usr/bin/mawk", "mawk", 300),
                file("/usr/sbin/nginx", "nginx", 5000),
            ],
        );
        let new = lock(
            vec![
                package("bash", "5.2-1+b1", "amd64"),
                package("coreutils", "9.1", "amd64"),
                package("nginx", "1.22-1", "amd64"),
                package("same", "1", "amd64"),
            ],
            vec![
                file("/usr/bin/bash", "bash", 1500),
                file("/usr/bin/ls", "coreutils", 70),
                file("/usr/share/ls", "coreutils", 30),
                file("/usr/sbin/nginx", "nginx", 4000),
            ],
        );
        let d = diff(&old, &new);
        assert_eq!(names(&d.upgraded), [("bash".into(), Some("5.2-1+b1"), 500)]);
        assert_eq!(
            names(&d.downgraded),
            [("nginx".into(), Some("1.22-1"), -1000)]
        );
        assert_eq!(names(&d.added), [("coreutils".into(), Some("9.1"), 100)]);
        assert_eq!(names(&d.removed), [("mawk".into(), Some("1.3"), -300)]);
        assert_eq!(
            d.to_string(),
            "1 upgraded, 1 downgraded, 1 added, 1 removed"
        );
        assert!(d.settings.is_empty(), "{:?}", d.settings);
    }

    #[test]
    fn versions_are_ordered_by_the_new_locks_backend() {
        // dpkg puts a letter after the end of a part, rpm a letter segment before a
        // number; spellings a backend deems equal still differ.
        for (backend, a, b, order) in [
            (Backend::Dpkg, "1.0~rc1", "1.0", Ordering::Less),
            (Backend::Dpkg, "1.10", "1.9", Ordering::Greater),
            (Backend::Rpm, "1.0-2.fc40", "1.0-10.fc40", Ordering::Less),
            (Backend::Dpkg, "1.a", "1.1", Ordering::Greater),
            (Backend::Rpm, "1.a-1", "1.1-1", Ordering::Less),
            (Backend::Dpkg, "1.0", "1.00", Ordering::Less),
            (Backend::Rpm, "1:1.0-1", "1.0-1", Ordering::Greater),
        ] {
            assert_eq!(
                compare_versions(backend, a, b),
                order,
                "{backend:?} {a} {b}"
            );
        }

        let old = lock(vec![package("tool", "1.a-1", "x86_64")], Vec::new());
        let mut new = lock(vec![package("tool", "1.1-1", "x86_64")], Vec::new());
        assert_eq!(diff(&old, &new).downgraded.len(), 1, "dpkg: 1.a is newer");
        new.inputs.backend = Backend::Rpm;
        let d = diff(&old, &new);
        assert_eq!(names(&d.upgraded), [("tool".into(), Some("1.1-1"), 0)]);
        assert_eq!(d.settings, [Setting::Backend]);
    }

    #[test]
    fn every_changed_path_says_what_changed() {
        let conf = file("/etc/app.conf", "app", 10);
        let link = FileEntry {
            kind: FileKind::Symlink,
            target: Some("a".into()),
            ..FileEntry::directory("/usr/lib/link")
        };
        let old = lock(
            Vec::new(),
            vec![
                conf.clone(),
                link.clone(),
                file("/gone", "app", 1),
                file("/same", "app", 1),
                FileEntry::directory("/var/x"),
            ],
        );
        let new = lock(
            Vec::new(),
            vec![
                FileEntry {
                    mode: 0o600,
                    digest: Some("ee".repeat(32)),
                    user: "www-data".into(),
                    uid: 33,
                    conffile: true,
                    ..conf
                },
                FileEntry {
                    target: Some("b".into()),
                    ..link
                },
                file("/new", "app", 2),
                file("/same", "app", 1),
                file("/var/x", "app", 4),
            ],
        );
        let d = diff(&old, &new);
        let seen: Vec<(&str, bool, bool, &[Aspect])> = (d.files.iter())
            .map(|c| {
                (
                    c.path,
                    c.old.is_some(),
                    c.new.is_some(),
                    c.aspects.as_slice(),
                )
            })
            .collect();
        use Aspect::*;
        assert_eq!(
            seen,
            [
                (
                    "/etc/app.conf",
                    true,
                    true,
                    &[Content, Mode, Owner, Conffile][..]
                ),
                ("/gone", true, false, &[][..]),
                ("/new", false, true, &[][..]),
                ("/usr/lib/link", true, true, &[Link][..]),
                ("/var/x", true, true, &[Kind, Content, Mode, Package][..]),
            ]
        );
        assert_eq!(d.to_string(), "packages unchanged, 5 files changed");
    }

    #[test]
    fn summary_names_what_else_changed_and_identical_locks() {
        let old = lock(vec![package("bash", "1", "amd64")], Vec::new());
        assert!(diff(&old, &old).is_empty());
        assert_eq!(diff(&old, &old).to_string(), "identical");
        let mut new = old.clone();
        new.cmd = vec!["/bin/sh".into()];
        new.version = "1.1".into();
        new.container.workdir = Some("/srv".into());
        let d = diff(&old, &new);
        assert_eq!(
            d.settings,
            [Setting::Version, Setting::Cmd, Setting::Container]
        );
        assert_eq!(
            d.to_string(),
            "packages and files unchanged, version, cmd, container config changed"
        );
        new.files.push(file("/x", "bash", 1));
        assert_eq!(
            diff(&old, &new).to_string(),
            "packages unchanged, 1 file changed"
        );
    }

    #[test]
    fn another_architecture_is_its_own_package_named_with_its_arch() {
        let old = lock(vec![package("libc6", "2.36", "amd64")], Vec::new());
        let new = lock(
            vec![
                package("libc6", "2.36", "amd64"),
                package("libc6", "2.36", "i386"),
                package("bash", "5", "amd64"),
            ],
            Vec::new(),
        );
        let d = diff(&old, &new);
        let added: Vec<String> = d.added.iter().map(PackageChange::label).collect();
        assert_eq!(added, ["bash", "libc6:i386"]);
        assert!(d.upgraded.is_empty() && d.removed.is_empty());
        assert_eq!(diff(&new, &old).to_string(), "2 removed");
    }
}
