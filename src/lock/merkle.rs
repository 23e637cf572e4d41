//! The Merkle root of a lock's file tree.
//!
//! Each entry hashes to BLAKE3 of its canonical JSON; a directory's node hash also
//! covers its children's names and node hashes in name order. The root is the node hash
//! of `/` (an implicit empty root directory when the lock has no `/` entry), so any
//! output can be verified against the lock one subtree at a time.

use std::collections::BTreeMap;

use super::FileEntry;

/// Computes the Merkle root of `files`, lower-case hex. Order of `files` does not matter.
pub fn merkle_root(files: &[FileEntry]) -> String {
    let mut children: BTreeMap<&str, Vec<&FileEntry>> = BTreeMap::new();
    let mut root = None;
    for entry in files {
        if entry.path == "/" {
            root = Some(entry);
            continue;
        }
        children.entry(parent(&entry.path)).or_default().push(entry);
    }
    node_hash("/", root, &children).to_hex().to_string()
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn node_hash(
    path: &str,
    entry: Option<&FileEntry>,
    children: &BTreeMap<&str, Vec<&FileEntry>>,
) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    if let Some(entry) = entry {
        hasher.update(&serde_json::to_vec(entry).unwrap_or_default());
    }
    if let Some(kids) = children.get(path) {
        let mut kids = kids.clone();
        kids.sort_by(|a, b| a.path.cmp(&b.path));
        for kid in kids {
            let name = kid.path.rsplit('/').next().unwrap_or_default();
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(node_hash(&kid.path, Some(kid), children).as_bytes());
        }
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::FileKind;

    fn entry(path: &str, kind: FileKind, digest: Option<&str>) -> FileEntry {
        FileEntry {
            kind,
            digest: digest.map(Into::into),
            ..FileEntry::directory(path)
        }
    }

    #[test]
    fn root_depends_on_every_entry_but_not_order() {
        let a = vec![
            entry("/", FileKind::Dir, None),
            entry("/usr", FileKind::Dir, None),
            entry("/usr/bin", FileKind::Dir, None),
            entry("/usr/bin/bash", FileKind::File, Some("aa")),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(merkle_root(&a), merkle_root(&b));
        let mut c = a.clone();
        c[3].digest = Some("bb".into());
        assert_ne!(merkle_root(&a), merkle_root(&c));
        let mut d = a.clone();
        d[1].mode = 0o700;
        assert_ne!(merkle_root(&a), merkle_root(&d));
    }
}
