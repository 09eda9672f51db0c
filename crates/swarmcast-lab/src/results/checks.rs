//! The nine consistency checks of a run ([`Check`]), in three groups: the viewers' records
//! ([`records`]: played bytes, record order, payload coverage), the byte counts between nodes
//! ([`bytes`]: dialled bytes moved back to the publisher, peers, publisher), and the processes
//! ([`processes`]: outputs, exits, manifests).

use std::collections::{BTreeMap, BTreeSet};

use super::publisher::PublisherCounts;
use super::tally::{Bytes, Tally};
use super::timeline::ViewerCounters;
use super::{Check, RunOutcome, CHUNK};

/// Checks 1-3: played bytes equal the published sizes, every played segment has its records in
/// order, payload received covers every completed segment.
pub(super) fn records(tally: &Tally) -> Vec<Check> {
    let played = tally.played;
    let (bad_bytes, incomplete, short) = (&tally.bad_bytes, &tally.incomplete, &tally.short);
    vec![
        Check {
            name: "played bytes equal the published segment sizes",
            ok: bad_bytes.is_empty(),
            detail: if bad_bytes.is_empty() {
                format!("{played} segments played")
            } else {
                bad_bytes.join("; ")
            },
        },
        Check {
            name: "every played segment has learned, added, completed and played records, in order",
            ok: incomplete.is_empty(),
            detail: if incomplete.is_empty() {
                format!("{played} complete records")
            } else {
                format!("incomplete: {}", incomplete.join(", "))
            },
        },
        Check {
            name: "payload received covers every completed segment",
            ok: short.is_empty(),
            detail: if short.is_empty() {
                format!(
                    "{} bytes received for {} needed",
                    tally.bytes.received(),
                    tally.bytes.needed
                )
            } else {
                short.join("; ")
            },
        },
    ]
}

/// Checks 4-6, on the byte counts: moves the bytes the publisher sent on connections it dialled
/// back to it (see [`move_dialled`]), then checks that bytes received from peers and from the
/// publisher do not exceed what they report sending.
pub(super) fn bytes(
    bytes: &mut Bytes,
    counters: &ViewerCounters,
    publisher: &PublisherCounts,
) -> Vec<Check> {
    vec![
        move_dialled(bytes, &publisher.dialled),
        from_peers(
            bytes,
            &counters.seg_peer_uploads,
            &counters.unreported_uploads,
        ),
        from_publisher(bytes, publisher),
    ]
}

/// The publisher dials viewers it learns by PEX (librqbit has no switch against it); a viewer
/// sees such a connection come from an ephemeral port and counts its bytes as a peer's. The
/// publisher counts what it sent on dialled connections, so they are moved back to it here.
fn move_dialled(bytes: &mut Bytes, dialled: &BTreeMap<u64, u64>) -> Check {
    let mut misattributed = Vec::new();
    for (n, d) in dialled.iter().filter(|(_, d)| **d > 0) {
        let peers = bytes.seg_from_peers.entry(*n).or_default();
        if *d > *peers && misattributed.len() < 3 {
            misattributed.push(format!(
                "segment {n}: the publisher sent {d} on connections it dialled, viewers counted only {peers} from peers"
            ));
        }
        let moved = (*d).min(*peers);
        *peers -= moved;
        bytes.seg_from_pub.entry(*n).or_default().0 += moved;
        bytes.from_peers -= moved;
        bytes.from_publisher += moved;
    }
    let total: u64 = dialled.values().sum();
    Check {
        name:
            "bytes the publisher sent on connections it dialled <= bytes viewers counted from peers",
        ok: misattributed.is_empty(),
        detail: if misattributed.is_empty() {
            format!("{total} bytes moved from peers to the publisher")
        } else {
            misattributed.join("; ")
        },
    }
}

/// Bytes received from peers do not exceed what the peers report uploading. librqbit counts a
/// chunk as uploaded after its write completes: a chunk in flight when the uploader forgets the
/// segment (or stops) reaches the receiver uncounted. One chunk per receiving viewer and segment
/// is allowed for it.
/// Segments a killed viewer held (`unreported`: its uploads for them were never reported) are
/// left out.
fn from_peers(
    bytes: &Bytes,
    seg_peer_uploads: &BTreeMap<u64, u64>,
    unreported: &BTreeSet<u64>,
) -> Check {
    let slack = |n: &u64| CHUNK * bytes.seg_receivers.get(n).copied().unwrap_or(0);
    let over_peers: Vec<String> = bytes
        .seg_from_peers
        .iter()
        .filter(|(n, _)| !unreported.contains(n))
        .filter(|(n, got)| **got > seg_peer_uploads.get(n).copied().unwrap_or(0) + slack(n))
        .take(3)
        .map(|(n, got)| {
            format!(
                "segment {n}: {got} received from peers, {} uploaded by them (+ {} in flight allowed)",
                seg_peer_uploads.get(n).copied().unwrap_or(0),
                slack(n)
            )
        })
        .collect();
    let in_flight: u64 = bytes
        .seg_from_peers
        .iter()
        .filter(|(n, _)| !unreported.contains(n))
        .map(|(n, got)| got.saturating_sub(seg_peer_uploads.get(n).copied().unwrap_or(0)))
        .sum();
    Check {
        name: "bytes received from peers <= bytes peers report uploading (+ one 16 KiB chunk in flight per receiver and segment)",
        ok: over_peers.is_empty(),
        detail: if over_peers.is_empty() {
            let mut d = format!(
                "{} received, {} uploaded; {in_flight} received beyond the uploaders' counts",
                bytes.from_peers,
                seg_peer_uploads.values().sum::<u64>()
            );
            if !unreported.is_empty() {
                d += &format!(
                    "; {} segments held by killed viewers not checked",
                    unreported.len()
                );
            }
            d
        } else {
            over_peers.join("; ")
        },
    }
}

/// Bytes received from the publisher (swarm and HTTP) do not exceed what it reports sending,
/// per segment.
fn from_publisher(bytes: &Bytes, publisher: &PublisherCounts) -> Check {
    let (swarm, http) = (&publisher.swarm, &publisher.http);
    let over_pub: Vec<String> = bytes
        .seg_from_pub
        .iter()
        .filter(|(n, (s, h))| {
            *s > swarm.get(n).copied().unwrap_or(0) || *h > http.get(n).copied().unwrap_or(0)
        })
        .take(3)
        .map(|(n, (s, h))| {
            format!(
                "segment {n}: received {s} (swarm) + {h} (HTTP) from the publisher, which sent {} + {}",
                swarm.get(n).copied().unwrap_or(0),
                http.get(n).copied().unwrap_or(0)
            )
        })
        .collect();
    Check {
        name: "bytes received from the publisher <= bytes it reports sending",
        ok: over_pub.is_empty(),
        detail: if over_pub.is_empty() {
            format!(
                "{} received <= {} sent",
                bytes.from_publisher + bytes.from_http,
                publisher.sent()
            )
        } else {
            over_pub.join("; ")
        },
    }
}

/// Checks 7-9: every viewer's output is identical to what it played, every process exited
/// cleanly, no manifest was refused (`refused` of them were).
pub(super) fn processes(outcome: &RunOutcome, refused: u64) -> Vec<Check> {
    let differs: Vec<String> = outcome
        .viewers
        .iter()
        .filter(|v| v.output.as_deref() != Some("identical"))
        .map(|v| {
            format!(
                "{}: {}",
                v.node,
                v.output.as_deref().unwrap_or("not checked")
            )
        })
        .collect();
    let unclean: Vec<String> = outcome
        .publisher
        .iter()
        .chain(&outcome.viewers)
        .chain(&outcome.sides)
        // Killed on purpose (the exodus pattern): no exit code to check.
        .filter(|p| p.exit != Some(0) && !p.killed)
        .map(|p| format!("{} exited {:?}", p.node, p.exit))
        .chain(
            outcome
                .hang_guard
                .then(|| "the hang guard fired".to_string()),
        )
        .chain(outcome.error.clone())
        .chain((outcome.publisher.is_none()).then(|| "no publisher".to_string()))
        .collect();
    vec![
        Check {
            name: "every viewer's output is byte-identical to the segments it played",
            ok: differs.is_empty() && !outcome.viewers.is_empty(),
            detail: if differs.is_empty() {
                format!("{} outputs", outcome.viewers.len())
            } else {
                differs.join("; ")
            },
        },
        Check {
            name: "every process exited cleanly",
            ok: unclean.is_empty(),
            detail: if unclean.is_empty() {
                format!(
                    "{} processes",
                    1 + outcome.viewers.len() + outcome.sides.len()
                )
            } else {
                unclean.join("; ")
            },
        },
        Check {
            name: "no manifest was refused",
            ok: refused == 0,
            detail: format!("{refused} refused"),
        },
    ]
}
