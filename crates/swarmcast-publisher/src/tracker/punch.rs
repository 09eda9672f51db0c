//! TCP hole punching between peers behind NAT ([`Tracker::with_punch`](super::Tracker::with_punch)):
//! each segment's punch port, and the ring that pairs up the peers that failed the NAT check,
//! the same pairs both ways, shuffled anew for each segment.

use std::net::{IpAddr, SocketAddr};

use super::nat::NatTable;

/// A position on segment `number`'s punch ring (splitmix64 of the number and the address).
pub(super) fn ring_hash(number: u64, addr: &SocketAddr) -> u64 {
    let a = match addr.ip() {
        IpAddr::V4(ip) => u64::from(u32::from(ip)),
        IpAddr::V6(ip) => {
            let v = u128::from(ip);
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    let mut z = number
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(a << 16 | u64::from(addr.port()));
    for _ in 0..2 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

/// Segment `number`'s port in `ports` (not empty): the first plus the number modulo the length.
pub(super) fn port_of(ports: &std::ops::RangeInclusive<u16>, number: u64) -> u16 {
    let len = u64::from(ports.end() - ports.start()) + 1;
    ports.start() + (number % len) as u16
}

impl NatTable {
    /// The punch partners of `me` for segment `number`: of the addresses heard from within
    /// `live_ms` before `now_ms` that failed their last check (`me` among them), the `degree`
    /// nearest `me` on a ring ordered by a hash of the segment and the address (half on each
    /// side), never one on `me`'s IP address. Every address computes its partners on the same
    /// ring, so the relation is symmetric while the live set is the same, which both ends of a
    /// pair need (each must dial the other); the ring is shuffled anew for each segment.
    pub(super) fn punch_partners(
        &self,
        me: SocketAddr,
        number: u64,
        now_ms: u64,
        live_ms: u64,
        degree: usize,
    ) -> Vec<SocketAddr> {
        let mut ring: Vec<SocketAddr> = self
            .addrs
            .iter()
            .filter(|(addr, r)| {
                **addr == me || (r.unreachable() && now_ms.saturating_sub(r.seen_ms) < live_ms)
            })
            .map(|(addr, _)| *addr)
            .collect();
        ring.sort_by_key(|addr| (ring_hash(number, addr), *addr));
        let n = ring.len();
        let Some(at) = ring.iter().position(|a| *a == me) else {
            return Vec::new();
        };
        let offsets: Vec<usize> = if n.saturating_sub(1) <= degree {
            (1..n).collect()
        } else {
            (1..=degree.div_ceil(2))
                .flat_map(|k| [k, n - k])
                .take(degree)
                .collect()
        };
        let mut out: Vec<SocketAddr> = Vec::with_capacity(offsets.len());
        for k in offsets {
            let addr = ring[(at + k) % n];
            if addr.ip() != me.ip() && !out.contains(&addr) {
                out.push(addr);
            }
        }
        out
    }
}
