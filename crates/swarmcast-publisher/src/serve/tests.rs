use std::io::{Read, Write};

use axum::routing::get;

use super::*;

const HANG_GUARD: Duration = Duration::from_secs(30);

/// A server whose `/hold` answers when `release` is notified (counting in `holding` the
/// requests it holds), and `/` at once.
struct Test {
    addr: SocketAddr,
    counters: Arc<ConnCounters>,
    release: Arc<tokio::sync::Notify>,
    holding: Arc<AtomicUsize>,
    stop: CancellationToken,
}

async fn start(limits: HttpLimits) -> Test {
    let release = Arc::new(tokio::sync::Notify::new());
    let holding = Arc::new(AtomicUsize::new(0));
    let (held, counted) = (release.clone(), holding.clone());
    let router = Router::new().route("/", get(|| async { "ok" })).route(
        "/hold",
        get(move || {
            let (held, counted) = (held.clone(), counted.clone());
            async move {
                let released = held.notified();
                counted.fetch_add(1, Ordering::SeqCst);
                released.await;
                "released"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(ConnCounters::default());
    let stop = CancellationToken::new();
    let tasks = Tasks::new("test");
    tasks.spawn(
        "http",
        serve(
            listener,
            router,
            limits,
            counters.clone(),
            stop.clone(),
            tasks.child("http-connections"),
        ),
    );
    Test {
        addr,
        counters,
        release,
        holding,
        stop,
    }
}

/// A blocking connection from `from` (127.0.0.x), with a hang-guard read timeout.
fn connect(to: SocketAddr, from: u8) -> std::net::TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, from], 0)).into())
        .unwrap();
    s.connect(&to.into()).unwrap();
    let s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    s
}

/// Reads until the server closes (off the runtime); what it sent.
async fn closed(mut s: std::net::TcpStream) -> String {
    Tasks::new("test")
        .spawn_blocking("read", move || {
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .unwrap()
}

fn get_request(s: &mut std::net::TcpStream, path: &str, close: bool) {
    let connection = if close { "close" } else { "keep-alive" };
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\r\n"
    )
    .unwrap();
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG_GUARD, "hang guard: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_and_a_long_request_is_not() {
    let Test {
        addr,
        counters,
        release,
        holding,
        stop,
    } = start(HttpLimits {
        header_timeout: Duration::from_millis(300),
        ..HttpLimits::new(16)
    })
    .await;
    // One connection sends nothing; one sends half a request head; one is held in a
    // request (a long poll) for longer than the header timeout.
    let silent = connect(addr, 2);
    let mut half = connect(addr, 3);
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut busy = connect(addr, 4);
    get_request(&mut busy, "/hold", true);
    until("the long poll held", || holding.load(Ordering::SeqCst) == 1).await;
    let (silent, half) = tokio::join!(closed(silent), closed(half));
    // Closed without an answer (a 408 at most), while the held request is still open.
    assert!(!silent.contains("200 OK") && !half.contains("200 OK"));
    assert_eq!(counters.header_timeouts.load(Ordering::Relaxed), 2);
    release.notify_waiters();
    let busy = closed(busy).await;
    assert!(
        busy.contains("200 OK") && busy.ends_with("released"),
        "{busy}"
    );
    // A keep-alive connection idle after its answer is closed too.
    let mut kept = connect(addr, 5);
    get_request(&mut kept, "/", false);
    let kept = closed(kept).await;
    assert!(kept.contains("200 OK"), "{kept}");
    assert_eq!(counters.header_timeouts.load(Ordering::Relaxed), 3);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_cap() {
    let Test {
        addr,
        counters,
        stop,
        ..
    } = start(HttpLimits {
        per_address: 3,
        ..HttpLimits::new(16)
    })
    .await;
    let held: Vec<_> = (0..3).map(|_| connect(addr, 2)).collect();
    until("three accepted", || {
        counters.open.load(Ordering::Relaxed) == 3
    })
    .await;
    // The fourth from that address is closed on arrival; another address is served.
    let fourth = connect(addr, 2);
    let fourth = closed(fourth).await;
    assert_eq!(fourth, "");
    assert_eq!(counters.refused_per_address.load(Ordering::Relaxed), 1);
    let mut other = connect(addr, 3);
    get_request(&mut other, "/", true);
    let other = closed(other).await;
    assert!(other.ends_with("ok"), "{other}");
    drop(held);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_idlest_connection_makes_room_and_a_request_in_progress_stays() {
    let Test {
        addr,
        counters,
        release,
        holding,
        stop,
    } = start(HttpLimits {
        per_address: 0,
        ..HttpLimits::new(2)
    })
    .await;
    // A long poll, then an idle connection: the server is full.
    let mut busy = connect(addr, 2);
    get_request(&mut busy, "/hold", true);
    until("the long poll held", || holding.load(Ordering::SeqCst) == 1).await;
    let idle = connect(addr, 3);
    until("both accepted", || {
        counters.open.load(Ordering::Relaxed) == 2
    })
    .await;
    // A newcomer is served: the idle connection is closed for it, the long poll is not.
    let mut newcomer = connect(addr, 4);
    get_request(&mut newcomer, "/", true);
    let (idle, newcomer) = tokio::join!(closed(idle), closed(newcomer));
    assert_eq!(idle, "");
    assert!(newcomer.ends_with("ok"), "{newcomer}");
    assert_eq!(counters.evicted.load(Ordering::Relaxed), 1);
    // With every connection in a request, a newcomer is the one closed.
    until("the newcomer gone", || {
        counters.open.load(Ordering::Relaxed) == 1
    })
    .await;
    let mut second = connect(addr, 5);
    get_request(&mut second, "/hold", true);
    until("the second long poll held", || {
        holding.load(Ordering::SeqCst) == 2
    })
    .await;
    let refused = connect(addr, 6);
    let refused = closed(refused).await;
    assert_eq!(refused, "");
    assert_eq!(counters.refused_full.load(Ordering::Relaxed), 1);
    release.notify_waiters();
    let (busy, second) = tokio::join!(closed(busy), closed(second));
    assert!(busy.ends_with("released") && second.ends_with("released"));
    stop.cancel();
}

/// At the cap, the connection closed for a newcomer is one of the address holding the most,
/// even when another address's connection has been idle longer: a crowd from a few addresses
/// reopening its connections only closes its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_address_holding_the_most_gives_up_a_connection() {
    let Test {
        addr,
        counters,
        stop,
        ..
    } = start(HttpLimits {
        per_address: 0,
        ..HttpLimits::new(3)
    })
    .await;
    let mut lonely = connect(addr, 2);
    until("the lonely one accepted", || {
        counters.open.load(Ordering::Relaxed) == 1
    })
    .await;
    // Not needed by the rule, only so that by idle time alone the lonely one would go.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let crowd: Vec<_> = (0..2).map(|_| connect(addr, 3)).collect();
    until("the crowd accepted", || {
        counters.open.load(Ordering::Relaxed) == 3
    })
    .await;
    let mut newcomer = connect(addr, 4);
    get_request(&mut newcomer, "/", true);
    let newcomer = closed(newcomer).await;
    assert!(newcomer.ends_with("ok"), "{newcomer}");
    assert_eq!(counters.evicted.load(Ordering::Relaxed), 1);
    until("the newcomer and the evicted one gone", || {
        counters.open.load(Ordering::Relaxed) == 2
    })
    .await;
    // The lonely connection, idle longest, is still served.
    get_request(&mut lonely, "/", true);
    let lonely = closed(lonely).await;
    assert!(lonely.ends_with("ok"), "{lonely}");
    drop(crowd);
    stop.cancel();
}
