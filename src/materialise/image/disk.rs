//! The root disk: an ext4 filesystem made by `mkfs.ext4 -d` from a staged tree, then
//! finished by `debugfs` with everything a staged tree cannot carry for any user
//! (owners, modes, devices, capabilities, and every inode's times), so the disk is the
//! same whoever builds it; converted by `qemu-img` to qcow2 or vmdk on request.
//!
//! Reproducible: the UUID and directory hash seed derive from the lock id, the host's
//! mke2fs.conf is replaced by a fixed one, mkfs and debugfs run with
//! `E2FSPROGS_FAKE_TIME` and the C locale, and mkfs copies directories in sorted order.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::materialise::chroot::{Metadata, populate};
use crate::materialise::output::Target;
use crate::materialise::plan::{Body, Plan};
use crate::materialise::{Disk, MaterialiseError, Supply, io_error};
use crate::progress::Progress;
use crate::system::ROOT_LABEL;

use super::ImageError;

/// The filesystem label of every image's root: the one a kernel flavor's fstab mounts.
const LABEL: &str = ROOT_LABEL;

const BLOCK: u64 = 4096;
const MIB: u64 = 1 << 20;

/// The features and sizes mke2fs uses (Debian 12's ext4 defaults), fixed here so the
/// host's `/etc/mke2fs.conf` cannot change an image.
const MKE2FS_CONF: &str = "\
[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384

[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
";

/// The identity and size of a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Geometry {
    /// The filesystem UUID.
    pub uuid: String,
    /// The seed of directory hashes (random by default, which would change the bytes).
    pub hash_seed: String,
    /// The raw image's size in bytes, a whole number of MiB.
    pub bytes: u64,
    /// The number of inodes.
    pub inodes: u64,
}

/// The disk of `plan` for the lock `lock_id`: UUID and hash seed from the id; room for
/// the content, its directories and inodes, with a quarter more for the running system,
/// the journal and the filesystem's own metadata.
pub(super) fn geometry(plan: &Plan, lock_id: &str) -> Geometry {
    let uuid = |context: &str| {
        let key = blake3::derive_key(context, lock_id.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&key[..16]);
        // A random (version 4) UUID, as mke2fs would make one.
        crate::uuid::text(bytes, 4)
    };
    let mut blocks = 0u64;
    let mut names = 0u64;
    for item in &plan.items {
        let name = item.entry.path.rsplit('/').next().unwrap_or_default();
        // A directory entry: inode, lengths, type and the name padded to 4 bytes.
        names += 8 + (name.len() as u64).next_multiple_of(4);
        blocks += match &item.body {
            Body::File(expected) => expected.size.div_ceil(BLOCK),
            Body::Dir => 1,
            // Targets of 60 bytes and more do not fit in the inode.
            Body::Symlink(target) if target.len() >= 60 => 1,
            _ => 0,
        };
    }
    blocks += names.div_ceil(BLOCK) * 2;
    let entries = plan.items.len() as u64 + 1;
    let inodes = (entries + entries / 2).max(entries + 4096);
    let content = blocks * BLOCK;
    let bytes =
        (content + content / 4 + content / 32 + inodes * 256 + 64 * MIB).next_multiple_of(MIB);
    Geometry {
        uuid: uuid("appliance 2026 ext4 filesystem uuid"),
        hash_seed: uuid("appliance 2026 ext4 directory hash seed"),
        bytes,
        inodes,
    }
}

/// Writes the root disk of `plan` into `dir` (OUT's temporary) as `disk.raw`,
/// `disk.qcow2` or `disk.vmdk`.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    plan: &Plan,
    supply: &Supply,
    target: &Target,
    dir: &Path,
    lock_id: &str,
    mtime: libc::time_t,
    disk: Disk,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> Result<(), MaterialiseError> {
    let out = &target.out;
    let stage = target.temp_dir()?;
    populate(
        plan,
        supply,
        &stage.path,
        out,
        mtime,
        Metadata::ContentOnly,
        progress,
        warnings,
    )?;
    let work = target.temp_dir()?;
    let geometry = geometry(plan, lock_id);
    let raw = dir.join("disk.raw");
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&raw)
        .map_err(|e| io_error(out, "create", raw.display(), e))?;
    file.set_len(geometry.bytes)
        .map_err(|e| io_error(out, "size", raw.display(), e))?;
    drop(file);
    let conf = work.path.join("mke2fs.conf");
    fs::write(&conf, MKE2FS_CONF).map_err(|e| io_error(out, "write", conf.display(), e))?;
    // e2fsprogs reads 0 as "no fake time": at mtime 0 the filesystem's own stamps (its
    // superblock, lost+found) say 1; every inode of the tree still gets 0 below.
    let fake_time = mtime.max(1).to_string();

    progress.step("mkfs.ext4");
    supply.used.program(&sbin("mkfs.ext4"));
    run(
        "mkfs.ext4",
        Command::new(sbin("mkfs.ext4"))
            .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256"])
            .arg("-N")
            .arg(geometry.inodes.to_string())
            .arg("-U")
            .arg(&geometry.uuid)
            .arg("-E")
            .arg(format!("root_owner=0:0,hash_seed={}", geometry.hash_seed))
            .args(["-L", LABEL, "-d"])
            .arg(&stage.path)
            .arg(&raw)
            .env("MKE2FS_CONFIG", &conf)
            .env("E2FSPROGS_FAKE_TIME", &fake_time)
            .env("LC_ALL", "C"),
    )?;
    drop(stage);

    progress.step("debugfs");
    supply.used.program(&sbin("debugfs"));
    let commands = work.path.join("debugfs.commands");
    let script = finish_script(plan, mtime, &work.path, out)?;
    fs::write(&commands, script).map_err(|e| io_error(out, "write", commands.display(), e))?;
    debugfs(&commands, &raw, &fake_time)?;
    drop(work);

    let converted = match disk {
        Disk::Raw => return Ok(()),
        Disk::Qcow2 | Disk::Vmdk => dir.join(format!("disk.{}", disk.as_str())),
    };
    progress.step("qemu-img");
    supply.used.program(Path::new("qemu-img"));
    run(
        "qemu-img",
        Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", disk.as_str()])
            .arg(&raw)
            .arg(&converted),
    )?;
    if disk == Disk::Vmdk {
        pin_vmdk_cid(&converted, lock_id)
            .map_err(|e| io_error(out, "write", converted.display(), e))?;
    }
    fs::remove_file(&raw).map_err(|e| io_error(out, "remove", raw.display(), e))
}

/// Runs the debugfs `commands` on the filesystem image `raw`. debugfs exits 0 whatever
/// its commands did; their errors are on stderr, after its version banner.
fn debugfs(commands: &Path, raw: &Path, fake_time: &str) -> Result<(), ImageError> {
    let output = run(
        "debugfs",
        Command::new(sbin("debugfs"))
            .arg("-w")
            .arg("-f")
            .arg(commands)
            .arg(raw)
            .env("E2FSPROGS_FAKE_TIME", fake_time)
            .env("LC_ALL", "C"),
    )?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        let shown: Vec<&str> = errors.iter().take(5).copied().collect();
        Err(ImageError::Tool {
            tool: "debugfs",
            detail: shown.join("; "),
        })
    }
}

/// The debugfs commands that give every inode its locked owner, mode and times, make
/// the devices and set the capabilities; capability values go to files in `work`.
fn finish_script(
    plan: &Plan,
    mtime: libc::time_t,
    work: &Path,
    out: &Path,
) -> Result<String, MaterialiseError> {
    let mut script = String::new();
    inode(&mut script, "/", &plan.root, libc::S_IFDIR, mtime)?;
    for (n, item) in plan.items.iter().enumerate() {
        let path = &item.entry.path;
        let kind = match item.body {
            Body::Dir => libc::S_IFDIR,
            Body::File(_) => libc::S_IFREG,
            Body::Symlink(_) => libc::S_IFLNK,
            Body::Fifo => libc::S_IFIFO,
            // The inode is its target's, set there.
            Body::Hardlink { .. } => continue,
            Body::Device {
                block,
                major,
                minor,
            } => {
                // mknod names an entry of the current directory, never a path.
                let (parent, name) = path.rsplit_once('/').unwrap_or_default();
                let parent = if parent.is_empty() { "/" } else { parent };
                let letter = if block { 'b' } else { 'c' };
                let _ = writeln!(
                    script,
                    "cd {}\nmknod {} {letter} {major} {minor}\ncd /",
                    quote(parent)?,
                    quote(name)?
                );
                if block { libc::S_IFBLK } else { libc::S_IFCHR }
            }
        };
        inode(&mut script, path, item.entry, kind, mtime)?;
        if let Some(value) = &item.caps {
            let file = work.join(format!("caps-{n}"));
            fs::write(&file, value).map_err(|e| io_error(out, "write", file.display(), e))?;
            let _ = writeln!(
                script,
                "ea_set -f {} {} security.capability",
                quote(&file.display().to_string())?,
                quote(path)?
            );
        }
    }
    Ok(script)
}

/// Appends the commands setting one inode's owner, type and mode, and times.
fn inode(
    script: &mut String,
    path: &str,
    entry: &crate::lock::FileEntry,
    kind: libc::mode_t,
    mtime: libc::time_t,
) -> Result<(), ImageError> {
    let path = quote(path)?;
    // Writing to a String cannot fail.
    let _ = write!(
        script,
        "sif {path} uid {}\nsif {path} gid {}\nsif {path} mode 0{:o}\n",
        entry.uid,
        entry.gid,
        kind | entry.mode
    );
    // The package's time where it records one, as rpm would leave it; the change and
    // birth times are this image's making, the run's time.
    let modified = entry.mtime.map_or(mtime, libc::time_t::from);
    for (field, time) in [
        ("atime", modified),
        ("mtime", modified),
        ("ctime", mtime),
        ("crtime", mtime),
    ] {
        let _ = writeln!(script, "sif {path} {field} @{time}");
    }
    Ok(())
}

/// A path as one debugfs argument: quoted, inner quotes doubled.
fn quote(path: &str) -> Result<String, ImageError> {
    if path.contains(['\n', '\r']) {
        return Err(ImageError::Unrepresentable {
            path: path.to_string(),
            reason: "debugfs commands cannot name a path with a line break".to_string(),
        });
    }
    Ok(format!("\"{}\"", path.replace('"', "\"\"")))
}

/// qemu-img writes a random content id (CID) into a vmdk's descriptor and has no option
/// to choose it; it is set here, in place and of the same length, from the lock id.
fn pin_vmdk_cid(path: &Path, lock_id: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut header = [0u8; 44];
    file.read_exact(&mut header)?;
    let bad = |why: &str| std::io::Error::other(format!("not a vmdk qemu-img writes: {why}"));
    if &header[..4] != b"KDMV" {
        return Err(bad("no KDMV magic"));
    }
    let sector = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(word).saturating_mul(512)
    };
    let (offset, size) = (sector(28), sector(36));
    if size == 0 || size > MIB {
        return Err(bad("no embedded descriptor"));
    }
    let mut descriptor = vec![0u8; size as usize];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut descriptor)?;
    let at = descriptor
        .windows(5)
        .position(|w| w == b"\nCID=")
        .ok_or_else(|| bad("no CID in the descriptor"))?
        + 5;
    let cid = &blake3::derive_key("appliance 2026 vmdk content id", lock_id.as_bytes())[..4];
    let cid = hex::encode(cid);
    if descriptor
        .get(at..at + 8)
        .is_none_or(|d| !d.iter().all(u8::is_ascii_hexdigit))
    {
        return Err(bad("the CID is not 8 hex digits"));
    }
    file.seek(SeekFrom::Start(offset + at as u64))?;
    file.write_all(cid.as_bytes())
}

/// A tool of e2fsprogs, which lives in sbin folders a non-root PATH often lacks.
fn sbin(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs a tool to completion; not installed, or failing, is an error naming it.
fn run(tool: &'static str, command: &mut Command) -> Result<std::process::Output, ImageError> {
    let output = command.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ImageError::ToolMissing {
            tool,
            package: if tool == "qemu-img" {
                "qemu-utils"
            } else {
                "e2fsprogs"
            },
        },
        _ => ImageError::Tool {
            tool,
            detail: format!("cannot run it: {e}"),
        },
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ImageError::Tool {
            tool,
            detail: format!(
                "exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::FileKind;
    use crate::materialise::plan::tests::{entry, file, link, lock_of};
    use std::fs::File;

    const ID: &str = "0546057712cee78e7b30e20884d9a85491d3ef029acf3b88b39f341e16081dc4";

    #[test]
    fn uuid_and_hash_seed_derive_from_the_lock_id() {
        let lock = lock_of(vec![entry("/etc", FileKind::Dir)]);
        let plan = Plan::new(&lock).unwrap();
        let one = geometry(&plan, ID);
        assert_eq!(one, geometry(&plan, ID));
        let other = geometry(&plan, &ID.replace('0', "1"));
        assert_ne!(one.uuid, other.uuid);
        assert_ne!(one.uuid, one.hash_seed);
        for uuid in [&one.uuid, &one.hash_seed] {
            let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
            assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");
            assert!("89ab".contains(&uuid[19..20]), "RFC 4122 variant: {uuid}");
        }
    }

    #[test]
    fn size_grows_with_content_and_leaves_room() {
        let small = lock_of(vec![entry("/etc", FileKind::Dir)]);
        let small = geometry(&Plan::new(&small).unwrap(), ID);
        assert_eq!(small.bytes % MIB, 0);
        assert!(small.bytes >= 64 * MIB, "{small:?}");
        assert!(small.inodes >= 4096, "{small:?}");

        let big_file = vec![7u8; 3 * MIB as usize];
        let mut files = vec![entry("/usr", FileKind::Dir), file("/usr/big", &big_file)];
        files.push(link("/usr/long-link", FileKind::Symlink, &"x".repeat(100)));
        let lock = lock_of(files);
        let big = geometry(&Plan::new(&lock).unwrap(), ID);
        // The content and a quarter more, beside the fixed room for metadata.
        assert!(big.bytes >= small.bytes + 3 * MIB, "{big:?} {small:?}");
        assert!(big.bytes >= 3 * MIB + 3 * MIB / 4 + 64 * MIB, "{big:?}");
    }

    #[test]
    fn a_failing_debugfs_command_fails_the_disk() {
        if !sbin("debugfs").is_file() || !sbin("mkfs.ext4").is_file() {
            eprintln!("skipped: no e2fsprogs");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk.raw");
        File::create(&raw).unwrap().set_len(8 * MIB).unwrap();
        run(
            "mkfs.ext4",
            Command::new(sbin("mkfs.ext4")).args(["-q", "-F"]).arg(&raw),
        )
        .unwrap();
        let commands = dir.path().join("commands");
        fs::write(&commands, "sif \"/lost+found\" uid 7\n").unwrap();
        debugfs(&commands, &raw, "1").unwrap();
        fs::write(
            &commands,
            "sif \"/lost+found\" uid 7\nsif \"/nope\" uid 0\n",
        )
        .unwrap();
        let err = debugfs(&commands, &raw, "1").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("debugfs failed: /nope: File not found"),
            "{err}"
        );
    }

    #[test]
    fn debugfs_script_sets_every_inode_and_makes_devices() {
        let mut console = entry("/dev/console", FileKind::Char);
        console.device = Some((5, 1));
        console.mode = 0o600;
        let mut shadow = file("/etc/shadow", b"root:*:1::::::\n");
        shadow.mode = 0o640;
        shadow.gid = 42;
        let mut ping = file("/usr/bin/ping", b"ping");
        ping.caps = Some("0100000200200000".to_string());
        let files = vec![
            entry("/dev", FileKind::Dir),
            console,
            entry("/etc", FileKind::Dir),
            shadow,
            link("/etc/sh\"adow-", FileKind::Hardlink, "/etc/shadow"),
            entry("/usr", FileKind::Dir),
            entry("/usr/bin", FileKind::Dir),
            ping,
        ];
        let lock = lock_of(files);
        let plan = Plan::new(&lock).unwrap();
        let work = tempfile::tempdir().unwrap();
        let script = finish_script(&plan, 7, work.path(), Path::new("out")).unwrap();
        assert!(
            script.starts_with("sif \"/\" uid 0\nsif \"/\" gid 0\nsif \"/\" mode 040755\n"),
            "{script}"
        );
        assert!(
            script.contains(
                "cd \"/dev\"\nmknod \"console\" c 5 1\ncd /\nsif \"/dev/console\" uid 0\n"
            ),
            "{script}"
        );
        assert!(
            script.contains("sif \"/dev/console\" mode 020600\n"),
            "{script}"
        );
        assert!(script.contains("sif \"/etc/shadow\" gid 42\n"), "{script}");
        assert!(
            script.contains("sif \"/etc/shadow\" mode 0100640\n"),
            "{script}"
        );
        assert!(
            script.contains("sif \"/etc/shadow\" crtime @7\n"),
            "{script}"
        );
        assert!(
            !script.contains("adow-"),
            "a hard link shares its target's inode: {script}"
        );
        let caps = work.path().join("caps-7");
        assert_eq!(
            fs::read(&caps).unwrap(),
            hex::decode("0100000200200000").unwrap()
        );
        assert!(
            script.contains(&format!(
                "ea_set -f \"{}\" \"/usr/bin/ping\" security.capability\n",
                caps.display()
            )),
            "{script}"
        );
        assert_eq!(quote("/a \"b\"").unwrap(), "\"/a \"\"b\"\"\"");
        assert!(quote("/a\nb").is_err());
    }
}
