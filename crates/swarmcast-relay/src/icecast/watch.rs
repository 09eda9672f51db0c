//! A relay node's decisions (pure: times are µs on any monotonic clock, passed in).
//!
//! [`ParentWatch`] follows the node's parent. When the node's stream ends, or no byte came for
//! the detection timeout ([`PARENT_TIMEOUT`](crate::directory::PARENT_TIMEOUT)), it has the
//! parent probed: a parent that does not answer (gone, or hung) is given up at once; one that
//! answers is alive but starved (its own parent is gone, and it is finding another), so the
//! node waits for it, probing again every timeout, up to [`MAX_SILENCE`] timeouts of silence:
//! only the direct children of a departed relay move, not its whole subtree. It then takes the
//! next parent from the directory's listing, never one it gave up on recently; and it says when
//! the node may exit (the directory says the stream ended and the node's stream went quiet).
//! [`Aligner`] keeps the node's output whole MPEG-TS packets across reconnections.

use crate::directory::{choose_parent, Listing, ENTRY_TTL};

/// After the directory says `ended`, the node exits once no byte came for this long.
pub const END_QUIET_US: u64 = 1_000_000;
/// A node that took a parent already over its capacity (nodes that joined at once all saw its
/// free slot) moves within this long of taking it, if it ranks past the capacity among the
/// parent's children and a relay with a free slot is listed.
pub const SETTLE_US: u64 = 5_000_000;
/// A parent that answers probes but sends nothing is given up after this many detection
/// timeouts of silence.
pub const MAX_SILENCE: u64 = 4;
/// A parent given up is avoided this long (its directory entry has expired by then).
pub const AVOID_US: u64 = ENTRY_TTL.as_micros() as u64 + 2_000_000;

/// A parent change decided by [`ParentWatch::on_listing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The parent given up (none at the start).
    pub from: Option<String>,
    /// The new parent's URL.
    pub to: String,
    /// From the last byte received from the old parent (or from taking it, if none came) to
    /// this switch, µs; 0 at the start.
    pub detect_us: u64,
}

/// What [`ParentWatch::on_tick`] asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Probe this parent, then call [`ParentWatch::on_probe`].
    Probe(String),
    /// The parent was given up.
    GaveUp(GaveUp),
}

/// Why a parent was given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GaveUp {
    /// Its stream ended and a probe of its URL got no answer.
    Gone,
    /// No byte for the detection timeout and a probe got no answer, or no byte for
    /// [`MAX_SILENCE`] timeouts though it answered.
    Timeout,
}

/// The node's view of its parent.
#[derive(Clone, Debug)]
pub struct ParentWatch {
    me: String,
    timeout_us: u64,
    /// False for the source: it has no parent, and only waits for the end.
    relaying: bool,
    parent: Option<String>,
    /// When the current parent was taken.
    since_us: u64,
    /// The last byte from the current parent.
    last_from_parent_us: Option<u64>,
    /// The last byte at all.
    last_byte_us: Option<u64>,
    /// The parent given up and when its last byte came (or it was taken), until a new one.
    lost: Option<(String, u64)>,
    /// Parents given up, and when.
    avoid: Vec<(String, u64)>,
    /// A probe is under way for this parent, and why (what giving it up would be).
    probing: Option<(String, GaveUp)>,
    /// When a probe last found the (silent) parent alive.
    alive_at: Option<u64>,
    /// A join (`POST /relays/join`) is under way: the directory chooses.
    joining: bool,
    /// The parent was given up and no join has answered since: a listing (perhaps fetched
    /// before the parent went, and read by other orphans at the same moment) chooses nothing
    /// until the directory, choosing under one lock, has had its say.
    await_join: bool,
    ended: bool,
}

impl ParentWatch {
    /// A relay node named `me`, with no parent yet.
    pub fn relay(me: impl Into<String>, timeout_us: u64) -> Self {
        Self {
            me: me.into(),
            timeout_us,
            relaying: true,
            parent: None,
            since_us: 0,
            last_from_parent_us: None,
            last_byte_us: None,
            lost: None,
            avoid: Vec::new(),
            probing: None,
            alive_at: None,
            joining: false,
            await_join: false,
            ended: false,
        }
    }

    /// The source node: no parent; it only follows its stream and the end.
    pub fn source(me: impl Into<String>) -> Self {
        Self {
            relaying: false,
            ..Self::relay(me, u64::MAX)
        }
    }

    /// The current parent.
    pub fn parent(&self) -> Option<&str> {
        self.parent.as_deref()
    }

    /// The directory said the stream ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Stream bytes arrived.
    pub fn on_bytes(&mut self, now_us: u64) {
        self.last_byte_us = Some(now_us);
        if self.parent.is_some() {
            self.last_from_parent_us = Some(now_us);
            self.alive_at = None;
        }
    }

    /// The node's stream ended (the local mount closed or is gone): the parent to probe, if
    /// it should be (once per parent until it delivers again).
    pub fn on_stream_end(&mut self, _now_us: u64) -> Option<String> {
        let parent = self.parent.clone()?;
        if self.ended || self.probing.is_some() {
            return None;
        }
        self.probing = Some((parent.clone(), GaveUp::Gone));
        Some(parent)
    }

    /// A probe of `url` answered (`alive`) or not. Gives the parent up if it is the current
    /// one and did not answer.
    pub fn on_probe(&mut self, now_us: u64, url: &str, alive: bool) -> Option<GaveUp> {
        let why = match self.probing.take() {
            Some((u, why)) if u == url => why,
            other => {
                self.probing = other;
                return None;
            }
        };
        if self.parent.as_deref() != Some(url) {
            return None;
        }
        if alive {
            self.alive_at = Some(now_us);
            return None;
        }
        self.give_up(now_us);
        Some(why)
    }

    /// Time passes: a parent silent for the timeout is probed (again every timeout while it
    /// answers), and given up after [`MAX_SILENCE`] timeouts.
    pub fn on_tick(&mut self, now_us: u64) -> Option<Step> {
        let parent = self.parent.clone()?;
        if self.ended {
            return None;
        }
        let since = self.last_from_parent_us.unwrap_or(0).max(self.since_us);
        let silence = now_us.saturating_sub(since);
        if silence < self.timeout_us {
            return None;
        }
        if silence >= self.timeout_us.saturating_mul(MAX_SILENCE) {
            self.give_up(now_us);
            return Some(Step::GaveUp(GaveUp::Timeout));
        }
        let answered_lately = self
            .alive_at
            .is_some_and(|t| now_us.saturating_sub(t) < self.timeout_us);
        if self.probing.is_some() || answered_lately {
            return None;
        }
        self.probing = Some((parent.clone(), GaveUp::Timeout));
        Some(Step::Probe(parent))
    }

    fn give_up(&mut self, now_us: u64) {
        if let Some(p) = self.parent.take() {
            let last = self.last_from_parent_us.unwrap_or(self.since_us);
            self.avoid.push((p.clone(), now_us));
            self.lost = Some((p, last));
            self.last_from_parent_us = None;
            self.await_join = true;
        }
        self.alive_at = None;
        self.probing = None;
    }

    /// A listing arrived: notes `ended`; without a parent, takes one (never one given up in
    /// the last [`AVOID_US`]). None when nothing is to change, or no relay qualifies yet.
    pub fn on_listing(&mut self, now_us: u64, listing: &Listing) -> Option<Switch> {
        self.ended |= listing.ended;
        if !self.relaying || self.ended {
            return None;
        }
        if self.parent.is_some() {
            return self.settle(now_us, listing);
        }
        if self.joining || self.await_join {
            return None;
        }
        self.avoid
            .retain(|(_, at)| now_us.saturating_sub(*at) < AVOID_US);
        let avoid: Vec<&str> = self.avoid.iter().map(|(u, _)| u.as_str()).collect();
        let next = choose_parent(listing, &self.me, &avoid)?;
        Some(self.take(now_us, next.url))
    }

    /// Whether the node needs the directory's listing (`GET /relays`) now: while it has no
    /// parent (the listing is the fallback when a join gives none) and while it may still
    /// settle ([`SETTLE_US`] after taking a parent). Otherwise its announces tell it the end,
    /// and the listing, O(relays) bytes, is not fetched: every node fetching it every second
    /// would cost the source's host O(relays²) bytes a second.
    pub fn wants_listing(&self, now_us: u64) -> bool {
        self.relaying
            && !self.ended
            && (self.parent.is_none() || now_us.saturating_sub(self.since_us) < SETTLE_US)
    }

    /// Without a parent (and no join under way): asks for a join, returning the parents the
    /// directory must not give (those given up lately). Until [`on_joined`](Self::on_joined),
    /// listings choose nothing.
    pub fn join_request(&mut self, now_us: u64) -> Option<Vec<String>> {
        if !self.relaying || self.ended || self.parent.is_some() || self.joining {
            return None;
        }
        self.joining = true;
        self.avoid
            .retain(|(_, at)| now_us.saturating_sub(*at) < AVOID_US);
        Some(self.avoid.iter().map(|(u, _)| u.clone()).collect())
    }

    /// The join's answer: the parent the directory gave (none: none qualified, or the join
    /// failed; the next listing or join tries again).
    pub fn on_joined(&mut self, now_us: u64, parent: Option<String>) -> Option<Switch> {
        self.joining = false;
        self.await_join = false;
        if self.ended || self.parent.is_some() {
            return None;
        }
        Some(self.take(now_us, parent?))
    }

    /// Takes `url` as the parent.
    fn take(&mut self, now_us: u64, url: String) -> Switch {
        let (from, detect_us) = match self.lost.take() {
            Some((url, last)) => (Some(url), now_us.saturating_sub(last)),
            None => (None, 0),
        };
        self.parent = Some(url.clone());
        self.since_us = now_us;
        self.last_from_parent_us = None;
        self.probing = None;
        self.alive_at = None;
        Switch {
            from,
            to: url,
            detect_us,
        }
    }

    /// Within [`SETTLE_US`] of taking its parent: moves to a relay with a free slot if the
    /// parent has more children than its capacity and this node ranks past it (by a hash of the
    /// two names, which every child computes alike, so that only the surplus moves).
    fn settle(&mut self, now_us: u64, listing: &Listing) -> Option<Switch> {
        let current = self.parent.clone()?;
        if now_us.saturating_sub(self.since_us) >= SETTLE_US {
            return None;
        }
        let surplus = surplus(listing);
        if !surplus.contains(&self.me.as_str()) {
            return None;
        }
        // Not the parent it leaves, nor another node about to move, nor a parent it gave up.
        let mut avoid = surplus;
        avoid.push(current.as_str());
        avoid.extend(
            self.avoid
                .iter()
                .filter(|(_, at)| now_us.saturating_sub(*at) < AVOID_US)
                .map(|(u, _)| u.as_str()),
        );
        let next = choose_parent(listing, &self.me, &avoid)?;
        if next.children >= next.capacity {
            return None;
        }
        self.parent = Some(next.url.clone());
        self.since_us = now_us;
        self.last_from_parent_us = None;
        self.probing = None;
        self.alive_at = None;
        Some(Switch {
            from: Some(current),
            to: next.url,
            detect_us: 0,
        })
    }

    /// The node may exit: the stream ended and no byte came for [`END_QUIET_US`].
    pub fn should_exit(&self, now_us: u64) -> bool {
        self.ended
            && self
                .last_byte_us
                .is_none_or(|t| now_us.saturating_sub(t) >= END_QUIET_US)
    }
}

/// The nodes that ranked past their parent's capacity: they move while settling.
fn surplus(listing: &Listing) -> Vec<&str> {
    let mut out = Vec::new();
    for parent in listing.relays.iter().filter(|p| p.children > p.capacity) {
        let mut children: Vec<&str> = listing
            .relays
            .iter()
            .filter(|r| r.parent.as_deref() == Some(parent.url.as_str()))
            .map(|r| r.node.as_str())
            .collect();
        children.sort_by_key(|c| (rank(&parent.node, c), *c));
        out.extend(children.into_iter().skip(parent.capacity as usize));
    }
    out
}

/// A stable hash of a parent's and a child's names (FNV-1a): the order in which a parent's
/// children keep their slots.
fn rank(parent: &str, child: &str) -> u64 {
    [parent, child].iter().fold(0xcbf2_9ce4_8422_2325, |h, p| {
        p.bytes()
            .chain(std::iter::once(0))
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    })
}

/// MPEG-TS packet size.
pub const PACKET: usize = 188;

/// Keeps a stream written as whole MPEG-TS packets: Icecast starts a listener wherever its
/// buffers start, often mid-packet, and a connection may end mid-packet. After each
/// [`reset`](Self::reset) (a new connection) it skips to a point where three packets in a row
/// start with the sync byte, then passes whole packets on; a trailing partial packet is held
/// back until the rest arrives, and dropped by the next reset. A lost sync is searched again.
#[derive(Clone, Debug, Default)]
pub struct Aligner {
    pending: Vec<u8>,
    synced: bool,
    /// Bytes skipped (not written): partial packets at the edges of connections, and garbage.
    pub skipped: u64,
}

impl Aligner {
    /// A new connection: drops the partial packet held back.
    pub fn reset(&mut self) {
        self.skipped += self.pending.len() as u64;
        self.pending.clear();
        self.synced = false;
    }

    /// Takes bytes; returns the whole packets ready to write.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        let mut out = Vec::with_capacity(self.pending.len());
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            if !self.synced {
                match find_sync(rest) {
                    Some(i) => {
                        self.skipped += i as u64;
                        at += i;
                        self.synced = true;
                    }
                    None => {
                        // Keep the last two packets' worth: a sync may start in them.
                        let keep = rest.len().min(2 * PACKET);
                        let drop = rest.len() - keep;
                        self.skipped += drop as u64;
                        at += drop;
                        break;
                    }
                }
                continue;
            }
            if rest.len() < PACKET {
                break;
            }
            if rest[0] != 0x47 {
                self.synced = false;
                continue;
            }
            out.extend_from_slice(&rest[..PACKET]);
            at += PACKET;
        }
        self.pending.drain(..at);
        out
    }
}

/// The first offset where three packets in a row start with the sync byte.
fn find_sync(b: &[u8]) -> Option<usize> {
    (0..b.len().saturating_sub(2 * PACKET))
        .find(|&i| b[i] == 0x47 && b[i + PACKET] == 0x47 && b.get(i + 2 * PACKET) == Some(&0x47))
}

#[cfg(test)]
mod tests;
