//! SplitStream-style trees, one per substream (Castro et al., "SplitStream: High-Bandwidth
//! Multicast in Cooperative Environments", SOSP 2003).
//!
//! Every node joins every substream's tree, since it plays the whole stream. Each node has one
//! *home* substream, assigned at join to the substream with the fewest homes, and only in its
//! home tree may it have children. In the other trees it is a leaf. So:
//! - a node forwards one substream, to up to `fanout` children: with n substreams and fan-out n
//!   it uploads about what it downloads (n substreams of 1/(n−1) of the stream each);
//! - when a node leaves, each of its descendants loses at most one substream (the node's home),
//!   and any n−1 substreams rebuild the stream.
//!
//! [`Forest`] is pure: the directory holds one, and nodes ask it for parents.

use std::collections::BTreeMap;

/// Where a node takes a substream from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Parent {
    /// The publisher's stripe source.
    Source,
    /// Another node (its name).
    Node(String),
}

/// Why the forest refused a change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForestError {
    /// The node never joined, or left.
    #[error("node {0:?} is not in the forest")]
    Unknown(String),
    /// The node joined already.
    #[error("node {0:?} joined already")]
    Joined(String),
    /// Substream index out of range.
    #[error("substream {stripe}: the stream has {substreams}")]
    Stripe {
        /// The index asked for.
        stripe: u8,
        /// n.
        substreams: u8,
    },
    /// The parent would be interior in a tree that is not its home.
    #[error("node {parent:?} cannot forward substream {stripe}: its home is {home}")]
    NotHome {
        /// The parent asked for.
        parent: String,
        /// Its home.
        home: u8,
        /// The substream.
        stripe: u8,
    },
    /// The parent has no free slot.
    #[error("{0:?} has no free slot in substream {1}")]
    Full(Parent, u8),
    /// The parent is the node or one of its descendants.
    #[error("{parent:?} is {node:?} or below it in substream {stripe}: a cycle")]
    Cycle {
        /// The node.
        node: String,
        /// The parent asked for.
        parent: String,
        /// The substream.
        stripe: u8,
    },
}

/// The trees of a striped stream.
#[derive(Clone, Debug)]
pub struct Forest {
    substreams: u8,
    fanout: u32,
    source_fanout: u32,
    homes: BTreeMap<String, u8>,
    /// `parents[s][node]`: the node's parent in substream s's tree (absent: detached).
    parents: Vec<BTreeMap<String, Parent>>,
}

impl Forest {
    /// A forest of `substreams` trees; interior nodes take up to `fanout` children in their
    /// home tree, the source up to `source_fanout` per tree.
    pub fn new(substreams: u8, fanout: u32, source_fanout: u32) -> Self {
        Self {
            substreams,
            fanout,
            source_fanout,
            homes: BTreeMap::new(),
            parents: vec![BTreeMap::new(); usize::from(substreams)],
        }
    }

    /// n.
    pub fn substreams(&self) -> u8 {
        self.substreams
    }

    /// The nodes, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.homes.keys().map(String::as_str)
    }

    /// A new node: its home is the substream with the fewest homes (the lowest on a tie).
    pub fn join(&mut self, node: &str) -> Result<u8, ForestError> {
        if self.homes.contains_key(node) {
            return Err(ForestError::Joined(node.to_owned()));
        }
        let mut counts = vec![0usize; usize::from(self.substreams)];
        for &h in self.homes.values() {
            counts[usize::from(h)] += 1;
        }
        let home = (0..self.substreams)
            .min_by_key(|&s| (counts[usize::from(s)], s))
            .expect("at least one substream");
        self.homes.insert(node.to_owned(), home);
        Ok(home)
    }

    /// A node's home substream.
    pub fn home(&self, node: &str) -> Option<u8> {
        self.homes.get(node).copied()
    }

    /// A node's parent in a substream's tree.
    pub fn parent(&self, stripe: u8, node: &str) -> Option<&Parent> {
        self.parents.get(usize::from(stripe))?.get(node)
    }

    /// How many children `parent` has in a substream's tree.
    pub fn children(&self, stripe: u8, parent: &Parent) -> u32 {
        self.parents
            .get(usize::from(stripe))
            .map_or(0, |t| t.values().filter(|p| *p == parent).count() as u32)
    }

    /// The substreams in whose trees a node has children.
    pub fn interior_in(&self, node: &str) -> Vec<u8> {
        let me = Parent::Node(node.to_owned());
        (0..self.substreams)
            .filter(|&s| self.children(s, &me) > 0)
            .collect()
    }

    /// Hops from the source in a substream's tree (none: detached, or below a detached node).
    pub fn depth(&self, stripe: u8, node: &str) -> Option<u32> {
        let tree = self.parents.get(usize::from(stripe))?;
        let mut at = node;
        // Attach refuses cycles, so a walk ends within the number of nodes.
        for depth in 1..=self.homes.len() as u32 + 1 {
            match tree.get(at)? {
                Parent::Source => return Some(depth),
                Parent::Node(p) => at = p,
            }
        }
        None
    }

    fn capacity(&self, stripe: u8, parent: &Parent) -> u32 {
        match parent {
            Parent::Source => self.source_fanout,
            Parent::Node(p) if self.home(p) == Some(stripe) => self.fanout,
            Parent::Node(_) => 0,
        }
    }

    fn is_below(&self, stripe: u8, candidate: &str, node: &str) -> bool {
        let tree = &self.parents[usize::from(stripe)];
        let mut at = candidate;
        for _ in 0..=self.homes.len() {
            if at == node {
                return true;
            }
            match tree.get(at) {
                Some(Parent::Node(p)) => at = p,
                _ => return false,
            }
        }
        false
    }

    fn check(&self, stripe: u8, node: &str) -> Result<(), ForestError> {
        if stripe >= self.substreams {
            return Err(ForestError::Stripe {
                stripe,
                substreams: self.substreams,
            });
        }
        if !self.homes.contains_key(node) {
            return Err(ForestError::Unknown(node.to_owned()));
        }
        Ok(())
    }

    /// The parent a node should take in a substream's tree, avoiding `avoid` (the parent that
    /// just went silent) and every node below it (they are starved too, though the forest
    /// still links them): none if no connected parent has a free slot.
    ///
    /// A node in its home tree takes the source if it has a free slot, else the shallowest
    /// interior node with one: interior nodes stay near the root. A node in another tree takes
    /// the shallowest interior node with a free slot, never the source: a leaf holding one of
    /// the source's slots would keep the tree's interior from forming (measured here: the first
    /// node to join took the source in every tree, and the next nodes' home trees had no root).
    /// So a tree forms once a node whose home it is joined: with n substreams, a node rebuilds
    /// the stream once n−1 trees have one.
    pub fn choose_parent(&self, stripe: u8, node: &str, avoid: &[Parent]) -> Option<Parent> {
        self.check(stripe, node).ok()?;
        let free = |p: &Parent| self.children(stripe, p) < self.capacity(stripe, p);
        let source =
            (free(&Parent::Source) && !avoid.contains(&Parent::Source)).then_some(Parent::Source);
        let interior = self
            .candidates(stripe, node, avoid)
            .filter(|(_, p)| free(p))
            .map(|(depth, p)| (depth, self.children(stripe, &p), p))
            .min()
            .map(|(_, _, p)| p);
        if self.home(node) == Some(stripe) {
            source.or(interior)
        } else {
            interior
        }
    }

    /// Interior nodes of a substream's tree that `node` may take as its parent there, with
    /// their depth: connected to the source, not `node` or below it, not avoided or below an
    /// avoided node.
    fn candidates<'a>(
        &'a self,
        stripe: u8,
        node: &'a str,
        avoid: &'a [Parent],
    ) -> impl Iterator<Item = (u32, Parent)> + 'a {
        self.homes
            .iter()
            .filter(move |&(m, &h)| h == stripe && m != node)
            .filter_map(move |(m, _)| {
                let p = Parent::Node(m.clone());
                let below_avoided = avoid.iter().any(|a| match a {
                    Parent::Node(x) => self.is_below(stripe, m, x),
                    Parent::Source => false,
                });
                if below_avoided || self.is_below(stripe, m, node) {
                    return None;
                }
                Some((self.depth(stripe, m)?, p))
            })
    }

    /// For a node in its home tree when [`Forest::choose_parent`] found no free slot: the
    /// shallowest connected interior node that has a leaf child (a node whose home is another
    /// substream), and that leaf. The node should take the leaf's slot (SplitStream's
    /// preemption: a tree's interior needs its home nodes connected, and a leaf can hang below
    /// any of them). None for a node outside its home tree, or when no interior node has a
    /// leaf.
    pub fn preempt(&self, stripe: u8, node: &str, avoid: &[Parent]) -> Option<(Parent, String)> {
        self.check(stripe, node).ok()?;
        if self.home(node) != Some(stripe) {
            return None;
        }
        let tree = &self.parents[usize::from(stripe)];
        self.candidates(stripe, node, avoid)
            .filter_map(|(depth, p)| {
                let leaf = tree
                    .iter()
                    .find(|(c, parent)| **parent == p && self.home(c) != Some(stripe))
                    .map(|(c, _)| c.clone())?;
                Some((depth, p, leaf))
            })
            .min()
            .map(|(_, p, leaf)| (p, leaf))
    }

    /// Records a node's parent in a substream's tree (replacing its previous one).
    pub fn attach(&mut self, stripe: u8, node: &str, parent: Parent) -> Result<(), ForestError> {
        self.check(stripe, node)?;
        if let Parent::Node(p) = &parent {
            let home = self
                .home(p)
                .ok_or_else(|| ForestError::Unknown(p.clone()))?;
            if home != stripe {
                return Err(ForestError::NotHome {
                    parent: p.clone(),
                    home,
                    stripe,
                });
            }
            if self.is_below(stripe, p, node) {
                return Err(ForestError::Cycle {
                    node: node.to_owned(),
                    parent: p.clone(),
                    stripe,
                });
            }
        }
        if self.parent(stripe, node) != Some(&parent)
            && self.children(stripe, &parent) >= self.capacity(stripe, &parent)
        {
            return Err(ForestError::Full(parent, stripe));
        }
        self.parents[usize::from(stripe)].insert(node.to_owned(), parent);
        Ok(())
    }

    /// A node lost its parent in a substream's tree (it went silent).
    pub fn detach(&mut self, stripe: u8, node: &str) {
        if let Some(tree) = self.parents.get_mut(usize::from(stripe)) {
            tree.remove(node);
        }
    }

    /// A node leaves: it is removed from every tree. Returns its children, per substream, now
    /// detached (they will ask for new parents).
    pub fn leave(&mut self, node: &str) -> Vec<(u8, String)> {
        self.homes.remove(node);
        let me = Parent::Node(node.to_owned());
        let mut orphans = Vec::new();
        for (s, tree) in self.parents.iter_mut().enumerate() {
            tree.remove(node);
            let children: Vec<String> = tree
                .iter()
                .filter(|(_, p)| **p == me)
                .map(|(c, _)| c.clone())
                .collect();
            for c in children {
                tree.remove(&c);
                orphans.push((s as u8, c));
            }
        }
        orphans
    }
}

#[cfg(test)]
mod tests;

/// A node's entry in a [`Directory`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    url: String,
    seen_ms: u64,
}

/// The stripe directory (pure; time is passed in, ms): a [`Forest`] with each node's URL, its
/// last sign of life, and expiry. The publisher serves it; nodes join, ask for parents and
/// announce themselves through it.
#[derive(Clone, Debug)]
pub struct Directory {
    forest: Forest,
    source_url: String,
    entries: BTreeMap<String, Entry>,
    ttl_ms: u64,
    /// Leaves moved off their parent to make room for an interior node, per substream, until
    /// they are told (at their next announce) or ask for a new parent.
    moved: BTreeMap<String, Vec<u8>>,
    /// The stream has ended.
    pub ended: bool,
}

impl Directory {
    /// A directory whose source serves substream s at `{source_url}/{s}`; entries not renewed
    /// for `ttl_ms` leave.
    pub fn new(forest: Forest, source_url: String, ttl_ms: u64) -> Self {
        Self {
            forest,
            source_url,
            entries: BTreeMap::new(),
            ttl_ms,
            moved: BTreeMap::new(),
            ended: false,
        }
    }

    /// The forest.
    pub fn forest(&self) -> &Forest {
        &self.forest
    }

    /// The URL a parent serves a substream at.
    pub fn url_of(&self, parent: &Parent, stripe: u8) -> Option<String> {
        match parent {
            Parent::Source => Some(format!("{}/{stripe}", self.source_url)),
            Parent::Node(n) => self.entries.get(n).map(|e| format!("{}/{stripe}", e.url)),
        }
    }

    fn parent_of_url(&self, url: &str) -> Option<Parent> {
        let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
        if base == self.source_url {
            return Some(Parent::Source);
        }
        self.entries
            .iter()
            .find(|(_, e)| e.url == base)
            .map(|(n, _)| Parent::Node(n.clone()))
    }

    /// Drops the nodes not heard from for the TTL; their children are detached.
    pub fn expire(&mut self, now_ms: u64) {
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| now_ms.saturating_sub(e.seen_ms) > self.ttl_ms)
            .map(|(n, _)| n.clone())
            .collect();
        for n in stale {
            self.entries.remove(&n);
            self.moved.remove(&n);
            self.forest.leave(&n);
        }
    }

    /// A node joins (or rejoins after it expired): its home substream. `url` is where it serves
    /// its home substream's tree (`{url}/{stripe}`).
    pub fn join(&mut self, node: &str, url: &str, now_ms: u64) -> u8 {
        self.expire(now_ms);
        self.entries.insert(
            node.to_owned(),
            Entry {
                url: url.to_owned(),
                seen_ms: now_ms,
            },
        );
        match self.forest.home(node) {
            Some(home) => home,
            None => self.forest.join(node).expect("not joined: checked above"),
        }
    }

    /// A node asks for a parent in a substream's tree, avoiding `avoid` (the URLs that went
    /// silent or refused it) and the nodes below them: chosen and recorded under one call, so
    /// that concurrent asks see each other's slots taken. A node in its home tree with no free
    /// slot anywhere takes a leaf's ([`Forest::preempt`]); the leaf is told to move at its next
    /// announce. None: unknown node, or no parent has a slot for it.
    pub fn parent(
        &mut self,
        node: &str,
        stripe: u8,
        avoid: &[String],
        now_ms: u64,
    ) -> Option<String> {
        self.expire(now_ms);
        self.entries.get_mut(node)?.seen_ms = now_ms;
        self.forest.detach(stripe, node);
        if let Some(m) = self.moved.get_mut(node) {
            // It is moving already.
            m.retain(|&s| s != stripe);
        }
        let avoid: Vec<Parent> = avoid.iter().filter_map(|u| self.parent_of_url(u)).collect();
        let parent = match self.forest.choose_parent(stripe, node, &avoid) {
            Some(p) => p,
            None => {
                let (p, leaf) = self.forest.preempt(stripe, node, &avoid)?;
                self.forest.detach(stripe, &leaf);
                self.moved.entry(leaf).or_default().push(stripe);
                p
            }
        };
        self.forest.attach(stripe, node, parent.clone()).ok()?;
        self.url_of(&parent, stripe)
    }

    /// A node's sign of life: the substreams in which it was moved off its parent since (it
    /// must leave that parent and ask for another). None: it is not (or no longer) in the
    /// directory, and must join again.
    pub fn announce(&mut self, node: &str, now_ms: u64) -> Option<Vec<u8>> {
        self.expire(now_ms);
        let e = self.entries.get_mut(node)?;
        e.seen_ms = now_ms;
        Some(self.moved.remove(node).unwrap_or_default())
    }
}
