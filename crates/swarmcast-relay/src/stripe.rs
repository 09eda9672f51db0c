//! `striped-fec`'s network side (docs/striped-fec.md): the substreams served over HTTP, the
//! stripe directory, and the node that relays its home substream and rebuilds the stream.
//! The coding, the frames and the trees are `swarmcast-stripe` (sans-IO).
//!
//! - [`server`]: `GET /stripe/{s}` (live) and `GET /stripe/{s}?from=<seq>` (resume at a
//!   segment still held) from per-substream [`swarmcast_stripe::FrameBuffer`]s; the publisher's
//!   [`server::Outlet`] stripes each published segment into them;
//! - [`directory`]: `POST /stripes/join`, `/stripes/parent`, `/stripes/announce`, over a
//!   [`swarmcast_stripe::Directory`];
//! - [`node`]: `swarmcast stripe-node`.

pub mod directory;
pub mod node;
pub mod server;
