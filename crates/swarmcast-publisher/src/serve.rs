//! The publisher's HTTP accept loop: hyper's HTTP/1.1 server under connection limits and timeouts,
//! so that nobody on the internet can hold the publisher's file descriptors.
//!
//! - A connection has [`HttpLimits::header_timeout`] to send a request's head, on arrival and
//!   between requests (an idle keep-alive connection is closed after it). A long poll holds its
//!   connection busy, not idle.
//! - A write that makes no progress for [`HttpLimits::write_timeout`] (a client that does not
//!   read) closes the connection.
//! - One IP address holds at most [`HttpLimits::per_address`] connections (an IPv6 host counted
//!   by its /64, [`swarmcast_swarm::wire::address_key`]); more are closed on arrival.
//! - At most [`HttpLimits::max_connections`] are open. At the cap a new connection is still
//!   accepted, and an idle connection (no request in progress) is closed for it: of the address
//!   holding the most connections, the one idle longest. A crowd of connections that send
//!   nothing cannot keep a viewer out; when every connection is in a request, the new one is
//!   closed.
//! - `accept` failing for lack of files (the system's, or files opened elsewhere in the process)
//!   closes the longest idle connection, is counted and logged once a few seconds with the cause,
//!   and is retried shortly; the server never stops accepting.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use swarmcast_tasks::Tasks;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Default of [`HttpLimits::per_address`].
pub const PER_ADDRESS: usize = 64;
/// Default of [`HttpLimits::header_timeout`]: a request's head takes one round trip to arrive;
/// a viewer sends its next long poll as soon as one is answered.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`HttpLimits::write_timeout`].
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `accept` waits after failing (out of files, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Longest the accept loop waits for a connection it closed to make room to be gone.
const EVICTION_WAIT: Duration = Duration::from_millis(100);
/// How often a failing `accept` is logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Limits of the HTTP server (`publish --http-max-conns`, `--http-conns-per-address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once (at least 1).
    pub max_connections: usize,
    /// Connections from one IP address at once (0: no cap).
    pub per_address: usize,
    /// Time to send a request's head, on arrival and between requests.
    pub header_timeout: Duration,
    /// Time a write may make no progress.
    pub write_timeout: Duration,
}

impl HttpLimits {
    /// `max_connections` in all, the default per-address cap and timeouts.
    pub fn new(max_connections: usize) -> Self {
        Self {
            max_connections: max_connections.max(1),
            per_address: PER_ADDRESS,
            header_timeout: HEADER_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

/// Counters of the HTTP server's connections, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnCounters {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed on arrival: their address was at its cap.
    pub refused_per_address: AtomicU64,
    /// Connections closed on arrival: at the cap, every connection was in a request.
    pub refused_full: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// Connections closed for not sending a request's head in time.
    pub header_timeouts: AtomicU64,
    /// Connections closed for a write that made no progress in time.
    pub write_timeouts: AtomicU64,
    /// `accept` failures (out of files, say).
    pub accept_errors: AtomicU64,
}

/// One connection as the registry sees it.
#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    activity: Arc<Activity>,
    close: CancellationToken,
}

/// What a connection is doing, updated by its service and its I/O.
#[derive(Debug, Default)]
struct Activity {
    /// Requests being answered (a long poll counts until answered).
    requests: AtomicUsize,
    /// When it last read or wrote, ms on the registry's clock.
    last_ms: AtomicU64,
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    conns: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Registry {
    /// Closes an idle connection (no request in progress) of the address holding the most
    /// connections, the one of them idle longest; false if every connection is in a request.
    ///
    /// Chosen by address first: connections that reopen as fast as they are closed cycle the
    /// idlest one quickly, so by idle time alone a viewer's connection accepted a moment
    /// before its request is read could be taken. A crowd of connections from a few addresses
    /// then only closes its own (a CI run saw a `/metrics` request closed unanswered).
    fn evict_idlest(&mut self) -> bool {
        let per_ip = &self.per_ip;
        let idlest = self
            .conns
            .iter()
            .filter(|(_, e)| {
                e.activity.requests.load(Ordering::Relaxed) == 0 && !e.close.is_cancelled()
            })
            .min_by_key(|(_, e)| {
                (
                    std::cmp::Reverse(per_ip.get(&e.ip).copied().unwrap_or(0)),
                    e.activity.last_ms.load(Ordering::Relaxed),
                )
            })
            .map(|(id, _)| *id);
        match idlest.and_then(|id| self.conns.get(&id)) {
            Some(e) => {
                e.close.cancel();
                true
            }
            None => false,
        }
    }

    /// Connections not yet told to close.
    fn live(&self) -> usize {
        self.conns
            .values()
            .filter(|e| !e.close.is_cancelled())
            .count()
    }
}

struct Server {
    router: Router,
    limits: HttpLimits,
    counters: Arc<ConnCounters>,
    registry: Mutex<Registry>,
    origin: Instant,
    stop: CancellationToken,
    /// The connections' tasks.
    tasks: Tasks,
    /// Notified when a connection's task ends.
    closed: tokio::sync::Notify,
}

/// Forgets a connection when its task ends, or is dropped (cancelled at shutdown).
struct Forget<'a>(&'a Server, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

fn lock(m: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// Serves `router` on `listener` under `limits` until `stop` is cancelled; connections in a
/// request then finish it. Each connection is a task of `tasks`: the caller bounds how long it
/// waits for them ([`Tasks::wait`]), then cancels the rest ([`Tasks::shutdown`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    counters: Arc<ConnCounters>,
    stop: CancellationToken,
    tasks: Tasks,
) {
    let server = Arc::new(Server {
        router,
        limits,
        counters,
        registry: Mutex::default(),
        origin: Instant::now(),
        stop,
        tasks,
        closed: tokio::sync::Notify::new(),
    });
    let mut last_logged: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = server.stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                server
                    .counters
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed);
                let out_of_files = crate::fds::out_of_files(&e);
                let freed = out_of_files && lock(&server.registry).evict_idlest();
                if freed {
                    server.counters.evicted.fetch_add(1, Ordering::Relaxed);
                }
                if last_logged.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                    last_logged = Some(Instant::now());
                    let open = server.counters.open.load(Ordering::Relaxed);
                    if out_of_files {
                        let (limit, _) = crate::fds::FdBudget::measure();
                        tracing::warn!(
                            error = %e,
                            http_connections = open,
                            file_limit = limit,
                            closed_an_idle_one = freed,
                            "HTTP: cannot accept, out of files (counted in http_accept_errors; \
                             raise `ulimit -n`, or lower --http-max-conns)"
                        );
                    } else {
                        tracing::warn!(error = %e, http_connections = open, "HTTP: accept failed");
                    }
                }
                tokio::select! {
                    () = server.stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let key = swarmcast_swarm::wire::address_key(addr.ip());
        let Some((id, activity, close)) = server.admit(key) else {
            continue;
        };
        // A connection closed to make room holds its file until its task ends: wait for that
        // (briefly), so that connections never hold more than the cap and one.
        let deadline = Instant::now() + EVICTION_WAIT;
        while lock(&server.registry).conns.len() > server.limits.max_connections {
            let closed = server.closed.notified();
            if lock(&server.registry).conns.len() <= server.limits.max_connections {
                break;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                break;
            }
        }
        server.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let conn = server.clone();
        server.tasks.spawn("http-connection", async move {
            // Dropped when cancelled: the registry entry goes with it.
            let _forget = Forget(&conn, id);
            conn.connection(stream, addr, activity, close).await;
        });
    }
}

impl Server {
    /// Registers a connection from `ip`, or refuses it (None).
    fn admit(&self, ip: IpAddr) -> Option<(u64, Arc<Activity>, CancellationToken)> {
        let mut reg = lock(&self.registry);
        let from_ip = reg.per_ip.get(&ip).copied().unwrap_or(0);
        if self.limits.per_address != 0 && from_ip >= self.limits.per_address {
            self.counters
                .refused_per_address
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if reg.live() >= self.limits.max_connections {
            if reg.evict_idlest() {
                self.counters.evicted.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.refused_full.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        let id = reg.next;
        reg.next += 1;
        let activity = Arc::new(Activity::default());
        activity.last_ms.store(self.now_ms(), Ordering::Relaxed);
        let close = self.stop.child_token();
        reg.conns.insert(
            id,
            Entry {
                ip,
                activity: activity.clone(),
                close: close.clone(),
            },
        );
        *reg.per_ip.entry(ip).or_insert(0) += 1;
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        Some((id, activity, close))
    }

    fn forget(&self, id: u64) {
        let mut reg = lock(&self.registry);
        if let Some(e) = reg.conns.remove(&id) {
            if let Some(n) = reg.per_ip.get_mut(&e.ip) {
                *n -= 1;
                if *n == 0 {
                    reg.per_ip.remove(&e.ip);
                }
            }
            self.counters.open.fetch_sub(1, Ordering::Relaxed);
        }
        drop(reg);
        self.closed.notify_waiters();
    }

    async fn connection(
        self: &Arc<Self>,
        stream: TcpStream,
        addr: SocketAddr,
        activity: Arc<Activity>,
        close: CancellationToken,
    ) {
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
            server: self.clone(),
            stalled: None,
        });
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            let busy = Busy::new(activity.clone());
            let call = router.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let response = call.await;
                drop(busy);
                response
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .serve_connection(io, service);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            // The server stops: a connection in a request finishes it (bounded by the caller's
            // wait and the write timeout), an idle one closes now. Evicted (it was idle, or
            // half-way through a request's head): closed now.
            () = close.cancelled() => {
                if !self.stop.is_cancelled() {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            if e.is_timeout() {
                self.counters
                    .header_timeouts
                    .fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(%addr, error = %e, "HTTP connection ended");
        }
    }
}

/// A request in progress on a connection (not idle, not evicted).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's socket: notes activity, and fails a write stalled for the write timeout.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    server: Arc<Server>,
    /// Since a write last could not go on, the deadline it has.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Watched {
    fn touched(&self) {
        self.activity
            .last_ms
            .store(self.server.now_ms(), Ordering::Relaxed);
    }

    /// What a write gave: progress (the deadline disarmed, activity noted), or a stall.
    fn wrote(
        &mut self,
        r: Poll<std::io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        if r.is_pending() {
            return self.stall(cx);
        }
        self.stalled = None;
        self.touched();
        r
    }

    /// After a pending write: arms the deadline, or fails once it passed.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let timeout = self.server.limits.write_timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.server
                .counters
                .write_timeouts
                .fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no write progress in {timeout:?}"),
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touched();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
