//! `appliance why`: why a package is in a lock.

use std::collections::BTreeSet;
use std::io::Write;

use super::present::stdout_error;
use super::{Context, Lookup};
use crate::error::{Error, Result};
use crate::lock::{Lock, LockedPackage, Reason};

/// Prints why a package is in a lock, back to the group that named it.
pub fn why(ctx: &Context, package: &str, lookup: &Lookup, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let (stored, _) = ctx.load(&repo, lookup)?;
    let chain = why_chain(&stored.lock, package)?;
    let mut names: Vec<&str> = chain.iter().rev().map(|p| p.name.as_str()).collect();
    let root = match &chain.last().map(|p| &p.reason) {
        Some(Reason::Named { group, via }) => {
            let mut groups = via.clone();
            groups.push(group.clone());
            groups.join(" -> ")
        }
        _ => "essential".to_string(),
    };
    names.insert(0, &root);
    let mut text = format!("{}\n", names.join(" -> "));
    for p in &chain {
        text += &format!("  {} {} ({}): {}\n", p.name, p.version, p.arch, p.reason);
    }
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// The package and the packages that pulled it in, up to one named by a group.
fn why_chain<'a>(lock: &'a Lock, name: &str) -> Result<Vec<&'a LockedPackage>> {
    let find = |n: &str| {
        lock.packages
            .iter()
            .find(|p| p.name == n || format!("{}:{}", p.name, p.arch) == n)
    };
    let mut current = find(name).ok_or_else(|| {
        let mut near: Vec<(f64, &str)> = lock
            .packages
            .iter()
            .map(|p| (strsim::jaro_winkler(name, &p.name), p.name.as_str()))
            .filter(|(score, _)| *score > 0.8)
            .collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0));
        let hint: Vec<&str> = near.iter().take(3).map(|(_, n)| *n).collect();
        Error::Usage(format!(
            "package {name} is not in {}={}{}{}",
            lock.group,
            lock.version,
            lock.flavor,
            if hint.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", hint.join(", "))
            }
        ))
    })?;
    let mut chain = vec![current];
    let mut seen = BTreeSet::from([current.name.as_str()]);
    while let Reason::Dependency { of } = &current.reason {
        match find(of) {
            Some(parent) if seen.insert(parent.name.as_str()) => {
                chain.push(parent);
                current = parent;
            }
            _ => break,
        }
    }
    Ok(chain)
}
