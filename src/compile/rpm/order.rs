//! The order rpm installs a set in: dependencies before what needs them, a cycle's
//! members by name.

use petgraph::graph::DiGraph;

use crate::resolve::Resolution;

/// Universe indices of `resolution`'s packages, each after the packages it requires
/// (members of a dependency cycle in the order of `chosen`, which is by name).
pub fn install_order(resolution: &Resolution) -> Vec<usize> {
    let position = |index: usize| resolution.position(index).unwrap_or_default();
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<_> = (resolution.chosen.iter())
        .map(|c| graph.add_node(c.index))
        .collect();
    for (from, to) in resolution.edges() {
        if from != to {
            graph.add_edge(nodes[position(from)], nodes[position(to)], ());
        }
    }
    // Tarjan's components come dependencies first (reverse topological order of edges
    // that run from a package to what it needs).
    let mut order = Vec::new();
    for mut component in petgraph::algo::tarjan_scc(&graph) {
        component.sort_unstable();
        order.extend(component.into_iter().map(|n| graph[n]));
    }
    order
}
