//! Reading a file that was a regular file a moment ago without following a symlink
//! swapped in since: the host's files, a configured tree's, an overlay's, where a
//! hostile package or user may have left links to anywhere.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How much of a file the readers here take at once.
pub const CHUNK: usize = 1 << 16;

/// Opens the regular file at `host` for reading; a symlink there is an error (`ELOOP`).
fn open(host: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(host)
}

/// The whole of the file at `host`.
pub fn read(host: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(host)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads the file at `host` through `buffer`, giving each chunk read to `each`, which
/// may stop the read with an error; returns how many bytes it read.
pub fn read_chunks(
    host: &Path,
    buffer: &mut [u8],
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut file = open(host)?;
    let mut size = 0u64;
    loop {
        let n = match file.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        each(&buffer[..n])?;
        size += n as u64;
    }
    Ok(size)
}

/// Size and BLAKE3 (hex) of the file at `host`, read through `buffer`. The size is what
/// was read, so it always agrees with the digest.
pub fn hash(host: &Path, buffer: &mut [u8]) -> io::Result<(u64, String)> {
    let mut hasher = blake3::Hasher::new();
    let size = read_chunks(host, buffer, |chunk| {
        hasher.update(chunk);
        Ok(())
    })?;
    Ok((size, hasher.finalize().to_hex().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_in_chunks_and_a_link_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();

        let mut buffer = vec![0; 4096];
        let (size, digest) = hash(&file, &mut buffer).unwrap();
        assert_eq!(size, 100_000);
        assert_eq!(digest, blake3::hash(&bytes).to_hex().to_string());
        assert_eq!(read(&file).unwrap(), bytes);
        let mut chunks = 0;
        let stopped = read_chunks(&file, &mut buffer, |_| {
            chunks += 1;
            Err(io::Error::other("enough"))
        });
        assert!(stopped.is_err() && chunks == 1);
        for refused in [read(&link).err(), hash(&link, &mut buffer).err()] {
            assert_eq!(refused.unwrap().raw_os_error(), Some(libc::ELOOP));
        }
    }
}
