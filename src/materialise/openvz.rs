//! The OpenVZ OS template: the lock as the container tarball `vzctl create --ostemplate`
//! unpacks, named `<distro>-<version>-<arch>-<group>.tar.gz` as vzctl's template cache
//! expects.
//!
//! A container runs the host's kernel and shares one template among many machines, so
//! the lock must hold no kernel, no `/boot` or module tree, and no SSH host keys (each
//! container makes its own on first boot). Owners are written as numbers only: the
//! container's ids are the lock's, whatever names the host that unpacks it has.

use std::path::Path;

use crate::lang::Flavor;
use crate::lock::{FileKind, Lock};

use super::plan::Plan;
use super::{Compression, MaterialiseError, Sources, read_entry, with_supply};

/// Why a lock entry has no place in an OpenVZ template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotForContainers {
    /// A kernel image, an initramfs or anything else under `/boot`.
    #[error("a container boots no kernel of its own: compile for a `!kernel` flavor")]
    Boot,
    /// A kernel module tree.
    #[error("a container loads no kernel modules of its own")]
    Modules,
    /// An SSH host key, which every container made from the template would share.
    #[error("an SSH host key would be shared by every container made from the template")]
    SshHostKey,
}

/// The kind of an entry refused by [`container_lock`], or `None` when it may stay.
fn refusal(path: &str, kind: FileKind) -> Option<NotForContainers> {
    let under = |dir: &str| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if path.starts_with("/boot/") || (matches!(path, "/vmlinuz" | "/initrd.img")) {
        Some(NotForContainers::Boot)
    } else if under("/usr/lib/modules") || under("/lib/modules") {
        // An empty `/usr/lib/modules` is harmless, but only kernels ship one.
        Some(NotForContainers::Modules)
    } else if path.starts_with("/etc/ssh/ssh_host_") && kind != FileKind::Dir {
        Some(NotForContainers::SshHostKey)
    } else {
        None
    }
}

/// `lock` as an OpenVZ template holds it: refused when it has a kernel, modules or host
/// keys; base-files' empty `/boot` left out; owners as bare numbers.
pub(super) fn container_lock(lock: &Lock) -> Result<Lock, MaterialiseError> {
    if let Some((entry, why)) = lock
        .files
        .iter()
        .find_map(|e| refusal(&e.path, e.kind).map(|why| (e, why)))
    {
        return Err(MaterialiseError::NotForContainers {
            path: entry.path.clone(),
            package: entry.package.clone(),
            why,
        });
    }
    let mut container = lock.clone();
    container.files.retain(|e| e.path != "/boot");
    for entry in &mut container.files {
        entry.user.clear();
        entry.group.clear();
    }
    Ok(container)
}

/// What a lock's os-release says of its distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`: `debian`, `fedora`.
    pub id: String,
    /// `VERSION_ID`, else `VERSION_CODENAME`; `None` when it has neither (Debian's
    /// testing names no version).
    pub version: Option<String>,
}

/// The distribution the lock's own `/etc/os-release` (else `/usr/lib/os-release`)
/// names, its bytes taken and checked as an output's are; `None` when the lock has
/// neither as a regular file, or it names no `ID`.
pub fn os_release(lock: &Lock, sources: &Sources) -> Result<Option<OsRelease>, MaterialiseError> {
    let plan = Plan::new(lock)?;
    let Some(release) = ["/etc/os-release", "/usr/lib/os-release"]
        .into_iter()
        .find_map(|path| plan.file_content(path))
    else {
        return Ok(None);
    };
    let out = Path::new(&release.0.path);
    let bytes = with_supply(lock, sources, |supply| read_entry(release, supply, out))?;
    let text = String::from_utf8_lossy(&bytes);
    let field = |key: &str| os_release_field(&text, key);
    Ok(field("ID").map(|id| OsRelease {
        id,
        version: field("VERSION_ID").or_else(|| field("VERSION_CODENAME")),
    }))
}

/// The template's file name, `debian-12-x86_64-web.tar.gz`: the distribution and its
/// version from the lock's os-release, the flavor's arch and the group.
pub fn template_name(
    lock: &Lock,
    sources: &Sources,
    compression: Compression,
) -> Result<String, MaterialiseError> {
    let release = os_release(lock, sources)?.ok_or_else(|| MaterialiseError::NoOsRelease {
        group: lock.group.clone(),
    })?;
    let (distro, version) = (
        release.id,
        release.version.unwrap_or_else(|| "unknown".to_string()),
    );
    let arch = Flavor::parse_canonical(&lock.flavor)
        .map(|f| f.arch)
        .unwrap_or_else(|_| "unknown".to_string());
    let extension = match compression {
        Compression::Xz => "tar.xz",
        _ => "tar.gz",
    };
    Ok(format!(
        "{}-{}-{}-{}.{extension}",
        safe(&distro),
        safe(&version),
        safe(&arch),
        safe(&lock.group)
    ))
}

/// The value of `KEY=value` in os-release text, unquoted.
fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.trim().split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|v| !v.is_empty())
}

/// A name part as a file name can hold it: os-release is the lock's data, and a `/` in
/// it must not choose where the template goes.
fn safe(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialise::plan::tests::{entry, file, link, lock_of};

    #[test]
    fn kernels_modules_and_host_keys_are_refused_naming_the_path() {
        for (bad, why) in [
            (
                file("/boot/vmlinuz-6.1.0-9-amd64", b"k"),
                NotForContainers::Boot,
            ),
            (
                link("/vmlinuz", FileKind::Symlink, "boot/vmlinuz"),
                NotForContainers::Boot,
            ),
            (
                entry("/usr/lib/modules", FileKind::Dir),
                NotForContainers::Modules,
            ),
            (
                file("/etc/ssh/ssh_host_ed25519_key", b"secret"),
                NotForContainers::SshHostKey,
            ),
        ] {
            let path = bad.path.clone();
            let lock = lock_of(vec![entry("/boot", FileKind::Dir), bad]);
            match container_lock(&lock) {
                Err(MaterialiseError::NotForContainers {
                    path: p, why: w, ..
                }) => {
                    assert_eq!((p.as_str(), w), (path.as_str(), why));
                }
                other => panic!("{path}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_boot_goes_and_owners_become_numbers() {
        let mut etc = entry("/etc", FileKind::Dir);
        etc.user = "root".into();
        let lock = lock_of(vec![
            entry("/boot", FileKind::Dir),
            etc,
            entry("/usr/lib", FileKind::Dir),
        ]);
        let container = container_lock(&lock).unwrap();
        let paths: Vec<&str> = container.files.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/etc", "/usr/lib"]);
        assert!(
            container
                .files
                .iter()
                .all(|e| e.user.is_empty() && e.group.is_empty())
        );
    }

    #[test]
    fn os_release_fields_are_unquoted_and_names_cannot_hold_slashes() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(os_release_field(text, "ID").as_deref(), Some("debian"));
        assert_eq!(os_release_field(text, "VERSION_ID").as_deref(), Some("12"));
        assert_eq!(os_release_field(text, "VERSION_CODENAME"), None);
        assert_eq!(safe("../../etc"), ".._.._etc");
    }
}
