//! The publisher's side of a run: each segment's size as cut, and the bytes the publisher reports
//! sending for it (swarm, HTTP, and on connections it dialled), from its last counts.

use std::collections::BTreeMap;

use swarmcast_metrics::{Event, Kind, Role};

/// What the publisher's records say per segment.
#[derive(Debug, Default)]
pub(super) struct PublisherCounts {
    /// Each segment's size, bytes.
    pub(super) sizes: BTreeMap<u64, u64>,
    /// Bytes sent over the swarm (`uploaded.bytes`).
    pub(super) swarm: BTreeMap<u64, u64>,
    /// Bytes sent over HTTP (`uploaded.http_bytes`).
    pub(super) http: BTreeMap<u64, u64>,
    /// Bytes sent on connections the publisher dialled (`uploaded.dialled_bytes`).
    pub(super) dialled: BTreeMap<u64, u64>,
}

impl PublisherCounts {
    /// Reads the publisher's `cut` and `uploaded` records (the last count of a segment is its
    /// total).
    pub(super) fn read(events: &[Event]) -> Self {
        let mut counts = Self::default();
        for e in events.iter().filter(|e| e.role == Role::Publisher) {
            match (&e.kind, e.seg) {
                (Kind::Cut { size, .. }, Some(n)) => {
                    counts.sizes.insert(n, *size);
                }
                // The last count is the total.
                (
                    Kind::Uploaded {
                        bytes,
                        http_bytes,
                        dialled_bytes,
                    },
                    Some(n),
                ) => {
                    counts.swarm.insert(n, *bytes);
                    counts.http.insert(n, *http_bytes);
                    counts.dialled.insert(n, *dialled_bytes);
                }
                _ => {}
            }
        }
        counts
    }

    /// Bytes the publisher reports sending, swarm and HTTP.
    pub(super) fn sent(&self) -> u64 {
        self.swarm.values().sum::<u64>() + self.http.values().sum::<u64>()
    }
}
