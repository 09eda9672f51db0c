// Plays a swarmcast viewer's page in Debian's Chromium through playwright-core, and checks that
// hls.js played the live HLS playlist: `node tests/browser/play.mjs http://ADDR OUT.png`.
//
// Passes (exit 0, a JSON report on stdout) once, with hls.js (not the browser's own HLS):
// currentTime advanced by at least 8 s across at least 3 segment joins (FRAG_CHANGED), at least
// 180 video frames were decoded, and no hls.js ERROR event or media error was seen. Then it
// reads the overlay's figures (after a /metrics scrape and two overlay refreshes, so that the
// figures shown fall between that scrape and the caller's next one), writes a screenshot to
// OUT.png, and prints {playback, advanced_s, joins, frames, dropped, segments, overlay,
// metrics_before}. Fails (exit 1, the reason on stderr) on an error, or after 60 s (hang guard).
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

// `node play.mjs --missing-hls-js http://ADDR`: the viewer found no hls.js; passes once the
// page shows the message naming the install commands and /hls.min.js answers 404 with it.
const missing = process.argv[2] === "--missing-hls-js";
const [base, out] = process.argv.slice(missing ? 3 : 2);
if (!base || (!out && !missing)) {
  console.error("usage: node play.mjs http://ADDR OUT.png | node play.mjs --missing-hls-js http://ADDR");
  process.exit(2);
}
const HANG_GUARD_MS = 60_000;
const WANT = { advanced_s: 8, joins: 3, frames: 180 };

// A fresh profile (in $TMPDIR), removed at the end.
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "swarmcast-chromium-"));
let context = null;

async function finish(code, text) {
  if (text) (code === 0 ? process.stdout : process.stderr).write(text + "\n");
  try {
    if (context) await context.close();
  } catch (e) { /* already gone */ }
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(code);
}

const guard = setTimeout(
  () => finish(1, `hang guard: not done after ${HANG_GUARD_MS / 1000} s: ${JSON.stringify(last)}`),
  HANG_GUARD_MS,
);
let last = null;

try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
    viewport: { width: 960, height: 600 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const segments = new Set();
  page.on("request", (r) => {
    const m = new URL(r.url()).pathname.match(/^\/segments\/(\d{8})\.ts$/);
    if (m) segments.add(Number(m[1]));
  });
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(base + "/watch");
  if (missing) {
    await page.waitForSelector("#message:not([hidden])", { timeout: 20_000 });
    const message = await page.textContent("#message");
    const js = await fetch(base + "/hls.min.js");
    const text = await js.text();
    for (const want of ["npm ci", "bash scripts/install-deps.sh", "--hls-js"]) {
      if (!message.includes(want)) await finish(1, `the page's message lacks ${want}: ${message}`);
      if (!text.includes(want)) await finish(1, `/hls.min.js lacks ${want}: ${text}`);
    }
    if (js.status !== 404) await finish(1, `/hls.min.js answered ${js.status}`);
    clearTimeout(guard);
    await finish(0, JSON.stringify({ message, hls_js_status: js.status }));
  }

  let start = null;
  for (;;) {
    last = await page.evaluate(() => {
      const v = document.getElementById("video");
      const q = v.getVideoPlaybackQuality();
      return {
        playback: window.swarmcastPlayback,
        errors: window.swarmcastErrors,
        frags: window.swarmcastFrags,
        time: v.currentTime,
        playing: v.readyState >= 2 && !v.paused,
        frames: q.totalVideoFrames,
        dropped: q.droppedVideoFrames,
      };
    });
    if (consoleErrors.length) await finish(1, "page error: " + consoleErrors.join("; "));
    if (last.errors.length) await finish(1, "playback error: " + JSON.stringify(last.errors));
    if (last.playback === "native") await finish(1, "played natively, not with hls.js");
    if (start === null && last.playing) start = last.time;
    const joins = Math.max(0, new Set(last.frags).size - 1);
    const advanced = start === null ? 0 : last.time - start;
    if (advanced >= WANT.advanced_s && joins >= WANT.joins && last.frames >= WANT.frames) {
      last.joins = joins;
      last.advanced_s = advanced;
      break;
    }
    await page.waitForTimeout(250);
  }
  if (last.playback !== "hls.js") await finish(1, "not played by hls.js: " + last.playback);

  // The overlay, between this scrape and the caller's next one: two refreshes after it (the
  // first may have been fetched before it).
  const metrics = await (await fetch(base + "/metrics")).text();
  const count = await page.evaluate(() => window.swarmcastStatus.count);
  await page.waitForFunction((c) => window.swarmcastStatus.count >= c + 2, count, {
    timeout: 10_000,
    polling: 100,
  });
  const overlay = await page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent;
    const num = (id) => {
      const n = parseFloat(text(id));
      return Number.isNaN(n) ? null : n;
    };
    return {
      text: document.getElementById("overlay").innerText,
      peers: num("peers"),
      share_pct: num("share"),
      buffer_s: num("buffer"),
      stalls: num("stalls"),
      setup_ms: num("setup"),
    };
  });
  await page.screenshot({ path: out });
  const errors = await page.evaluate(() => window.swarmcastErrors);
  if (errors.length) await finish(1, "playback error: " + JSON.stringify(errors));
  clearTimeout(guard);
  await finish(0, JSON.stringify({
    playback: last.playback,
    advanced_s: last.advanced_s,
    joins: last.joins,
    frames: last.frames,
    dropped: last.dropped,
    segments: [...segments].sort((a, b) => a - b),
    overlay,
    metrics_before: metrics,
  }));
} catch (e) {
  await finish(1, "failed: " + (e && e.stack ? e.stack : e));
}
