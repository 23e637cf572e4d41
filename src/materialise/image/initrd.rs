//! The initramfs: a newc cpio archive, written in-process and deterministically (sorted
//! names, parents first, sequential inode numbers, one mtime, root-owned), holding
//! appliance's init, its configuration and the kernel modules the boot needs.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// appliance's init, built by build.rs from `init/main.rs`.
const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/appliance-init"));

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File { mode: u32, bytes: Vec<u8> },
    Char { major: u32, minor: u32 },
}

/// The initramfs being put together, by path (relative, no leading `/`).
#[derive(Debug, Default)]
pub(super) struct Initrd {
    nodes: BTreeMap<String, Node>,
}

impl Initrd {
    /// An initramfs with the init, its configuration `config`, the console and null
    /// devices the kernel and the init's runtime open before /dev is mounted, and the
    /// mount points the init uses.
    pub fn new(config: &str) -> Initrd {
        let mut initrd = Initrd::default();
        for dir in ["dev", "proc", "sys", "root"] {
            initrd.dir(dir);
        }
        initrd
            .nodes
            .insert("dev/console".to_string(), Node::Char { major: 5, minor: 1 });
        initrd
            .nodes
            .insert("dev/null".to_string(), Node::Char { major: 1, minor: 3 });
        initrd.file("init", 0o755, INIT.to_vec());
        initrd.file(
            super::config::PATH.trim_start_matches('/'),
            0o644,
            config.as_bytes().to_vec(),
        );
        initrd
    }

    fn dir(&mut self, path: &str) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            self.nodes
                .entry(path[..at + i].to_string())
                .or_insert(Node::Dir);
            at += i + 1;
        }
        self.nodes.insert(path.to_string(), Node::Dir);
    }

    /// Adds a root-owned file at `path` (relative), with its parent folders.
    pub fn file(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.nodes
            .insert(path.to_string(), Node::File { mode, bytes });
    }

    /// Writes the archive; `mtime` stamps every member.
    pub fn write(&self, mut out: impl Write, mtime: u32) -> io::Result<()> {
        let too_big = |path: &str| {
            io::Error::other(format!("{path}: a newc cpio member holds at most 4 GiB"))
        };
        for (ino, (path, node)) in (1u32..).zip(&self.nodes) {
            let (mode, nlink, size, (major, minor)) = match node {
                Node::Dir => (0o040755, 2, 0, (0, 0)),
                Node::File { mode, bytes } => (
                    0o100000 | mode,
                    1,
                    u32::try_from(bytes.len()).map_err(|_| too_big(path))?,
                    (0, 0),
                ),
                Node::Char { major, minor } => (0o020600, 1, 0, (*major, *minor)),
            };
            let mut writer = cpio::NewcBuilder::new(path)
                .ino(ino)
                .mode(mode)
                .uid(0)
                .gid(0)
                .nlink(nlink)
                .mtime(mtime)
                .rdev_major(major)
                .rdev_minor(minor)
                .write(&mut out, size);
            if let Node::File { bytes, .. } = node {
                writer.write_all(bytes)?;
            }
            writer.finish()?;
        }
        cpio::newc::trailer(&mut out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Vec<u8> {
        let mut initrd = Initrd::new("group test\nroot /dev/vda\nfstype ext4\n");
        initrd.file(
            "lib/modules/6.1.0-1-amd64/kernel/fs/ext4/ext4.ko",
            0o644,
            b"\x7fELF ext4".to_vec(),
        );
        let mut bytes = Vec::new();
        initrd.write(&mut bytes, 1_700_000_000).unwrap();
        bytes
    }

    /// Every member, read back with the cpio crate: (name, ino, mode, uid, mtime, data).
    fn members(mut bytes: &[u8]) -> Vec<(String, u32, u32, u32, u32, Vec<u8>)> {
        let mut found = Vec::new();
        loop {
            let mut reader = cpio::NewcReader::new(bytes).unwrap();
            if reader.entry().is_trailer() {
                return found;
            }
            let e = reader.entry().clone();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut reader, &mut data).unwrap();
            found.push((
                e.name().to_string(),
                e.ino(),
                e.mode(),
                e.uid(),
                e.mtime(),
                data,
            ));
            bytes = reader.finish().unwrap();
        }
    }

    #[test]
    fn members_are_sorted_numbered_root_owned_and_parents_first() {
        let bytes = sample();
        assert_eq!(bytes, sample(), "the same input gives the same bytes");
        let found = members(&bytes);
        let names: Vec<&str> = found.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "dev/null",
                "init",
                "init.conf",
                "lib",
                "lib/modules",
                "lib/modules/6.1.0-1-amd64",
                "lib/modules/6.1.0-1-amd64/kernel",
                "lib/modules/6.1.0-1-amd64/kernel/fs",
                "lib/modules/6.1.0-1-amd64/kernel/fs/ext4",
                "lib/modules/6.1.0-1-amd64/kernel/fs/ext4/ext4.ko",
                "proc",
                "root",
                "sys",
            ]
        );
        for (i, (name, ino, mode, uid, mtime, _)) in found.iter().enumerate() {
            assert_eq!(*ino, i as u32 + 1, "{name}");
            assert_eq!((*uid, *mtime), (0, 1_700_000_000), "{name}");
            if name == "init" {
                assert_eq!(*mode, 0o100755);
            }
        }
        let console = found.iter().find(|m| m.0 == "dev/console").unwrap();
        assert_eq!(console.2, 0o020600);
        let init = found.iter().find(|m| m.0 == "init").unwrap();
        assert!(init.5.starts_with(b"\x7fELF"), "the init is an ELF program");
    }

    #[test]
    fn gnu_cpio_reads_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd.img");
        std::fs::write(&path, sample()).unwrap();
        let listing = Command::new("cpio")
            .args(["-t", "-v", "-F"])
            .arg(&path)
            .output();
        let Ok(listing) = listing else {
            eprintln!("skipped: no GNU cpio on this machine");
            return;
        };
        assert!(listing.status.success(), "{listing:?}");
        let text = String::from_utf8(listing.stdout).unwrap();
        assert!(text.contains("ext4.ko"), "{text}");
        let console = text.lines().find(|l| l.ends_with("dev/console")).unwrap();
        assert!(console.starts_with("crw-------"), "{console}");
        assert!(console.contains("5,"), "{console}");
        let init = text.lines().find(|l| l.ends_with(" init")).unwrap();
        assert!(
            init.starts_with("-rwxr-xr-x") && init.contains("root"),
            "{init}"
        );
    }
}
