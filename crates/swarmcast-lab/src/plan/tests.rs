//! Planning tests: run ids, groups and estimates, join schedules, caps, variants and network
//! sweeps, and the errors that name the flag at fault.

use super::*;

#[test]
fn an_emulated_sweep_names_each_varied_factor_and_runs_one_at_a_time() {
    let spec = SweepSpec {
        segment_secs: vec![2.0],
        viewers: vec![20],
        viewer_upload_limit: vec![Some(Limit::TimesBitrate(2.0)), None],
        net: Some(NetSweep {
            rtt_ms: vec![50.0, 150.0],
            nat: vec![0.6],
            ..NetSweep::default()
        }),
        ..SweepSpec::default()
    };
    let p = plan(&spec).unwrap();
    let ids: Vec<&str> = p.runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "s002-n020-vu2x-rtt50-swarm-r1",
            "s002-n020-vu2x-rtt50-http-r1",
            "s002-n020-vu2x-rtt150-swarm-r1",
            "s002-n020-vu2x-rtt150-http-r1",
            "s002-n020-vunone-rtt50-swarm-r1",
            "s002-n020-vunone-rtt50-http-r1",
            "s002-n020-vunone-rtt150-swarm-r1",
            "s002-n020-vunone-rtt150-http-r1",
        ]
    );
    // Side by side is off: every run is a group of its own.
    assert_eq!(p.groups().len(), p.runs.len());
    let r = &p.runs[2];
    assert_eq!(r.viewer_upload_limit, Some(250_000));
    let net = r.net.unwrap();
    assert_eq!(
        (net.rtt_ms, net.nat, net.mode),
        (150.0, 0.6, NetMode::Emulated)
    );
    // 60% of 20 viewers: 12, spread over the joining order.
    let behind: Vec<usize> = (0..20).filter(|&i| net.behind_nat(i)).collect();
    assert_eq!(behind.len(), 12);
    assert!(behind.contains(&0) || behind.contains(&1));
    assert!(behind.contains(&19));
    assert!(!(0..20).any(|i| net.behind_symmetric_nat(i)));
    // Half of those behind symmetric NATs: 6, every other one of the 12.
    let half = NetPoint {
        symmetric_nat: 0.5,
        ..net
    };
    let symmetric: Vec<usize> = (0..20).filter(|&i| half.behind_symmetric_nat(i)).collect();
    assert_eq!(symmetric.len(), 6);
    assert!(symmetric.iter().all(|i| behind.contains(i)));
    let at: Vec<usize> = symmetric
        .iter()
        .map(|i| behind.iter().position(|b| b == i).unwrap())
        .collect();
    assert_eq!(at, [1, 3, 5, 7, 9, 11]);
    // A run file of a loopback run, written before networks existed, still reads.
    let mut old = serde_json::to_value(&p.runs[0]).unwrap();
    old.as_object_mut().unwrap().remove("net");
    let back: RunSpec = serde_json::from_value(old).unwrap();
    assert_eq!(back.net, None);
}

#[test]
fn network_flags_are_checked() {
    let with = |net: NetSweep| SweepSpec {
        net: Some(net),
        ..SweepSpec::default()
    };
    let err = |s: SweepSpec| plan(&s).unwrap_err().to_string();
    assert!(err(with(NetSweep {
        symmetric_nat: 1.5,
        ..NetSweep::default()
    }))
    .contains("symmetric-nat"));
    assert!(err(with(NetSweep {
        loss_pct: vec![120.0],
        ..NetSweep::default()
    }))
    .contains("--loss 120: from 0 to 50 percent"));
    assert!(err(with(NetSweep {
        nat: vec![],
        ..NetSweep::default()
    }))
    .contains("--nat is empty"));
    let plain = NetSweep {
        mode: NetMode::Plain,
        rtt_ms: vec![50.0],
        ..NetSweep::default()
    };
    assert!(err(with(plain)).contains("need --net emulated"));
    let mut capped = with(NetSweep {
        mode: NetMode::Plain,
        ..NetSweep::default()
    });
    capped.publisher_upload_limit = vec![Some(Limit::TimesBitrate(1.5))];
    assert!(err(capped).contains("need --net emulated"));
    let big = SweepSpec {
        viewers: vec![200],
        join: JoinPattern::Churn { every_secs: 1.0 },
        duration_secs: Some(60.0),
        net: Some(NetSweep::default()),
        ..SweepSpec::default()
    };
    assert!(err(big).contains("at most 249 viewer processes"));
}

#[test]
fn variants_name_the_librqbit_changes_they_turn_off() {
    let v = |s: &str| s.parse::<Variant>();
    assert_eq!(v("patched").unwrap().librqbit_off(), "");
    assert_eq!(
        v("upstream").unwrap().librqbit_off(),
        "have,wake,random,window,cancel,nodelay,superseed,steal,pace,slots,nopex,urgent,ban,lowat,\
         keep,dhtdone"
    );
    assert_eq!(v("no-random+have").unwrap().librqbit_off(), "random,have");
    assert_eq!(
        v("only-random").unwrap().librqbit_off(),
        "have,wake,window,cancel,nodelay,superseed,steal,pace,slots,nopex,urgent,ban,lowat,keep,\
         dhtdone"
    );
    // Run files read back the same, except that a change since dropped from the patch
    // series is kept by name (older results still regenerate); a bad name is refused.
    let back: Variant = serde_json::from_str("\"no-random\"").unwrap();
    assert_eq!(back, v("no-random").unwrap());
    assert_eq!(serde_json::to_string(&back).unwrap(), "\"no-random\"");
    let dropped: Variant = serde_json::from_str("\"no-incoming\"").unwrap();
    assert_eq!(dropped.librqbit_off(), "incoming");
    assert_eq!(dropped.as_str(), "no-incoming");
    assert!(serde_json::from_str::<Variant>("\"fast\"").is_err());
    let err = v("no-rarest").unwrap_err();
    assert!(
        err.contains("\"rarest\"") && err.contains("nodelay"),
        "{err}"
    );
    assert!(v("fast")
        .unwrap_err()
        .contains("expected patched, upstream"));
}

#[test]
fn a_prefix_picks_the_seeder_and_keeps_the_changes() {
    let v = |s: &str| s.parse::<Variant>().unwrap();
    assert_eq!(v("patched").seeder(), "wire");
    assert_eq!(v("no-steal").seeder(), "wire");
    assert_eq!(v("upstream").seeder(), "librqbit");
    let l = v("librqbit");
    assert_eq!((l.seeder(), l.librqbit_off().as_str()), ("librqbit", ""));
    let l = v("librqbit-no-steal");
    assert_eq!(
        (l.seeder(), l.librqbit_off().as_str()),
        ("librqbit", "steal")
    );
    let w = v("wire");
    assert_eq!((w.seeder(), w.librqbit_off().as_str()), ("wire", ""));
    // Publisher options after `@`.
    let r = v("no-steal@reveal=never");
    assert_eq!(
        (r.seeder(), r.librqbit_off().as_str(), r.super_seed_reveal()),
        ("wire", "steal", Some("never"))
    );
    assert_eq!(v("patched@reveal=6").super_seed_reveal(), Some("6"));
    assert_eq!(v("patched").super_seed_reveal(), None);
    assert_eq!(
        kind(Transport::Swarm, &v("patched@reveal=6")),
        "swarm-patched@reveal=6"
    );
    for bad in [
        "patched@reveal=0",
        "patched@reveal=soon",
        "patched@fast",
        "no-rarest@reveal=6",
    ] {
        assert!(bad.parse::<Variant>().is_err(), "{bad}");
    }
    assert_eq!(v("wire-upstream").seeder(), "wire");
    assert_eq!(
        v("wire-upstream").librqbit_off().split(',').count(),
        swarmcast_swarm::tweaks::names().len()
    );
    assert_eq!(kind(Transport::Swarm, &v("librqbit")), "swarm-librqbit");
    for bad in ["wire-", "librqbit-fast", "wirex", "librqbitno-steal"] {
        assert!(bad.parse::<Variant>().is_err(), "{bad}");
    }
}

#[test]
fn each_variant_is_a_swarm_run_and_http_runs_once() {
    let spec = SweepSpec {
        segment_secs: vec![2.0],
        viewers: vec![4],
        variants: vec!["patched".parse().unwrap(), "upstream".parse().unwrap()],
        ..SweepSpec::default()
    };
    let p = plan(&spec).unwrap();
    let ids: Vec<&str> = p.runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "s002-n004-swarm-r1",
            "s002-n004-swarm-upstream-r1",
            "s002-n004-http-r1"
        ]
    );
    let kinds: Vec<String> = p.runs.iter().map(RunSpec::kind).collect();
    assert_eq!(kinds, ["swarm", "swarm-upstream", "http"]);
    assert!(
        p.runs.iter().all(|r| r.group == p.runs[0].group),
        "side by side"
    );
}

#[test]
fn the_default_sweep_fits_in_thirty_minutes() {
    let p = plan(&SweepSpec::default()).unwrap();
    assert_eq!(p.runs.len(), 18);
    // Swarm and HTTP of one configuration share a group.
    assert_eq!(p.groups().len(), 9);
    assert!(p
        .groups()
        .iter()
        .all(|g| g.len() == 2 && g[0].transport != g[1].transport));
    // max(5 segments, 60 s).
    let d = |s: f64| {
        p.runs
            .iter()
            .find(|r| r.segment_secs == s)
            .unwrap()
            .duration_secs
    };
    assert_eq!((d(2.0), d(10.0), d(60.0)), (60.0, 60.0, 300.0));
    let est = p.estimate();
    assert!(est <= Duration::from_secs(30 * 60), "{est:?}");
    // 3×(60+2+6) + 3×(60+2+6) + 3×(300+2+6) seconds.
    assert_eq!(est, Duration::from_secs(3 * 68 + 3 * 68 + 3 * 308));
    assert_eq!(p.processes(), 2 * 3 * (3 + 1 + 5 + 20));
}

#[test]
fn ids_are_unique_and_sorted_like_the_runs() {
    let mut spec = SweepSpec {
        segment_secs: vec![1.0, 2.5],
        viewers: vec![2, 10],
        repeats: 2,
        ..SweepSpec::default()
    };
    spec.side_by_side = false;
    let p = plan(&spec).unwrap();
    let ids: Vec<&str> = p.runs.iter().map(|r| r.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len());
    assert_eq!(ids[0], "s001-n002-swarm-r1");
    assert!(ids.contains(&"s002p500-n010-http-r2"));
    // One run at a time: every run its own group.
    assert_eq!(p.groups().len(), p.runs.len());
}

#[test]
fn caps_resolve_against_the_bitrate_and_refuse_below_32_kib() {
    assert_eq!("1.5x".parse::<Limit>().unwrap().resolve(1_000_000), 187_500);
    assert_eq!("64k".parse::<Limit>().unwrap().resolve(1), 64_000);
    assert_eq!(
        "40000".parse::<Limit>().unwrap(),
        Limit::BytesPerSec(40_000)
    );
    assert!("0x".parse::<Limit>().is_err());
    assert!("fast".parse::<Limit>().is_err());
    let spec = SweepSpec {
        publisher_upload_limit: vec![Some(Limit::TimesBitrate(0.2))],
        ..SweepSpec::default()
    };
    let err = plan(&spec).unwrap_err().to_string();
    assert!(
        err.contains("publisher-upload-limit 25000 bytes/s"),
        "{err}"
    );
    assert!(err.contains("at least 32768"), "{err}");
    let spec = SweepSpec {
        publisher_upload_limit: vec![Some(Limit::TimesBitrate(1.5))],
        viewer_download_limit: vec![Some(Limit::BytesPerSec(40_000))],
        ..SweepSpec::default()
    };
    let p = plan(&spec).unwrap();
    assert!(p
        .runs
        .iter()
        .all(|r| r.publisher_upload_limit == Some(187_500)
            && r.viewer_download_limit == Some(40_000)
            && r.viewer_upload_limit.is_none()));
}

#[test]
fn bad_sweeps_name_the_flag() {
    let bad = |f: fn(&mut SweepSpec)| {
        let mut s = SweepSpec::default();
        f(&mut s);
        plan(&s).unwrap_err().to_string()
    };
    assert_eq!(bad(|s| s.viewers.clear()), "--viewers is empty");
    assert!(bad(|s| s.viewers = vec![0]).starts_with("--viewers 0"));
    assert!(bad(|s| s.segment_secs = vec![0.1]).starts_with("--segment-secs 0.1"));
    assert!(bad(|s| s.repeats = 0).starts_with("--repeats 0"));
    assert!(bad(|s| s.join = JoinPattern::Churn { every_secs: 0.0 }).starts_with("--join"));
}

#[test]
fn an_exodus_kills_its_share_at_once_and_replaces_nobody() {
    let spec = SweepSpec {
        segment_secs: vec![1.0],
        viewers: vec![10, 2],
        transports: vec![Transport::Swarm],
        duration_secs: Some(20.0),
        join: JoinPattern::Exodus {
            at_secs: 7.0,
            percent: 30,
        },
        ..SweepSpec::default()
    };
    let p = plan(&spec).unwrap();
    let ten = p.runs.iter().find(|r| r.viewers == 10).unwrap();
    assert_eq!(ten.viewer_processes(), 10);
    assert_eq!(ten.join.to_string(), "exodus/30%@7s");
    let s = ten.schedule();
    assert_eq!(s.len(), 11);
    assert!(s[..10]
        .iter()
        .all(|(at, step)| *at == 0.0 && matches!(step, Step::Start(_))));
    assert_eq!(s[10], (7.0, Step::Kill { count: 3 }));
    // 30% of 2 rounds to 1: at least one leaves, never all but what is asked.
    let two = p.runs.iter().find(|r| r.viewers == 2).unwrap();
    assert_eq!(two.schedule().last(), Some(&(7.0, Step::Kill { count: 1 })));
    assert_eq!(
        JoinPattern::Exodus {
            at_secs: 1.0,
            percent: 100
        }
        .killed(3),
        3
    );
    let bad = |join| {
        plan(&SweepSpec {
            join,
            ..spec.clone()
        })
        .unwrap_err()
        .to_string()
    };
    assert!(bad(JoinPattern::Exodus {
        at_secs: 7.0,
        percent: 0
    })
    .starts_with("--join"));
    assert!(bad(JoinPattern::Exodus {
        at_secs: 0.0,
        percent: 30
    })
    .starts_with("--join"));
}

#[test]
fn churn_adds_a_viewer_per_interval() {
    let spec = SweepSpec {
        segment_secs: vec![2.0],
        viewers: vec![5],
        transports: vec![Transport::Swarm],
        duration_secs: Some(20.0),
        join: JoinPattern::Churn { every_secs: 4.0 },
        ..SweepSpec::default()
    };
    let p = plan(&spec).unwrap();
    assert_eq!(p.runs[0].viewer_processes(), 10);
    assert_eq!(p.runs[0].join.to_string(), "churn/4s");
    let s = p.runs[0].schedule();
    assert_eq!(s.len(), 5 + 2 * 5);
    assert_eq!(
        &s[..5],
        &(0..5).map(|i| (0.0, Step::Start(i))).collect::<Vec<_>>()[..]
    );
    assert_eq!(&s[5..7], &[(4.0, Step::Leave), (4.0, Step::Start(5))]);
    assert_eq!(s.last(), Some(&(20.0, Step::Start(9))));
    // The audience never exceeds N.
    let mut live = 0i32;
    for (_, step) in &s {
        live += if *step == Step::Leave { -1 } else { 1 };
        assert!(live <= 5);
    }
}

#[test]
fn staggered_viewers_join_one_by_one() {
    let spec = SweepSpec {
        segment_secs: vec![2.0],
        viewers: vec![3],
        transports: vec![Transport::Http],
        join: JoinPattern::Staggered { every_secs: 2.5 },
        ..SweepSpec::default()
    };
    let p = plan(&spec).unwrap();
    assert_eq!(
        p.runs[0].schedule(),
        [
            (0.0, Step::Start(0)),
            (2.5, Step::Start(1)),
            (5.0, Step::Start(2))
        ]
    );
    assert_eq!(p.runs[0].viewer_processes(), 3);
}

#[test]
fn relay_transports_parse_need_a_network_and_run_as_nodes_of_their_own() {
    for t in Transport::ALL {
        assert_eq!(t.as_str().parse::<Transport>(), Ok(t));
    }
    assert!("relay"
        .parse::<Transport>()
        .unwrap_err()
        .contains("relay-tree"));
    let spec = SweepSpec {
        segment_secs: vec![2.0],
        viewers: vec![4],
        transports: vec![
            Transport::RelayTree,
            Transport::Http,
            Transport::RelayResume,
        ],
        ..SweepSpec::default()
    };
    let e = plan(&spec).unwrap_err();
    assert!(e.to_string().contains("network"), "{e}");
    let spec = SweepSpec {
        net: Some(NetSweep::default()),
        fanout: 3,
        ..spec
    };
    let p = plan(&spec).expect("a plan");
    let kinds: Vec<String> = p.runs.iter().map(|r| r.kind()).collect();
    assert_eq!(kinds, ["http", "relay-tree", "relay-resume"]);
    assert!(p.runs.iter().all(|r| r.fanout == 3));
    assert!(p.runs[1].id.contains("relay-tree"));
    // Relays are reachable hosts whatever the NAT share.
    let point = NetPoint {
        nat: 1.0,
        ..p.runs[1].net.unwrap()
    };
    let hosts = crate::netrun::host_specs(&p.runs[1], &point);
    assert!(hosts.iter().all(|h| !h.nat));
    let hosts = crate::netrun::host_specs(&p.runs[0], &point);
    assert!(hosts.iter().skip(1).all(|h| h.nat));
    for bad in [
        SweepSpec {
            fanout: 0,
            ..spec.clone()
        },
        SweepSpec {
            back_buffer_secs: 0.0,
            ..spec.clone()
        },
        SweepSpec {
            playout_buffer_secs: -1.0,
            ..spec.clone()
        },
        SweepSpec {
            churn_pct: 101.0,
            ..spec.clone()
        },
    ] {
        assert!(plan(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn churn_kills_and_replaces_the_same_nodes_for_every_transport() {
    let spec = SweepSpec {
        segment_secs: vec![2.0],
        viewers: vec![10],
        transports: vec![Transport::Swarm, Transport::Http, Transport::RelayResume],
        net: Some(NetSweep::default()),
        duration_secs: Some(120.0),
        churn_pct: 10.0,
        churn_seed: 9,
        ..SweepSpec::default()
    };
    let p = plan(&spec).expect("a plan");
    let schedules: Vec<Vec<(f64, Step)>> = p.runs.iter().map(|r| r.schedule()).collect();
    assert!(schedules.windows(2).all(|w| w[0] == w[1]));
    let s = &schedules[0];
    let departures: Vec<usize> = s
        .iter()
        .filter_map(|(_, st)| match st {
            Step::Depart(i) => Some(*i),
            _ => None,
        })
        .collect();
    // 10 nodes, 10% a minute, 2 minutes: 2 departures, each followed by its replacement.
    assert_eq!(departures.len(), 2);
    assert_eq!(p.runs[0].viewer_processes(), 12);
    for (k, (at, st)) in s.iter().enumerate() {
        if let Step::Depart(_) = st {
            assert_eq!(s[k + 1].0, *at);
            assert!(matches!(s[k + 1].1, Step::Start(n) if n >= 10));
        }
    }
    // --churn replaces the churn pattern: it needs everyone to start together.
    let bad = SweepSpec {
        join: JoinPattern::Staggered { every_secs: 1.0 },
        ..spec
    };
    assert!(plan(&bad).unwrap_err().to_string().contains("--churn"));
}

#[test]
fn a_run_on_the_dht_has_a_dht_host_and_its_publisher_serves_no_manifests() {
    let spec = SweepSpec {
        segment_secs: vec![2.0],
        viewers: vec![3],
        variants: vec![
            "patched".parse().unwrap(),
            "patched@manifests=dht".parse().unwrap(),
        ],
        net: Some(NetSweep::default()),
        ..SweepSpec::default()
    };
    let p = plan(&spec).expect("a plan");
    let dht = p.runs.iter().find(|r| r.variant.dht()).expect("a DHT run");
    let http = p
        .runs
        .iter()
        .find(|r| r.transport == Transport::Swarm && !r.variant.dht())
        .expect("an HTTP-manifest run");
    let point = dht.net.unwrap();
    let hosts = crate::netrun::host_specs(dht, &point);
    let last = hosts.last().unwrap();
    assert_eq!(last.node, crate::netrun::DHT_HOST);
    assert!(!last.nat, "the DHT host is reachable");
    assert_eq!(hosts.len(), 1 + 3 + 1);
    let hosts = crate::netrun::host_specs(http, &point);
    assert!(hosts.iter().all(|h| h.node != crate::netrun::DHT_HOST));
    let args = crate::runner::dht_publisher_args("10.0.0.9:1,10.0.0.9:2");
    for flag in ["--dht", "--no-http-manifests", "--no-embedded-tracker"] {
        assert!(args.iter().any(|a| a == flag), "{flag}: {args:?}");
    }
    let at = args.iter().position(|a| a == "--dht-bootstrap").unwrap();
    assert_eq!(args[at + 1], "10.0.0.9:1,10.0.0.9:2");
    // Carried by the swarm as well: the publisher and viewers get --swarm-manifests.
    let publisher = crate::runner::publisher_args(dht, std::path::Path::new("/r"), None);
    assert!(publisher.iter().any(|a| a == "--swarm-manifests"));
    // Viewers carry their peers only when the variant says @carry=on (though `watch` carries
    // by default): the lab says which, so a variant means what it meant when it was recorded.
    let dir = std::path::Path::new("/r");
    let viewer = crate::runner::viewer_args(dht, dir, None, "swarmcast://x", 0);
    assert!(!viewer.iter().any(|a| a == "--carried-peers"));
    assert!(viewer.iter().any(|a| a == "--no-carried-peers"));
    let mut on = dht.clone();
    on.variant = "patched@manifests=dht@carry=on".parse().unwrap();
    assert!(on.variant.carry_peers());
    let viewer = crate::runner::viewer_args(&on, dir, None, "swarmcast://x", 0);
    assert!(viewer.iter().any(|a| a == "--carried-peers"));
    assert!(!viewer.iter().any(|a| a == "--no-carried-peers"));
}

#[test]
fn variants_take_several_options_and_manifests_from_the_swarm() {
    let v = |s: &str| s.parse::<Variant>();
    let both = v("patched@reveal=2@manifests=swarm").unwrap();
    assert_eq!(both.super_seed_reveal(), Some("2"));
    assert!(both.swarm_manifests());
    assert!(v("patched@manifests=swarm").unwrap().swarm_manifests());
    assert!(!v("patched@manifests=http").unwrap().swarm_manifests());
    assert!(!v("patched").unwrap().swarm_manifests());
    // On the DHT: carried by the swarm too, with no HTTP manifests.
    let dht = v("patched@manifests=dht").unwrap();
    assert!(dht.swarm_manifests() && dht.dht());
    assert!(!v("patched@manifests=swarm").unwrap().dht());
    let pushes = v("patched@manifests=swarm@push=8@vpush=5").unwrap();
    assert_eq!(
        (pushes.manifest_push(), pushes.viewer_manifest_push()),
        (Some(8), Some(5))
    );
    assert_eq!(v("patched").unwrap().manifest_push(), None);
    assert_eq!(
        v("wire@reveal=never").unwrap().super_seed_reveal(),
        Some("never")
    );
    for bad in [
        "patched@manifests=tracker",
        "patched@push=0",
        "patched@vpush=65",
        "patched@push=x",
        "patched@reveal=2@",
        "patched@reveal=2,manifests=swarm",
        "patched@nope=1",
        "patched@carry=no",
    ] {
        assert!(v(bad).is_err(), "{bad}");
    }
}
