//! The minimal `/dev` of a chroot, as mmdebstrap makes it: the character devices
//! programs open by name, the `/proc/self/fd` links, and `pts` and `shm` folders. They are
//! lock entries like any other; materialising them needs root (mknod).

use super::Generated;
use crate::lock::{FileEntry, FileKind};

/// (name, mode, major, minor, group, gid) of each device node.
const NODES: &[(&str, u32, u32, u32, &str, u32)] = &[
    ("console", 0o600, 5, 1, "root", 0),
    ("full", 0o666, 1, 7, "root", 0),
    ("null", 0o666, 1, 3, "root", 0),
    ("ptmx", 0o666, 5, 2, "root", 0),
    ("random", 0o666, 1, 8, "root", 0),
    ("tty", 0o666, 5, 0, "tty", 5),
    ("urandom", 0o666, 1, 9, "root", 0),
    ("zero", 0o666, 1, 5, "root", 0),
];

const LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stderr", "/proc/self/fd/2"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
];

/// The id of group `name` in a group file's text (`etc/group` or base-passwd's master).
pub fn group_id(group_file: &str, name: &str) -> Option<u32> {
    group_file.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name))
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// The `/dev` entries. `tty_gid` is the `tty` group's id in the appliance (5 in Debian's
/// base-passwd), so the node's group matches the generated `/etc/group`.
pub fn dev(tty_gid: Option<u32>) -> Generated {
    let mut generated = Generated::default();
    generated.entries.push(FileEntry::directory("/dev"));
    for (name, mode, major, minor, group, gid) in NODES {
        let (group, gid) = match (*group, tty_gid) {
            ("tty", Some(id)) => ("tty", id),
            ("tty", None) => ("root", 0),
            _ => (*group, *gid),
        };
        generated.entries.push(FileEntry {
            kind: FileKind::Char,
            mode: *mode,
            device: Some((*major, *minor)),
            group: group.to_string(),
            gid,
            ..FileEntry::directory(&format!("/dev/{name}"))
        });
    }
    for (name, target) in LINKS {
        generated.symlink(&format!("/dev/{name}"), target);
    }
    generated.entries.push(FileEntry::directory("/dev/pts"));
    generated.entries.push(FileEntry {
        mode: 0o1777,
        ..FileEntry::directory("/dev/shm")
    });
    generated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_tty_and_links() {
        let g = dev(Some(5));
        let find = |p: &str| g.entries.iter().find(|e| e.path == p).unwrap();
        let null = find("/dev/null");
        assert_eq!(
            (null.kind, null.device, null.mode),
            (FileKind::Char, Some((1, 3)), 0o666)
        );
        assert_eq!(
            (find("/dev/tty").gid, find("/dev/tty").group.as_str()),
            (5, "tty")
        );
        assert_eq!(find("/dev/fd").target.as_deref(), Some("/proc/self/fd"));
        assert_eq!(find("/dev/shm").mode, 0o1777);
        assert_eq!(
            dev(None)
                .entries
                .iter()
                .find(|e| e.path == "/dev/tty")
                .unwrap()
                .gid,
            0
        );
        assert!(g.blobs.is_empty());
    }
}
