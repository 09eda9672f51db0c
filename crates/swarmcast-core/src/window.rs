//! The publisher's rolling window: add segments, drop the oldest, sign the next manifest.
//!
//! Sans-IO: the caller passes the time in; the window keeps the next sequence number, which the
//! publisher persists so a restart continues it.

use std::collections::VecDeque;

use crate::error::ManifestError;
use crate::keys::StreamSecret;
use crate::manifest::{check_segment, Manifest, SegmentEntry, SignedManifest, MAX_WINDOW};

/// What every manifest of a window carries besides its segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Segments kept in the window, 1 to [`MAX_WINDOW`].
    pub capacity: usize,
    /// Target segment duration, in 90 kHz ticks.
    pub target_duration: u64,
    /// Publisher peer addresses (`host:port`).
    pub peers: Vec<String>,
    /// Tracker URLs.
    pub trackers: Vec<String>,
}

/// A stream's window of recent segments, and the signer of its manifests.
#[derive(Debug)]
pub struct Window {
    secret: StreamSecret,
    config: WindowConfig,
    next_seq: u64,
    segments: VecDeque<SegmentEntry>,
    end_of_stream: bool,
}

impl Window {
    /// A new, empty window whose first manifest will have sequence number `next_seq`.
    pub fn new(
        secret: StreamSecret,
        config: WindowConfig,
        next_seq: u64,
    ) -> Result<Self, ManifestError> {
        if config.capacity == 0 || config.capacity > MAX_WINDOW {
            return Err(ManifestError::LimitExceeded {
                field: "window capacity",
                max: MAX_WINDOW,
                found: config.capacity,
            });
        }
        let window = Self {
            secret,
            config,
            next_seq,
            segments: VecDeque::new(),
            end_of_stream: false,
        };
        window.manifest(0).validate()?;
        Ok(window)
    }

    /// Adds the next segment; returns the segment that fell out of the window, if any.
    ///
    /// The segment must follow the newest one (number + 1), carry a valid info dictionary matching
    /// its info hash and size, and come before the end of the stream.
    pub fn push(&mut self, entry: SegmentEntry) -> Result<Option<SegmentEntry>, ManifestError> {
        if self.end_of_stream {
            return Err(ManifestError::BadField {
                field: "window",
                expected: "no segment after the end of the stream".into(),
                found: format!("segment {}", entry.number),
            });
        }
        if let Some(newest) = self.segments.back() {
            let expected = newest.number + 1;
            if entry.number != expected {
                return Err(ManifestError::NotContiguous {
                    index: self.segments.len(),
                    expected,
                    found: entry.number,
                });
            }
        }
        check_segment(&entry)?;
        self.segments.push_back(entry);
        Ok(if self.segments.len() > self.config.capacity {
            self.segments.pop_front()
        } else {
            None
        })
    }

    /// Marks the stream ended: the next manifest carries the end-of-stream flag.
    pub fn end_stream(&mut self) {
        self.end_of_stream = true;
    }

    /// Signs the next manifest, issued at `now_ms` (ms since the Unix epoch), and advances the
    /// sequence number.
    pub fn sign(&mut self, now_ms: u64) -> Result<SignedManifest, ManifestError> {
        let signed = self.manifest(now_ms).sign(&self.secret)?;
        self.next_seq += 1;
        Ok(signed)
    }

    /// The segments in the window, oldest first.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &SegmentEntry> {
        self.segments.iter()
    }

    /// The sequence number the next manifest will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The stream's public key (the one every manifest names).
    pub fn key(&self) -> crate::keys::StreamKey {
        self.secret.public()
    }

    /// The window's configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    fn manifest(&self, now_ms: u64) -> Manifest {
        Manifest {
            key: self.secret.public(),
            seq: self.next_seq,
            issued_ms: now_ms,
            target_duration: self.config.target_duration,
            peers: self.config.peers.clone(),
            trackers: self.config.trackers.clone(),
            end_of_stream: self.end_of_stream,
            segments: self.segments.iter().cloned().collect(),
        }
    }
}
