//! Substreams over HTTP: `GET /stripe/{s}[?from=<seq>]`, chunked, frame after frame, from the
//! substream's back buffer. The body ends cleanly at the end of the stream; it is aborted (no
//! last chunk) if the reader fell behind the buffer, so that the child resumes elsewhere at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use swarmcast_core::StreamSecret;
use swarmcast_stripe::code::SegmentMeta;
use swarmcast_stripe::{Cursor, EncodeError, Encoder, FrameBuffer, Read, StripeParams};
use tokio::sync::watch;

/// Segments a substream's back buffer holds (publisher and nodes).
pub const KEEP_SEGMENTS: usize = 8;

/// The substream buffers a host serves, and what it served.
pub struct Buffers {
    bufs: Vec<Mutex<FrameBuffer>>,
    serves: Vec<bool>,
    changed: watch::Sender<u64>,
    /// Frame bytes sent to children.
    pub sent: AtomicU64,
    children: AtomicUsize,
    max_children: usize,
}

impl Buffers {
    /// Buffers for `substreams` substreams, of which those in `serves` are served (the
    /// publisher: all; a node: its home); `max_children` bodies at once at most (0: no limit).
    pub fn new(substreams: u8, serves: &[u8], keep: usize, max_children: usize) -> Arc<Self> {
        Arc::new(Self {
            bufs: (0..substreams)
                .map(|_| Mutex::new(FrameBuffer::new(keep)))
                .collect(),
            serves: (0..substreams).map(|s| serves.contains(&s)).collect(),
            changed: watch::channel(0).0,
            sent: AtomicU64::new(0),
            children: AtomicUsize::new(0),
            max_children,
        })
    }

    /// Substream `s`'s buffer.
    pub fn buffer(&self, s: u8) -> MutexGuard<'_, FrameBuffer> {
        self.bufs[usize::from(s)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a frame to substream `s` and wakes its readers.
    pub fn push(&self, s: u8, seq: u64, frame: Bytes) {
        self.buffer(s).push(seq, frame);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Bodies being served now.
    pub fn children(&self) -> usize {
        self.children.load(Ordering::SeqCst)
    }

    /// The stream ended: every body ends once read.
    pub fn end(&self) {
        for s in 0..self.bufs.len() {
            self.buffer(s as u8).end();
        }
        self.changed.send_modify(|v| *v += 1);
    }
}

/// The publisher's side: stripes each published segment into the substreams' buffers.
pub struct Outlet {
    encoder: Mutex<Encoder>,
    /// What it serves.
    pub buffers: Arc<Buffers>,
}

impl Outlet {
    /// An outlet striping with `params`, signing with the stream's secret.
    pub fn new(secret: StreamSecret, params: StripeParams) -> Result<Self, EncodeError> {
        let all: Vec<u8> = (0..params.substreams).collect();
        Ok(Self {
            encoder: Mutex::new(Encoder::new(secret, params)?),
            buffers: Buffers::new(params.substreams, &all, KEEP_SEGMENTS, 0),
        })
    }

    /// Stripes one published segment.
    pub fn publish(&self, meta: SegmentMeta, data: &[u8]) -> Result<(), EncodeError> {
        let striped = self
            .encoder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .encode(meta, data)?;
        for (s, header) in striped.headers.iter().enumerate() {
            let s = s as u8;
            let mut b = self.buffers.buffer(s);
            b.push(meta.seq, Bytes::from(header.to_frame()));
            for symbol in &striped.symbols[usize::from(s)] {
                b.push(meta.seq, Bytes::from(symbol.to_frame()));
            }
        }
        self.buffers.changed.send_modify(|v| *v += 1);
        Ok(())
    }
}

/// `GET /stripe/{s}`.
pub fn router(buffers: Arc<Buffers>) -> Router {
    Router::new()
        .route("/stripe/{s}", get(stream))
        .with_state(buffers)
}

#[derive(Deserialize)]
struct From {
    from: Option<u64>,
}

async fn stream(
    State(b): State<Arc<Buffers>>,
    Path(s): Path<u8>,
    Query(q): Query<From>,
) -> Response {
    if !b.serves.get(usize::from(s)).copied().unwrap_or(false) {
        return (
            StatusCode::NOT_FOUND,
            format!("substream {s} is not served here\n"),
        )
            .into_response();
    }
    let taken = b
        .children
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (b.max_children == 0 || n < b.max_children).then_some(n + 1)
        });
    if taken.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            format!("full: {} children already\n", b.max_children),
        )
            .into_response();
    }
    let reader = Reader {
        rx: b.changed.subscribe(),
        b,
        s,
        from: q.from,
        at: None,
    };
    let body = futures_util::stream::unfold(Some(reader), |r| async move {
        let mut r = r?;
        match r.next().await? {
            Ok(data) => Some((Ok(data), Some(r))),
            Err(e) => Some((Err(e), None)),
        }
    });
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

struct Reader {
    b: Arc<Buffers>,
    rx: watch::Receiver<u64>,
    s: u8,
    from: Option<u64>,
    at: Option<Cursor>,
}

impl Reader {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            self.rx.borrow_and_update();
            let read = {
                let buf = self.b.buffer(self.s);
                if self.at.is_none() {
                    self.at = buf.start(self.from);
                }
                match self.at {
                    Some(at) => buf.read(at),
                    None if buf.ended() => Read::End,
                    None => Read::Wait,
                }
            };
            match read {
                Read::Frames {
                    frames,
                    next,
                    skipped,
                } => {
                    if skipped > 0 && self.at.is_some_and(|a| a.frame > 0) {
                        return Some(Err(std::io::Error::other(format!(
                            "fell {skipped} segment(s) behind the buffer: resume"
                        ))));
                    }
                    self.at = Some(next);
                    let data: Vec<u8> = frames.concat();
                    self.b.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
                    return Some(Ok(Bytes::from(data)));
                }
                Read::Wait => self.rx.changed().await.ok()?,
                Read::End => return None,
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.b.children.fetch_sub(1, Ordering::SeqCst);
    }
}
