//! `/etc/ld.so.cache`: what libc-bin's trigger would write after installing the packages.
//!
//! The cache is made by the host's own `ldconfig`, run on a staging folder that holds
//! only what ldconfig reads: the tree's folders and symlinks, its `ld.so.conf` files and
//! its shared libraries. `ldconfig -r` resolves every path inside the staging root
//! without `chroot(2)`, so this works unprivileged and the bytes do not depend on who
//! compiles. Nothing of the host's own libraries or configuration is consulted.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lock::{FileEntry, FileKind};

use super::Generated;

/// Where the cache lives in the appliance.
pub const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// The configuration ldconfig starts from; its presence (libc-bin ships it) is what makes
/// a tree need a cache.
const LD_SO_CONF: &str = "/etc/ld.so.conf";

/// Why the cache could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LdCacheError {
    /// The staging folder could not be written.
    #[error("cannot stage {} for ldconfig: {source}", path.display())]
    Stage {
        /// The staged path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The bytes of a library the tree holds could not be had.
    #[error("cannot read {path} for ldconfig: {source}")]
    Read {
        /// The path in the appliance.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// ldconfig could not be run or failed.
    #[error("ldconfig failed making {LD_SO_CACHE}: {detail}")]
    Ldconfig {
        /// Why, with ldconfig's own output when it ran.
        detail: String,
    },
}

/// Whether ldconfig reads the content of the file at appliance path `path`: its
/// configuration, and files named like shared libraries or the dynamic loader (the
/// names ldconfig looks at; it reads their ELF headers for the SONAME).
pub fn ldconfig_reads(path: &str) -> bool {
    if path == LD_SO_CONF || path.starts_with("/etc/ld.so.conf.d/") {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    (name.starts_with("lib") || name.starts_with("ld-")) && name.contains(".so")
}

/// The cache for the tree of `entries` (`None` when the tree has no `/etc/ld.so.conf`,
/// so no libc-bin). `content` gives the bytes of a regular file of the tree that
/// [`ldconfig_reads`]; `ldconfig` is the program to run.
pub fn ld_so_cache(
    entries: &[&FileEntry],
    content: impl Fn(&FileEntry) -> io::Result<Vec<u8>>,
    ldconfig: &Path,
) -> Result<Option<Generated>, LdCacheError> {
    if !entries.iter().any(|e| e.path == LD_SO_CONF) {
        return Ok(None);
    }
    let stage = crate::scratch::private_dir("appliance-ldconfig").map_err(|source| {
        LdCacheError::Stage {
            path: std::env::temp_dir(),
            source,
        }
    })?;
    let root = stage.path.as_path();
    let staged = |path: &str| root.join(path.trim_start_matches('/'));
    let stage_error = |path: PathBuf| move |source| LdCacheError::Stage { path, source };
    // Parents before children: the entries are sorted by path.
    let mut sorted: Vec<&FileEntry> = entries.to_vec();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for entry in sorted {
        if entry.path == "/" {
            continue;
        }
        let at = staged(&entry.path);
        match entry.kind {
            FileKind::Dir => fs::create_dir_all(&at).map_err(stage_error(at.clone()))?,
            FileKind::Symlink => {
                let target = entry.target.as_deref().unwrap_or_default();
                symlink(target, &at).map_err(stage_error(at.clone()))?;
            }
            FileKind::File | FileKind::Hardlink if ldconfig_reads(&entry.path) => {
                let bytes = content(entry).map_err(|source| LdCacheError::Read {
                    path: entry.path.clone(),
                    source,
                })?;
                fs::write(&at, bytes).map_err(stage_error(at.clone()))?;
            }
            _ => {}
        }
    }
    // -X: leave links alone (the lock already has the packages' own); -C inside the root.
    let output = Command::new(ldconfig)
        .arg("-X")
        .arg("-r")
        .arg(root)
        .args(["-C", LD_SO_CACHE, "-f", LD_SO_CONF])
        .output()
        .map_err(|e| LdCacheError::Ldconfig {
            detail: format!("cannot run {}: {e}", ldconfig.display()),
        })?;
    if !output.status.success() {
        return Err(LdCacheError::Ldconfig {
            detail: format!(
                "{} exited with {}: {}",
                ldconfig.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    let cache = staged(LD_SO_CACHE);
    let bytes = fs::read(&cache).map_err(stage_error(cache))?;
    let mut generated = Generated::default();
    generated.root_file(LD_SO_CACHE, bytes);
    Ok(Some(generated))
}

/// The host's `ldconfig`: libc-bin puts it in `/sbin` (`/usr/sbin` on merged /usr),
/// which a non-root PATH often lacks.
pub fn host_ldconfig() -> PathBuf {
    ["/usr/sbin/ldconfig", "/sbin/ldconfig"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("ldconfig"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: FileKind, target: Option<&str>) -> FileEntry {
        FileEntry {
            kind,
            target: target.map(str::to_string),
            ..FileEntry::directory(path)
        }
    }

    /// A tree with the host's real libc and libz (hermetic otherwise: its own ld.so.conf
    /// naming one folder), merged /usr through a top-level `lib` link.
    fn tree() -> Vec<FileEntry> {
        let dir = |p| entry(p, FileKind::Dir, None);
        let file = |p| entry(p, FileKind::File, None);
        vec![
            dir("/"),
            dir("/etc"),
            file("/etc/ld.so.conf"),
            entry("/lib", FileKind::Symlink, Some("usr/lib")),
            dir("/usr"),
            dir("/usr/lib"),
            dir("/usr/lib/x86_64-linux-gnu"),
            file("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            file("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"),
            entry(
                "/usr/lib/x86_64-linux-gnu/libz.so.1",
                FileKind::Symlink,
                Some("libz.so.1.2.13"),
            ),
            file("/usr/lib/x86_64-linux-gnu/not-a-library.txt"),
        ]
    }

    fn refs(entries: &[FileEntry]) -> Vec<&FileEntry> {
        entries.iter().collect()
    }

    fn content(entry: &FileEntry) -> io::Result<Vec<u8>> {
        match entry.path.as_str() {
            "/etc/ld.so.conf" => Ok(b"/lib/x86_64-linux-gnu\n".to_vec()),
            "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13" => {
                fs::read("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13")
            }
            path => fs::read(path),
        }
    }

    fn listing(cache: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ld.so.cache");
        fs::write(&path, cache).unwrap();
        let out = Command::new(host_ldconfig())
            .arg("-p")
            .arg("-C")
            .arg(&path)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    fn host_has_libz() -> bool {
        Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13").is_file() && host_ldconfig().is_file()
    }

    #[test]
    fn cache_lists_the_tree_libraries_at_their_appliance_paths_and_is_stable() {
        if !host_has_libz() {
            eprintln!("skipped: the host lacks libz 1.2.13 or ldconfig");
            return;
        }
        let made = ld_so_cache(&refs(&tree()), content, &host_ldconfig())
            .unwrap()
            .unwrap();
        assert_eq!(made.entries.len(), 1);
        assert_eq!(made.entries[0].path, LD_SO_CACHE);
        let bytes = &made.blobs[0];
        let listed = listing(bytes);
        assert!(
            listed.contains("libz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1"),
            "{listed}"
        );
        assert!(listed.contains("libc.so.6 (libc6,x86-64)"), "{listed}");
        assert!(!listed.contains("not-a-library"), "{listed}");
        // Nothing of the host beyond the tree: the host has many more libraries.
        assert!(
            listed.starts_with("3 libs found") || listed.starts_with("2 libs found"),
            "{listed}"
        );
        let again = ld_so_cache(&refs(&tree()), content, &host_ldconfig())
            .unwrap()
            .unwrap();
        assert_eq!(&again.blobs[0], bytes);
    }

    #[test]
    fn no_ld_so_conf_means_no_cache_and_no_ldconfig_run() {
        let entries: Vec<FileEntry> = tree()
            .into_iter()
            .filter(|e| e.path != LD_SO_CONF)
            .collect();
        let made =
            ld_so_cache(&refs(&entries), content, Path::new("/nonexistent/ldconfig")).unwrap();
        assert!(made.is_none());
    }

    #[test]
    fn unreadable_library_and_missing_ldconfig_are_clear_errors() {
        let err = ld_so_cache(
            &refs(&tree()),
            |e| match e.path.as_str() {
                "/usr/lib/x86_64-linux-gnu/libc.so.6" => Err(io::Error::other("gone")),
                _ => Ok(Vec::new()),
            },
            &host_ldconfig(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read /usr/lib/x86_64-linux-gnu/libc.so.6 for ldconfig: gone"
        );
        let err = ld_so_cache(
            &refs(&tree()),
            |_| Ok(Vec::new()),
            Path::new("/nonexistent/ldconfig"),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "ldconfig failed making /etc/ld.so.cache: cannot run /nonexistent/ldconfig"
            ),
            "{err}"
        );
    }

    #[test]
    fn ldconfig_reads_libraries_loader_and_configuration_only() {
        assert!(ldconfig_reads("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(ldconfig_reads("/usr/lib64/ld-linux-x86-64.so.2"));
        assert!(ldconfig_reads("/etc/ld.so.conf.d/x86_64-linux-gnu.conf"));
        assert!(!ldconfig_reads("/usr/lib/python3/dist-packages/_foo.so"));
        assert!(!ldconfig_reads("/usr/bin/bash"));
    }
}
