//! dpkg's text formats as the host database and pool archives hold them: the status
//! file, a control file and an md5sums file, all parsed from the same text, and Debian
//! version ordering over every version the text names.
//!
//! Checked: no panic; errors name the file; an accepted status keeps whole stanzas
//! that read back as the same package, with non-empty names and versions, and
//! relations that print back as themselves; md5sums keys are absolute;
//! version comparison is a total order (antisymmetric and transitive), since sorting
//! with anything less may panic.

#![no_main]

use std::cmp::Ordering;
use std::path::Path;

use appliance::source::dpkg::{parse_control, parse_md5sums, parse_status};
use appliance::source::dpkg::version::compare;
use appliance::source::Origin;
use appliance::source::dpkg::Package;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/sysroot/var/lib/dpkg/status");
    let mut versions: Vec<String> = Vec::new();
    match parse_status(&text, path) {
        Ok(installed) => {
            for p in &installed {
                // The stanza is written into the appliance's own status file: read
                // back, it must say the same.
                assert!(p.stanza.ends_with('\n'));
                let again = parse_status(&p.stanza, path).expect("a kept stanza parses");
                assert_eq!(again.len(), 1, "{:?}", p.stanza);
                assert_eq!(again[0], *p);
                package(&p.package, &mut versions);
                for c in &p.conffiles {
                    assert!(c.path.starts_with('/'), "conffile {:?}", c.path);
                }
            }
        }
        Err(err) => assert!(err.to_string().starts_with("/sysroot/var/lib/dpkg/status")),
    }
    if let Ok(p) = parse_control(&text, Path::new("x.deb:control"), Origin::Pool) {
        package(&p, &mut versions);
    }
    if let Ok(sums) = parse_md5sums(&text, Path::new("x.deb:md5sums"), "x") {
        for (file, md5) in &sums {
            assert!(file.starts_with('/') && md5.len() == 32, "{file:?} {md5:?}");
        }
    }
    // Lines of the text count as versions too, so the fuzzer can try any three.
    versions.extend(text.lines().take(8).map(str::to_string));
    total_order(&versions);
});

/// Checks a parsed package and collects the versions it names.
fn package(p: &Package, versions: &mut Vec<String>) {
    assert!(!p.name.is_empty() && !p.version.is_empty() && !p.arch.is_empty());
    versions.push(p.version.clone());
    let relations = (p.depends.iter().chain(&p.pre_depends).flatten())
        .chain(&p.provides)
        .chain(&p.conflicts)
        .chain(&p.breaks);
    for r in relations {
        assert!(!r.name.is_empty());
        // A relation prints back as something that parses to itself.
        let shown = r.to_string();
        assert_eq!(
            appliance::source::dpkg::Relation::parse(&shown).as_ref(),
            Ok(r),
            "{shown:?}"
        );
        if let Some((_, v)) = &r.constraint {
            versions.push(v.clone());
        }
    }
}

/// `compare` must be a total order on every version met: sorts and searches rely on it.
fn total_order(versions: &[String]) {
    let v: Vec<&str> = versions.iter().take(6).map(String::as_str).collect();
    for a in &v {
        assert_eq!(compare(a, a), Ordering::Equal, "{a:?} vs itself");
        for b in &v {
            let ab = compare(a, b);
            assert_eq!(ab, compare(b, a).reverse(), "{a:?} vs {b:?}");
            for c in &v {
                if ab != Ordering::Greater && compare(b, c) != Ordering::Greater {
                    assert_ne!(
                        compare(a, c),
                        Ordering::Greater,
                        "{a:?} <= {b:?} <= {c:?} but {a:?} > {c:?}"
                    );
                }
            }
        }
    }
}
