//! Where a command works, and which stored lock it names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::history::{HistoryError, Reference};
use crate::lang::Flavor;
use crate::materialise::{self, Sources};
use crate::progress::Reporter;
use crate::repo::{RepoError, Repository, StoredLock};
use crate::workspace::Workspace;

/// Where a command works: the workspace, the repository file and the host root.
pub struct Context {
    /// The workspace holding `groups/`, `flavors/` and `store/`.
    pub workspace: Workspace,
    /// The SQLite repository file.
    pub repo_path: PathBuf,
    /// The root under which host packages and files are read.
    pub sysroot: PathBuf,
    /// Where the work tells its progress (`-v`, `-q`).
    pub report: Reporter,
}

impl Context {
    /// Finds the workspace (explicit, or upward from the current folder) and the
    /// repository; the work's progress goes to `report`.
    pub fn new(
        workspace: Option<&Path>,
        repo: Option<&Path>,
        sysroot: &Path,
        report: Reporter,
    ) -> Result<Context> {
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            path: PathBuf::from("."),
            source,
        })?;
        let workspace = Workspace::discover(&cwd, workspace)?;
        let repo_path = match repo {
            Some(path) => path.to_path_buf(),
            None => workspace.store_dir().join("repo.sqlite"),
        };
        Ok(Context {
            workspace,
            repo_path,
            sysroot: sysroot.to_path_buf(),
            report,
        })
    }

    pub(super) fn pool_dir(&self) -> PathBuf {
        self.workspace.store_dir().join("pool")
    }

    /// The folders of archives, by preference: `store/pool`, apt's cache, then the
    /// `--pool` folders (a `file://` URL, as a repository's base URL is written, names
    /// its folder).
    pub(super) fn pool_dirs(&self, more: &[PathBuf]) -> Vec<PathBuf> {
        let mut dirs = vec![self.pool_dir(), self.sysroot.join("var/cache/apt/archives")];
        dirs.extend(more.iter().map(|dir| {
            let text = dir.to_string_lossy();
            text.strip_prefix("file://")
                .map_or_else(|| dir.clone(), PathBuf::from)
        }));
        dirs
    }

    /// Where verify, export, push and sbom take bytes from: the host, the pool folders
    /// (with `more`), the blob store.
    pub(super) fn sources(&self, more: &[PathBuf]) -> Sources {
        Sources {
            sysroot: self.sysroot.clone(),
            pool: self.pool_dirs(more),
            blobs: Some(self.blobs_dir()),
            unpacked: None,
        }
    }

    /// Where materialise and boot take bytes from: [`Context::sources`], and the files
    /// runs kept unpacked from archives (`store/unpacked/`), which they read first and
    /// add to. The commands that only read a lock's bytes leave that folder alone.
    pub(super) fn building_sources(&self, more: &[PathBuf]) -> Sources {
        Sources {
            unpacked: Some(self.workspace.store_dir().join("unpacked")),
            ..self.sources(more)
        }
    }

    pub(super) fn blobs_dir(&self) -> PathBuf {
        self.workspace.store_dir().join("blobs")
    }

    /// What no output may replace besides its sources: the workspace, the store and
    /// the repository, wherever `--repo` put it.
    pub(super) fn protected(&self) -> materialise::Protected {
        materialise::Protected {
            workspace: Some(self.workspace.root().to_path_buf()),
            store: Some(self.workspace.store_dir()),
            repo: Some(self.repo_path.clone()),
        }
    }

    /// Opens the repository for reading: a missing one is an error, not a new empty file.
    pub(super) fn existing_repo(&self) -> Result<Repository> {
        Ok(Repository::open_read_only(&self.repo_path)?)
    }

    /// Loads the lock a command names, choosing the only group when none is given.
    pub(super) fn load(&self, repo: &Repository, lookup: &Lookup) -> Result<(StoredLock, Flavor)> {
        let (group, flavor) = self.name(repo, lookup)?;
        let stored = repo.load(&group, &flavor.canonical(), lookup.version.as_deref())?;
        Ok((stored, flavor))
    }

    /// The group and the flavor a command names, choosing the only group when none is
    /// given, and the only flavor that group was compiled for when no flavor is.
    pub(super) fn name(&self, repo: &Repository, lookup: &Lookup) -> Result<(String, Flavor)> {
        let group = match &lookup.group {
            Some(group) => group.clone(),
            None => only_group(repo)?,
        };
        let flavor = match &lookup.flavor {
            Some(spec) => self.workspace.flavor(spec)?,
            None => {
                let several = |known: Vec<String>| {
                    Error::Usage(format!(
                        "group {group} was compiled for several flavors ({}): pass --flavor",
                        known.join(", ")
                    ))
                };
                self.workspace
                    .flavor(&only_flavor(repo, &group, &group, several)?)?
            }
        };
        Ok((group, flavor))
    }

    /// Loads the lock a [`Reference`] names. Its flavor is the reference's own, else
    /// `flavor` (`--flavor`), else the only one its group was compiled for.
    pub(super) fn refer(
        &self,
        repo: &Repository,
        text: &str,
        flavor: Option<&str>,
    ) -> Result<StoredLock> {
        let (reference, canonical) = self.resolve(repo, text, flavor)?;
        let version = reference.version.as_deref();
        Ok((repo.load(&reference.group, &canonical, version)).map_err(unknown(text))?)
    }

    /// The [`Reference`] `text` parsed, with the canonical flavor it names (see
    /// [`Context::refer`]).
    pub(super) fn resolve(
        &self,
        repo: &Repository,
        text: &str,
        flavor: Option<&str>,
    ) -> Result<(Reference, String)> {
        let reference: Reference = text.parse()?;
        let canonical = match reference.flavor.as_deref().or(flavor) {
            Some(spec) => self.workspace.flavor(spec)?.canonical(),
            None => {
                let several = |known| HistoryError::SeveralFlavors {
                    reference: text.to_string(),
                    group: reference.group.clone(),
                    known,
                };
                only_flavor(repo, &reference.group, text, several)?
            }
        };
        Ok((reference, canonical))
    }
}

/// The canonical flavor of the only one `group` was compiled for, for a command given
/// none; `text` is what the command was given, and `several` the error when the group
/// was compiled for several (the canonical flavors).
fn only_flavor<E: Into<Error>>(
    repo: &Repository,
    group: &str,
    text: &str,
    several: impl FnOnce(Vec<String>) -> E,
) -> Result<String> {
    let revisions = (repo.history(group, None)).map_err(unknown(text))?;
    let known: BTreeSet<String> = revisions.into_iter().map(|r| r.flavor).collect();
    match <[String; 1]>::try_from(Vec::from_iter(known)) {
        Ok([only]) => Ok(only),
        Err(known) => Err(several(known).into()),
    }
}

/// What the repository said of the reference `text`, naming it.
pub(super) fn unknown(text: &str) -> impl FnOnce(RepoError) -> HistoryError + '_ {
    move |source| HistoryError::Unknown {
        reference: text.to_string(),
        source: Box::new(source),
    }
}

/// The repository's only group, for commands that name none.
pub(super) fn only_group(repo: &Repository) -> Result<String> {
    let groups = repo.groups()?;
    match groups.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Usage(
            "the repository holds no group yet: run `appliance compile` first".into(),
        )),
        many => Err(Error::Usage(format!(
            "the repository holds several groups ({}): name one",
            many.join(", ")
        ))),
    }
}

/// Which stored lock a command is about.
pub struct Lookup {
    /// The group; `None` means the repository's only group.
    pub group: Option<String>,
    /// A flavor name or canonical flavor string; `None` means the only flavor the group
    /// was compiled for.
    pub flavor: Option<String>,
    /// `1.0` or `1.0-2`; `None` means the newest.
    pub version: Option<String>,
}
