//! Dependency graph: edges, errors and run orders.

use std::collections::HashMap;
use std::time::Instant;

use reactive_notebook::notebook::graph::{Graph, GraphCell};

/// Cells as (id, writes, reads), owned so tests can mutate them between builds.
struct Cells(Vec<(String, Vec<String>, Vec<String>)>);

impl Cells {
    fn new(spec: &[(&str, &[&str], &[&str])]) -> Cells {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Cells(
            spec.iter()
                .map(|(id, w, r)| (id.to_string(), owned(w), owned(r)))
                .collect(),
        )
    }

    fn graph(&self) -> Graph {
        let cells: Vec<GraphCell> = self
            .0
            .iter()
            .map(|(id, w, r)| GraphCell {
                id,
                writes: w,
                reads: r,
            })
            .collect();
        Graph::build(&cells)
    }

    fn set_writes(&mut self, id: &str, writes: &[&str]) {
        for cell in &mut self.0 {
            if cell.0 == id {
                cell.1 = writes.iter().map(|s| s.to_string()).collect();
            }
        }
    }
}

/// Every edge parent -> child within `order` must have the parent first; no duplicates.
fn assert_topological(g: &Graph, order: &[String]) {
    let pos: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    assert_eq!(pos.len(), order.len(), "duplicate cells in {order:?}");
    for id in order {
        for p in g.parents(id) {
            if let Some(&pp) = pos.get(p.as_str()) {
                assert!(pp < pos[id.as_str()], "{p} must run before {id}: {order:?}");
            }
        }
    }
}

#[test]
fn chain() {
    let g = Cells::new(&[
        ("a", &["x"], &[]),
        ("b", &["y"], &["x"]),
        ("c", &["z"], &["y"]),
    ])
    .graph();
    assert!(g.errors().is_empty());
    assert_eq!(g.run_order("a"), vec!["a", "b", "c"]);
    assert_eq!(g.run_order("b"), vec!["b", "c"]);
    assert_eq!(g.run_order("c"), vec!["c"]);
    assert_eq!(g.parents("c"), vec!["b"]);
    assert_eq!(g.parents("a"), Vec::<String>::new());
}

#[test]
fn order_follows_edges_not_notebook_position() {
    // The reader comes first in the notebook but must run after its writer.
    let g = Cells::new(&[("reader", &[], &["x"]), ("writer", &["x"], &[])]).graph();
    assert_eq!(g.run_order("writer"), vec!["writer", "reader"]);
    assert_eq!(g.parents("reader"), vec!["writer"]);
}

#[test]
fn diamond() {
    let g = Cells::new(&[
        ("top", &["x"], &[]),
        ("left", &["l"], &["x"]),
        ("right", &["r"], &["x"]),
        ("bottom", &["out"], &["l", "r"]),
    ])
    .graph();
    let order = g.run_order("top");
    assert_eq!(order, vec!["top", "left", "right", "bottom"]);
    assert_topological(&g, &order);
    assert_eq!(g.parents("bottom"), vec!["left", "right"]);
    assert_eq!(g.run_order("left"), vec!["left", "bottom"]);
}

#[test]
fn ties_broken_by_notebook_order() {
    let g = Cells::new(&[
        ("root", &["x"], &[]),
        ("c1", &["p"], &["x", "q"]),
        ("c2", &["q"], &["x"]),
        ("c3", &[], &["x"]),
    ])
    .graph();
    // c1 depends on c2, so c2 goes first; c3 keeps its place after them.
    assert_eq!(g.run_order("root"), vec!["root", "c2", "c1", "c3"]);
}

#[test]
fn independent_branches() {
    let g = Cells::new(&[
        ("a", &["x"], &[]),
        ("b", &["y"], &[]),
        ("a2", &[], &["x"]),
        ("b2", &[], &["y"]),
    ])
    .graph();
    assert_eq!(g.run_order("a"), vec!["a", "a2"]);
    assert_eq!(g.run_order("b"), vec!["b", "b2"]);
}

#[test]
fn self_read_is_not_a_cycle() {
    let g = Cells::new(&[("a", &["x"], &["x"]), ("b", &[], &["x"])]).graph();
    assert!(g.errors().is_empty());
    assert_eq!(g.run_order("a"), vec!["a", "b"]);
    assert!(g.parents("a").is_empty());
}

#[test]
fn unresolved_reads_create_no_edges() {
    let g = Cells::new(&[("a", &[], &["nowhere"])]).graph();
    assert!(g.errors().is_empty());
    assert_eq!(g.run_order("a"), vec!["a"]);
    assert!(g.run_order("missing-id").is_empty());
    assert!(g.parents("missing-id").is_empty());
}

#[test]
fn multiple_definitions() {
    let mut cells = Cells::new(&[
        ("a", &["x", "y"], &[]),
        ("b", &["x", "y"], &[]),
        ("c", &["z"], &[]),
        ("r", &[], &["x", "z"]),
    ]);
    let g = cells.graph();
    // Each names the other cell by its position.
    let msg_a = "'x' is defined in more than one cell: also in cell 2; \
                 'y' is defined in more than one cell: also in cell 2";
    let msg_b = "'x' is defined in more than one cell: also in cell 1; \
                 'y' is defined in more than one cell: also in cell 1";
    assert_eq!(g.errors().get("a").map(String::as_str), Some(msg_a));
    assert_eq!(g.errors().get("b").map(String::as_str), Some(msg_b));
    assert_eq!(g.errors().len(), 2);
    // Nothing reads an ambiguous value.
    assert_eq!(g.parents("r"), vec!["c"]);
    assert_eq!(g.run_order("a"), vec!["a"]);

    cells.set_writes("b", &["w"]);
    let g = cells.graph();
    assert!(g.errors().is_empty(), "{:?}", g.errors());
    assert_eq!(g.parents("r"), vec!["a", "c"]);
    assert_eq!(g.run_order("a"), vec!["a", "r"]);
}

#[test]
fn cycle() {
    let mut cells = Cells::new(&[
        ("start", &["s"], &[]),
        ("p", &["x"], &["z", "s"]),
        ("q", &["y"], &["x"]),
        ("r", &["z"], &["y"]),
        ("after", &[], &["z"]),
        ("other", &["o"], &[]),
    ]);
    let g = cells.graph();
    for (id, others) in [
        ("p", "cell 3, cell 4"),
        ("q", "cell 2, cell 4"),
        ("r", "cell 2, cell 3"),
    ] {
        assert_eq!(
            g.errors().get(id).map(String::as_str),
            Some(format!("cycle: this cell and {others} depend on each other").as_str()),
            "{id}"
        );
    }
    assert_eq!(g.errors().len(), 3);
    // Cycle members are still reachable (the runner marks them as errors), once each.
    let order = g.run_order("start");
    assert_eq!(order, vec!["start", "p", "q", "r", "after"]);

    // Repair: r no longer writes z, so the cycle is broken.
    cells.set_writes("r", &["z2"]);
    let g = cells.graph();
    assert!(g.errors().is_empty(), "{:?}", g.errors());
    assert_eq!(g.run_order("start"), vec!["start", "p", "q", "r"]);
}

#[test]
fn cycle_and_multiple_definition_errors_combine() {
    let g = Cells::new(&[
        ("a", &["x", "dup"], &["y"]),
        ("b", &["y"], &["x"]),
        ("c", &["dup"], &[]),
    ])
    .graph();
    assert_eq!(
        g.errors().get("a").map(String::as_str),
        Some(
            "'dup' is defined in more than one cell: also in cell 3; \
             cycle: this cell and cell 2 depend on each other"
        )
    );
    assert_eq!(
        g.errors().get("b").map(String::as_str),
        Some("cycle: this cell and cell 1 depend on each other")
    );
    assert_eq!(
        g.errors().get("c").map(String::as_str),
        Some("'dup' is defined in more than one cell: also in cell 1")
    );
}

#[test]
fn run_order_many_coalesces() {
    let g = Cells::new(&[
        ("a", &["x"], &[]),
        ("b", &["y"], &[]),
        ("ab", &["z"], &["x", "y"]),
        ("z1", &[], &["z"]),
        ("lonely", &[], &[]),
    ])
    .graph();
    let order = g.run_order_many(&["b", "a", "b"]);
    assert_eq!(order, vec!["a", "b", "ab", "z1"]);
    assert_topological(&g, &order);
    assert_eq!(g.run_order_many(&["z1", "ab"]), vec!["ab", "z1"]);
    assert!(g.run_order_many(&[]).is_empty());
}

#[test]
fn long_chain_is_fast() {
    let n = 1000;
    let names: Vec<String> = (0..=n).map(|i| format!("v{i}")).collect();
    let ids: Vec<String> = (0..n).map(|i| format!("cell{i}")).collect();
    // Reverse notebook order so ties never help: edges alone dictate the order.
    let cells: Vec<GraphCell> = (0..n)
        .rev()
        .map(|i| GraphCell {
            id: &ids[i],
            writes: std::slice::from_ref(&names[i + 1]),
            reads: std::slice::from_ref(&names[i]),
        })
        .collect();
    let start = Instant::now();
    let g = Graph::build(&cells);
    let order = g.run_order("cell0");
    let elapsed = start.elapsed();
    assert_eq!(order.len(), n);
    assert_eq!(order, ids);
    assert!(g.errors().is_empty());
    assert!(elapsed.as_millis() < 200, "took {elapsed:?}");

    // Closing the chain into one big cycle marks every cell.
    let mut cyclic: Vec<GraphCell> = cells;
    let first_read = [names[n].clone()];
    let last = cyclic.len() - 1; // cell0 is last in notebook order
    cyclic[last].reads = &first_read;
    let g = Graph::build(&cyclic);
    assert_eq!(g.errors().len(), n);
    assert_eq!(g.run_order("cell0").len(), n);
}
