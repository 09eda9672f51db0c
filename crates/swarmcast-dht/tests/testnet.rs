//! The pointer on a local DHT of 24 nodes ([`LocalDht`], 127.0.0.1 only).

use std::net::Ipv4Addr;
use std::time::Duration;

use swarmcast_core::dht_item::{ItemVerifier, Pointer};
use swarmcast_core::{ManifestError, StreamSecret};
use swarmcast_dht::{LocalDht, Node, Testnet};
use swarmcast_tasks::Tasks;

const NODES: usize = 24;

fn pointer(seq: u64) -> Pointer {
    Pointer::to_manifest(seq, format!("manifest {seq}").as_bytes(), [seq as u8; 20])
}

/// How long a query waits for a node on loopback (every answer takes microseconds; a lookup
/// waits this long for the nodes that do not answer).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);

/// Generous: the nodes form in well under a second on loopback.
const FORM_WITHIN: Duration = Duration::from_secs(60);

/// Runs blocking `f` (mainline's blocking API) off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    Tasks::new("test").spawn_blocking("dht", f).await.unwrap()
}

async fn local_dht(nodes: usize) -> LocalDht {
    blocking(move || LocalDht::start(nodes, Ipv4Addr::LOCALHOST, FORM_WITHIN))
        .await
        .unwrap()
}

async fn client(bootstrap: &[String]) -> Node {
    let node = Node::start_with(bootstrap, Ipv4Addr::LOCALHOST, Some(REQUEST_TIMEOUT)).unwrap();
    assert!(node.bootstrapped().await, "the client joined the test DHT");
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pointer_put_by_the_publisher_is_got_by_a_viewer_and_forgeries_are_refused() {
    let net = local_dht(NODES).await;
    let secret = StreamSecret::from_seed(&[1; 32]);
    let key = secret.public();
    let publisher = client(&net.bootstrap).await;
    let viewer = client(&net.bootstrap).await;

    // Nothing there yet.
    let mut v = ItemVerifier::new(key, None);
    let (none, refused) = viewer.get_pointer(&mut v, &key).await;
    assert_eq!(none, None);
    assert!(refused.is_empty());

    assert!(publisher.put_pointer(&secret, &pointer(1)).await.unwrap() > 0);
    assert!(publisher.put_pointer(&secret, &pointer(2)).await.unwrap() > 0);
    let (got, refused) = viewer.get_pointer(&mut v, &key).await;
    assert_eq!(got, Some(pointer(2)), "refused: {refused:?}");

    // A forger puts an item for the stream's key signed with another key: the DHT's nodes
    // check BEP 44 signatures and store nothing, and the viewer still gets pointer 2.
    let forger = client(&net.bootstrap).await;
    let forged = pointer(9).sign(&StreamSecret::from_seed(&[2; 32])).unwrap();
    assert!(forger.put_raw(key.as_bytes(), &forged).await.is_err());
    let (got, _) = viewer.get_pointer(&mut v, &key).await;
    assert_eq!(got, Some(pointer(2)));
    // Handed to the viewer directly (a node that answers with it), it is refused by type.
    assert!(matches!(
        v.accept(key.as_bytes(), &forged),
        Err(ManifestError::BadSignature)
    ));

    // A replayer puts the stream's own, genuinely signed, older item: nodes holding a newer
    // sequence refuse it, and a viewer handed it refuses it as stale.
    let old = pointer(1).sign(&secret).unwrap();
    let _ = forger.put_raw(key.as_bytes(), &old).await;
    let (got, _) = viewer.get_pointer(&mut v, &key).await;
    assert_eq!(got, Some(pointer(2)));
    assert!(matches!(
        v.accept(key.as_bytes(), &old),
        Err(ManifestError::StaleSequence { last: 2, found: 1 })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preparing_a_put_finds_the_items_already_under_the_key() {
    let net = local_dht(NODES).await;
    let secret = StreamSecret::from_seed(&[3; 32]);
    let key = secret.public();
    let publisher = client(&net.bootstrap).await;
    // A new stream: nothing under its key; the put that follows stores all the same.
    assert_eq!(publisher.prepare_put(&key).await, 0);
    assert!(publisher.put_pointer(&secret, &pointer(1)).await.unwrap() > 0);
    // A publisher started again with the same key finds the pointer its last run left.
    let restarted = client(&net.bootstrap).await;
    assert!(restarted.prepare_put(&key).await > 0);
    assert!(restarted.put_pointer(&secret, &pointer(2)).await.unwrap() > 0);
    let viewer = client(&net.bootstrap).await;
    let (got, refused) = viewer
        .get_pointer(&mut ItemVerifier::new(key, None), &key)
        .await;
    assert_eq!(got, Some(pointer(2)), "refused: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_announced_for_a_segment_are_found() {
    let net = local_dht(NODES).await;
    let seeder = client(&net.bootstrap).await;
    let viewer = client(&net.bootstrap).await;
    let info_hash = [0xab; 20];
    seeder.announce(info_hash, 6881).await.unwrap();
    let peers = viewer.peers(info_hash, Duration::from_secs(20)).await;
    assert!(
        peers.iter().any(|p| p.port() == 6881),
        "the announced peer is found: {peers:?}"
    );
    // As the lookup finds them: two announced peers, each once however many nodes name it,
    // then the end of the lookup (bounded here by the hang guard only).
    seeder.announce(info_hash, 6882).await.unwrap();
    let streamed: Vec<_> = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::StreamExt::collect::<Vec<_>>(viewer.peer_stream(info_hash)),
    )
    .await
    .expect("hang guard: the lookup never ended");
    let mut ports: Vec<u16> = streamed.iter().map(|p| p.port()).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![6881, 6882], "{streamed:?}");
}

/// A client node (every publisher's and viewer's: it never answers a query) joins and queries
/// the local DHT, and no node of it ever lists the client as a node. mainline's `Testnet`, whose
/// nodes have no bootstrap list and so add whoever sends them a `find_node`, does list it: in
/// the lab its answers named such clients as 36% of the nodes, and lookups near them timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_never_handed_out_as_nodes_of_the_local_dht() {
    const FEW: usize = 8;
    let net = local_dht(FEW).await;
    let joined = client(&net.bootstrap).await;
    let at = joined.local_addr().await.to_string();
    let _ = joined.peers([0x11; 20], Duration::from_secs(1)).await;
    let tables: Vec<Vec<String>> =
        blocking(move || (0..net.len()).map(|i| net.routing_table(i)).collect()).await;
    assert!(tables.iter().all(|t| t.len() >= FEW - 1), "{tables:?}");
    assert!(
        tables.iter().all(|t| !t.contains(&at)),
        "the client {at} is listed: {tables:?}"
    );

    let testnet = blocking(|| {
        Testnet::builder(FEW)
            .bind_address(Ipv4Addr::LOCALHOST)
            .build()
            .unwrap()
    })
    .await;
    let joined = client(&testnet.bootstrap).await;
    let at = joined.local_addr().await.to_string();
    let _ = joined.peers([0x11; 20], Duration::from_secs(1)).await;
    #[allow(deprecated)]
    let listed = blocking(move || {
        testnet
            .nodes
            .iter()
            .filter(|n| n.to_bootstrap().contains(&at))
            .count()
    })
    .await;
    assert!(listed > 0, "mainline's Testnet lists the client");
}
