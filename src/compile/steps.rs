//! The order a dpkg tree's maintainer scripts run in, as apt and dpkg would install its
//! packages on a running system.
//!
//! Every package is unpacked already, so nothing dpkg's unpack order gives for free can
//! be taken for granted: a `preinst` may use what the package pre-depends on
//! (mariadb-server's runs `adduser`, whose `chfn` needs the PAM configuration
//! libpam-runtime's postinst writes), and dpkg promises that much only once those are
//! configured. So the essential packages go first, as mmdebstrap's essential stage
//! installs them: every `preinst`, then all of them configured together. Then each
//! other package's `preinst` runs in turn, once what it pre-depends on is configured,
//! together with what those depend on, dependencies first (packages that depend on
//! each other are configured together, as dpkg does). `dpkg --configure -a` does the
//! rest.

use std::collections::HashMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::configure::Unpacked;

/// One step of configuring a dpkg tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `preinst install` of the package at this index.
    Preinst(usize),
    /// `dpkg --configure` of the packages at these indices, together.
    Configure {
        /// The packages, in the order given.
        packages: Vec<usize>,
        /// The package whose `preinst` needs them; `None` for the essential packages.
        for_preinst: Option<usize>,
    },
}

/// The steps that configure `packages` (in the order their `preinst`s are taken), up
/// to the `dpkg --configure -a` that finishes them.
pub fn steps(packages: &[&Unpacked]) -> Vec<Step> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, package) in packages.iter().enumerate() {
        by_name.entry(&package.name).or_default().push(index);
    }
    let named = |names: &[String]| -> Vec<usize> {
        (names.iter())
            .filter_map(|name| by_name.get(name.as_str()))
            .flatten()
            .copied()
            .collect()
    };
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(packages.len(), 0);
    for index in 0..packages.len() {
        graph.add_node(index);
    }
    for (index, package) in packages.iter().enumerate() {
        for dependency in named(&package.needs.depends) {
            if dependency != index {
                graph.update_edge(NodeIndex::new(index), NodeIndex::new(dependency), ());
            }
        }
    }
    // Tarjan's order puts a set's dependencies before it.
    let sets: Vec<Vec<usize>> = (tarjan_scc(&graph).into_iter())
        .map(|set| {
            let mut set: Vec<usize> = set.into_iter().map(NodeIndex::index).collect();
            set.sort_unstable();
            set
        })
        .collect();
    let mut set_of = vec![0; packages.len()];
    for (number, set) in sets.iter().enumerate() {
        for &index in set {
            set_of[index] = number;
        }
    }
    let mut plan = Plan {
        pre_depends: packages
            .iter()
            .map(|p| named(&p.needs.pre_depends))
            .collect(),
        graph: &graph,
        configured: sets
            .iter()
            .map(|set| set.iter().all(|&i| packages[i].needs.essential))
            .collect(),
        sets,
        set_of,
        preinst_done: packages.iter().map(|p| p.needs.essential).collect(),
        steps: Vec::new(),
    };
    let essential: Vec<usize> = (0..packages.len())
        .filter(|&i| packages[i].needs.essential)
        .collect();
    plan.steps
        .extend(essential.iter().map(|&i| Step::Preinst(i)));
    if !essential.is_empty() {
        plan.steps.push(Step::Configure {
            packages: essential,
            for_preinst: None,
        });
    }
    for index in 0..packages.len() {
        plan.preinst(index);
    }
    plan.steps
}

/// The steps so far, and what they have done.
struct Plan<'g> {
    /// The packages each package pre-depends on.
    pre_depends: Vec<Vec<usize>>,
    /// An edge from each package to each it depends on.
    graph: &'g DiGraph<usize, ()>,
    /// The sets of packages that depend on each other, dependencies first.
    sets: Vec<Vec<usize>>,
    /// The set each package is in.
    set_of: Vec<usize>,
    /// Whether each set is configured (or its steps are taken).
    configured: Vec<bool>,
    /// Whether each package's `preinst` has its step.
    preinst_done: Vec<bool>,
    steps: Vec<Step>,
}

impl Plan<'_> {
    /// The `preinst` of `index`, after what it pre-depends on is configured. A package it
    /// pre-depends on that depends back on it is in its own set, and cannot be first.
    fn preinst(&mut self, index: usize) {
        if self.preinst_done[index] {
            return;
        }
        self.preinst_done[index] = true;
        for needed in self.pre_depends[index].clone() {
            if self.set_of[needed] != self.set_of[index] {
                self.configure(self.set_of[needed], index);
            }
        }
        self.steps.push(Step::Preinst(index));
    }

    /// Configures set `number` for the `preinst` of `asker`: first the sets it depends
    /// on, then its members' `preinst`s, then the set itself.
    fn configure(&mut self, number: usize, asker: usize) {
        if self.configured[number] {
            return;
        }
        // Sets form no cycle, so nothing reached from here comes back to this one.
        self.configured[number] = true;
        for member in self.sets[number].clone() {
            let dependencies: Vec<usize> = (self.graph)
                .neighbors(NodeIndex::new(member))
                .map(NodeIndex::index)
                .collect();
            for dependency in dependencies {
                if self.set_of[dependency] != number {
                    self.configure(self.set_of[dependency], asker);
                }
            }
        }
        for member in self.sets[number].clone() {
            self.preinst(member);
        }
        self.steps.push(Step::Configure {
            packages: self.sets[number].clone(),
            for_preinst: Some(asker),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::configure::Needs;
    use super::*;

    /// A package named `name` depending on `depends` and pre-depending on `pre`.
    fn package(name: &str, pre: &[&str], depends: &[&str], essential: bool) -> Unpacked {
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        Unpacked {
            name: name.into(),
            arch: "amd64".into(),
            multi_arch_same: false,
            needs: Needs {
                essential,
                pre_depends: names(pre),
                depends: names(&[pre, depends].concat()),
            },
        }
    }

    /// The steps as text: `pre NAME` and `conf NAME NAME (for NAME)`.
    fn render(packages: &[Unpacked]) -> Vec<String> {
        let name = |i: usize| packages[i].name.clone();
        let packages: Vec<&Unpacked> = packages.iter().collect();
        (steps(&packages).into_iter())
            .map(|step| match step {
                Step::Preinst(i) => format!("pre {}", name(i)),
                Step::Configure {
                    packages: set,
                    for_preinst,
                } => {
                    let set: Vec<String> = set.into_iter().map(name).collect();
                    let asker = for_preinst.map_or_else(|| "essential".into(), name);
                    format!("conf {} (for {asker})", set.join(" "))
                }
            })
            .collect()
    }

    #[test]
    fn essential_packages_first_then_each_preinst_after_what_it_pre_depends_on() {
        let packages = [
            package("base-passwd", &[], &[], true),
            package("bash", &[], &["base-passwd"], true),
            package("nginx", &[], &["libssl"], false),
            package("mariadb-server", &["adduser"], &["mariadb-client"], false),
            package("adduser", &[], &["passwd"], false),
            package("passwd", &["libpam"], &[], false),
            package("libpam", &[], &["bash"], false),
            package("mariadb-client", &[], &[], false),
            package("libssl", &[], &[], false),
        ];
        assert_eq!(
            render(&packages),
            [
                "pre base-passwd",
                "pre bash",
                "conf base-passwd bash (for essential)",
                "pre nginx",
                // adduser needs passwd, which needs libpam configured before its preinst.
                "pre libpam",
                "conf libpam (for mariadb-server)",
                "pre passwd",
                "conf passwd (for mariadb-server)",
                "pre adduser",
                "conf adduser (for mariadb-server)",
                "pre mariadb-server",
                "pre mariadb-client",
                "pre libssl",
            ]
        );
    }

    #[test]
    fn packages_that_depend_on_each_other_are_configured_together() {
        let packages = [
            package("app", &["perl"], &[], false),
            package("perl", &[], &["perl-modules"], false),
            package("perl-modules", &[], &["perl"], false),
            // Pre-depending on a package that depends back: the cycle cannot be first.
            package("loop", &["back"], &[], false),
            package("back", &[], &["loop"], false),
        ];
        assert_eq!(
            render(&packages),
            [
                "pre perl",
                "pre perl-modules",
                "conf perl perl-modules (for app)",
                "pre app",
                "pre loop",
                "pre back",
            ]
        );
    }
}
