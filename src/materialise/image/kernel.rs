//! Which kernel of the lock an image boots: a pinned `/boot/vmlinuz-KVER` file of the
//! lock, never "the newest in /boot".

use crate::materialise::plan::{Body, Plan};

use super::ImageError;

/// Where a kernel's modules are, merged /usr's path.
const MODULES_DIR: &str = "/usr/lib/modules";

/// The kernel an image boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Kernel {
    /// Its version, `6.1.0-57-amd64`.
    pub version: String,
    /// The lock path of its image, `/boot/vmlinuz-6.1.0-57-amd64`.
    pub image: String,
}

impl Kernel {
    /// The kernel's module folder in the lock.
    pub fn modules_dir(&self) -> String {
        format!("{MODULES_DIR}/{}", self.version)
    }
}

/// The lock's kernel: the one `/boot/vmlinuz-*` file, or of several the one whose
/// version has a module folder. `flavor` is for the message when there is none.
pub(super) fn choose(plan: &Plan, flavor: &str) -> Result<Kernel, ImageError> {
    let kernels: Vec<Kernel> = plan
        .items
        .iter()
        .filter(|item| matches!(item.body, Body::File(_) | Body::Hardlink { .. }))
        .filter_map(|item| {
            let version = item.entry.path.strip_prefix("/boot/vmlinuz-")?;
            Some(Kernel {
                version: version.to_string(),
                image: item.entry.path.clone(),
            })
        })
        .collect();
    let with_modules = |kernel: &&Kernel| {
        let dir = kernel.modules_dir();
        plan.items
            .binary_search_by(|item| item.entry.path.as_str().cmp(&dir))
            .is_ok_and(|i| matches!(plan.items[i].body, Body::Dir))
    };
    match kernels.as_slice() {
        [] => Err(ImageError::NoKernel {
            flavor: flavor.to_string(),
        }),
        [one] => Ok(one.clone()),
        several => match several.iter().filter(with_modules).collect::<Vec<_>>()[..] {
            [one] => Ok(one.clone()),
            _ => Err(ImageError::SeveralKernels {
                found: several.iter().map(|k| k.image.clone()).collect(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::FileKind;
    use crate::materialise::plan::tests::{entry, file, lock_of};

    fn dirs(paths: &[&str]) -> Vec<crate::lock::FileEntry> {
        paths.iter().map(|p| entry(p, FileKind::Dir)).collect()
    }

    #[test]
    fn the_one_kernel_is_chosen() {
        let mut files = dirs(&["/boot"]);
        files.push(file("/boot/vmlinuz-6.1.0-57-amd64", b"kernel"));
        files.push(file("/boot/config-6.1.0-57-amd64", b"config"));
        let lock = lock_of(files);
        let plan = Plan::new(&lock).unwrap();
        let kernel = choose(&plan, "[kernel,kvm is: x86_64]").unwrap();
        assert_eq!(kernel.version, "6.1.0-57-amd64");
        assert_eq!(kernel.image, "/boot/vmlinuz-6.1.0-57-amd64");
        assert_eq!(kernel.modules_dir(), "/usr/lib/modules/6.1.0-57-amd64");
    }

    #[test]
    fn of_several_kernels_the_one_with_modules_wins() {
        let mut files = dirs(&["/boot", "/usr", "/usr/lib", "/usr/lib/modules"]);
        files.extend(dirs(&["/usr/lib/modules/6.1.0-58-amd64"]));
        files.push(file("/boot/vmlinuz-6.1.0-57-amd64", b"old"));
        files.push(file("/boot/vmlinuz-6.1.0-58-amd64", b"new"));
        let lock = lock_of(files.clone());
        let plan = Plan::new(&lock).unwrap();
        assert_eq!(choose(&plan, "f").unwrap().version, "6.1.0-58-amd64");

        files.extend(dirs(&["/usr/lib/modules/6.1.0-57-amd64"]));
        let lock = lock_of(files);
        let plan = Plan::new(&lock).unwrap();
        assert_eq!(
            choose(&plan, "f").unwrap_err().to_string(),
            "the lock has several kernels (/boot/vmlinuz-6.1.0-57-amd64, \
             /boot/vmlinuz-6.1.0-58-amd64) and not one alone has modules in \
             /usr/lib/modules: keep one kernel package in the group"
        );
    }

    #[test]
    fn no_kernel_suggests_a_kernel_flavor() {
        let lock = lock_of(dirs(&["/boot"]));
        let plan = Plan::new(&lock).unwrap();
        let err = choose(&plan, "[!kernel,openvz is: x86_64]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the lock ([!kernel,openvz is: x86_64]) has no kernel (/boot/vmlinuz-*), so it \
             cannot boot: compile the group for a kernel flavor (e.g. --flavor kvm), with a \
             kernel package such as linux-image-amd64 under `when kernel { ... }` in the group"
        );
        let err = choose(&plan, "[kernel,kvm is: x86_64]").unwrap_err();
        assert!(
            err.to_string().ends_with(
                "add a kernel package to the group under `when kernel { package \
                 linux-image-amd64 }` and compile it again"
            ),
            "{err}"
        );
    }
}
