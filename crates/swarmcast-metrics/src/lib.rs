//! swarmcast's counters.
//!
//! Every node (publisher, viewer) writes the same [`Event`] schema as JSON lines: the common fields
//! `{v, node, role, kind, seg, wall_us, mono_us}` and the fields of its [`Kind`]. `wall_us` is
//! microseconds since the Unix epoch (comparable across nodes only on a shared clock, such as one
//! machine); `mono_us` is microseconds since the node started, on a monotonic clock: durations
//! within a node use `mono_us` only. [`Recorder`] writes events; [`read_events`] reads them back.
//! docs/metrics.md documents every field and its precision.

pub mod exposition;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Version of the event schema (`v`).
pub const SCHEMA_VERSION: u32 = 1;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Cuts, seeds and signs.
    Publisher,
    /// Fetches, plays and re-seeds.
    Viewer,
    /// Relays a continuous stream to others (`swarmcast relay`, an Icecast tree node).
    Relay,
}

/// What happened. Serialised as `kind` plus the variant's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// Publisher: the segmenter closed the segment file.
    Cut {
        /// Bytes.
        size: u64,
        /// Media start, 90 kHz ticks.
        media_start: u64,
        /// Media duration, 90 kHz ticks.
        duration: u64,
        /// It starts a discontinuity.
        discontinuity: bool,
    },
    /// Publisher: the segment's torrent was built.
    Hashed {
        /// Time spent reading and hashing, µs.
        hash_us: u64,
        /// Pieces.
        pieces: u64,
        /// Piece length, bytes.
        piece_length: u64,
        /// Info hash, hex.
        info_hash: String,
    },
    /// Publisher: the seeder serves the segment's torrent (the wire seeder read and checked it,
    /// or librqbit reports it live and complete).
    Seeding {
        /// Time from handing the torrent to the seeder to seeding, µs.
        add_us: u64,
    },
    /// Publisher: the segment is listed in a signed manifest now being served.
    Published {
        /// Manifest sequence number.
        seq: u64,
        /// Size of the manifest document, bytes.
        manifest_bytes: u64,
        /// From the cut to the manifest being served, µs.
        cut_to_published_us: u64,
    },
    /// Publisher: payload bytes uploaded for this segment so far.
    Uploaded {
        /// Bytes the swarm uploaded (the seeder's count).
        bytes: u64,
        /// Segment bytes sent over HTTP (`/segments/<n>.ts`: fallback and the HTTP baseline).
        #[serde(default)]
        http_bytes: u64,
        /// Of `bytes`, those sent on connections the publisher dialled (peers it learned by PEX).
        /// A viewer sees such a connection come from an ephemeral port and counts its bytes as
        /// another viewer's; 0 means the viewers' attribution is exact.
        #[serde(default)]
        dialled_bytes: u64,
    },
    /// Publisher: the segment left the window and its grace period; it is no longer seeded.
    Removed {
        /// Payload bytes uploaded for it in total.
        uploaded_bytes: u64,
        /// The file was kept (`--keep-segments`).
        kept_file: bool,
    },
    /// Publisher: the end-of-stream manifest is served.
    EndOfStream {
        /// Its sequence number.
        seq: u64,
    },
    /// What the publisher sent of its manifests so far, over HTTP and in the swarm: as each
    /// segment is forgotten (with its `seg`) and at exit (no `seg`: the run's totals); or, at
    /// exit, what a viewer with the manifest exchange on sent and took on it (its HTTP fields
    /// and `dht_puts` 0) (docs/manifest.md, "Manifests carried by the swarm").
    ManifestsSent {
        /// `GET /manifest` answered with a document (or a delta).
        http_responses: u64,
        /// Their bytes (bodies).
        http_bytes: u64,
        /// Documents sent on the manifest exchange (pushed, or answers to `want`s).
        swarm_documents: u64,
        /// Of them, answers to `want`s.
        swarm_answers: u64,
        /// Of them, deltas (absent from records of earlier versions: 0).
        #[serde(default)]
        swarm_deltas: u64,
        /// Bytes of every exchange message sent (payloads; 6 more bytes of framing each).
        swarm_bytes: u64,
        /// Exchange messages sent (documents, each part of a document sent in parts, `have`s,
        /// `want`s).
        swarm_messages: u64,
        /// Stream pointers put on the DHT, and segments announced there (a viewer's: the
        /// segments it looked up and announced there).
        dht_puts: u64,
        /// See `dht_puts`.
        dht_announces: u64,
        /// `have`s and `want`s sent on the exchange (absent from records of earlier versions:
        /// 0).
        #[serde(default)]
        swarm_haves: u64,
        /// See `swarm_haves`.
        #[serde(default)]
        swarm_wants: u64,
        /// Bytes of every exchange message taken (payloads), and of the documents among them
        /// those not newer than the one held (absent from earlier records: 0).
        #[serde(default)]
        swarm_bytes_received: u64,
        /// See `swarm_bytes_received`.
        #[serde(default)]
        swarm_duplicates: u64,
    },
    /// Viewer: a manifest was fetched and verified.
    ManifestFetched {
        /// Its sequence number.
        seq: u64,
        /// Bytes fetched: the document's, or the delta's when it came as one.
        bytes: u64,
        /// It came as a delta from the previous one (docs/manifest.md, "Deltas").
        #[serde(default)]
        delta: bool,
        /// `long_poll` (the server held the request) or `poll` (plain polling with backoff).
        mode: String,
    },
    /// Viewer: a manifest was refused (forged, stale, equivocating, other stream, malformed).
    ManifestRefused {
        /// The verifier's reason.
        reason: String,
    },
    /// Viewer: the first manifest accepted fixed the first segment to play.
    Joined {
        /// The live edge when joining.
        newest: u64,
    },
    /// Viewer: a manifest listed the segment for the first time.
    Learned {
        /// Sequence number of that manifest.
        seq: u64,
        /// When the publisher published the segment (its wall clock, ms).
        published_ms: u64,
    },
    /// Viewer: the segment was added to the swarm.
    Added,
    /// Viewer: the first peer connection for the segment is live (sampled every 5 ms).
    FirstPeer {
        /// Since `added`, µs.
        since_added_us: u64,
    },
    /// Viewer: the first piece of the segment is verified (sampled every 5 ms).
    FirstPiece {
        /// Since `added`, µs.
        since_added_us: u64,
    },
    /// Viewer: the segment is complete and verified.
    Completed {
        /// Since `added`, µs.
        since_added_us: u64,
        /// `swarm` or `http`.
        via: String,
        /// Payload bytes received from the publisher's peer address.
        from_publisher: u64,
        /// Payload bytes received from other peers.
        from_peers: u64,
        /// Payload bytes received over HTTP fallback.
        from_http: u64,
        /// Outgoing connection attempts to the segment's peers until now (swarm; absent in
        /// records older than the field).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connect_attempts: Option<u64>,
        /// Connections to the segment's peers that ended in an error until now: failed dials
        /// (below) and established connections that broke, which at segment scale are mostly
        /// peers disconnecting once neither side needed anything (librqbit's per-peer `errors`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connect_errors: Option<u64>,
        /// Outgoing connection attempts to the segment's peers until now that failed before the
        /// BitTorrent handshake completed (refused, timed out, or the peer did not have the
        /// torrent yet); each puts the peer into librqbit's reconnect backoff of 10 s or more.
        /// Part of `connect_errors` (swarm; absent in records older than the field).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_dials: Option<u64>,
    },
    /// Viewer: the segment was written to the sink.
    Played {
        /// Its playback deadline, µs on this node's monotonic clock.
        deadline_us: u64,
        /// How long playback waited for it, µs (0: on time).
        stall_us: u64,
        /// Bytes written.
        bytes: u64,
    },
    /// Viewer: the segment will not be played (it left the window before it could be fetched).
    Skipped {
        /// How many numbers from the event's segment on were skipped at once, when more than
        /// one: numbers no manifest listed (they left the window unseen, or a manifest jumped
        /// ahead). Absent: one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// Viewer: the segment was fetched over HTTP.
    HttpFallback {
        /// Bytes fetched.
        bytes: u64,
        /// The pieces verified and the segment was handed to the swarm.
        ok: bool,
        /// The swarm completed the segment first: the fetch was stopped (or its file dropped),
        /// and `bytes` is what it had received (wasted). Absent in older records: false (such
        /// fetches then ran on unrecorded).
        #[serde(default)]
        superseded: bool,
        /// The publisher refused it (503: its fallback slots were taken), and every fallback of
        /// the viewer waits. Absent in older records: false (refusals were not told apart).
        #[serde(default)]
        refused: bool,
    },
    /// Viewer: the segment was dropped from the swarm.
    Forgotten {
        /// Payload bytes uploaded to other viewers for it.
        uploaded_bytes: u64,
        /// Payload bytes received from the publisher not reported in `completed` (all of them
        /// when the segment never completed from the swarm).
        #[serde(default)]
        from_publisher: u64,
        /// Same, from other peers.
        #[serde(default)]
        from_peers: u64,
        /// Pieces received for it that failed their hash check, over the torrent's life
        /// (librqbit patch 0015). Absent: none (or a record older than the field).
        #[serde(default, skip_serializing_if = "is_zero")]
        hash_failures: u64,
        /// Bytes of those pieces, thrown away. Absent: none.
        #[serde(default, skip_serializing_if = "is_zero")]
        discarded_bytes: u64,
        /// The addresses of the peers that sent those pieces (each banned from the torrent by
        /// its IP address at its first). Absent: none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bad_peers: Vec<String>,
        /// Connections refused since because their address was banned: dials not made and
        /// incoming connections dropped. Absent: none.
        #[serde(default, skip_serializing_if = "is_zero")]
        refused_banned: u64,
    },
    /// Continuous stream (`swarmcast listen`, `swarmcast relay`, an Icecast tree node): connected
    /// to a source and receiving.
    StreamConnected {
        /// The source's URL.
        url: String,
        /// The position asked for (`<segment>:<offset>`, docs/relay.md), if a resume.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The position the source started at, if it said (`X-Swarmcast-Position`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<String>,
    },
    /// Continuous stream: bytes received and written so far (the arrival curve). Sampled at most
    /// every 100 ms while data flows, and at every disconnect and at the end.
    StreamBytes {
        /// Stream bytes written to the output since the start.
        total: u64,
    },
    /// Continuous stream: the connection to the source ended or timed out.
    StreamDisconnected {
        /// The source's URL.
        url: String,
        /// Why: `eof`, `timeout` (no byte for the detection timeout), `error: ...`.
        reason: String,
    },
    /// A striped node (`swarmcast stripe-node`): frame bytes received from its parents so far,
    /// and of them from the publisher's host. Recorded with each `StreamBytes` sample: a striped
    /// node has one parent per substream, so the share from the publisher is counted here
    /// rather than by the last `StreamConnected`.
    StripeBytes {
        /// Frame bytes received.
        received: u64,
        /// Of which from the publisher.
        from_source: u64,
    },
    /// Continuous stream: a resume asked for a position the source no longer held (past its
    /// back buffer); it skipped this much to its oldest byte.
    StreamLost {
        /// Stream bytes skipped.
        bytes: u64,
        /// Whole or partial segments skipped.
        segments: u64,
    },
    /// Continuous stream: a piece failed its check against the signed manifest; the bytes were
    /// not written and the source was dropped.
    PieceRejected {
        /// The source's URL.
        url: String,
        /// The piece's index in its segment.
        piece: u64,
    },
    /// A relay (Icecast tree node or `swarmcast relay`) switched to a new parent.
    ParentChanged {
        /// The parent it left (none at the start).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The new parent.
        to: String,
        /// From the last byte received from the old parent to the switch, µs (0 at the start).
        detect_us: u64,
    },
    /// Viewer: the stream ended (or the viewer was stopped).
    Ended {
        /// The end-of-stream flag was seen (false: stopped by Ctrl-C).
        end_of_stream: bool,
    },
}

/// One line of a node's metrics file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version, [`SCHEMA_VERSION`].
    pub v: u32,
    /// The node's name (unique within an experiment).
    pub node: String,
    /// Its role.
    pub role: Role,
    /// The segment the event is about, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seg: Option<u64>,
    /// Wall-clock time, µs since the Unix epoch.
    pub wall_us: u64,
    /// Monotonic time, µs since the node started.
    pub mono_us: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: Kind,
}

/// Errors writing or reading metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The file could not be opened, written or read.
    #[error("metrics file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not an event.
    #[error("metrics file {path}, line {line}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Writes a node's events as JSON lines (or only keeps time, without a file).
///
/// The lines are written by a thread of the recorder's own, so recording never blocks the async
/// runtime on the disk: [`record`](Self::record) queues the line, and the thread writes what is
/// queued and flushes whenever the queue is empty (so a line is in the file microseconds after
/// it is recorded, and a reader of a live file sees whole lines but for the last). Dropping the
/// recorder writes everything queued; [`flush`](Self::flush) waits for it without dropping.
#[derive(Debug)]
pub struct Recorder {
    node: String,
    role: Role,
    origin: Instant,
    out: Option<Writer>,
}

/// The writer thread of a [`Recorder`] with a file.
#[derive(Debug)]
struct Writer {
    /// The queue; taken (closed) only when the recorder is dropped.
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the writer thread is asked to do.
#[derive(Debug)]
enum Msg {
    /// Write one line.
    Line(Vec<u8>),
    /// Flush, then acknowledge.
    Flush(mpsc::SyncSender<()>),
}

/// The writer thread: writes every queued line, flushing whenever the queue is empty, until
/// every sender is gone. A failure is reported once, never fatal: counters must not stop a
/// broadcast.
fn write_lines(path: PathBuf, file: File, rx: mpsc::Receiver<Msg>) {
    let mut out = BufWriter::new(file);
    let mut warned = false;
    let mut check = |r: std::io::Result<()>| {
        if let Err(e) = r {
            if !std::mem::replace(&mut warned, true) {
                eprintln!("warning: cannot write metrics to {}: {e}", path.display());
            }
        }
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => check(out.write_all(&line)),
                Msg::Flush(ack) => {
                    check(out.flush());
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        check(out.flush());
    }
    check(out.flush());
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(w) = &mut self.out {
            // Closing the queue ends the thread once it has written everything queued.
            drop(w.tx.take());
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Recorder {
    /// A recorder for `node`; `path`, when given, is created (truncated) for the JSON lines.
    pub fn new(
        node: impl Into<String>,
        role: Role,
        path: Option<&Path>,
    ) -> Result<Self, MetricsError> {
        let out = match path {
            Some(p) => {
                let io = |source| MetricsError::Io {
                    path: p.to_owned(),
                    source,
                };
                let file = File::create(p).map_err(io)?;
                let (tx, rx) = mpsc::channel();
                let path = p.to_owned();
                let thread = std::thread::Builder::new()
                    .name("metrics".into())
                    .spawn(move || write_lines(path, file, rx))
                    .map_err(io)?;
                Some(Writer {
                    tx: Some(tx),
                    thread: Some(thread),
                })
            }
            None => None,
        };
        Ok(Self {
            node: node.into(),
            role,
            origin: Instant::now(),
            out,
        })
    }

    /// Microseconds since this recorder (the node) started.
    pub fn mono_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    /// The event that [`record`](Self::record) would write now.
    pub fn event(&self, seg: Option<u64>, kind: Kind) -> Event {
        let wall_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Event {
            v: SCHEMA_VERSION,
            node: self.node.clone(),
            role: self.role,
            seg,
            wall_us,
            mono_us: self.mono_us(),
            kind,
        }
    }

    /// Records an event: queues its line for the writer thread (never waits for the disk). A
    /// write failure is reported once, never fatal: counters must not stop a broadcast.
    pub fn record(&self, seg: Option<u64>, kind: Kind) -> Event {
        let event = self.event(seg, kind);
        if let Some(w) = &self.out {
            let mut line = serde_json::to_vec(&event).expect("events always serialise");
            line.push(b'\n');
            if let Some(tx) = &w.tx {
                let _ = tx.send(Msg::Line(line));
            }
        }
        event
    }

    /// Waits until every event recorded so far is written to the file (and flushed). Blocks
    /// the calling thread briefly; without a file, returns at once.
    pub fn flush(&self) {
        let Some(w) = &self.out else {
            return;
        };
        let (ack_tx, ack) = mpsc::sync_channel(1);
        let sent =
            w.tx.as_ref()
                .is_some_and(|tx| tx.send(Msg::Flush(ack_tx)).is_ok());
        if sent {
            let _ = ack.recv();
        }
    }
}

/// Reads a JSON-lines metrics file.
pub fn read_events(path: &Path) -> Result<Vec<Event>, MetricsError> {
    let file = File::open(path).map_err(|source| MetricsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut events = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| MetricsError::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|source| MetricsError::Parse {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        events.push(event);
    }
    Ok(events)
}

#[cfg(test)]
mod tests;

/// For `skip_serializing_if`: a counter at zero is left out of a record.
fn is_zero(n: &u64) -> bool {
    *n == 0
}
