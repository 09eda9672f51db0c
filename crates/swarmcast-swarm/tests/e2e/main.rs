//! Sessions on loopback; nextest runs this binary one test at a time (`binary(e2e)`).

mod dials;
mod exchange;
mod shutdown;
mod wire;

use std::path::Path;
use std::time::Duration;

use swarmcast_swarm::{Swarm, SwarmConfig};

/// A librqbit session on loopback with its own directory, not announcing; super-seeding what it
/// seeds if `super_seed` is given (the reveal deadline).
pub(crate) async fn session(dir: &Path, super_seed: Option<Duration>) -> Swarm {
    std::fs::create_dir_all(dir).unwrap();
    Swarm::start(SwarmConfig {
        default_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        upload_limit: None,
        download_limit: None,
        announce: false,
        super_seed,
        peer_limit: None,
        punch_ports: None,
        extension: None,
        dht_bootstrap: None,
    })
    .await
    .unwrap()
}
