//! The `.deb` reader, on a file as the pool holds it. The first byte picks the input:
//! - even: the rest is the whole archive, as found in a pool;
//! - odd: the rest is split in two tar streams (at a point the second byte picks),
//!   put in a well-formed `ar` as `control.tar` and `data.tar`, so the fuzzer reaches
//!   the member and entry checks without first having to forge an `ar` container.
//!
//! Checked: no panic; an error names the archive; the status stanza compile writes for
//! an archive that opens reads back, by dpkg's rules, as the same package; every entry
//! of the archive is absolute and normalised, appears once, never lies below a symlink
//! or file of the archive, and a hard link points at an earlier regular file; walking
//! the data member a second time hands over the same files with the same digests.

#![no_main]

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use appliance::lock::FileKind;
use appliance::source::dpkg::deb::DebArchive;
use appliance::source::dpkg::{Conffile, parse_status};
use appliance::source::Origin;
use appliance::source::dpkg::{Package, rules};
use appliance::system::installed_stanza;
use appliance_fuzz::{check_entries, control_tar, deb};
use libfuzzer_sys::fuzz_target;

/// The reader opens a path: one file per fuzzing process, rewritten for every input.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::var_os("APPLIANCE_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        dir.join(format!("appliance-fuzz-{}.deb", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let Some((&cut, tars)) = rest.split_first() else {
            return;
        };
        match mode % 4 {
            // Only the data member varies: the control member is a valid one.
            1 => deb(&control_tar(), tars),
            _ => {
                let at = (usize::from(cut) * tars.len() / 255).min(tars.len());
                let (control, data) = tars.split_at(at);
                deb(control, data)
            }
        }
    };
    let path = scratch();
    let written = std::fs::File::create(path).and_then(|mut f| f.write_all(&bytes));
    if written.is_err() {
        return;
    }
    let archive = match DebArchive::open(path) {
        Ok(archive) => archive,
        Err(err) => {
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
            return;
        }
    };
    assert!(!archive.package.name.is_empty());
    for conffile in &archive.conffiles {
        assert!(conffile.starts_with('/'));
    }
    reads_back(&archive);
    let _ = archive.info_file("postinst");
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(err) => {
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
            return;
        }
    };
    let mut seen = HashSet::new();
    for e in &entries {
        assert!(seen.insert(e.path.as_str()), "{:?} listed twice", e.path);
        if e.kind == FileKind::Hardlink {
            let target = e.target.as_deref().unwrap_or_default();
            assert!(
                seen.contains(target),
                "hard link {:?} before {target:?}",
                e.path
            );
        }
    }
    check_entries(&entries);
    let files: Vec<(String, Option<String>)> = entries
        .iter()
        .filter(|e| e.kind == FileKind::File)
        .map(|e| (e.path.clone(), e.digest.clone()))
        .collect();
    let mut again = Vec::new();
    let walked = archive.for_each_file(|file| {
        let path = file.path().to_string();
        let digest = file.copy_to(&mut std::io::sink())?;
        again.push((path, Some(digest)));
        Ok(())
    });
    assert!(walked.is_ok(), "second walk failed: {walked:?}");
    assert_eq!(files, again);
});

/// The stanza compile writes into the appliance's `var/lib/dpkg/status` for `archive`
/// must be what dpkg reads: parsed back, one installed package, the same one, whose
/// name, version, architecture and relations keep dpkg's rules.
fn reads_back(archive: &DebArchive) {
    let conffiles: Vec<Conffile> = (archive.conffiles.iter())
        .map(|path| Conffile {
            path: path.clone(),
            md5: "newconffile".to_string(),
            obsolete: false,
        })
        .collect();
    let stanza = installed_stanza(&archive.control, &conffiles);
    let status = parse_status(&stanza, Path::new("status"))
        .unwrap_or_else(|e| panic!("the status written is refused: {e}\n{stanza:?}"));
    let [read] = status.as_slice() else {
        panic!("{} packages in {stanza:?}", status.len());
    };
    let expected = Package {
        origin: Origin::Installed,
        ..archive.package.clone()
    };
    assert_eq!(read.package, expected, "{stanza:?}");
    assert_eq!(read.conffiles, conffiles, "{stanza:?}");
    let p = &read.package;
    let kept = |result: Result<(), rules::Broken>| {
        if let Err(broken) = result {
            panic!("{broken} in {stanza:?}");
        }
    };
    kept(rules::package_name(&p.name));
    kept(rules::version(&p.version));
    kept(rules::architecture(&p.arch));
    let relations = (p.depends.iter().chain(&p.pre_depends).flatten())
        .chain(&p.provides)
        .chain(&p.conflicts)
        .chain(&p.breaks);
    for r in relations {
        kept(rules::package_name(&r.name));
        if let Some(arch) = &r.arch {
            kept(rules::architecture(arch));
        }
        if let Some((_, version)) = &r.constraint {
            kept(rules::version(version));
        }
    }
}
