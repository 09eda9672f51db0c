//! swarmcast's viewer.
//!
//! - [`schedule`]: the sans-IO prefetch and playback scheduler (join, prefetch, deadlines,
//!   stalls, skips, HTTP fallback, delay choice), driven by a clock passed in.

pub mod schedule;
