//! `appliance why`: why a package is in a lock.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::present::{stdout_error, write_json};
use super::{Context, Lookup};
use crate::error::Result;
use crate::lock::{self, LockedPackage, Reason};

/// How many chains `why` prints; past them it says how many more there are.
const CHAINS_SHOWN: usize = 20;

/// Prints every chain from a group (or the essential set) down to `package` in the lock
/// `lookup` names, shortest first, then the packages on them; with `json`, one JSON
/// document instead.
pub fn why(
    ctx: &Context,
    package: &str,
    lookup: &Lookup,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let (stored, _) = ctx.load(&repo, lookup)?;
    let found = lock::why(&stored.lock, package, CHAINS_SHOWN)?;
    if json {
        let chains = (found.chains.iter())
            .map(|chain| chain.packages.iter().map(|p| Row::of(p)).collect())
            .collect();
        return write_json(
            out,
            &WhyJson {
                lock: stored.lock.address(stored.revision),
                package: Row::of(found.package),
                chains,
                more: found.more,
                complete: !found.cut_short,
            },
        );
    }
    let mut text = String::new();
    for chain in &found.chains {
        text += &format!("{chain}\n");
    }
    if found.more > 0 {
        let at_least = if found.cut_short { "at least " } else { "" };
        text += &format!("... and {at_least}{} more chains\n", found.more);
    }
    // Each package of the chains shown once, by name.
    let on_chains: BTreeMap<(&str, &str), &LockedPackage> = (found.chains.iter())
        .flat_map(|chain| chain.packages.iter())
        .map(|p| ((p.name.as_str(), p.arch.as_str()), *p))
        .collect();
    for p in on_chains.values() {
        text += &format!("  {} {} ({}): {}\n", p.name, p.version, p.arch, p.reason);
    }
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// `why --json`.
#[derive(Serialize)]
struct WhyJson<'a> {
    /// The lock's address.
    lock: String,
    /// The package asked about.
    package: Row<'a>,
    /// Every chain kept, root first.
    chains: Vec<Vec<Row<'a>>>,
    /// How many chains besides those.
    more: usize,
    /// Whether every chain was found (`more` counts only those found when not).
    complete: bool,
}

/// One package of `why --json`.
#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    version: &'a str,
    arch: &'a str,
    reason: &'a Reason,
}

impl<'a> Row<'a> {
    fn of(p: &'a LockedPackage) -> Row<'a> {
        Row {
            name: &p.name,
            version: &p.version,
            arch: &p.arch,
            reason: &p.reason,
        }
    }
}
