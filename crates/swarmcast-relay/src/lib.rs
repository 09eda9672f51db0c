//! swarmcast's relays: the seed's relay methods, built as lab transports so that minute swarming
//! is measured against them.
//!
//! - [`directory`]: the relay directory the source publishes (`/relays`): relays announce
//!   themselves and their parent, entries expire, and a relay that lost its parent picks the
//!   next one from it ([`directory::choose_parent`]), as a user's software could, with no oracle.
//! - [`icecast`]: the seed's method (a), relay trees of real Icecast servers
//!   (`swarmcast icecast-node`, docs/relay-tree.md).
//! - [`resume`]: `relay-resume`, the relay with a back buffer (`swarmcast relay`): positions,
//!   the back buffer, the piece verifier, the `/stream` server and the relay node.

pub mod directory;
mod host;
pub mod icecast;
pub mod resume;
pub mod stripe;
