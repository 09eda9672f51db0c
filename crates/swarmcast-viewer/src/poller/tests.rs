//! The poller: staleness on a given clock, the document cap on a real socket, and the backoff
//! and recovery of failed fetches on a paused clock against a fake HTTP side.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use swarmcast_tasks::Tasks;

use super::*;
use crate::fakes::{FakeHttp, ManifestAnswer, Stream};

/// A server that answers one request with an endless chunked body (no length header), a task
/// of `tasks`.
async fn endless_source(tasks: &Tasks) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tasks.spawn("endless-source", async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = [0u8; 1024];
        let _ = sock.read(&mut req).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-bittorrent\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = [b'd'; 64 * 1024];
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        // Until the client hangs up, or 60 s (a bound: longer than the fetch's own 30 s
        // timeout, so a client that reads it all ends on that timeout, not on the cap).
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < until {
            if sock.write_all(&framed).await.is_err() {
                return;
            }
            // 6.4 MB/s: past the cap in a fraction of a second, and a client that reads
            // it all holds some 200 MB at its timeout, not gigabytes.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    Url::parse(&format!("http://{addr}/manifest")).unwrap()
}

/// On a given clock: 3 targets behind another source, 5 in any case, and a healthy long poll
/// (a new manifest every target, or a 10 s hold on one-minute segments) never.
#[test]
fn a_source_is_stale_after_three_targets_behind_another_or_five_in_any_case() {
    let t = Duration::from_secs(2);
    let at = Instant::now();
    let after = |d: Duration| at + d;
    // Alone: 5 targets.
    assert!(!is_stale(
        after(t * 5 - Duration::from_millis(1)),
        at,
        Some(at),
        t
    ));
    assert!(is_stale(after(t * 5), at, Some(at), t));
    assert!(!is_stale(after(t * 4), at, None, t));
    // Another source advanced since: 3 targets.
    let other = Some(after(t));
    assert!(!is_stale(
        after(t * 3 - Duration::from_millis(1)),
        at,
        other,
        t
    ));
    assert!(is_stale(after(t * 3), at, other, t));
    // One-minute segments, a held request answered unchanged after 10 s: healthy.
    let minute = Duration::from_secs(60);
    assert!(!is_stale(after(Duration::from_secs(10)), at, other, minute));
    assert!(!is_stale(after(minute), at, other, minute));
}

#[tokio::test]
async fn an_endless_manifest_body_is_refused_once_past_the_cap() {
    let tasks = Tasks::new("test");
    let url = endless_source(&tasks).await;
    let client = reqwest::Client::new();
    let err = client.manifest(&url, FETCH_TIMEOUT).await.unwrap_err();
    tasks.shutdown().await;
    assert!(
        err.contains("larger than the 1048576 bytes allowed"),
        "{err}"
    );
}

/// Runs the poller on `http` until it returns or `until_ms` of virtual time: the events it sent,
/// each with its virtual time (ms), and when it returned, if it did.
async fn poll_for(
    http: &FakeHttp,
    link: StreamLink,
    until_ms: u64,
) -> (Vec<(u64, PollEvent)>, Option<u64>) {
    let origin = Instant::now();
    let ms = move || origin.elapsed().as_millis() as u64;
    let (tx, mut rx) = mpsc::channel(16);
    let poller = poll_with(http, link, true, tx, CancellationToken::new());
    let run = async {
        tokio::select! {
            () = poller => Some(ms()),
            // Dropping the poller closes the channel.
            () = tokio::time::sleep(Duration::from_millis(until_ms)) => None,
        }
    };
    let collect = async {
        let mut events = Vec::new();
        // Bounded: the channel closes when the poller returns or is dropped.
        while let Some(event) = rx.recv().await {
            events.push((ms(), event));
        }
        events
    };
    let (returned, events) = tokio::join!(run, collect);
    (events, returned)
}

fn kinds(events: &[(u64, PollEvent)]) -> Vec<(u64, &'static str)> {
    events
        .iter()
        .map(|(at, e)| {
            let kind = match e {
                PollEvent::Manifest { .. } => "manifest",
                PollEvent::Refused { .. } => "refused",
                PollEvent::Unreachable { .. } => "unreachable",
            };
            (*at, kind)
        })
        .collect()
}

/// Failed fetches are retried after 100 ms, doubling up to 5 s; the first success resets the
/// backoff (the next failure waits 100 ms again), and then the poller holds a blocking reload.
#[tokio::test(start_paused = true)]
async fn failed_fetches_back_off_doubling_up_to_five_seconds_then_recover() {
    let stream = Stream::new(2);
    let http = FakeHttp::new(&stream, Instant::now());
    http.publish(0, 1, stream.manifest(1, 0..=0, false));
    http.publish(20_000, 2, stream.manifest(2, 0..=1, false));
    let fail = ManifestAnswer::Fail("connection refused");
    let mut script = vec![fail.clone(); 8];
    script.extend([ManifestAnswer::Serve, fail]);
    http.script(script);
    let (events, returned) = poll_for(&http, stream.link(), 25_000).await;
    assert_eq!(returned, None);
    let times: Vec<u64> = http.manifest_requests().iter().map(|r| r.0).collect();
    // 8 failures: waits of 100, 200, 400, 800, 1600, 3200, then 5000 (the cap) twice; the 9th
    // request is served; the 10th fails and waits 100 ms, not 5 s; the 11th is held until the
    // next manifest (20 s), and the 12th is still held when the test ends.
    assert_eq!(
        times,
        [0, 100, 300, 700, 1_500, 3_100, 6_300, 11_300, 16_300, 16_300, 16_400, 20_000]
    );
    let mut expected: Vec<(u64, &str)> = times[..8].iter().map(|t| (*t, "unreachable")).collect();
    expected.extend([
        (16_300, "manifest"),
        (16_300, "unreachable"),
        (20_000, "manifest"),
    ]);
    assert_eq!(kinds(&events), expected);
    // Once it holds a manifest it asks for what comes after it, as a delta.
    let queries: Vec<String> = http.manifest_requests().into_iter().map(|r| r.1).collect();
    assert_eq!(queries[0], "after=0");
    assert_eq!(queries[10], "after=1&delta=1");
    assert_eq!(queries[11], "after=2&delta=1");
}

/// A server that answers a blocking reload at once with the same manifest does not hold
/// requests: the poller switches to plain polling, every quarter of a target duration.
#[tokio::test(start_paused = true)]
async fn a_server_that_does_not_hold_requests_is_polled_instead() {
    let stream = Stream::new(1);
    let http = FakeHttp::new(&stream, Instant::now());
    http.no_hold();
    http.publish(0, 1, stream.manifest(1, 0..=0, false));
    let (events, _) = poll_for(&http, stream.link(), 1_800).await;
    assert_eq!(kinds(&events), [(0, "manifest")]);
    let requests = http.manifest_requests();
    let expected: Vec<(u64, String)> = [
        (0, "after=0"),
        (0, "after=1&delta=1"),
        (500, ""),
        (1_000, ""),
        (1_500, ""),
    ]
    .into_iter()
    .map(|(at, q)| (at, q.to_owned()))
    .collect();
    assert_eq!(requests, expected);
}

/// The end of the stream ends the poller: it returns after sending the last manifest.
#[tokio::test(start_paused = true)]
async fn the_end_of_the_stream_ends_the_poller() {
    let stream = Stream::new(2);
    let http = FakeHttp::new(&stream, Instant::now());
    http.publish(0, 1, stream.manifest(1, 0..=0, false));
    http.publish(2_000, 2, stream.manifest(2, 0..=1, true));
    let (events, returned) = poll_for(&http, stream.link(), 60_000).await;
    assert_eq!(kinds(&events), [(0, "manifest"), (2_000, "manifest")]);
    // Returned at once, asking nothing after the end.
    assert_eq!(returned, Some(2_000));
    assert_eq!(http.manifest_requests().len(), 2);
}

/// A document the link's key did not sign is refused and reported, and the (next) source asked
/// again after 100 ms: every answer restarts the backoff, so refusals do not lengthen it as
/// failures do.
#[tokio::test(start_paused = true)]
async fn a_forged_manifest_is_refused_and_asked_again_after_the_backoff() {
    let stream = Stream::new(1);
    let http = FakeHttp::new(&stream, Instant::now());
    http.publish(0, 1, stream.forged(1, 0..=0, false));
    http.publish(250, 1, stream.manifest(1, 0..=0, false));
    let (events, _) = poll_for(&http, stream.link(), 1_000).await;
    assert_eq!(
        kinds(&events),
        [
            (0, "refused"),
            (100, "refused"),
            (200, "refused"),
            (300, "manifest")
        ]
    );
    assert!(matches!(
        &events[0].1,
        PollEvent::Refused {
            error: ManifestError::WrongStream { .. },
            ..
        }
    ));
}
