//! swarmcast's sans-IO core: the formats every other part agrees on.
//!
//! - [`torrent`]: BitTorrent v1 metainfo for one segment file ([`SegmentTorrent`], [`InfoDict`],
//!   [`InfoHash`]), byte-identical to mktorrent's `info`, and magnet links.
//! - [`manifest`]: the signed rolling manifest ([`Manifest`], [`SignedManifest`]) and its
//!   [`Verifier`], which pins a stream key and refuses forged, stale and equivocating documents.
//! - [`window`]: the publisher's rolling [`Window`], which signs the next manifest.
//! - [`link`]: stream links ([`StreamLink`]) naming the key and the manifest URLs.
//! - [`keys`]: the stream's ed25519 keys ([`StreamKey`], [`StreamSecret`]) and key files.
//! - [`bencode`]: the canonical-form and depth checks `serde_bencode` lacks.
//! - [`inspect`]: recognising and describing documents for people.
//! - [`carry`]: the peers a viewer carries from one segment's swarm to the next, and the
//!   segments it looks up on the DHT.
//!
//! Nothing here does network I/O or reads a clock: time is always passed in (ms since the Unix
//! epoch for wall-clock times, 90 kHz ticks for media times). The one exception to "no I/O" is
//! [`keys::keyfile`], which reads and writes secret key files.

pub mod bencode;
pub mod carry;
pub mod dht_item;
pub mod error;
pub mod gossip;
pub mod inspect;
pub mod keys;
pub mod link;
pub mod manifest;
pub mod testdata;
pub mod torrent;
pub mod window;

pub use error::{BencodeError, KeyError, KeyFileError, LinkError, ManifestError, TorrentError};
pub use keys::{StreamKey, StreamSecret};
pub use link::StreamLink;
pub use manifest::{Manifest, SegmentEntry, SignedManifest, Verdict, Verifier};
pub use torrent::{InfoDict, InfoHash, SegmentTorrent};
pub use window::{Window, WindowConfig};
