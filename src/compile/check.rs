//! The check stage: the whole lock, before it is stored, against what any output must
//! be able to write.

use super::error::{CompileError, Result};
use crate::excerpt::excerpt;
use crate::lock::Lock;
use crate::materialise::{self, LockProblem, MaterialiseError};

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
    pub problem: LockProblem,
}

/// Checks `lock` as materialise will. The archives' and statements' own checks see one
/// source at a time; what only their sum gets wrong (one package's files below another's
/// symlink) is caught here.
pub fn check(lock: &Lock) -> Result<()> {
    materialise::check_lock(lock).map_err(|err| match err {
        MaterialiseError::InvalidLock { path, problem } => {
            let package =
                (lock.files.iter().find(|e| e.path == path)).and_then(|e| e.package.clone());
            CompileError::from(UnwritableTree {
                path,
                package,
                problem,
            })
        }
        other => CompileError::from(other),
    })
}
