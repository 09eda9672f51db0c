//! swarmcast's emulated internet for the lab (`swarmcast lab --net emulated`).
//!
//! Every node (publisher, viewers, trackers, mirrors) runs in its own network namespace with its
//! own address, linked by a veth pair to one *core* router namespace that forwards between all
//! hosts. The kernel forwards; every forwarded packet passes through NFQUEUE to a user-space
//! emulator ([`emu`]) that applies each host's access link (a rate cap per direction with a
//! drop-tail queue behind it) and each path's one-way delay, jitter and loss, by the pure
//! discrete-event [`model`]. Viewers may sit behind their own NAT ([`topo`]).
//!
//! - [`model`]: the link model, sans-IO, driven by a clock passed in.
//! - [`emu`]: the NFQUEUE driver that feeds packets to the model and counts wire bytes per host
//!   and per class (TCP/IP, BitTorrent, tracker, manifests, HTTP).
//! - [`calibrate`]: `swarmcast lab --net-check`, what the emulator delivers against what was
//!   asked.
//! - [`topo`]: namespaces, links, addresses, NAT, offloads off; removal on drop, stale-run
//!   clean-up and `--cleanup`.

pub mod calibrate;
pub mod emu;
pub mod model;
pub mod topo;
