use super::*;
use proptest::prelude::*;

fn name(i: u32) -> String {
    format!("n{i}")
}

/// Attaches a node in every tree where it has no parent, as a node's software does.
fn attach_all(f: &mut Forest, node: &str) {
    for s in 0..f.substreams() {
        if f.parent(s, node).is_none() {
            if let Some(p) = f.choose_parent(s, node, &[]) {
                f.attach(s, node, p).unwrap();
            } else if let Some((p, leaf)) = f.preempt(s, node, &[]) {
                f.detach(s, &leaf);
                f.attach(s, node, p).unwrap();
            }
        }
    }
}

#[test]
fn homes_are_balanced_and_every_node_gets_every_substream() {
    let mut f = Forest::new(4, 4, 4);
    for i in 0..50 {
        f.join(&name(i)).unwrap();
    }
    // Trees form as their home nodes attach: a second pass (the nodes ask again) attaches the
    // leaves the first found no interior for.
    for _ in 0..2 {
        for i in 0..50 {
            attach_all(&mut f, &name(i));
        }
    }
    let mut counts = [0; 4];
    for i in 0..50 {
        counts[usize::from(f.home(&name(i)).unwrap())] += 1;
        for s in 0..4 {
            assert!(f.depth(s, &name(i)).is_some(), "n{i} detached from {s}");
        }
    }
    assert_eq!(counts, [13, 13, 12, 12]);
}

#[test]
fn a_departure_costs_each_descendant_at_most_one_substream() {
    let mut f = Forest::new(4, 4, 4);
    for i in 0..40 {
        f.join(&name(i)).unwrap();
        attach_all(&mut f, &name(i));
    }
    for i in 0..40 {
        let orphans = f.leave(&name(i));
        let mut per_node: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (s, c) in orphans {
            per_node.entry(c).or_default().push(s);
        }
        assert!(per_node.values().all(|s| s.len() == 1), "{per_node:?}");
        f.join(&name(i)).unwrap();
        for n in 0..40 {
            attach_all(&mut f, &name(n));
        }
    }
}

#[test]
fn a_parent_outside_its_home_tree_or_below_the_node_is_refused() {
    let mut f = Forest::new(2, 2, 1);
    assert_eq!(f.join("a"), Ok(0));
    assert_eq!(f.join("b"), Ok(1));
    assert_eq!(f.join("c"), Ok(0));
    f.attach(0, "a", Parent::Source).unwrap();
    assert!(matches!(
        f.attach(0, "c", Parent::Node("b".into())),
        Err(ForestError::NotHome { home: 1, .. })
    ));
    f.attach(0, "c", Parent::Node("a".into())).unwrap();
    assert!(matches!(
        f.attach(0, "a", Parent::Node("c".into())),
        Err(ForestError::Cycle { .. })
    ));
    assert_eq!(
        f.attach(0, "b", Parent::Source),
        Err(ForestError::Full(Parent::Source, 0))
    );
    // A leaf takes an interior node before the source.
    assert_eq!(f.choose_parent(0, "b", &[]), Some(Parent::Node("a".into())));
    assert_eq!(f.join("a"), Err(ForestError::Joined("a".into())));
}

#[derive(Clone, Debug)]
enum Op {
    Join(u32),
    Leave(u32),
    Silent(u8, u32),
    Repair,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..30).prop_map(Op::Join),
        2 => (0u32..30).prop_map(Op::Leave),
        1 => (0u8..8, 0u32..30).prop_map(|(s, n)| Op::Silent(s, n)),
        2 => Just(Op::Repair),
    ]
}

proptest! {
    /// Whatever joins, leaves and repairs happen, every node is interior in at most one tree
    /// (its home), no parent exceeds its capacity, and no tree has a cycle.
    #[test]
    fn every_node_is_interior_in_at_most_one_tree(
        n in 2u8..6,
        fanout in 1u32..6,
        source_fanout in 1u32..4,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut f = Forest::new(n, fanout, source_fanout);
        for op in ops {
            match op {
                Op::Join(i) => {
                    if f.join(&name(i)).is_ok() {
                        attach_all(&mut f, &name(i));
                    }
                }
                Op::Leave(i) => {
                    f.leave(&name(i));
                }
                Op::Silent(s, i) => f.detach(s % n, &name(i)),
                Op::Repair => {
                    let nodes: Vec<String> = f.nodes().map(str::to_owned).collect();
                    for m in nodes {
                        attach_all(&mut f, &m);
                    }
                }
            }
            let nodes: Vec<String> = f.nodes().map(str::to_owned).collect();
            for m in &nodes {
                let interior = f.interior_in(m);
                prop_assert!(interior.len() <= 1, "{m} interior in {interior:?}");
                if let Some(&s) = interior.first() {
                    prop_assert_eq!(Some(s), f.home(m));
                    prop_assert!(f.children(s, &Parent::Node(m.clone())) <= fanout);
                }
                for s in 0..n {
                    // A parent chain ends at the source or at a detached node, within the
                    // node count: no cycle.
                    let mut at = m.clone();
                    let mut hops = 0;
                    while let Some(Parent::Node(p)) = f.parent(s, &at) {
                        at = p.clone();
                        hops += 1;
                        prop_assert!(hops <= nodes.len(), "cycle in tree {s}");
                    }
                }
            }
            for s in 0..n {
                prop_assert!(f.children(s, &Parent::Source) <= source_fanout);
            }
        }
    }
}

#[test]
fn the_directory_hands_out_urls_and_expires_silent_nodes() {
    let mut d = Directory::new(Forest::new(2, 2, 1), "http://pub/stripe".into(), 3000);
    assert_eq!(d.join("a", "http://a/stripe", 0), 0);
    assert_eq!(d.join("b", "http://b/stripe", 0), 1);
    // a's home is 0: the source's one slot there; b takes a in tree 0.
    assert_eq!(
        d.parent("a", 0, &[], 0).as_deref(),
        Some("http://pub/stripe/0")
    );
    assert_eq!(
        d.parent("b", 0, &[], 0).as_deref(),
        Some("http://a/stripe/0")
    );
    assert_eq!(
        d.parent("b", 1, &[], 0).as_deref(),
        Some("http://pub/stripe/1")
    );
    // a leaf in tree 1: b is interior there with a free slot.
    assert_eq!(
        d.parent("a", 1, &[], 0).as_deref(),
        Some("http://b/stripe/1")
    );
    // b avoids a (silent): nothing else has a slot in tree 0.
    assert_eq!(d.parent("b", 0, &["http://a/stripe/0".into()], 100), None);
    // a goes silent past the TTL: it leaves. Tree 0 has no interior node left, and a leaf
    // never takes the source: b waits until a node whose home is 0 joins.
    assert_eq!(d.announce("b", 3050), Some(vec![]));
    assert_eq!(d.announce("a", 3050), None);
    assert_eq!(d.parent("b", 0, &[], 3050), None);
    assert_eq!(d.forest().home("a"), None);
    assert_eq!(d.join("c", "http://c/stripe", 3050), 0);
    assert_eq!(
        d.parent("c", 0, &[], 3050).as_deref(),
        Some("http://pub/stripe/0")
    );
    assert_eq!(
        d.parent("b", 0, &[], 3050).as_deref(),
        Some("http://c/stripe/0")
    );
}

#[test]
fn a_repair_never_lands_below_the_parent_that_failed() {
    // Tree 0: source -> a -> b -> {c, d}; a dies (its children notice before the directory).
    let mut f = Forest::new(2, 2, 1);
    for n in ["a", "x", "b", "y", "c", "d"] {
        f.join(n).unwrap();
    }
    // Homes alternate: a, b, c home 0; x, y, d home 1.
    assert_eq!(f.home("b"), Some(0));
    f.attach(0, "a", Parent::Source).unwrap();
    f.attach(0, "b", Parent::Node("a".into())).unwrap();
    f.attach(0, "c", Parent::Node("b".into())).unwrap();
    f.attach(0, "x", Parent::Node("a".into())).unwrap();
    // b has a free slot, but b is below a, which x just reported silent: b is starved too.
    // With a avoided, nothing connected has a slot.
    f.detach(0, "x");
    let avoid = [Parent::Node("a".into())];
    assert_eq!(f.choose_parent(0, "x", &avoid), None);
    // Without the report, b would do.
    assert_eq!(f.choose_parent(0, "x", &[]), Some(Parent::Node("a".into())));
}

#[test]
fn a_home_node_with_no_free_slot_takes_a_leafs() {
    // Fan-out 2, one source slot per tree. Tree 0's only connected interior node, a, has two
    // leaves; b, whose home is 0, lost its parent: it takes a leaf's slot, the leaf moves.
    let mut f = Forest::new(2, 2, 1);
    for n in ["a", "x", "b", "y"] {
        f.join(n).unwrap();
    }
    assert_eq!((f.home("a"), f.home("b")), (Some(0), Some(0)));
    f.attach(0, "a", Parent::Source).unwrap();
    f.attach(0, "x", Parent::Node("a".into())).unwrap();
    f.attach(0, "y", Parent::Node("a".into())).unwrap();
    assert_eq!(f.choose_parent(0, "b", &[]), None);
    assert_eq!(
        f.preempt(0, "b", &[]),
        Some((Parent::Node("a".into()), "x".to_owned()))
    );
    // A leaf never preempts (its home is another tree), nor does anyone in a tree whose
    // interior holds only home nodes.
    f.detach(0, "y");
    assert_eq!(f.preempt(0, "y", &[]), None);

    // Through the directory: b takes x's slot, and x is told at its next announce.
    let mut d = Directory::new(Forest::new(2, 2, 1), "http://pub/stripe".into(), 3000);
    for n in ["a", "x", "b", "y"] {
        d.join(n, &format!("http://{n}/stripe"), 0);
    }
    assert_eq!(
        d.parent("a", 0, &[], 0).as_deref(),
        Some("http://pub/stripe/0")
    );
    assert_eq!(
        d.parent("x", 0, &[], 0).as_deref(),
        Some("http://a/stripe/0")
    );
    assert_eq!(
        d.parent("y", 0, &[], 0).as_deref(),
        Some("http://a/stripe/0")
    );
    assert_eq!(
        d.parent("b", 0, &[], 0).as_deref(),
        Some("http://a/stripe/0")
    );
    assert_eq!(d.forest().parent(0, "x"), None);
    assert_eq!(d.announce("x", 100), Some(vec![0]));
    assert_eq!(d.announce("x", 200), Some(vec![]));
    // x now hangs below b.
    assert_eq!(
        d.parent("x", 0, &[], 200).as_deref(),
        Some("http://b/stripe/0")
    );
}
