//! Which kernel modules an initramfs holds, in load order: the closure of the wanted
//! modules over the lock's `modules.dep` (and the `pre:`/`post:` soft dependencies of
//! `modules.softdep`, which is how ext4 asks for crc32c), as modprobe would load them.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

use super::ImageError;

/// A kernel's module data, read from the files depmod made.
#[derive(Debug)]
pub(super) struct ModuleIndex {
    kernel: String,
    /// Normalised name -> path relative to the kernel's module folder, in file order.
    paths: HashMap<String, String>,
    /// Path -> the paths it depends on.
    deps: HashMap<String, Vec<String>>,
    /// Normalised names of modules built into the kernel.
    builtin: HashSet<String>,
    /// Normalised alias (only exact ones, no wildcards) -> normalised module names.
    aliases: HashMap<String, Vec<String>>,
    /// Normalised name -> soft dependencies to load before and after it.
    softdeps: HashMap<String, (Vec<String>, Vec<String>)>,
}

/// A module name as kmod compares them: `-` and `_` are the same character.
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a file name or path (`kernel/fs/ext4/ext4.ko.xz` -> `ext4`).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split_once(".ko").map_or(file, |(stem, _)| stem);
    normalise(stem)
}

impl ModuleIndex {
    /// Reads `modules.dep`, `modules.builtin`, `modules.alias` and `modules.softdep` of
    /// `kernel` (the last two may be missing: only aliases and soft dependencies go).
    pub fn parse(
        kernel: &str,
        dep: &str,
        builtin: &str,
        alias: Option<&str>,
        softdep: Option<&str>,
    ) -> Result<ModuleIndex, ImageError> {
        let bad = |file: &str, line: usize, reason: &str| ImageError::BadModuleData {
            kernel: kernel.to_string(),
            file: file.to_string(),
            line: Some(line + 1),
            reason: reason.to_string(),
        };
        let mut paths = HashMap::new();
        let mut deps: HashMap<String, Vec<String>> = HashMap::new();
        let mut listed = Vec::new();
        for (number, line) in dep.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (path, list) = line
                .split_once(':')
                .ok_or_else(|| bad("modules.dep", number, "no `:` after the module"))?;
            if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c == "..") {
                return Err(bad("modules.dep", number, "not a path inside the kernel"));
            }
            paths
                .entry(module_name(path))
                .or_insert_with(|| path.to_string());
            deps.insert(
                path.to_string(),
                list.split_whitespace().map(str::to_string).collect(),
            );
            listed.push(path);
        }
        if let Some((path, missing)) = listed.iter().find_map(|path| {
            let missing = deps[*path].iter().find(|d| !deps.contains_key(*d))?;
            Some((path, missing))
        }) {
            return Err(ImageError::BadModuleData {
                kernel: kernel.to_string(),
                file: "modules.dep".to_string(),
                line: None,
                reason: format!("{path} depends on {missing}, which has no line"),
            });
        }
        let builtin = builtin
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(module_name)
            .collect();
        let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
        for line in alias.unwrap_or_default().lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
                && !pattern.contains(['*', '?', '['])
            {
                aliases
                    .entry(normalise(pattern))
                    .or_default()
                    .push(normalise(module));
            }
        }
        let mut softdeps: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
        for line in softdep.unwrap_or_default().lines() {
            let mut words = line.split_whitespace();
            let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
                continue;
            };
            let (pre, post) = softdeps.entry(normalise(module)).or_default();
            // Words before any `pre:` or `post:` mean nothing to kmod either.
            let mut list: Option<&mut Vec<String>> = None;
            for word in words {
                match word {
                    "pre:" => list = Some(&mut *pre),
                    "post:" => list = Some(&mut *post),
                    name => {
                        if let Some(list) = list.as_mut() {
                            list.push(normalise(name));
                        }
                    }
                }
            }
        }
        Ok(ModuleIndex {
            kernel: kernel.to_string(),
            paths,
            deps,
            builtin,
            aliases,
            softdeps,
        })
    }

    /// The module files (paths relative to the kernel's module folder) to load for
    /// `wanted`, dependencies first, each once. A built-in module needs no file; a name
    /// that is neither a module, a built-in nor an alias is an error naming the nearest.
    pub fn closure(&self, wanted: &[String]) -> Result<Vec<String>, ImageError> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for name in wanted {
            let modules = self.resolve(name).ok_or_else(|| self.unknown(name))?;
            for module in modules {
                self.visit(&module, &mut seen, &mut order);
            }
        }
        Ok(order)
    }

    /// The loadable modules a name stands for: itself, or an alias's modules; empty for a
    /// built-in; `None` when the kernel knows no such name.
    fn resolve(&self, name: &str) -> Option<Vec<String>> {
        let name = normalise(name);
        if self.paths.contains_key(&name) {
            return Some(vec![name]);
        }
        if self.builtin.contains(&name) {
            return Some(Vec::new());
        }
        let targets = self.aliases.get(&name)?;
        Some(
            targets
                .iter()
                .filter(|t| self.paths.contains_key(*t))
                .cloned()
                .collect(),
        )
    }

    /// Depth first: soft `pre:` dependencies, then hard ones, then the module, then its
    /// `post:` ones. A soft dependency the kernel lacks is skipped, as modprobe does.
    fn visit(&self, name: &str, seen: &mut HashSet<String>, order: &mut Vec<String>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some(path) = self.paths.get(name) else {
            return;
        };
        let (pre, post) = self.softdeps.get(name).cloned().unwrap_or_default();
        for soft in &pre {
            for module in self.resolve(soft).unwrap_or_default() {
                self.visit(&module, seen, order);
            }
        }
        for dep in self.deps.get(path).into_iter().flatten() {
            self.visit(&module_name(dep), seen, order);
        }
        order.push(path.clone());
        for soft in &post {
            for module in self.resolve(soft).unwrap_or_default() {
                self.visit(&module, seen, order);
            }
        }
    }

    fn unknown(&self, name: &str) -> ImageError {
        let wanted = normalise(name);
        let mut near: Vec<(f64, &str)> = (self.paths.keys())
            .chain(&self.builtin)
            .map(|known| (strsim::jaro_winkler(&wanted, known), known.as_str()))
            .filter(|(score, _)| *score > 0.8)
            .collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        ImageError::UnknownModule {
            name: name.to_string(),
            kernel: self.kernel.clone(),
            near: near.iter().take(3).map(|(_, n)| n.to_string()).collect(),
        }
    }
}

/// A module file's name in the initramfs: compressed ones are stored plain.
pub(super) fn plain_name(path: &str) -> String {
    [".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| path.strip_suffix(ext))
        .map_or_else(|| path.to_string(), |stem| format!("{stem}.ko"))
}

/// The plain module of a module file's bytes (`.ko.xz`, `.ko.zst` and `.ko.gz` are
/// decompressed, so the init hands the kernel an ELF file whatever it supports).
pub(super) fn decompress(path: &str, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut plain = Vec::new();
    if path.ends_with(".ko.xz") {
        liblzma::read::XzDecoder::new(bytes.as_slice()).read_to_end(&mut plain)?;
    } else if path.ends_with(".ko.zst") {
        zstd::stream::read::Decoder::new(bytes.as_slice())?.read_to_end(&mut plain)?;
    } else if path.ends_with(".ko.gz") {
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut plain)?;
    } else {
        return Ok(bytes);
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko.zst:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/xen-blkfront.ko:
";
    const BUILTIN: &str = "kernel/drivers/virtio/virtio_pci.ko\nkernel/lib/crc32.ko\n";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
";
    const SOFTDEP: &str = "\
# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: crypto-crc32c
softdep cifs gcm
";

    fn index() -> ModuleIndex {
        ModuleIndex::parse("6.1.0-1-amd64", DEP, BUILTIN, Some(ALIAS), Some(SOFTDEP)).unwrap()
    }

    fn wanted(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn closure_loads_dependencies_first_once_with_soft_dependencies() {
        let order = index()
            .closure(&wanted(&["ext4", "virtio_pci", "virtio-blk", "jbd2"]))
            .unwrap();
        assert_eq!(
            order,
            [
                "kernel/arch/x86/crypto/crc32c-intel.ko",
                "kernel/crypto/crc32c_generic.ko.zst",
                "kernel/lib/crc16.ko",
                "kernel/fs/mbcache.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/fs/ext4/ext4.ko.xz",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/block/virtio_blk.ko",
            ]
        );
    }

    #[test]
    fn dashes_and_underscores_are_one_and_builtins_need_no_file() {
        let index = index();
        assert_eq!(
            index.closure(&wanted(&["xen_blkfront"])).unwrap(),
            ["kernel/drivers/block/xen-blkfront.ko"]
        );
        assert_eq!(
            index.closure(&wanted(&["crc32c_intel"])).unwrap(),
            ["kernel/arch/x86/crypto/crc32c-intel.ko"]
        );
        assert!(
            index
                .closure(&wanted(&["virtio-pci", "crc32"]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unknown_module_is_named_with_the_kernel_and_near_names() {
        let err = index().closure(&wanted(&["virtio_bkl"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel 6.1.0-1-amd64 has no module virtio_bkl (did you mean virtio_blk, virtio, virtio_pci?)"
        );
        let err = index().closure(&wanted(&["zzz"])).unwrap_err();
        assert_eq!(err.to_string(), "kernel 6.1.0-1-amd64 has no module zzz");
    }

    #[test]
    fn damaged_module_data_names_the_file_and_line() {
        let err = ModuleIndex::parse("k", "a.ko:\nb.ko\n", "", None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "modules.dep of kernel k, line 2: no `:` after the module"
        );
        let err = ModuleIndex::parse("k", "a.ko: b.ko\n", "", None, None).unwrap_err();
        assert!(err.to_string().contains("a.ko depends on b.ko"), "{err}");
        let err = ModuleIndex::parse("k", "../a.ko:\n", "", None, None).unwrap_err();
        assert!(err.to_string().contains("not a path inside"), "{err}");
    }

    #[test]
    fn compressed_modules_are_stored_plain() {
        let module = b"\x7fELF a module".to_vec();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&module).unwrap();
        let xz = xz.finish().unwrap();
        let zst = zstd::encode_all(module.as_slice(), 3).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&module).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress("a.ko.xz", xz).unwrap(), module);
        assert_eq!(decompress("a.ko.zst", zst).unwrap(), module);
        assert_eq!(decompress("a.ko.gz", gz).unwrap(), module);
        assert_eq!(decompress("a.ko", module.clone()).unwrap(), module);
        assert!(decompress("a.ko.xz", b"not xz".to_vec()).is_err());
        assert_eq!(plain_name("kernel/a.ko.zst"), "kernel/a.ko");
        assert_eq!(plain_name("kernel/a.ko"), "kernel/a.ko");
    }
}
