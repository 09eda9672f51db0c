//! A local DHT of server nodes that bootstrap from each other: the lab's DHT host.
//!
//! mainline's [`Testnet`](mainline::Testnet) starts every node with no bootstrap list, and a
//! mainline node with none adds every node that sends it a `find_node` to its routing table (so
//! that the first node of a new network fills its table). Read-only nodes too: a client node,
//! such as every publisher's and viewer's [`Node`](crate::Node), sends `find_node` with BEP 43's
//! `ro` flag and never answers a query. The testnet then handed those clients out as nodes to
//! everyone: in a lab run with 20 viewers, 36% of the nodes its answers named were clients
//! that never answer, and a lookup whose closest nodes were such clients timed out at every node
//! it asked. The segments' bytes, so their info hashes, are the same every run, and a node's id
//! follows largely from its address (BEP 42, which mainline applies once it learns its address),
//! so the same segments lost their whole swarm run after run.
//!
//! Here each node bootstraps from the others, on ports reserved first: no node has an empty
//! bootstrap list, so a node adds only nodes that answered its own queries, as on the public DHT.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use mainline::Dht;

use crate::DhtError;

/// A local DHT; its nodes stop when it is dropped.
#[derive(Debug)]
pub struct LocalDht {
    /// Every node's address (`host:port`), the bootstrap list of the DHT.
    pub bootstrap: Vec<String>,
    nodes: Vec<Dht>,
}

/// How often [`LocalDht::start`] looks at the nodes' routing tables while they form.
const POLL: Duration = Duration::from_millis(50);
/// Attempts at reserving ports and starting the nodes (a port taken between the two is tried
/// again).
const ATTEMPTS: usize = 3;

impl LocalDht {
    /// Starts `count` (at least 2) server nodes on `bind`, each bootstrapping from all the
    /// others, and waits (at most `within`, blocking) until every node's routing table holds
    /// `min(count - 1, 8)` nodes.
    pub fn start(count: usize, bind: Ipv4Addr, within: Duration) -> Result<Self, DhtError> {
        let count = count.max(2);
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match Self::try_start(count, bind) {
                Ok(net) => return net.formed(within),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(DhtError::Start(e)),
            }
        }
        Err(DhtError::Start(last.unwrap_or_else(|| {
            std::io::Error::other("no attempt at starting the local DHT")
        })))
    }

    fn try_start(count: usize, bind: Ipv4Addr) -> std::io::Result<Self> {
        // Reserve the ports: bound all at once, then let go of, so each node can bootstrap from
        // nodes started after it.
        let sockets = (0..count)
            .map(|_| UdpSocket::bind(SocketAddrV4::new(bind, 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let addrs = sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<std::io::Result<Vec<_>>>()?;
        drop(sockets);
        let bootstrap: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let nodes = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let others: Vec<&String> = bootstrap
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, a)| a)
                    .collect();
                Dht::builder()
                    .server_mode()
                    .bind_address(bind)
                    .port(addr.port())
                    .bootstrap(&others)
                    .build()
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { bootstrap, nodes })
    }

    /// Waits until every node's routing table holds `min(nodes - 1, 8)` nodes. A node adds only
    /// nodes that answered its queries, and those it bootstrapped from before they were up never
    /// did: each node short of the mark looks up a random id, round after round, learning the
    /// nodes that answer.
    #[allow(deprecated)] // mainline's blocking API; this runs off the async runtime.
    fn formed(self, within: Duration) -> Result<Self, DhtError> {
        let want = (self.nodes.len() - 1).min(8);
        let deadline = Instant::now() + within;
        loop {
            let sizes: Vec<usize> = self.nodes.iter().map(|n| n.to_bootstrap().len()).collect();
            let least = sizes.iter().copied().min().unwrap_or(0);
            if least >= want {
                return Ok(self);
            }
            for (node, _) in self.nodes.iter().zip(&sizes).filter(|(_, &n)| n < want) {
                if Instant::now() >= deadline {
                    break;
                }
                let _ = node.find_node(mainline::Id::random());
            }
            if Instant::now() >= deadline {
                return Err(DhtError::Start(std::io::Error::other(format!(
                    "the local DHT did not form within {within:?}: a node knows {least} \
                     nodes, {want} wanted"
                ))));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The routing table of node `i` (`host:port` of each node it holds), for tests.
    #[allow(deprecated)]
    pub fn routing_table(&self, i: usize) -> Vec<String> {
        self.nodes
            .get(i)
            .map(|n| n.to_bootstrap())
            .unwrap_or_default()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has no node (never: at least 2 are started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
