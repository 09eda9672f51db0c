//! The tracker's bencoded answers: a `failure reason`, or a peer list in the compact (BEP 23,
//! with `peers6` for IPv6, BEP 7) or the dictionary form.

use std::net::SocketAddr;

use serde::Serialize;
use serde_bytes::ByteBuf;

#[derive(Serialize)]
struct Failure<'a> {
    #[serde(rename = "failure reason")]
    reason: &'a str,
}

#[derive(Serialize)]
struct ListPeer {
    ip: String,
    #[serde(rename = "peer id")]
    peer_id: ByteBuf,
    port: u16,
}

#[derive(Serialize)]
struct Response<P: Serialize> {
    complete: u64,
    incomplete: u64,
    interval: u64,
    #[serde(rename = "min interval")]
    min_interval: u64,
    peers: P,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers6: Option<ByteBuf>,
}

/// Encodes a `failure reason` response.
pub fn failure(reason: &str) -> Vec<u8> {
    serde_bencode::to_bytes(&Failure { reason }).expect("a failure always encodes")
}

/// The figures of a peer-list answer besides the peers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    /// Seeds, the publisher included.
    pub(super) complete: u64,
    /// Leechers.
    pub(super) incomplete: u64,
    /// Seconds between announces.
    pub(super) interval: u64,
    /// Seconds before the next announce at the soonest.
    pub(super) min_interval: u64,
}

/// Encodes a peer-list answer: compact (`peers` of 6-byte IPv4 entries, `peers6` of 18-byte
/// IPv6 ones when there are any) or a list of dictionaries with peer ids.
pub(super) fn peers(compact: bool, counts: Counts, listed: &[([u8; 20], SocketAddr)]) -> Vec<u8> {
    let Counts {
        complete,
        incomplete,
        interval,
        min_interval,
    } = counts;
    if compact {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (_, addr) in listed {
            match addr {
                SocketAddr::V4(s) => {
                    v4.extend_from_slice(&s.ip().octets());
                    v4.extend_from_slice(&s.port().to_be_bytes());
                }
                SocketAddr::V6(s) => {
                    v6.extend_from_slice(&s.ip().octets());
                    v6.extend_from_slice(&s.port().to_be_bytes());
                }
            }
        }
        let peers6 = (!v6.is_empty()).then(|| ByteBuf::from(v6));
        serde_bencode::to_bytes(&Response {
            complete,
            incomplete,
            interval,
            min_interval,
            peers: ByteBuf::from(v4),
            peers6,
        })
    } else {
        let peers: Vec<ListPeer> = listed
            .iter()
            .map(|(id, addr)| ListPeer {
                ip: addr.ip().to_string(),
                peer_id: ByteBuf::from(id.to_vec()),
                port: addr.port(),
            })
            .collect();
        serde_bencode::to_bytes(&Response {
            complete,
            incomplete,
            interval,
            min_interval,
            peers,
            peers6: None,
        })
    }
    .expect("a tracker response always encodes")
}
