//! The NAT check's IO side: connects back to the addresses the [`tracker`](crate::tracker) asks
//! about ([`Tracker::to_check`](crate::tracker::Tracker::to_check)) and reports each verdict.
//!
//! A check is a TCP connect with a timeout, closed as soon as it succeeds: the handshake is all
//! that is needed (a librqbit listener accepts and drops a connection that sends nothing). Refused,
//! unroutable and timed out (a NAT silently drops the SYN) all mean unreachable. How many checks run
//! at once, and that an address is not checked twice at a time, is the tracker's business
//! ([`NatCheck`](crate::tracker::NatCheck)): this spawns one task per address it is given.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use swarmcast_tasks::Tasks;
use tokio::net::TcpStream;

/// The default connect timeout: a few round trips of a slow path (300 ms), well under a client's
/// re-announce backoff.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a TCP connection to `addr` completes within `timeout`. The connection is closed at once.
pub async fn reachable(addr: SocketAddr, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            drop(stream);
            true
        }
        Ok(Err(e)) => {
            tracing::trace!(%addr, error = %e, "NAT check: connect failed");
            false
        }
        Err(_) => {
            tracing::trace!(%addr, ?timeout, "NAT check: connect timed out");
            false
        }
    }
}

/// Runs NAT checks in tasks that end when their connect does, or when their group is cancelled.
#[derive(Debug, Clone)]
pub struct NatChecker {
    timeout: Duration,
    tasks: Tasks,
}

impl NatChecker {
    /// Checks connecting with `timeout`, as tasks of `tasks`; cancelling it ends those in flight
    /// (reporting nothing), and its shutdown waits for them.
    pub fn new(timeout: Duration, tasks: Tasks) -> Self {
        Self { timeout, tasks }
    }

    /// The connect timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks each of `addrs` in its own task (on the current tokio runtime) and calls `report`
    /// with the address and whether it is reachable.
    pub fn spawn(
        &self,
        addrs: Vec<SocketAddr>,
        report: impl Fn(SocketAddr, bool) + Send + Sync + 'static,
    ) {
        if addrs.is_empty() || self.tasks.token().is_cancelled() {
            return;
        }
        let report = Arc::new(report);
        for addr in addrs {
            let (report, timeout) = (report.clone(), self.timeout);
            self.tasks.spawn("nat-check", async move {
                let ok = reachable(addr, timeout).await;
                tracing::debug!(%addr, reachable = ok, "NAT check");
                report(addr, ok);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listening_port_passes_and_a_closed_one_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(reachable(open, DEFAULT_TIMEOUT).await);
        assert!(!reachable(closed, DEFAULT_TIMEOUT).await);

        // Through the spawning checker: both verdicts come back.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let checker = NatChecker::new(DEFAULT_TIMEOUT, Tasks::new("test"));
        checker.spawn(vec![open, closed], move |addr, ok| {
            let _ = tx.send((addr, ok));
        });
        let mut verdicts = Vec::new();
        for _ in 0..2 {
            verdicts.push(
                tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .expect("hang guard")
                    .expect("a verdict"),
            );
        }
        verdicts.sort();
        let mut want = vec![(open, true), (closed, false)];
        want.sort();
        assert_eq!(verdicts, want);
    }

    #[tokio::test]
    async fn a_cancelled_checker_ends_its_checks_without_a_verdict() {
        // 192.0.2.0/24 (TEST-NET-1) is unroutable: the connect hangs (or fails at once, offline).
        let tasks = Tasks::new("test");
        let checker = NatChecker::new(Duration::from_secs(30), tasks.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(SocketAddr, bool)>();
        checker.spawn(vec!["192.0.2.1:6881".parse().unwrap()], move |addr, ok| {
            let _ = tx.send((addr, ok));
        });
        // Shutdown cancels the check and waits for its task: then no sender is left.
        tasks.shutdown().await;
        assert!(tasks.is_empty());
        while let Ok((_, ok)) = rx.try_recv() {
            assert!(!ok, "an unroutable address passed");
        }
        assert!(
            matches!(
                rx.try_recv(),
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
            ),
            "the check outlived the shutdown"
        );
    }
}
