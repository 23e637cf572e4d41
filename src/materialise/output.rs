//! Atomic outputs: a temporary beside OUT, renamed into place when complete.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{MaterialiseError, io_error};
use crate::scratch::{self, Temp, remove_tree};

mod replace;

pub use replace::Protected;

/// A temporary output: removed when dropped unless it was installed.
pub(crate) type TempPath = Temp;

/// The suffix of the stamp beside OUT (`.OUT.appliance-stamp`).
const STAMP: &str = "appliance-stamp";

/// The suffix of the claim beside OUT: the stamp of the complete output about to be
/// renamed to OUT, written just before, so that a run killed before OUT's own stamp is
/// written still leaves an OUT that appliance is known to have made.
const CLAIM: &str = "appliance-claim";

/// Where an output goes: OUT, its directory, and the paths kept beside it.
#[derive(Debug)]
pub(crate) struct Target {
    /// OUT as given.
    pub out: PathBuf,
    parent: PathBuf,
    name: OsString,
}

impl Target {
    /// Splits OUT into its directory and name; OUT must end in a name (not `/` or `..`).
    pub fn new(out: &Path) -> Result<Target, MaterialiseError> {
        let name = out
            .file_name()
            .ok_or_else(|| MaterialiseError::UnsafeOutput {
                out: out.to_path_buf(),
                reason: if fs::canonicalize(out).is_ok_and(|p| p == Path::new("/")) {
                    "it is the root folder".to_string()
                } else {
                    "it does not end in a file name".to_string()
                },
            })?
            .to_os_string();
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Target {
            out: out.to_path_buf(),
            parent,
            name,
        })
    }

    /// `<parent>/.<name>.<suffix>`: a hidden path beside OUT.
    fn beside(&self, suffix: &str) -> PathBuf {
        self.parent.join(self.stem(Some(suffix)))
    }

    /// The stamp beside OUT, `.<name>.appliance-stamp` (see [`super::stamp`]).
    pub fn stamp(&self) -> PathBuf {
        self.beside(STAMP)
    }

    /// The claim beside OUT, `.<name>.appliance-claim`: the stamp of the output being
    /// installed, until OUT's own stamp is written.
    pub fn claim(&self) -> PathBuf {
        self.beside(CLAIM)
    }

    /// Creates a fresh private directory beside OUT to build a tree in.
    pub fn temp_dir(&self) -> Result<TempPath, MaterialiseError> {
        self.create_temp(|parent, stem| Temp::dir(parent, stem, 0o700))
    }

    /// Creates a fresh file beside OUT to write an archive into.
    pub fn temp_file(&self) -> Result<(TempPath, File), MaterialiseError> {
        self.create_temp(|parent, stem| Temp::file(parent, stem, 0o644))
    }

    /// The stem of OUT's temporaries, `.<name>`, and with `suffix`, `.<name>.<suffix>`.
    fn stem(&self, suffix: Option<&str>) -> OsString {
        let mut stem = OsString::from(".");
        stem.push(&self.name);
        if let Some(suffix) = suffix {
            stem.push(".");
            stem.push(suffix);
        }
        stem
    }

    fn create_temp<T>(
        &self,
        create: impl Fn(&Path, &OsStr) -> io::Result<T>,
    ) -> Result<T, MaterialiseError> {
        fs::create_dir_all(&self.parent).map_err(|e| {
            io_error(
                &self.out,
                "create directory",
                self.parent.display().to_string(),
                e,
            )
        })?;
        let stem = self.stem(None);
        create(&self.parent, &stem).map_err(|e| {
            let path = self.parent.join(&stem);
            io_error(
                &self.out,
                "create a temporary",
                format!("{}.tmp-*", path.display()),
                e,
            )
        })
    }

    /// Removes what killed runs left beside OUT: its temporaries and those of its stamp
    /// and claim, when provably stale (see [`crate::scratch`]). Returns how many went.
    pub fn remove_stale(&self) -> usize {
        let stems: Vec<OsString> = [None, Some(STAMP), Some(CLAIM)]
            .into_iter()
            .map(|suffix| self.stem(suffix))
            .collect();
        scratch::remove_stale(&self.parent, |stem| stems.iter().any(|s| s == stem))
    }

    /// Puts a complete temporary in OUT's place in one step. An existing OUT is
    /// exchanged with the temporary (the old tree is then removed; failing that is a
    /// warning), so OUT is never missing or half-written.
    pub fn install(
        &self,
        temp: TempPath,
        warnings: &mut Vec<String>,
    ) -> Result<(), MaterialiseError> {
        let replace_err = |e| io_error(&self.out, "replace", self.out.display().to_string(), e);
        if !temp.is_dir() {
            // rename(2) atomically replaces a file.
            fs::rename(&temp.path, &self.out).map_err(replace_err)?;
            temp.keep();
            return Ok(());
        }
        match rename2(&temp.path, &self.out, libc::RENAME_NOREPLACE) {
            Ok(()) => {
                temp.keep();
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Locked before the exchange puts it at the temporary's name, so that no
                // cleaner takes it for a leftover while it is removed below.
                let _old = scratch::try_hold(&self.out);
                rename2(&temp.path, &self.out, libc::RENAME_EXCHANGE).map_err(replace_err)?;
                // The temporary path now holds the old OUT.
                if let Err(e) = remove_tree(&temp.path) {
                    warnings.push(format!(
                        "could not remove the previous {} (now at {}): {e}",
                        self.out.display(),
                        temp.path.display()
                    ));
                }
                temp.keep();
                Ok(())
            }
            Err(e) => Err(replace_err(e)),
        }
    }
}

fn rename2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let from = c_path(from)?;
    let to = c_path(to)?;
    // SAFETY: both are NUL-terminated paths that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A path as the C string the libc calls take.
pub(crate) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn temporaries_are_hidden_beside_out_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::new(&dir.path().join("sub/out.tar")).unwrap();
        let (temp, _file) = target.temp_file().unwrap();
        let name = temp
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with(".out.tar.tmp-"), "{name}");
        assert_eq!(temp.path.parent(), Some(dir.path().join("sub").as_path()));
        let path = temp.path.clone();
        drop(temp);
        assert!(!path.exists());
    }

    #[test]
    fn a_directory_out_is_exchanged_and_the_old_tree_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(out.join("old/ro")).unwrap();
        fs::set_permissions(out.join("old"), fs::Permissions::from_mode(0o555)).unwrap();
        let target = Target::new(&out).unwrap();
        let temp = target.temp_dir().unwrap();
        fs::write(temp.path.join("new"), b"new").unwrap();
        let mut warnings = Vec::new();
        target.install(temp, &mut warnings).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(fs::read(out.join("new")).unwrap(), b"new");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only OUT remains");
    }
}
