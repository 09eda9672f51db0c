use super::*;
use crate::live::LiveSegment;

/// A server on a free port with `hls_js`; its address, live state, stream sender and tasks.
async fn serve(
    dir: &std::path::Path,
    hls_js: Option<PathBuf>,
) -> (String, Live, broadcast::Sender<Bytes>, Tasks) {
    let live = Live::default();
    let tasks = Tasks::new("http-test");
    let parts = PlaybackParts {
        hls_dir: dir.join(HLS_DIR),
        hls_js,
    };
    let server = start(
        ([127, 0, 0, 1], 0).into(),
        live.clone(),
        Some(parts),
        &tasks,
    )
    .await
    .unwrap();
    let (tx, _) = server.playback.unwrap();
    (format!("http://{}", server.addr), live, tx, tasks)
}

async fn get(url: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn each_path_answers_what_it_serves() {
    let t = tempfile::tempdir().unwrap();
    let (base, live, tx, tasks) = serve(t.path(), None).await;
    let html = "text/html,application/xhtml+xml,*/*;q=0.8";

    // A browser at / gets the page; so does anyone at /watch.
    for (path, accept) in [("/", html), ("/watch", "*/*")] {
        let (status, ct, body) = get(&format!("{base}{path}"), accept).await;
        assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("swarmcastPlayback"));
    }
    // hls.js was not found: 404 with the install command.
    let (status, _, body) = get(&format!("{base}/hls.min.js"), "*/*").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8(body).unwrap().contains("npm ci"));
    // No segment yet: the playlist says to retry.
    assert_eq!(get(&format!("{base}/live.m3u8"), "*/*").await.0, 503);
    for bad in [
        "/segments/00000000.ts",
        "/segments/abc.ts",
        "/segments/1.ts",
    ] {
        assert_eq!(get(&format!("{base}{bad}"), "*/*").await.0, 404, "{bad}");
    }

    // A segment verified: listed, served.
    let path = t.path().join("00000004.ts");
    std::fs::write(&path, b"segment four").unwrap();
    live.update(|s| s.target_duration = Some(90_000));
    live.verified(LiveSegment {
        number: 4,
        duration: 90_000,
        discontinuity: false,
        published_ms: 0,
        size: 12,
        path,
    });
    let (status, ct, body) = get(&format!("{base}/live.m3u8"), "*/*").await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/vnd.apple.mpegurl")
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{text}");
    let (status, ct, body) = get(&format!("{base}/segments/00000004.ts"), "*/*").await;
    assert_eq!(
        (status, ct.as_str(), body.as_slice()),
        (200, "video/mp2t", &b"segment four"[..])
    );

    // A player at / and anyone at /stream.ts get the stream from the next segment on.
    for path in ["/", "/stream.ts"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.headers()["content-type"], "video/mp2t");
        let mut r = r;
        // The subscription is in place once the headers came.
        tx.send(Bytes::from_static(b"next")).unwrap();
        assert_eq!(r.chunk().await.unwrap().unwrap().as_ref(), b"next");
    }

    // The figures.
    live.update(|s| {
        s.from_peers = 3;
        s.from_publisher = 1;
        s.stalls = 2;
    });
    let (status, ct, body) = get(&format!("{base}/status.json"), "*/*").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["peer_share"], 0.75);
    assert_eq!(v["stalls"], 2);
    let (_, ct, body) = get(&format!("{base}/metrics"), "*/*").await;
    assert_eq!(ct, metrics::PROMETHEUS_CONTENT_TYPE);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("\nswarmcast_viewer_stalls_total 2\n"));
    let (_, ct, body) = get(
        &format!("{base}/metrics"),
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )
    .await;
    assert_eq!(ct, metrics::CONTENT_TYPE);
    assert!(String::from_utf8(body).unwrap().ends_with("# EOF\n"));

    // Playback over: the stream ends for its clients.
    drop(tx);
    assert_eq!(get(&format!("{base}/stream.ts"), "*/*").await.0, 410);
    tasks.shutdown().await;
}

#[tokio::test]
async fn hls_js_is_served_from_the_file_found() {
    let t = tempfile::tempdir().unwrap();
    let js = t.path().join("hls.min.js");
    std::fs::write(&js, "var Hls = {};").unwrap();
    let (base, _, _tx, tasks) = serve(t.path(), Some(js)).await;
    let (status, ct, body) = get(&format!("{base}/hls.min.js"), "*/*").await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    assert_eq!(body, b"var Hls = {};");
    tasks.shutdown().await;
}

/// Without an HTTP output (`--metrics-addr`): the figures, nothing else.
#[tokio::test]
async fn a_metrics_server_serves_the_figures_alone() {
    let live = Live::default();
    let tasks = Tasks::new("http-test");
    let server = start(([127, 0, 0, 1], 0).into(), live, None, &tasks)
        .await
        .unwrap();
    assert!(server.playback.is_none() && server.hls.is_none());
    let base = format!("http://{}", server.addr);
    assert_eq!(get(&format!("{base}/metrics"), "*/*").await.0, 200);
    assert_eq!(get(&format!("{base}/status.json"), "*/*").await.0, 200);
    for path in ["/", "/watch", "/live.m3u8", "/stream.ts", "/hls.min.js"] {
        assert_eq!(get(&format!("{base}{path}"), "*/*").await.0, 404, "{path}");
    }
    tasks.shutdown().await;
}
