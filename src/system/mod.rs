//! System state an appliance needs to work as a system, not a bag of files: dpkg's
//! database for the locked packages, the accounts they use and the dynamic linker's cache. Each piece is generated at
//! compile time as ordinary lock entries whose bytes go to the blob store, so it is as
//! exact and reproducible as any packaged file. No maintainer script is ever run.

mod accounts;
mod alternatives;
mod dev;
mod dpkg_state;
mod ldcache;

pub use accounts::{
    AccountRequest, AccountSources, PrimaryGroup, accounts, group_id, script_accounts,
};
pub use alternatives::{Alternative, Choice, alternatives};
pub use dev::dev;
pub use dpkg_state::{PackageRecord, dpkg_state, installed_stanza};
pub use ldcache::{LdCacheError, host_ldconfig, ld_so_cache, ldconfig_reads};

use crate::lock::{FileEntry, FileKind};

/// Entries made by code, with the bytes their digests point at.
#[derive(Debug, Default)]
pub struct Generated {
    /// Lock entries (package `None`).
    pub entries: Vec<FileEntry>,
    /// Contents to put in the blob store.
    pub blobs: Vec<Vec<u8>>,
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
