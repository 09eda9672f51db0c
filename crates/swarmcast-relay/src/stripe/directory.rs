//! The stripe directory over HTTP (docs/striped-fec.md, "The directory"), served by the
//! publisher beside `/stripe/{s}`. JSON in, JSON out:
//!
//! - `POST /stripes/join` `{"node","url"}` → `{"home","substreams"}`: the node's home substream;
//!   `url` is where it serves it (`{url}/{s}`);
//! - `POST /stripes/parent` `{"node","stripe","avoid":[urls]}` → `{"url"}`, or 404 when no parent
//!   has a free slot (ask again), 409 when the node is unknown (join again);
//! - `POST /stripes/announce` `{"node"}` → `{"known","ended","moved":[s]}`, once a second; a node
//!   not heard from for [`crate::directory::ENTRY_TTL`] leaves, and its children are detached;
//!   `moved` lists the substreams in which the node, a leaf there, was moved off its parent to
//!   make room for an interior node: it leaves that parent and asks for another.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use swarmcast_stripe::{Directory, Forest};

/// `POST /stripes/join`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The node's name.
    pub node: String,
    /// Its base URL (`http://host:port/stripe`).
    pub url: String,
}

/// The answer to a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The node's home substream.
    pub home: u8,
    /// n.
    pub substreams: u8,
}

/// `POST /stripes/parent`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParentRequest {
    /// The node.
    pub node: String,
    /// The substream.
    pub stripe: u8,
    /// URLs not to take.
    #[serde(default)]
    pub avoid: Vec<String>,
}

/// The answer to a parent request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentAnswer {
    /// Where to pull the substream from.
    pub url: String,
}

/// `POST /stripes/announce`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnnounceRequest {
    /// The node.
    pub node: String,
}

/// The answer to an announce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceAnswer {
    /// The node is in the directory (false: join again).
    pub known: bool,
    /// The stream ended.
    pub ended: bool,
    /// Substreams in which the node was moved off its parent: it must ask for another.
    #[serde(default)]
    pub moved: Vec<u8>,
}

/// A served stripe directory.
#[derive(Clone)]
pub struct Served {
    inner: Arc<Mutex<Directory>>,
    origin: Instant,
}

impl Served {
    /// A directory of `substreams` trees; nodes take `fanout` children in their home tree, the
    /// source `source_fanout` per tree, and the source serves substream s at
    /// `{source_url}/{s}`.
    pub fn new(substreams: u8, fanout: u32, source_fanout: u32, source_url: String) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Directory::new(
                Forest::new(substreams, fanout, source_fanout),
                source_url,
                crate::directory::ENTRY_TTL.as_millis() as u64,
            ))),
            origin: Instant::now(),
        }
    }

    fn lock(&self) -> (std::sync::MutexGuard<'_, Directory>, u64) {
        let now = self.origin.elapsed().as_millis() as u64;
        (self.inner.lock().unwrap_or_else(|e| e.into_inner()), now)
    }

    /// The stream ended.
    pub fn end(&self) {
        self.lock().0.ended = true;
    }
}

fn json<T: Serialize>(v: &T) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(v).expect("answers serialise"),
    )
        .into_response()
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("{what}: {e}\n"))
}

async fn join(State(s): State<Served>, body: Bytes) -> Response {
    let j: JoinRequest = match parse("join", &body) {
        Ok(j) => j,
        Err(m) => return (StatusCode::BAD_REQUEST, m).into_response(),
    };
    let (mut d, now) = s.lock();
    let home = d.join(&j.node, &j.url, now);
    json(&Joined {
        home,
        substreams: d.forest().substreams(),
    })
}

async fn parent(State(s): State<Served>, body: Bytes) -> Response {
    let p: ParentRequest = match parse("parent", &body) {
        Ok(p) => p,
        Err(m) => return (StatusCode::BAD_REQUEST, m).into_response(),
    };
    let (mut d, now) = s.lock();
    if d.forest().home(&p.node).is_none() {
        return (StatusCode::CONFLICT, "unknown node: join again\n").into_response();
    }
    if p.stripe >= d.forest().substreams() {
        return (StatusCode::BAD_REQUEST, "parent: no such substream\n").into_response();
    }
    match d.parent(&p.node, p.stripe, &p.avoid, now) {
        Some(url) => json(&ParentAnswer { url }),
        None => (StatusCode::NOT_FOUND, "no parent has a free slot\n").into_response(),
    }
}

async fn announce(State(s): State<Served>, body: Bytes) -> Response {
    let a: AnnounceRequest = match parse("announce", &body) {
        Ok(a) => a,
        Err(m) => return (StatusCode::BAD_REQUEST, m).into_response(),
    };
    let (mut d, now) = s.lock();
    let moved = d.announce(&a.node, now);
    json(&AnnounceAnswer {
        known: moved.is_some(),
        ended: d.ended,
        moved: moved.unwrap_or_default(),
    })
}

/// The routes.
pub fn router(served: Served) -> Router {
    Router::new()
        .route("/stripes/join", post(join))
        .route("/stripes/parent", post(parent))
        .route("/stripes/announce", post(announce))
        .with_state(served)
}
