//! What compiling a recipe can fail with: the errors of every stage and of what the
//! stages read, each wrapped as it is, and the refusals only compile makes.

use std::path::{Path, PathBuf};

use super::{
    AlteredError, CaptureError, ConfigureError, HostDrift, SetupError, UnwantedKernel,
    UnwritableTree,
};
use crate::excerpt::excerpt;
use crate::lang::LangError;
use crate::lock::extra::ExtraError;
use crate::lock::{AssembleError, TrimError};
use crate::materialise::MaterialiseError;
use crate::repo::AptIndexError;
use crate::repo::RepoError;
use crate::resolve::ResolveError;
use crate::source::accounts::AccountsError;
use crate::source::dpkg::DpkgError;
use crate::source::dpkg::apt::AptError;
use crate::source::dpkg::deb::DebError;
use crate::source::dpkg::scan::ScanError;
use crate::source::rpm::RpmError;
use crate::system::RpmdbError;

/// Anything compiling a recipe can fail with. Wrapped errors keep their own message.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CompileError {
    /// A group statement is refused where it is written (carries source spans).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lang(Box<LangError>),
    /// The host's dpkg database could not be read.
    #[error(transparent)]
    Dpkg(#[from] DpkgError),
    /// A package archive could not be read.
    #[error(transparent)]
    Deb(Box<DebError>),
    /// A package could not be fetched with apt.
    #[error(transparent)]
    Apt(Box<AptError>),
    /// An RPM database, archive or header could not be read.
    #[error(transparent)]
    Rpm(#[from] RpmError),
    /// An installed RPM package's files changed on the host, with no archive to take.
    #[error(transparent)]
    RpmDrift(#[from] HostDrift),
    /// The host's files could not be scanned.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// A tree's `etc/passwd` or `etc/group` could not be read.
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    /// The packages cannot be resolved.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A flavor without a kernel would get one.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Kernel(Box<UnwantedKernel>),
    /// A host package whose files were altered has no archive to take its metadata from.
    #[error(transparent)]
    Altered(Box<AlteredError>),
    /// The packages' maintainer scripts could not be run, or failed.
    #[error(transparent)]
    Configure(#[from] ConfigureError),
    /// A group statement its tree cannot carry out.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The configured tree could not be read back.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// A `hostfile` or `overlay` statement could not be turned into entries.
    #[error(transparent)]
    Extra(#[from] ExtraError),
    /// An RPM tree's rpm database could not be written.
    #[error(transparent)]
    Rpmdb(#[from] RpmdbError),
    /// The lock could not be assembled.
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    /// The lock could not be trimmed to its group's `paths`.
    #[error(transparent)]
    Trim(#[from] TrimError),
    /// The compiled tree would be refused by every output.
    #[error(transparent)]
    Unwritable(Box<UnwritableTree>),
    /// The tree could not be staged for its scripts.
    #[error(transparent)]
    Materialise(#[from] MaterialiseError),
    /// The blob store or the repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A `file` statement names an owner or group the tree has no account for.
    #[error(
        "{location}: {} `{}` of {} is not a {} of the system ({} under {})",
        account.role(),
        excerpt(name),
        excerpt(path),
        account.noun(),
        account.table(),
        sysroot.display()
    )]
    UnknownAccount {
        /// The statement, `file:line:column`.
        location: String,
        /// Which of its accounts.
        account: OwnerKind,
        /// The name it gives.
        name: String,
        /// The file it makes.
        path: String,
        /// The root whose accounts were asked.
        sysroot: PathBuf,
    },
    /// The host's apt sources, which a tree with apt takes, hold a secret.
    #[error(
        "the tree has apt, so compile takes the host's apt sources and keyrings, but \
         {secret}; take it on purpose with `hostfile \"{path}\" secret=#true`, or leave it \
         out with `exclude \"{path}\"`"
    )]
    AptSourceSecret {
        /// The sources or keyring file.
        path: String,
        /// Why it is a secret.
        secret: Box<ExtraError>,
    },
    /// A package the host does not have installed has no archive to read it from.
    #[error("{package} has no archive")]
    NoArchive {
        /// The package, `name-evr.arch`.
        package: String,
    },
    /// A configure job, or what it made, could not be written as JSON.
    #[error("{0}")]
    Job(serde_json::Error),
    /// The file handed to `configure-job` is not a job.
    #[error("{}: not a configure job: {reason}", path.display())]
    NotAJob {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read as one.
        reason: serde_json::Error,
    },
    /// A file or folder compile reads or makes failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned (`-` for standard output).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Which account a `file` statement's owner names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    /// `owner=`, a user of `etc/passwd`.
    User,
    /// `group=`, a group of `etc/group`.
    Group,
}

impl CompileError {
    /// What turns an I/O error at `path` into [`CompileError::Io`], for
    /// `.map_err(CompileError::io_at(path))`.
    pub fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> CompileError + use<> {
        let path = path.to_path_buf();
        move |source| CompileError::Io { path, source }
    }
}

impl OwnerKind {
    /// The statement's word for it.
    fn role(self) -> &'static str {
        match self {
            OwnerKind::User => "owner",
            OwnerKind::Group => "group",
        }
    }

    /// What kind of account it is.
    fn noun(self) -> &'static str {
        match self {
            OwnerKind::User => "user",
            OwnerKind::Group => "group",
        }
    }

    /// The table it is looked up in.
    fn table(self) -> &'static str {
        match self {
            OwnerKind::User => "etc/passwd",
            OwnerKind::Group => "etc/group",
        }
    }
}

/// `From` for the variants that hold their error boxed (each is large, and a compile's
/// result should not be).
macro_rules! boxed_from {
    ($($variant:ident($error:ty)),* $(,)?) => {$(
        impl From<$error> for CompileError {
            fn from(err: $error) -> CompileError {
                CompileError::$variant(Box::new(err))
            }
        }
    )*};
}

boxed_from!(
    Lang(LangError),
    Deb(DebError),
    Apt(AptError),
    Kernel(UnwantedKernel),
    Altered(AlteredError),
    Unwritable(UnwritableTree),
);

/// Results of compile's stages.
pub type Result<T, E = CompileError> = std::result::Result<T, E>;

impl From<AptIndexError> for CompileError {
    fn from(err: AptIndexError) -> CompileError {
        match err {
            AptIndexError::Repo(err) => err.into(),
            AptIndexError::Apt(err) => err.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{CompileError, OwnerKind};

    #[test]
    fn an_unknown_account_names_the_statement_and_the_table() {
        let err = CompileError::UnknownAccount {
            location: "groups/web.kdl:4:5".into(),
            account: OwnerKind::Group,
            name: "www\ndata".into(),
            path: "/etc/motd".into(),
            sysroot: PathBuf::from("/"),
        };
        assert_eq!(
            err.to_string(),
            "groups/web.kdl:4:5: group `www\\ndata` of /etc/motd is not a group of the \
             system (etc/group under /)"
        );
    }
}
