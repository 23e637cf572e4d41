//! The stamp beside an output that lets `--if-newer` skip a build.
//!
//! It records what OUT was built from (lock id, format and its compression or disk, mtime) and which
//! filesystem object OUT was right after the build (device, inode, size, mtime), so an
//! OUT that was replaced or edited at its top level no longer counts as current.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Format;
use crate::scratch::Temp;

/// What an output was built from, and the output itself once built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    lock_id: String,
    format: String,
    variant: Option<String>,
    mtime: u64,
    output: Option<Identity>,
}

/// Which filesystem object OUT is, and its top-level state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_sec: i64,
    mtime_nsec: i64,
}

impl Identity {
    fn of(out: &Path) -> io::Result<Identity> {
        let meta = fs::symlink_metadata(out)?;
        Ok(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        })
    }
}

impl Stamp {
    /// The stamp a build of `lock_id` in `format` with entry mtime `mtime` would leave.
    pub fn request(lock_id: &str, format: Format, mtime: u64) -> Stamp {
        let (format, variant) = format.describe();
        Stamp {
            lock_id: lock_id.to_string(),
            format: format.to_string(),
            variant: variant.map(str::to_string),
            mtime,
            output: None,
        }
    }

    /// Whether `stamp` says `out` was built for this request and is still that output.
    /// Reads only the stamp and OUT's own metadata.
    pub fn is_current(&self, stamp: &Path, out: &Path) -> bool {
        let Ok(text) = fs::read(stamp) else {
            return false;
        };
        let Ok(found) = serde_json::from_slice::<Stamp>(&text) else {
            return false;
        };
        let Ok(now) = Identity::of(out) else {
            return false;
        };
        found
            == Stamp {
                output: Some(now),
                ..self.clone()
            }
    }

    /// Records that `out` now holds this request's output (written beside, then renamed).
    pub fn write(&self, stamp: &Path, out: &Path) -> io::Result<()> {
        let done = Stamp {
            output: Some(Identity::of(out)?),
            ..self.clone()
        };
        let bytes = serde_json::to_vec(&done).map_err(io::Error::other)?;
        // A temporary of its own, so concurrent builds without a lock file never share
        // it, and one a killed run leaves is known to be stale.
        let parent = stamp.parent().unwrap_or(Path::new("."));
        let name = stamp.file_name().unwrap_or_default();
        let (temp, mut file) = Temp::file(parent, name, 0o644)?;
        file.write_all(&bytes)?;
        fs::rename(&temp.path, stamp)?;
        temp.keep();
        Ok(())
    }

    /// Removes a stamp that is about to stop describing OUT.
    pub fn remove(stamp: &Path) -> io::Result<()> {
        match fs::remove_file(stamp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialise::Compression;

    #[test]
    fn a_stamp_matches_only_its_request_and_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.tar.gz");
        let stamp = dir.path().join(".out.tar.gz.appliance-stamp");
        fs::write(&out, b"archive").unwrap();
        let request = Stamp::request("id1", Format::Tar(Compression::Gzip), 7);
        assert!(!request.is_current(&stamp, &out), "no stamp yet");
        request.write(&stamp, &out).unwrap();
        assert!(request.is_current(&stamp, &out));

        let text = String::from_utf8(fs::read(&stamp).unwrap()).unwrap();
        assert!(text.contains(r#""lock_id":"id1""#), "{text}");
        assert!(text.contains(r#""variant":"gzip""#), "{text}");

        for other in [
            Stamp::request("id2", Format::Tar(Compression::Gzip), 7),
            Stamp::request("id1", Format::Tar(Compression::Xz), 7),
            Stamp::request("id1", Format::Chroot, 7),
            Stamp::request("id1", Format::Tar(Compression::Gzip), 8),
        ] {
            assert!(!other.is_current(&stamp, &out), "{other:?}");
        }

        // A different object at OUT is not the output the stamp describes.
        fs::remove_file(&out).unwrap();
        fs::write(dir.path().join("other"), b"archive, edited").unwrap();
        fs::rename(dir.path().join("other"), &out).unwrap();
        assert!(!request.is_current(&stamp, &out));

        Stamp::remove(&stamp).unwrap();
        Stamp::remove(&stamp).unwrap();
        assert!(!stamp.exists());
    }
}
