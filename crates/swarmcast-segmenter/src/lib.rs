//! Cutting a live feed into self-contained segments.
//!
//! - [`TsCutter`]: MPEG-TS in, segments that each start at a keyframe (right before the PSI run that
//!   precedes it) out; resynchronises after garbage; handles PTS wrap-around and discontinuities.
//! - [`ClockCutter`]: any other byte stream, cut by wall-clock time.
//! - [`synth`]: an endless, playable synthetic MPEG-TS feed for demos, tests and the lab.
//! - [`source`]: the async edge: stdin, a growing file, or an encoder's output directory, driven
//!   into segment files by [`source::segment_stream`] and [`source::watch_dir`].
//!
//! The cutters are sans-IO (bytes and times in, [`Output`]s out) and unit-tested on TS built in
//! the tests; docs/segmenting.md gives the cutting rule.

pub mod cutter;
pub mod framer;
pub mod source;
pub mod synth;
pub mod timeline;
pub mod ts;
pub mod verbs;

#[cfg(test)]
mod testts;

pub use cutter::{ClockCutter, CutterConfig, CutterStats, Output, SegmentMeta, TsCutter};
