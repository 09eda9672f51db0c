//! The samplers' tests: `/proc/stat` and `ss` parsing on recorded outputs, the saturation rule,
//! and both samplers run for a moment on this machine.

use super::cpu::PROC_STAT;
use super::rtt::{run_ss, ss_command};
use super::*;
use std::io;
use std::time::{Duration, Instant};
use swarmcast_tasks::Tasks;
use tokio::process::Command;

// ---- /proc/stat --------------------------------------------------------------------------

/// `/proc/stat` as read on the machine these tests were written on (2 CPUs, Linux 6.x).
const PROC_STAT_TEXT: &str = "\
cpu  60012 0 7550 39105 384 0 52 34 0 0
cpu0 29625 0 3378 20475 66 0 9 15 0 0
cpu1 30386 0 4171 18629 317 0 43 18 0 0
intr 5184219 0 9 0 0 0 0 0 0 0 0
ctxt 10295411
btime 1718000000
processes 40123
procs_running 2
procs_blocked 0
softirq 2716151 0 377522 2 58042 0 0 1218 1232367 0 1047000
";

#[test]
fn parses_the_aggregate_line() {
    let t = parse_cpu_line("cpu  60012 0 7550 39105 384 0 52 34 0 0").unwrap();
    assert_eq!(
        t,
        CpuTimes {
            user: 60012,
            nice: 0,
            system: 7550,
            idle: 39105,
            iowait: 384,
            irq: 0,
            softirq: 52,
            steal: 34,
            guest: 0,
            guest_nice: 0,
        }
    );
    assert_eq!(t.idle_all(), 39105 + 384);
    assert_eq!(t.total(), 60012 + 7550 + 39105 + 384 + 52 + 34);
}

#[test]
fn guest_columns_are_not_counted_twice() {
    // proc(5)'s example: a host running guests (guest 175628 is inside user 10132153).
    let t =
        parse_cpu_line("cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0").unwrap();
    assert_eq!(t.guest, 175628);
    assert_eq!(t.guest_nice, 0);
    assert_eq!(
        t.total(),
        10132153 + 290696 + 3084719 + 46828483 + 16683 + 25195
    );
    let t = parse_cpu_line("cpu 100 20 30 400 5 6 7 8 90 10").unwrap();
    assert_eq!((t.guest, t.guest_nice), (90, 10));
    assert_eq!(t.total(), 100 + 20 + 30 + 400 + 5 + 6 + 7 + 8);
}

#[test]
fn short_and_long_lines() {
    // An old kernel: four columns.
    let t = parse_cpu_line("cpu 1 2 3 4").unwrap();
    assert_eq!((t.user, t.idle, t.iowait, t.steal), (1, 4, 0, 0));
    // A future kernel: an eleventh column is ignored.
    let t = parse_cpu_line("cpu 1 2 3 4 5 6 7 8 9 10 11").unwrap();
    assert_eq!(t.guest_nice, 10);
}

#[test]
fn bad_lines_are_none() {
    for line in [
        "",
        "   ",
        "cpu",
        "cpu 1 2 3",
        "cpu0 29625 0 3378 20475 66 0 9 15 0 0",
        "cpux 1 2 3 4",
        "intr 5184219 0 9 0",
        "cpu 1 2 x 4",
        "cpu 1 2 3 -4",
        "cpu 1.5 2 3 4",
        "cpu 99999999999999999999999 2 3 4",
        "CPU 1 2 3 4",
        "cpu 1 2 3 4 \u{fffd}",
    ] {
        assert_eq!(parse_cpu_line(line), None, "{line:?}");
    }
    assert_eq!(parse_proc_stat(""), None);
    assert_eq!(parse_proc_stat("cpu0 1 2 3 4\nintr 1\n"), None);
    assert_eq!(count_cpus("garbage\n\0\n"), 0);
}

#[test]
fn reads_the_whole_file() {
    let t = parse_proc_stat(PROC_STAT_TEXT).unwrap();
    assert_eq!(t.user, 60012);
    assert_eq!(count_cpus(PROC_STAT_TEXT), 2);
}

#[test]
fn idle_share_of_an_interval() {
    let a = parse_cpu_line("cpu  60012 0 7550 39105 384 0 52 34 0 0").unwrap();
    // 200 ticks pass: 150 busy, 40 idle + 10 iowait.
    let b = parse_cpu_line("cpu  60132 0 7580 39145 394 0 52 34 0 0").unwrap();
    assert_eq!(b.total() - a.total(), 200);
    assert_eq!(idle_share(&a, &b), Some(0.25));
    // No time passed: no sample.
    assert_eq!(idle_share(&a, &a), None);
    // Backwards: no sample.
    assert_eq!(idle_share(&b, &a), None);
    // iowait went backwards but the total moved on: clamped, no panic.
    let c = CpuTimes {
        user: b.user + 100,
        iowait: b.iowait - 5,
        ..b
    };
    assert_eq!(idle_share(&b, &c), Some(0.0));
    // All idle.
    let d = CpuTimes {
        idle: b.idle + 100,
        ..b
    };
    assert_eq!(idle_share(&b, &d), Some(1.0));
    // Huge counters do not overflow.
    let max = CpuTimes {
        user: u64::MAX,
        idle: u64::MAX,
        ..CpuTimes::default()
    };
    assert_eq!(idle_share(&max, &max), None);
}

#[test]
fn saturation_rule() {
    assert!(!is_saturated(&[]));
    assert!(!is_saturated(&[0.5, 0.6, 0.4]));
    // Mean under 10%.
    assert!(is_saturated(&[0.09, 0.09, 0.09]));
    assert!(!is_saturated(&[0.10, 0.10, 0.10]));
    // Bursts: 2 of 4 under 5% (more than a quarter), though the mean is 45%.
    assert!(is_saturated(&[0.0, 0.01, 0.9, 0.9]));
    // Exactly a quarter is not more than a quarter.
    assert!(!is_saturated(&[0.0, 0.9, 0.9, 0.9]));
    // 5% itself is not under 5%.
    assert!(!is_saturated(&[0.05, 0.05, 0.9, 0.9]));
}

#[test]
fn stats_from_samples() {
    let samples: Vec<f64> = (1..=20).map(|i| i as f64 / 20.0).collect();
    let stats = CpuStats::from_samples(samples.clone(), 1.0, 4);
    // Nearest rank: ceil(0.1 * 20) = 2nd smallest.
    assert_eq!(stats.idle_p10, 0.1);
    assert!((stats.idle_mean - 0.525).abs() < 1e-12);
    assert!((stats.busy_cores_mean - 0.475 * 4.0).abs() < 1e-12);
    assert_eq!(stats.cores, 4);
    assert!(!stats.saturated);
    assert_eq!(stats.samples, samples);
    // Three samples: ceil(0.3) = the smallest.
    assert_eq!(
        CpuStats::from_samples(vec![0.7, 0.2, 0.9], 1.0, 1).idle_p10,
        0.2
    );
    let empty = CpuStats::from_samples(Vec::new(), 1.0, 2);
    assert_eq!(
        (empty.idle_mean, empty.idle_p10, empty.busy_cores_mean),
        (0.0, 0.0, 0.0)
    );
    assert!(!empty.saturated);
    let busy = CpuStats::from_samples(vec![0.02; 5], 0.5, 2);
    assert!(busy.saturated);
    let json = serde_json::to_string(&busy).unwrap();
    assert_eq!(serde_json::from_str::<CpuStats>(&json).unwrap(), busy);
}

#[tokio::test]
async fn cpu_sampler_samples() {
    if !std::path::Path::new(PROC_STAT).exists() {
        return;
    }
    let sampler = CpuSampler::start(Duration::from_millis(50));
    // Keep one core a little busy.
    let tasks = Tasks::new("test");
    let spin = tasks.spawn_blocking("spin", || {
        let until = Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_add(1);
        }
        x
    });
    tokio::time::sleep(Duration::from_millis(330)).await;
    spin.await.unwrap();
    let stats = sampler.shutdown().await;
    assert!(stats.samples.len() >= 3, "{stats:?}");
    assert!(stats.samples.iter().all(|s| (0.0..=1.0).contains(s)));
    assert!(stats.cores >= 1);
    assert_eq!(stats.interval_secs, 0.05);
    assert_eq!(stats.saturated, is_saturated(&stats.samples));
}

#[tokio::test]
async fn a_short_run_counts_its_partial_interval() {
    if !std::path::Path::new(PROC_STAT).exists() {
        return;
    }
    let sampler = CpuSampler::start(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(120)).await;
    // Over half an interval passed: it counts as one sample.
    assert_eq!(sampler.shutdown().await.samples.len(), 1);
    // Under half an interval: no sample.
    let sampler = CpuSampler::start(Duration::from_secs(10));
    assert!(sampler.shutdown().await.samples.is_empty());
}

// ---- ss ----------------------------------------------------------------------------------

/// `ip netns exec B ss -tinH state established` (iproute2 6.1.0, Linux 6.x): namespace B's two
/// connections over a veth pair to an HTTP server in namespace A (10.250.0.1:8080).
const SS_CLIENT: &str = "\
0      0      10.250.0.2:47142 10.250.0.1:8080
\t bbr wscale:10,10 rto:204 rtt:0.034/0.02 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:12 bytes_sent:33 bytes_acked:34 segs_out:4 segs_in:3 data_segs_out:2 bbr:(bw:1287111032bps,mrtt:0.009,pacing_gain:2.88672,cwnd_gain:2.88672) send 4088470588bps lastsnd:1348 lastrcv:2348 lastack:1348 pacing_rate 9736867800bps delivery_rate 1287111104bps delivered:3 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.009 snd_wnd:65536
0      0      10.250.0.2:47154 10.250.0.1:8080
\t bbr wscale:10,10 rto:204 rtt:0.007/0.003 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:12 bytes_sent:33 bytes_acked:34 segs_out:4 segs_in:3 data_segs_out:2 bbr:(bw:2316799856bps,mrtt:0.005,pacing_gain:2.88672,cwnd_gain:2.88672) send 19858285714bps lastsnd:1348 lastrcv:2348 lastack:1348 pacing_rate 47293359864bps delivery_rate 2316800000bps delivered:3 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.005 snd_wnd:65536
";

/// The same from namespace A (the server side; note the trailing spaces ss left).
const SS_SERVER: &str = "\
0      0      10.250.0.1:8080 10.250.0.2:47154
\t bbr wscale:10,10 rto:204 rtt:0.008/0.004 ato:40 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:10 bytes_received:33 segs_out:2 segs_in:4 data_segs_in:2 bbr:(bw:0bps,mrtt:0.008) send 14480000000bps lastsnd:2360 lastrcv:1360 lastack:1360 pacing_rate 41381690624bps delivered:1 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.008 snd_wnd:64512
0      0      10.250.0.1:8080 10.250.0.2:47142
\t bbr wscale:10,10 rto:204 rtt:0.021/0.01 ato:40 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:10 bytes_received:33 segs_out:2 segs_in:4 data_segs_in:2 bbr:(bw:0bps,mrtt:0.021) send 5516190476bps lastsnd:2360 lastrcv:1360 lastack:1360 pacing_rate 15764452624bps delivered:1 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.021 snd_wnd:64512  
";

/// IPv6 on loopback in namespace A.
const SS_V6: &str = "\
0      0      [::1]:9090  [::1]:54828
\t bbr wscale:10,10 rto:204 rtt:0.017/0.009 ato:40 mss:32768 pmtu:65536 rcvmss:536 advmss:65464 cwnd:11 bytes_sent:2 bytes_acked:2 bytes_received:2 segs_out:2 segs_in:4 data_segs_out:1 data_segs_in:1 bbr:(bw:65536000000bps,mrtt:0.004,pacing_gain:2.88672,cwnd_gain:2.88672) send 169622588235bps lastsnd:836 lastrcv:836 lastack:836 pacing_rate 394299253656bps delivery_rate 65536000000bps delivered:2 app_limited rcv_space:65464 rcv_ssthresh:65464 minrtt:0.004 snd_wnd:65536
0      0      [::1]:54828 [::1]:9090 
\t bbr wscale:10,10 rto:204 rtt:0.051/0.029 ato:40 mss:32768 pmtu:65536 rcvmss:536 advmss:65464 cwnd:11 bytes_sent:2 bytes_acked:3 bytes_received:2 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 bbr:(bw:29127109368bps,mrtt:0.009,pacing_gain:2.88672,cwnd_gain:2.88672) send 56540862745bps lastsnd:836 lastrcv:836 lastack:836 pacing_rate 131288687848bps delivery_rate 29127111104bps delivered:2 app_limited rcv_space:65476 rcv_ssthresh:65476 minrtt:0.009 snd_wnd:65536 
";

/// `ss -tinH` without a state filter: the state column is there.
const SS_WITH_STATE: &str = "\
ESTAB 0      0      127.0.0.1:59780 127.0.0.1:50857
\t bbr wscale:10,10 rto:204 rtt:0.023/0.013 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd:11 bytes_sent:2 bytes_acked:3 bytes_received:2 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 bbr:(bw:37449140624bps,mrtt:0.007,pacing_gain:2.88672,cwnd_gain:2.88672) send 125373217391bps lastsnd:844 lastrcv:844 lastack:844 pacing_rate 287904345936bps delivery_rate 37449142856bps delivered:2 app_limited rcv_space:65495 rcv_ssthresh:65495 minrtt:0.007 snd_wnd:65536
ESTAB 0      0      127.0.0.1:50857 127.0.0.1:59780
\t bbr wscale:10,10 rto:204 rtt:0.016/0.009 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd:11 bytes_sent:2 bytes_acked:2 bytes_received:2 segs_out:2 segs_in:4 data_segs_out:1 data_segs_in:1 bbr:(bw:65536000000bps,mrtt:0.004,pacing_gain:2.88672,cwnd_gain:2.88672) send 180224000000bps lastsnd:844 lastrcv:844 lastack:844 pacing_rate 416204775192bps delivery_rate 65536000000bps delivered:2 app_limited rcv_space:65483 rcv_ssthresh:65483 minrtt:0.004 snd_wnd:65536
";

fn rtt(srtt_ms: f64, minrtt_ms: Option<f64>, local: &str, peer: &str) -> TcpRtt {
    TcpRtt {
        srtt_ms,
        minrtt_ms,
        local: local.into(),
        peer: peer.into(),
    }
}

#[test]
fn parses_ss_from_namespaces() {
    assert_eq!(
        parse_ss(SS_CLIENT),
        vec![
            rtt(0.034, Some(0.009), "10.250.0.2:47142", "10.250.0.1:8080"),
            rtt(0.007, Some(0.005), "10.250.0.2:47154", "10.250.0.1:8080"),
        ]
    );
    assert_eq!(
        parse_ss(SS_SERVER),
        vec![
            rtt(0.008, Some(0.008), "10.250.0.1:8080", "10.250.0.2:47154"),
            rtt(0.021, Some(0.021), "10.250.0.1:8080", "10.250.0.2:47142"),
        ]
    );
    assert_eq!(
        parse_ss(SS_V6),
        vec![
            rtt(0.017, Some(0.004), "[::1]:9090", "[::1]:54828"),
            rtt(0.051, Some(0.009), "[::1]:54828", "[::1]:9090"),
        ]
    );
    assert_eq!(
        parse_ss(SS_WITH_STATE),
        vec![
            rtt(0.023, Some(0.007), "127.0.0.1:59780", "127.0.0.1:50857"),
            rtt(0.016, Some(0.004), "127.0.0.1:50857", "127.0.0.1:59780"),
        ]
    );
}

#[test]
fn parses_ss_info_on_the_address_line() {
    // Older ss printed the info after the addresses; a header line is skipped.
    let text = "\
State Recv-Q Send-Q Local Address:Port Peer Address:Port
ESTAB 0 0 10.0.0.2:40144 10.0.0.1:443 cubic wscale:7,7 rto:252 rtt:50.512/0.3 ato:40 mss:1448 cwnd:10 minrtt:50.1
ESTAB 0 36 10.0.0.2:40146 10.0.0.1:443 users:((\"swarmcast\",pid=7,fd=9)) cubic rtt:120/60 rcv_rtt:4 cwnd:10
";
    assert_eq!(
        parse_ss(text),
        vec![
            rtt(50.512, Some(50.1), "10.0.0.2:40144", "10.0.0.1:443"),
            rtt(120.0, None, "10.0.0.2:40146", "10.0.0.1:443"),
        ]
    );
    // With a netid column (`ss -ti` with other protocols too).
    assert_eq!(
        parse_ss("tcp ESTAB 0 0 10.0.0.2:1 10.0.0.1:2\n\t cubic rtt:1.5/0.75\n"),
        vec![rtt(1.5, None, "10.0.0.2:1", "10.0.0.1:2")]
    );
}

#[test]
fn ss_garbage_never_panics() {
    for text in [
        "",
        "\n\n\t\n",
        "rtt:1/2 minrtt:1",
        "0 0 a:1 b:2",
        "0 0 a:1 b:2\n\t rtt:x/1 minrtt:nan\n",
        "0 0 a:1 b:2\n\t rtt:-1/1\n",
        "0 0 a:1 b:2\n\t rtt:inf/1\n",
        "0 0 a:1\n\t rtt:1/1\n",
        "x y 0 0 a:1 b:2 rtt:",
        "0 0 noport nope\n\t rtt:1/1\n",
        "\u{0}\u{fffd} rtt:/",
    ] {
        assert_eq!(parse_ss(text), Vec::new(), "{text:?}");
    }
    // A connection without rtt is skipped; the next one is still read.
    assert_eq!(
        parse_ss("0 0 a:1 b:2\n\t cubic\n0 0 a:3 b:4\n\t rtt:2/1 minrtt:oops\n"),
        vec![rtt(2.0, None, "a:3", "b:4")]
    );
    // `mrtt:` (bbr) and `rcv_rtt:` are not `rtt:` or `minrtt:`.
    assert_eq!(
        parse_ss("0 0 a:1 b:2\n\t bbr:(mrtt:9) rcv_rtt:8 rtt:3/1\n"),
        vec![rtt(3.0, None, "a:1", "b:2")]
    );
}

#[test]
fn ss_command_lines() {
    let cmd = ss_command("swc-1234-h3");
    let std = cmd.as_std();
    assert_eq!(std.get_program(), "ip");
    let args: Vec<_> = std.get_args().collect();
    assert_eq!(
        args,
        [
            "netns",
            "exec",
            "swc-1234-h3",
            "ss",
            "-tinH",
            "state",
            "established"
        ]
    );
    let cmd = ss_command("");
    assert_eq!(cmd.as_std().get_program(), "ss");
}

#[tokio::test]
async fn run_ss_errors() {
    let mut slow = Command::new("sh");
    slow.args(["-c", "sleep 5"]);
    let started = Instant::now();
    let err = run_ss(slow, Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut failing = Command::new("sh");
    failing.args(["-c", "echo oops >&2; exit 3"]);
    let err = run_ss(failing, SS_TIMEOUT).await.unwrap_err();
    assert!(err.to_string().contains("oops"), "{err}");

    let missing = Command::new("/nonexistent/swc-sampler-ss");
    assert!(run_ss(missing, SS_TIMEOUT).await.is_err());

    let mut canned = Command::new("printf");
    canned.args(["%s", SS_CLIENT]);
    assert_eq!(run_ss(canned, SS_TIMEOUT).await.unwrap().len(), 2);
}

/// `ss` is installed (iproute2); the tests that run it are skipped where it is not.
fn have_ss() -> bool {
    std::process::Command::new("ss")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A loopback connection with a little traffic on it: (client, server-side stream).
async fn loopback_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 4];
    for _ in 0..3 {
        client.write_all(b"ping").await.unwrap();
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
    }
    (client, server)
}

#[tokio::test]
async fn samples_this_namespace_with_ss() {
    if !have_ss() {
        return;
    }
    let (client, _server) = loopback_pair().await;
    let local = client.local_addr().unwrap().to_string();
    let peer = client.peer_addr().unwrap().to_string();
    let rtts = sample_rtts("").await.unwrap();
    let ours = rtts
        .iter()
        .find(|r| r.local == local && r.peer == peer)
        .unwrap_or_else(|| panic!("{local} -> {peer} not in {rtts:?}"));
    assert!(ours.srtt_ms.is_finite() && ours.srtt_ms >= 0.0);
    assert!(rtts.iter().any(|r| r.local == peer && r.peer == local));
}

#[tokio::test]
async fn rtt_sampler_rounds() {
    if !have_ss() {
        return;
    }
    let (client, _server) = loopback_pair().await;
    let peer = client.peer_addr().unwrap().to_string();
    let sampler = RttSampler::start(vec![String::new()], Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let samples = sampler.shutdown().await;
    let ours: Vec<_> = samples.iter().filter(|s| s.peer == peer).collect();
    assert!(ours.len() >= 2, "{samples:?}");
    assert!(ours.windows(2).all(|w| w[0].at_secs < w[1].at_secs));
    assert!(ours.iter().all(|s| s.ns.is_empty() && s.srtt_ms >= 0.0));
    let json = serde_json::to_string(&samples).unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<RttSample>>(&json).unwrap(),
        samples
    );
}

#[tokio::test]
async fn rtt_sampler_survives_a_missing_namespace() {
    let sampler = RttSampler::start(
        vec!["swc-sampler-test-does-not-exist".into()],
        Duration::from_millis(20),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sampler.shutdown().await.is_empty());
}

#[test]
fn shutdown_leaves_no_sampler_task_alive() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cpu = CpuSampler::start(Duration::from_millis(10));
        let rtt = RttSampler::start(
            vec!["swc-sampler-test-does-not-exist".into()],
            Duration::from_millis(10),
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(runtime.metrics().num_alive_tasks() >= 2);
        cpu.shutdown().await;
        rtt.shutdown().await;
    });
    assert_eq!(runtime.metrics().num_alive_tasks(), 0);
}
