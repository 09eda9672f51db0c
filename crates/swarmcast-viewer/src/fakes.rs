//! Fakes of the viewer's edges ([`crate::io`]) for tests on a paused clock, and the stream they
//! serve: a swarm whose segments complete at planned virtual times ([`FakeSwarm`]), the
//! publisher's HTTP side ([`FakeHttp`]: blocking reload of signed manifests published at planned
//! times, scripted segment answers, failures on demand) and a sink that records what it is given
//! ([`FakeSink`]). No sockets: under a paused clock a real socket's timeouts fire early.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use swarmcast_core::manifest::SegmentEntry;
use swarmcast_core::{Manifest, SegmentTorrent, StreamLink, StreamSecret};
use tokio::time::Instant;
use url::Url;

use crate::io::PlaybackSink;
use crate::viewer::wall_ms;

mod http;
mod swarm;

pub(crate) use http::{Answer, FakeHttp, ManifestAnswer};
pub(crate) use swarm::{Call, FakeSwarm, Plan};

/// Segment duration, ms.
pub(crate) const D: u64 = 2_000;
/// Segment size: two whole pieces of 16 KiB and a short one.
pub(crate) const SIZE: u64 = 40_000;
pub(crate) const PIECE: u64 = 16_384;
/// The publisher's peer address, as the manifests list it.
pub(crate) const PUBLISHER: &str = "127.0.0.1:7000";
/// Another viewer.
pub(crate) const OTHER_PEER: &str = "10.0.0.2:6881";
/// A peer that sent a piece failing its hash check ([`FakeSwarm::bad_peer`]).
pub(crate) const BAD_PEER: &str = "10.0.0.66:6881";
/// Bytes a complete torrent of the fake swarm has uploaded to others.
pub(crate) const UPLOADED: u64 = 7_000;
/// Bytes a segment the swarm never completes got from the publisher.
pub(crate) const PARTIAL: u64 = 1_000;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Virtual milliseconds since `origin`.
pub(crate) fn ms_since(origin: Instant) -> u64 {
    origin.elapsed().as_millis() as u64
}

/// The segment number of `00000001.ts` (a name, or a URL's last path segment).
pub(crate) fn number(name: &str) -> u64 {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.get(..8)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a segment name: {name}"))
}

/// A stream: each segment's bytes and signed entry, and its manifests.
pub(crate) struct Stream {
    secret: StreamSecret,
    segments: Vec<(Vec<u8>, SegmentEntry)>,
}

impl Stream {
    /// `count` segments of [`SIZE`] bytes, each with bytes of its own.
    pub(crate) fn new(count: u64) -> Self {
        let published_ms = wall_ms();
        let segments = (0..count)
            .map(|n| {
                let data: Vec<u8> = (0..SIZE)
                    .map(|i| (i.wrapping_mul(31) ^ n.wrapping_mul(101)) as u8)
                    .collect();
                let name = format!("{n:08}.ts");
                let t = SegmentTorrent::build(&data[..], SIZE, &name, Some(PIECE), vec![])
                    .expect("a valid segment");
                let entry = SegmentEntry {
                    number: n,
                    media_start: n * D * 90,
                    duration: D * 90,
                    size: SIZE,
                    discontinuity: false,
                    published_ms,
                    info_hash: t.info_hash(),
                    info: t.info_bytes().to_vec(),
                };
                (data, entry)
            })
            .collect();
        Self {
            secret: StreamSecret::from_seed(&[9; 32]),
            segments,
        }
    }

    /// How many segments.
    pub(crate) fn len(&self) -> u64 {
        self.segments.len() as u64
    }

    /// Segment `n`'s bytes.
    pub(crate) fn data(&self, n: u64) -> &[u8] {
        &self.segments[n as usize].0
    }

    /// The stream's link: one manifest source at the fake publisher.
    pub(crate) fn link(&self) -> StreamLink {
        let source = Url::parse("http://publisher.test/manifest").expect("a valid URL");
        StreamLink::new(self.secret.public(), vec![source]).expect("a valid link")
    }

    /// Manifest `seq` listing `numbers`, signed: the document's bytes.
    pub(crate) fn manifest(&self, seq: u64, numbers: RangeInclusive<u64>, end: bool) -> Vec<u8> {
        self.signed_by(&self.secret, seq, numbers, end)
    }

    /// The same, but of another stream (another key): a forgery, as far as the link can tell.
    pub(crate) fn forged(&self, seq: u64, numbers: RangeInclusive<u64>, end: bool) -> Vec<u8> {
        self.signed_by(&StreamSecret::from_seed(&[8; 32]), seq, numbers, end)
    }

    fn signed_by(
        &self,
        secret: &StreamSecret,
        seq: u64,
        numbers: RangeInclusive<u64>,
        end: bool,
    ) -> Vec<u8> {
        let m = Manifest {
            key: secret.public(),
            seq,
            issued_ms: wall_ms(),
            target_duration: D * 90,
            peers: vec![PUBLISHER.into()],
            trackers: vec![],
            end_of_stream: end,
            segments: numbers
                .map(|n| self.segments[n as usize].1.clone())
                .collect(),
        };
        m.sign(secret).expect("a valid manifest").bytes
    }
}

#[derive(Default)]
struct SinkState {
    writes: Vec<(u64, Bytes)>,
    closed: bool,
    /// Writes after this many fail (a closed pipe, unless `error` says otherwise).
    broken_after: Option<usize>,
    /// How they fail [default: a closed pipe].
    error: Option<std::io::ErrorKind>,
    /// Writes after this many, and closing, never return (a pipe whose reader stopped reading).
    stuck_after: Option<usize>,
}

/// A sink that records each write with its virtual time.
#[derive(Clone)]
pub(crate) struct FakeSink {
    origin: Instant,
    state: Arc<Mutex<SinkState>>,
}

impl FakeSink {
    /// A sink whose times are ms after `origin`.
    pub(crate) fn new(origin: Instant) -> Self {
        Self {
            origin,
            state: Arc::default(),
        }
    }

    /// Writes after the first `n` fail, as on a closed pipe.
    pub(crate) fn break_after(&self, n: usize) {
        lock(&self.state).broken_after = Some(n);
    }

    /// Writes after the first `n` fail with `kind` (a full disk: `StorageFull`).
    pub(crate) fn fail_after(&self, n: usize, kind: std::io::ErrorKind) {
        let mut s = lock(&self.state);
        s.broken_after = Some(n);
        s.error = Some(kind);
    }

    /// Writes after the first `n`, and closing, never return, as on a full pipe nobody reads.
    pub(crate) fn stick_after(&self, n: usize) {
        lock(&self.state).stuck_after = Some(n);
    }

    /// What was written: (ms, bytes).
    pub(crate) fn writes(&self) -> Vec<(u64, Bytes)> {
        lock(&self.state).writes.clone()
    }

    /// Whether it was closed.
    pub(crate) fn closed(&self) -> bool {
        lock(&self.state).closed
    }
}

impl PlaybackSink for FakeSink {
    async fn write(&mut self, data: Bytes) -> std::io::Result<()> {
        let stuck = {
            let s = lock(&self.state);
            s.stuck_after == Some(s.writes.len())
        };
        if stuck {
            std::future::pending::<()>().await;
        }
        let mut s = lock(&self.state);
        if s.broken_after == Some(s.writes.len()) {
            return Err(s.error.unwrap_or(std::io::ErrorKind::BrokenPipe).into());
        }
        s.writes.push((ms_since(self.origin), data));
        Ok(())
    }

    async fn close(&mut self) -> std::io::Result<()> {
        let stuck = lock(&self.state).stuck_after.is_some();
        if stuck {
            std::future::pending::<()>().await;
        }
        lock(&self.state).closed = true;
        Ok(())
    }
}
