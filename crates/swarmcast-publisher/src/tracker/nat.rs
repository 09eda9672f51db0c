//! The NAT check's state ([`NatTable`]): per listed address, whether a connection back to it
//! succeeded, which checks to hand out, and which addresses are live, reachable or not. Pure
//! bookkeeping on the clock passed in; the tracker does the asking and the caller the connecting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::Announce;

/// How long a NAT check's verdict holds before the address's next announce re-checks it.
pub const NAT_CHECK_TTL: Duration = Duration::from_secs(600);
/// Most NAT checks in flight at once.
pub const NAT_CHECKS_IN_FLIGHT: usize = 128;
/// Most addresses whose reachability the tracker remembers.
pub const NAT_CHECK_ADDRS: usize = 16_384;

/// How the tracker checks that peers can be dialled before it lists them (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatCheck {
    /// How long a verdict holds, ms; the address's next announce after that re-checks it (the old
    /// verdict stands until the new one comes).
    pub ttl_ms: u64,
    /// A check with no verdict after this long, ms, is taken as lost: the address goes back to
    /// what it was before, and the next announce hands it out again. Longer than the connect
    /// timeout.
    pub lost_ms: u64,
    /// Most checks in flight at once; addresses beyond that wait for a later announce.
    pub max_in_flight: usize,
    /// Most addresses remembered; when full, the one heard from least recently (and not being
    /// checked) is forgotten.
    pub max_addrs: usize,
    /// Keep reachable peers' uplinks for the peers behind a NAT (see [`Tracker::announce`](super::Tracker::announce)):
    /// while at least as many live addresses failed the check as passed it, a reachable
    /// announcer is listed no other reachable peer.
    pub spare_reachable: bool,
}

impl NatCheck {
    /// The defaults, for checks that connect with `timeout`.
    pub fn for_timeout(timeout: Duration) -> Self {
        Self {
            ttl_ms: NAT_CHECK_TTL.as_millis() as u64,
            lost_ms: 2 * timeout.as_millis() as u64 + 10_000,
            max_in_flight: NAT_CHECKS_IN_FLIGHT,
            max_addrs: NAT_CHECK_ADDRS,
            spare_reachable: true,
        }
    }
}

impl Default for NatCheck {
    /// The defaults for a 2 s connect timeout.
    fn default() -> Self {
        Self::for_timeout(Duration::from_secs(2))
    }
}

/// What the tracker knows of whether a listed address accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Never checked (or not known to the tracker): not listed.
    Unchecked,
    /// A check is in flight: listed only if an earlier verdict (being renewed) said reachable.
    Checking,
    /// A connection succeeded: listed.
    Reachable,
    /// A connection was refused or timed out: never listed, still answered.
    Unreachable,
}

/// One address's reachability, as the tracker keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReachState {
    Unchecked,
    /// In flight since `since_ms`; `previous` is the verdict being renewed and when it was found.
    Checking {
        since_ms: u64,
        previous: Option<(bool, u64)>,
    },
    Known {
        reachable: bool,
        checked_ms: u64,
    },
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Reach {
    pub(super) state: ReachState,
    /// The address's last announce.
    pub(super) seen_ms: u64,
}

impl Reach {
    /// Failed its last check (and is not being found reachable since).
    pub(super) fn unreachable(&self) -> bool {
        matches!(
            self.state,
            ReachState::Known {
                reachable: false,
                ..
            } | ReachState::Checking {
                previous: Some((false, _)),
                ..
            }
        )
    }

    pub(super) fn listed(&self) -> bool {
        matches!(
            self.state,
            ReachState::Known {
                reachable: true,
                ..
            } | ReachState::Checking {
                previous: Some((true, _)),
                ..
            }
        )
    }
}

/// The NAT check's state: the reachability table and the checks to hand out.
#[derive(Debug)]
pub(super) struct NatTable {
    pub(super) config: NatCheck,
    pub(super) addrs: HashMap<SocketAddr, Reach>,
    /// Entries in `Checking`.
    pub(super) in_flight: usize,
    /// Checks not yet taken by [`Tracker::to_check`](super::Tracker::to_check).
    pub(super) pending: Vec<SocketAddr>,
}

impl NatTable {
    pub(super) fn listed(&self, addr: &SocketAddr) -> bool {
        self.addrs.get(addr).is_some_and(Reach::listed)
    }

    /// Addresses heard from within `live_ms` before `now_ms` that are listed (reachable), and
    /// that failed their last check (unreachable).
    pub(super) fn live_counts(&self, now_ms: u64, live_ms: u64) -> (usize, usize) {
        let (mut reachable, mut unreachable) = (0, 0);
        for r in self.addrs.values() {
            if now_ms.saturating_sub(r.seen_ms) >= live_ms {
                continue;
            }
            if r.listed() {
                reachable += 1;
            } else if r.unreachable() {
                unreachable += 1;
            }
        }
        (reachable, unreachable)
    }

    /// Checks in flight for addresses other than `addr`.
    pub(super) fn others_in_flight(&self, addr: &SocketAddr) -> usize {
        let own = self
            .addrs
            .get(addr)
            .is_some_and(|r| matches!(r.state, ReachState::Checking { .. }));
        self.in_flight - usize::from(own)
    }

    /// Makes room for one more address; false if every entry is being checked.
    pub(super) fn make_room(&mut self) -> bool {
        if self.addrs.len() < self.config.max_addrs {
            return true;
        }
        let oldest = self
            .addrs
            .iter()
            .filter(|(_, r)| !matches!(r.state, ReachState::Checking { .. }))
            .min_by_key(|(addr, r)| (r.seen_ms, **addr))
            .map(|(addr, _)| *addr);
        oldest.is_some_and(|addr| self.addrs.remove(&addr).is_some())
    }

    /// An announce from `addr` at `now_ms`: starts a check if one is due and there is room.
    /// Returns true if a check was handed out.
    pub(super) fn announced(&mut self, addr: SocketAddr, now_ms: u64) -> bool {
        if !self.addrs.contains_key(&addr) {
            if !self.make_room() {
                return false;
            }
            self.addrs.insert(
                addr,
                Reach {
                    state: ReachState::Unchecked,
                    seen_ms: now_ms,
                },
            );
        }
        let (ttl, room) = (
            self.config.ttl_ms,
            self.in_flight < self.config.max_in_flight,
        );
        let reach = self.addrs.get_mut(&addr).expect("inserted above");
        reach.seen_ms = now_ms;
        let previous = match reach.state {
            ReachState::Unchecked => None,
            ReachState::Known {
                reachable,
                checked_ms,
            } if now_ms.saturating_sub(checked_ms) >= ttl => Some((reachable, checked_ms)),
            ReachState::Known { .. } | ReachState::Checking { .. } => return false,
        };
        if !room {
            return false;
        }
        reach.state = ReachState::Checking {
            since_ms: now_ms,
            previous,
        };
        self.in_flight += 1;
        if !self.pending.contains(&addr) {
            self.pending.push(addr);
        }
        true
    }

    /// Records a verdict; false if the address is not known (forgotten meanwhile).
    pub(super) fn verdict(&mut self, addr: SocketAddr, reachable: bool, now_ms: u64) -> bool {
        let Some(reach) = self.addrs.get_mut(&addr) else {
            return false;
        };
        if matches!(reach.state, ReachState::Checking { .. }) {
            self.in_flight -= 1;
        }
        reach.state = ReachState::Known {
            reachable,
            checked_ms: now_ms,
        };
        true
    }

    /// Gives up on lost checks, and forgets addresses not heard from for `keep_ms`.
    pub(super) fn expire(&mut self, now_ms: u64, keep_ms: u64) {
        let lost_ms = self.config.lost_ms;
        let mut in_flight = 0;
        self.addrs.retain(|_, r| {
            if let ReachState::Checking { since_ms, previous } = r.state {
                if now_ms.saturating_sub(since_ms) >= lost_ms {
                    r.state = previous.map_or(ReachState::Unchecked, |(reachable, checked_ms)| {
                        ReachState::Known {
                            reachable,
                            checked_ms,
                        }
                    });
                }
            }
            let keep = now_ms.saturating_sub(r.seen_ms) < keep_ms;
            if keep && matches!(r.state, ReachState::Checking { .. }) {
                in_flight += 1;
            }
            keep
        });
        self.in_flight = in_flight;
    }

    /// Whether a reachable announcer at `addr` is answered the publisher alone
    /// ([`NatCheck::spare_reachable`]): while live addresses that failed the check are at least
    /// as many as those that passed it.
    pub(super) fn spares(&self, addr: SocketAddr, now_ms: u64, live_ms: u64) -> bool {
        self.config.spare_reachable && self.listed(&addr) && {
            let (reachable, unreachable) = self.live_counts(now_ms, live_ms);
            unreachable > 0 && unreachable >= reachable
        }
    }

    /// Whether announcer `a`, whom nobody can dial, is told to re-announce soon
    /// ([`CATCH_UP_MIN_INTERVAL_S`](super::CATCH_UP_MIN_INTERVAL_S)): its answer listed
    /// `listed_others` peers besides the publisher, fewer than it wanted, and live reachable peers
    /// are missing from it or checks of others are in flight.
    pub(super) fn catches_up(
        &self,
        a: &Announce,
        listed_others: usize,
        now_ms: u64,
        live_ms: u64,
    ) -> bool {
        !self.listed(&a.addr) && listed_others < a.numwant.saturating_sub(1) && {
            let (reachable, _) = self.live_counts(now_ms, live_ms);
            listed_others < reachable || self.others_in_flight(&a.addr) > 0
        }
    }
}
