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

/// A process's start time (field 22 of `/proc/PID/stat`, clock ticks after boot): with its id,
/// it names the process for good. `None` when there is no such process.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Sends SIGKILL to `pid` if it still names the process that started at `started` (a guard's
/// process may have been reaped already, and its id given to another process since).
pub(crate) fn kill_if_same(pid: u32, started: Option<u64>) {
    if started.is_some() && start_time(pid) == started {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Deterministic pseudo-random bytes, so failures reproduce.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    swarmcast_core::testdata::pseudo_random(len, seed)
}

/// A minimal blocking HTTP GET of `path` from `addr` (`host:port`) over loopback (HTTP/1.1,
/// `Connection: close`, each of `headers` added), bounded by a read timeout of `timeout`: the
/// status, the response head (lowercase) and the body as sent (not de-chunked).
pub(crate) fn http_request(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: std::time::Duration,
) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut conn =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    conn.set_read_timeout(Some(timeout)).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end")
        + 4;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, response[split..].to_vec())
}

/// A minimal blocking HTTP GET over loopback (HTTP/1.1, `Connection: close`); returns the status
/// code and body (de-chunked). Enough for our own server; bounded by a read timeout.
pub(crate) fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let (status, head, mut body) =
        http_request(host, &path, &[], std::time::Duration::from_secs(60));
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}
