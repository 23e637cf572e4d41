//! Resolution with rpm's rules: the closure of requested packages over [`RpmPackage`]s,
//! as dnf (libsolv) would install them into a fresh root.
//!
//! Like the Debian resolver it sees only the packages of an [`RpmUniverse`] and never
//! reads files. It follows rpm's rules: `Requires` and `Provides` with EVR ranges
//! (rpm's `rpmdsCompare`), file requires, rich dependencies, `Conflicts`, `Obsoletes`,
//! the appliance's arch then `noarch`, and `rpmlib(...)` features from
//! [`RPMLIB_FEATURES`]. There is no backtracking: each requirement takes the best
//! package that can be installed, in a fixed order, so the same inputs always give the
//! same result. Conditionals (`if`, `unless`) are settled after the plain closure, to a
//! fixpoint: first every one whose condition is in the set, then, one at a time, those
//! whose condition is not.
//!
//! Obsoletes: a package that an installable package of another name obsoletes is never
//! chosen, wherever it is asked for; what only it satisfies by name is satisfied by its
//! obsoleter when the obsoleter provides it (as it is found through `Provides`), else
//! the error names the obsoleter. Obsoletes of a package's own name are upgrades, which
//! the preference already decides.

pub(crate) mod evr;
mod rich;
mod universe;

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};

use petgraph::graph::{DiGraph, NodeIndex};

use super::removals::Removals;
use super::universe::Satisfier;
use super::{
    Conflict, ConflictKind, Culprits, Prefer, Problem, Ranked, Request, Resolution, ResolveError,
    Slot, Wanted, assemble, chain_of,
};
use crate::lock::Reason;
use crate::source::Op;
use crate::source::rpm::{Capability, RpmPackage};
use evr::{compare, overlaps, range, relation_text};
use rich::Expr;
use universe::NOARCH;
pub use universe::RpmUniverse;

/// The `rpmlib(...)` features rpm 4.18 provides, with their versions, as
/// `rpm --showrc` lists them: a package's `rpmlib` requirements are checked against
/// these, since the appliance's rpm is no package of the universe.
pub const RPMLIB_FEATURES: &[(&str, &str)] = &[
    ("rpmlib(BuiltinLuaScripts)", "4.2.2-1"),
    ("rpmlib(CaretInVersions)", "4.15.0-1"),
    ("rpmlib(CompressedFileNames)", "3.0.4-1"),
    ("rpmlib(ConcurrentAccess)", "4.1-1"),
    ("rpmlib(DynamicBuildRequires)", "4.15.0-1"),
    ("rpmlib(ExplicitPackageProvide)", "4.0-1"),
    ("rpmlib(FileCaps)", "4.6.1-1"),
    ("rpmlib(FileDigests)", "4.6.0-1"),
    ("rpmlib(HeaderLoadSortsTags)", "4.0.1-1"),
    ("rpmlib(LargeFiles)", "4.12.0-1"),
    ("rpmlib(PartialHardlinkSets)", "4.0.4-1"),
    ("rpmlib(PayloadFilesHavePrefix)", "4.0-1"),
    ("rpmlib(PayloadIsBzip2)", "3.0.5-1"),
    ("rpmlib(PayloadIsLzma)", "4.4.2-1"),
    ("rpmlib(PayloadIsXz)", "5.2-1"),
    ("rpmlib(PayloadIsZstd)", "5.4.18-1"),
    ("rpmlib(RichDependencies)", "4.12.0-1"),
    ("rpmlib(ScriptletExpansion)", "4.9.0-1"),
    ("rpmlib(ScriptletInterpreterArgs)", "4.0.3-1"),
    ("rpmlib(TildeInVersions)", "4.10.0-1"),
    ("rpmlib(VersionedDependencies)", "3.0.3-1"),
];

/// Resolves `request` over `universe` with rpm's rules: the wanted packages and the
/// closure of their `Requires`, checked for conflicts. `request.essential` is ignored:
/// rpm has no essential packages. A pass that fails only because of a version chosen
/// first is learned from, as [`super::resolve`] learns: an older version on either
/// side gives way to an update, and the request is resolved again.
pub fn resolve_rpm(universe: &RpmUniverse, request: &Request) -> Result<Resolution, ResolveError> {
    let superseded = |index| universe.superseded(index);
    super::learning(request, superseded, |avoid| {
        let mut resolver = Resolver::new(universe, request, avoid);
        match resolver.pass(request) {
            Ok(()) => Ok(resolver.finish()),
            Err(err) => Err(Box::new((err, resolver.culprits))),
        }
    })
}

/// Who asks for a requirement: it decides the arches, the reason and the error chain.
#[derive(Clone)]
struct Asker {
    slot: Option<usize>,
    /// The arch taken first; with `exact`, the only one.
    arch: String,
    /// Whether the group named the arch (`foo.i686`).
    exact: bool,
    root: String,
    /// The position in [`Request::wanted`] of the request that began the chain.
    wanted: Option<usize>,
    reason: Reason,
}

/// A conditional met during the closure, settled once the closure is done.
#[derive(Clone)]
struct Pending {
    expr: Expr,
    asker: Asker,
    /// The expressions around it, for the chain of an error.
    context: Vec<String>,
}

/// Whether an expression holds over the chosen set, and through which package.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Truth {
    False,
    /// Holds with no package: a conditional whose branch is left out.
    Vacuous,
    /// Holds through this slot's package.
    By(usize),
}

struct Resolver<'u> {
    universe: &'u RpmUniverse<'u>,
    prefer: Prefer,
    avoid: BTreeSet<usize>,
    removes: Removals<'u>,
    /// Universe index -> the installable packages of other names obsoleting it.
    obsoleted_by: HashMap<usize, Vec<usize>>,
    slots: Vec<Slot>,
    /// Universe index -> slot.
    slot_of: HashMap<usize, usize>,
    /// Package name -> slots chosen with that name.
    chosen_by_name: HashMap<&'u str, Vec<usize>>,
    /// Node `i` is slot `i`.
    graph: DiGraph<usize, ()>,
    pending: Vec<Pending>,
    /// When the pass failed: what it can learn from.
    culprits: Culprits,
}

impl<'u> Resolver<'u> {
    fn new(
        universe: &'u RpmUniverse<'u>,
        request: &'u Request,
        avoid: BTreeSet<usize>,
    ) -> Resolver<'u> {
        let removes = Removals::new(&request.removes);
        let mut obsoleted_by: HashMap<usize, Vec<usize>> = HashMap::new();
        for (index, package) in universe.packages().iter().enumerate() {
            // Every package is looked at here, chosen or not: no remove is used yet.
            if removes.contains(package.name.as_str()) || !universe.is_native(&package.arch) {
                continue;
            }
            for obsolete in package.obsoletes.iter().filter(|o| o.name != package.name) {
                for &victim in universe.named(&obsolete.name) {
                    let evr = universe.packages()[victim].evr.as_str();
                    if overlaps(Some((Op::Eq, evr)), range(obsolete)) {
                        obsoleted_by.entry(victim).or_default().push(index);
                    }
                }
            }
        }
        Resolver {
            universe,
            prefer: request.prefer,
            avoid,
            removes,
            obsoleted_by,
            slots: Vec::new(),
            slot_of: HashMap::new(),
            chosen_by_name: HashMap::new(),
            graph: DiGraph::new(),
            pending: Vec::new(),
            culprits: Culprits::default(),
        }
    }

    /// One pass over `request`: each wanted name and the closure, then the conflicts.
    fn pass(&mut self, request: &Request) -> Result<(), ResolveError> {
        for (position, wanted) in request.wanted.iter().enumerate() {
            self.want(position, wanted)?;
        }
        self.close()?;
        self.check_conflicts()
    }

    fn package(&self, slot: usize) -> &'u RpmPackage {
        self.universe.packages()[self.slots[slot].index]
    }

    /// Satisfies one wanted name, request `position` of the request: a package, a
    /// capability, a path, or `name.arch`.
    fn want(&mut self, position: usize, wanted: &Wanted) -> Result<(), ResolveError> {
        let universe = self.universe;
        let split = (wanted.name.rsplit_once('.'))
            .filter(|(name, _)| !universe.knows(&wanted.name) && !universe.named(name).is_empty());
        let (name, arch) = match split {
            Some((name, arch)) => (name, Some(arch)),
            None => (wanted.name.as_str(), None),
        };
        if self.removes.removes(name) {
            return Ok(());
        }
        let asker = Asker {
            slot: None,
            arch: arch.unwrap_or(universe.arch()).to_string(),
            exact: arch.is_some(),
            root: wanted.root.clone(),
            wanted: Some(position),
            reason: wanted.reason.clone(),
        };
        let capability = Capability {
            name: name.to_string(),
            constraint: wanted.constraint.clone(),
        };
        self.requirement(&capability, &asker).map(drop)
    }

    /// The closure: every chosen package's `Requires`, then the conditionals, until
    /// nothing changes.
    fn close(&mut self) -> Result<(), ResolveError> {
        let mut next = 0;
        loop {
            // Slots are appended as they are chosen: walking them in order is
            // breadth-first.
            while next < self.slots.len() {
                self.expand(next)?;
                next += 1;
            }
            if !self.settle(true)? && !self.settle(false)? {
                return Ok(());
            }
        }
    }

    /// Satisfies every `Requires` of `slot`'s package, in order.
    fn expand(&mut self, slot: usize) -> Result<(), ResolveError> {
        let package = self.package(slot);
        let asker = Asker {
            slot: Some(slot),
            arch: package.arch.clone(),
            exact: false,
            root: self.slots[slot].root.clone(),
            wanted: self.slots[slot].wanted,
            reason: Reason::Dependency {
                of: package.name.clone(),
                also: Vec::new(),
            },
        };
        for requirement in &package.requires {
            let targets = self.requirement(&requirement.capability, &asker)?;
            self.link(&asker, targets);
        }
        Ok(())
    }

    /// Edges from the asking package to what satisfied it (none to itself).
    fn link(&mut self, asker: &Asker, targets: Vec<usize>) {
        let Some(from) = asker.slot else { return };
        for target in targets.into_iter().filter(|&t| t != from) {
            (self.graph).update_edge(NodeIndex::new(from), NodeIndex::new(target), ());
        }
    }

    /// Requires the branch of pending conditionals whose condition is (`present`) or
    /// is not in the chosen set, when the branch does not hold yet: every such one when
    /// present (what is in stays in), only the first when absent (its branch may bring
    /// a later condition in). Returns whether anything was required.
    fn settle(&mut self, present: bool) -> Result<bool, ResolveError> {
        let mut acted = false;
        let mut next = 0;
        while next < self.pending.len() {
            let Pending {
                expr,
                asker,
                mut context,
            } = self.pending[next].clone();
            next += 1;
            let Some(branches) = expr.branches() else {
                continue;
            };
            if (self.truth(branches.cond, false, None) != Truth::False) != present {
                continue;
            }
            let branch = if present {
                branches.when_in
            } else {
                branches.when_out
            };
            let Some(branch) = branch.filter(|b| self.truth(b, false, None) == Truth::False) else {
                continue;
            };
            context.push(expr.to_string());
            let targets = self.require(branch, &asker, &context)?;
            self.link(&asker, targets);
            if !present {
                return Ok(true);
            }
            acted = true;
        }
        Ok(acted)
    }

    /// Satisfies one `Requires` entry (plain, `rpmlib(...)` or rich); returns the slots
    /// that satisfy it.
    fn requirement(
        &mut self,
        capability: &Capability,
        asker: &Asker,
    ) -> Result<Vec<usize>, ResolveError> {
        if rich::is_rich(&capability.name) {
            let expr = rich::parse(&capability.name)
                .map_err(|why| self.error(asker, &[], &capability.name, Problem::Malformed(why)))?;
            return self.require(&expr, asker, &[]);
        }
        self.require(&Expr::Cap(capability.clone()), asker, &[])
    }

    /// Makes `expr` hold, choosing packages; `context` is the expressions around it.
    fn require(
        &mut self,
        expr: &Expr,
        asker: &Asker,
        context: &[String],
    ) -> Result<Vec<usize>, ResolveError> {
        let inner = || {
            let mut inner = context.to_vec();
            inner.push(expr.to_string());
            inner
        };
        match expr {
            Expr::Cap(capability) => self.satisfy(capability, asker, context),
            Expr::And(all) => {
                let inner = inner();
                let mut targets = Vec::new();
                for operand in all {
                    targets.extend(self.require(operand, asker, &inner)?);
                }
                Ok(targets)
            }
            Expr::Or(any) => {
                // Satisfied by the chosen set, else the first alternative that can be.
                for operand in any {
                    match self.truth(operand, false, None) {
                        Truth::False => {}
                        Truth::Vacuous => return Ok(Vec::new()),
                        Truth::By(slot) => return Ok(vec![slot]),
                    }
                }
                match any.iter().find(|operand| self.installable(operand, asker)) {
                    Some(operand) => self.require(operand, asker, &inner()),
                    None => {
                        let problem = self.problem(expr, asker);
                        Err(self.error(asker, context, &expr.to_string(), problem))
                    }
                }
            }
            Expr::With(_) | Expr::Without(..) => {
                let found = self.one_package(expr, Some(asker));
                let chosen = found.iter().filter(|s| self.slot_of.contains_key(&s.index));
                if let Some(best) = self.best(chosen, asker) {
                    return Ok(vec![self.slot_of[&best.index]]);
                }
                let open = found.iter().filter(|s| self.is_open(s.index));
                match self.best(open, asker) {
                    Some(best) => Ok(vec![self.select(best.index, asker)]),
                    None => {
                        let problem = self.problem(expr, asker);
                        Err(self.error(asker, context, &expr.to_string(), problem))
                    }
                }
            }
            Expr::If(_) | Expr::Unless(_) => {
                self.pending.push(Pending {
                    expr: expr.clone(),
                    asker: asker.clone(),
                    context: context.to_vec(),
                });
                Ok(Vec::new())
            }
        }
    }

    /// Satisfies one capability: by the chosen set, else by the best package that can
    /// be installed. Returns its slot (none for an `rpmlib` feature).
    fn satisfy(
        &mut self,
        capability: &Capability,
        asker: &Asker,
        context: &[String],
    ) -> Result<Vec<usize>, ResolveError> {
        let fail = |this: &Self, problem| {
            Err(this.error(asker, context, &relation_text(capability), problem))
        };
        if capability.name.starts_with("rpmlib(") {
            return match rpmlib(capability) {
                Ok(()) => Ok(Vec::new()),
                Err(problem) => fail(self, problem),
            };
        }
        let fit = self.fitting(capability, Some(asker));
        let chosen = fit.iter().filter(|s| self.slot_of.contains_key(&s.index));
        if let Some(best) = self.best(chosen, asker) {
            return Ok(vec![self.slot_of[&best.index]]);
        }
        let open = fit.iter().filter(|s| self.is_open(s.index));
        if let Some(best) = self.best(open, asker) {
            return Ok(vec![self.select(best.index, asker)]);
        }
        let occupants: Vec<usize> = (fit.iter())
            .filter(|s| !self.is_removed(s.index) && !self.is_obsoleted(s.index))
            .filter_map(|s| self.occupant(s.index))
            .collect();
        self.culprits = Culprits::of_relation(&self.slots, asker.slot, &occupants);
        fail(self, self.problem(&Expr::Cap(capability.clone()), asker))
    }

    /// The packages satisfying `capability` of an arch `asker` may take (any arch
    /// without an asker).
    fn fitting(&self, capability: &Capability, asker: Option<&Asker>) -> Vec<Satisfier> {
        let packages = self.universe.packages();
        (self.universe.satisfiers(capability).into_iter())
            .filter(|s| asker.is_none_or(|asker| self.allowed(packages[s.index], asker)))
            .collect()
    }

    /// The packages of an arch `asker` may take that match every capability of a `with`
    /// (or the first and not the second of a `without`).
    fn one_package(&self, expr: &Expr, asker: Option<&Asker>) -> Vec<Satisfier> {
        match expr {
            Expr::Cap(capability) => self.fitting(capability, asker),
            Expr::With(all) => {
                let mut sets = all.iter().map(|e| self.one_package(e, asker));
                let first = sets.next().unwrap_or_default();
                sets.fold(first, |kept, set| {
                    let set: HashSet<usize> = set.iter().map(|s| s.index).collect();
                    kept.into_iter()
                        .filter(|s| set.contains(&s.index))
                        .collect()
                })
            }
            Expr::Without(first, second) => {
                let second: HashSet<usize> = self
                    .one_package(second, asker)
                    .iter()
                    .map(|s| s.index)
                    .collect();
                (self.one_package(first, asker).into_iter())
                    .filter(|s| !second.contains(&s.index))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether `expr` could be made to hold without looking past its own packages:
    /// the test that picks an `or`'s alternative. Conditionals are settled later.
    fn installable(&self, expr: &Expr, asker: &Asker) -> bool {
        let usable = |s: &Satisfier| self.slot_of.contains_key(&s.index) || self.is_open(s.index);
        match expr {
            Expr::Cap(capability) if capability.name.starts_with("rpmlib(") => {
                rpmlib(capability).is_ok()
            }
            Expr::Cap(capability) => self.fitting(capability, Some(asker)).iter().any(usable),
            Expr::And(all) => all.iter().all(|e| self.installable(e, asker)),
            Expr::Or(any) => any.iter().any(|e| self.installable(e, asker)),
            Expr::With(_) | Expr::Without(..) => {
                self.one_package(expr, Some(asker)).iter().any(usable)
            }
            Expr::If(_) | Expr::Unless(_) => true,
        }
    }

    /// Whether `expr` holds over the chosen set (without `except`'s package), and
    /// through which package. A conditional whose branch is left out holds vacuously
    /// for `Requires`; for `Conflicts` (`conflicts`) it matches nothing.
    fn truth(&self, expr: &Expr, conflicts: bool, except: Option<usize>) -> Truth {
        let chosen = |found: Vec<Satisfier>| {
            (found.iter())
                .filter_map(|s| self.slot_of.get(&s.index).copied())
                .filter(|&slot| Some(slot) != except)
                .min_by(|&a, &b| self.name_order(a, b))
                .map_or(Truth::False, Truth::By)
        };
        match expr {
            Expr::Cap(capability) => chosen(self.universe.satisfiers(capability)),
            Expr::And(all) => {
                let truths: Vec<Truth> = (all.iter())
                    .map(|e| self.truth(e, conflicts, except))
                    .collect();
                if truths.contains(&Truth::False) {
                    Truth::False
                } else {
                    (truths.into_iter().find(|t| matches!(t, Truth::By(_))))
                        .unwrap_or(Truth::Vacuous)
                }
            }
            Expr::Or(any) => (any.iter())
                .map(|e| self.truth(e, conflicts, except))
                .find(|t| *t != Truth::False)
                .unwrap_or(Truth::False),
            // Every arch counts: what is chosen is in, whatever asked for it.
            Expr::With(_) | Expr::Without(..) => chosen(self.one_package(expr, None)),
            Expr::If(_) | Expr::Unless(_) => {
                let Some(branches) = expr.branches() else {
                    return Truth::False;
                };
                let branch = if self.truth(branches.cond, conflicts, except) != Truth::False {
                    branches.when_in
                } else {
                    branches.when_out
                };
                match branch {
                    Some(branch) => self.truth(branch, conflicts, except),
                    None if conflicts => Truth::False,
                    None => Truth::Vacuous,
                }
            }
        }
    }

    /// Why `expr` cannot be made to hold for `asker`.
    fn problem(&self, expr: &Expr, asker: &Asker) -> Problem {
        match expr {
            Expr::Cap(capability) if capability.name.starts_with("rpmlib(") => {
                rpmlib(capability).err().unwrap_or(Problem::UnknownRpmlib)
            }
            Expr::Cap(capability) => self.capability_problem(capability, asker),
            Expr::And(all) => (all.iter()).find(|e| !self.installable(e, asker)).map_or(
                Problem::Unavailable {
                    available: Vec::new(),
                },
                |e| self.problem(e, asker),
            ),
            Expr::Or(any) => Problem::NoAlternative(
                (any.iter())
                    .map(|e| (e.to_string(), self.problem(e, asker)))
                    .collect(),
            ),
            Expr::With(all) => self.with_problem(all.first(), asker),
            Expr::Without(first, _) => self.with_problem(Some(first), asker),
            Expr::If(_) | Expr::Unless(_) => Problem::Unavailable {
                available: Vec::new(),
            },
        }
    }

    /// Why no package matches a `with` or `without`: its first operand's problem, or
    /// the packages matching that operand, none of which matches the rest.
    fn with_problem(&self, first: Option<&Expr>, asker: &Asker) -> Problem {
        let Some(first) = first else {
            return Problem::Unavailable {
                available: Vec::new(),
            };
        };
        let found = self.one_package(first, Some(asker));
        if found.is_empty() {
            return self.problem(first, asker);
        }
        let mut available: Vec<String> = (found.iter())
            .map(|s| self.universe.packages()[s.index].nevra())
            .collect();
        available.sort_unstable();
        available.dedup();
        Problem::Unavailable { available }
    }

    /// Why `capability` cannot be satisfied for `asker`.
    fn capability_problem(&self, capability: &Capability, asker: &Asker) -> Problem {
        let universe = self.universe;
        let name = capability.name.as_str();
        if universe.satisfiers(capability).is_empty() {
            if !universe.knows(name) {
                return Problem::NoSuchPackage {
                    suggestions: universe.nearest_names(name),
                };
            }
            let available = universe.available(name, |p| self.allowed(p, asker));
            if !available.is_empty() {
                return Problem::Unavailable { available };
            }
        }
        let mut fit = self.fitting(capability, Some(asker));
        if fit.is_empty() {
            return Problem::WrongArch {
                found: universe.found(name),
            };
        }
        fit.sort_by(|a, b| self.prefer(a, b, asker));
        let kept = |s: &&Satisfier| !self.is_removed(s.index) && !self.is_obsoleted(s.index);
        if let Some(occupant) = fit.iter().filter(kept).find_map(|s| self.occupant(s.index)) {
            let package = self.package(occupant);
            return Problem::AlreadyChosen {
                chosen: format!("{} ({})", universe.label(package), package.evr),
                through: self.chain_of(occupant),
            };
        }
        let obsoleters: Vec<usize> = (fit.iter())
            .filter(|s| !self.is_removed(s.index))
            .filter_map(|s| self.obsoleted_by.get(&s.index))
            .flatten()
            .copied()
            .collect();
        if !obsoleters.is_empty() {
            return Problem::Obsoleted {
                by: nevras(universe, obsoleters),
            };
        }
        if fit.iter().any(|s| !s.provided) {
            return Problem::Removed;
        }
        Problem::ProvidedOnlyByRemoved {
            providers: (fit.iter())
                .map(|s| universe.label(universe.packages()[s.index]))
                .collect::<BTreeSet<String>>()
                .into_iter()
                .collect(),
        }
    }

    /// Whether `asker` may take `package`'s arch: the appliance's, `noarch`, or its
    /// own; only the named one when the group named an arch.
    fn allowed(&self, package: &RpmPackage, asker: &Asker) -> bool {
        if asker.exact {
            package.arch == asker.arch
        } else {
            self.universe.is_native(&package.arch) || package.arch == asker.arch
        }
    }

    /// Whether package `index` is kept out by a remove (which is then marked used).
    fn is_removed(&self, index: usize) -> bool {
        (self.removes).removes(self.universe.packages()[index].name.as_str())
    }

    fn is_obsoleted(&self, index: usize) -> bool {
        self.obsoleted_by.contains_key(&index)
    }

    /// Whether package `index` may still be chosen.
    fn is_open(&self, index: usize) -> bool {
        !self.is_removed(index) && !self.is_obsoleted(index) && self.occupant(index).is_none()
    }

    /// The chosen package that keeps `index` out: rpm installs one package of a name
    /// per arch, and a `noarch` one excludes every other.
    fn occupant(&self, index: usize) -> Option<usize> {
        let package = self.universe.packages()[index];
        let slots = self.chosen_by_name.get(package.name.as_str())?;
        slots.iter().copied().find(|&slot| {
            let other = self.package(slot);
            other.arch == package.arch || other.arch == NOARCH || package.arch == NOARCH
        })
    }

    /// Orders satisfiers best first: avoided last; then the preference's rank (with
    /// [`Prefer::Installed`] the host's version of the name, then the origin; with
    /// [`Prefer::Newest`] the best origin of the name); real over provider, highest
    /// EVR, origin, name, then the asker's own arch, the appliance's, `noarch`.
    fn prefer(&self, a: &Satisfier, b: &Satisfier, asker: &Asker) -> Ordering {
        let universe = self.universe;
        let ranked = |s: &Satisfier| {
            let p: &'u RpmPackage = universe.packages()[s.index];
            let arch_rank = if p.arch == asker.arch && p.arch != NOARCH {
                0
            } else if p.arch == universe.arch() {
                1
            } else if p.arch == NOARCH {
                2
            } else {
                3
            };
            Ranked {
                rank: self.prefer.rank(
                    self.avoid.contains(&s.index),
                    universe.is_installed(p),
                    p.origin,
                    universe.best_origin(&p.name),
                ),
                provided: s.provided,
                version: &p.evr,
                origin: p.origin,
                name: &p.name,
                arch: (arch_rank, &p.arch),
                index: s.index,
            }
        };
        ranked(a).order(&ranked(b), compare)
    }

    fn best<'s>(
        &self,
        satisfiers: impl Iterator<Item = &'s Satisfier>,
        asker: &Asker,
    ) -> Option<Satisfier> {
        satisfiers.min_by(|a, b| self.prefer(a, b, asker)).copied()
    }

    fn select(&mut self, index: usize, asker: &Asker) -> usize {
        let slot = self.slots.len();
        self.slots.push(Slot {
            index,
            reason: asker.reason.clone(),
            parent: asker.slot,
            root: asker.root.clone(),
            wanted: asker.wanted,
        });
        self.slot_of.insert(index, slot);
        let name = self.universe.packages()[index].name.as_str();
        self.chosen_by_name.entry(name).or_default().push(slot);
        self.graph.add_node(index);
        slot
    }

    fn chain_of(&self, slot: usize) -> Vec<String> {
        chain_of(&self.slots, slot, |index| {
            self.universe.label(self.universe.packages()[index])
        })
    }

    /// The error for a requirement of `asker` that failed: the chain from the group
    /// through the expressions around it to `what`.
    fn error(
        &self,
        asker: &Asker,
        context: &[String],
        what: &str,
        problem: Problem,
    ) -> ResolveError {
        let mut chain = match asker.slot {
            Some(slot) => self.chain_of(slot),
            None => vec![asker.root.clone()],
        };
        chain.extend(context.iter().cloned());
        chain.push(what.to_string());
        ResolveError {
            chain,
            problem,
            wanted: asker.wanted,
        }
    }

    /// Orders slots by their package's (name, arch, EVR).
    fn name_order(&self, a: usize, b: usize) -> Ordering {
        let (pa, pb) = (self.package(a), self.package(b));
        ((&pa.name, &pa.arch).cmp(&(&pb.name, &pb.arch))).then_with(|| compare(&pa.evr, &pb.evr))
    }

    /// Slots sorted by (name, arch), the order of the result and of conflict checks.
    fn sorted_slots(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.slots.len()).collect();
        order.sort_by(|&a, &b| self.name_order(a, b));
        order
    }

    /// Fails on the first chosen package (in name order) whose `Conflicts`, plain or
    /// rich, hold over the other chosen packages.
    fn check_conflicts(&mut self) -> Result<(), ResolveError> {
        let universe = self.universe;
        let label = |p: &RpmPackage| format!("{} ({})", universe.label(p), p.evr);
        for slot in self.sorted_slots() {
            let package = self.package(slot);
            for conflict in &package.conflicts {
                let expr = if rich::is_rich(&conflict.name) {
                    rich::parse(&conflict.name).map_err(|why| {
                        let mut chain = self.chain_of(slot);
                        chain.push(format!("conflicts {}", conflict.name));
                        ResolveError {
                            chain,
                            problem: Problem::Malformed(why),
                            wanted: self.slots[slot].wanted,
                        }
                    })?
                } else {
                    Expr::Cap(conflict.clone())
                };
                let Truth::By(other) = self.truth(&expr, true, Some(slot)) else {
                    continue;
                };
                self.culprits = Culprits::of_conflict(&self.slots, slot, other);
                let other_package = self.package(other);
                return Err(ResolveError {
                    chain: self.chain_of(slot),
                    problem: Problem::Conflict(Box::new(Conflict {
                        kind: ConflictKind::Conflicts,
                        package: label(package),
                        relation: expr.to_string(),
                        other: label(other_package),
                        provided: matches!(&expr, Expr::Cap(c) if c.name != other_package.name),
                        other_chain: self.chain_of(other),
                    })),
                    wanted: self.slots[slot].wanted,
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> Resolution {
        let packages = self.universe.packages();
        assemble(
            &self.slots,
            self.sorted_slots(),
            &self.graph,
            self.removes.idle(),
            |index| packages[index].name.as_str(),
        )
    }
}

/// Whether rpm 4.18 has the `rpmlib(...)` feature `capability` asks for.
fn rpmlib(capability: &Capability) -> Result<(), Problem> {
    let (_, version) = (RPMLIB_FEATURES.iter())
        .find(|(name, _)| *name == capability.name)
        .ok_or(Problem::UnknownRpmlib)?;
    if overlaps(Some((Op::Eq, version)), range(capability)) {
        Ok(())
    } else {
        Err(Problem::Unavailable {
            available: vec![version.to_string()],
        })
    }
}

/// `name-evr.arch` of each package, sorted, once each.
fn nevras(universe: &RpmUniverse, indices: Vec<usize>) -> Vec<String> {
    let mut found: Vec<String> = (indices.into_iter())
        .map(|i| universe.packages()[i].nevra())
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

#[cfg(test)]
mod tests;
