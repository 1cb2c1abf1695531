//! The cell dependency graph: edges from writers to readers, multiple-definition and cycle
//! errors, and run orders. Pure logic; everything is O((cells + edges) log cells).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use crate::notebook::analysis::CellNames;

/// A cell as seen by the graph: its id and the names it writes and reads.
pub struct GraphCell<'a> {
    /// Unique cell id.
    pub id: &'a str,
    /// Names the cell defines.
    pub writes: &'a [String],
    /// Names the cell reads.
    pub reads: &'a [String],
}

impl<'a> GraphCell<'a> {
    /// The graph's view of a cell with id `id` and analysed names `names`.
    pub fn of(id: &'a str, names: &'a CellNames) -> Self {
        GraphCell {
            id,
            writes: &names.writes,
            reads: &names.reads,
        }
    }
}

/// Adjacency lists of all cells in one allocation: cell `i`'s neighbours are
/// `targets[offsets[i]..offsets[i + 1]]`, sorted and deduplicated.
#[derive(Debug, Clone, Default)]
struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<usize>,
}

impl Adjacency {
    /// From `(from, to)` pairs over `n` cells.
    fn from_edges(n: usize, mut edges: Vec<(usize, usize)>) -> Adjacency {
        edges.sort_unstable();
        edges.dedup();
        let mut offsets = vec![0; n + 1];
        for &(from, _) in &edges {
            offsets[from + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Adjacency {
            offsets,
            targets: edges.into_iter().map(|(_, to)| to).collect(),
        }
    }

    fn of(&self, i: usize) -> &[usize] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.targets[a..b],
            _ => &[],
        }
    }
}

/// Dependency graph over cells in notebook order.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    ids: Vec<Arc<str>>,
    // Seeded per process (names and ids come from users, so no fixed-key hash), and much
    // cheaper than SipHash: the graph is rebuilt whenever a cell is added.
    index: FoldMap<Arc<str>, usize>,
    children: Adjacency,
    parents: Adjacency,
    /// Strongly connected component of each cell.
    component: Vec<usize>,
    component_count: usize,
    errors: HashMap<String, String>,
}

type FoldMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

impl Graph {
    /// Build from cells in notebook order.
    pub fn build(cells: &[GraphCell]) -> Graph {
        let n = cells.len();
        let ids: Vec<Arc<str>> = cells.iter().map(|c| Arc::from(c.id)).collect();
        let mut index = FoldMap::with_capacity_and_hasher(n, Default::default());
        for (i, id) in ids.iter().enumerate() {
            index.entry(id.clone()).or_insert(i);
        }

        let mut writers: FoldMap<&str, Vec<usize>> =
            FoldMap::with_capacity_and_hasher(n, Default::default());
        for (i, cell) in cells.iter().enumerate() {
            for w in cell.writes {
                let list = writers.entry(w.as_str()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }

        // BTreeMap so each cell's conflicting names come out sorted.
        let ambiguous: BTreeMap<&str, &Vec<usize>> = writers
            .iter()
            .filter(|(_, ws)| ws.len() > 1)
            .map(|(k, v)| (*k, v))
            .collect();
        let mut conflicts: FoldMap<usize, Vec<(&str, &[usize])>> = FoldMap::default();
        for (name, ws) in &ambiguous {
            for &w in *ws {
                conflicts.entry(w).or_default().push((name, ws.as_slice()));
            }
        }

        let mut edges = Vec::new();
        for (b, cell) in cells.iter().enumerate() {
            for r in cell.reads {
                // An ambiguous name creates no edges: nothing may read it.
                if let Some([a]) = writers.get(r.as_str()).map(Vec::as_slice) {
                    if *a != b {
                        edges.push((*a, b));
                    }
                }
            }
        }
        let parents = Adjacency::from_edges(n, edges.iter().map(|&(a, b)| (b, a)).collect());
        let children = Adjacency::from_edges(n, edges);

        let (component, component_count) = tarjan(&children);
        // Only cycles (components of more than one cell) need their members listed.
        let mut sizes = vec![0usize; component_count];
        for &c in &component {
            sizes[c] += 1;
        }
        let mut cycles: FoldMap<usize, Vec<usize>> = FoldMap::default();
        for (i, &c) in component.iter().enumerate() {
            if sizes[c] > 1 {
                cycles.entry(c).or_default().push(i);
            }
        }

        let mut errors = HashMap::new();
        let flagged: std::collections::BTreeSet<usize> = conflicts
            .keys()
            .copied()
            .chain(cycles.values().flatten().copied())
            .collect();
        for i in flagged {
            // Other cells are named by position ("cell 3"), which people see, not by id.
            let mut msgs: Vec<String> = conflicts
                .get(&i)
                .into_iter()
                .flatten()
                .map(|(name, ws)| {
                    format!(
                        "'{name}' is defined in more than one cell: also in {}",
                        cell_list(ws.iter().copied().filter(|&j| j != i))
                    )
                })
                .collect();
            if let Some(cycle) = cycles.get(&component[i]) {
                let mut others: Vec<usize> = cycle.iter().copied().filter(|&j| j != i).collect();
                others.sort_unstable();
                msgs.push(format!(
                    "cycle: this cell and {} depend on each other",
                    cell_list(others.into_iter())
                ));
            }
            if !msgs.is_empty() {
                errors.insert(ids[i].to_string(), msgs.join("; "));
            }
        }

        Graph {
            ids,
            index,
            children,
            parents,
            component,
            component_count,
            errors,
        }
    }

    /// Error per cell id: multiple definitions and/or cycle membership; clean cells are absent.
    pub fn errors(&self) -> &HashMap<String, String> {
        &self.errors
    }

    /// The cell plus all its descendants, in a topological order (ties broken by notebook order).
    pub fn run_order(&self, root: &str) -> Vec<String> {
        self.run_order_many(&[root])
    }

    /// Union of several roots and their descendants in one topological order; unknown ids are ignored.
    pub fn run_order_many(&self, roots: &[&str]) -> Vec<String> {
        let n = self.ids.len();
        let mut reached = vec![false; n];
        let mut stack: Vec<usize> = roots
            .iter()
            .filter_map(|r| self.index.get(*r).copied())
            .collect();
        while let Some(v) = stack.pop() {
            if !std::mem::replace(&mut reached[v], true) {
                stack.extend(self.children.of(v).iter().copied().filter(|&w| !reached[w]));
            }
        }

        // Kahn's algorithm on the condensation, so cycles are emitted as one block.
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.component_count];
        let mut indegree = vec![0usize; self.component_count];
        for v in (0..n).filter(|&v| reached[v]) {
            members[self.component[v]].push(v);
            for &w in self.children.of(v) {
                if self.component[w] != self.component[v] {
                    indegree[self.component[w]] += 1;
                }
            }
        }
        let mut ready: BinaryHeap<Reverse<(usize, usize)>> = members
            .iter()
            .enumerate()
            .filter(|(c, m)| !m.is_empty() && indegree[*c] == 0)
            .map(|(c, m)| Reverse((m[0], c)))
            .collect();
        let mut order = Vec::new();
        while let Some(Reverse((_, c))) = ready.pop() {
            for &v in &members[c] {
                order.push(self.ids[v].to_string());
                for &w in self.children.of(v) {
                    let cw = self.component[w];
                    if cw != c {
                        indegree[cw] -= 1;
                        if indegree[cw] == 0 {
                            ready.push(Reverse((members[cw][0], cw)));
                        }
                    }
                }
            }
        }
        order
    }

    /// Direct parents (cells whose writes this cell reads), in notebook order.
    pub fn parents(&self, id: &str) -> Vec<String> {
        self.index
            .get(id)
            .map(|&i| {
                self.parents
                    .of(i)
                    .iter()
                    .map(|&p| self.ids[p].to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// "cell 2, cell 5" for 0-based indices (positions shown to people are 1-based).
fn cell_list(indices: impl Iterator<Item = usize>) -> String {
    indices
        .map(|j| format!("cell {}", j + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Iterative Tarjan SCC (no recursion, so long chains cannot overflow the stack).
fn tarjan(children: &Adjacency) -> (Vec<usize>, usize) {
    const UNSEEN: usize = usize::MAX;
    let n = children.offsets.len().saturating_sub(1);
    let mut order = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut component = vec![UNSEEN; n];
    let mut count = 0;
    let mut next = 0;
    for start in 0..n {
        if order[start] != UNSEEN {
            continue;
        }
        let mut calls: Vec<(usize, usize)> = vec![(start, 0)];
        order[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&(v, edge)) = calls.last() {
            if let Some(&w) = children.of(v).get(edge) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if order[w] == UNSEEN {
                    order[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(order[w]);
                }
            } else {
                calls.pop();
                if let Some(&(p, _)) = calls.last() {
                    low[p] = low[p].min(low[v]);
                }
                if low[v] == order[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component[w] = count;
                        if w == v {
                            break;
                        }
                    }
                    count += 1;
                }
            }
        }
    }
    (component, count)
}
