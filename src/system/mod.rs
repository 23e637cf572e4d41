//! System state an appliance needs to work as a system, not a bag of files: dpkg's
//! database for the locked packages, the accounts they use, their alternatives, the
//! dynamic linker's cache, the kernel's module dependencies, and the files that fit it
//! to a container or a virtual machine. Each piece is generated at compile time as
//! ordinary lock entries whose bytes go to the blob store, so it is as exact and
//! reproducible as any packaged file. No maintainer script is ever run.

mod accounts;
mod alternatives;
mod depmod;
mod dev;
mod dpkg_state;
mod ldcache;
mod machine;

pub use accounts::{
    AccountRequest, AccountSources, PrimaryGroup, accounts, group_id, script_accounts,
};
pub use alternatives::{Alternative, Choice, alternatives};
pub use depmod::{
    DepmodError, MODULES_DIR, Staging, depmod_reads, host_depmod, is_module, module_data,
};
pub use dev::dev;
pub use dpkg_state::{PackageRecord, dpkg_state, installed_stanza};
pub use ldcache::{LdCacheError, host_ldconfig, ld_so_cache, ldconfig_reads};
pub use machine::{Machine, ROOT_LABEL, machine_files};

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

/// The commands of a maintainer script that run one of `tools`: each as its shell words
/// (the tool first), up to the end of the command. The script is read, never run:
/// continuation lines are joined, quotes honoured, comments dropped; `$variables` stay
/// as written for the caller to refuse.
fn script_commands(script: &str, tools: &[&str]) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let words = shell_words(line);
        let Some(start) = words.iter().position(|w| tools.contains(&w.as_str())) else {
            continue;
        };
        let end = words[start + 1..]
            .iter()
            .position(|w| {
                matches!(w.as_str(), "||" | "&&" | ";" | "|" | "then" | "do")
                    || w.starts_with('>')
                    || w.starts_with("2>")
            })
            .map_or(words.len(), |i| start + 1 + i);
        out.push(words[start..end].to_vec());
    }
    out
}

/// Splits a shell line into words: whitespace separates, `'...'` and `"..."` group,
/// `;` ends a word; a `#` starting a word starts a comment.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '#' if !in_word => break,
            ';' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                words.push(";".to_string());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
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
