//! swarmcast's viewer.
//!
//! - [`schedule`]: the sans-IO prefetch and playback scheduler (join, prefetch, deadlines,
//!   stalls, skips, HTTP fallback, delay choice), driven by a clock passed in.
//! - [`watch`](mod@watch): the async viewer carrying out the scheduler's actions: manifests by blocking
//!   reload ([`poller`]), segments from a librqbit swarm (re-seeded to other viewers while in the
//!   window), HTTP fallback with every piece verified, playback into a [`sink`], counters.
//!   Every task it starts is spawned through one `swarmcast_tasks::Tasks` group, shut down
//!   (cancelled, then awaited) before it returns.
//! - [`live`]: what the viewer is doing now (playing, buffer, peers, bytes, verified segments),
//!   for the status line, the HLS playlist, the page's overlay and `/metrics`.
//! - [`http`]: the playback server of `--http-out` (the stream, a live HLS playlist with its
//!   segments, a page playing it with hls.js, `/status.json`, `/metrics`), or `/metrics` alone
//!   on `--metrics-addr`.
//! - `io` (private): the traits the viewer's loop runs on (swarm, HTTP, sink), so the unit
//!   tests run it against fakes (`fakes`) on a paused clock.

mod carried;
#[cfg(test)]
mod fakes;
mod fallback;
pub mod http;
pub mod inspect;
mod io;
pub mod live;
pub mod poller;
pub mod schedule;
pub mod sink;
mod viewer;
pub mod watch;

pub use live::{Live, LiveSegment, LiveSnapshot};
pub use schedule::{ScheduleConfig, Scheduler};
pub use sink::SinkConfig;
pub use watch::{watch, Transport, WatchConfig, WatchError, WatchReady, WatchSummary};
