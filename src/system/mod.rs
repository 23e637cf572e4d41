//! What compile adds around the packages' own files: the dpkg database that makes them
//! a tree dpkg can configure (every package unpacked, its maintainer scripts in `info/`)
//! or, with no dpkg to run them, one that lists them installed; an RPM tree's rpmdb; a minimal `/dev`; and
//! the files that fit a tree to a container or a virtual machine. Each is an ordinary
//! lock entry whose bytes go to the blob store.

mod dev;
mod dpkg_state;
mod machine;
mod rpmdb;

pub use dev::{dev, group_id};
pub use dpkg_state::{PackageRecord, Unpacked, dpkg_state, installed_stanza};
pub use machine::{
    Machine, NETWORKD_UNIT, Network, PLACEHOLDERS, ROOT_LABEL, SECRETS, Secret, hosts_naming,
    machine_files, network,
};
pub use rpmdb::{RpmdbError, installed_blob, write_rpmdb};

use crate::lock::{FileEntry, FileKind};

/// Entries made by code, with the bytes their digests point at.
#[derive(Debug, Default)]
pub struct Generated {
    /// Lock entries (package `None`).
    pub entries: Vec<FileEntry>,
    /// Contents to put in the blob store.
    pub blobs: Vec<Vec<u8>>,
}

/// The rpmdb of a tree holding exactly `headers` (bare blobs, in install order), at
/// `path` in the tree: written with [`write_rpmdb`] in a private folder of `scratch`.
pub fn rpmdb(
    scratch: &std::path::Path,
    path: &str,
    headers: &[Vec<u8>],
) -> Result<Generated, RpmdbError> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| RpmdbError::Create { path, source }
    };
    std::fs::create_dir_all(scratch).map_err(io(scratch))?;
    let temp = crate::scratch::Temp::dir(scratch, std::ffi::OsStr::new("rpmdb"), 0o700)
        .map_err(io(scratch))?;
    let db = temp.path.join("rpmdb.sqlite");
    write_rpmdb(&db, headers)?;
    let bytes = std::fs::read(&db).map_err(io(&db))?;
    let mut generated = Generated::default();
    generated.root_file(path, bytes);
    Ok(generated)
}

impl Generated {
    /// Adds a regular file owned by `uid:gid` (`user:group`) with `content`.
    fn file(&mut self, path: &str, mode: u32, owner: (u32, &str, u32, &str), content: Vec<u8>) {
        let (uid, user, gid, group) = owner;
        self.entries.push(FileEntry {
            kind: FileKind::File,
            mode,
            uid,
            gid,
            user: user.to_string(),
            group: group.to_string(),
            size: content.len() as u64,
            digest: Some(blake3::hash(&content).to_hex().to_string()),
            ..FileEntry::directory(path)
        });
        self.blobs.push(content);
    }

    /// Adds a root-owned `0644` file.
    fn root_file(&mut self, path: &str, content: Vec<u8>) {
        self.file(path, 0o644, (0, "root", 0, "root"), content);
    }

    /// Adds a root-owned symlink.
    fn symlink(&mut self, path: &str, target: &str) {
        self.entries.push(FileEntry {
            kind: FileKind::Symlink,
            mode: 0o777,
            target: Some(target.to_string()),
            ..FileEntry::directory(path)
        });
    }

    /// Appends everything `other` generated.
    pub fn extend(&mut self, other: Generated) {
        self.entries.extend(other.entries);
        self.blobs.extend(other.blobs);
    }
}

#[cfg(test)]
impl Generated {
    /// The text of generated file `path` (tests only).
    fn content(&self, path: &str) -> String {
        let entry = self.entries.iter().find(|e| e.path == path).unwrap();
        let digest = entry.digest.as_deref().unwrap();
        let blob = self
            .blobs
            .iter()
            .find(|b| blake3::hash(b).to_hex().as_str() == digest);
        String::from_utf8(blob.unwrap().clone()).unwrap()
    }
}
