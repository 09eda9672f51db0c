use proptest::prelude::*;

use super::*;
use crate::torrent::SegmentTorrent;
use crate::window::{Window, WindowConfig};

fn secret(n: u8) -> StreamSecret {
    StreamSecret::from_seed(&[n; 32])
}

fn content(len: usize, salt: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i * 31 + salt) % 251) as u8)
        .collect()
}

fn entry(number: u64, len: usize) -> SegmentEntry {
    let bytes = content(len, number);
    let t = SegmentTorrent::build(
        &bytes[..],
        len as u64,
        &format!("{number:08}.ts"),
        None,
        vec![],
    )
    .unwrap();
    SegmentEntry {
        number,
        media_start: number * 180_000,
        duration: 180_000,
        size: len as u64,
        discontinuity: number == 0,
        published_ms: 1_700_000_000_000 + number * 2000,
        info_hash: t.info_hash(),
        info: t.info_bytes().to_vec(),
    }
}

fn manifest(key: &StreamSecret, seq: u64, numbers: std::ops::Range<u64>) -> Manifest {
    Manifest {
        key: key.public(),
        seq,
        issued_ms: 1_700_000_000_000 + seq,
        target_duration: 180_000,
        peers: vec!["127.0.0.1:6881".into()],
        trackers: vec!["http://127.0.0.1:8080/announce".into()],
        end_of_stream: false,
        segments: numbers.map(|n| entry(n, 1000 + n as usize)).collect(),
    }
}

/// `haystack` with the first `from` replaced by `to` (panics if absent: the test is then wrong).
fn replace(haystack: &[u8], from: &str, to: &str) -> Vec<u8> {
    let at = haystack
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from} not found"));
    [&haystack[..at], to.as_bytes(), &haystack[at + from.len()..]].concat()
}

/// Signs arbitrary body bytes, bypassing every check, as a forger with the key could.
fn sign_raw(key: &StreamSecret, body: &[u8]) -> Vec<u8> {
    let sig = key.sign(&signed_message(body));
    serde_bencode::to_bytes(&EnvelopeWire {
        body: ByteBuf::from(body.to_vec()),
        sig: ByteBuf::from(sig.to_vec()),
    })
    .unwrap()
}

#[test]
fn sign_then_verify_round_trips() {
    let k = secret(1);
    let m = manifest(&k, 5, 3..6);
    let signed = m.sign(&k).unwrap();
    let back = verify(&signed.bytes, &k.public()).unwrap();
    assert_eq!(back.manifest, m);
    assert_eq!(back.bytes, signed.bytes);
    assert!(decode(&signed.bytes).unwrap().self_signed);
}

#[test]
fn every_single_bit_flip_is_refused() {
    let k = secret(1);
    let doc = manifest(&k, 5, 3..5).sign(&k).unwrap().bytes;
    for i in 0..doc.len() {
        for bit in 0..8 {
            let mut bad = doc.clone();
            bad[i] ^= 1 << bit;
            assert!(
                verify(&bad, &k.public()).is_err(),
                "flip of bit {bit} in byte {i} was accepted"
            );
        }
    }
}

#[test]
fn another_key_is_refused() {
    let (a, b) = (secret(1), secret(2));
    let doc = manifest(&b, 1, 0..2).sign(&b).unwrap().bytes;
    assert!(matches!(
        verify(&doc, &a.public()),
        Err(ManifestError::WrongStream { .. })
    ));
    // The forger names the pinned key in the body but can only sign with their own.
    let forged = sign_raw(&b, &manifest(&a, 1, 0..2).encode_body());
    assert_eq!(
        verify(&forged, &a.public()),
        Err(ManifestError::BadSignature)
    );
    assert!(!decode(&forged).unwrap().self_signed);
    // A manifest cannot be signed with a key other than the one it names.
    assert!(matches!(
        manifest(&a, 1, 0..1).sign(&b),
        Err(ManifestError::WrongStream { .. })
    ));
}

#[test]
fn replay_and_equivocation_are_refused() {
    let k = secret(1);
    let mut v = Verifier::new(k.public());
    let m1 = manifest(&k, 1, 0..1).sign(&k).unwrap().bytes;
    let m2 = manifest(&k, 2, 0..2).sign(&k).unwrap().bytes;
    assert!(matches!(v.accept(&m1), Ok(Verdict::New(_))));
    assert!(matches!(v.accept(&m2), Ok(Verdict::New(_))));
    assert_eq!(v.accept(&m2), Ok(Verdict::Unchanged));
    assert_eq!(
        v.accept(&m1),
        Err(ManifestError::StaleSequence { last: 2, found: 1 })
    );
    let mut other = manifest(&k, 2, 0..2);
    other.issued_ms += 1;
    let other = other.sign(&k).unwrap().bytes;
    assert_eq!(
        v.accept(&other),
        Err(ManifestError::Equivocation { seq: 2 })
    );
    assert_eq!(v.last_seq(), Some(2));
    // A refused document changes nothing: the real one is still "unchanged".
    assert_eq!(v.accept(&m2), Ok(Verdict::Unchanged));
}

#[test]
fn non_canonical_bodies_are_refused_even_when_signed() {
    let k = secret(1);
    let body = manifest(&k, 7, 0..1).encode_body();
    let padded = replace(&body, "3:seqi7e", "3:seqi07e");
    assert!(matches!(
        verify(&sign_raw(&k, &padded), &k.public()),
        Err(ManifestError::Bencode {
            part: "body",
            source: crate::BencodeError::NonCanonical { .. }
        })
    ));
    let mut trailing = body.clone();
    trailing.extend_from_slice(b"i0e");
    assert!(matches!(
        verify(&sign_raw(&k, &trailing), &k.public()),
        Err(ManifestError::Bencode { .. })
    ));
}

#[test]
fn gaps_bad_infos_and_limits_are_refused_even_when_signed() {
    let k = secret(1);
    let mut gap = manifest(&k, 1, 0..3);
    gap.segments.remove(1);
    assert_eq!(
        verify(&sign_raw(&k, &gap.encode_body()), &k.public()),
        Err(ManifestError::NotContiguous {
            index: 1,
            expected: 1,
            found: 2
        })
    );

    let mut wrong_hash = manifest(&k, 1, 0..2);
    wrong_hash.segments[1].info_hash = wrong_hash.segments[0].info_hash;
    assert!(matches!(
        verify(&sign_raw(&k, &wrong_hash.encode_body()), &k.public()),
        Err(ManifestError::InfoHashMismatch { segment: 1, .. })
    ));

    let mut wrong_size = manifest(&k, 1, 0..1);
    wrong_size.segments[0].size += 1;
    assert!(matches!(
        verify(&sign_raw(&k, &wrong_size.encode_body()), &k.public()),
        Err(ManifestError::BadInfo { segment: 0, .. })
    ));

    let mut peers = manifest(&k, 1, 0..1);
    peers.peers = (0..5).map(|i| format!("127.0.0.1:{}", 6881 + i)).collect();
    assert_eq!(
        verify(&sign_raw(&k, &peers.encode_body()), &k.public()),
        Err(ManifestError::LimitExceeded {
            field: "peers",
            max: 4,
            found: 5
        })
    );
    assert!(matches!(
        peers.sign(&k),
        Err(ManifestError::LimitExceeded { field: "peers", .. })
    ));

    let long = manifest(&k, 1, 0..65);
    assert_eq!(
        verify(&sign_raw(&k, &long.encode_body()), &k.public()),
        Err(ManifestError::LimitExceeded {
            field: "window",
            max: 64,
            found: 65
        })
    );

    let mut bad_peer = manifest(&k, 1, 0..1);
    bad_peer.peers = vec!["no port".into()];
    assert!(matches!(
        bad_peer.sign(&k),
        Err(ManifestError::BadField { field: "peers", .. })
    ));

    assert!(matches!(
        verify(&vec![b'x'; MAX_DOCUMENT + 1], &k.public()),
        Err(ManifestError::TooLarge { found, max: MAX_DOCUMENT }) if found == MAX_DOCUMENT + 1
    ));
}

#[test]
fn oversized_documents_are_not_signed() {
    let k = secret(1);
    // 64 segments of 1,024 pieces each: 64 x ~20.5 KB of piece hashes, over 1 MiB.
    let mut m = manifest(&k, 1, 0..0);
    let big = entry(0, 32 * 1024 * 1024);
    for n in 0..64 {
        m.segments.push(SegmentEntry {
            number: n,
            ..big.clone()
        });
    }
    assert!(matches!(m.sign(&k), Err(ManifestError::TooLarge { .. })));
}

#[test]
fn wrong_version_and_field_types_are_refused() {
    let k = secret(1);
    let body = manifest(&k, 1, 0..1).encode_body();
    let v2 = replace(&body, "7:versioni1e", "7:versioni2e");
    assert_eq!(
        verify(&sign_raw(&k, &v2), &k.public()),
        Err(ManifestError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    );
    let flag = replace(&body, "13:end_of_streami0e", "13:end_of_streami2e");
    assert!(matches!(
        verify(&sign_raw(&k, &flag), &k.public()),
        Err(ManifestError::BadField {
            field: "end_of_stream",
            ..
        })
    ));
    let negative = replace(&body, "3:seqi1e", "3:seqi-1e");
    assert!(matches!(
        verify(&sign_raw(&k, &negative), &k.public()),
        Err(ManifestError::Malformed { part: "body", .. })
    ));
}

#[test]
fn window_rolls_and_signs_in_sequence() {
    let k = secret(4);
    let config = WindowConfig {
        capacity: 3,
        target_duration: 180_000,
        peers: vec!["127.0.0.1:6881".into()],
        trackers: vec![],
    };
    let mut w = Window::new(k.clone(), config, 10).unwrap();
    let mut v = Verifier::new(k.public());
    for n in 0..5u64 {
        let dropped = w.push(entry(n, 500)).unwrap();
        assert_eq!(dropped.map(|d| d.number), n.checked_sub(3));
        let signed = w.sign(1000 + n).unwrap();
        assert_eq!(signed.manifest.seq, 10 + n);
        let Verdict::New(got) = v.accept(&signed.bytes).unwrap() else {
            panic!("not new")
        };
        let numbers: Vec<u64> = got.manifest.segments.iter().map(|s| s.number).collect();
        assert_eq!(numbers, (n.saturating_sub(2)..=n).collect::<Vec<_>>());
    }
    assert!(matches!(
        w.push(entry(9, 500)),
        Err(ManifestError::NotContiguous {
            expected: 5,
            found: 9,
            ..
        })
    ));
    let mut bad = entry(5, 500);
    bad.info_hash = InfoHash([0; 20]);
    assert!(matches!(
        w.push(bad),
        Err(ManifestError::InfoHashMismatch { .. })
    ));
    w.end_stream();
    let last = w.sign(2000).unwrap();
    assert!(last.manifest.end_of_stream);
    assert!(w.push(entry(5, 500)).is_err());
    assert!(Window::new(
        k,
        WindowConfig {
            capacity: 65,
            target_duration: 1,
            peers: vec![],
            trackers: vec![]
        },
        0
    )
    .is_err());
}

/// docs/manifest.md carries a test vector; this recomputes it from the inputs the doc lists.
#[test]
fn docs_test_vector_matches() {
    let doc = include_str!("../../../../docs/manifest.md");
    let block = |marker: &str| -> String {
        let start = doc
            .find(marker)
            .unwrap_or_else(|| panic!("docs/manifest.md lacks {marker}"));
        let rest = &doc[start..];
        let open = rest.find("```text\n").unwrap() + "```text\n".len();
        let close = rest[open..].find("```").unwrap();
        rest[open..open + close].split_whitespace().collect()
    };
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let k = StreamSecret::from_seed(&seed);
    let segment: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let t =
        SegmentTorrent::build(&segment[..], 100_000, "00000007.ts", Some(32768), vec![]).unwrap();
    let m = Manifest {
        key: k.public(),
        seq: 42,
        issued_ms: 1_764_000_000_000,
        target_duration: 180_000,
        peers: vec!["127.0.0.1:6881".into()],
        trackers: vec!["http://127.0.0.1:8080/announce".into()],
        end_of_stream: false,
        segments: vec![SegmentEntry {
            number: 7,
            media_start: 1_260_000,
            duration: 180_000,
            size: 100_000,
            discontinuity: false,
            published_ms: 1_763_999_999_500,
            info_hash: t.info_hash(),
            info: t.info_bytes().to_vec(),
        }],
    };
    let signed = m.sign(&k).unwrap();
    let (_, body, sig) = decode_parts(&signed.bytes).unwrap();
    assert_eq!(block("<!-- vector:public-key -->"), k.public().to_string());
    assert_eq!(
        block("<!-- vector:info-hash -->"),
        t.info_hash().to_string()
    );
    assert_eq!(
        block("<!-- vector:body -->"),
        hex::encode(&body),
        "body bytes changed"
    );
    assert_eq!(
        block("<!-- vector:signature -->"),
        hex::encode(sig),
        "signature changed"
    );
    assert_eq!(
        block("<!-- vector:document -->"),
        hex::encode(&signed.bytes)
    );
    verify(
        &hex::decode(block("<!-- vector:document -->")).unwrap(),
        &k.public(),
    )
    .unwrap();

    // The delta vector: the next document lists segment 8 as well.
    let eight: Vec<u8> = (0..100_000u32).map(|i| ((i + 8) % 251) as u8).collect();
    let t8 =
        SegmentTorrent::build(&eight[..], 100_000, "00000008.ts", Some(32768), vec![]).unwrap();
    let mut next = m.clone();
    next.seq = 43;
    next.issued_ms = 1_764_000_002_000;
    next.segments.push(SegmentEntry {
        number: 8,
        media_start: 1_440_000,
        duration: 180_000,
        size: 100_000,
        discontinuity: false,
        published_ms: 1_764_000_001_500,
        info_hash: t8.info_hash(),
        info: t8.info_bytes().to_vec(),
    });
    let next = next.sign(&k).unwrap();
    let d = delta::encode(&m, &next).unwrap();
    assert_eq!(
        block("<!-- vector:next-document -->"),
        hex::encode(&next.bytes)
    );
    assert_eq!(
        block("<!-- vector:delta -->"),
        hex::encode(&d),
        "delta bytes changed"
    );
    let mut v = Verifier::new(k.public());
    v.accept(&hex::decode(block("<!-- vector:document -->")).unwrap())
        .unwrap();
    assert_eq!(
        v.accept_delta(&hex::decode(block("<!-- vector:delta -->")).unwrap()),
        Ok(Verdict::New(next))
    );
}

fn arb_manifest() -> impl Strategy<Value = (u8, Manifest)> {
    (
        any::<u8>(),
        0u64..1 << 40,
        0u64..1 << 50,
        1u64..1 << 32,
        proptest::collection::vec(
            (1usize..70_000, 1u64..1 << 30, any::<bool>(), 0u64..1 << 50),
            0..6,
        ),
        0u64..1 << 40,
        any::<bool>(),
        proptest::collection::vec((1u8..255, 1u16..), 0..=4),
        proptest::collection::vec("[a-z]{1,12}", 0..=4),
    )
        .prop_map(
            |(seed, seq, issued, target, segs, first, end, peers, trackers)| {
                let k = secret(seed);
                let segments = segs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (len, dur, disc, published))| {
                        let base = entry(first + i as u64, len);
                        SegmentEntry {
                            duration: dur,
                            discontinuity: disc,
                            published_ms: published,
                            ..base
                        }
                    })
                    .collect();
                let m = Manifest {
                    key: k.public(),
                    seq,
                    issued_ms: issued,
                    target_duration: target,
                    peers: peers
                        .into_iter()
                        .map(|(a, p)| format!("10.0.0.{a}:{p}"))
                        .collect(),
                    trackers: trackers
                        .into_iter()
                        .map(|h| format!("http://{h}.example/announce"))
                        .collect(),
                    end_of_stream: end,
                    segments,
                };
                (seed, m)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn encode_decode_verify_round_trips((seed, m) in arb_manifest()) {
        let k = secret(seed);
        let signed = m.sign(&k).unwrap();
        let mut v = Verifier::new(k.public());
        let Verdict::New(back) = v.accept(&signed.bytes).unwrap() else { panic!("not new") };
        prop_assert_eq!(&back.manifest, &m);
        prop_assert_eq!(back.manifest.encode_body(), m.encode_body());
        prop_assert_eq!(v.accept(&signed.bytes).unwrap(), Verdict::Unchanged);
    }
}

/// A follower holding document 1 (segments 0-4) gets document 2 (1-5) as a delta: only segment 5
/// travels, and what it rebuilds is document 2 byte for byte.
#[test]
fn a_delta_rebuilds_the_next_document_byte_for_byte() {
    let k = secret(1);
    let m1 = manifest(&k, 1, 0..5).sign(&k).unwrap();
    let m2 = manifest(&k, 2, 1..6).sign(&k).unwrap();
    let d = delta::encode(&m1.manifest, &m2).unwrap();
    assert!(delta::is_delta(&d) && !delta::is_delta(&m2.bytes));
    assert!(
        d.len() * 2 < m2.bytes.len(),
        "a delta of one new segment in five is {} bytes, the document {}",
        d.len(),
        m2.bytes.len()
    );
    let mut v = Verifier::new(k.public());
    v.accept(&m1.bytes).unwrap();
    assert_eq!(v.accept_any(&d), Ok(Verdict::New(m2.clone())));
    assert_eq!(v.last_seq(), Some(2));
    // The full document afterwards is "unchanged": the verifier holds the very same bytes.
    assert_eq!(v.accept(&m2.bytes), Ok(Verdict::Unchanged));

    // Only the end of the stream changes: nothing is added, everything kept.
    let mut last = manifest(&k, 3, 1..6);
    last.end_of_stream = true;
    let last = last.sign(&k).unwrap();
    let d = delta::encode(&m2.manifest, &last).unwrap();
    assert_eq!(v.accept_delta(&d), Ok(Verdict::New(last)));

    // Nothing in common, or not newer: no delta.
    let far = manifest(&k, 9, 20..22).sign(&k).unwrap();
    assert_eq!(delta::encode(&m1.manifest, &far), None);
    assert_eq!(delta::encode(&m2.manifest, &m1), None);
}

#[test]
fn every_single_bit_flip_of_a_delta_is_refused() {
    let k = secret(2);
    let m1 = manifest(&k, 1, 0..3).sign(&k).unwrap();
    let m2 = manifest(&k, 2, 1..4).sign(&k).unwrap();
    let d = delta::encode(&m1.manifest, &m2).unwrap();
    for bit in 0..d.len() * 8 {
        let mut bad = d.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut v = Verifier::new(k.public());
        v.accept(&m1.bytes).unwrap();
        let got = v.accept_any(&bad);
        assert!(got.is_err(), "bit {bit} flipped was accepted: {got:?}");
        assert_eq!(v.last_seq(), Some(1), "a refused delta changed the state");
    }
}

#[test]
fn a_delta_for_another_base_or_beyond_it_is_refused_by_name() {
    let k = secret(3);
    let m1 = manifest(&k, 1, 0..3).sign(&k).unwrap();
    let m2 = manifest(&k, 2, 1..4).sign(&k).unwrap();
    let m3 = manifest(&k, 3, 2..5).sign(&k).unwrap();
    let d23 = delta::encode(&m2.manifest, &m3).unwrap();
    let mut v = Verifier::new(k.public());
    assert_eq!(
        v.accept_delta(&d23),
        Err(ManifestError::DeltaBase {
            stated: 2,
            have: None
        })
    );
    v.accept(&m1.bytes).unwrap();
    let err = v.accept_delta(&d23).unwrap_err();
    assert_eq!(
        err,
        ManifestError::DeltaBase {
            stated: 2,
            have: Some(1)
        }
    );
    assert!(err.to_string().contains("sequence 2") && err.to_string().contains("is 1"));
    // A delta that claims entries the base does not hold (segment 3 is not in document 1).
    let forged = serde_bencode::to_bytes(&serde_bencode::value::Value::Dict(
        [
            (b"base".to_vec(), serde_bencode::value::Value::Int(1)),
            (b"from".to_vec(), serde_bencode::value::Value::Int(2)),
            (b"keep".to_vec(), serde_bencode::value::Value::Int(2)),
            (
                b"part".to_vec(),
                serde_bencode::value::Value::Bytes(manifest(&k, 3, 4..5).encode_body()),
            ),
            (
                b"sig".to_vec(),
                serde_bencode::value::Value::Bytes(vec![0; 64]),
            ),
        ]
        .into_iter()
        .collect(),
    ))
    .unwrap();
    let err = v.accept_delta(&forged).unwrap_err();
    assert!(
        matches!(err, ManifestError::BadField { field: "keep", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("segments 0 to 2"), "{err}");
    // A delta signed by someone else rebuilds, then fails as a forged document does.
    let other = secret(4);
    let mut theirs = manifest(&other, 2, 1..4);
    theirs.key = k.public();
    let body = theirs.encode_body();
    let forged_doc = sign_raw(&other, &body);
    let forged_signed = SignedManifest {
        manifest: theirs,
        bytes: forged_doc,
    };
    let d = delta::encode(&m1.manifest, &forged_signed).unwrap();
    assert_eq!(v.accept_delta(&d), Err(ManifestError::BadSignature));
    assert_eq!(v.last_seq(), Some(1));
}

/// Keys this build does not know (a later version's) survive a delta: the rebuilt body is the
/// signed one.
#[test]
fn unknown_keys_survive_a_delta() {
    use serde_bencode::value::Value;
    let k = secret(5);
    let extend = |m: &Manifest| -> Vec<u8> {
        let Value::Dict(mut body) = serde_bencode::from_bytes(&m.encode_body()).unwrap() else {
            unreachable!()
        };
        body.insert(b"zz-later".to_vec(), Value::Int(7));
        if let Some(Value::List(window)) = body.get_mut(b"window".as_slice()) {
            for e in window {
                if let Value::Dict(e) = e {
                    e.insert(b"zz-entry".to_vec(), Value::Bytes(b"x".to_vec()));
                }
            }
        }
        serde_bencode::to_bytes(&Value::Dict(body)).unwrap()
    };
    let (m1, m2) = (manifest(&k, 1, 0..3), manifest(&k, 2, 1..4));
    let (doc1, body2) = (sign_raw(&k, &extend(&m1)), extend(&m2));
    let doc2 = sign_raw(&k, &body2);
    // The delta as a later publisher would write it: document 2's body without segments 1-2.
    let Value::Dict(mut part) = serde_bencode::from_bytes(&body2).unwrap() else {
        unreachable!()
    };
    if let Some(Value::List(window)) = part.get_mut(b"window".as_slice()) {
        window.drain(..2);
    }
    let sig = decode_parts(&doc2).unwrap().2;
    let d = serde_bencode::to_bytes(&Value::Dict(
        [
            (b"base".to_vec(), Value::Int(1)),
            (b"from".to_vec(), Value::Int(1)),
            (b"keep".to_vec(), Value::Int(2)),
            (
                b"part".to_vec(),
                Value::Bytes(serde_bencode::to_bytes(&Value::Dict(part)).unwrap()),
            ),
            (b"sig".to_vec(), Value::Bytes(sig.to_vec())),
        ]
        .into_iter()
        .collect(),
    ))
    .unwrap();
    let mut v = Verifier::new(k.public());
    v.accept(&doc1).unwrap();
    match v.accept_delta(&d) {
        Ok(Verdict::New(m)) => assert_eq!(m.bytes, doc2),
        other => panic!("{other:?}"),
    }
}
