//! Sessions on loopback; nextest runs this binary one test at a time (`binary(e2e)`).

mod dials;
mod wire;
