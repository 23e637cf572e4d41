//! Whether an installed package's files still hold what dpkg unpacked, as
//! `dpkg --verify` tells: each file of its `.md5sums` that its list still holds is read
//! on the host and its MD5 compared. Conffiles are the admin's to edit (compile says
//! which version of one it locks); a file the host lacks is no change here (dpkg's
//! `path-exclude` leaves documentation out of container images), the scan reports it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use rayon::prelude::*;

use super::{Diversion, DpkgError, InstalledPackage};
use crate::no_follow::read_chunks;

/// A file of an installed package that the host changed since dpkg unpacked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The path as the package lists it.
    pub path: String,
    /// What the host holds there instead (`its bytes differ from ...`).
    pub what: String,
}

/// How much of a file is read at a time.
const BUFFER: usize = 256 * 1024;

/// The first of `files` (in path order, see [`checked`]) whose bytes on the host are not
/// the ones dpkg recorded, or that is no regular file any more.
pub fn first_changed(files: &[Checked]) -> Result<Option<Changed>, DpkgError> {
    let first = (files.par_iter())
        .map_init(
            || vec![0u8; BUFFER],
            |buffer, file| {
                let what = change(&file.host, file.md5, buffer)?;
                Ok(what.map(|what| Changed {
                    path: file.path.to_string(),
                    what,
                }))
            },
        )
        .find_map_first(|found: Result<Option<Changed>, DpkgError>| found.transpose());
    first.transpose()
}

/// How close to now a file's change time must be for its times not to tell a later
/// change (a change within the same tick of the file system's clock keeps them).
const RACY: Duration = Duration::from_secs(2);

/// What [`first_changed`] reads of `files` of `package`, as identities: each file's
/// recorded MD5, device, inode, type, size and times (its change time moves whenever its
/// bytes do, and no program can set it back), hashed. Equal stamps mean the files are as
/// they were, so what [`first_changed`] found then holds now. `None` when a file changed
/// within [`RACY`] of `now`: the next change might not move its times.
pub fn stamp(
    package: &InstalledPackage,
    files: &[Checked],
    now: SystemTime,
) -> Result<Option<String>, DpkgError> {
    let racy = now.checked_sub(RACY).unwrap_or(UNIX_EPOCH);
    let racy = racy.duration_since(UNIX_EPOCH).unwrap_or_default();
    let p = &package.package;
    let mut h = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for text in [STAMP_KIND, &p.name, &p.version, &p.arch] {
        field(text.as_bytes());
    }
    for file in files {
        field(file.path.as_bytes());
        field(file.md5.as_bytes());
        let meta = match std::fs::symlink_metadata(&file.host) {
            Ok(meta) => meta,
            Err(e) if is_absent(&e) => {
                field(b"absent");
                continue;
            }
            Err(source) => {
                return Err(DpkgError::Io {
                    path: file.host.clone(),
                    source,
                });
            }
        };
        let changed = Duration::new(
            u64::try_from(meta.ctime()).unwrap_or(0),
            u32::try_from(meta.ctime_nsec()).unwrap_or(0),
        );
        if changed >= racy {
            return Ok(None);
        }
        for number in [
            meta.dev(),
            meta.ino(),
            u64::from(meta.mode()),
            meta.size(),
            meta.mtime() as u64,
            meta.mtime_nsec() as u64,
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ] {
            field(&number.to_le_bytes());
        }
    }
    Ok(Some(h.finalize().to_hex().to_string()))
}

/// What a stamp is of: a later check that reads more than bytes needs stamps of its own.
const STAMP_KIND: &str = "md5sums check 1";

/// A file of an installed package whose bytes can be checked.
pub struct Checked<'a> {
    /// The path as the package lists it.
    path: &'a str,
    /// The MD5 dpkg recorded.
    md5: &'a str,
    /// Where its bytes are on the host.
    host: PathBuf,
}

/// The files of `package` whose bytes can be checked: those of its `.md5sums` that its
/// list still holds, conffiles aside, in path order, each where its bytes are under
/// `sysroot` (a file another package diverted, where the diversion put it).
pub fn checked<'a>(
    sysroot: &Path,
    package: &'a InstalledPackage,
    diversions: &'a [Diversion],
) -> Result<Vec<Checked<'a>>, DpkgError> {
    let owned = package.owned()?;
    let name = package.package.name.as_str();
    // A path another package took over (`Replaces`) leaves this list but stays in the
    // md5sums dpkg wrote at unpack: only what the list still holds is this package's.
    let listed: HashSet<&str> = owned.files.iter().map(String::as_str).collect();
    let conffiles: HashSet<&str> = (package.conffiles.iter())
        .map(|c| c.path.as_str())
        .collect();
    let diverted: HashMap<&str, &str> = (diversions.iter())
        .filter(|d| d.by.as_deref() != Some(name))
        .map(|d| (d.from.as_str(), d.to.as_str()))
        .collect();
    Ok((owned.md5sums.iter())
        .filter(|(path, _)| listed.contains(path.as_str()) && !conffiles.contains(path.as_str()))
        .map(|(path, md5)| {
            let at = diverted.get(path.as_str()).copied().unwrap_or(path);
            Checked {
                path,
                md5,
                host: sysroot.join(at.trim_start_matches('/')),
            }
        })
        .collect())
}

/// Errors meaning nothing is there: the path, or a folder on the way to it.
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// What differs at `host` from a regular file whose MD5 is `md5`: `None` when nothing
/// does, or when nothing is there.
fn change(host: &Path, md5: &str, buffer: &mut [u8]) -> Result<Option<String>, DpkgError> {
    let failed = |source: io::Error| DpkgError::Io {
        path: host.to_path_buf(),
        source,
    };
    let meta = match std::fs::symlink_metadata(host) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() || kind.is_socket() {
            "a pipe or socket"
        } else {
            "a device"
        };
        return Ok(Some(format!(
            "the host has {what} there, where its package has a file"
        )));
    }
    let mut hasher = Md5::new();
    read_chunks(host, buffer, |chunk| {
        hasher.update(chunk);
        Ok(())
    })
    .map_err(failed)?;
    let same = hex::encode(hasher.finalize()).eq_ignore_ascii_case(md5);
    Ok((!same).then(|| "its bytes differ from the MD5 dpkg recorded".to_string()))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::source::dpkg::DpkgDatabase;

    /// MD5 of `text`, as md5sums writes it.
    fn md5(text: &str) -> String {
        hex::encode(Md5::digest(text))
    }

    /// A sysroot where dpkg unpacked package `pk`: `/usr/share/pk/{same,edited,gone,linked,
    /// taken,diverted}` with the bytes `name\n`, conffile `/etc/pk.conf`, its md5sums
    /// listing them all. Another package took `taken` over (Replaces), so pk's list lacks
    /// it; `diverted` was diverted to `diverted.real` by another package.
    fn unpacked() -> (tempfile::TempDir, DpkgDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let names = ["same", "edited", "gone", "linked", "taken", "diverted"];
        let at = |path: &str| root.join(path.trim_start_matches('/'));
        fs::create_dir_all(at("usr/share/pk")).unwrap();
        fs::create_dir_all(at("etc")).unwrap();
        fs::create_dir_all(at("var/lib/dpkg/info")).unwrap();
        let mut md5sums = format!("{}  etc/pk.conf\n", md5("conf\n"));
        let mut list = "/.\n/etc\n/etc/pk.conf\n/usr\n/usr/share\n/usr/share/pk\n".to_string();
        for name in names {
            let path = format!("/usr/share/pk/{name}");
            md5sums += &format!("{}  {}\n", md5(&format!("{name}\n")), &path[1..]);
            if name != "taken" {
                list += &format!("{path}\n");
            }
            let real = if name == "diverted" {
                format!("{path}.real")
            } else {
                path
            };
            fs::write(at(&real), format!("{name}\n")).unwrap();
        }
        fs::write(at("etc/pk.conf"), "edited by the admin\n").unwrap();
        fs::write(at("usr/share/pk/taken"), "the other package's\n").unwrap();
        fs::write(at("usr/share/pk/diverted"), "the diverter's\n").unwrap();
        fs::write(at("var/lib/dpkg/info/pk.list"), list).unwrap();
        fs::write(at("var/lib/dpkg/info/pk.md5sums"), md5sums).unwrap();
        fs::write(
            at("var/lib/dpkg/diversions"),
            "/usr/share/pk/diverted\n/usr/share/pk/diverted.real\nq\n",
        )
        .unwrap();
        fs::write(
            at("var/lib/dpkg/status"),
            format!(
                "Package: pk\nStatus: install ok installed\nArchitecture: amd64\n\
                 Version: 1\nConffiles:\n /etc/pk.conf {}\n\n",
                md5("conf\n")
            ),
        )
        .unwrap();
        let db = DpkgDatabase::read(root).unwrap();
        (dir, db)
    }

    /// What `first_changed` finds in a fresh check of the sysroot.
    fn changed(root: &Path, db: &DpkgDatabase) -> Option<Changed> {
        let files = checked(root, &db.packages[0], &db.diversions).unwrap();
        first_changed(&files).unwrap()
    }

    #[test]
    fn only_a_file_whose_bytes_or_type_changed_is_a_change() {
        let (dir, db) = unpacked();
        let root = dir.path();
        let share = root.join("usr/share/pk");
        // An edited conffile, a file taken over, a diverted one read where it went, and a
        // file the host lacks (path-exclude) are no change.
        fs::remove_file(share.join("gone")).unwrap();
        assert_eq!(changed(root, &db), None);

        fs::write(share.join("edited"), "edited\nby hand\n").unwrap();
        fs::remove_file(share.join("linked")).unwrap();
        symlink("same", share.join("linked")).unwrap();
        let bytes = Changed {
            path: "/usr/share/pk/edited".into(),
            what: "its bytes differ from the MD5 dpkg recorded".into(),
        };
        assert_eq!(changed(root, &db), Some(bytes));
        fs::write(share.join("edited"), "edited\n").unwrap();

        assert_eq!(
            changed(root, &db),
            Some(Changed {
                path: "/usr/share/pk/linked".into(),
                what: "the host has a symbolic link there, where its package has a file".into(),
            })
        );
        fs::remove_file(share.join("linked")).unwrap();
        fs::write(
            share.join("diverted.real"),
            "changed where it was diverted to\n",
        )
        .unwrap();
        assert_eq!(
            changed(root, &db).map(|c| c.path),
            Some("/usr/share/pk/diverted".into())
        );
    }

    #[test]
    fn a_stamp_holds_while_the_files_do_and_none_is_made_of_a_racy_one() {
        let (dir, db) = unpacked();
        let (root, p) = (dir.path(), &db.packages[0]);
        let stamp_at = |now| {
            let files = checked(root, p, &db.diversions).unwrap();
            stamp(p, &files, now).unwrap()
        };
        // Just written: a change now might leave the times as they are.
        assert_eq!(stamp_at(SystemTime::now()), None);
        let later = SystemTime::now() + Duration::from_secs(60);
        let first = stamp_at(later);
        assert!(first.is_some());
        assert_eq!(stamp_at(later), first);
        fs::write(root.join("usr/share/pk/edited"), "edited, and longer\n").unwrap();
        assert_ne!(stamp_at(later), first);
    }
}
