//! The wire seeder's accept loop, and its caps on connections: in all, and per address.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use swarmcast_tasks::Tasks;
use tokio::net::{TcpListener, TcpStream};

use super::conn::Outcome;
use super::driver::{serve, ConnError};
use super::{lock, Inner};

/// Accepts connections, each served in a task of `tasks`, until `tasks` is cancelled.
pub(super) async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, tasks: Tasks) {
    let mut last_logged: Option<tokio::time::Instant> = None;
    // Ends when the seeder's tasks are cancelled (this one among them).
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin, and say
                // so every few seconds rather than at every try.
                if last_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    last_logged = Some(tokio::time::Instant::now());
                    tracing::warn!(error = %e, connections = inner.max_connections - inner.slots.available_permits(), "wire seeder: accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(from_address) = AddressSlot::take(&inner, address_key(addr.ip())) else {
            inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            inner
                .counters
                .refused_per_address
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
            inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        inner.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let inner = inner.clone();
        tasks.spawn("connection", async move {
            let _permit = permit;
            let _from_address = from_address;
            connection(&inner, stream, addr).await;
        });
    }
}

/// Serves a connection, and counts how it ended.
async fn connection(inner: &Inner, stream: TcpStream, addr: std::net::SocketAddr) {
    let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let Err(e) = serve(inner, stream, id).await else {
        return;
    };
    let outcome = match &e {
        ConnError::HandshakeIo(_) => Some(Outcome::Refused),
        ConnError::Closed(reason) => Some(reason.outcome()),
        ConnError::Io(_) => None,
    };
    match outcome {
        Some(Outcome::Refused) => {
            inner.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
        Some(Outcome::Violation) => {
            inner.counters.violations.fetch_add(1, Ordering::Relaxed);
        }
        Some(Outcome::Ended) | None => {}
    }
    if matches!(&e, ConnError::Closed(c) if c.outcome() == Outcome::Ended) {
        tracing::trace!(%addr, conn = id, error = %e, "wire seeder: connection ended");
    } else {
        tracing::debug!(%addr, conn = id, error = %e, "wire seeder: connection ended");
    }
}

/// What a per-address cap counts a connection under: an IPv4 address (an IPv4-mapped IPv6
/// one as the IPv4 address it is), or an IPv6 address's /64 prefix, since one IPv6 host is
/// given a /64 and could otherwise open connections from as many addresses as it likes.
pub fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// A connection counted against its address's cap while it lives.
struct AddressSlot {
    inner: Arc<Inner>,
    ip: std::net::IpAddr,
}

impl AddressSlot {
    /// Counts a connection from `ip`; `None` if its address is at the cap.
    fn take(inner: &Arc<Inner>, ip: std::net::IpAddr) -> Option<Self> {
        let mut counts = lock(&inner.per_address);
        let n = counts.entry(ip).or_insert(0);
        if inner.per_address_cap != 0 && *n >= inner.per_address_cap {
            return None;
        }
        *n += 1;
        Some(Self {
            inner: inner.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.inner.per_address);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod address_tests {
    use super::address_key;

    #[test]
    fn ipv6_hosts_are_counted_by_their_64_bit_prefix_and_mapped_ipv4_as_ipv4() {
        let key = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}
