//! Parsing an announce's raw query string ([`parse_announce`]): percent-decoded bytes, the
//! fields the tracker needs, and a `failure reason` for anything it cannot use.

use std::net::{IpAddr, SocketAddr};

use percent_encoding::percent_decode_str;

// The parser depends on nothing else of the tracker (the fuzz target compiles this file alone).

/// Peers returned when the client does not say how many it wants.
pub const DEFAULT_NUMWANT: usize = 50;
/// Most peers returned.
pub const MAX_NUMWANT: usize = 200;

/// An announce that could not be understood, with the reason sent back as `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AnnounceError(pub String);

/// The `event` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// The first announce.
    Started,
    /// The download finished.
    Completed,
    /// The peer is leaving.
    Stopped,
}

/// A parsed announce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The torrent.
    pub info_hash: [u8; 20],
    /// The peer's id.
    pub peer_id: [u8; 20],
    /// Where the peer listens (the announcing address with `port`).
    pub addr: SocketAddr,
    /// Bytes the peer still needs; 0 means seed.
    pub left: u64,
    /// The event, if any.
    pub event: Option<AnnounceEvent>,
    /// Wants BEP 23 compact peer lists.
    pub compact: bool,
    /// Peers wanted.
    pub numwant: usize,
}

fn exact20(name: &str, bytes: Vec<u8>) -> Result<[u8; 20], AnnounceError> {
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| AnnounceError(format!("{name} must be exactly 20 bytes, found {len}")))
}

/// Parses an announce's raw query string, percent-decoding values to bytes (info hashes and peer
/// ids are binary). `remote` is the address the request came from.
pub fn parse_announce(query: &str, remote: IpAddr) -> Result<Announce, AnnounceError> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut left = None;
    let mut event = None;
    let mut compact = false;
    let mut numwant = DEFAULT_NUMWANT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bytes: Vec<u8> = percent_decode_str(value).collect();
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        let number = |name: &str| {
            text().parse::<u64>().map_err(|_| {
                AnnounceError(format!(
                    "{name} must be a non-negative integer, found {:?}",
                    text()
                ))
            })
        };
        match key {
            "info_hash" => info_hash = Some(exact20("info_hash", bytes.clone())?),
            "peer_id" => peer_id = Some(exact20("peer_id", bytes.clone())?),
            "port" => {
                port = Some(
                    text()
                        .parse::<u16>()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| {
                            AnnounceError(format!("port must be 1-65535, found {:?}", text()))
                        })?,
                )
            }
            "left" => left = Some(number("left")?),
            "compact" => compact = text() == "1",
            "numwant" => numwant = (number("numwant")? as usize).min(MAX_NUMWANT),
            "event" => {
                event = match text().as_str() {
                    "started" => Some(AnnounceEvent::Started),
                    "completed" => Some(AnnounceEvent::Completed),
                    "stopped" => Some(AnnounceEvent::Stopped),
                    "" | "empty" => None,
                    other => return Err(AnnounceError(format!("unknown event {other:?}"))),
                }
            }
            _ => {}
        }
    }
    Ok(Announce {
        info_hash: info_hash.ok_or_else(|| AnnounceError("missing info_hash".into()))?,
        peer_id: peer_id.ok_or_else(|| AnnounceError("missing peer_id".into()))?,
        addr: SocketAddr::new(
            remote,
            port.ok_or_else(|| AnnounceError("missing port".into()))?,
        ),
        left: left.unwrap_or(0),
        event,
        compact,
        numwant,
    })
}
