//! Owns keeping verify's reads of one cluster under its limits — records and bytes per
//! second — and backing off when the cluster says it is busy or answers ever more slowly: one
//! pacer per cluster, shared by
//! every partition group, the re-reads, and (through a process's [`Registry`]) every table it
//! verifies at once, so a production cluster is not hurt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// Credit a limit may build up while reads are slower than it (a burst after a slow stretch
/// is at most this much of the rate).
const MAX_CREDIT: Duration = Duration::from_secs(1);

/// At most this many halvings of the limits after `ERR_BUSY` (1/16 of them).
const MAX_SLOW: u32 = 4;

/// After `ERR_BUSY`, every read of the cluster waits this long doubled per halving in force.
const BUSY_PAUSE: Duration = Duration::from_millis(100);

/// A halving is undone after this long without `ERR_BUSY` or a slow batch.
const CALM_AFTER: Duration = Duration::from_secs(2);

/// A batch is slow when its round trip is over this many times the best seen...
const SLOW_FACTOR: u32 = 4;
/// ... and this much longer (short round trips jitter).
const SLOW_MARGIN: Duration = Duration::from_millis(50);
/// At most one halving for slow batches in this long (one slow stretch is one signal).
const SLOW_EVERY: Duration = Duration::from_secs(1);

/// What a cluster may be read at (none: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub records: Option<u64>,
    pub bytes: Option<u64>,
}

impl Limits {
    /// The stricter of `self` and `other`, limit by limit.
    #[must_use]
    pub fn tighter(self, other: Limits) -> Limits {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        Limits {
            records: min(self.records, other.records),
            bytes: min(self.bytes, other.bytes),
        }
    }
}

#[derive(Debug)]
struct State {
    limits: Limits,
    /// When the reads counted so far are paid for.
    paid_until: Instant,
    /// Halvings of the limits in force (`ERR_BUSY`).
    slow: u32,
    /// No read starts before this (the pause after `ERR_BUSY`).
    hold_until: Instant,
    /// The last `ERR_BUSY` or halving for slow batches.
    busy_at: Option<Instant>,
    /// The shortest batch round trip seen.
    best: Option<Duration>,
}

/// Keeps the reads of one cluster under its limits.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
}

impl Pacer {
    /// A pacer of `limits` (a limit of 0 is none).
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                limits: Limits {
                    records: limits.records.filter(|r| *r > 0),
                    bytes: limits.bytes.filter(|b| *b > 0),
                },
                paid_until: now,
                slow: 0,
                hold_until: now,
                busy_at: None,
                best: None,
            }),
        }
    }

    /// The limits in force now (halved after `ERR_BUSY`).
    #[must_use]
    pub fn limits(&self) -> Limits {
        let s = self.state.lock().expect("pacer lock");
        let slowed = |l: Option<u64>| l.map(|l| (l >> s.slow).max(1));
        Limits {
            records: slowed(s.limits.records),
            bytes: slowed(s.limits.bytes),
        }
    }

    /// Halvings of the limits in force after `ERR_BUSY` (0: none).
    #[must_use]
    pub fn halvings(&self) -> u32 {
        self.state.lock().expect("pacer lock").slow
    }

    /// Counts `records` records of `bytes` bytes read; waits until the limits allow them
    /// (and out any pause after `ERR_BUSY`).
    pub async fn pace(&self, records: usize, bytes: usize) {
        let at = {
            let mut s = self.state.lock().expect("pacer lock");
            let now = Instant::now();
            if s.busy_at.is_some_and(|b| now - b >= CALM_AFTER) && s.slow > 0 {
                s.slow -= 1;
                s.busy_at = Some(now);
            }
            let factor = f64::from(1u32 << s.slow);
            let cost =
                |n: usize, limit: Option<u64>| limit.map_or(0.0, |l| n as f64 * factor / l as f64);
            let secs = cost(records, s.limits.records).max(cost(bytes, s.limits.bytes));
            let floor = now.checked_sub(MAX_CREDIT).unwrap_or(now);
            s.paid_until = s.paid_until.max(floor) + Duration::from_secs_f64(secs);
            s.paid_until.max(s.hold_until)
        };
        tokio::time::sleep_until(at).await;
    }

    /// The cluster refused a read as too busy (`ERR_BUSY`): every read of it pauses, and the
    /// limits halve (up to `MAX_SLOW` times) until it has been calm for a while.
    pub fn busy(&self) {
        let mut s = self.state.lock().expect("pacer lock");
        let now = Instant::now();
        s.slow = (s.slow + 1).min(MAX_SLOW);
        s.busy_at = Some(now);
        s.hold_until = s.hold_until.max(now + BUSY_PAUSE * (1 << s.slow));
    }

    /// A batch took `rtt` from request to reply. Round trips rising well over the best seen
    /// (`SLOW_FACTOR` times, and `SLOW_MARGIN` more) halve the limits, as `ERR_BUSY` does but
    /// without the pause: a cluster that slows down is read more gently. Without limits
    /// there is nothing to lower.
    pub fn round_trip(&self, rtt: Duration) {
        let mut s = self.state.lock().expect("pacer lock");
        let best = *s.best.get_or_insert(rtt);
        s.best = Some(best.min(rtt));
        let slow = rtt > best * SLOW_FACTOR && rtt > best + SLOW_MARGIN;
        let now = Instant::now();
        if slow && s.busy_at.is_none_or(|b| now - b >= SLOW_EVERY) {
            s.slow = (s.slow + 1).min(MAX_SLOW);
            s.busy_at = Some(now);
        }
    }

    fn tighten(&self, limits: Limits) {
        let mut s = self.state.lock().expect("pacer lock");
        s.limits = s.limits.tighter(limits);
    }
}

/// The pacers of the two clusters a verify reads.
#[derive(Debug, Clone)]
pub struct Pacers {
    pub source: Arc<Pacer>,
    pub target: Arc<Pacer>,
}

impl Pacers {
    /// Pacers of this verify alone, `limits` on each cluster.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            source: Arc::new(Pacer::new(limits)),
            target: Arc::new(Pacer::new(limits)),
        }
    }
}

/// The pacers of the clusters one process reads, by cluster name: its apply run or its verify
/// command owns one. Not a process-wide static: a simulation runs many worlds at once in one
/// OS process, each on its own virtual clock, and their clusters have the same names.
#[derive(Debug, Default)]
pub struct Registry {
    clusters: Mutex<BTreeMap<String, Weak<Pacer>>>,
}

impl Registry {
    /// The pacers of clusters `from` and `to` that every verify holding them shares.
    #[must_use]
    pub fn pacers(&self, from: &str, to: &str, limits: Limits) -> Pacers {
        Pacers {
            source: self.for_cluster(from, limits),
            target: self.for_cluster(to, limits),
        }
    }

    /// The pacer of cluster `name`, shared by every verify that holds it; a new holder's
    /// limits tighten it (the stricter limit of two tables wins).
    #[must_use]
    pub fn for_cluster(&self, name: &str, limits: Limits) -> Arc<Pacer> {
        let mut all = self.clusters.lock().expect("clusters lock");
        all.retain(|_, p| p.strong_count() > 0);
        if let Some(p) = all.get(name).and_then(Weak::upgrade) {
            p.tighten(limits);
            return p;
        }
        let p = Arc::new(Pacer::new(limits));
        all.insert(name.to_string(), Arc::downgrade(&p));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(r: u64) -> Limits {
        Limits {
            records: Some(r),
            bytes: None,
        }
    }

    /// Time is paused: sleeps advance the clock exactly, so the figures are exact.
    #[tokio::test(start_paused = true)]
    async fn the_pacer_spreads_records_over_the_limit_shared_by_every_group() {
        let pacer = Arc::new(Pacer::new(records(1000)));
        let start = Instant::now();
        let groups: Vec<_> = (0..4)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        pacer.pace(100, 0).await;
                    }
                })
            })
            .collect();
        for g in groups {
            g.await.unwrap();
        }
        // 2,000 records at 1,000/s, whichever group asked.
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        let unlimited = Pacer::new(Limits::default());
        let start = Instant::now();
        unlimited.pace(1_000_000, 1 << 30).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_stretch_buys_at_most_a_second_of_burst() {
        let pacer = Pacer::new(records(1000));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        // A minute of idle time: only 1,000 records go at once, the other 2,000 at the rate.
        pacer.pace(3000, 0).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_are_limited_beside_records_and_the_stricter_decides() {
        let pacer = Pacer::new(Limits {
            records: Some(1000),
            bytes: Some(1_000_000),
        });
        let start = Instant::now();
        // 100 records of 30 KB: 0.1 s of records, 3 s of bytes.
        pacer.pace(100, 3_000_000).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        let start = Instant::now();
        // 2,000 small records: 2 s of records, 0.002 s of bytes.
        pacer.pace(2000, 2000).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_cluster_pauses_every_read_and_halves_the_limits_until_calm() {
        let pacer = Pacer::new(records(1000));
        pacer.busy();
        assert_eq!(pacer.limits().records, Some(500));
        let start = Instant::now();
        // The pause (200 ms) covers the first 100 records at half the rate (200 ms).
        pacer.pace(100, 0).await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        pacer.pace(500, 0).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1200));
        // No limit: the pause alone.
        let free = Pacer::new(Limits::default());
        free.busy();
        free.busy();
        let start = Instant::now();
        free.pace(1, 0).await;
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        // Calm for a while: the rate comes back, a halving at a time.
        tokio::time::sleep(CALM_AFTER).await;
        pacer.pace(0, 0).await;
        assert_eq!(pacer.limits().records, Some(1000));
        for _ in 0..10 {
            pacer.busy();
        }
        assert_eq!(pacer.limits().records, Some(1000 >> MAX_SLOW));
    }

    #[tokio::test(start_paused = true)]
    async fn round_trips_rising_well_over_the_best_halve_the_limits() {
        let pacer = Pacer::new(records(1000));
        for ms in [10, 12, 9, 30, 55] {
            pacer.round_trip(Duration::from_millis(ms));
        }
        assert_eq!(pacer.halvings(), 0, "jitter under the margin is not slow");
        pacer.round_trip(Duration::from_millis(80));
        assert_eq!(pacer.limits().records, Some(500));
        pacer.round_trip(Duration::from_millis(90));
        assert_eq!(
            pacer.halvings(),
            1,
            "one slow stretch, one halving a second"
        );
        tokio::time::sleep(SLOW_EVERY).await;
        pacer.round_trip(Duration::from_millis(90));
        assert_eq!(pacer.halvings(), 2);
        assert_eq!(pacer.limits().records, Some(250));
        // No pause, unlike ERR_BUSY: only the lower limit (here the second of credit).
        let start = Instant::now();
        pacer.pace(250, 0).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Fast again and calm: the limits come back a halving at a time.
        tokio::time::sleep(CALM_AFTER).await;
        pacer.pace(0, 0).await;
        assert_eq!(pacer.halvings(), 1);
    }

    #[test]
    fn every_verify_of_a_cluster_shares_its_pacer_and_the_stricter_limit() {
        let process = Registry::default();
        let a = process.for_cluster("a", records(5000));
        let again = process.for_cluster("a", records(2000));
        let other = process.for_cluster("b", records(5000));
        assert!(Arc::ptr_eq(&a, &again));
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(a.limits().records, Some(2000), "the stricter wins");
        let looser = process.for_cluster("a", Limits::default());
        assert_eq!(looser.limits().records, Some(2000));
        drop((a, again, looser));
        let fresh = process.for_cluster("a", records(9000));
        assert_eq!(
            fresh.limits().records,
            Some(9000),
            "none held it: a new one"
        );
    }

    #[test]
    fn another_processs_pacer_of_a_cluster_of_the_same_name_is_its_own() {
        let (one, another) = (Registry::default(), Registry::default());
        let a = one.for_cluster("src", records(5000));
        let b = another.for_cluster("src", records(2000));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a.limits().records, Some(5000));
    }
}
