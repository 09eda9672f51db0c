//! `relay-resume`: swarmcast's own relay with a back buffer (docs/relay.md). It pulls the stream
//! from a parent (the publisher, or another relay), verifies it piece by piece against the
//! signed manifest, keeps B seconds of it, serves it live (`GET /stream`) and from any position
//! still held (`GET /stream?from=<segment>:<offset>`), and plays it.
//!
//! - [`position`]: positions `<segment>:<offset>`;
//! - [`buffer`]: the back buffer (pure): what is held, where a request starts, what it lost;
//! - [`verify`]: the piece verifier (pure): bytes in, verified pieces out;
//! - [`server`]: the HTTP side (`/stream`, `/manifest`);
//! - [`node`]: a relay node: its configuration, the server, announces and playback; its
//!   upstream side (parents, the piece check, parent changes) is `upstream`.

pub mod buffer;
pub mod node;
pub mod position;
pub mod server;
mod upstream;
pub mod verify;

pub use node::{run, Parent, RelayConfig, RelayError, RelaySummary};
pub use position::Position;
