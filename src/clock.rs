//! Owns reading the wall clock: the system's in production; in a deterministic simulation,
//! virtual time from a fixed epoch, shifted by the skew of the host the calling task runs on.
//!
//! Monotonic time is tokio's (`tokio::time::Instant`), which a simulation pauses and advances.

use std::cell::Cell;
use std::future::Future;

use tokio::time::Instant;

thread_local! {
    /// A simulation's epoch (wall ms at virtual start) and the virtual start.
    static SIM: Cell<Option<(u64, Instant)>> = const { Cell::new(None) };
}

/// The simulated host a task runs on: its name (for traces), how far its wall clock is ahead
/// (negative: behind) of true time, when and by how much that clock is stepped (an NTP step),
/// and the id of the process the task is.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: std::sync::Arc<str>,
    pub skew_ms: i64,
    pub jump: Option<Jump>,
    pub pid: u32,
}

/// A step of a host's wall clock: from `at` (virtual time) on, it reads `by_ms` further ahead.
#[derive(Debug, Clone, Copy)]
pub struct Jump {
    pub at: Instant,
    pub by_ms: i64,
}

impl Host {
    /// How far this host's wall clock is ahead of true time at `now`.
    #[must_use]
    pub fn skew_at(&self, now: Instant) -> i64 {
        let jumped = self.jump.filter(|j| now >= j.at).map_or(0, |j| j.by_ms);
        self.skew_ms.saturating_add(jumped)
    }
}

tokio::task_local! {
    static HOST: Host;
}

/// The simulated host of the calling task, if any.
#[must_use]
pub fn host() -> Option<Host> {
    HOST.try_with(Clone::clone).ok()
}

/// Whether this thread runs a simulation (its wall clock is virtual).
#[must_use]
pub fn simulated() -> bool {
    SIM.with(Cell::get).is_some()
}

/// The calling process's id: a simulated process's own, so that a seed's trace and records
/// read the same whichever OS process ran the simulation.
#[must_use]
pub fn pid() -> u32 {
    HOST.try_with(|h| h.pid)
        .unwrap_or_else(|_| std::process::id())
}

/// Milliseconds since the Unix epoch by this host's clock.
#[must_use]
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Milliseconds since the Unix epoch by true time: a simulation's, whatever host the task runs
/// on (for records of what happened when); outside a simulation the same as [`now_ms`].
#[must_use]
pub fn true_now_ms() -> u64 {
    let skew = HOST.try_with(|h| h.skew_at(Instant::now())).unwrap_or(0);
    now_ms().saturating_add_signed(-skew)
}

/// A wall clock every host reads alike: ZooKeeper's, which stamps each write it applies
/// (`mtime`, the leader's clock). A process measures once how far its own clock is from it;
/// deadlines another host may resume (the block record's) are kept in it, so a host whose
/// clock is off neither stretches nor cuts them. Once measured it advances with monotonic
/// time, so a step of this host's wall clock later does not move it either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shared {
    /// How far the shared clock was ahead of this host's when measured (negative: behind).
    pub offset_ms: i64,
    /// The shared clock's reading when measured, and that moment; `None`: this host's clock.
    anchor: Option<(u64, Instant)>,
}

impl Shared {
    /// This host's own clock: for a block record kept in a local file, which only this host
    /// reads.
    pub const LOCAL: Shared = Shared {
        offset_ms: 0,
        anchor: None,
    };

    /// From a write ZooKeeper stamped `mtime_ms`, sent at `sent_ms` and answered at
    /// `answered_ms` (just now) by this host's clock: the stamp is taken at the middle of the
    /// two, off by at most half the round trip.
    #[must_use]
    pub fn from_write(mtime_ms: i64, sent_ms: u64, answered_ms: u64) -> Self {
        let middle = i64::try_from(sent_ms / 2 + answered_ms / 2).unwrap_or(i64::MAX);
        let offset_ms = mtime_ms.saturating_sub(middle);
        Self {
            offset_ms,
            anchor: Some((answered_ms.saturating_add_signed(offset_ms), Instant::now())),
        }
    }

    /// Milliseconds since the Unix epoch by the shared clock.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        match self.anchor {
            Some((at_ms, at)) => {
                at_ms.saturating_add(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX))
            }
            None => now_ms().saturating_add_signed(self.offset_ms),
        }
    }
}

/// Microseconds since the Unix epoch by this host's clock.
#[must_use]
pub fn now_us() -> u64 {
    match SIM.with(Cell::get) {
        Some((epoch_ms, start)) => {
            let elapsed = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            let skew = HOST
                .try_with(|h| h.skew_at(Instant::now()))
                .unwrap_or(0)
                .saturating_mul(1000);
            (epoch_ms * 1000 + elapsed).saturating_add_signed(skew)
        }
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
    }
}

/// Reads the wall clock from virtual time on this thread, starting at `epoch_ms`, until the
/// guard is dropped. Call inside the simulation's runtime.
#[must_use]
pub fn simulate(epoch_ms: u64) -> SimGuard {
    SIM.with(|s| s.set(Some((epoch_ms, Instant::now()))));
    SimGuard(())
}

/// Ends the thread's simulated clock when dropped.
pub struct SimGuard(());

impl Drop for SimGuard {
    fn drop(&mut self) {
        SIM.with(|s| s.set(None));
    }
}

/// Runs `fut` on simulated host `host`.
pub async fn on_host<F: Future>(host: Host, fut: F) -> F::Output {
    HOST.scope(host, fut).await
}

/// Wraps `fut` so that a task spawned with it runs on the host that spawned it (outside a
/// simulation, on none).
pub fn inherit<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let host = host();
    async move {
        match host {
            Some(h) => HOST.scope(h, fut).await,
            None => fut.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_clock_is_the_stamp_at_the_middle_of_the_round_trip() {
        let ahead = Shared::from_write(10_500, 1_000, 2_000);
        assert_eq!(ahead.offset_ms, 9_000);
        let behind = Shared::from_write(1_000, 30_000, 30_010);
        assert_eq!(behind.offset_ms, -29_005);
        assert_eq!(Shared::LOCAL.offset_ms, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_shared_clock_advances_with_monotonic_time_whatever_the_hosts_clock_does() {
        let _sim = simulate(1_000_000);
        let host = Host {
            name: "h".into(),
            skew_ms: 0,
            jump: Some(Jump {
                at: Instant::now() + std::time::Duration::from_secs(1),
                by_ms: -60_000,
            }),
            pid: 1,
        };
        on_host(host, async {
            let now = now_ms();
            let shared = Shared::from_write(i64::try_from(now).unwrap() + 5_000, now, now);
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            assert_eq!(
                now_ms(),
                now + 2_000 - 60_000,
                "the host's clock stepped back"
            );
            assert_eq!(shared.now_ms(), now + 5_000 + 2_000);
        })
        .await;
    }
}
