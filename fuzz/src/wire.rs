//! The wire seeder's module as far as its connection needs it.

use std::time::Duration;

// `conn::Limits::default()` names these; the targets pass their own limits and never call it.
// They are the seeder's values (crates/swarmcast-swarm/src/wire.rs) at the time of writing.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(5);
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(240);
pub(crate) const MAX_REQUEST: u32 = 128 * 1024;
pub(crate) const MAX_QUEUED_REQUESTS: usize = 4096;
pub(crate) const MAX_MESSAGE: usize = 32 * 1024;

// Not formatted from here: rustfmt would look for its test module beside this file.
#[rustfmt::skip]
#[path = "../../crates/swarmcast-swarm/src/wire/conn.rs"]
pub mod conn;
