//! `remove` statements that removed nothing: a typo, or a package nothing asks for any
//! more. The compile succeeds, with a warning at the statement: once for a statement
//! that removed nothing in any flavor its group was compiled for, else for each flavor
//! where it removed nothing.

use std::collections::BTreeMap;

use super::Compiled;
use crate::lang::{Location, Removal};
use crate::workspace::Recipe;

/// The `remove` statements one recipe reached, and which of them removed nothing.
#[derive(Debug)]
pub struct Removes {
    /// The flavor, as a warning names it: `[openvz]`, or its canonical string.
    flavor: String,
    /// Each statement's name the recipe reached, once, and whether it removed nothing.
    each: Vec<(Removal, bool)>,
}

impl Removes {
    /// `recipe`'s removes, those `idle` names (the resolver's removes that kept no
    /// package out) marked as having removed nothing.
    pub fn new(recipe: &Recipe, idle: &[String]) -> Removes {
        let flavor = &recipe.flavor;
        let mut each: Vec<(Removal, bool)> = Vec::new();
        for removal in &recipe.removes {
            // A group included twice reaches its statements twice.
            if !each.iter().any(|(r, _)| r == removal) {
                each.push((removal.clone(), idle.contains(&removal.name)));
            }
        }
        Removes {
            flavor: (flavor.name.as_ref()).map_or_else(|| flavor.canonical(), |n| format!("[{n}]")),
            each,
        }
    }
}

/// A `remove` statement's name, and the locks that reached it (by position), each with
/// whether it removed nothing there.
struct Reached<'c> {
    removal: &'c Removal,
    locks: Vec<(usize, bool)>,
}

/// Adds to `compiled` the warnings for the `remove` statements that removed nothing:
/// one, on the group's first lock that reached it, for a statement idle in every lock
/// of its group that reached it; else one on each lock where it is idle.
pub fn warn_idle(compiled: &mut [Compiled]) {
    // (group, where the statement names it) -> the locks that reached it.
    let mut statements: BTreeMap<(&str, &Location), Reached> = BTreeMap::new();
    for (i, c) in compiled.iter().enumerate() {
        for (removal, idle) in &c.removes.each {
            let key = (c.lock.group.as_str(), &removal.location);
            let reached = statements.entry(key).or_insert_with(|| Reached {
                removal,
                locks: Vec::new(),
            });
            reached.locks.push((i, *idle));
        }
    }
    let mut warnings: Vec<(usize, String)> = Vec::new();
    for ((group, _), Reached { removal, locks }) in statements {
        let warning = |within: &str| {
            format!(
                "{}: remove {}: no package in {within} needs it, so it removes nothing",
                removal.location, removal.name
            )
        };
        if locks.iter().all(|(_, idle)| *idle) {
            warnings.extend(locks.first().map(|&(first, _)| (first, warning(group))));
            continue;
        }
        for (i, _) in locks.into_iter().filter(|(_, idle)| *idle) {
            let within = format!("{group} {}", compiled[i].removes.flavor);
            warnings.push((i, warning(&within)));
        }
    }
    for (i, warning) in warnings {
        compiled[i].warnings.push(warning);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Lock;

    fn removal(name: &str, line: usize) -> Removal {
        Removal {
            name: name.to_string(),
            location: Location {
                file: "groups/test.kdl".into(),
                line,
                column: 12,
            },
        }
    }

    fn compiled(flavor: &str, each: &[(&str, usize, bool)]) -> Compiled {
        let removes = Removes {
            flavor: format!("[{flavor}]"),
            each: (each.iter())
                .map(|&(name, line, idle)| (removal(name, line), idle))
                .collect(),
        };
        let lock = Lock::of_files(Vec::new());
        Compiled::new(
            lock,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            None,
            removes,
        )
    }

    #[test]
    fn an_idle_remove_is_told_once_or_for_each_flavor_it_is_idle_in() {
        let mut all = [
            compiled(
                "openvz",
                &[("emacs", 3, true), ("mawk", 4, false), ("exim4", 5, false)],
            ),
            compiled("kvm", &[("emacs", 3, true), ("mawk", 4, true)]),
        ];
        warn_idle(&mut all);
        assert_eq!(
            all[0].warnings,
            [
                "groups/test.kdl:3:12: remove emacs: no package in test needs it, so it removes nothing"
            ]
        );
        assert_eq!(
            all[1].warnings,
            [
                "groups/test.kdl:4:12: remove mawk: no package in test [kvm] needs it, so it removes nothing"
            ]
        );
    }
}
