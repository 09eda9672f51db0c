//! The wire seeder's module as far as its connection needs it.

// Not formatted from here: rustfmt would look for its test module beside this file.
#[rustfmt::skip]
#[path = "../../crates/swarmcast-swarm/src/wire/conn.rs"]
pub mod conn;
