//! What differs per transport, behind one interface ([`Method`], found by [`method`]): the hosts
//! a run needs, the processes it starts beside the publisher on the publisher's host, the
//! publisher's extra arguments, each node's command line, whether its stream is continuous, and
//! how a node's output is checked and its figures read. The runner and the results ask only
//! this module, so a new transport (the next issue's striped one) is one more [`Method`].
//!
//! - `swarm`, `http` ([`Segments`]): `swarmcast watch`, segment by segment; nodes may sit behind
//!   NAT.
//! - `relay-tree` ([`RelayTree`]): the publisher pushes its live TS to a source `icecast2` on its
//!   own host (`swarmcast icecast-node --source`, port [`ICECAST_PORT`]) and lists it in the relay
//!   directory it serves at `/relays`; every node is `swarmcast icecast-node`: an `icecast2`
//!   relaying its parent from the directory, on port [`ICECAST_PORT`] of its own host, and a
//!   player.
//! - `relay-resume` ([`RelayResume`]): a root `swarmcast relay` on the publisher's host (port
//!   [`RELAY_PORT`]) pulls from the publisher; every node is a `swarmcast relay` with a back
//!   buffer that picks its parent from the directory and plays.
//!
//! Relay nodes are reachable hosts (no NAT): a relay serves its children. The caps are the
//! run's: the publisher's applies to the publisher's host (and so to the source Icecast or root
//! relay on it), the viewers' upload cap to every node.

use std::path::Path;

use swarmcast_metrics::Event;
use swarmcast_netlab::topo::Net;

use crate::figures::{self, align, playout::Published, NodeFigures};
use crate::netrun;
use crate::plan::{RunSpec, Transport};

/// The Icecast port of every relay-tree host (the source's and each node's).
pub const ICECAST_PORT: u16 = 8000;
/// The `swarmcast relay` port of every relay-resume host (the root's and each node's).
pub const RELAY_PORT: u16 = 8090;
/// The source Icecast's source password (the emulated network is the lab's own).
pub const ICECAST_PASSWORD: &str = "swarmcast-lab";
/// The mount the publisher pushes to and every relay serves.
pub const MOUNT: &str = "/live.ts";

/// Where a run is: its spec, directory and network, and (once the publisher printed it) the
/// stream link.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The run.
    pub spec: &'a RunSpec,
    /// Its directory.
    pub dir: &'a Path,
    /// Its network (None: loopback).
    pub net: Option<&'a Net>,
    /// The stream link, once known.
    pub link: Option<&'a str>,
    /// The run's DHT bootstrap list (`@manifests=dht`), once it is up.
    pub dht: Option<&'a str>,
}

impl Ctx<'_> {
    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// A host's address (127.0.0.1 on loopback).
    fn addr(&self, node: &str) -> String {
        self.net
            .and_then(|n| n.host(node))
            .map_or("127.0.0.1".into(), |h| h.addr.to_string())
    }

    /// The relay directory the publisher serves.
    pub fn directory(&self) -> String {
        format!(
            "http://{}:{}/relays",
            self.addr("publisher"),
            netrun::HTTP_PORT
        )
    }

    fn link(&self) -> String {
        self.link.unwrap_or_default().to_owned()
    }
}

/// A process a transport runs on the publisher's host beside the publisher.
#[derive(Clone, Debug, PartialEq)]
pub struct Side {
    /// Its name (its log is `<name>.log`, its counters, if any, `<name>.jsonl`).
    pub name: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// What a transport decides; see the module documentation.
pub trait Method: Sync {
    /// The stream is continuous (relays): figures come from `stream_bytes` and the output's
    /// alignment with the published stream, not from segments.
    fn continuous(&self) -> bool;

    /// Every node must be reachable (no NAT): it serves others.
    fn public_nodes(&self) -> bool {
        self.continuous()
    }

    /// Processes started on the publisher's host before the publisher.
    fn before_publisher(&self, _ctx: &Ctx) -> Vec<Side> {
        Vec::new()
    }

    /// Processes started on the publisher's host once the publisher printed its link.
    fn after_publisher(&self, _ctx: &Ctx) -> Vec<Side> {
        Vec::new()
    }

    /// Arguments added to `swarmcast publish`.
    fn publisher_args(&self, _ctx: &Ctx) -> Vec<String> {
        Vec::new()
    }

    /// Node `i`'s command line (`viewer-<i>`).
    fn node_args(&self, ctx: &Ctx, i: usize) -> Vec<String>;
}

/// `swarm` and `http`: `swarmcast watch`.
pub struct Segments;

impl Method for Segments {
    fn continuous(&self) -> bool {
        false
    }
    fn node_args(&self, ctx: &Ctx, i: usize) -> Vec<String> {
        let mut a = crate::runner::viewer_args(ctx.spec, ctx.dir, ctx.net, &ctx.link(), i);
        if let Some(bootstrap) = ctx.dht {
            a.extend(["--dht-bootstrap".to_owned(), bootstrap.to_owned()]);
        }
        a
    }
}

/// `relay-tree`: Icecast relays.
pub struct RelayTree;

impl Method for RelayTree {
    fn continuous(&self) -> bool {
        true
    }
    fn before_publisher(&self, ctx: &Ctx) -> Vec<Side> {
        let listen = format!("{}:{ICECAST_PORT}", ctx.addr("publisher"));
        vec![Side {
            name: "icecast-source".into(),
            args: strings(&[
                "icecast-node",
                "--directory",
                &ctx.directory(),
                "--node",
                "icecast-source",
                "--listen",
                &listen,
                "--fanout",
                &ctx.spec.fanout.to_string(),
                "--source",
                "--password",
                ICECAST_PASSWORD,
            ]),
        }]
    }
    fn publisher_args(&self, ctx: &Ctx) -> Vec<String> {
        let at = format!("{}:{ICECAST_PORT}{MOUNT}", ctx.addr("publisher"));
        strings(&[
            "--icecast",
            &format!("http://source:{ICECAST_PASSWORD}@{at}"),
            "--relay-source",
            &format!("http://{at}"),
            "--fanout",
            &ctx.spec.fanout.to_string(),
        ])
    }
    fn node_args(&self, ctx: &Ctx, i: usize) -> Vec<String> {
        let node = format!("viewer-{i}");
        strings(&[
            "icecast-node",
            "--directory",
            &ctx.directory(),
            "--node",
            &node,
            "--listen",
            &format!("{}:{ICECAST_PORT}", ctx.addr(&node)),
            "--fanout",
            &ctx.spec.fanout.to_string(),
            "--out",
            &ctx.path(&format!("{node}.ts")),
            "--metrics-out",
            &ctx.path(&format!("{node}.jsonl")),
        ])
    }
}

/// `relay-resume`: `swarmcast relay` with a back buffer.
pub struct RelayResume;

impl Method for RelayResume {
    fn continuous(&self) -> bool {
        true
    }
    fn publisher_args(&self, ctx: &Ctx) -> Vec<String> {
        strings(&[
            "--relay-source",
            &format!("http://{}:{RELAY_PORT}/stream", ctx.addr("publisher")),
            "--fanout",
            &ctx.spec.fanout.to_string(),
        ])
    }
    fn after_publisher(&self, ctx: &Ctx) -> Vec<Side> {
        let link = ctx.link();
        vec![Side {
            name: "root-relay".into(),
            args: strings(&[
                "relay",
                "--link",
                &link,
                "--listen",
                &format!("{}:{RELAY_PORT}", ctx.addr("publisher")),
                "--back-buffer",
                &ctx.spec.back_buffer_secs.to_string(),
                "--parent",
                &link,
                "--fanout",
                &ctx.spec.fanout.to_string(),
                "--metrics-out",
                &ctx.path("root-relay.jsonl"),
            ]),
        }]
    }
    fn node_args(&self, ctx: &Ctx, i: usize) -> Vec<String> {
        let node = format!("viewer-{i}");
        strings(&[
            "relay",
            "--link",
            &ctx.link(),
            "--listen",
            &format!("{}:{RELAY_PORT}", ctx.addr(&node)),
            "--back-buffer",
            &ctx.spec.back_buffer_secs.to_string(),
            "--directory",
            &ctx.directory(),
            "--node",
            &node,
            "--fanout",
            &ctx.spec.fanout.to_string(),
            "--out",
            &ctx.path(&format!("{node}.ts")),
            "--metrics-out",
            &ctx.path(&format!("{node}.jsonl")),
        ])
    }
}

/// The substreams of `striped-fec` runs (docs/striped-fec.md's default).
pub const STRIPES: u8 = 4;
/// The `swarmcast stripe-node` port of every striped-fec host.
pub const STRIPE_PORT: u16 = 8095;

/// `striped-fec`: the publisher stripes (`--substreams`), every node is a `swarmcast stripe-node`.
/// The publisher takes one child per substream tree (4 substreams of 1/3 of the stream each:
/// 1.39x the bitrate with the headers, under its 2.2x cap); a node takes `STRIPES + 1`
/// children in its home tree (1.73x at most), so that a tree's interior, a quarter of the
/// nodes, has a slot for every node.
pub struct StripedFec;

impl Method for StripedFec {
    fn continuous(&self) -> bool {
        true
    }
    fn publisher_args(&self, ctx: &Ctx) -> Vec<String> {
        strings(&[
            "--substreams",
            &STRIPES.to_string(),
            "--stripe-source",
            &format!(
                "http://{}:{}/stripe",
                ctx.addr("publisher"),
                netrun::HTTP_PORT
            ),
        ])
    }
    fn node_args(&self, ctx: &Ctx, i: usize) -> Vec<String> {
        let node = format!("viewer-{i}");
        strings(&[
            "stripe-node",
            "--link",
            &ctx.link(),
            "--directory",
            &format!(
                "http://{}:{}/stripes",
                ctx.addr("publisher"),
                netrun::HTTP_PORT
            ),
            "--node",
            &node,
            "--listen",
            &format!("{}:{STRIPE_PORT}", ctx.addr(&node)),
            "--fanout",
            &(STRIPES + 1).to_string(),
            "--out",
            &ctx.path(&format!("{node}.ts")),
            "--metrics-out",
            &ctx.path(&format!("{node}.jsonl")),
        ])
    }
}

/// Owned arguments from borrowed ones.
pub(crate) fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The transport's [`Method`].
pub fn method(t: Transport) -> &'static dyn Method {
    match t {
        Transport::Swarm | Transport::Http => &Segments,
        Transport::RelayTree => &RelayTree,
        Transport::RelayResume => &RelayResume,
        Transport::StripedFec => &StripedFec,
    }
}

/// The file a continuous node's output alignment is kept in (`runs/<id>/<node>.align.json`).
pub fn alignment_file(dir: &Path, node: &str) -> std::path::PathBuf {
    dir.join(format!("{node}.align.json"))
}

/// A continuous node's output checked against the published stream (`published`: the segment
/// files' concatenation), its alignment kept beside its counters: `identical` when every byte it
/// played is the published byte at its place (gaps are loss, counted in the figures), else why
/// not.
pub fn check_continuous(dir: &Path, node: &str, published: &[u8]) -> String {
    let output = match std::fs::read(dir.join(format!("{node}.ts"))) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return format!("cannot read its output: {e}"),
    };
    let a = align::align(published, &output);
    let path = alignment_file(dir, node);
    if let Err(e) = std::fs::write(&path, crate::json(&a) + "\n") {
        return format!("cannot write {}: {e}", path.display());
    }
    match a.foreign_bytes {
        0 => "identical".into(),
        n => format!(
            "{n} of its {} output bytes are not the published bytes at their place",
            a.output_bytes
        ),
    }
}

/// What reading any node of a run needs.
pub struct Reading<'a> {
    /// The run's transport.
    pub transport: Transport,
    /// The run's directory.
    pub dir: &'a Path,
    /// The published stream.
    pub published: &'a Published,
    /// The simulated player's buffer, ticks.
    pub buffer_ticks: u64,
    /// Addresses of the publisher's host.
    pub publisher_hosts: &'a [String],
}

/// A node's shared figures, read as its transport says: segments from its events, a continuous
/// stream from its events and its kept alignment (a missing alignment: nothing played). `left`:
/// it left by churn.
pub fn node_figures(r: &Reading, node: &str, events: &[Event], left: bool) -> NodeFigures {
    let (dir, published, buffer_ticks, publisher_hosts) =
        (r.dir, r.published, r.buffer_ticks, r.publisher_hosts);
    if !method(r.transport).continuous() {
        return figures::segment_node(node, events, published, buffer_ticks, left);
    }
    let alignment = std::fs::read_to_string(alignment_file(dir, node))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    figures::continuous_node(
        node,
        events,
        &alignment,
        published,
        buffer_ticks,
        left,
        publisher_hosts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{plan, NetSweep, SweepSpec};

    fn run(t: Transport) -> RunSpec {
        let spec = SweepSpec {
            segment_secs: vec![2.0],
            viewers: vec![3],
            transports: vec![t],
            net: Some(NetSweep::default()),
            fanout: 3,
            back_buffer_secs: 20.0,
            ..SweepSpec::default()
        };
        plan(&spec).expect("a plan").runs.remove(0)
    }

    fn ctx<'a>(spec: &'a RunSpec, link: Option<&'a str>) -> Ctx<'a> {
        Ctx {
            spec,
            dir: Path::new("/r"),
            net: None,
            link,
            dht: None,
        }
    }

    #[test]
    fn striped_fec_stripes_at_the_publisher_and_runs_stripe_nodes() {
        let spec = run(Transport::StripedFec);
        let c = ctx(&spec, Some("swarmcast:abc"));
        let m = method(Transport::StripedFec);
        assert!(m.continuous() && m.public_nodes());
        assert!(m.before_publisher(&c).is_empty() && m.after_publisher(&c).is_empty());
        assert_eq!(
            m.publisher_args(&c).join(" "),
            "--substreams 4 --stripe-source http://127.0.0.1:8080/stripe"
        );
        assert_eq!(
            m.node_args(&c, 1).join(" "),
            "stripe-node --link swarmcast:abc --directory http://127.0.0.1:8080/stripes --node \
             viewer-1 --listen 127.0.0.1:8095 --fanout 5 --out /r/viewer-1.ts --metrics-out \
             /r/viewer-1.jsonl"
        );
    }

    #[test]
    fn relay_tree_runs_a_source_icecast_and_icecast_nodes() {
        let spec = run(Transport::RelayTree);
        let c = ctx(&spec, Some("swarmcast:x"));
        let m = method(Transport::RelayTree);
        assert!(m.continuous() && m.public_nodes());
        let side = m.before_publisher(&c);
        assert_eq!(side.len(), 1);
        let a = side[0].args.join(" ");
        assert!(
            a.starts_with("icecast-node --directory http://127.0.0.1:8080/relays"),
            "{a}"
        );
        assert!(
            a.ends_with("--fanout 3 --source --password swarmcast-lab"),
            "{a}"
        );
        assert_eq!(
            m.publisher_args(&c).join(" "),
            "--icecast http://source:swarmcast-lab@127.0.0.1:8000/live.ts \
             --relay-source http://127.0.0.1:8000/live.ts --fanout 3"
        );
        assert_eq!(
            m.node_args(&c, 2).join(" "),
            "icecast-node --directory http://127.0.0.1:8080/relays --node viewer-2 --listen \
             127.0.0.1:8000 --fanout 3 --out /r/viewer-2.ts --metrics-out /r/viewer-2.jsonl"
        );
        assert!(m.after_publisher(&c).is_empty());
    }

    #[test]
    fn relay_resume_runs_a_root_relay_on_the_link_and_relay_nodes() {
        let spec = run(Transport::RelayResume);
        let c = ctx(&spec, Some("swarmcast:abc"));
        let m = method(Transport::RelayResume);
        assert!(m.continuous());
        assert!(m.before_publisher(&c).is_empty());
        assert_eq!(
            m.publisher_args(&c).join(" "),
            "--relay-source http://127.0.0.1:8090/stream --fanout 3"
        );
        let root = m.after_publisher(&c);
        assert_eq!(
            root[0].args.join(" "),
            "relay --link swarmcast:abc --listen 127.0.0.1:8090 --back-buffer 20 --parent \
             swarmcast:abc --fanout 3 --metrics-out /r/root-relay.jsonl"
        );
        assert_eq!(
            m.node_args(&c, 0).join(" "),
            "relay --link swarmcast:abc --listen 127.0.0.1:8090 --back-buffer 20 --directory \
             http://127.0.0.1:8080/relays --node viewer-0 --fanout 3 --out /r/viewer-0.ts \
             --metrics-out /r/viewer-0.jsonl"
        );
    }

    #[test]
    fn segment_transports_are_watch_and_add_nothing() {
        let spec = run(Transport::Http);
        let c = ctx(&spec, Some("swarmcast:abc"));
        let m = method(Transport::Http);
        assert!(!m.continuous() && !m.public_nodes());
        assert!(m.publisher_args(&c).is_empty());
        let a = m.node_args(&c, 1);
        assert_eq!(&a[..2], &["watch".to_string(), "swarmcast:abc".to_string()]);
        assert!(a.join(" ").contains("--transport http"));
    }

    #[test]
    fn a_continuous_check_keeps_the_alignment_and_catches_foreign_bytes() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let published: Vec<u8> = (0..20u8)
            .flat_map(|i| {
                let mut p = vec![i; align::PACKET];
                p[0] = 0x47;
                p
            })
            .collect();
        let mut out = [&published[..5 * 188], &published[9 * 188..]].concat();
        std::fs::write(dir.path().join("viewer-0.ts"), &out).unwrap();
        assert_eq!(
            check_continuous(dir.path(), "viewer-0", &published),
            "identical"
        );
        let kept: align::Alignment = serde_json::from_str(
            &std::fs::read_to_string(alignment_file(dir.path(), "viewer-0")).unwrap(),
        )
        .unwrap();
        assert_eq!(kept.gaps().iter().map(|g| g.1).sum::<u64>(), 4 * 188);
        out[300] ^= 1;
        std::fs::write(dir.path().join("viewer-0.ts"), &out).unwrap();
        assert!(check_continuous(dir.path(), "viewer-0", &published).contains("not the published"));
        // No output at all: nothing played, nothing foreign.
        assert_eq!(
            check_continuous(dir.path(), "viewer-9", &published),
            "identical"
        );
    }
}
