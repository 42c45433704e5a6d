//! Owns keeping verify's reads under a records-per-second limit, one per cluster and shared by
//! every partition group and the re-reads, so a production cluster is not hurt.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Credit a limit may build up while reads are slower than it (a burst after a slow stretch
/// is at most this much of the rate).
const MAX_CREDIT: Duration = Duration::from_secs(1);

/// Keeps the records read per second under a limit.
#[derive(Debug)]
pub struct Pacer {
    rate: Option<u64>,
    /// When the records counted so far are paid for.
    paid_until: Mutex<Instant>,
}

impl Pacer {
    /// A limit of `rate` records per second (none, or 0: no limit).
    #[must_use]
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            rate: rate.filter(|r| *r > 0),
            paid_until: Mutex::new(Instant::now()),
        }
    }

    /// Counts `n` records read; waits until the limit allows them.
    pub async fn pace(&self, n: usize) {
        let Some(rate) = self.rate else {
            return;
        };
        let at = {
            let mut paid = self.paid_until.lock().expect("pacer lock");
            let now = Instant::now();
            let floor = now.checked_sub(MAX_CREDIT).unwrap_or(now);
            *paid = (*paid).max(floor) + Duration::from_secs_f64(n as f64 / rate as f64);
            *paid
        };
        tokio::time::sleep_until(at).await;
    }
}

/// One limit per cluster.
#[derive(Debug)]
pub struct Pacers {
    pub source: Pacer,
    pub target: Pacer,
}

impl Pacers {
    /// `rate` records per second on each cluster.
    #[must_use]
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            source: Pacer::new(rate),
            target: Pacer::new(rate),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Time is paused: sleeps advance the clock exactly, so the figures are exact.
    #[tokio::test(start_paused = true)]
    async fn the_pacer_spreads_records_over_the_limit_shared_by_every_group() {
        let pacer = Arc::new(Pacer::new(Some(1000)));
        let start = Instant::now();
        let groups: Vec<_> = (0..4)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        pacer.pace(100).await;
                    }
                })
            })
            .collect();
        for g in groups {
            g.await.unwrap();
        }
        // 2,000 records at 1,000/s, whichever group asked.
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        let unlimited = Pacer::new(None);
        let start = Instant::now();
        unlimited.pace(1_000_000).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_stretch_buys_at_most_a_second_of_burst() {
        let pacer = Pacer::new(Some(1000));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        // A minute of idle time: only 1,000 records go at once, the other 2,000 at the rate.
        pacer.pace(3000).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
