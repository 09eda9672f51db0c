//! `swarmcast keygen`.

use swarmcast_core::keys::keyfile;
use swarmcast_core::StreamKey;

use crate::util::{run, swarmcast};

#[test]
fn writes_a_private_key_and_prints_its_public_half() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.key");
    let out = run(swarmcast().args(["keygen", "--out"]).arg(&path), true);
    let printed: StreamKey = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(keyfile::read(&path).unwrap().public(), printed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let before = std::fs::read(&path).unwrap();
    let err = run(
        swarmcast().arg("keygen").env("SWARMCAST_KEYGEN_OUT", &path),
        false,
    )
    .stderr;
    assert!(String::from_utf8_lossy(&err).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "existing key must survive"
    );
}
