//! The resolver: the closure of requested packages over the package universe.
//!
//! Like uv, the resolver is kept apart from where packages come from: it sees only
//! [`Package`] values in a [`Universe`] and never reads files. It follows Debian's
//! rules: `Pre-Depends` and `Depends` with alternatives, version relations, `Provides`,
//! multi-arch qualifiers, `Conflicts` and `Breaks`, and `Essential`. There is no
//! backtracking: each entry takes the first alternative that can be installed, in a
//! fixed order, so the same inputs always give the same result.

mod error;
mod removals;
pub mod rpm;
mod universe;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::lock::Reason;
use crate::source::dpkg::version::compare;
use crate::source::dpkg::{MultiArch, Package, Relation};
use crate::source::{Op, Origin};

pub use error::{Conflict, ConflictKind, Problem, ResolveError};
use removals::Removals;
use universe::Satisfier;
pub use universe::Universe;

/// Resolver rules version, recorded in every lock; bump it when results can change.
pub const RESOLVER_VERSION: u32 = 4;

/// The first link of the chain of packages added because they are essential.
const ESSENTIAL_ROOT: &str = "essential";

/// Which candidate of a package name the resolver takes, when several satisfy.
///
/// Either way an alternative the host has installed beats an earlier one it lacks, and
/// a virtual name goes to a provider the host has: the preference picks the version of
/// a name, never another name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefer {
    /// The host's installed package, else a pool archive's, else apt's lists' newest:
    /// the appliance runs what the host runs.
    #[default]
    Installed,
    /// The newest version from any source; at equal versions the host's installed
    /// files, then the pool's archive.
    Newest,
}

impl Prefer {
    /// The words that name a preference, as the language and the command line take them.
    pub const NAMES: [&'static str; 2] = ["installed", "newest"];

    /// The word naming this preference.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefer::Installed => "installed",
            Prefer::Newest => "newest",
        }
    }
}

impl Prefer {
    /// The key a candidate is ranked by, lowest first: avoided last; then with
    /// [`Prefer::Installed`] the host's version of its name, then its `origin`; with
    /// [`Prefer::Newest`] its name's best origin (`name_origin`), so a version never
    /// decides between two names.
    fn rank(
        self,
        avoided: bool,
        host_version: bool,
        origin: Origin,
        name_origin: Origin,
    ) -> (bool, bool, Origin) {
        match self {
            Prefer::Installed => (avoided, !host_version, origin),
            Prefer::Newest => (avoided, false, name_origin),
        }
    }
}

/// One satisfier of a relation as both resolvers rank it; [`Ranked::order`] puts the
/// better first. Each resolver fills in the rank and the arch its own rules give.
struct Ranked<'p> {
    /// [`Prefer::rank`]'s.
    rank: (bool, bool, Origin),
    /// Satisfies through a provide rather than its name.
    provided: bool,
    version: &'p str,
    origin: Origin,
    name: &'p str,
    /// The arch's rank (lower is better) and name.
    arch: (u8, &'p str),
    /// The package's universe index: only the same package listed twice gets that far,
    /// so the choice does not change the result.
    index: usize,
}

impl Ranked<'_> {
    /// The order of `self` and `other`: the preference's rank, a real package over a
    /// provider, the higher version (by `compare`), the origin, the name, the arch.
    fn order(&self, other: &Ranked, compare: impl Fn(&str, &str) -> Ordering) -> Ordering {
        (self.rank.cmp(&other.rank))
            .then(self.provided.cmp(&other.provided))
            .then_with(|| compare(other.version, self.version))
            .then(self.origin.cmp(&other.origin))
            .then_with(|| self.name.cmp(other.name))
            .then_with(|| self.arch.cmp(&other.arch))
            .then(self.index.cmp(&other.index))
    }
}

impl std::str::FromStr for Prefer {
    type Err = String;

    fn from_str(word: &str) -> Result<Prefer, String> {
        match word {
            "installed" => Ok(Prefer::Installed),
            "newest" => Ok(Prefer::Newest),
            _ => Err(format!(
                "`{}` is no preference: write `installed` or `newest`",
                crate::excerpt::excerpt(word)
            )),
        }
    }
}

/// A package the group asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Package or virtual name, optionally arch-qualified (`libc6:i386`).
    pub name: String,
    /// Version constraint from the group (`>= 1:9.2`).
    pub constraint: Option<(Op, String)>,
    /// Why it is wanted; kept as the chosen package's reason (`Reason::Named`).
    pub reason: Reason,
    /// The compiled group's name: the first link of every chain through this package.
    pub root: String,
}

/// What to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Packages the group asks for, in group order (it decides ties between alternatives).
    pub wanted: Vec<Wanted>,
    /// Package names the group removes: never chosen, even when wanted.
    pub removes: Vec<String>,
    /// Whether to add every `Essential: yes` package of the native arch, with its closure.
    pub essential: bool,
    /// Which version of a name to take.
    pub prefer: Prefer,
    /// Universe indices to take only where nothing else satisfies: installed packages
    /// whose host files were altered, whose own metadata must come from an archive.
    /// Under [`Prefer::Installed`] the archive at the host's version comes first.
    /// [`resolve`] adds the versions that kept out one a relation needed.
    pub avoid: BTreeSet<usize>,
}

/// One package of a resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// Index into [`Universe::packages`].
    pub index: usize,
    /// Why the package is in (named, essential, or whose dependency it is).
    pub reason: Reason,
}

/// The chosen packages and the dependency edges between them.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The chosen packages, sorted by (name, arch).
    pub chosen: Vec<Chosen>,
    /// Node `i` is `chosen[i]`; an edge runs from a package to a dependency it needs.
    graph: DiGraph<usize, ()>,
    /// Position in `chosen` of the package that first pulled each one in.
    pulled_by: Vec<Option<usize>>,
    /// Universe index -> position in `chosen`.
    position: HashMap<usize, usize>,
    /// The names [`Request::removes`] gives that kept no candidate out: nothing asked
    /// for them, so removing them changed nothing. In request order.
    pub idle_removes: Vec<String>,
}

impl Resolution {
    /// Where universe package `index` is in [`Resolution::chosen`], if it was chosen.
    pub fn position(&self, index: usize) -> Option<usize> {
        self.position.get(&index).copied()
    }

    /// Every dependency edge as (depending package, dependency), universe indices, in
    /// the order of `chosen`.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let mut edges: Vec<(usize, usize)> = (self.graph.raw_edges().iter())
            .map(|e| (e.source().index(), e.target().index()))
            .collect();
        edges.sort_unstable();
        edges
            .into_iter()
            .map(|(from, to)| (self.chosen[from].index, self.chosen[to].index))
            .collect()
    }

    /// The chosen packages that package `index` depends on directly.
    pub fn dependencies(&self, index: usize) -> Vec<usize> {
        self.neighbors(index, Direction::Outgoing)
    }

    /// The chosen packages that depend directly on package `index`.
    pub fn dependents(&self, index: usize) -> Vec<usize> {
        self.neighbors(index, Direction::Incoming)
    }

    fn neighbors(&self, index: usize, direction: Direction) -> Vec<usize> {
        let Some(position) = self.position(index) else {
            return Vec::new();
        };
        let mut found: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(position), direction)
            .map(NodeIndex::index)
            .collect();
        found.sort_unstable();
        found.dedup();
        found.into_iter().map(|p| self.chosen[p].index).collect()
    }

    /// Why package `index` is in: the packages from a wanted or essential one down to
    /// it, each pulled in by the one before (empty when `index` was not chosen).
    pub fn chain(&self, index: usize) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut at = self.position(index);
        while let Some(position) = at {
            chain.push(self.chosen[position].index);
            at = self.pulled_by[position];
        }
        chain.reverse();
        chain
    }

    /// Dependency cycles: sets of packages that all depend on each other, each in the
    /// order of `chosen`.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut cycles: Vec<Vec<usize>> = petgraph::algo::tarjan_scc(&self.graph)
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let mut positions: Vec<usize> = component.into_iter().map(|n| n.index()).collect();
                positions.sort_unstable();
                positions
            })
            .collect();
        cycles.sort_unstable();
        cycles
            .into_iter()
            .map(|c| c.into_iter().map(|p| self.chosen[p].index).collect())
            .collect()
    }
}

/// Resolves `request` over `universe`: the wanted packages, the essential ones if asked,
/// and the closure of their `Pre-Depends` and `Depends`, checked for conflicts.
///
/// A pass that fails only because of a version chosen first is learned from, as apt
/// would upgrade (see [`learning`]): the host's `perl` where a package from the lists
/// needs a newer one, or the host's `libgssapi-krb5-2` needing its own `libkrb5-3` where
/// another package needs the lists' newer one. The same inputs still give the same result.
pub fn resolve(universe: &Universe, request: &Request) -> Result<Resolution, ResolveError> {
    let superseded = |index| universe.superseded(index);
    learning(request, superseded, |avoid| {
        let mut resolver = Resolver::new(universe, request, avoid);
        match resolver.pass(request) {
            Ok(()) => Ok(resolver.finish()),
            Err(err) => Err(Box::new((err, resolver.culprits))),
        }
    })
}

/// A failed pass: why, and what [`learning`] can learn from it.
type Failed = Box<(ResolveError, Culprits)>;

/// What a failed pass can learn from: chosen versions (universe indices) on either
/// side of the relation or conflict that failed.
#[derive(Debug, Default)]
struct Culprits {
    /// The chosen versions that kept out one a relation needed.
    blockers: Vec<usize>,
    /// The chosen versions that asked: the package whose relation failed and those that
    /// chose each blocker, or both packages of a conflict.
    askers: Vec<usize>,
}

impl Culprits {
    /// The culprits of a relation asked by the package at slot `asker` (none for the
    /// group's own request) that the packages at slots `occupants` kept out.
    fn of_relation(slots: &[Slot], asker: Option<usize>, occupants: &[usize]) -> Culprits {
        let parents = occupants.iter().filter_map(|&slot| slots[slot].parent);
        Culprits {
            blockers: occupants.iter().map(|&slot| slots[slot].index).collect(),
            askers: (asker.into_iter().chain(parents))
                .map(|slot| slots[slot].index)
                .collect(),
        }
    }

    /// The culprits of a conflict between the packages at slots `a` and `b`.
    fn of_conflict(slots: &[Slot], a: usize, b: usize) -> Culprits {
        Culprits {
            blockers: Vec::new(),
            askers: vec![slots[a].index, slots[b].index],
        }
    }
}

/// Runs `pass` avoiding what `request` avoids, then again with more avoided after each
/// failed pass, until one succeeds or a failure teaches nothing new. What a failure
/// teaches is, as apt would upgrade before it downgrades: the blockers the universe
/// holds a newer version of (`superseded`); else the askers it holds a newer version
/// of; else the blockers. The avoided set only grows, so this ends.
fn learning(
    request: &Request,
    superseded: impl Fn(usize) -> bool,
    mut pass: impl FnMut(BTreeSet<usize>) -> Result<Resolution, Failed>,
) -> Result<Resolution, ResolveError> {
    let mut avoid = request.avoid.clone();
    loop {
        let (err, culprits) = match pass(avoid.clone()) {
            Ok(resolution) => return Ok(resolution),
            Err(failed) => *failed,
        };
        let new = |versions: &[usize], only_superseded: bool| -> Vec<usize> {
            (versions.iter().copied())
                .filter(|v| !avoid.contains(v) && (!only_superseded || superseded(*v)))
                .collect()
        };
        let learned = [
            new(&culprits.blockers, true),
            new(&culprits.askers, true),
            new(&culprits.blockers, false),
        ]
        .into_iter()
        .find(|learned| !learned.is_empty());
        match learned {
            Some(learned) => avoid.extend(learned),
            None => return Err(err),
        }
    }
}

/// A package chosen during resolution.
struct Slot {
    index: usize,
    reason: Reason,
    /// The slot that pulled this one in; `None` for wanted and essential packages.
    parent: Option<usize>,
    /// The first link of this package's chain.
    root: String,
    /// The position in [`Request::wanted`] of the request that began this package's
    /// chain; `None` for a chain that began at the essential packages.
    wanted: Option<usize>,
}

/// Who asks for a relation: it decides the arch, the reason and the error chain.
struct Asker {
    slot: Option<usize>,
    arch: String,
    root: String,
    /// As [`Slot::wanted`].
    wanted: Option<usize>,
    reason: Reason,
}

struct Resolver<'u> {
    universe: &'u Universe<'u>,
    prefer: Prefer,
    avoid: BTreeSet<usize>,
    removes: Removals<'u>,
    slots: Vec<Slot>,
    /// Universe index -> slot.
    slot_of: HashMap<usize, usize>,
    /// Package name -> slots chosen with that name (several only for `Multi-Arch: same`).
    chosen_by_name: HashMap<String, Vec<usize>>,
    /// Node `i` is slot `i`.
    graph: DiGraph<usize, ()>,
    /// When the pass failed: what it can learn from.
    culprits: Culprits,
}

impl<'u> Resolver<'u> {
    fn new(universe: &'u Universe<'u>, request: &'u Request, avoid: BTreeSet<usize>) -> Self {
        Resolver {
            universe,
            prefer: request.prefer,
            avoid,
            removes: Removals::new(&request.removes),
            slots: Vec::new(),
            slot_of: HashMap::new(),
            chosen_by_name: HashMap::new(),
            graph: DiGraph::new(),
            culprits: Culprits::default(),
        }
    }

    /// One pass over `request`: each wanted entry, the essential packages if asked, and
    /// their closure, each entry taking its best candidate in turn; then the checks.
    fn pass(&mut self, request: &Request) -> Result<(), ResolveError> {
        let universe = self.universe;
        for (position, wanted) in request.wanted.iter().enumerate() {
            let (name, arch) = match wanted.name.split_once(':') {
                Some((name, arch)) => (name, Some(arch.to_string())),
                None => (wanted.name.as_str(), None),
            };
            if self.removes.removes(name) {
                continue;
            }
            let relation = Relation {
                name: name.to_string(),
                arch,
                constraint: wanted.constraint.clone(),
            };
            let asker = Asker {
                slot: None,
                arch: universe.native_arch().to_string(),
                root: wanted.root.clone(),
                wanted: Some(position),
                reason: wanted.reason.clone(),
            };
            self.satisfy(std::slice::from_ref(&relation), &asker)?;
        }
        if request.essential {
            self.add_essentials();
        }
        // Slots are appended as they are chosen, so walking them in order is breadth-first.
        let mut next = 0;
        while next < self.slots.len() {
            self.expand(next)?;
            next += 1;
        }
        self.check_refused()?;
        self.check_conflicts()
    }

    fn package(&self, slot: usize) -> &'u Package {
        self.universe.packages()[self.slots[slot].index]
    }

    /// Whether package `index` is kept out by a remove (which is then marked used).
    fn is_removed(&self, index: usize) -> bool {
        self.removes
            .removes(self.universe.packages()[index].name.as_str())
    }

    /// The chosen package that keeps `index` out: dpkg installs one instance of a name,
    /// or one per arch when every instance is `Multi-Arch: same`.
    fn occupant(&self, index: usize) -> Option<usize> {
        let universe = self.universe;
        let package = &universe.packages()[index];
        let slots = self.chosen_by_name.get(&package.name)?;
        slots.iter().copied().find(|&slot| {
            let other = self.package(slot);
            let both_same =
                package.multi_arch == MultiArch::Same && other.multi_arch == MultiArch::Same;
            !both_same
                || universe.effective_arch(&package.arch) == universe.effective_arch(&other.arch)
        })
    }

    /// Orders satisfiers best first: avoided last; then the preference's rank (with
    /// [`Prefer::Installed`] the host's version of the name, then the origin; with
    /// [`Prefer::Newest`] the best origin of the name, so a version never decides
    /// between two names); real over provider, highest version, origin, name, then the
    /// asker's own arch over `all` over other arches.
    fn prefer(&self, a: &Satisfier, b: &Satisfier, arch: &str) -> Ordering {
        let universe = self.universe;
        let ranked = |s: &Satisfier| {
            let p: &'u Package = universe.packages()[s.index];
            let arch_rank = if p.arch == "all" {
                1
            } else if universe.effective_arch(&p.arch) == universe.effective_arch(arch) {
                0
            } else {
                2
            };
            Ranked {
                rank: self.prefer.rank(
                    self.avoid.contains(&s.index),
                    universe.is_installed(p),
                    p.origin,
                    universe.best_origin(&p.name),
                ),
                provided: s.provided,
                version: &p.version,
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
        arch: &str,
    ) -> Option<Satisfier> {
        satisfiers.min_by(|a, b| self.prefer(a, b, arch)).copied()
    }

    /// The chain from the group down to `slot`'s package, for messages.
    fn chain_of(&self, slot: usize) -> Vec<String> {
        chain_of(&self.slots, slot, |index| {
            self.universe.label(self.universe.packages()[index])
        })
    }

    fn asker_chain(&self, asker: &Asker) -> Vec<String> {
        match asker.slot {
            Some(slot) => self.chain_of(slot),
            None => vec![asker.root.clone()],
        }
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
        let name = &self.universe.packages()[index].name;
        self.chosen_by_name
            .entry(name.clone())
            .or_default()
            .push(slot);
        self.graph.add_node(index);
        slot
    }

    /// Satisfies one dependency entry: an alternative the chosen set already satisfies,
    /// else the best installed candidate of the first alternative that has one, else the
    /// best candidate of the first alternative that has one. Returns its slot.
    fn satisfy(&mut self, alternatives: &[Relation], asker: &Asker) -> Result<usize, ResolveError> {
        let universe = self.universe;
        let entry = || -> String {
            let alternatives: Vec<String> = alternatives.iter().map(Relation::to_string).collect();
            alternatives.join(" | ")
        };
        // A refused stanza of any alternative might have been the choice.
        if let Some(why) = alternatives.iter().find_map(|r| universe.refused(&r.name)) {
            let mut chain = self.asker_chain(asker);
            chain.push(entry());
            let problem = Problem::Refused(why.to_string());
            let wanted = asker.wanted;
            return Err(ResolveError {
                chain,
                problem,
                wanted,
            });
        }
        let satisfiers: Vec<Vec<Satisfier>> = (alternatives.iter())
            .map(|r| universe.satisfiers(r, &asker.arch))
            .collect();
        for found in &satisfiers {
            let chosen = found.iter().filter(|s| self.slot_of.contains_key(&s.index));
            if let Some(best) = self.best(chosen, &asker.arch)
                && let Some(&slot) = self.slot_of.get(&best.index)
            {
                return Ok(slot);
            }
        }
        // An alternative the host already has beats an earlier one that would have to
        // come from an archive (`usrmerge | usr-is-merged` on a merged host): apt does the
        // same, and it keeps the appliance to what the host runs. Which version of it
        // is the preference's choice.
        let open_in = |found: &[Satisfier]| {
            (found.iter())
                .filter(|s| !self.is_removed(s.index) && self.occupant(s.index).is_none())
                .copied()
                .collect::<Vec<Satisfier>>()
        };
        let installed = |s: &Satisfier| universe.packages()[s.index].origin == Origin::Installed;
        let open: Vec<Vec<Satisfier>> = satisfiers.iter().map(|found| open_in(found)).collect();
        let pick = (open.iter())
            .find(|found| found.iter().any(installed))
            .or_else(|| open.iter().find(|found| !found.is_empty()));
        if let Some(best) = pick.and_then(|found| self.best(found.iter(), &asker.arch)) {
            return Ok(self.select(best.index, asker));
        }
        let occupants: Vec<usize> = (satisfiers.iter().flatten())
            .filter(|s| !self.is_removed(s.index))
            .filter_map(|s| self.occupant(s.index))
            .collect();
        self.culprits = Culprits::of_relation(&self.slots, asker.slot, &occupants);
        let mut problems: Vec<(String, Problem)> = (alternatives.iter())
            .zip(&satisfiers)
            .map(|(r, found)| (r.to_string(), self.problem(r, &asker.arch, found)))
            .collect();
        let problem = match problems.pop() {
            Some((_, only)) if problems.is_empty() => only,
            last => {
                problems.extend(last);
                Problem::NoAlternative(problems)
            }
        };
        let mut chain = self.asker_chain(asker);
        chain.push(entry());
        let wanted = asker.wanted;
        Err(ResolveError {
            chain,
            problem,
            wanted,
        })
    }

    /// Why `relation` cannot be satisfied, given everything that satisfies it.
    fn problem(&self, relation: &Relation, arch: &str, satisfiers: &[Satisfier]) -> Problem {
        let universe = self.universe;
        if satisfiers.is_empty() {
            if !universe.knows(&relation.name) {
                return Problem::NoSuchPackage {
                    suggestions: universe.nearest_names(&relation.name),
                };
            }
            let available = universe.available(relation, arch);
            if available.is_empty() {
                return Problem::WrongArch {
                    found: universe.found_elsewhere(&relation.name),
                };
            }
            return Problem::Unavailable { available };
        }
        let mut open: Vec<Satisfier> = (satisfiers.iter())
            .filter(|s| !self.is_removed(s.index))
            .copied()
            .collect();
        open.sort_by(|a, b| self.prefer(a, b, arch));
        if let Some(occupant) = open.iter().find_map(|s| self.occupant(s.index)) {
            let package = self.package(occupant);
            return Problem::AlreadyChosen {
                chosen: format!("{} ({})", universe.label(package), package.version),
                through: self.chain_of(occupant),
            };
        }
        if satisfiers.iter().any(|s| !s.provided) {
            return Problem::Removed;
        }
        let mut providers: Vec<String> = (satisfiers.iter())
            .map(|s| universe.label(universe.packages()[s.index]))
            .collect();
        providers.sort_unstable();
        providers.dedup();
        Problem::ProvidedOnlyByRemoved { providers }
    }

    /// Chooses, for each name with an `Essential: yes` package of the native arch, its
    /// best essential version, unless the name is removed or already chosen.
    fn add_essentials(&mut self) {
        let universe = self.universe;
        let native = universe.native_arch();
        let mut by_name: BTreeMap<&str, Vec<Satisfier>> = BTreeMap::new();
        for (index, package) in universe.packages().iter().enumerate() {
            if package.essential && universe.effective_arch(&package.arch) == native {
                let candidate = Satisfier {
                    index,
                    provided: false,
                };
                by_name.entry(&package.name).or_default().push(candidate);
            }
        }
        let asker = Asker {
            slot: None,
            arch: native.to_string(),
            root: ESSENTIAL_ROOT.to_string(),
            wanted: None,
            reason: Reason::Essential,
        };
        for candidates in by_name.values() {
            let open = (candidates.iter())
                .filter(|s| !self.is_removed(s.index) && self.occupant(s.index).is_none());
            if let Some(best) = self.best(open, native) {
                self.select(best.index, &asker);
            }
        }
    }

    /// Satisfies every `Pre-Depends` then `Depends` entry of `slot`'s package.
    fn expand(&mut self, slot: usize) -> Result<(), ResolveError> {
        let package = self.package(slot);
        let asker = Asker {
            slot: Some(slot),
            arch: package.arch.clone(),
            root: self.slots[slot].root.clone(),
            wanted: self.slots[slot].wanted,
            reason: Reason::Dependency {
                of: package.name.clone(),
                also: Vec::new(),
            },
        };
        for entry in package.pre_depends.iter().chain(&package.depends) {
            let target = self.satisfy(entry, &asker)?;
            // A package satisfying its own dependency (through Provides) is no edge.
            if target != slot {
                self.graph
                    .update_edge(NodeIndex::new(slot), NodeIndex::new(target), ());
            }
        }
        Ok(())
    }

    /// Slots sorted by (name, arch), the order of the result and of conflict checks.
    fn sorted_slots(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.slots.len()).collect();
        order.sort_by(|&a, &b| {
            let (pa, pb) = (self.package(a), self.package(b));
            (&pa.name, &pa.arch).cmp(&(&pb.name, &pb.arch))
        });
        order
    }

    /// Fails on the first chosen package (in name order) of which a source refused a
    /// stanza: chosen as essential or through `Provides`, it was never looked up by name.
    fn check_refused(&self) -> Result<(), ResolveError> {
        for slot in self.sorted_slots() {
            if let Some(why) = self.universe.refused(&self.package(slot).name) {
                return Err(ResolveError {
                    chain: self.chain_of(slot),
                    problem: Problem::Refused(why.to_string()),
                    wanted: self.slots[slot].wanted,
                });
            }
        }
        Ok(())
    }

    /// Fails on the first chosen package (in name order) whose `Conflicts` or `Breaks`
    /// match another chosen package; a package never conflicts with itself.
    fn check_conflicts(&mut self) -> Result<(), ResolveError> {
        let universe = self.universe;
        for slot in self.sorted_slots() {
            let package = self.package(slot);
            let index = self.slots[slot].index;
            let fields = [
                (ConflictKind::Conflicts, &package.conflicts),
                (ConflictKind::Breaks, &package.breaks),
            ];
            for (kind, relations) in fields {
                for relation in relations {
                    let hit = (universe.satisfiers(relation, &package.arch).into_iter())
                        .filter(|s| s.index != index)
                        .filter_map(|s| self.slot_of.get(&s.index).map(|&o| (s, o)))
                        .min_by(|(_, a), (_, b)| {
                            let (pa, pb) = (self.package(*a), self.package(*b));
                            (&pa.name, &pa.arch).cmp(&(&pb.name, &pb.arch))
                        });
                    if let Some((matched, other)) = hit {
                        self.culprits = Culprits::of_conflict(&self.slots, slot, other);
                        let label = |p: &Package| format!("{} ({})", universe.label(p), p.version);
                        return Err(ResolveError {
                            chain: self.chain_of(slot),
                            problem: Problem::Conflict(Box::new(Conflict {
                                kind,
                                package: label(package),
                                relation: relation.to_string(),
                                other: label(self.package(other)),
                                provided: matched.provided,
                                other_chain: self.chain_of(other),
                            })),
                            wanted: self.slots[slot].wanted,
                        });
                    }
                }
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

/// The chain from the group down to `slot`'s package, for messages; `label` names the
/// package at a universe index.
fn chain_of(slots: &[Slot], slot: usize, label: impl Fn(usize) -> String) -> Vec<String> {
    let mut chain = Vec::new();
    let mut at = Some(slot);
    while let Some(s) = at {
        chain.push(label(slots[s].index));
        at = slots[s].parent;
    }
    chain.push(slots[slot].root.clone());
    chain.reverse();
    chain
}

/// The resolution of the chosen `slots`, listed in `order`; node `i` of `graph` is slot
/// `i`, an edge running from a package to a dependency it needs. `idle_removes` are the
/// removes that kept nothing out. `name` names the package at a universe index: a
/// dependency's reason lists every chosen package that depends on it, not only the first.
fn assemble<'n>(
    slots: &[Slot],
    order: Vec<usize>,
    graph: &DiGraph<usize, ()>,
    idle_removes: Vec<String>,
    name: impl Fn(usize) -> &'n str,
) -> Resolution {
    let mut position_of_slot = vec![0; order.len()];
    for (position, &slot) in order.iter().enumerate() {
        position_of_slot[slot] = position;
    }
    let mut sorted = DiGraph::with_capacity(order.len(), graph.edge_count());
    for &slot in &order {
        sorted.add_node(slots[slot].index);
    }
    let mut edges: Vec<(usize, usize)> = (graph.raw_edges().iter())
        .map(|e| {
            (
                position_of_slot[e.source().index()],
                position_of_slot[e.target().index()],
            )
        })
        .collect();
    edges.sort_unstable();
    for (from, to) in edges {
        sorted.add_edge(NodeIndex::new(from), NodeIndex::new(to), ());
    }
    let pulled_by = (order.iter())
        .map(|&slot| slots[slot].parent.map(|p| position_of_slot[p]))
        .collect();
    let position = (order.iter().enumerate())
        .map(|(position, &slot)| (slots[slot].index, position))
        .collect();
    let chosen = (order.into_iter().enumerate())
        .map(|(position, slot)| {
            let mut reason = slots[slot].reason.clone();
            if let Reason::Dependency { of, also } = &mut reason {
                let dependents =
                    sorted.neighbors_directed(NodeIndex::new(position), Direction::Incoming);
                let names: BTreeSet<&str> = dependents
                    .map(|node| name(sorted[node]))
                    .filter(|depender| depender != of)
                    .collect();
                *also = names.into_iter().map(str::to_string).collect();
            }
            Chosen {
                index: slots[slot].index,
                reason,
            }
        })
        .collect();
    Resolution {
        chosen,
        graph: sorted,
        pulled_by,
        position,
        idle_removes,
    }
}

#[cfg(test)]
mod tests;
