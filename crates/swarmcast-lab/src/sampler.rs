//! Machine-side measurements taken while a lab run is going: how busy the CPU is, and what
//! round-trip time the kernel sees on live TCP connections.
//!
//! - [`CpuSampler`] reads the aggregate `cpu` line of `/proc/stat` every interval and records the
//!   machine's idle share of it; [`CpuStats`] summarises a run and says whether it was
//!   [saturated](is_saturated), in which case the run measured the machine as much as swarmcast.
//! - [`RttSampler`] runs `ip netns exec <ns> ss -tinH state established` in each of the emulated
//!   network's namespaces in turn and records every connection's smoothed RTT (`TCP_INFO`'s
//!   `srtt`, as `ss` prints it), so a run can show what delay its peers actually saw.
//!
//! The parsing ([`parse_cpu_line`], [`idle_share`], [`parse_ss`]) and the saturation rule
//! ([`is_saturated`]) are pure functions; the samplers are small tokio tasks around them.
//!
//! `sampler/cpu.rs` holds the CPU side, `sampler/rtt.rs` the round trips. Both samplers spawn
//! their task through [`swarmcast_tasks::Tasks`]: `shutdown().await` cancels it and waits until
//! it has ended.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

mod cpu;
mod rtt;
#[cfg(test)]
mod tests;

pub use cpu::{
    count_cpus, idle_share, is_saturated, parse_cpu_line, parse_proc_stat, CpuSampler, CpuStats,
    CpuTimes, BURST_FRACTION, BURST_IDLE, DEFAULT_CPU_INTERVAL, SATURATED_MEAN_IDLE,
};
pub use rtt::{parse_ss, sample_rtts, RttSample, RttSampler, TcpRtt, SS_TIMEOUT};

/// The shortest interval either sampler accepts (shorter ones are raised to it).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Locks a mutex whose holder may have panicked (the data is plain samples: still good).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
