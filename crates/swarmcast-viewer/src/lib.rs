//! swarmcast's viewer.
//!
//! - [`schedule`]: the sans-IO prefetch and playback scheduler (join, prefetch, deadlines,
//!   stalls, skips, HTTP fallback, delay choice), driven by a clock passed in.
//! - [`watch`]: the async viewer carrying out the scheduler's actions: manifests by blocking
//!   reload ([`poller`]), segments from a librqbit swarm (re-seeded to other viewers while in the
//!   window), HTTP fallback with every piece verified, playback into a [`sink`], counters.

mod fallback;
pub mod poller;
pub mod schedule;
pub mod sink;
mod viewer;
pub mod watch;

pub use schedule::{ScheduleConfig, Scheduler};
pub use sink::SinkConfig;
pub use watch::{watch, Transport, WatchConfig, WatchError, WatchReady, WatchSummary};
