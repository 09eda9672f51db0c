//! The publisher's outputs for Icecast relay trees (docs/relay-tree.md): the live TS pushed to
//! a source Icecast (`--icecast`), and the relay directory served at `/relays`
//! (`--relay-source`, `--fanout`).
//!
//! The push speaks the Icecast source protocol: `PUT <mount> HTTP/1.1` with Basic
//! authentication (`source:<password>`), `Content-Type: video/mp2t`, `Ice-Public: 0` and
//! `Expect: 100-continue`; Icecast 2.4.4 answers `HTTP/1.1 100 Continue` (a `200 OK` without
//! the `Expect`), or `401` for a wrong password, and then takes the raw bytes, no chunking.
//! The bytes are the segment bytes the cutter produces, as it produces them (the segmenter's
//! [`Tap`]), so the Icecast stream is the concatenation of the segments. The tap never waits:
//! it puts each chunk in a bounded queue ([`QUEUE_CHUNKS`]) and drops it, counted, when the
//! queue is full (Icecast slow or not connected); while disconnected the push retries with
//! backoff ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]) and, once connected again, sends from
//! the live edge (what was queued meanwhile is dropped and counted; at the first connection,
//! what was queued is the stream's start, and is sent).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use swarmcast_segmenter::source::Tap;
use swarmcast_tasks::Tasks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Chunks (each one read of the feed, at most 64 KiB) the push queues at most.
pub const QUEUE_CHUNKS: usize = 64;
/// The first wait before reconnecting.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest wait before reconnecting.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Connecting and the answer to the request, each at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where to push: `http://source:<password>@host:port/mount`.
#[derive(Clone, PartialEq, Eq)]
pub struct IcecastTarget {
    /// `host:port` to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The mount (`/live.ts`).
    pub mount: String,
    /// The source user (`source`).
    pub user: String,
    /// The source password.
    pub password: String,
}

impl std::fmt::Debug for IcecastTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for IcecastTarget {
    /// The URL without the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.mount)
    }
}

impl IcecastTarget {
    /// Parses `--icecast`; the error names what is missing.
    pub fn parse(s: &str) -> Result<Self, String> {
        let u = Url::parse(s).map_err(|e| format!("--icecast: not a URL: {e}"))?;
        if u.scheme() != "http" {
            return Err(format!(
                "--icecast: the Icecast source protocol runs over http, not {}",
                u.scheme()
            ));
        }
        let host = u
            .host_str()
            .ok_or("--icecast: no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let password = percent_encoding::percent_decode_str(u.password().unwrap_or(""))
            .decode_utf8_lossy()
            .into_owned();
        if password.is_empty() {
            return Err("--icecast: no password (http://source:<password>@host:port/mount)".into());
        }
        let mount = u.path().to_owned();
        if mount.len() < 2 {
            return Err("--icecast: no mount (http://source:<password>@host:port/mount)".into());
        }
        let user = match u.username() {
            "" => "source".to_owned(),
            user => user.to_owned(),
        };
        Ok(Self {
            port: u.port_or_known_default().unwrap_or(80),
            host,
            mount,
            user,
            password,
        })
    }

    /// The request that starts the push.
    fn request(&self) -> String {
        let auth =
            data_encoding::BASE64.encode(format!("{}:{}", self.user, self.password).as_bytes());
        let host = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        format!(
            "PUT {} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\nUser-Agent: swarmcast\r\n\
             Content-Type: video/mp2t\r\nIce-Public: 0\r\nIce-Name: swarmcast\r\nExpect: 100-continue\r\n\r\n",
            self.mount
        )
    }
}

/// Why a push could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// Connecting failed.
    #[error("cannot connect to Icecast at {target}: {source}")]
    Connect {
        /// Where.
        target: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Icecast refused the source.
    #[error("Icecast at {target} refused the source: {status}{hint}")]
    Refused {
        /// Where.
        target: String,
        /// Its status line.
        status: String,
        /// What it likely means.
        hint: &'static str,
    },
}

/// Connects and starts a source on `target`: the stream to write the bytes to.
pub async fn connect(target: &IcecastTarget) -> Result<TcpStream, PushError> {
    let at = target.to_string();
    let io = |source| PushError::Connect {
        target: at.clone(),
        source,
    };
    let timeout =
        |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"));
    let mut s = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| io(timeout("connecting")))?
    .map_err(io)?;
    let _ = s.set_nodelay(true);
    s.write_all(target.request().as_bytes()).await.map_err(io)?;
    let head = tokio::time::timeout(CONNECT_TIMEOUT, read_head(&mut s))
        .await
        .map_err(|_| io(timeout("the answer")))?
        .map_err(io)?;
    let status = head.lines().next().unwrap_or("").trim().to_owned();
    let code = status.split_whitespace().nth(1).unwrap_or("");
    match code {
        "100" | "200" => Ok(s),
        _ => Err(PushError::Refused {
            target: at,
            hint: match code {
                "401" => " (wrong source user or password)",
                "403" => " (the mount is taken by another source, or not allowed)",
                "" => " (not an HTTP answer: is it an Icecast server?)",
                _ => "",
            },
            status: if status.is_empty() {
                "no answer".into()
            } else {
                status
            },
        }),
    }
}

/// Reads an HTTP response head (at most 8 KiB).
async fn read_head(s: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if s.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// What the push did.
#[derive(Debug, Default)]
pub struct PushCounters {
    /// Bytes written to Icecast.
    pub sent: AtomicU64,
    /// Bytes dropped: the queue was full, or queued while disconnected.
    pub dropped: AtomicU64,
    /// Connections made.
    pub connects: AtomicU64,
    /// Connections refused or lost.
    pub failures: AtomicU64,
}

/// A running push: its tap for the segmenter, its counters, and its end.
#[derive(Debug)]
pub struct Push {
    /// Give it to the segmenter ([`SegmentConfig::tap`](swarmcast_segmenter::source::SegmentConfig::tap)).
    pub tap: Tap,
    /// What it did.
    pub counters: Arc<PushCounters>,
    /// Cancel once the end of the stream is published: the push then closes its source (after
    /// sending what is queued), which ends the mount at Icecast.
    pub end: CancellationToken,
}

/// Starts pushing to `target` on `tasks`.
pub fn start(target: IcecastTarget, tasks: &Tasks) -> Push {
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
    let counters = Arc::new(PushCounters::default());
    let end = CancellationToken::new();
    let c = counters.clone();
    let tap = Tap(Arc::new(move |data: &[u8]| {
        if tx.try_send(Bytes::copy_from_slice(data)).is_err() {
            c.dropped.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }));
    tasks.spawn(
        "icecast-push",
        push(target, rx, counters.clone(), end.clone()),
    );
    Push { tap, counters, end }
}

async fn push(
    target: IcecastTarget,
    mut rx: mpsc::Receiver<Bytes>,
    counters: Arc<PushCounters>,
    end: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    let mut warned = false;
    'connect: loop {
        let mut s = match connect(&target).await {
            Ok(s) => s,
            Err(e) => {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut warned, true) {
                    tracing::error!(error = %e, "icecast push: retrying with backoff (publishing goes on)");
                } else {
                    tracing::debug!(error = %e, "icecast push: still failing");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = end.cancelled() => {
                        // The stream ended while Icecast was away: what is queued is lost.
                        while let Ok(old) = rx.try_recv() {
                            counters.dropped.fetch_add(old.len() as u64, Ordering::Relaxed);
                        }
                        return;
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        // After a break, from the live edge: what queued while disconnected is stale. (At the
        // first connection, what queued is the stream's start, at most the queue: it is sent.)
        if counters.connects.load(Ordering::Relaxed) > 0 {
            while let Ok(old) = rx.try_recv() {
                counters
                    .dropped
                    .fetch_add(old.len() as u64, Ordering::Relaxed);
            }
        }
        counters.connects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%target, "icecast push: connected");
        (backoff, warned) = (BACKOFF_MIN, false);
        loop {
            // The tap keeps the sender for the publisher's life, so the queue never closes: the
            // end of the stream (published after the feed's last byte was queued) is the signal.
            // Then what is queued is sent, and the source closed, so that relays see their
            // stream end only once the directory says so.
            let chunk = tokio::select! {
                biased;
                c = rx.recv() => c,
                () = end.cancelled() => {
                    let mut rest = Vec::new();
                    while let Ok(c) = rx.try_recv() {
                        rest.extend_from_slice(&c);
                    }
                    match s.write_all(&rest).await {
                        Ok(()) => {
                            counters.sent.fetch_add(rest.len() as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            counters.failures.fetch_add(1, Ordering::Relaxed);
                            counters.dropped.fetch_add(rest.len() as u64, Ordering::Relaxed);
                            tracing::error!(%target, error = %e, "icecast push: connection lost at the end");
                        }
                    }
                    let _ = s.shutdown().await;
                    return;
                }
            };
            let Some(chunk) = chunk else {
                end.cancelled().await;
                let _ = s.shutdown().await;
                return;
            };
            if let Err(e) = s.write_all(&chunk).await {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                counters
                    .dropped
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                tracing::error!(%target, error = %e, "icecast push: connection lost, reconnecting");
                continue 'connect;
            }
            counters
                .sent
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    }
}

/// The publisher's relay-tree outputs: the push and the directory, each if configured.
#[derive(Debug, Default)]
pub(crate) struct RelayOutputs {
    /// The Icecast push (`--icecast`).
    pub(crate) push: Option<Push>,
    /// The directory served at `/relays` (`--relay-source`).
    pub(crate) directory: Option<swarmcast_relay::directory::Served>,
    /// The substreams and their directory (`--stripe-source`).
    pub(crate) stripes: Option<Stripes>,
}

/// The striped output: the substreams' buffers, the directory, and the thread that stripes.
///
/// Striping runs on its own thread, in publishing order, off the async pipeline: a minute-long
/// segment at 1 Mbit/s takes 21 ms to encode, 54 ms for the first segment of its size (the
/// decodability check; docs/striped-fec.md, "Costs").
pub(crate) struct Stripes {
    /// What `/stripe/{s}` serves.
    pub(crate) buffers: Arc<swarmcast_relay::stripe::server::Buffers>,
    pub(crate) directory: swarmcast_relay::stripe::directory::Served,
    jobs: std::sync::mpsc::Sender<StripeJob>,
}

enum StripeJob {
    /// Read the published segment file and stripe it.
    Segment {
        meta: swarmcast_stripe::code::SegmentMeta,
        path: std::path::PathBuf,
    },
    /// The stream ended: after what is queued, the substreams end.
    End,
}

impl Stripes {
    fn start(
        outlet: swarmcast_relay::stripe::server::Outlet,
        directory: swarmcast_relay::stripe::directory::Served,
    ) -> Result<Self, crate::PublishError> {
        let buffers = outlet.buffers.clone();
        let (jobs, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("stripe".into())
            .spawn(move || {
                // Ends when the sender is dropped.
                for job in rx {
                    match job {
                        StripeJob::Segment { meta, path } => match std::fs::read(&path) {
                            Ok(data) => {
                                if let Err(e) = outlet.publish(meta, &data) {
                                    tracing::warn!(segment = meta.seq, error = %e, "cannot stripe the segment");
                                }
                            }
                            Err(e) => tracing::warn!(
                                path = %path.display(),
                                error = %e,
                                "cannot read the segment to stripe it"
                            ),
                        },
                        StripeJob::End => outlet.buffers.end(),
                    }
                }
            })
            .map_err(|e| {
                crate::PublishError::Config(format!("cannot start the striping thread: {e}"))
            })?;
        Ok(Self {
            buffers,
            directory,
            jobs,
        })
    }

    /// Queues a published segment (its file at `path`) for striping.
    pub(crate) fn stripe(
        &self,
        meta: swarmcast_stripe::code::SegmentMeta,
        path: std::path::PathBuf,
    ) {
        // The thread only stops when this is dropped.
        let _ = self.jobs.send(StripeJob::Segment { meta, path });
    }
}

impl std::fmt::Debug for Stripes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripes").finish_non_exhaustive()
    }
}

impl RelayOutputs {
    /// Starts what `config` asks for.
    pub(crate) fn start(
        config: &crate::PublishConfig,
        tasks: &Tasks,
        secret: &swarmcast_core::StreamSecret,
    ) -> Result<Self, crate::PublishError> {
        let stripes = match &config.stripes {
            None => None,
            Some(s) => {
                let params = swarmcast_stripe::StripeParams {
                    substreams: s.substreams,
                    ..swarmcast_stripe::StripeParams::default()
                };
                let outlet =
                    swarmcast_relay::stripe::server::Outlet::new(secret.clone(), params)
                        .map_err(|e| crate::PublishError::Config(format!("--substreams: {e}")))?;
                Some(Stripes::start(
                    outlet,
                    swarmcast_relay::stripe::directory::Served::new(
                        s.substreams,
                        s.fanout,
                        s.source_fanout,
                        s.source_url.clone(),
                    ),
                )?)
            }
        };
        Ok(Self {
            stripes,
            push: config.icecast.clone().map(|t| start(t, tasks)),
            directory: config.relay_source.clone().map(|url| {
                swarmcast_relay::directory::Served::new(swarmcast_relay::directory::Directory::new(
                    url,
                    config.fanout,
                ))
            }),
        })
    }

    /// Logs what the push did (at the end of the run).
    pub(crate) fn report(&self) {
        if let Some(p) = &self.push {
            let c = &p.counters;
            let (sent, dropped) = (
                c.sent.load(Ordering::Relaxed),
                c.dropped.load(Ordering::Relaxed),
            );
            let (connects, failures) = (
                c.connects.load(Ordering::Relaxed),
                c.failures.load(Ordering::Relaxed),
            );
            if dropped > 0 || failures > 0 {
                tracing::warn!(
                    sent,
                    dropped,
                    connects,
                    failures,
                    "icecast push: bytes dropped"
                );
            } else {
                tracing::info!(sent, connects, "icecast push: every byte sent");
            }
        }
    }

    /// The end of the stream is published: listings say `ended`, then the push closes its
    /// source once its queue is sent.
    pub(crate) fn end(&self) {
        if let Some(d) = &self.directory {
            d.end();
        }
        if let Some(s) = &self.stripes {
            s.directory.end();
            let _ = s.jobs.send(StripeJob::End);
        }
        if let Some(p) = &self.push {
            p.end.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_url_gives_mount_and_credentials() {
        let t = IcecastTarget::parse("http://source:p%40ss@10.0.0.1:8000/live.ts").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.mount.as_str(),
                t.user.as_str(),
                t.password.as_str()
            ),
            ("10.0.0.1", 8000, "/live.ts", "source", "p@ss")
        );
        assert_eq!(t.to_string(), "http://10.0.0.1:8000/live.ts");
        assert!(
            !format!("{t:?}").contains("p@ss"),
            "the password is not logged"
        );
        let r = t.request();
        assert!(r.starts_with("PUT /live.ts HTTP/1.1\r\n"));
        // base64("source:p@ss")
        assert!(
            r.contains("Authorization: Basic c291cmNlOnBAc3M=\r\n"),
            "{r}"
        );
        assert!(r.contains("Content-Type: video/mp2t\r\n") && r.contains("Ice-Public: 0\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        for (bad, says) in [
            ("http://h:1/live.ts", "no password"),
            ("http://source:pw@h:1/", "no mount"),
            ("https://source:pw@h:1/m", "over http"),
            ("//h:1/m", "not a URL"),
            ("ftp://source:pw@h:1/m", "over http"),
        ] {
            let e = IcecastTarget::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// Accepts one source: reads the request head, answers `100 Continue`, then reads `want`
    /// body bytes (or to the end) and closes. Returns the head and the body.
    async fn accept_source(listener: &tokio::net::TcpListener, want: usize) -> (String, Vec<u8>) {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await.unwrap();
        s.write_all(b"HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let mut body = Vec::new();
        let mut buf = [0u8; 4096];
        while body.len() < want {
            match s.read(&mut buf).await.unwrap() {
                0 => break,
                n => body.extend_from_slice(&buf[..n]),
            }
        }
        (head, body)
    }

    #[tokio::test]
    async fn the_push_streams_the_tapped_bytes_reconnects_and_ends_after_the_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let t =
            IcecastTarget::parse(&format!("http://source:pw@127.0.0.1:{port}/live.ts")).unwrap();
        let tasks = Tasks::new("test");
        let push = start(t, &tasks);
        let feed = |i: u8| (push.tap.0)(&[i; 1000]);
        // Bytes tapped before the first connection are the stream's start: sent.
        feed(0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let server = tasks.spawn("fake-icecast", async move {
            let first = accept_source(&listener, 3000).await;
            // The first connection is closed after 3000 bytes: the push reconnects.
            let second = accept_source(&listener, usize::MAX).await;
            (first, second)
        });
        // Feed until the second connection has taken bytes, then end the stream.
        let mut i = 1u8;
        while push.counters.connects.load(Ordering::Relaxed) < 2 {
            feed(i);
            i = i.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..3 {
            feed(200);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let counters = push.counters.clone();
        push.end.cancel();
        drop(push);
        let ((head1, body1), (_, body2)) = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the push ended its source")
            .unwrap()
            .unwrap();
        assert!(head1.starts_with("PUT /live.ts HTTP/1.1\r\n"), "{head1}");
        assert!(body1.len() >= 3000);
        // Each connection carries whole tapped chunks, in order, the first from the start.
        assert_eq!(body1[..1000], [0; 1000]);
        // After the break, the second starts from the live edge: what queued meanwhile was
        // dropped (counted below), so it never repeats the first's bytes.
        assert!(body2.iter().all(|&b| b != 0));
        assert!(body2.ends_with(&[200; 3000]));
        for chunk in body1.chunks(1000).chain(body2.chunks(1000)) {
            assert!(chunk.iter().all(|&b| b == chunk[0]));
        }
        let sent = counters.sent.load(Ordering::Relaxed);
        assert!(sent >= (body1.len() + body2.len()) as u64 - 1000);
        assert!(counters.dropped.load(Ordering::Relaxed) > 0);
        assert_eq!(counters.connects.load(Ordering::Relaxed), 2);
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn a_refusal_is_named_with_its_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = Tasks::new("test");
        tasks.spawn("fake-icecast", async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.0 401 Authentication Required\r\nServer: Icecast 2.4.4\r\n\r\n")
                .await;
        });
        let t =
            IcecastTarget::parse(&format!("http://source:bad@127.0.0.1:{port}/live.ts")).unwrap();
        let e = connect(&t).await.unwrap_err().to_string();
        assert!(
            e.contains("401 Authentication Required") && e.contains("wrong source"),
            "{e}"
        );
        tasks.shutdown().await;
    }
}
