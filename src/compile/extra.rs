//! `hostfile` and `overlay` statements: files that come from outside the packages.
//!
//! Both turn into lock entries without a package, plus the bytes of their regular files,
//! which the compile stores as blobs once every lock is made (the host file or overlay
//! may change or vanish later; the lock must still materialise).
//!
//! Decisions the group language leaves open:
//! - The root of a folder overlay, and a `./` entry of a tarball, never become an entry:
//!   an overlay adds to `/`, it does not restyle it.
//! - A folder overlay's entries are owned by root: a checkout belongs to whoever cloned
//!   it, which says nothing about the appliance. Its modes are kept.
//! - Tarball owners are the header's ids; their names are the sysroot's names for those
//!   ids, or the header's names when the sysroot does not know the id.
//! - A hostfile glob's `*` does not cross `/`; a literal directory before the first
//!   wildcard must be a real directory on the host (not a symlink), so the walk stays
//!   inside the sysroot and the entries sit where the lock can hold them.
//! - Unless the statement says `secret=#true`, a hostfile or folder overlay refuses a
//!   regular file that others may not read, and, before it is read whatever its mode,
//!   one named like the host's secrets (`/etc/shadow`, `/etc/gshadow`, their `-`
//!   backups, `/etc/ssh/ssh_host_*_key`). A tarball's members are the user's own, packed
//!   on purpose: they are taken with the modes their headers give. Whatever a statement
//!   takes, the blob store keeps private.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::archive::{self, Fault, Member, Problem, Repeat, Tree};
use crate::lock::extra::{Extra, ExtraError, Refusal, Secret, Statement};
use crate::lock::{FileEntry, FileKind, has_wildcard, path};
use crate::source::accounts::Accounts;
use crate::source::dpkg::scan;

/// Copies the host files matching `globs` (absolute, as in the group) under `sysroot`.
/// Matched directories come with everything below them; symlinks are kept as links.
/// Secrets are refused unless `secret` (see the module documentation).
pub fn hostfiles(
    sysroot: &Path,
    globs: &[String],
    accounts: &Accounts,
    secret: bool,
) -> Result<Extra, ExtraError> {
    let mut extra = Extra::default();
    for glob in globs {
        let found = extra.entries.len();
        hostfile(sysroot, glob, accounts, secret, &mut extra)?;
        if extra.entries.len() == found {
            return Err(ExtraError::NoMatch {
                glob: glob.clone(),
                sysroot: sysroot.to_path_buf(),
            });
        }
    }
    Ok(extra)
}

fn hostfile(
    sysroot: &Path,
    glob: &str,
    accounts: &Accounts,
    secret: bool,
    extra: &mut Extra,
) -> Result<(), ExtraError> {
    let matcher = GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| ExtraError::BadGlob {
            glob: glob.to_string(),
            message: e.kind().to_string(),
        })?
        .compile_matcher();
    let statement = Statement::Hostfile(glob.to_string());
    let components: Vec<&str> = glob.split('/').filter(|c| !c.is_empty()).collect();
    let literal = components.iter().take_while(|c| !has_wildcard(c)).count();
    let mut dir = String::new();
    for (i, component) in components[..literal].iter().enumerate() {
        dir = format!("{dir}/{component}");
        let host = sysroot.join(&dir[1..]);
        let meta = match fs::symlink_metadata(&host) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(ExtraError::Io {
                    statement,
                    path: host,
                    source,
                });
            }
        };
        if i + 1 == components.len() {
            // The whole glob is literal: this is the one match.
            let mut source = Source {
                statement: &statement,
                place: Place::Sysroot(accounts),
                secret,
                extra,
            };
            return source.add_tree(&host, &dir, &meta);
        }
        let refusal = if meta.file_type().is_symlink() {
            Refusal::SymlinkInGlob
        } else if !meta.is_dir() {
            // A glob below a file matches nothing.
            return Ok(());
        } else {
            continue;
        };
        return Err(ExtraError::Refused {
            statement,
            entry: dir,
            reason: refusal,
        });
    }
    let depth = if glob.contains("**") {
        usize::MAX
    } else {
        components.len()
    };
    let mut source = Source {
        statement: &statement,
        place: Place::Sysroot(accounts),
        secret,
        extra,
    };
    source.search(sysroot, &dir, &matcher, depth - literal)
}

/// Reads an overlay: a folder, or a tarball named `.tar`, `.tar.gz`/`.tgz`, `.tar.xz` or
/// `.tar.zst`. A folder's secrets are refused unless `secret` (see the module
/// documentation).
pub fn overlay(path: &Path, accounts: &Accounts, secret: bool) -> Result<Extra, ExtraError> {
    let statement = Statement::Overlay(path.to_path_buf());
    let io_error = |source| ExtraError::Io {
        statement: statement.clone(),
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io_error)?;
    let mut extra = Extra::default();
    if meta.is_dir() {
        // Its real path, so that `overlay "/etc/ssh/.."` is seen to hold `/etc/shadow`.
        let root = fs::canonicalize(path).map_err(io_error)?;
        let mut source = Source {
            statement: &statement,
            place: Place::Folder,
            secret,
            extra: &mut extra,
        };
        source.walk(&root, "")?;
        return Ok(extra);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let file = File::open(path).map_err(io_error)?;
    let decoded: Box<dyn Read> = if name.ends_with(".tar") {
        Box::new(file)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if name.ends_with(".tar.xz") {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(file))
    } else if name.ends_with(".tar.zst") {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(io_error)?)
    } else {
        return Err(ExtraError::NotAnOverlay {
            path: path.to_path_buf(),
        });
    };
    overlay_tar(path, decoded, accounts)
}

/// Reads `tar`, an uncompressed tar stream, as the tarball overlay `path` (which only
/// names it in errors): the same checks as [`overlay`], with no file to open, so that
/// untrusted bytes can be checked (and fuzzed) on their own. Every entry it returns has
/// an absolute, normalised path and never lies below another entry that is not a
/// directory.
pub fn overlay_tar<'r>(
    path: &Path,
    tar: impl Read + 'r,
    accounts: &Accounts,
) -> Result<Extra, ExtraError> {
    let statement = Statement::Overlay(path.to_path_buf());
    let mut extra = Extra::default();
    let mut tree = Tree::new(Repeat::Replaces);
    archive::walk_tar(
        Box::new(tar),
        |path, entry| {
            let mut member = Member::from_tar(path, entry)?;
            tree.add(&member)?;
            // An overlay adds to `/`, it does not restyle it.
            if path == "/" {
                return Ok(());
            }
            let e = &mut member.entry;
            // The sysroot's names for the header's ids, else the header's own names.
            for (name, known) in [
                (&mut e.user, accounts.user(e.uid)),
                (&mut e.group, accounts.group(e.gid)),
            ] {
                if !known.is_empty() {
                    *name = known.to_string();
                }
            }
            if e.kind == FileKind::File {
                let mut bytes = Vec::new();
                e.digest = Some(archive::copy_checked(entry, e.size, &mut bytes)?);
                extra.blobs.push(bytes);
            }
            extra.entries.push(member.entry);
            Ok(())
        },
        |fault| match fault {
            Fault::Refused { raw, problem } => ExtraError::Refused {
                statement: statement.clone(),
                entry: raw.to_string(),
                reason: Refusal::Entry(problem),
            },
            Fault::Stream { after, source } => ExtraError::Tar {
                statement: statement.clone(),
                after: after.map(str::to_string),
                source,
            },
        },
    )?;
    Ok(extra)
}

/// Where entries read from disk are: that says who owns them and which path names them.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// Under the sysroot (hostfiles): the host's owners, named by the sysroot's accounts;
    /// a file is known by its path in the tree, which is its path on that host.
    Sysroot(&'a Accounts),
    /// In a folder overlay: owned by root; a file is known by its path on disk.
    Folder,
}

/// Entries read from a directory tree on disk.
struct Source<'a> {
    statement: &'a Statement,
    place: Place<'a>,
    /// Secrets may be taken (`secret=#true`).
    secret: bool,
    extra: &'a mut Extra,
}

impl Source<'_> {
    fn io(&self, path: &Path, source: io::Error) -> ExtraError {
        ExtraError::Io {
            statement: self.statement.clone(),
            path: path.to_path_buf(),
            source,
        }
    }

    fn refused(&self, entry: &str, reason: Refusal) -> ExtraError {
        ExtraError::Refused {
            statement: self.statement.clone(),
            entry: entry.to_string(),
            reason,
        }
    }

    /// The children of `host` (whose lock path is `path`, empty for the root), sorted by
    /// name so entries come in the same order on every run.
    fn children(&self, host: &Path, path: &str) -> Result<Vec<(PathBuf, String)>, ExtraError> {
        let mut children = Vec::new();
        for item in fs::read_dir(host).map_err(|e| self.io(host, e))? {
            let item = item.map_err(|e| self.io(host, e))?;
            let name = item.file_name();
            let child = format!("{path}/{}", name.to_string_lossy());
            let Some(name) = name.to_str() else {
                return Err(self.refused(&child, Refusal::Entry(Problem::NotUtf8)));
            };
            children.push((item.path(), format!("{path}/{name}")));
        }
        children.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(children)
    }

    /// Adds everything below `host` (not `host` itself).
    fn walk(&mut self, host: &Path, path: &str) -> Result<(), ExtraError> {
        for (child, child_path) in self.children(host, path)? {
            let meta = fs::symlink_metadata(&child).map_err(|e| self.io(&child, e))?;
            self.add_tree(&child, &child_path, &meta)?;
        }
        Ok(())
    }

    /// Adds the entries below `host` that `matcher` takes, descending at most `depth`
    /// more levels.
    fn search(
        &mut self,
        host_root: &Path,
        path: &str,
        matcher: &GlobMatcher,
        depth: usize,
    ) -> Result<(), ExtraError> {
        if depth == 0 {
            return Ok(());
        }
        let host = host_root.join(path.trim_start_matches('/'));
        for (child, child_path) in self.children(&host, path)? {
            let meta = fs::symlink_metadata(&child).map_err(|e| self.io(&child, e))?;
            if matcher.is_match(&child_path) {
                self.add_tree(&child, &child_path, &meta)?;
            } else if meta.is_dir() {
                self.search(host_root, &child_path, matcher, depth - 1)?;
            }
        }
        Ok(())
    }

    /// Adds `host` as `path`, and everything below it when it is a directory.
    fn add_tree(&mut self, host: &Path, path: &str, meta: &Metadata) -> Result<(), ExtraError> {
        path::check(path)
            .map_err(|p| self.refused(path, Refusal::Entry(Problem::Unholdable(p))))?;
        let file_type = meta.file_type();
        let mut caps = None;
        let (kind, size, digest, target) = if file_type.is_dir() {
            (FileKind::Dir, 0, None, None)
        } else if file_type.is_symlink() {
            let text = fs::read_link(host).map_err(|e| self.io(host, e))?;
            let text = text
                .into_os_string()
                .into_string()
                .map_err(|_| self.refused(path, Refusal::Entry(Problem::NotUtf8)))?;
            (FileKind::Symlink, 0, None, Some(text))
        } else if file_type.is_file() {
            self.refuse_secret(host, path, meta)?;
            let bytes = crate::no_follow::read(host).map_err(|e| self.io(host, e))?;
            // A capability (ping's cap_net_raw) is part of what the file is.
            caps = scan::capability(host).map_err(|e| self.io(host, e))?;
            let digest = blake3::hash(&bytes).to_hex().to_string();
            let size = bytes.len() as u64;
            self.extra.blobs.push(bytes);
            (FileKind::File, size, Some(digest), None)
        } else {
            let what = if file_type.is_socket() {
                "socket"
            } else if file_type.is_fifo() {
                "fifo"
            } else {
                "device"
            };
            return Err(self.refused(path, Refusal::Special(what)));
        };
        let (uid, gid, user, group) = match self.place {
            Place::Sysroot(accounts) => (
                meta.uid(),
                meta.gid(),
                accounts.user(meta.uid()).to_string(),
                accounts.group(meta.gid()).to_string(),
            ),
            Place::Folder => (0, 0, "root".to_string(), "root".to_string()),
        };
        self.extra.entries.push(FileEntry {
            kind,
            mode: meta.mode() & 0o7777,
            uid,
            gid,
            user,
            group,
            size,
            digest,
            target,
            caps,
            ..FileEntry::directory(path)
        });
        if kind == FileKind::Dir {
            self.walk(host, path)?;
        }
        Ok(())
    }

    /// Refuses the regular file `host` (at `path` in the tree) when it is a secret and
    /// the statement does not say it may take secrets; looks at its name and mode only,
    /// never its bytes.
    fn refuse_secret(&self, host: &Path, path: &str, meta: &Metadata) -> Result<(), ExtraError> {
        if self.secret {
            return Ok(());
        }
        let known_as = match self.place {
            Place::Sysroot(_) => Path::new(path),
            Place::Folder => host,
        };
        let mode = meta.mode() & 0o7777;
        let why = match secret_name(known_as) {
            Some(holds) => Secret::Named(holds),
            None if mode & 0o004 == 0 => Secret::Private(mode),
            None => return Ok(()),
        };
        Err(ExtraError::Secret {
            statement: self.statement.clone(),
            path: known_as.display().to_string(),
            why,
        })
    }
}

/// What a file named like one where a Debian system keeps its secrets holds:
/// `etc/shadow` and `etc/gshadow` (and their `-` backups) the password hashes,
/// `etc/ssh/ssh_host_*_key` an SSH host private key. Matched on the last components, so
/// that an overlay of the host's `/etc` (or `/`) is caught as a hostfile is.
fn secret_name(path: &Path) -> Option<&'static str> {
    let mut names = path.components().rev().map(|c| c.as_os_str());
    let name = names.next()?.to_str()?;
    let dir = names.next()?;
    if dir == "etc" && matches!(name, "shadow" | "shadow-" | "gshadow" | "gshadow-") {
        return Some("the password hashes");
    }
    let key = name.starts_with("ssh_host_") && name.ends_with("_key");
    (key && dir == "ssh" && names.next()? == "etc").then_some("an SSH host private key")
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn accounts(root: &Path) -> Accounts {
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/:/bin/false\n",
        )
        .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\nwww-data:x:33:\n").unwrap();
        Accounts::read(root).unwrap()
    }

    fn write(path: &Path, content: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn entry<'a>(extra: &'a Extra, path: &str) -> &'a FileEntry {
        let found: Vec<&FileEntry> = extra.entries.iter().filter(|e| e.path == path).collect();
        assert_eq!(found.len(), 1, "{path} in {:#?}", extra.entries);
        found[0]
    }

    fn paths(extra: &Extra) -> Vec<&str> {
        extra.entries.iter().map(|e| e.path.as_str()).collect()
    }

    fn hex(content: &str) -> Option<String> {
        Some(blake3::hash(content.as_bytes()).to_hex().to_string())
    }

    #[test]
    fn folder_overlay_keeps_modes_links_and_nesting_as_root() {
        let dir = tempfile::tempdir().unwrap();
        let overlay_dir = dir.path().join("web");
        write(
            &overlay_dir.join("etc/app/conf.d/site.conf"),
            "listen 80;\n",
            0o640,
        );
        write(&overlay_dir.join("etc/motd"), "hello\n", 0o644);
        fs::set_permissions(
            overlay_dir.join("etc/app"),
            fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        symlink("/etc/passwd", overlay_dir.join("etc/app/users")).unwrap();
        symlink("../../..", overlay_dir.join("etc/app/up")).unwrap();

        // site.conf is 0640: others may not read it.
        let extra = overlay(&overlay_dir, &accounts(dir.path()), true).unwrap();
        assert_eq!(
            paths(&extra),
            [
                "/etc",
                "/etc/app",
                "/etc/app/conf.d",
                "/etc/app/conf.d/site.conf",
                "/etc/app/up",
                "/etc/app/users",
                "/etc/motd"
            ]
        );
        let app = entry(&extra, "/etc/app");
        assert_eq!((app.kind, app.mode), (FileKind::Dir, 0o750));
        let conf = entry(&extra, "/etc/app/conf.d/site.conf");
        assert_eq!(
            (conf.kind, conf.mode, conf.size),
            (FileKind::File, 0o640, 11)
        );
        assert_eq!(conf.digest, hex("listen 80;\n"));
        assert_eq!((conf.uid, conf.gid, conf.user.as_str()), (0, 0, "root"));
        assert_eq!(conf.package, None);
        let users = entry(&extra, "/etc/app/users");
        assert_eq!(
            (users.kind, users.target.as_deref()),
            (FileKind::Symlink, Some("/etc/passwd"))
        );
        assert_eq!(
            entry(&extra, "/etc/app/up").target.as_deref(),
            Some("../../..")
        );
        assert_eq!(extra.blobs.len(), 2);
        assert!(extra.blobs.contains(&b"hello\n".to_vec()));
    }

    #[test]
    fn folder_overlay_refuses_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let overlay_dir = dir.path().join("o");
        fs::create_dir_all(overlay_dir.join("run")).unwrap();
        let fifo = std::ffi::CString::new(overlay_dir.join("run/pipe").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let err = overlay(&overlay_dir, &Accounts::default(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("overlay "), "{err}");
        assert!(err.contains("entry `/run/pipe` is a fifo"), "{err}");
    }

    #[test]
    fn missing_overlay_and_unknown_extension_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let err = overlay(&missing, &Accounts::default(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read") && err.contains("gone"), "{err}");
        let zip = dir.path().join("o.zip");
        fs::write(&zip, "PK").unwrap();
        let err = (overlay(&zip, &Accounts::default(), false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("o.zip: not a folder or a tarball"), "{err}");
    }

    /// A header with raw name and link fields, so hostile names get past the tar crate's
    /// own path checks.
    fn header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    }

    enum Member<'a> {
        File(&'a str, &'a str),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
    }

    fn tarball(members: &[Member]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for m in members {
            let (h, data) = match *m {
                Member::File(name, content) => (
                    header(name, tar::EntryType::Regular, content.len() as u64, ""),
                    content,
                ),
                Member::Dir(name) => (header(name, tar::EntryType::Directory, 0, ""), ""),
                Member::Symlink(name, to) => (header(name, tar::EntryType::Symlink, 0, to), ""),
                Member::Hardlink(name, to) => (header(name, tar::EntryType::Link, 0, to), ""),
            };
            builder.append(&h, data.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// A tarball with a little of everything: dirs, a www-data file, a symlink, a hard
    /// link, a device.
    fn rich_tarball() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append(&header("./", tar::EntryType::Directory, 0, ""), &b""[..])
            .unwrap();
        builder
            .append(
                &header("./etc/", tar::EntryType::Directory, 0, ""),
                &b""[..],
            )
            .unwrap();
        let mut site = header("./etc/site", tar::EntryType::Regular, 5, "");
        site.set_mode(0o4750);
        site.set_uid(33);
        site.set_gid(33);
        site.set_cksum();
        builder.append(&site, &b"site\n"[..]).unwrap();
        builder
            .append(
                &header("./etc/alias", tar::EntryType::Link, 0, "./etc/site"),
                &b""[..],
            )
            .unwrap();
        builder
            .append(
                &header("etc/link", tar::EntryType::Symlink, 0, "/etc/site"),
                &b""[..],
            )
            .unwrap();
        let mut null = header("dev/null", tar::EntryType::Char, 0, "");
        null.set_device_major(1).unwrap();
        null.set_device_minor(3).unwrap();
        null.set_mode(0o666);
        null.set_cksum();
        builder.append(&null, &b""[..]).unwrap();
        // A long name goes through a GNU long-name record.
        let mut long = tar::Header::new_gnu();
        long.set_size(2);
        long.set_mode(0o600);
        long.set_entry_type(tar::EntryType::Regular);
        long.set_uid(0);
        long.set_gid(0);
        let long_name = format!("srv/{}/x", "d".repeat(120));
        builder
            .append_data(&mut long, &long_name, &b"ok"[..])
            .unwrap();
        builder.into_inner().unwrap()
    }

    fn read_tarball(name: &str, bytes: &[u8]) -> Result<Extra, ExtraError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        overlay(&path, &accounts(dir.path()), false)
    }

    #[test]
    fn tarball_overlays_in_each_compression() {
        let plain = rich_tarball();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&plain).unwrap();
            e.finish().unwrap()
        };
        let xz = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&plain).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&plain[..], 3).unwrap();
        let expected = read_tarball("o.tar", &plain).unwrap();
        let long = format!("/srv/{}/x", "d".repeat(120));
        assert_eq!(
            paths(&expected),
            [
                "/etc",
                "/etc/site",
                "/etc/alias",
                "/etc/link",
                "/dev/null",
                long.as_str()
            ]
        );
        let site = entry(&expected, "/etc/site");
        assert_eq!(
            (
                site.kind,
                site.mode,
                site.uid,
                site.user.as_str(),
                site.group.as_str()
            ),
            (FileKind::File, 0o4750, 33, "www-data", "www-data")
        );
        assert_eq!((site.size, site.digest.clone()), (5, hex("site\n")));
        let alias = entry(&expected, "/etc/alias");
        assert_eq!(
            (alias.kind, alias.target.as_deref()),
            (FileKind::Hardlink, Some("/etc/site"))
        );
        assert_eq!(
            entry(&expected, "/etc/link").target.as_deref(),
            Some("/etc/site")
        );
        let null = entry(&expected, "/dev/null");
        assert_eq!(
            (null.kind, null.device, null.mode),
            (FileKind::Char, Some((1, 3)), 0o666)
        );
        assert_eq!(entry(&expected, &long).size, 2);
        assert_eq!(expected.blobs, [b"site\n".to_vec(), b"ok".to_vec()]);
        for (name, bytes) in [
            ("o.tar.gz", &gz),
            ("o.tgz", &gz),
            ("o.tar.xz", &xz),
            ("o.tar.zst", &zst),
        ] {
            assert_eq!(read_tarball(name, bytes).unwrap(), expected, "{name}");
        }
    }

    fn refused(members: &[Member]) -> String {
        read_tarball("evil.tar", &tarball(members))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn hostile_tarballs_are_refused_with_the_entry_named() {
        let err = refused(&[Member::File("../x", "x")]);
        assert!(
            err.contains("evil.tar: entry `../x` has a `..` component"),
            "{err}"
        );
        let err = refused(&[Member::File("./a/../../x", "x")]);
        assert!(
            err.contains("entry `./a/../../x` has a `..` component"),
            "{err}"
        );
        let err = refused(&[Member::File("/abs", "x")]);
        assert!(err.contains("entry `/abs` is an absolute name"), "{err}");
        let err = refused(&[Member::File(".//etc/x", "x")]);
        assert!(
            err.contains("entry `.//etc/x` is an absolute name"),
            "{err}"
        );
        let err = refused(&[
            Member::Symlink("link", "/etc"),
            Member::File("link/passwd", "x"),
        ]);
        assert!(
            err.contains("entry `link/passwd` would be written through /link, a symlink"),
            "{err}"
        );
        let err = refused(&[Member::File("f", "x"), Member::File("f/g", "x")]);
        assert!(
            err.contains("entry `f/g` would be written through /f, a file"),
            "{err}"
        );
        let err = refused(&[Member::Hardlink("h", "../../etc/shadow")]);
        assert!(
            err.contains("entry `h` is a hard link to `../../etc/shadow`, which is not an earlier regular file"),
            "{err}"
        );
        let err = refused(&[Member::Hardlink("h", "later"), Member::File("later", "x")]);
        assert!(err.contains("entry `h` is a hard link to `later`"), "{err}");
        let err = refused(&[Member::Dir("d"), Member::Hardlink("h", "d")]);
        assert!(err.contains("entry `h` is a hard link to `d`"), "{err}");
        let err = refused(&[
            Member::File("f", "x"),
            Member::Hardlink("h", "f"),
            Member::Dir("f"),
        ]);
        assert!(
            err.contains("entry `f` replaces a file that earlier hard links"),
            "{err}"
        );
        let err = refused(&[
            Member::Dir("d"),
            Member::File("d/x", "x"),
            Member::Symlink("d", "/etc"),
        ]);
        assert!(err.contains("entry `d` replaces a directory"), "{err}");
        let err = refused(&[Member::File("./", "x")]);
        assert!(err.contains("entry `./` is the root"), "{err}");
    }

    #[test]
    fn nul_in_a_pax_path_is_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([("path", &b"etc/a\0b"[..])])
            .unwrap();
        builder
            .append(&header("etc/a", tar::EntryType::Regular, 1, ""), &b"x"[..])
            .unwrap();
        let err = read_tarball("nul.tar", &builder.into_inner().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("contains a NUL byte"), "{err}");
    }

    #[test]
    fn only_entries_below_a_replaced_directory_count() {
        // `/d0` and `/d.x` sort between `/d` and `/d/` but are not inside `/d`.
        let fine = tarball(&[
            Member::Dir("d/"),
            Member::File("d0", "x"),
            Member::File("d.x", "x"),
            Member::File("d", "now a file"),
        ]);
        let extra = read_tarball("fine.tar", &fine).unwrap();
        assert_eq!(extra.entries.last().unwrap().kind, FileKind::File);
        let bad = tarball(&[
            Member::Dir("d/"),
            Member::File("d0", "x"),
            Member::File("d/x", "x"),
            Member::Symlink("d", "/etc"),
        ]);
        let err = read_tarball("bad.tar", &bad).unwrap_err().to_string();
        assert!(
            err.contains("entry `d` replaces a directory that earlier entries"),
            "{err}"
        );
        // Many directories each replaced by a file: one range look-up apiece (this
        // scanned every path read so far, quadratic in the tarball's size).
        let names: Vec<(String, String)> = (0..5000)
            .map(|i| (format!("d{i}/"), format!("d{i}")))
            .collect();
        let mut members = Vec::new();
        for (dir, file) in &names {
            members.push(Member::Dir(dir));
            members.push(Member::File(file, ""));
        }
        let extra = read_tarball("many.tar", &tarball(&members)).unwrap();
        assert_eq!(extra.entries.len(), 10000);
    }

    #[test]
    fn truncated_tarballs_are_clear_errors() {
        let whole = tarball(&[
            Member::File("a", "first"),
            Member::File("b", &"b".repeat(2000)),
        ]);
        // Inside b's content: the header promises more than there is.
        let err = read_tarball("cut.tar", &whole[..512 * 4])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("entry `b` is truncated: the header says 2000 bytes, 512 are present"),
            "{err}"
        );
        // Inside b's header.
        let err = read_tarball("cut.tar", &whole[..512 * 2 + 100])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read the tarball after entry `a`"),
            "{err}"
        );
        // After a whole entry, without the end-of-archive blocks.
        let err = read_tarball("cut.tar", &whole[..512 * 2])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("after entry `a`") && err.contains("end-of-archive"),
            "{err}"
        );
        // A cut compressed stream.
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&whole).unwrap();
            e.finish().unwrap()
        };
        let err = read_tarball("cut.tar.gz", &gz[..gz.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut.tar.gz: cannot read the tarball"), "{err}");
        // Cut only in the gzip trailer (its CRC and length), after every tar block:
        // found by the hostile tests, taken as whole before the stream was read to
        // its end.
        let err = read_tarball("trailer.tar.gz", &gz[..gz.len() - 4])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("trailer.tar.gz: cannot read the tarball"),
            "{err}"
        );
        // A corrupted CRC, with every byte of content intact.
        let mut bad_crc = gz.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        let err = read_tarball("crc.tar.gz", &bad_crc)
            .unwrap_err()
            .to_string();
        assert!(err.contains("crc.tar.gz: cannot read the tarball"), "{err}");
        // Garbage is not a tarball.
        let err = read_tarball("junk.tar", &[7u8; 1024])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read the tarball at its first entry"),
            "{err}"
        );
    }

    #[test]
    fn names_no_output_holds_are_refused_on_disk_too() {
        let root = sysroot();
        fs::write(root.path().join("etc/ssl/certs/evil\n.pem"), "x").unwrap();
        // The fixture's private b.pem is allowed: the names are what is tested.
        let err = hostfiles(
            root.path(),
            &["/etc/ssl/certs/*".to_string()],
            &Accounts::default(),
            true,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "hostfile `/etc/ssl/certs/*`: entry `/etc/ssl/certs/evil\\n.pem` contains a newline, \
             which dpkg's file lists cannot hold"
        );
        let overlay_dir = root.path().join("etc/ssl");
        let err = overlay(&overlay_dir, &Accounts::default(), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(": entry `/certs/evil\\n.pem` contains a newline, which dpkg's file lists cannot hold"),
            "{err}"
        );
    }

    fn sysroot() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("etc/ssl/certs");
        write(&certs.join("a.pem"), "A\n", 0o644);
        write(&certs.join("b.pem"), "B\n", 0o600);
        write(&certs.join("notes.txt"), "no\n", 0o644);
        write(&certs.join("sub/c.pem"), "C\n", 0o644);
        symlink("a.pem", certs.join("link.pem")).unwrap();
        symlink("etc/ssl", dir.path().join("ssl")).unwrap();
        dir
    }

    #[test]
    fn hostfile_globs_match_files_and_keep_symlinks() {
        let root = sysroot();
        let accounts = accounts(root.path());
        // b.pem is 0600: taken since the statement says it may take secrets.
        let extra = hostfiles(
            root.path(),
            &["/etc/ssl/certs/*.pem".to_string()],
            &accounts,
            true,
        )
        .unwrap();
        assert_eq!(
            paths(&extra),
            [
                "/etc/ssl/certs/a.pem",
                "/etc/ssl/certs/b.pem",
                "/etc/ssl/certs/link.pem"
            ]
        );
        let b = entry(&extra, "/etc/ssl/certs/b.pem");
        let meta = fs::metadata(root.path().join("etc/ssl/certs/b.pem")).unwrap();
        assert_eq!(
            (b.kind, b.mode, b.size, b.digest.clone()),
            (FileKind::File, 0o600, 2, hex("B\n"))
        );
        assert_eq!((b.uid, b.gid), (meta.uid(), meta.gid()));
        assert_eq!(b.user, accounts.user(meta.uid()));
        let link = entry(&extra, "/etc/ssl/certs/link.pem");
        assert_eq!(
            (link.kind, link.target.as_deref()),
            (FileKind::Symlink, Some("a.pem"))
        );
        assert_eq!(extra.blobs, [b"A\n".to_vec(), b"B\n".to_vec()]);

        let deep = hostfiles(root.path(), &["/etc/**/*.pem".to_string()], &accounts, true);
        let deep = deep.unwrap();
        assert!(
            paths(&deep).contains(&"/etc/ssl/certs/sub/c.pem"),
            "{:?}",
            paths(&deep)
        );
    }

    #[test]
    fn secrets_are_refused_unless_the_statement_says_so() {
        let root = tempfile::tempdir().unwrap();
        let host = |path: &str| root.path().join(path);
        // Named files are refused whatever their mode (a sysroot unpacked by hand may
        // have lost it); other files when others may not read them.
        write(&host("etc/shadow"), "root:hash:\n", 0o644);
        write(&host("etc/gshadow-"), "root:*::\n", 0o644);
        write(&host("etc/ssh/ssh_host_ed25519_key"), "key\n", 0o644);
        write(&host("etc/ssh/ssh_host_ed25519_key.pub"), "pub\n", 0o644);
        write(&host("srv/private"), "p\n", 0o640);
        write(&host("srv/public"), "q\n", 0o644);
        let none = Accounts::default();
        let globs = |globs: &[&str]| globs.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        let refused = |glob: &str| match hostfiles(root.path(), &globs(&[glob]), &none, false) {
            Err(ExtraError::Secret { path, why, .. }) => (path, why),
            other => panic!("{glob}: {other:?}"),
        };
        let hashes = Secret::Named("the password hashes");
        assert_eq!(
            refused("/etc/shadow"),
            ("/etc/shadow".into(), hashes.clone())
        );
        // Every match of a glob, every file below a matched directory.
        assert_eq!(refused("/etc/*shadow*"), ("/etc/gshadow-".into(), hashes));
        assert_eq!(
            refused("/etc/ssh"),
            (
                "/etc/ssh/ssh_host_ed25519_key".into(),
                Secret::Named("an SSH host private key")
            )
        );
        assert_eq!(
            refused("/srv/*"),
            ("/srv/private".into(), Secret::Private(0o640))
        );
        let err = hostfiles(root.path(), &globs(&["/srv/private"]), &none, false);
        assert_eq!(
            err.unwrap_err().to_string(),
            "hostfile `/srv/private` would copy /srv/private, a secret: others may not read it (mode 0640)"
        );
        hostfiles(
            root.path(),
            &globs(&["/etc/ssh/*.pub", "/srv/public"]),
            &none,
            false,
        )
        .unwrap();
        let said = globs(&["/etc/ssh/ssh_host_*_key", "/srv/private"]);
        let taken = hostfiles(root.path(), &said, &none, true).unwrap();
        assert_eq!(taken.blobs, [b"key\n".to_vec(), b"p\n".to_vec()]);

        // A folder overlay is known by its real paths: one of the host's /etc, however
        // it is written, holds the host's shadow files.
        let real = fs::canonicalize(root.path()).unwrap();
        match overlay(&host("etc/ssh/.."), &none, false) {
            Err(ExtraError::Secret { path, .. }) => {
                assert_eq!(Path::new(&path), real.join("etc/gshadow-"));
            }
            other => panic!("{other:?}"),
        }
        match overlay(&host("srv"), &none, false) {
            Err(ExtraError::Secret { path, why, .. }) => {
                assert_eq!(Path::new(&path), real.join("srv/private"));
                assert_eq!(why, Secret::Private(0o640));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(overlay(&host("srv"), &none, true).unwrap().blobs.len(), 2);
    }

    #[test]
    fn secret_names_are_matched_on_the_last_components() {
        for secret in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/shadow-",
            "/etc/gshadow-",
            "/etc/ssh/ssh_host_rsa_key",
            "/etc/ssh/ssh_host_key",
            "/srv/chroot/etc/shadow",
        ] {
            assert!(secret_name(Path::new(secret)).is_some(), "{secret}");
        }
        for public in [
            "/etc/passwd",
            "/etc/shadow.d",
            "/shadow",
            "/etc/ssh/ssh_host_rsa_key.pub",
            "/ssh/ssh_host_rsa_key",
            "/etc/sshd/ssh_host_rsa_key",
        ] {
            assert_eq!(secret_name(Path::new(public)), None, "{public}");
        }
    }

    #[test]
    fn hostfile_capabilities_are_kept() {
        let root = sysroot();
        let ping = root.path().join("etc/ssl/certs/a.pem");
        // cap_net_raw+ep, as setcap writes it; setting it needs CAP_SETFCAP (root).
        let caps = [
            0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        if xattr::set(&ping, "security.capability", &caps).is_err() {
            eprintln!("skipped: cannot set a capability here (needs root and xattrs)");
            return;
        }
        let extra = hostfiles(
            root.path(),
            &["/etc/ssl/certs/a.pem".to_string()],
            &Accounts::default(),
            false,
        )
        .unwrap();
        assert_eq!(extra.entries[0].caps, Some(::hex::encode(caps)));
    }

    #[test]
    fn hostfile_directories_are_taken_whole() {
        let root = sysroot();
        let whole = hostfiles(
            root.path(),
            &["/etc/ssl".to_string()],
            &Accounts::default(),
            true,
        );
        let extra = whole.unwrap();
        assert_eq!(extra.entries[0].path, "/etc/ssl");
        assert_eq!(extra.entries[0].kind, FileKind::Dir);
        assert!(paths(&extra).contains(&"/etc/ssl/certs/sub/c.pem"));
        assert!(paths(&extra).contains(&"/etc/ssl/certs/notes.txt"));
    }

    #[test]
    fn hostfile_errors_name_the_glob() {
        let root = sysroot();
        let none = Accounts::default();
        for glob in [
            "/etc/ssl/certs/*.key",
            "/nowhere/*",
            "/etc/ssl/certs/a.pem/*",
        ] {
            let err = hostfiles(root.path(), &[glob.to_string()], &none, false)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("hostfile `{glob}` matches nothing under")),
                "{err}"
            );
        }
        let err = hostfiles(root.path(), &["/ssl/certs/*".to_string()], &none, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hostfile `/ssl/certs/*`: entry `/ssl` is a symlink on the host"),
            "{err}"
        );
        let err = hostfiles(root.path(), &["/etc/[ssl".to_string()], &none, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hostfile `/etc/[ssl` is not a valid glob"),
            "{err}"
        );
    }
}
