//! HTTP fetches on the virtual clock: the fallback's rules (when it starts, a transient error
//! retried, a refusal holding it back, a gone segment left to the swarm, the swarm winning the
//! race) and the HTTP baseline's retries.

use super::{of, Harness};
use crate::fakes::{Answer, Call, Plan, D, PARTIAL, SIZE};
use crate::watch::{Transport, WatchSummary};
use swarmcast_metrics::{Event, Kind};

/// The `http_fallback` counters: (bytes, ok, superseded, refused).
fn fallbacks(events: &[Event], n: u64) -> Vec<(u64, bool, bool, bool)> {
    of(events, n)
        .into_iter()
        .filter_map(|k| match k {
            Kind::HttpFallback {
                bytes,
                ok,
                superseded,
                refused,
            } => Some((*bytes, *ok, *superseded, *refused)),
            _ => None,
        })
        .collect()
}

/// The scenario of the fallback tests: three segments listed at once, a playout delay of 1 s;
/// segment 0 completes at 100 ms, so segment 1 is due at 3,100 and its fallback at 2,600 (the
/// 500 ms margin before). Segment 1 follows `plan` in the swarm and `answers` over HTTP.
async fn fallback_run(plan: Plan, answers: &[Answer]) -> (Harness, WatchSummary) {
    let h = Harness::new(3, 1_000, true);
    h.publish(0, 1, 0..=2, true);
    h.swarm.plan(1, plan);
    h.http.answer(1, answers);
    let (summary, _) = h.run(60_000).await;
    (h, summary)
}

/// The swarm never delivers segment 1: it is fetched over HTTP at its due time; a transient
/// error (500) is retried a second later (past its deadline: a stall); the verified file is
/// handed back to the swarm (forget, seed) and played byte for byte.
#[tokio::test(start_paused = true)]
async fn a_late_segment_is_fetched_over_http_and_a_transient_error_retried() {
    let (h, summary) = fallback_run(Plan::Never, &[Answer::Status(500, 50), Answer::Ok(100)]).await;
    assert_eq!(h.http.segment_requests(), [(2_600, 1), (3_650, 1)]);
    assert_eq!(
        h.played(),
        [(1_100, 0, true), (3_750, 1, true), (3_750 + D, 2, true)]
    );
    assert_eq!(summary.fallbacks, 2);
    assert_eq!((summary.stalls, summary.stall_ms), (1, 650));
    assert_eq!(summary.from_http, SIZE);
    let events = h.events();
    assert_eq!(
        fallbacks(&events, 1),
        [(0, false, false, false), (SIZE, true, false, false)]
    );
    // What the swarm had delivered before HTTP won is counted, once.
    let completed = of(&events, 1).into_iter().find_map(|k| match k {
        Kind::Completed {
            via,
            from_publisher,
            from_http,
            ..
        } => Some((via.clone(), *from_publisher, *from_http)),
        _ => None,
    });
    assert_eq!(completed, Some(("http".into(), PARTIAL, SIZE)));
    // The swarm's torrent was replaced by a seeded one, at once.
    let handed: Vec<(u64, Call)> = h
        .swarm
        .calls()
        .into_iter()
        .filter(|(_, c)| matches!(c, Call::Forget(1) | Call::Seed(1)))
        .take(2)
        .collect();
    assert_eq!(handed, [(3_750, Call::Forget(1)), (3_750, Call::Seed(1))]);
}

/// The publisher no longer has segment 1 (404): HTTP is not asked again, and the segment plays
/// when the swarm delivers it.
#[tokio::test(start_paused = true)]
async fn a_segment_the_publisher_no_longer_has_is_not_asked_for_again() {
    let plan = Plan::Deliver {
        peer_ms: 20,
        done_ms: 4_000,
    };
    let (h, summary) = fallback_run(plan, &[Answer::Status(404, 50), Answer::Ok(0)]).await;
    assert_eq!(h.http.segment_requests(), [(2_600, 1)]);
    assert_eq!(
        h.played(),
        [(1_100, 0, true), (4_000, 1, true), (4_000 + D, 2, true)]
    );
    assert_eq!((summary.fallbacks, summary.from_http), (1, 0));
    assert_eq!((summary.stalls, summary.stall_ms), (1, 900));
    assert_eq!(fallbacks(&h.events(), 1), [(0, false, false, false)]);
}

/// The publisher refuses (503): every fallback is held back 1 s, then 2 s after a second
/// refusal in a row (a transient error would have been retried after 1 s each time).
#[tokio::test(start_paused = true)]
async fn refusals_hold_the_fallback_back_longer_each_time() {
    let answers = [
        Answer::Status(503, 50),
        Answer::Status(503, 50),
        Answer::Ok(100),
    ];
    let (h, summary) = fallback_run(Plan::Never, &answers).await;
    assert_eq!(
        h.http.segment_requests(),
        [(2_600, 1), (3_650, 1), (5_700, 1)]
    );
    assert_eq!(
        fallbacks(&h.events(), 1),
        [
            (0, false, false, true),
            (0, false, false, true),
            (SIZE, true, false, false)
        ]
    );
    assert_eq!(h.played()[1], (5_800, 1, true));
    assert_eq!(summary.fallbacks, 3);
}

/// The swarm completes segment 1 while its fallback is under way: the fetch is dropped at once
/// and counted as superseded, and the segment plays on time from the swarm's copy.
#[tokio::test(start_paused = true)]
async fn the_swarm_winning_the_race_stops_the_fallback() {
    let plan = Plan::Deliver {
        peer_ms: 20,
        done_ms: 2_800,
    };
    let (h, summary) = fallback_run(plan, &[Answer::Hang]).await;
    assert_eq!(h.http.segment_requests(), [(2_600, 1)]);
    assert_eq!(h.http.dropped(), [(2_800, 1)]);
    assert_eq!(
        h.played(),
        [(1_100, 0, true), (3_100, 1, true), (3_100 + D, 2, true)]
    );
    assert_eq!((summary.stalls, summary.from_http), (0, 0));
    assert_eq!(fallbacks(&h.events(), 1), [(0, false, true, false)]);
}

/// The swarm cannot add segment 1: the fallback fetches it at its due time, and it plays on time
/// (nothing to forget: the file is put in place and seeded).
#[tokio::test(start_paused = true)]
async fn a_segment_the_swarm_cannot_add_is_fetched_over_http() {
    let (h, summary) = fallback_run(Plan::AddFails, &[Answer::Ok(100)]).await;
    assert_eq!(h.http.segment_requests(), [(2_600, 1)]);
    assert_eq!(
        h.played(),
        [(1_100, 0, true), (3_100, 1, true), (3_100 + D, 2, true)]
    );
    assert_eq!((summary.stalls, summary.from_http), (0, SIZE));
    let calls: Vec<(u64, Call)> = h
        .swarm
        .calls()
        .into_iter()
        .filter(|(_, c)| matches!(c, Call::Forget(1) | Call::Seed(1)))
        .collect();
    // Seeded at 2,700; forgotten at the end.
    assert_eq!(calls.first(), Some(&(2_700, Call::Seed(1))));
    assert_eq!(calls.len(), 2);
}

/// The HTTP baseline ([`Transport::Http`]): every segment over HTTP, a failed fetch retried
/// every 250 ms, a gone one (404) never again (playback then waits for it, here until stopped).
#[tokio::test(start_paused = true)]
async fn the_http_baseline_retries_every_quarter_second_but_not_a_gone_segment() {
    let mut h = Harness::new(3, 500, false);
    h.config.transport = Transport::Http;
    h.publish(0, 1, 0..=2, true);
    h.http.answer(
        1,
        &[
            Answer::Status(500, 0),
            Answer::Status(502, 0),
            Answer::Ok(0),
        ],
    );
    h.http.answer(2, &[Answer::Status(404, 0), Answer::Ok(0)]);
    let (summary, returned_at) = h.run(20_000).await;
    let mut requests = h.http.segment_requests();
    requests.sort();
    assert_eq!(requests, [(0, 0), (0, 1), (0, 2), (250, 1), (500, 1)]);
    // Segment 0 completes at once and plays after the delay; segment 1 on time.
    assert_eq!(h.played(), [(500, 0, true), (500 + D, 1, true)]);
    assert_eq!(returned_at, 20_000, "waiting for segment 2 until stopped");
    assert_eq!((summary.from_http, summary.fallbacks), (2 * SIZE, 0));
    assert!(h.swarm.calls().iter().all(|(_, c)| *c == Call::Shutdown));
}
