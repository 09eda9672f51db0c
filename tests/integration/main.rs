//! swarmcast's integration tests: the CLI run as a user runs it, checked against independent
//! software (mktorrent, libtorrent) where it exists. One test binary, a module per area; shared
//! helpers in `util`. Tests that start long-lived processes or swarm sessions go under `e2e::`,
//! which nextest runs one at a time (.config/nextest.toml).

mod e2e;
mod inspect;
mod keygen;
mod segment;
mod torrent;
mod util;
