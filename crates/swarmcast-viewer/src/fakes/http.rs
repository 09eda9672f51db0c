//! The fake publisher's HTTP side: manifests by blocking reload, segments as scripted.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarmcast_core::InfoDict;
use swarmcast_swarm::ratelimit::ByteLimiter;
use tokio::time::Instant;
use url::Url;

use super::{lock, ms_since, number, Stream, PIECE};
use crate::fallback::{FetchError, Milestone};
use crate::io::{ManifestFetch, SegmentFetch};

/// How long a blocking reload with nothing newer is held (as by our publisher: 10 s).
const HOLD: Duration = Duration::from_secs(10);

/// One answer of the fake publisher to a segment request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The segment, this many ms after the request.
    Ok(u64),
    /// This error status, this many ms after the request.
    Status(u16, u64),
    /// No answer, until the request is dropped.
    Hang,
}

/// What the fake publisher does with the next manifest request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ManifestAnswer {
    /// Fails at once with this error.
    Fail(&'static str),
    /// Answers as a publisher does.
    Serve,
}

struct HttpState {
    origin: Instant,
    data: HashMap<u64, Vec<u8>>,
    /// Documents in publishing order: (published at, ms; sequence number; bytes).
    manifests: Vec<(u64, u64, Vec<u8>)>,
    /// How the next manifest requests are answered (then: served).
    script: VecDeque<ManifestAnswer>,
    /// A blocking reload with nothing newer is held this long.
    hold: Duration,
    answers: HashMap<u64, VecDeque<Answer>>,
    manifest_requests: Vec<(u64, String)>,
    segment_requests: Vec<(u64, u64)>,
    dropped: Vec<(u64, u64)>,
}

/// The publisher's HTTP side: manifests by blocking reload, segments as scripted.
#[derive(Clone)]
pub(crate) struct FakeHttp(Arc<Mutex<HttpState>>);

impl FakeHttp {
    /// A publisher of `stream`; times are ms after `origin`. Segments are served at once
    /// unless [`answer`](Self::answer) says otherwise.
    pub(crate) fn new(stream: &Stream, origin: Instant) -> Self {
        let data = (0..stream.len())
            .map(|n| (n, stream.data(n).to_vec()))
            .collect();
        Self(Arc::new(Mutex::new(HttpState {
            origin,
            data,
            manifests: Vec::new(),
            script: VecDeque::new(),
            hold: HOLD,
            answers: HashMap::new(),
            manifest_requests: Vec::new(),
            segment_requests: Vec::new(),
            dropped: Vec::new(),
        })))
    }

    /// Publishes document `doc` (sequence number `seq`) at `at_ms`.
    pub(crate) fn publish(&self, at_ms: u64, seq: u64, doc: Vec<u8>) {
        lock(&self.0).manifests.push((at_ms, seq, doc));
    }

    /// How the next manifest requests are answered, in order.
    pub(crate) fn script(&self, answers: Vec<ManifestAnswer>) {
        lock(&self.0).script.extend(answers);
    }

    /// A server that does not hold blocking reloads: it answers them at once.
    pub(crate) fn no_hold(&self) {
        lock(&self.0).hold = Duration::ZERO;
    }

    /// How the next requests for segment `n` are answered, in order.
    pub(crate) fn answer(&self, n: u64, answers: &[Answer]) {
        lock(&self.0)
            .answers
            .entry(n)
            .or_default()
            .extend(answers.iter().copied());
    }

    /// Manifest requests: (ms, the URL's query).
    pub(crate) fn manifest_requests(&self) -> Vec<(u64, String)> {
        lock(&self.0).manifest_requests.clone()
    }

    /// Segment requests: (ms, number).
    pub(crate) fn segment_requests(&self) -> Vec<(u64, u64)> {
        lock(&self.0).segment_requests.clone()
    }

    /// Segment requests dropped unanswered: (ms, number).
    pub(crate) fn dropped(&self) -> Vec<(u64, u64)> {
        lock(&self.0).dropped.clone()
    }

    /// The newest document published by now and newer than `after`, if any.
    fn newest(&self, after: Option<u64>) -> Option<Vec<u8>> {
        let s = lock(&self.0);
        let now = ms_since(s.origin);
        s.manifests
            .iter()
            .rev()
            .find(|(at, seq, _)| *at <= now && after.is_none_or(|a| *seq > a))
            .map(|(_, _, doc)| doc.clone())
    }
}

impl ManifestFetch for FakeHttp {
    async fn manifest(&self, url: &Url, timeout: Duration) -> Result<Vec<u8>, String> {
        let start = Instant::now();
        let after: Option<u64> = url
            .query_pairs()
            .find(|(k, _)| k == "after")
            .and_then(|(_, v)| v.parse().ok());
        let (origin, hold, next) = {
            let mut s = lock(&self.0);
            let at = ms_since(s.origin);
            s.manifest_requests
                .push((at, url.query().unwrap_or("").to_owned()));
            if let Some(ManifestAnswer::Fail(e)) = s.script.pop_front() {
                return Err(e.into());
            }
            // When the first document newer than `after` is published.
            let next = s
                .manifests
                .iter()
                .filter(|(_, seq, _)| after.is_none_or(|a| *seq > a))
                .map(|(at, _, _)| *at)
                .min();
            (s.origin, s.hold, next)
        };
        if after.is_some() {
            // A blocking reload: held until something newer is published, at most `hold`.
            let held_until = next.map_or(start + hold, |at| {
                (origin + Duration::from_millis(at)).clamp(start, start + hold)
            });
            if held_until > start + timeout {
                tokio::time::sleep(timeout).await;
                return Err("timed out".into());
            }
            tokio::time::sleep_until(held_until).await;
        }
        self.newest(None)
            .ok_or_else(|| "404 Not Found: no manifest yet".into())
    }
}

/// Logs a segment request dropped before it was answered.
struct DropLog {
    http: FakeHttp,
    n: u64,
    answered: bool,
}

impl Drop for DropLog {
    fn drop(&mut self) {
        if !self.answered {
            let mut s = lock(&self.http.0);
            let at = ms_since(s.origin);
            s.dropped.push((at, self.n));
        }
    }
}

impl SegmentFetch for FakeHttp {
    async fn segment(
        &self,
        url: &Url,
        info: &InfoDict,
        dest: &Path,
        _limiter: Option<&ByteLimiter>,
        progress: &(dyn Fn(Milestone) + Send + Sync),
    ) -> Result<u64, FetchError> {
        let n = number(url.path());
        let (answer, data) = {
            let mut s = lock(&self.0);
            let at = ms_since(s.origin);
            s.segment_requests.push((at, n));
            let answer = s
                .answers
                .get_mut(&n)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Answer::Ok(0));
            (answer, s.data[&n].clone())
        };
        let mut log = DropLog {
            http: self.clone(),
            n,
            answered: false,
        };
        let result = match answer {
            Answer::Hang => std::future::pending().await,
            Answer::Status(status, after_ms) => {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                Err(FetchError::Status {
                    url: url.clone(),
                    status,
                    body: "planned".into(),
                })
            }
            Answer::Ok(after_ms) => {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                progress(Milestone::Response);
                assert!(info.verify_piece(0, &data[..PIECE as usize]));
                progress(Milestone::FirstPiece);
                progress(Milestone::Received(data.len() as u64));
                tokio::fs::write(dest, &data)
                    .await
                    .map_err(|source| FetchError::File {
                        path: dest.to_owned(),
                        source,
                    })
                    .map(|()| data.len() as u64)
            }
        };
        log.answered = true;
        result
    }
}
