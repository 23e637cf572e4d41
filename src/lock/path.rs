//! What the bytes of every path of a lock must be for every output to hold it,
//! whichever archive or statement the path comes from: dpkg's file lists (one path per
//! line), a Linux filesystem (255 bytes a name, 4095 a path) and a tar archive.
//! Normalising a path (`./`, `//`, `..`) is its reader's business: tar members, group
//! statements and lock entries each spell paths their own way.

use crate::excerpt::excerpt;

/// The longest name (one path component) a Linux filesystem takes.
pub const NAME_MAX: usize = 255;

/// The longest path the kernel takes, its terminating NUL included.
pub const PATH_MAX: usize = 4096;

/// Why a path cannot be in a lock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    /// No filesystem or tar header holds a NUL.
    #[error("contains a NUL byte")]
    Nul,
    /// dpkg refuses it in an archive, and its `info/*.list` would split it in two.
    #[error("contains a newline, which dpkg's file lists cannot hold")]
    Newline,
    /// A component longer than any filesystem name: a chroot could not be made, and a
    /// tar could not be extracted.
    #[error(
        "has a component of {} bytes (`{}`), more than the {NAME_MAX} a filesystem name holds",
        .0.len(),
        excerpt(.0)
    )]
    NameTooLong(String),
    /// A whole path longer than the kernel takes.
    #[error("is {0} bytes long, more than the {max} a filesystem path holds", max = PATH_MAX - 1)]
    TooLong(usize),
}

/// Checks the bytes of `path`, in whatever spelling its reader takes.
pub fn check(path: &str) -> Result<(), PathProblem> {
    if path.contains('\0') {
        return Err(PathProblem::Nul);
    }
    if path.contains('\n') {
        return Err(PathProblem::Newline);
    }
    if let Some(name) = path.split('/').find(|name| name.len() > NAME_MAX) {
        return Err(PathProblem::NameTooLong(name.to_string()));
    }
    if path.len() >= PATH_MAX {
        return Err(PathProblem::TooLong(path.len()));
    }
    Ok(())
}

/// The ancestors of an absolute path, nearest first, `/` excluded.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut current = path;
    std::iter::from_fn(move || {
        let i = current.rfind('/').filter(|&i| i > 0)?;
        current = &current[..i];
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_every_output_holds_passes() {
        let longest_name = format!("/srv/{}", "n".repeat(NAME_MAX));
        let deepest = format!("/{}", format!("{}/", "d".repeat(NAME_MAX)).repeat(15))
            + &"f".repeat(PATH_MAX - 1 - 15 * 256 - 1);
        assert_eq!(deepest.len(), PATH_MAX - 1);
        for path in [
            "/",
            "/usr/bin/bash",
            "./usr//x/",
            "a b\tc\r",
            &longest_name,
            &deepest,
        ] {
            check(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        }
    }

    #[test]
    fn what_an_output_cannot_hold_is_named() {
        let long = "x".repeat(NAME_MAX + 1);
        let too_deep = format!("/{}", format!("{}/", "d".repeat(200)).repeat(21));
        assert_eq!(check("/a\0b"), Err(PathProblem::Nul));
        assert_eq!(check("/evil\n/bin"), Err(PathProblem::Newline));
        assert_eq!(
            check(&format!("/srv/{long}/x")),
            Err(PathProblem::NameTooLong(long.clone()))
        );
        assert_eq!(check(&too_deep), Err(PathProblem::TooLong(4222)));
        let message = PathProblem::NameTooLong(long).to_string();
        assert!(
            message.starts_with("has a component of 256 bytes (`xxxx")
                && message
                    .ends_with("... (256 bytes)`), more than the 255 a filesystem name holds"),
            "{message}"
        );
        assert_eq!(
            PathProblem::TooLong(4222).to_string(),
            "is 4222 bytes long, more than the 4095 a filesystem path holds"
        );
    }
}
