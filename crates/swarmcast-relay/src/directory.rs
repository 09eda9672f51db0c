//! The relay directory (docs/relay.md, "The directory").
//!
//! The source publishes it at `/relays` (`swarmcast publish --relay-source URL`). Every relay
//! announces itself there once a second ([`ANNOUNCE_EVERY`]) with the parent it relays; an entry
//! not renewed for [`ENTRY_TTL`] is dropped. A relay whose parent went silent for
//! [`PARENT_TIMEOUT`] takes a new parent with [`choose_parent`] from the listing: what a user's
//! software could know, no oracle. The listing gives each relay's depth and children, computed
//! from the announced parents, so that a relay never picks one of its own descendants (a cycle)
//! and prefers a shallow parent with a free slot.
//!
//! [`Directory`] is pure (time is passed in, in ms); [`router`] serves it; [`fetch`] and
//! [`announce`] are the client side.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often a relay announces itself.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// An entry not renewed for this long is dropped from the listing.
pub const ENTRY_TTL: Duration = Duration::from_secs(3);
/// A relay (or a viewer) that received no byte from its parent for this long takes another
/// parent from the directory. The documented detection timeout.
pub const PARENT_TIMEOUT: Duration = Duration::from_secs(3);
/// A directory request (fetch, announce, join) that took longer failed: a directory that
/// accepts and never answers must not hold a relay that lost its parent.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The source's node name in a listing.
pub const SOURCE: &str = "source";

/// What a relay tells the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// The relay's node name (unique in the stream).
    pub node: String,
    /// The URL others pull the stream from.
    pub url: String,
    /// The URL of the parent it relays now (none while it has none).
    #[serde(default)]
    pub parent: Option<String>,
    /// How many children it serves at most (the fan-out).
    pub capacity: u32,
}

/// `POST /relays/join`: announce and take a parent in one step.
///
/// Nodes that join at the same moment and each read the listing then choose would all see the
/// same free slots and all take the source (measured: six nodes started together all did, and
/// the source, capped at 2.2x the bitrate, starved them). The directory chooses for them, under
/// one lock, by the same rule ([`choose_parent`]), and records the child link at once, so the
/// next join sees the slot taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// The node (its `parent` is ignored: the directory sets it to the one it chooses).
    #[serde(flatten)]
    pub announce: Announce,
    /// Parents not to take (URLs or node names): the one that just went silent or refused.
    #[serde(default)]
    pub avoid: Vec<String>,
}

/// A relay in a [`Listing`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// Node name ([`SOURCE`] for the source).
    pub node: String,
    /// The URL to pull from.
    pub url: String,
    /// Its parent's URL (none for the source, or an orphan).
    pub parent: Option<String>,
    /// Hops from the source (0: the source; none: not connected to the source through listed
    /// relays).
    pub depth: Option<u32>,
    /// Listed relays whose parent it is.
    pub children: u32,
    /// How many children it serves at most.
    pub capacity: u32,
    /// Since its last announce, ms.
    pub age_ms: u64,
}

/// `GET /relays`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The source first, then every live relay by node name.
    pub relays: Vec<Listed>,
    /// The stream has ended (the source will not come back).
    pub ended: bool,
}

impl Listing {
    /// The entry of `node`.
    pub fn get(&self, node: &str) -> Option<&Listed> {
        self.relays.iter().find(|r| r.node == node)
    }

    /// `node` and every relay below it (by the announced parents).
    pub fn subtree(&self, node: &str) -> HashSet<String> {
        let mut out = HashSet::new();
        let Some(root) = self.get(node) else {
            return out;
        };
        out.insert(root.node.clone());
        let mut urls = vec![root.url.clone()];
        // Bounded: each relay enters once.
        while let Some(url) = urls.pop() {
            for r in &self.relays {
                if r.parent.as_deref() == Some(url.as_str()) && out.insert(r.node.clone()) {
                    urls.push(r.url.clone());
                }
            }
        }
        out
    }
}

/// The directory's state (pure: times are ms on any monotonic clock).
#[derive(Clone, Debug)]
pub struct Directory {
    source: Announce,
    entries: HashMap<String, (Announce, u64)>,
    /// Joins not yet confirmed: node → the parent the join gave, the parent the node had
    /// announced before (stale), and when. An announce the node sent before it learned of the
    /// join (a periodic one, racing the join) names the stale parent or none; it must not erase
    /// the slot the join took. Kept until the node announces another parent, or [`JOIN_GRACE`].
    joined: HashMap<String, Pending>,
    ttl_ms: u64,
    ended: bool,
}

/// A join not yet confirmed by the node's announces.
#[derive(Clone, Debug)]
struct Pending {
    given: String,
    stale: Option<String>,
    at_ms: u64,
}

/// How long a parent given by a join stands against the node's announces of its previous
/// parent (or none): announces already in flight when the join answered. After it, the node's
/// announces are the truth again.
pub const JOIN_GRACE: Duration = Duration::from_secs(3);

impl Directory {
    /// A directory whose root is the source at `source_url`, serving `capacity` children.
    pub fn new(source_url: String, capacity: u32) -> Self {
        Self {
            source: Announce {
                node: SOURCE.into(),
                url: source_url,
                parent: None,
                capacity,
            },
            entries: HashMap::new(),
            joined: HashMap::new(),
            ttl_ms: ENTRY_TTL.as_millis() as u64,
            ended: false,
        }
    }

    /// A relay announced itself at `now_ms`. The source's name is refused. Within
    /// [`JOIN_GRACE`] of a join, an announce naming the node's parent from before the join, or
    /// none, keeps the join's (it was sent before the node knew); one naming any other parent
    /// (the join's, or a later move) is the truth from then on.
    pub fn announce(&mut self, mut a: Announce, now_ms: u64) -> Result<(), String> {
        if a.node == SOURCE || a.url == self.source.url {
            return Err(format!("node {:?}: the source's name or URL", a.node));
        }
        if a.node.is_empty() || a.url.is_empty() {
            return Err("node and url must not be empty".into());
        }
        let grace = JOIN_GRACE.as_millis() as u64;
        if let Some(p) = self.joined.get(&a.node) {
            let stale = a.parent.is_none() || a.parent == p.stale;
            if stale && now_ms.saturating_sub(p.at_ms) <= grace {
                a.parent = Some(p.given.clone());
            } else {
                self.joined.remove(&a.node);
            }
        }
        self.entries.insert(a.node.clone(), (a, now_ms));
        Ok(())
    }

    /// `join.announce.node` takes a parent at `now_ms` ([`choose_parent`] over the listing with
    /// the node in it), recorded as its parent at once; None (and the node listed as an orphan)
    /// when none qualifies.
    pub fn join(&mut self, join: Join, now_ms: u64) -> Result<Option<Listed>, String> {
        let mut a = join.announce;
        a.parent = None;
        let node = a.node.clone();
        // A new join replaces the previous one's parent.
        self.joined.remove(&node);
        let stale = self.entries.get(&node).and_then(|(e, _)| e.parent.clone());
        self.announce(a, now_ms)?;
        let listing = self.listing(now_ms);
        let avoid: Vec<&str> = join.avoid.iter().map(String::as_str).collect();
        let parent = choose_parent(&listing, &node, &avoid);
        if let (Some(p), Some((a, _))) = (&parent, self.entries.get_mut(&node)) {
            a.parent = Some(p.url.clone());
            let pending = Pending {
                given: p.url.clone(),
                stale,
                at_ms: now_ms,
            };
            self.joined.insert(node, pending);
        }
        Ok(parent)
    }

    /// The stream ended: listings say so.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The listing at `now_ms`; entries older than the TTL are dropped.
    pub fn listing(&mut self, now_ms: u64) -> Listing {
        let ttl = self.ttl_ms;
        self.entries
            .retain(|_, (_, seen)| now_ms.saturating_sub(*seen) <= ttl);
        let entries = &self.entries;
        self.joined.retain(|node, _| entries.contains_key(node));
        let mut by_node: BTreeMap<&str, (&Announce, u64)> = BTreeMap::new();
        for (a, seen) in self.entries.values() {
            by_node.insert(&a.node, (a, now_ms.saturating_sub(*seen)));
        }
        let all: Vec<(&Announce, u64)> = std::iter::once((&self.source, 0))
            .chain(by_node.values().copied())
            .collect();
        let by_url: HashMap<&str, &Announce> =
            all.iter().map(|(a, _)| (a.url.as_str(), *a)).collect();
        let depth = |a: &Announce| -> Option<u32> {
            let mut at = a;
            // Bounded by the number of entries: a longer chain is a cycle.
            for d in 0..=all.len() as u32 {
                if at.node == SOURCE {
                    return Some(d);
                }
                at = by_url.get(at.parent.as_deref()?)?;
            }
            None
        };
        let relays = all
            .iter()
            .map(|(a, age)| Listed {
                node: a.node.clone(),
                url: a.url.clone(),
                parent: a.parent.clone(),
                depth: depth(a),
                children: all
                    .iter()
                    .filter(|(c, _)| c.parent.as_deref() == Some(a.url.as_str()))
                    .count() as u32,
                capacity: a.capacity,
                age_ms: *age,
            })
            .collect();
        Listing {
            relays,
            ended: self.ended,
        }
    }
}

/// A stable 64-bit hash (FNV-1a), so that choices are reproducible across runs and machines.
fn fnv(parts: &[&str]) -> u64 {
    parts.iter().fold(0xcbf2_9ce4_8422_2325, |h, p| {
        p.bytes()
            .chain(std::iter::once(0))
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    })
}

/// The parent `me` should take from `listing`, never one of `avoid` (e.g. the parent that just
/// went silent, still listed until its entry expires):
///
/// 1. never `me` or one of its descendants (a cycle);
/// 2. only relays connected to the source (a depth);
/// 3. a relay with a free slot (children < capacity, not counting `me` itself) before a full one;
/// 4. the shallowest; ties broken by a hash of `me` and the candidate's name, so that orphans of
///    one departure spread over the candidates rather than all taking the same one.
///
/// None when no relay qualifies (not even the source: it is listed always, so only when `me`'s
/// subtree holds... nothing else, or every candidate is avoided).
pub fn choose_parent(listing: &Listing, me: &str, avoid: &[&str]) -> Option<Listed> {
    let mine = listing.subtree(me);
    let my_url = listing.get(me).map(|r| r.url.as_str());
    listing
        .relays
        .iter()
        .filter(|r| r.node != me && !mine.contains(&r.node))
        .filter(|r| !avoid.contains(&r.url.as_str()) && !avoid.contains(&r.node.as_str()))
        .filter_map(|r| r.depth.map(|d| (r, d)))
        .min_by_key(|(r, d)| {
            // `me`, if listed as its child, does not take its own slot.
            let mine_there =
                u32::from(my_url.is_some() && r.children > 0 && is_child(listing, me, r));
            let full = r.children - mine_there >= r.capacity;
            (full, *d, fnv(&[me, &r.node]))
        })
        .map(|(r, _)| r.clone())
}

fn is_child(listing: &Listing, me: &str, parent: &Listed) -> bool {
    listing
        .get(me)
        .is_some_and(|m| m.parent.as_deref() == Some(parent.url.as_str()))
}

/// Shared state of a served directory.
#[derive(Clone, Debug)]
pub struct Served {
    inner: Arc<Mutex<Directory>>,
    origin: Instant,
}

impl Served {
    /// Serves `directory`.
    pub fn new(directory: Directory) -> Self {
        Self {
            inner: Arc::new(Mutex::new(directory)),
            origin: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The stream ended.
    pub fn end(&self) {
        self.inner.lock().expect("not poisoned").end();
    }

    /// The listing now.
    pub fn listing(&self) -> Listing {
        let now = self.now_ms();
        self.inner.lock().expect("not poisoned").listing(now)
    }
}

/// What `POST /relays` answers (JSON): whether the stream ended, so that a relay learns it
/// without fetching the listing (a listing is O(relays) bytes: every relay fetching it every
/// second costs the source's host O(relays²), at 50 relays more than a 2.2x uplink).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    /// The stream has ended.
    pub ended: bool,
}

/// `GET /relays` (the listing, JSON) and `POST /relays` (an [`Announce`], JSON; 200 with
/// [`Announced`], or 400 naming the problem).
pub fn router(served: Served) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/relays",
            get(|axum::extract::State(s): axum::extract::State<Served>| async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    serde_json::to_string(&s.listing()).expect("a listing serialises"),
                )
            })
            .post(
                |axum::extract::State(s): axum::extract::State<Served>, body: axum::body::Bytes| async move {
                    let a: Announce = match serde_json::from_slice(&body) {
                        Ok(a) => a,
                        Err(e) => {
                            return (StatusCode::BAD_REQUEST, format!("announce: {e}\n"))
                        }
                    };
                    let now = s.now_ms();
                    let mut d = s.inner.lock().expect("not poisoned");
                    match d.announce(a, now) {
                        Ok(()) => (
                            StatusCode::OK,
                            serde_json::to_string(&Announced { ended: d.ended })
                                .expect("an answer serialises"),
                        ),
                        Err(e) => (StatusCode::BAD_REQUEST, format!("announce: {e}\n")),
                    }
                },
            ),
        )
        .route(
            "/relays/join",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Served>, body: axum::body::Bytes| async move {
                    let j: Join = match serde_json::from_slice(&body) {
                        Ok(j) => j,
                        Err(e) => return (StatusCode::BAD_REQUEST, format!("join: {e}\n")),
                    };
                    let now = s.now_ms();
                    let chosen = s.inner.lock().expect("not poisoned").join(j, now);
                    match chosen {
                        Ok(Some(p)) => (
                            StatusCode::OK,
                            serde_json::to_string(&p).expect("a listed relay serialises"),
                        ),
                        Ok(None) => (StatusCode::NOT_FOUND, "join: no parent qualifies\n".into()),
                        Err(e) => (StatusCode::BAD_REQUEST, format!("join: {e}\n")),
                    }
                },
            ),
        )
        .with_state(served)
}

/// Why talking to a directory failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The request failed.
    #[error("relay directory {url}: {source}")]
    Http {
        /// The directory.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not a listing.
    #[error("relay directory {url}: not a listing: {source}")]
    Parse {
        /// The directory.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The directory refused the announce.
    #[error("relay directory {url}: refused ({status}): {body}")]
    Refused {
        /// The directory.
        url: String,
        /// Its status.
        status: u16,
        /// What it said.
        body: String,
    },
}

/// `GET <url>` (the directory's `/relays` URL).
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Listing, DirectoryError> {
    let http = |source| DirectoryError::Http {
        url: url.to_owned(),
        source,
    };
    let body = client
        .get(url)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(http)?
        .bytes()
        .await
        .map_err(http)?;
    serde_json::from_slice(&body).map_err(|source| DirectoryError::Parse {
        url: url.to_owned(),
        source,
    })
}

/// `POST <url>/join` (`url`: the directory's `/relays` URL): announce and take a parent chosen
/// by the directory; None when no parent qualifies.
pub async fn join(
    client: &reqwest::Client,
    url: &str,
    j: &Join,
) -> Result<Option<Listed>, DirectoryError> {
    let join_url = format!("{}/join", url.trim_end_matches('/'));
    let http = |source| DirectoryError::Http {
        url: join_url.clone(),
        source,
    };
    let resp = client
        .post(&join_url)
        .timeout(REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(j).expect("a join serialises"))
        .send()
        .await
        .map_err(http)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(http)?;
    match status.as_u16() {
        200 => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|source| DirectoryError::Parse {
                url: join_url.clone(),
                source,
            }),
        404 => Ok(None),
        code => Err(DirectoryError::Refused {
            url: join_url.clone(),
            status: code,
            body: String::from_utf8_lossy(&body).into_owned(),
        }),
    }
}

/// `POST <url>` an announce.
pub async fn announce(
    client: &reqwest::Client,
    url: &str,
    a: &Announce,
) -> Result<Announced, DirectoryError> {
    let http = |source| DirectoryError::Http {
        url: url.to_owned(),
        source,
    };
    let resp = client
        .post(url)
        .timeout(REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(a).expect("an announce serialises"))
        .send()
        .await
        .map_err(http)?;
    let status = resp.status();
    if status.is_success() {
        // A directory that answers 204 (no body) says nothing about the end.
        let body = resp.bytes().await.map_err(http)?;
        if body.is_empty() {
            return Ok(Announced::default());
        }
        return serde_json::from_slice(&body).map_err(|source| DirectoryError::Parse {
            url: url.to_owned(),
            source,
        });
    }
    Err(DirectoryError::Refused {
        url: url.to_owned(),
        status: status.as_u16(),
        body: resp.text().await.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(node: &str, parent: Option<&str>) -> Announce {
        Announce {
            node: node.into(),
            url: format!("http://{node}/live"),
            parent: parent.map(|p| format!("http://{p}/live")),
            capacity: 2,
        }
    }

    fn dir() -> Directory {
        Directory::new("http://source/live".into(), 2)
    }

    #[test]
    fn depth_and_children_follow_the_announced_parents() {
        let mut d = dir();
        d.announce(relay("a", Some("source")), 0).unwrap();
        d.announce(relay("b", Some("source")), 0).unwrap();
        d.announce(relay("c", Some("a")), 0).unwrap();
        d.announce(relay("x", Some("nowhere")), 0).unwrap();
        let l = d.listing(0);
        assert_eq!(l.relays[0].node, SOURCE);
        assert_eq!(l.get(SOURCE).unwrap().children, 2);
        assert_eq!(l.get("a").unwrap().depth, Some(1));
        assert_eq!(l.get("a").unwrap().children, 1);
        assert_eq!(l.get("c").unwrap().depth, Some(2));
        assert_eq!(l.get("x").unwrap().depth, None);
        assert_eq!(
            l.subtree("a"),
            ["a", "c"].iter().map(|s| s.to_string()).collect()
        );
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let mut d = dir();
        d.announce(relay("a", Some("source")), 0).unwrap();
        d.announce(relay("b", Some("source")), 2_000).unwrap();
        let ttl = ENTRY_TTL.as_millis() as u64;
        assert!(d.listing(ttl).get("a").is_some());
        let l = d.listing(ttl + 1);
        assert!(l.get("a").is_none());
        assert!(l.get("b").is_some());
        assert!(d.announce(relay(SOURCE, None), 0).is_err());
    }

    #[test]
    fn a_cycle_has_no_depth_and_does_not_hang() {
        let mut d = dir();
        d.announce(relay("a", Some("b")), 0).unwrap();
        d.announce(relay("b", Some("a")), 0).unwrap();
        let l = d.listing(0);
        assert_eq!(l.get("a").unwrap().depth, None);
        assert_eq!(l.subtree("a").len(), 2);
    }

    #[test]
    fn an_orphan_takes_a_shallow_free_parent_never_its_own_descendant() {
        let mut d = dir();
        // source -> a, b; a -> c, d; c -> e. a leaves: c and d are orphans.
        d.announce(relay("b", Some("source")), 0).unwrap();
        d.announce(relay("c", Some("a")), 0).unwrap();
        d.announce(relay("d", Some("a")), 0).unwrap();
        d.announce(relay("e", Some("c")), 0).unwrap();
        let l = d.listing(0);
        // The source has one free slot (only b is its child).
        assert_eq!(choose_parent(&l, "c", &[]).unwrap().node, SOURCE);
        // e is c's child: never c's parent; c itself has no depth (a is gone).
        let p = choose_parent(&l, "c", &["source"]).unwrap();
        assert_eq!(p.node, "b");
        // A full source is taken only when nothing with a free slot is connected.
        let mut d = dir();
        d.announce(relay("a", Some("source")), 0).unwrap();
        d.announce(relay("b", Some("source")), 0).unwrap();
        d.announce(relay("n", None), 0).unwrap();
        let l = d.listing(0);
        let p = choose_parent(&l, "n", &[]).unwrap();
        assert!(p.node == "a" || p.node == "b", "{p:?}");
    }

    #[test]
    fn a_relay_does_not_count_its_own_slot_against_its_parent() {
        let mut d = dir();
        d.announce(relay("a", Some("source")), 0).unwrap();
        d.announce(relay("b", Some("source")), 0).unwrap();
        let l = d.listing(0);
        // a is already the source's child: the source is not full for a.
        assert_eq!(choose_parent(&l, "a", &[]).unwrap().node, SOURCE);
    }

    #[test]
    fn orphans_spread_over_equal_candidates() {
        let mut d = Directory::new("http://source/live".into(), 1);
        d.announce(relay("s", Some("source")), 0).unwrap();
        for p in ["p1", "p2", "p3", "p4"] {
            d.announce(relay(p, Some("s")), 0).unwrap();
        }
        let l = d.listing(0);
        let picks: HashSet<String> = (0..16)
            .map(|i| format!("orphan{i}"))
            .map(|me| choose_parent(&l, &me, &["source", "s"]).unwrap().node)
            .collect();
        assert!(picks.len() > 1, "{picks:?}");
    }

    #[test]
    fn simultaneous_joins_fill_the_tree_level_by_level() {
        let mut d = dir();
        let mut parents = Vec::new();
        for i in 0..6 {
            let j = Join {
                announce: relay(&format!("n{i}"), None),
                avoid: Vec::new(),
            };
            parents.push(d.join(j, 0).unwrap().unwrap().node);
        }
        // Two on the source, then two under each of those: nobody over capacity.
        assert_eq!(parents.iter().filter(|p| *p == SOURCE).count(), 2);
        let l = d.listing(0);
        for r in &l.relays {
            assert!(r.children <= r.capacity, "{r:?}");
        }
        assert!(l.relays.iter().all(|r| r.depth.is_some()));
        // A rejoin avoiding its parent takes another, never one below it.
        let j = Join {
            announce: relay("n0", None),
            avoid: vec![SOURCE.into()],
        };
        let p = d.join(j, 1).unwrap().unwrap();
        assert!(!d.listing(1).subtree("n0").contains(&p.node));
    }

    #[test]
    fn an_announce_sent_before_a_join_answered_keeps_the_joins_parent() {
        let mut d = dir();
        let j = Join {
            announce: relay("n", None),
            avoid: Vec::new(),
        };
        let given = d.join(j, 1_000).unwrap().unwrap().url;
        // The node's periodic announce, sent while the join was in flight: no parent yet.
        d.announce(relay("n", None), 1_100).unwrap();
        let parent = |d: &mut Directory, now| d.listing(now).get("n").unwrap().parent.clone();
        assert_eq!(parent(&mut d, 1_100), Some(given.clone()));
        assert_eq!(d.listing(1_100).get(SOURCE).unwrap().children, 1);
        // Once the node announces the join's parent, its announces are the truth again.
        d.announce(relay("n", Some("source")), 1_500).unwrap();
        d.announce(relay("n", None), 1_600).unwrap();
        assert_eq!(parent(&mut d, 1_600), None);
        // A rejoin: an announce still naming the parent it left is stale; a move to another
        // parent (not the stale one) is not.
        d.announce(relay("k", Some("source")), 1_600).unwrap();
        d.announce(relay("n", Some("k")), 1_700).unwrap();
        let j = Join {
            announce: relay("n", Some("k")),
            avoid: vec!["k".into()],
        };
        let given = d.join(j, 1_800).unwrap().unwrap().url;
        assert_ne!(given, "http://k/live");
        d.announce(relay("n", Some("k")), 1_900).unwrap();
        assert_eq!(parent(&mut d, 1_900), Some(given));
        d.announce(relay("n", Some("x")), 2_000).unwrap();
        assert_eq!(parent(&mut d, 2_000), Some("http://x/live".into()));
        // An unconfirmed join stands only for the grace.
        let j = Join {
            announce: relay("m", None),
            avoid: Vec::new(),
        };
        d.join(j, 2_100).unwrap().unwrap();
        let late = 2_100 + JOIN_GRACE.as_millis() as u64 + 1;
        d.announce(relay("m", None), late).unwrap();
        assert_eq!(d.listing(late).get("m").unwrap().parent, None);
    }

    #[tokio::test]
    async fn served_over_http() {
        let served = Served::new(dir());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(served.clone());
        let tasks = swarmcast_tasks::Tasks::new("directory-test");
        tasks.spawn("server", async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://{addr}/relays");
        let client = reqwest::Client::new();
        let said = announce(&client, &url, &relay("a", Some("source")))
            .await
            .unwrap();
        assert!(!said.ended);
        let bad = Announce {
            node: String::new(),
            ..relay("a", None)
        };
        assert!(matches!(
            announce(&client, &url, &bad).await,
            Err(DirectoryError::Refused { status: 400, .. })
        ));
        let j = Join {
            announce: relay("b", None),
            avoid: Vec::new(),
        };
        assert_eq!(join(&client, &url, &j).await.unwrap().unwrap().node, SOURCE);
        let j = Join {
            announce: relay("c", None),
            avoid: vec![SOURCE.into(), "a".into(), "b".into()],
        };
        assert_eq!(join(&client, &url, &j).await.unwrap(), None);
        served.end();
        let l = fetch(&client, &url).await.unwrap();
        assert!(l.ended);
        let said = announce(&client, &url, &relay("a", Some("source")))
            .await
            .unwrap();
        assert!(said.ended, "an announce tells the end without a listing");
        assert_eq!(l.get("a").unwrap().depth, Some(1));
        tasks.shutdown().await;
    }
}
