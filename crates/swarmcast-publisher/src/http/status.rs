//! The live dashboard: `GET /` (HTML, rendered on the server, so it reads without JavaScript)
//! and `GET /status.json` ([`Status`]), which the page's small inline script polls every second
//! to update itself without a reload. It shows what the publisher knows: the window, the peers
//! of each segment's swarm (from the embedded tracker; unknown without it), the upload rates
//! and the bytes sent over the swarm and over HTTP. How much viewers got from each other it
//! cannot see, so it shows no share of peer bytes.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::Shared;

/// The span of samples the upload rates are computed over, milliseconds.
pub const RATE_WINDOW_MS: u64 = 5_000;

/// A rate from samples of a growing byte counter over the last `window_ms` (sans-IO: the times
/// are passed in). The pipeline samples the counters at each housekeeping tick (every 250 ms).
#[derive(Debug, Clone)]
pub struct RateMeter {
    window_ms: u64,
    /// (time in ms, counter), oldest first.
    samples: VecDeque<(u64, u64)>,
}

impl RateMeter {
    /// A meter over the last `window_ms`.
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms,
            samples: VecDeque::new(),
        }
    }

    /// Records the counter's value `total` at `now_ms` (times that do not grow are ignored).
    pub fn sample(&mut self, now_ms: u64, total: u64) {
        if self.samples.back().is_some_and(|&(t, _)| t >= now_ms) {
            return;
        }
        self.samples.push_back((now_ms, total));
        self.evict(now_ms);
    }

    fn evict(&mut self, now_ms: u64) {
        let start = now_ms.saturating_sub(self.window_ms);
        while self.samples.front().is_some_and(|&(t, _)| t < start) {
            self.samples.pop_front();
        }
    }

    /// Bytes per second between the oldest and the newest sample within the window that ends
    /// at `now_ms`; None with fewer than two samples in it (no rate known: just started, or
    /// not sampled lately). A counter that went down counts as no bytes.
    pub fn rate(&self, now_ms: u64) -> Option<u64> {
        let start = now_ms.saturating_sub(self.window_ms);
        // Samples are in time order: the newest is the last, the oldest in the window the first
        // at or after its start.
        let (t1, b1) = *self.samples.back()?;
        let (t0, b0) = *self.samples.iter().find(|&&(t, _)| t >= start)?;
        let span = t1.checked_sub(t0).filter(|&s| s > 0)?;
        Some(b1.saturating_sub(b0).saturating_mul(1_000) / span)
    }
}

/// The rates the dashboard shows, sampled by [`Shared::sample_rates`].
#[derive(Debug)]
pub(crate) struct Rates {
    /// Payload bytes the swarm uploaded ([`Shared::uploaded_bytes`]).
    pub(crate) swarm: RateMeter,
    /// HTTP bodies sent ([`Shared::http_bytes_sent`]).
    pub(crate) http: RateMeter,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            swarm: RateMeter::new(RATE_WINDOW_MS),
            http: RateMeter::new(RATE_WINDOW_MS),
        }
    }
}

/// `GET /status.json`: what the dashboard shows. Byte counts are totals since the publisher
/// started; rates are bytes per second over the last [`RATE_WINDOW_MS`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    /// The stream link.
    pub link: String,
    /// The sequence number of the manifest being served (null before the first).
    pub manifest_seq: Option<u64>,
    /// The manifest being served ends the stream.
    pub end_of_stream: bool,
    /// Why the publisher stopped taking new segments, if it did.
    pub not_taking_segments: Option<String>,
    /// Why input is being dropped now (disk full, out of files), if it is.
    pub dropping_input: Option<String>,
    /// The embedded tracker runs (without it, `peers` is null: unknown).
    pub embedded_tracker: bool,
    /// The segments of the manifest's window, oldest first.
    pub segments: Vec<SegmentStatus>,
    /// The swarm's upload rate (payload bytes/s; null until two samples).
    pub swarm_upload_rate: Option<u64>,
    /// The HTTP server's upload rate (bytes/s of `http_bytes_sent`; null until two samples).
    pub http_upload_rate: Option<u64>,
    /// Payload bytes the swarm uploaded (the seeder's count; `swarmcast_swarm_uploaded_bytes_total`).
    pub swarm_bytes_sent: u64,
    /// HTTP body bytes sent: manifests, torrents and segment files (tracker answers are not
    /// counted).
    pub http_bytes_sent: u64,
    /// Of `http_bytes_sent`, segment files (viewers' HTTP fallbacks;
    /// `swarmcast_segment_http_bytes_total`).
    pub http_segment_bytes_sent: u64,
}

/// One segment of the window, in [`Status`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentStatus {
    /// Its number.
    pub number: u64,
    /// Media start, seconds.
    pub start_s: f64,
    /// Duration, seconds.
    pub duration_s: f64,
    /// Size in bytes.
    pub bytes: u64,
    /// Info hash, 40 hex characters.
    pub info_hash: String,
    /// Peers in its swarm known to the embedded tracker (the publisher not counted); null
    /// without the embedded tracker.
    pub peers: Option<usize>,
    /// Bytes of it sent over HTTP (fallbacks).
    pub http_bytes_sent: u64,
}

impl Shared {
    /// HTTP body bytes sent: manifests, torrents and segment files.
    pub fn http_bytes_sent(&self) -> u64 {
        let c = &self.counters;
        c.manifest_bytes.load(Ordering::Relaxed)
            + c.torrent_bytes.load(Ordering::Relaxed)
            + c.segment_bytes.load(Ordering::Relaxed)
    }

    /// Samples the byte counters for the dashboard's rates, at `now_ms` on [`Shared::now_ms`]'s
    /// clock (the pipeline does at each housekeeping tick).
    pub fn sample_rates(&self, now_ms: u64) {
        let (swarm, http) = (
            self.uploaded_bytes.load(Ordering::Relaxed),
            self.http_bytes_sent(),
        );
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        rates.swarm.sample(now_ms, swarm);
        rates.http.sample(now_ms, http);
    }

    /// What the dashboard shows now.
    pub fn status(&self) -> Status {
        let now = self.now_ms();
        let (swarm_upload_rate, http_upload_rate) = {
            let rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            (rates.swarm.rate(now), rates.http.rate(now))
        };
        let manifest = self.current();
        let mut segments = Vec::new();
        if let Some(m) = &manifest {
            let tracker = self
                .tracker
                .as_ref()
                .map(|t| t.lock().unwrap_or_else(|e| e.into_inner()));
            let served = self.segments.read().unwrap_or_else(|e| e.into_inner());
            for s in &m.manifest.segments {
                segments.push(SegmentStatus {
                    number: s.number,
                    start_s: s.media_start as f64 / 90_000.0,
                    duration_s: s.duration as f64 / 90_000.0,
                    bytes: s.size,
                    info_hash: s.info_hash.to_string(),
                    peers: tracker.as_ref().map(|t| t.peers(&s.info_hash.0)),
                    http_bytes_sent: served
                        .get(&s.number)
                        .map_or(0, |x| x.http_bytes.load(Ordering::Relaxed)),
                });
            }
        }
        Status {
            link: self.link.clone(),
            manifest_seq: manifest.as_ref().map(|m| m.manifest.seq),
            end_of_stream: manifest.as_ref().is_some_and(|m| m.manifest.end_of_stream),
            not_taking_segments: self
                .degraded
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            dropping_input: self.feed.failing(),
            embedded_tracker: self.tracker.is_some(),
            segments,
            swarm_upload_rate,
            http_upload_rate,
            swarm_bytes_sent: self.uploaded_bytes.load(Ordering::Relaxed),
            http_bytes_sent: self.http_bytes_sent(),
            http_segment_bytes_sent: self.counters.segment_bytes.load(Ordering::Relaxed),
        }
    }
}

/// `GET /status.json`.
pub(super) async fn status_json(State(shared): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_string(&shared.status()).unwrap_or_else(|e| {
        // Serialising plain numbers and strings cannot fail; say so if it ever does.
        format!("{{\"error\":{:?}}}", e.to_string())
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard.
pub(super) async fn status_page(State(shared): State<Arc<Shared>>) -> Html<String> {
    Html(render(&shared.status()))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A value, or "-" when unknown.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The notes above the table: the end of the stream, and why segments or input are dropped.
fn notes(s: &Status) -> String {
    let mut notes = String::new();
    if let Some(reason) = &s.not_taking_segments {
        notes.push_str(&format!(
            "<p><strong>Not taking new segments:</strong> {}</p>",
            escape(reason)
        ));
    }
    if let Some(reason) = &s.dropping_input {
        notes.push_str(&format!(
            "<p><strong>Dropping input:</strong> {}</p>",
            escape(reason)
        ));
    }
    if s.end_of_stream {
        notes.push_str("<p><strong>End of stream.</strong></p>");
    }
    notes
}

/// The page, with `s` rendered in it; [`SCRIPT`] keeps it current.
pub fn render(s: &Status) -> String {
    let mut page = String::from(
        "<!doctype html><meta charset=utf-8><title>swarmcast publisher</title>\
         <style>body{font-family:sans-serif}td,th{padding:0 .6em;text-align:right}\
         td:nth-child(5){font-family:monospace}</style><h1>swarmcast publisher</h1>",
    );
    page.push_str(&format!(
        "<p>Stream link: <code>{}</code></p><div id=notes>{}</div>",
        escape(&s.link),
        notes(s)
    ));
    page.push_str(&format!(
        "<table id=totals><tr><th>manifest seq<td id=manifest_seq>{}</tr>\
         <tr><th>swarm upload rate (bytes/s, last {} s)<td id=swarm_upload_rate>{}</tr>\
         <tr><th>HTTP upload rate (bytes/s, last {} s)<td id=http_upload_rate>{}</tr>\
         <tr><th>swarm bytes sent<td id=swarm_bytes_sent>{}</tr>\
         <tr><th>HTTP bytes sent<td id=http_bytes_sent>{}</tr>\
         <tr><th>of which segment files (fallbacks)<td id=http_segment_bytes_sent>{}</tr></table>",
        or_dash(s.manifest_seq),
        RATE_WINDOW_MS / 1_000,
        or_dash(s.swarm_upload_rate),
        RATE_WINDOW_MS / 1_000,
        or_dash(s.http_upload_rate),
        s.swarm_bytes_sent,
        s.http_bytes_sent,
        s.http_segment_bytes_sent,
    ));
    page.push_str(
        "<h2>Window</h2><table id=segments><thead><tr><th>#<th>start (s)<th>duration (s)\
         <th>bytes<th>info hash<th>peers<th>HTTP bytes sent</tr></thead><tbody id=segment_rows>",
    );
    for g in &s.segments {
        page.push_str(&format!(
            "<tr><td><a href=segments/{n:08}.ts>{n}</a><td>{:.3}<td>{:.3}<td>{}\
             <td><a href=segments/{n:08}.torrent>{}</a><td>{}<td>{}</tr>",
            g.start_s,
            g.duration_s,
            g.bytes,
            escape(&g.info_hash),
            or_dash(g.peers),
            g.http_bytes_sent,
            n = g.number
        ));
    }
    page.push_str("</tbody></table>");
    if s.manifest_seq.is_none() {
        page.push_str("<p id=no_manifest>No manifest yet.</p>");
    }
    page.push_str(
        "<p>Peers: from the embedded tracker (\"-\": unknown, the embedded tracker is off). \
         Updated <span id=updated>on load</span>. \
         <a href=manifest>manifest</a> · <a href=status.json>status.json</a> · \
         <a href=metrics>metrics</a></p>",
    );
    page.push_str(SCRIPT);
    page
}

/// The page's script: polls `status.json` every second and updates the totals, the notes and
/// the window's rows in place (text only: nothing it receives is parsed as HTML). Without
/// JavaScript the page shows what the server rendered.
pub const SCRIPT: &str = r#"<script>
"use strict";
(function () {
  var totals = ["manifest_seq", "swarm_upload_rate", "http_upload_rate", "swarm_bytes_sent",
    "http_bytes_sent", "http_segment_bytes_sent"];
  function show(v) { return v === null || v === undefined ? "-" : String(v); }
  function pad(n) { return String(n).padStart(8, "0"); }
  function cell(row, text, href) {
    var td = document.createElement("td");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
  }
  function note(parent, title, text) {
    var p = document.createElement("p");
    var b = document.createElement("strong");
    b.textContent = title;
    p.appendChild(b);
    if (text) { p.appendChild(document.createTextNode(" " + text)); }
    parent.appendChild(p);
  }
  function update(s) {
    totals.forEach(function (f) {
      var e = document.getElementById(f);
      if (e) { e.textContent = show(s[f]); }
    });
    var notes = document.createDocumentFragment();
    if (s.not_taking_segments) { note(notes, "Not taking new segments:", s.not_taking_segments); }
    if (s.dropping_input) { note(notes, "Dropping input:", s.dropping_input); }
    if (s.end_of_stream) { note(notes, "End of stream.", ""); }
    document.getElementById("notes").replaceChildren(notes);
    var rows = document.createDocumentFragment();
    s.segments.forEach(function (g) {
      var tr = document.createElement("tr");
      cell(tr, String(g.number), "segments/" + pad(g.number) + ".ts");
      cell(tr, g.start_s.toFixed(3));
      cell(tr, g.duration_s.toFixed(3));
      cell(tr, String(g.bytes));
      cell(tr, g.info_hash, "segments/" + pad(g.number) + ".torrent");
      cell(tr, show(g.peers));
      cell(tr, String(g.http_bytes_sent));
      rows.appendChild(tr);
    });
    document.getElementById("segment_rows").replaceChildren(rows);
    var none = document.getElementById("no_manifest");
    if (none && s.manifest_seq !== null) { none.remove(); }
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  }
  function poll() {
    fetch("status.json", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s) { update(s); } })
      .catch(function () {})
      .finally(function () { setTimeout(poll, 1000); });
  }
  setTimeout(poll, 1000);
})();
</script>"#;
