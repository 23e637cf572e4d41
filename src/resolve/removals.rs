//! The names a request removes, and which of them the resolver used: a remove that
//! never kept a candidate out changed nothing (nothing asked for what it names), which
//! the group's author should hear. Both resolvers keep this book the same way.
//!
//! A remove counts as used once a candidate of its name is kept out anywhere, even
//! where another alternative would have been taken anyway: a remove said to be idle
//! is idle for certain, and at worst an idle one goes unmentioned.

use std::cell::Cell;
use std::collections::HashMap;

/// The removed names, each marked once it keeps a candidate out.
pub(super) struct Removals<'r> {
    /// The names in request order.
    order: &'r [String],
    /// Name -> whether it kept a candidate out.
    used: HashMap<&'r str, Cell<bool>>,
}

impl<'r> Removals<'r> {
    /// The book of `names`, none used yet.
    pub(super) fn new(names: &'r [String]) -> Removals<'r> {
        Removals {
            order: names,
            used: names
                .iter()
                .map(|n| (n.as_str(), Cell::new(false)))
                .collect(),
        }
    }

    /// Whether a candidate named `name` is kept out; when it is, its remove is marked
    /// used. Ask only about a package the resolver would otherwise consider taking.
    pub(super) fn removes(&self, name: &str) -> bool {
        let Some(used) = self.used.get(name) else {
            return false;
        };
        used.set(true);
        true
    }

    /// Whether `name` is removed, leaving the book alone: for looks that take nothing.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.used.contains_key(name)
    }

    /// The removed names that kept nothing out, in request order, once each.
    pub(super) fn idle(&self) -> Vec<String> {
        let mut idle: Vec<String> = Vec::new();
        for name in self.order {
            let used = self.used.get(name.as_str()).is_some_and(Cell::get);
            if !used && !idle.contains(name) {
                idle.push(name.clone());
            }
        }
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_removes_that_kept_a_candidate_out_are_used() {
        let names = ["emacs".to_string(), "exim4".into(), "emacs".into()];
        let book = Removals::new(&names);
        assert!(!book.removes("bash"));
        assert!(book.contains("exim4"));
        assert_eq!(book.idle(), ["emacs", "exim4"]);
        assert!(book.removes("exim4"));
        assert_eq!(book.idle(), ["emacs"]);
    }
}
