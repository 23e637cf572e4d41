//! The `.rpm` reader, on a file as a pool holds it, and the header reader, on a blob as
//! an rpmdb holds it. The first byte picks the input:
//! - even: the rest is the whole archive;
//! - odd: the rest is a bare header blob (no magic), as rpmdb.sqlite stores one.
//!
//! Checked: no panic; an archive's errors name it; every file a header lists is absolute
//! and normalised, listed once, and no file lies below a symlink or file of the same
//! header; the payload hands over each regular file once, as long as its header says.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use appliance::lock::FileKind;
use appliance::source::Origin;
use appliance::source::rpm::{HeaderFile, RpmArchive, RpmHeader};
use appliance_fuzz::normalised;
use libfuzzer_sys::fuzz_target;

/// The reader opens a path: one file per fuzzing process, rewritten for every input.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::var_os("APPLIANCE_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        dir.join(format!("appliance-fuzz-{}.rpm", std::process::id()))
    })
}

/// What must hold of any file list a header gave.
fn check_files(files: &[HeaderFile]) {
    let mut seen = HashSet::new();
    let kinds: HashMap<&str, FileKind> = files.iter().map(|f| (f.path.as_str(), f.kind)).collect();
    for f in files {
        assert!(normalised(&f.path), "accepted a bad path {:?}", f.path);
        assert!(seen.insert(f.path.as_str()), "{:?} listed twice", f.path);
        assert!(f.mode <= 0o7777, "mode {:o} of {:?}", f.mode, f.path);
        if f.kind == FileKind::Hardlink {
            let target = f.target.as_deref().unwrap_or_default();
            assert_eq!(kinds.get(target), Some(&FileKind::File), "hard link {:?}", f.path);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        let Ok(header) = RpmHeader::from_blob(rest) else {
            return;
        };
        if let Ok(files) = header.files() {
            check_files(&files);
        }
        let _ = header.package(Origin::Installed, None);
        let _ = header.scriptlets();
        assert_eq!(header.blob(), rest);
        return;
    }
    let path = scratch();
    let written = std::fs::File::create(path).and_then(|mut f| f.write_all(rest));
    if written.is_err() {
        return;
    }
    let named = |message: String| {
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
    };
    let archive = match RpmArchive::open(path) {
        Ok(archive) => archive,
        Err(err) => return named(err.to_string()),
    };
    check_files(&archive.files);
    let sizes: HashMap<&str, u64> = (archive.files.iter()).map(|f| (f.path.as_str(), f.size)).collect();
    let mut handed = HashSet::new();
    let walked = archive.for_each_file(|file, bytes| {
        assert!(handed.insert(file.path.clone()), "{:?} handed over twice", file.path);
        assert_eq!(sizes.get(file.path.as_str()), Some(&(bytes.len() as u64)), "{:?}", file.path);
        Ok(())
    });
    if let Err(err) = walked {
        named(err.to_string());
    }
});
