use super::args::process_limit;
use crate::plan::{plan, Limit, NetSweep, SweepSpec};

#[test]
fn processes_limit_themselves_on_loopback_and_with_a_self_limit() {
    let spec = |net: Option<NetSweep>| SweepSpec {
        segment_secs: vec![2.0],
        viewers: vec![2],
        viewer_upload_limit: vec![Some(Limit::TimesBitrate(2.0))],
        net,
        ..SweepSpec::default()
    };
    let on_net = |self_limit| {
        Some(NetSweep {
            self_limit,
            ..NetSweep::default()
        })
    };
    let run = |net| plan(&spec(net)).unwrap().runs[0].clone();
    // 2x 1 Mbit/s = 250,000 B/s.
    assert_eq!(process_limit(Some(250_000), &run(None)), Some(250_000));
    assert_eq!(process_limit(Some(250_000), &run(on_net(None))), None);
    assert_eq!(
        process_limit(Some(250_000), &run(on_net(Some(0.9)))),
        Some(225_000)
    );
    // Never under librqbit's floor; nothing without a cap.
    assert_eq!(
        process_limit(Some(40_000), &run(on_net(Some(0.1)))),
        Some(crate::plan::MIN_LIMIT)
    );
    assert_eq!(process_limit(None, &run(on_net(Some(0.9)))), None);
    assert!(plan(&spec(on_net(Some(1.5))))
        .unwrap_err()
        .to_string()
        .contains("self-limit"));
}
