//! Helpers shared by the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// A `swarmcast` command with logging quiet and no `SWARMCAST_*` variables leaking in.
pub(crate) fn swarmcast() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarmcast"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWARMCAST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("SWARMCAST_LOG", "warn");
    cmd
}

/// Runs `cmd`, returns its output; panics with stderr if the exit status differs from `success`.
pub(crate) fn run(cmd: &mut Command, success: bool) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_eq!(
        out.status.success(),
        success,
        "{cmd:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The path of an external program the tests compare against. Missing tools fail the test:
/// `.ci/run` installs them (see the README), and a skipped comparison would prove nothing.
pub(crate) fn tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!("{name} is not installed: run `bash .ci/run` or `apt-get install mktorrent python3-libtorrent`");
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
