//! Owns the deterministic simulation test of the real cut-over: `apply`, the guardians it
//! starts and `abort` run as they do in production — the same code, through the seams for
//! sockets (`crate::net`), ZooKeeper (`crate::routing::session`), the wall clock
//! (`crate::clock`), guardian processes and terminal output — inside one seeded, virtual-time
//! world with the simulated clusters, meta-proxies, a ZooKeeper model and Java-like writers.
//!
//! The seed chooses the world and every fault: late, lost and dropped RPCs, ZooKeeper
//! connection loss and session expiry, apply killed and re-run (or not), guardians killed,
//! clock skew, slow primaries. Each run ends with a liveness phase (faults healed, apply run
//! until it converges) and the invariants in [`check`].
//!
//! Runs are single-threaded on a paused tokio clock, so a seed replays the same trace.

mod at_switch;
pub mod check;
mod faults;
mod hand_deny;
mod procs;
pub mod rng;
mod scenario;
mod trace;

pub use procs::RunEnd;

/// 2026-12-01 00:00:00 UTC: every run's wall clock starts here.
const EPOCH_MS: u64 = 1_796_083_200_000;
/// The ZooKeeper servers the plan names (the model answers whatever the list).
const ZK_ADDR: &str = "zk.sim:2181";
/// meta-proxy's routing root.
const ROOT: &str = "/pegasus/metaproxy";
/// migrator's own root (locks, block records).
const MIGRATOR_ROOT: &str = "/migrator";
pub mod writers;

use std::time::Duration;

pub use scenario::Options;

/// What one seeded run showed.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    /// What happened, one line per event, with virtual times.
    pub trace: Vec<String>,
    /// Invariants that did not hold; empty when the run passed.
    pub violations: Vec<String>,
    /// Virtual time the run covered.
    pub virtual_time: Duration,
}

impl Report {
    /// Whether every invariant held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs seed `seed` to the end on a fresh single-threaded runtime with a paused clock.
///
/// # Panics
/// The runtime cannot be built.
#[must_use]
pub fn run(seed: u64, opts: &Options) -> Report {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(scenario::run(seed, opts.clone()))
}
