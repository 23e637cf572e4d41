//! The library's top-level error: one variant per concern, each naming what went wrong.

use std::path::PathBuf;

/// Anything a command can fail with.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// A group or flavor file is wrong (carries source spans).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lang(#[from] Box<crate::lang::LangError>),
    /// The host's dpkg database could not be read.
    #[error(transparent)]
    Dpkg(#[from] crate::source::dpkg::DpkgError),
    /// A package archive could not be read.
    #[error(transparent)]
    Deb(Box<crate::source::dpkg::deb::DebError>),
    /// apt's lists could not be read, or a package could not be fetched.
    #[error(transparent)]
    Apt(Box<crate::source::dpkg::apt::AptError>),
    /// An RPM database, archive, header or repodata folder could not be read.
    #[error(transparent)]
    Rpm(#[from] crate::source::rpm::RpmError),
    /// An installed RPM package's files changed on the host, with no archive to take.
    #[error(transparent)]
    RpmDrift(#[from] crate::compile::HostDrift),
    /// The host's files could not be scanned.
    #[error(transparent)]
    Scan(#[from] crate::source::dpkg::scan::ScanError),
    /// A tree's `etc/passwd` or `etc/group` could not be read.
    #[error(transparent)]
    Accounts(#[from] crate::source::accounts::AccountsError),
    /// A flavor without a kernel would get one.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Kernel(Box<crate::compile::UnwantedKernel>),
    /// A compiled tree would be refused by every output.
    #[error(transparent)]
    Unwritable(Box<crate::compile::UnwritableTree>),
    /// A host package whose files were altered has no archive to take its metadata from.
    #[error(transparent)]
    Altered(Box<crate::compile::AlteredError>),
    /// The packages' maintainer scripts could not be run, or failed.
    #[error(transparent)]
    Configure(#[from] crate::compile::ConfigureError),
    /// A group statement its tree cannot carry out.
    #[error(transparent)]
    Setup(#[from] crate::compile::SetupError),
    /// The configured tree could not be read back.
    #[error(transparent)]
    Capture(#[from] crate::compile::CaptureError),
    /// The packages cannot be resolved.
    #[error(transparent)]
    Resolve(#[from] crate::resolve::ResolveError),
    /// A `hostfile` or `overlay` statement could not be turned into entries.
    #[error(transparent)]
    Extra(#[from] crate::lock::extra::ExtraError),
    /// An RPM tree's rpm database could not be written.
    #[error(transparent)]
    Rpmdb(#[from] crate::system::RpmdbError),
    /// A lock could not be trimmed to its group's `paths`.
    #[error(transparent)]
    Trim(#[from] crate::lock::TrimError),
    /// A lock could not be assembled.
    #[error(transparent)]
    Assemble(#[from] crate::lock::AssembleError),
    /// A reference to a stored lock is malformed, ambiguous or unknown.
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    /// A bundle could not be written, or is refused.
    #[error(transparent)]
    Bundle(Box<crate::bundle::BundleError>),
    /// A push or pull failed: the registry, its answer, the credentials.
    #[error(transparent)]
    Registry(Box<crate::registry::RegistryError>),
    /// The repository or blob store failed.
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// An output could not be built.
    #[error(transparent)]
    Materialise(#[from] crate::materialise::MaterialiseError),
    /// An image could not be booted.
    #[error(transparent)]
    Boot(#[from] crate::boot::BootError),
    /// `verify` found host paths that differ from the lock (each already reported).
    #[error("{differ} of {checked} host paths differ from {address}")]
    HostDrift {
        /// The lock's address.
        address: String,
        /// How many differ.
        differ: usize,
        /// How many were compared.
        checked: usize,
    },
    /// A request that names something that does not exist or does not fit.
    #[error("{0}")]
    Usage(String),
    /// Writing the command's own output or reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned (`-` for standard output).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the command's standard output was closed by its reader (`| head`): the
    /// reader has what it wanted, so the command ends quietly, as ripgrep does.
    pub fn is_closed_stdout(&self) -> bool {
        matches!(self, Error::Io { path, source }
            if path.as_os_str() == "-" && source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<crate::lang::LangError> for Error {
    fn from(err: crate::lang::LangError) -> Error {
        Error::Lang(Box::new(err))
    }
}

impl From<crate::compile::UnwantedKernel> for Error {
    fn from(err: crate::compile::UnwantedKernel) -> Error {
        Error::Kernel(Box::new(err))
    }
}

impl From<crate::compile::UnwritableTree> for Error {
    fn from(err: crate::compile::UnwritableTree) -> Error {
        Error::Unwritable(Box::new(err))
    }
}

impl From<crate::compile::AlteredError> for Error {
    fn from(err: crate::compile::AlteredError) -> Error {
        Error::Altered(Box::new(err))
    }
}

impl From<crate::bundle::BundleError> for Error {
    fn from(err: crate::bundle::BundleError) -> Error {
        Error::Bundle(Box::new(err))
    }
}

impl From<crate::registry::RegistryError> for Error {
    fn from(err: crate::registry::RegistryError) -> Error {
        Error::Registry(Box::new(err))
    }
}

impl From<crate::source::dpkg::deb::DebError> for Error {
    fn from(err: crate::source::dpkg::deb::DebError) -> Error {
        Error::Deb(Box::new(err))
    }
}

impl From<crate::source::dpkg::apt::AptError> for Error {
    fn from(err: crate::source::dpkg::apt::AptError) -> Error {
        Error::Apt(Box::new(err))
    }
}

/// Results of library commands.
pub type Result<T, E = Error> = std::result::Result<T, E>;
