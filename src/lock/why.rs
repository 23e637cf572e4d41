//! Why a package is in a lock: every chain of packages from a group's `package`
//! statement (or the essential set) down to it, read from the lock's reasons alone.
//!
//! A dependency's reason names every locked package that depends on it, so walking
//! those names upward finds each chain. A chain ends at the first package a group names
//! or that is essential: what pulled that one in is its own story, told by asking about
//! it. A package already on the chain is not entered again, which cuts cycles.

use super::{Lock, LockedPackage, Reason};

/// How many steps a walk takes at most: the chains of a package deep in a big lock can
/// be very many, and a count past this tells the user no more than "very many".
const STEPS: usize = 100_000;

/// A package asked about that is not in the lock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("package {name} is not in {lock}{}", hint(suggestions))]
pub struct NotInLock {
    /// The name asked about.
    pub name: String,
    /// The lock, as `GROUP=VERSION[FLAVOR]`.
    pub lock: String,
    /// The lock's nearest package names, best first.
    pub suggestions: Vec<String>,
}

fn hint(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}

/// One chain: the packages from the one a group named (or an essential one) down to the
/// package asked about, each a dependency of the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain<'a> {
    /// The packages, root first.
    pub packages: Vec<&'a LockedPackage>,
}

impl Chain<'_> {
    /// Where the chain begins: the group that names its first package with the groups
    /// that include it, outermost first (`web -> base`), or `essential`.
    pub fn root(&self) -> String {
        match self.packages.first().map(|p| &p.reason) {
            Some(Reason::Named { group, via }) => {
                let mut groups = via.clone();
                groups.push(group.clone());
                groups.join(" -> ")
            }
            _ => "essential".to_string(),
        }
    }
}

impl std::fmt::Display for Chain<'_> {
    /// `web -> base -> bash -> libc6`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.root())?;
        for package in &self.packages {
            write!(f, " -> {}", package.name)?;
        }
        Ok(())
    }
}

/// Every chain of a package, the first `limit` of them kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why<'a> {
    /// The package asked about.
    pub package: &'a LockedPackage,
    /// The shortest chains first, then in name order, at most the `limit` asked for.
    pub chains: Vec<Chain<'a>>,
    /// How many chains there are besides those kept.
    pub more: usize,
    /// Whether the walk stopped before finding every chain: `more` then counts only
    /// those found.
    pub cut_short: bool,
}

/// Why `name` (a package name, or `NAME:ARCH`) is in `lock`: every chain from a group or
/// the essential set down to it, keeping the first `limit`.
pub fn why<'a>(lock: &'a Lock, name: &str, limit: usize) -> Result<Why<'a>, NotInLock> {
    let package = (lock.packages.iter())
        .find(|p| p.name == name || format!("{}:{}", p.name, p.arch) == name)
        .ok_or_else(|| not_in_lock(lock, name))?;
    let mut walk = Walk {
        lock,
        steps: STEPS,
        found: Vec::new(),
        cut_short: false,
    };
    walk.visit(&mut vec![package]);
    let mut chains: Vec<Vec<&LockedPackage>> = walk.found;
    for chain in &mut chains {
        chain.reverse();
    }
    chains.sort_by_cached_key(|chain: &Vec<&'a LockedPackage>| {
        let names = chain.iter().map(|p| (p.name.as_str(), p.arch.as_str()));
        (chain.len(), names.collect::<Vec<(&'a str, &'a str)>>())
    });
    let more = chains.len().saturating_sub(limit);
    chains.truncate(limit);
    Ok(Why {
        package,
        chains: chains
            .into_iter()
            .map(|packages| Chain { packages })
            .collect(),
        more,
        cut_short: walk.cut_short,
    })
}

/// The error for `name`, with the lock's nearest names.
fn not_in_lock(lock: &Lock, name: &str) -> NotInLock {
    let mut near: Vec<(f64, &str)> = (lock.packages.iter())
        .map(|p| (strsim::jaro_winkler(name, &p.name), p.name.as_str()))
        .filter(|(score, _)| *score > 0.8)
        .collect();
    near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    near.dedup_by(|a, b| a.1 == b.1);
    NotInLock {
        name: name.to_string(),
        lock: format!("{}={}{}", lock.group, lock.version, lock.flavor),
        suggestions: near.iter().take(3).map(|(_, n)| n.to_string()).collect(),
    }
}

/// A depth-first walk from a package up through the packages that depend on it.
struct Walk<'a> {
    lock: &'a Lock,
    /// Steps left before the walk gives up.
    steps: usize,
    /// The chains found, each from the package asked about up to its root.
    found: Vec<Vec<&'a LockedPackage>>,
    cut_short: bool,
}

impl<'a> Walk<'a> {
    /// Extends `path` (the package asked about first) by each package that depends on its
    /// last, recording it as a chain where that last one is named or essential.
    fn visit(&mut self, path: &mut Vec<&'a LockedPackage>) {
        if self.steps == 0 {
            self.cut_short = true;
            return;
        }
        self.steps -= 1;
        let Some(&here) = path.last() else { return };
        let Reason::Dependency { of, also } = &here.reason else {
            self.found.push(path.clone());
            return;
        };
        let mut dependers: Vec<&str> = also.iter().map(String::as_str).collect();
        dependers.push(of);
        dependers.sort_unstable();
        dependers.dedup();
        let lock = self.lock;
        for name in dependers {
            // A name may be locked for two arches (`Multi-Arch: same`): either may be the
            // one that depends.
            for depender in lock.packages.iter().filter(|p| p.name == name) {
                let on_path = path
                    .iter()
                    .any(|p| p.name == depender.name && p.arch == depender.arch);
                if !on_path {
                    path.push(depender);
                    self.visit(path);
                    path.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Container, Inputs};

    fn package(name: &str, reason: Reason) -> LockedPackage {
        LockedPackage {
            name: name.to_string(),
            version: "1".to_string(),
            arch: "amd64".to_string(),
            source: "installed".to_string(),
            reason,
        }
    }

    fn named(group: &str, via: &[&str]) -> Reason {
        Reason::Named {
            group: group.to_string(),
            via: via.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn dependency(of: &str, also: &[&str]) -> Reason {
        Reason::Dependency {
            of: of.to_string(),
            also: also.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn lock(packages: Vec<LockedPackage>) -> Lock {
        let mut lock = Lock {
            group: "web".to_string(),
            version: "1.0".to_string(),
            flavor: "[is: x86_64]".to_string(),
            inputs: Inputs::default(),
            cmd: Vec::new(),
            container: Container::default(),
            modules: Vec::new(),
            packages,
            files: Vec::new(),
        };
        lock.normalise();
        lock
    }

    fn lines(why: &Why) -> Vec<String> {
        why.chains.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_chain_is_found_shortest_first() {
        let lock = lock(vec![
            package("nginx", named("web", &[])),
            package("bash", named("base", &["web"])),
            package("dpkg", Reason::Essential),
            package("libpcre", dependency("nginx", &[])),
            package("libc6", dependency("bash", &["dpkg", "libpcre", "nginx"])),
        ]);
        let why = why(&lock, "libc6", 20).unwrap();
        assert_eq!(
            lines(&why),
            [
                "web -> base -> bash -> libc6",
                "essential -> dpkg -> libc6",
                "web -> nginx -> libc6",
                "web -> nginx -> libpcre -> libc6",
            ]
        );
        assert_eq!((why.more, why.cut_short), (0, false));
        // A named package's chain is its group alone.
        let nginx = super::why(&lock, "nginx:amd64", 20).unwrap();
        assert_eq!(lines(&nginx), ["web -> nginx"]);
    }

    #[test]
    fn cycles_are_cut_and_chains_capped() {
        // a and b depend on each other; both lead back to the named root.
        let lock = lock(vec![
            package("root", named("web", &[])),
            package("a", dependency("root", &["b"])),
            package("b", dependency("a", &[])),
            package("leaf", dependency("a", &["b"])),
        ]);
        let all = why(&lock, "leaf", 20).unwrap();
        assert_eq!(
            lines(&all),
            ["web -> root -> a -> leaf", "web -> root -> a -> b -> leaf"]
        );
        let capped = why(&lock, "leaf", 1).unwrap();
        assert_eq!(lines(&capped), ["web -> root -> a -> leaf"]);
        assert_eq!(capped.more, 1);
    }

    #[test]
    fn an_unknown_package_names_the_nearest() {
        let lock = lock(vec![package("libc6", Reason::Essential)]);
        let err = why(&lock, "libc7", 20).unwrap_err();
        assert_eq!(err.suggestions, ["libc6"]);
        assert_eq!(
            err.to_string(),
            "package libc7 is not in web=1.0[is: x86_64] (did you mean libc6?)"
        );
        let err = why(&lock, "zzz", 20).unwrap_err();
        assert_eq!(err.to_string(), "package zzz is not in web=1.0[is: x86_64]");
    }
}
