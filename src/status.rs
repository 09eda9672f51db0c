//! `swarmcast watch`'s status line on a terminal, and the log writer that keeps it whole.
//!
//! The line is an `indicatif` spinner drawn to stderr whose message is [`line`] of the viewer's
//! [`LiveSnapshot`], redrawn each [`REFRESH`] and on each change of the live state (at most once
//! per [`MIN_INTERVAL`]). While it is shown, every log line goes through [`LogWriter`], which
//! takes the bar off the screen, writes the line and draws the bar again below it
//! (`ProgressBar::suspend`), so neither garbles the other.

use std::io::Write;
use std::sync::RwLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use swarmcast_viewer::live::{Live, LiveSnapshot};

/// The status line is redrawn at least this often (peers and the rate are sampled each second).
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// The status line is redrawn at most this often, however often the live state changes.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// The bar shown now, if any: [`LogWriter`] suspends it around each log line.
static SHOWN: RwLock<Option<ProgressBar>> = RwLock::new(None);

/// The status line for `s`, e.g. `segment 41 · buffer 6.0 s · 5 peers · 72% from peers · 0
/// stalls · 1.2 MB/s`. A figure not known yet reads `–`: the segment before the first is
/// played, the share from peers before any swarm byte. Skipped segments are added when there
/// are any, and `stream ended` once the end-of-stream manifest is in.
pub(crate) fn line(s: &LiveSnapshot) -> String {
    let mut fields = vec![
        match s.playing {
            Some(n) => format!("segment {n}"),
            None => "segment –".to_owned(),
        },
        format!("buffer {:.1} s", s.buffer_ahead_ms as f64 / 1000.0),
        plural(s.peers, "peer", "peers"),
        match s.peer_share() {
            Some(share) => format!("{} from peers", percent(share)),
            None => "– from peers".to_owned(),
        },
        plural(s.stalls, "stall", "stalls"),
        rate(s.download_rate),
    ];
    if s.skipped > 0 {
        fields.push(format!("{} skipped", s.skipped));
    }
    if s.end_of_stream {
        fields.push("stream ended".to_owned());
    }
    fields.join(" · ")
}

/// `line` cut to `width` characters (its characters are one column each), the cut marked `…`:
/// a line longer than the terminal would wrap, and then each redraw would leave a line behind.
/// (indicatif's `wide_msg` cuts by bytes, mid-character for `·`.)
pub(crate) fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        cut.push('…');
    }
    cut
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A share (0 to 1) as a whole percentage that says 0% only for none and 100% only for all.
fn percent(share: f64) -> String {
    let mut p = (share * 100.0).round();
    if share > 0.0 && p == 0.0 {
        return "<1%".to_owned();
    }
    if share < 1.0 && p == 100.0 {
        p = 99.0;
    }
    format!("{p:.0}%")
}

/// Bytes per second in decimal units with one decimal (`950 B/s`, `12.3 kB/s`, `1.2 MB/s`).
fn rate(bytes_per_sec: u64) -> String {
    if bytes_per_sec < 1000 {
        return format!("{bytes_per_sec} B/s");
    }
    let mut value = bytes_per_sec as f64 / 1000.0;
    for unit in ["kB/s", "MB/s", "GB/s"] {
        // Rounded to one decimal, 999.96 would read 1000.0: that is the next unit's 1.0.
        if value < 999.95 || unit == "GB/s" {
            return format!("{value:.1} {unit}");
        }
        value /= 1000.0;
    }
    unreachable!("the last unit returns")
}

/// The status line while it is shown: redrawn by a task of its own until [`clear`](Self::clear)
/// (or drop) takes it off the screen.
pub(crate) struct StatusLine {
    bar: ProgressBar,
    tasks: swarmcast_tasks::Tasks,
}

impl StatusLine {
    /// Shows the status line of `live` on stderr and keeps it up to date. Call it only when
    /// stderr is a terminal (`indicatif` would hide it otherwise anyway).
    pub(crate) fn start(live: Live) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .expect("a valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
        );
        if let Ok(mut shown) = SHOWN.write() {
            *shown = Some(bar.clone());
        }
        let tasks = swarmcast_tasks::Tasks::new("status-line");
        tasks.spawn("refresh", refresh(bar.clone(), live));
        Self { bar, tasks }
    }

    /// Stops the redrawing and takes the line off the screen (before the summary is printed).
    pub(crate) async fn clear(self) {
        self.tasks.shutdown().await;
    }
}

impl Drop for StatusLine {
    /// Takes the line off the screen. Without [`clear`](Self::clear), the task may still draw
    /// once before it sees the cancellation.
    fn drop(&mut self) {
        self.tasks.cancel();
        if let Ok(mut shown) = SHOWN.write() {
            *shown = None;
        }
        self.bar.finish_and_clear();
    }
}

/// Redraws `bar` with the live state: at once, then on each change (no sooner than
/// [`MIN_INTERVAL`] after the last draw) or after [`REFRESH`] without one.
async fn refresh(bar: ProgressBar, live: Live) {
    let mut rx = live.subscribe();
    loop {
        let snapshot = rx.borrow_and_update().clone();
        // The spinner and a space before it, and the last column left free (a character there
        // moves some terminals' cursor to the next line).
        let width = console::Term::stderr()
            .size_checked()
            .map_or(usize::MAX, |(_rows, cols)| {
                usize::from(cols).saturating_sub(3)
            });
        bar.set_message(fit(&line(&snapshot), width));
        bar.tick();
        let drawn = tokio::time::Instant::now();
        if let Ok(Err(_)) = tokio::time::timeout(REFRESH, rx.changed()).await {
            // The viewer is gone (it cannot be while `live` is held): redraw on the clock only.
            tokio::time::sleep(REFRESH).await;
        }
        tokio::time::sleep_until(drawn + MIN_INTERVAL).await;
    }
}

/// Runs `f` (which writes to stderr) with the status line, if shown, off the screen.
fn above_the_status_line<R>(f: impl FnOnce() -> R) -> R {
    let shown = SHOWN.read().ok().and_then(|s| s.clone());
    match shown {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// `tracing_subscriber`'s writer for stderr: each log line is written above the status line
/// while one is shown, as plain stderr otherwise.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// The formatter writes each event whole with one call: one suspension per line.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        above_the_status_line(|| std::io::stderr().lock().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> LiveSnapshot {
        LiveSnapshot {
            playing: Some(41),
            buffer_ahead_ms: 6_000,
            peers: 5,
            from_publisher: 28,
            from_peers: 72,
            stalls: 0,
            download_rate: 1_200_000,
            ..LiveSnapshot::default()
        }
    }

    #[test]
    fn the_status_line_shows_every_figure() {
        assert_eq!(
            line(&snapshot()),
            "segment 41 · buffer 6.0 s · 5 peers · 72% from peers · 0 stalls · 1.2 MB/s"
        );
        let s = LiveSnapshot {
            peers: 1,
            stalls: 1,
            skipped: 2,
            end_of_stream: true,
            ..snapshot()
        };
        assert_eq!(
            line(&s),
            "segment 41 · buffer 6.0 s · 1 peer · 72% from peers · 1 stall · 1.2 MB/s · 2 skipped · stream ended"
        );
        let s = LiveSnapshot {
            stalls: 3,
            ..snapshot()
        };
        assert!(line(&s).contains(" · 3 stalls · "));
    }

    #[test]
    fn figures_not_known_yet_read_a_dash() {
        assert_eq!(
            line(&LiveSnapshot::default()),
            "segment – · buffer 0.0 s · 0 peers · – from peers · 0 stalls · 0 B/s"
        );
        // Bytes over HTTP only (a fallback, or `--transport http`): still no swarm bytes.
        let s = LiveSnapshot {
            from_http: 1_000,
            ..LiveSnapshot::default()
        };
        assert!(line(&s).contains(" · – from peers · "), "{}", line(&s));
        // Swarm bytes, none from peers: a true zero.
        let s = LiveSnapshot {
            from_publisher: 1_000,
            ..LiveSnapshot::default()
        };
        assert!(line(&s).contains(" · 0% from peers · "), "{}", line(&s));
    }

    #[test]
    fn the_buffer_is_rounded_to_a_tenth_of_a_second() {
        for (ms, text) in [
            (0, "0.0"),
            (49, "0.0"),
            (51, "0.1"),
            (1_949, "1.9"),
            (1_951, "2.0"),
            (62_000, "62.0"),
        ] {
            let s = LiveSnapshot {
                buffer_ahead_ms: ms,
                ..snapshot()
            };
            assert!(
                line(&s).contains(&format!(" · buffer {text} s · ")),
                "{ms} ms: {}",
                line(&s)
            );
        }
    }

    #[test]
    fn the_share_reads_0_and_100_only_when_exact() {
        for (peers, publisher, text) in [
            (0, 10, "0%"),
            (1, 999, "<1%"),
            (1, 99, "1%"),
            (1, 1, "50%"),
            (995, 5, "99%"),
            (999, 1, "99%"),
            (10, 0, "100%"),
        ] {
            let s = LiveSnapshot {
                from_peers: peers,
                from_publisher: publisher,
                ..snapshot()
            };
            assert_eq!(
                percent(s.peer_share().unwrap()),
                text,
                "{peers}/{publisher}"
            );
        }
    }

    #[test]
    fn a_line_wider_than_the_terminal_is_cut() {
        let text = line(&snapshot());
        assert_eq!(fit(&text, 200), text);
        assert_eq!(fit(&text, text.chars().count()), text);
        let cut = fit(&text, 20);
        assert_eq!(cut, "segment 41 · buffer…");
        assert_eq!(cut.chars().count(), 20);
        assert_eq!(fit(&text, 1), "…");
        assert_eq!(fit(&text, 0), "");
    }

    #[test]
    fn rates_are_in_decimal_units() {
        for (bps, text) in [
            (0, "0 B/s"),
            (999, "999 B/s"),
            (1_000, "1.0 kB/s"),
            (12_345, "12.3 kB/s"),
            (999_949, "999.9 kB/s"),
            (999_960, "1.0 MB/s"),
            (1_200_000, "1.2 MB/s"),
            (2_500_000_000, "2.5 GB/s"),
            (5_000_000_000_000, "5000.0 GB/s"),
        ] {
            assert_eq!(rate(bps), text, "{bps}");
        }
    }
}
