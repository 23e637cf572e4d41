//! What the fuzz targets share: the invariants every accepted entry must keep, and the
//! builders of `ar` and tar bytes that the targets and the seed writer use.

use std::collections::BTreeMap;

use appliance::lock::{FileEntry, FileKind};

/// Whether `path` is absolute and normalised the way a lock path must be: `/`, or `/a/b`
/// with no empty, `.` or `..` component, no trailing `/` and no NUL.
pub fn normalised(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    !path.contains('\0')
        && (rest.is_empty()
            || rest
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."))
}

/// The ancestors of a normalised path, nearest last, without `/`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(|(i, _)| &path[..i])
        .filter(|a| !a.is_empty())
}

/// Checks what every entry list read from untrusted bytes must satisfy, taking the last
/// entry at a path as the one that counts (as the lock does):
/// - each path is absolute and normalised (never `..`, never relative);
/// - no entry lies below another that is not a directory (which could lead anywhere);
/// - a hard link points at a regular file of the list;
/// - a link's text and the owner names hold no NUL;
/// - a regular file has a digest, other kinds none;
/// - no path holds what no output can (a newline, a name or path too long).
pub fn check_entries(entries: &[FileEntry]) {
    let mut last: BTreeMap<&str, &FileEntry> = BTreeMap::new();
    for e in entries {
        assert!(normalised(&e.path), "accepted a bad path {:?}", e.path);
        if let Err(problem) = appliance::lock::path::check(&e.path) {
            panic!("accepted {:?}, which {problem}", e.path);
        }
        assert!(
            !e.user.contains('\0') && !e.group.contains('\0'),
            "NUL in an owner name of {:?}",
            e.path
        );
        assert!(e.mode <= 0o7777, "mode {:o} of {:?}", e.mode, e.path);
        assert_eq!(
            e.digest.is_some(),
            e.kind == FileKind::File,
            "digest of {:?} ({})",
            e.path,
            e.kind
        );
        last.insert(&e.path, e);
    }
    for (path, e) in &last {
        for ancestor in ancestors(path) {
            if let Some(a) = last.get(ancestor) {
                assert_eq!(
                    a.kind,
                    FileKind::Dir,
                    "{path:?} lies below {ancestor:?}, a {}",
                    a.kind
                );
            }
        }
        match e.kind {
            FileKind::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                assert!(
                    !target.is_empty() && !target.contains('\0'),
                    "symlink {path:?} -> {target:?}"
                );
            }
            FileKind::Hardlink => {
                let target = e.target.as_deref().unwrap_or_default();
                assert!(
                    last.get(target).is_some_and(|t| t.kind == FileKind::File),
                    "hard link {path:?} to {target:?}, not a file of the list"
                );
            }
            _ => {}
        }
    }
}

/// Appends one member to `ar` bytes (start them with [`AR_MAGIC`]), as dpkg-deb writes
/// it: a 60-byte header, the bytes, a padding byte to an even offset.
pub fn ar_member(ar: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    let header = format!(
        "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        name,
        0,
        0,
        0,
        "100644",
        bytes.len()
    );
    ar.extend_from_slice(header.as_bytes());
    ar.extend_from_slice(bytes);
    if bytes.len() % 2 == 1 {
        ar.push(b'\n');
    }
}

/// The global header of an `ar` archive.
pub const AR_MAGIC: &[u8] = b"!<arch>\n";

/// A `.deb` of `debian-binary`, `control.tar` and `data.tar`, uncompressed.
pub fn deb(control_tar: &[u8], data_tar: &[u8]) -> Vec<u8> {
    let mut ar = AR_MAGIC.to_vec();
    ar_member(&mut ar, "debian-binary", b"2.0\n");
    ar_member(&mut ar, "control.tar", control_tar);
    ar_member(&mut ar, "data.tar", data_tar);
    ar
}

/// A minimal valid control file.
pub const CONTROL: &str = "Package: hello\nVersion: 1.0-1\nArchitecture: amd64\n\
    Maintainer: nobody <nobody@example.org>\nDescription: a seed\n";

/// A control member holding `./control` with [`CONTROL`].
pub fn control_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(CONTROL.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    // Building into a Vec cannot fail.
    let _ = b.append_data(&mut h, "./control", CONTROL.as_bytes());
    b.into_inner().unwrap_or_default()
}
