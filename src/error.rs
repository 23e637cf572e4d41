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
    /// The host's `etc/passwd` or `etc/group` could not be read.
    #[error(transparent)]
    Accounts(#[from] crate::source::accounts::AccountsError),
    /// A recipe could not be compiled.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Compile(Box<crate::compile::CompileError>),
    /// A reference to a stored lock is malformed, ambiguous or unknown.
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    /// The store could not be locked or swept.
    #[error(transparent)]
    Gc(Box<crate::gc::GcError>),
    /// A bundle could not be written, or is refused.
    #[error(transparent)]
    Bundle(Box<crate::bundle::BundleError>),
    /// A push or pull failed: the registry, its answer, the credentials.
    #[error(transparent)]
    Registry(Box<crate::registry::RegistryError>),
    /// The repository or blob store failed.
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// `why` was asked about a package the lock does not hold.
    #[error(transparent)]
    NotInLock(#[from] crate::lock::NotInLock),
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

impl From<crate::compile::CompileError> for Error {
    fn from(err: crate::compile::CompileError) -> Error {
        Error::Compile(Box::new(err))
    }
}

impl From<crate::gc::GcError> for Error {
    fn from(err: crate::gc::GcError) -> Error {
        Error::Gc(Box::new(err))
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

#[cfg(test)]
mod tests {
    use miette::{Diagnostic, SourceSpan};

    use super::Error;
    use crate::compile::CompileError;
    use crate::lang::diag::SourceFile;

    #[test]
    fn a_statement_error_keeps_its_span_through_the_compile_wrapper() {
        let src = SourceFile::new("groups/web.kdl".into(), "overlay \"x\"\n".to_string());
        let err = src.invalid(
            SourceSpan::from(0..11),
            "copies a secret",
            "here",
            Some("write `secret=#true`".into()),
        );
        let wrapped = Error::from(CompileError::from(err));
        assert!(matches!(wrapped, Error::Compile(_)));
        assert!(wrapped.source_code().is_some());
        assert_eq!(wrapped.labels().map(Iterator::count), Some(1));
        assert_eq!(
            wrapped.help().map(|h| h.to_string()).as_deref(),
            Some("write `secret=#true`")
        );
        assert_eq!(wrapped.to_string(), "groups/web.kdl:1:1: copies a secret");
    }
}
