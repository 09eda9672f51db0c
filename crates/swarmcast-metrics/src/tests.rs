use super::*;

fn all_kinds() -> Vec<Kind> {
    vec![
        Kind::Cut {
            size: 1,
            media_start: 2,
            duration: 3,
            discontinuity: true,
        },
        Kind::Hashed {
            hash_us: 4,
            pieces: 5,
            piece_length: 32768,
            info_hash: "ab".repeat(20),
        },
        Kind::Seeding { add_us: 6 },
        Kind::Published {
            seq: 7,
            manifest_bytes: 8,
            cut_to_published_us: 9,
        },
        Kind::Uploaded {
            bytes: 10,
            http_bytes: 16,
            dialled_bytes: 17,
        },
        Kind::Removed {
            uploaded_bytes: 11,
            kept_file: false,
        },
        Kind::EndOfStream { seq: 12 },
        Kind::ManifestFetched {
            seq: 1,
            bytes: 2,
            delta: true,
            mode: "long_poll".into(),
        },
        Kind::ManifestRefused {
            reason: "bad signature".into(),
        },
        Kind::Joined { newest: 3 },
        Kind::Learned {
            seq: 4,
            published_ms: 5,
        },
        Kind::Added,
        Kind::FirstPeer { since_added_us: 6 },
        Kind::FirstPiece { since_added_us: 7 },
        Kind::Completed {
            since_added_us: 8,
            via: "swarm".into(),
            from_publisher: 9,
            from_peers: 10,
            from_http: 0,
            connect_attempts: Some(3),
            connect_errors: Some(1),
            failed_dials: Some(1),
        },
        Kind::Played {
            deadline_us: 11,
            stall_us: 12,
            bytes: 13,
        },
        Kind::Skipped { count: None },
        Kind::Skipped { count: Some(7) },
        Kind::HttpFallback {
            bytes: 14,
            ok: true,
            superseded: false,
            refused: false,
        },
        Kind::Forgotten {
            uploaded_bytes: 15,
            from_publisher: 18,
            from_peers: 19,
            hash_failures: 2,
            discarded_bytes: 65_536,
            bad_peers: vec!["127.0.0.2:6881".into()],
            refused_banned: 3,
        },
        Kind::Forgotten {
            uploaded_bytes: 20,
            from_publisher: 0,
            from_peers: 0,
            hash_failures: 0,
            discarded_bytes: 0,
            bad_peers: vec![],
            refused_banned: 0,
        },
        Kind::Ended {
            end_of_stream: true,
        },
    ]
}

#[test]
fn events_round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.jsonl");
    let rec = Recorder::new("publisher", Role::Publisher, Some(&path)).unwrap();
    let written: Vec<Event> = all_kinds()
        .into_iter()
        .enumerate()
        .map(|(i, k)| rec.record(Some(i as u64), k))
        .collect();
    rec.flush();
    let read = read_events(&path).unwrap();
    assert_eq!(read, written);
    // More after a flush, then dropping the recorder: everything is written.
    let more = rec.record(
        None,
        Kind::Ended {
            end_of_stream: false,
        },
    );
    drop(rec);
    let read = read_events(&path).unwrap();
    assert_eq!(read.len(), written.len() + 1);
    assert_eq!(read.last(), Some(&more));
    assert!(read.windows(2).all(|w| w[0].mono_us <= w[1].mono_us));
}

#[test]
fn the_wire_form_is_flat() {
    let rec = Recorder::new("p", Role::Publisher, None).unwrap();
    let e = rec.event(Some(3), Kind::Seeding { add_us: 42 });
    let json: serde_json::Value = serde_json::to_value(&e).unwrap();
    for key in [
        "v", "node", "role", "kind", "seg", "wall_us", "mono_us", "add_us",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
    assert_eq!(json["kind"], "seeding");
    assert_eq!(json["role"], "publisher");
    let no_seg = serde_json::to_value(rec.event(None, Kind::EndOfStream { seq: 1 })).unwrap();
    assert!(no_seg.get("seg").is_none());
}

#[test]
fn a_completion_recorded_before_failed_dials_still_reads() {
    let line = r#"{"v":1,"node":"viewer-0","role":"viewer","seg":0,"wall_us":1,"mono_us":2,"kind":"completed","since_added_us":3,"via":"swarm","from_publisher":4,"from_peers":5,"from_http":0,"connect_attempts":2,"connect_errors":1}"#;
    let e: Event = serde_json::from_str(line).unwrap();
    match e.kind {
        Kind::Completed {
            connect_errors,
            failed_dials,
            ..
        } => assert_eq!((connect_errors, failed_dials), (Some(1), None)),
        k => panic!("{k:?}"),
    }
    let again = serde_json::to_string(&e).unwrap();
    assert!(!again.contains("failed_dials"), "{again}");
}

#[test]
fn a_forgotten_record_without_bad_pieces_reads_and_writes_without_them() {
    let line = r#"{"v":1,"node":"viewer-0","role":"viewer","seg":0,"wall_us":1,"mono_us":2,"kind":"forgotten","uploaded_bytes":3,"from_publisher":0,"from_peers":0}"#;
    let e: Event = serde_json::from_str(line).unwrap();
    match &e.kind {
        Kind::Forgotten {
            hash_failures,
            discarded_bytes,
            bad_peers,
            refused_banned,
            ..
        } => assert_eq!(
            (
                *hash_failures,
                *discarded_bytes,
                bad_peers.len(),
                *refused_banned
            ),
            (0, 0, 0, 0)
        ),
        k => panic!("{k:?}"),
    }
    let again = serde_json::to_string(&e).unwrap();
    for field in [
        "hash_failures",
        "discarded_bytes",
        "bad_peers",
        "refused_banned",
    ] {
        assert!(!again.contains(field), "{again}");
    }
}

#[test]
fn a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.jsonl");
    std::fs::write(&path, "{\"v\":1}\n").unwrap();
    let err = read_events(&path).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
}
