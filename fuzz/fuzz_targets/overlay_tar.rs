//! The tarball overlay reader, on an uncompressed tar stream (decompression is the
//! compressors' own business; what a tarball holds is ours).
//!
//! Checked: no panic; every accepted entry is absolute and normalised (never `..`),
//! never lies below an entry of the overlay that is not a directory, hard links point
//! at regular files of the overlay; each regular file's blob is its bytes (size and
//! BLAKE3 match the entry); an error names the overlay.

#![no_main]

use std::path::Path;

use appliance::lock::FileKind;
use appliance::compile::extra::overlay_tar;
use appliance::source::accounts::Accounts;
use appliance_fuzz::check_entries;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/ws/overlays/fuzz.tar");
    match overlay_tar(path, data, &Accounts::default()) {
        Ok(extra) => {
            check_entries(&extra.entries);
            let files: Vec<_> = extra
                .entries
                .iter()
                .filter(|e| e.kind == FileKind::File)
                .collect();
            assert_eq!(files.len(), extra.blobs.len());
            for (e, blob) in files.iter().zip(&extra.blobs) {
                assert_eq!(e.size, blob.len() as u64, "{:?}", e.path);
                let digest = blake3::hash(blob).to_hex().to_string();
                assert_eq!(e.digest.as_deref(), Some(digest.as_str()), "{:?}", e.path);
            }
            for e in &extra.entries {
                assert_ne!(e.path, "/", "the overlay root became an entry");
            }
        }
        Err(err) => {
            let message = err.to_string();
            assert!(
                message.contains("overlay /ws/overlays/fuzz.tar"),
                "{message}"
            );
        }
    }
});
