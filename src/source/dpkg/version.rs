//! Debian version ordering (epoch, upstream with `~`, revision), as `dpkg --compare-versions`.

use std::cmp::Ordering;

use crate::source::Op;

/// Compares two Debian version strings the way dpkg does.
///
/// Strings that do not parse as Debian versions (dpkg would refuse them) sort before
/// every version that does, and by their bytes among themselves: the order stays total
/// whatever a pool's archives claim, which sorting and picking the best candidate
/// need (comparing a bad string by bytes with good ones would make cycles).
pub fn compare(a: &str, b: &str) -> Ordering {
    match (
        a.parse::<debversion::Version>(),
        b.parse::<debversion::Version>(),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Whether `version` satisfies `op wanted`, e.g. `3.0.8 >= 3.0.9` is false.
pub fn satisfies(version: &str, op: Op, wanted: &str) -> bool {
    let ord = compare(version, wanted);
    match op {
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Eq => ord == Ordering::Equal,
        Op::Ge => ord != Ordering::Less,
        Op::Gt => ord == Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs whose order `dpkg --compare-versions` confirms (a < b).
    const ORDERED: &[(&str, &str)] = &[
        ("1.0", "1.1"),
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~"),
        ("1.0", "1.0-1"),
        ("1.0-1", "1.0-2"),
        ("1.0-1", "1.0+1-1"),
        ("2.0", "1:0.1"),
        ("1:1.0", "2:0.5"),
        ("3.0.8", "3.0.9"),
        ("3.0.9", "3.0.10"),
        ("1.2a", "1.2b"),
        ("1.2", "1.2a"),
        ("9.2p1-2", "1:9.2p1-2"),
        ("2.36-9+deb12u3", "2.36-9+deb12u4"),
        ("1.0-1~bpo12+1", "1.0-1"),
        ("0", "0.0"),
    ];

    #[test]
    fn ordering_matches_dpkg() {
        for (a, b) in ORDERED {
            assert_eq!(compare(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(compare("1:2.0-1", "1:2.0-1"), Ordering::Equal);
        assert_eq!(compare("0:1.0", "1.0"), Ordering::Equal);
    }

    #[test]
    fn unparseable_versions_keep_the_order_total() {
        // Found by fuzzing: compared by bytes with valid versions, "2.\u{14}6" made a
        // cycle (2.36-9 < 1:0.9 by epoch, 1:0.9 < 2.\u{14}6 and 2.\u{14}6 < 2.36-9 by
        // bytes).
        let versions = [
            "2.36-9+deb12u4",
            "1:0.9.git20220301-2",
            "2.\u{14}6-9+deb12u4",
        ];
        for a in versions {
            for b in versions {
                assert_eq!(compare(a, b), compare(b, a).reverse(), "{a:?} vs {b:?}");
                for c in versions {
                    if compare(a, b).is_le() && compare(b, c).is_le() {
                        assert!(compare(a, c).is_le(), "{a:?} <= {b:?} <= {c:?}");
                    }
                }
            }
        }
        assert_eq!(compare("2.\u{14}6", "0"), Ordering::Less);
        assert_eq!(compare("a b", "a c"), Ordering::Less);
        let mut sorted = versions.to_vec();
        sorted.sort_by(|a, b| compare(a, b));
        assert_eq!(
            sorted,
            [
                "2.\u{14}6-9+deb12u4",
                "2.36-9+deb12u4",
                "1:0.9.git20220301-2"
            ]
        );
    }

    #[test]
    fn relations() {
        assert!(!satisfies("3.0.8", Op::Ge, "3.0.9"));
        assert!(satisfies("3.0.9", Op::Ge, "3.0.9"));
        assert!(satisfies("1.0~rc1", Op::Lt, "1.0"));
        assert!(satisfies("1.0", Op::Le, "1.0"));
        assert!(satisfies("1.1", Op::Gt, "1.0"));
        assert!(satisfies("1:9.2p1-2", Op::Ge, "1:9.2"));
        assert!(!satisfies("1.0", Op::Eq, "1.0-1"));
    }
}

#[cfg(test)]
mod dpkg_agreement {
    use super::*;
    use std::process::Command;

    /// Versions whose every pair is checked against the real `dpkg --compare-versions`.
    const VERSIONS: &[&str] = &[
        "0",
        "1",
        "1.0",
        "1.0~rc1",
        "1.0~~",
        "1.0-1",
        "1.0-1~bpo1",
        "1.0+dfsg-1",
        "1.0a",
        "1:0.9",
        "2:0",
        "1.10",
        "1.9",
        "1.0.0",
        "9.2p1-2",
        "1:9.2p1-2+deb12u3",
        "3.0.8-1",
        "3.0.11-1~deb12u2",
        "2.36-9+deb12u4",
        "0.5.12-2",
        "1.0-1.1",
        "1.0-1+b1",
    ];

    #[test]
    fn every_pair_agrees_with_dpkg() {
        if Command::new("dpkg").arg("--version").output().is_err() {
            eprintln!("no dpkg on this machine: skipped the comparison with it");
            return;
        }
        for a in VERSIONS {
            for b in VERSIONS {
                let ours = compare(a, b);
                let op = match ours {
                    Ordering::Less => "lt",
                    Ordering::Equal => "eq",
                    Ordering::Greater => "gt",
                };
                let status = Command::new("dpkg")
                    .args(["--compare-versions", a, op, b])
                    .status()
                    .unwrap();
                assert!(status.success(), "we say {a} {op} {b}; dpkg disagrees");
            }
        }
    }
}
