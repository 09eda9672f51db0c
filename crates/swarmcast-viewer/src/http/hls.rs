//! The HLS side of the playback server: the playlist built from the live state
//! ([`playlist`](super::playlist)), and the segment files kept for HLS clients
//! ([`retain`](super::retain)) as hard links (or copies) in a directory of their own.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::playlist::{self, HlsTimeline, Playlist, PlaylistSegment};
use super::retain::Retention;
use crate::live::{Live, LiveSnapshot};

/// The longest the playback server stays up after the end of the stream for HLS clients to
/// finish (the retention of the last playlist's segments, capped).
pub(crate) const MAX_LINGER: Duration = Duration::from_secs(60);

/// The playlist and the kept segments, shared by the server's handlers and its sync task.
pub(crate) struct Hls {
    live: Live,
    /// Where kept segments are linked.
    dir: PathBuf,
    origin: Instant,
    state: Mutex<State>,
}

struct State {
    timeline: HlsTimeline,
    retention: Retention,
    /// The stream's `EXT-X-TARGETDURATION`, fixed by the first manifest.
    target: Option<u64>,
    /// The last playlist built; `None` before the first segment is verified.
    playlist: Option<Playlist>,
    /// Playback ended: the playlist no longer follows the live state.
    finished: bool,
    /// A segment longer than the target duration was warned of.
    warned_long: bool,
}

/// A kept segment's file name.
pub(crate) fn file_name(n: u64) -> String {
    format!("{n:08}.ts")
}

impl Hls {
    /// HLS over `live`, keeping segments in `dir` (created, emptied).
    pub(crate) fn new(live: Live, dir: PathBuf) -> std::io::Result<Self> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            live,
            dir,
            origin: Instant::now(),
            state: Mutex::new(State {
                timeline: HlsTimeline::new(),
                retention: Retention::new(),
                target: None,
                playlist: None,
                finished: false,
                warned_long: false,
            }),
        })
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Brings the playlist up to date with the live state, keeps the files of newly listed
    /// segments and removes those whose retention ended.
    pub(crate) fn sync(&self) {
        // The snapshot is taken under the lock: a caller holding an older one (an HTTP request
        // racing the sync task) must not rebuild after a newer one (segments back, the media
        // sequence backwards, discontinuities counted twice).
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let snap = self.live.snapshot();
        if !st.finished {
            self.rebuild(&mut st, &snap, false);
        }
        self.expire(&mut st);
    }

    fn rebuild(&self, st: &mut State, snap: &LiveSnapshot, end: bool) {
        let Some(target) = st
            .target
            .or(snap.target_duration.map(playlist::target_duration_secs))
        else {
            return;
        };
        st.target = Some(target);
        let segments: Vec<PlaylistSegment> = snap
            .segments
            .iter()
            .map(|s| PlaylistSegment {
                number: s.number,
                duration: s.duration,
                discontinuity: s.discontinuity,
                date_ms: s.published_ms.saturating_sub(s.duration / 90),
            })
            .collect();
        if segments.is_empty() && st.playlist.is_none() {
            return;
        }
        let playlist = st.timeline.update(target, &segments, end);
        if let Some(s) = playlist
            .segments
            .iter()
            .find(|s| (s.duration + 45_000) / 90_000 > target)
        {
            // Not from swarmcast's segmenter (it cuts within twice the target): an encoder's
            // files (--watch-dir) may be longer. The target cannot change (RFC 8216 §6.2.1).
            if !std::mem::replace(&mut st.warned_long, true) {
                tracing::warn!(
                    segment = s.number,
                    duration_ms = s.duration / 90,
                    target_s = target,
                    "a segment is longer than the HLS playlist's target duration: strict players may refuse the playlist"
                );
            }
        }
        for n in st.retention.listed(&playlist, self.now_ms()) {
            let Some(src) = snap.segments.iter().find(|s| s.number == n) else {
                continue;
            };
            if let Err(e) = keep(&src.path, &self.dir.join(file_name(n))) {
                tracing::warn!(segment = n, error = %e, "cannot keep the segment for HLS clients");
                st.retention.drop_segment(n);
            }
        }
        st.playlist = Some(playlist);
    }

    fn expire(&self, st: &mut State) {
        for n in st.retention.expire(self.now_ms()) {
            let _ = std::fs::remove_file(self.dir.join(file_name(n)));
        }
    }

    /// Playback ended (the sink was closed): the playlist is frozen with what the viewer
    /// verified, ended (`EXT-X-ENDLIST`) if the stream did. Returns how long HLS clients need
    /// the server for: the longest retention of a listed segment, at most [`MAX_LINGER`].
    pub(crate) fn finish(&self) -> Duration {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let snap = self.live.snapshot();
        if !st.finished {
            self.rebuild(&mut st, &snap, snap.end_of_stream);
            st.finished = true;
        }
        let linger = st.playlist.as_ref().map_or(0, |p| {
            let longest = p.segments.iter().map(|s| s.duration).max().unwrap_or(0);
            p.duration_ms() + longest / 90
        });
        Duration::from_millis(linger).min(MAX_LINGER)
    }

    /// The playlist's text, `None` before the first segment is verified.
    pub(crate) fn playlist(&self) -> Option<String> {
        self.sync();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.playlist
            .as_ref()
            .map(|p| playlist::render(p, |n| format!("/segments/{}", file_name(n))))
    }

    /// A kept segment's file, if `n` is kept.
    pub(crate) fn segment_path(&self, n: u64) -> Option<PathBuf> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.retention
            .contains(n)
            .then(|| self.dir.join(file_name(n)))
    }

    /// Removes the kept files and their directory.
    pub(crate) fn remove_files(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Keeps `src` at `dest`: a hard link, or a copy where links are not possible.
fn keep(src: &Path, dest: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(dest);
    match std::fs::hard_link(src, dest) {
        Ok(()) => Ok(()),
        Err(_) => std::fs::copy(src, dest).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveSegment;

    /// Segments listed are linked, stay after the viewer deletes its own file, and are removed
    /// at the end of their retention; the frozen playlist ends with `EXT-X-ENDLIST`.
    #[tokio::test(start_paused = true)]
    async fn listed_segments_are_kept_past_their_deletion_and_then_removed() {
        let t = tempfile::tempdir().unwrap();
        let live = Live::default();
        let hls = Hls::new(live.clone(), t.path().join("hls")).unwrap();
        assert_eq!(hls.playlist(), None, "no manifest yet");
        live.update(|s| s.target_duration = Some(2 * 90_000));
        assert_eq!(hls.playlist(), None, "no segment yet");
        let seg = |n: u64| {
            let path = t.path().join(file_name(n));
            std::fs::write(&path, format!("segment {n}")).unwrap();
            LiveSegment {
                number: n,
                duration: 2 * 90_000,
                discontinuity: false,
                published_ms: 0,
                size: 9,
                path,
            }
        };
        for n in 0..3 {
            live.verified(seg(n));
        }
        let text = hls.playlist().unwrap();
        assert!(text.contains("#EXT-X-TARGETDURATION:4\n"), "{text}");
        assert!(text.contains("/segments/00000002.ts"), "{text}");
        // The viewer forgets 0 and deletes its file: the kept copy stays.
        live.forgotten(0);
        std::fs::remove_file(t.path().join(file_name(0))).unwrap();
        hls.sync();
        let kept = hls.segment_path(0).expect("kept");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "segment 0");
        assert!(!hls.playlist().unwrap().contains("00000000.ts"));
        // 2 s + the 6 s playlist after it left.
        tokio::time::advance(Duration::from_millis(7_900)).await;
        hls.sync();
        assert!(hls.segment_path(0).is_some());
        tokio::time::advance(Duration::from_millis(200)).await;
        hls.sync();
        assert!(hls.segment_path(0).is_none());
        assert!(!kept.exists());
        assert!(hls.segment_path(7).is_none());
        // The end: frozen, ended, and the forgets that follow change nothing.
        live.update(|s| s.end_of_stream = true);
        let linger = hls.finish();
        assert_eq!(linger, Duration::from_secs(6));
        live.forgotten(1);
        let text = hls.playlist().unwrap();
        assert!(text.ends_with("00000002.ts\n#EXT-X-ENDLIST\n"), "{text}");
        assert!(text.contains("00000001.ts"), "{text}");
        hls.remove_files();
        assert!(!t.path().join("hls").exists());
    }
}
