//! Striped substreams with fountain-code FEC (`striped-fec`, docs/striped-fec.md).
//!
//! The document swarmcast started from calls this its "new solution": stripe the live stream into
//! n substreams, akin to RAID striping, with forward error correction and timing information, so
//! that the stream can be rebuilt from all but one substream. This crate is the sans-IO core:
//!
//! - [`code`]: one segment becomes one RaptorQ (RFC 6330, the `raptorq` crate) source block of K
//!   symbols; N encoding symbols are dealt over n substreams (symbol `e` to substream `e mod n`),
//!   with N chosen so that every set of n−1 substreams decodes. That is checked when a block
//!   length is first seen, not hoped for: RaptorQ's decodability depends only on K and on which
//!   symbols arrive, never on the data.
//! - [`frame`]: the byte format of a substream. A signed header per segment and substream (its
//!   timing, the block's parameters, a hash of every symbol the substream carries), then the
//!   symbols. A reader that joins mid-stream resynchronises on the next header.
//! - [`rebuild`]: the viewer's side. Every symbol is checked against its signed hash before the
//!   decoder sees it (raptorq's decoder panics on malformed packets); segments come out in order;
//!   a block with too few symbols is reported lost, with its counts.
//! - [`forest`]: SplitStream-style trees. Every node has one home substream and is interior only
//!   in that substream's tree, so a departure costs each descendant at most one substream.

pub mod buffer;
pub mod code;
pub mod forest;
pub mod frame;
pub mod rebuild;

pub use buffer::{Cursor, FrameBuffer, Read};
pub use code::{EncodeError, Encoder, StripeParams, StripedSegment};
pub use forest::{Directory, Forest, ForestError, Parent};
pub use frame::{Deframer, Event, FrameError, StripeHeader, Symbol};
pub use rebuild::{Lost, Rebuilder, Rebuilt, SymbolError};
