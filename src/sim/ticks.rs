//! Owns the instants the simulator's timer loops act at: the ticks their former fixed-period
//! timers fell on, so a loop that sleeps until its next work acts at the same virtual instants
//! as one that woke at every tick and found nothing to do.
//!
//! tokio fires a timer at the end of the millisecond its deadline falls in; under a paused
//! clock (the deterministic simulation) every wake-up is therefore a whole number of
//! milliseconds from the runtime's start, and the arithmetic below reproduces the former
//! timers exactly. Under a running clock it is as exact as the timers ever were.

use std::time::Duration;
use tokio::time::Instant;

/// tokio's timer resolution: a deadline fires at the end of its millisecond.
const RESOLUTION: Duration = Duration::from_millis(1);

/// The ticks of `tokio::time::interval(period)` first due at `origin`: `origin + k × period`.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    origin: Instant,
    period_ns: u128,
}

impl Grid {
    /// The ticks of a timer of `period` whose first tick is due at `origin`.
    #[must_use]
    pub fn new(origin: Instant, period: Duration) -> Self {
        Self {
            origin,
            period_ns: period.as_nanos().max(1),
        }
    }

    /// The deadline of tick `k`.
    #[must_use]
    pub fn at(&self, k: u64) -> Instant {
        self.origin + nanos(self.period_ns.saturating_mul(u128::from(k)))
    }

    /// The first tick after tick `after` (`None`: from the first) that fires no earlier than
    /// `not_before`. A deadline up to a millisecond before `not_before` may still fire at it,
    /// so such a tick counts: a caller checks what is due when it wakes.
    #[must_use]
    pub fn first_from(&self, after: Option<u64>, not_before: Instant) -> u64 {
        let least = after.map_or(0, |k| k.saturating_add(1));
        let Some(edge) = not_before.checked_sub(RESOLUTION) else {
            return least;
        };
        if edge < self.origin {
            return least;
        }
        // The first k with origin + k × period strictly after `edge`.
        let k = (edge - self.origin).as_nanos() / self.period_ns + 1;
        least.max(u64::try_from(k).unwrap_or(u64::MAX))
    }

    /// Where to sleep to on the way to tick `k`, at `now`: the tick before it while that is
    /// still ahead, else tick `k` itself.
    #[must_use]
    pub fn stop(&self, k: u64, now: Instant) -> Stop {
        match k.checked_sub(1).map(|before| self.at(before)) {
            Some(before) if before > now => Stop::Before(before),
            _ => Stop::At(self.at(k)),
        }
    }
}

/// A loop's next wake-up on its way to the tick it acts at. It stops a tick before it, so
/// that the timer of that tick is armed a tick ahead, as the fixed timer armed it: tokio fires
/// the timers due in one millisecond in the order they were armed, so the loop keeps its
/// place among the tasks acting at that instant (and what it does is seen, or not, by them
/// as before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The tick before: wake, then arm the last timer.
    Before(Instant),
    /// The tick to act at.
    At(Instant),
}

impl Stop {
    /// When to wake.
    #[must_use]
    pub fn instant(self) -> Instant {
        match self {
            Self::Before(at) | Self::At(at) => at,
        }
    }

    /// Whether the loop acts when it wakes.
    #[must_use]
    pub fn acts(self) -> bool {
        matches!(self, Self::At(_))
    }
}

/// The earliest instant a tick may fire at to act on a change made at `now`. A tick due at
/// that same instant counts as run before it: its timer was armed a tick earlier, while
/// what made the change was mostly set off later, and the loops that ticked ran it first.
#[must_use]
pub fn after(now: Instant) -> Instant {
    now + RESOLUTION
}

/// Sleeps until `at`; forever when there is no instant (the caller also waits for a wake-up).
pub async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When a loop that sleeps `min(poll, next − now)` at a time, having last woken at `anchor`
/// with its next action due at `next`, first wakes at or after `not_before`: every `poll`
/// (tokio rounds each sleep up to the millisecond) until less than a `poll` is left, then at
/// `next`; from `next` on it no longer sleeps, so at once.
#[must_use]
pub fn poll_wake(anchor: Instant, next: Instant, poll: Duration, not_before: Instant) -> Instant {
    if next <= anchor {
        return not_before.max(anchor);
    }
    let step = ceil_ms(poll).max(RESOLUTION).as_nanos();
    let span = next - anchor;
    // Whole steps: step j (from anchor + j × step) is whole while a `poll` still fits before
    // `next`.
    let whole = if span >= poll {
        (span - poll).as_nanos() / step + 1
    } else {
        0
    };
    let last_whole = anchor + nanos(whole * step);
    if whole > 0 && not_before <= last_whole {
        let k = not_before
            .saturating_duration_since(anchor)
            .as_nanos()
            .div_ceil(step)
            .max(1);
        return anchor + nanos(k * step);
    }
    let end = if next > last_whole {
        last_whole + ceil_ms(next - last_whole)
    } else {
        last_whole
    };
    not_before.max(end)
}

/// Where the loop of [`poll_wake`] sleeps to on its way to its wake-up `at`, at `now`: the
/// wake-up before it while that is still ahead (see [`Stop`]).
#[must_use]
pub fn poll_stop(
    anchor: Instant,
    next: Instant,
    poll: Duration,
    at: Instant,
    now: Instant,
) -> Stop {
    let step = ceil_ms(poll).max(RESOLUTION);
    // The wake-ups before `at` are `anchor + k × step`, the last one no later than `at`
    // minus a step; `at` is either one of them plus a step or the end cut short to `next`.
    let before = if at <= anchor || at > next + step {
        None
    } else {
        let k = (at - anchor).as_nanos().saturating_sub(1) / step.as_nanos();
        let before = anchor + nanos(k * step.as_nanos());
        (k > 0 && poll_wake(anchor, next, poll, before) == before).then_some(before)
    };
    match before {
        Some(before) if before > now && before < at => Stop::Before(before),
        _ => Stop::At(at),
    }
}

/// `d` rounded up to whole milliseconds, as tokio's timer does.
#[must_use]
pub fn ceil_ms(d: Duration) -> Duration {
    nanos(d.as_nanos().div_ceil(1_000_000) * 1_000_000)
}

fn nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder of a division by 10⁹ fits a u32.
    Duration::new(secs, u32::try_from(n % 1_000_000_000).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The former loop's wake-ups, one sleep at a time, as tokio rounds them.
    fn polled(anchor: Instant, next: Instant, poll: Duration, until: Instant) -> Vec<Instant> {
        let mut out = vec![];
        let mut now = anchor;
        while now < until && now < next {
            now += ceil_ms(next.saturating_duration_since(now).min(poll));
            out.push(now);
        }
        out
    }

    #[test]
    fn grid_ticks_are_whole_periods_from_the_origin() {
        let o = Instant::now();
        let g = Grid::new(o, ms(50));
        assert_eq!(g.at(0), o);
        assert_eq!(g.at(3), o + ms(150));
        assert_eq!(g.first_from(None, o), 0);
        assert_eq!(g.first_from(Some(0), o), 1);
        assert_eq!(
            g.first_from(None, o + ms(100)),
            2,
            "a tick due at the instant counts"
        );
        assert_eq!(g.first_from(None, o + ms(101)), 3);
        assert_eq!(
            g.first_from(Some(5), o + ms(101)),
            6,
            "never a tick already run"
        );
    }

    #[test]
    fn a_grid_tick_within_the_millisecond_before_may_fire_at_it() {
        let o = Instant::now();
        let g = Grid::new(o, Duration::from_micros(16_650));
        // Tick 6 is due at 99.9 ms and fires at 100 ms.
        assert_eq!(g.first_from(None, o + ms(100)), 6);
    }

    #[test]
    fn a_loop_stops_at_the_tick_before_the_one_it_acts_at() {
        let a = Instant::now();
        let g = Grid::new(a, ms(50));
        assert_eq!(g.stop(3, a), Stop::Before(a + ms(100)));
        assert_eq!(g.stop(3, a + ms(100)), Stop::At(a + ms(150)));
        assert_eq!(g.stop(0, a), Stop::At(a));
    }

    #[test]
    fn poll_wakes_are_the_former_loops_wakes() {
        let a = Instant::now();
        for poll in [ms(10), Duration::from_micros(37_350), ms(50)] {
            for next_ms in [0, 5, 37, 38, 76, 249, 250, 1000] {
                let next = a + ms(next_ms);
                let wakes = polled(a, next, poll, a + ms(2000));
                for at_ms in 0..1200 {
                    let at = a + ms(at_ms);
                    let expected = wakes.iter().copied().find(|w| *w >= at).unwrap_or(at);
                    assert_eq!(
                        poll_wake(a, next, poll, at),
                        expected,
                        "poll {poll:?}, next {next_ms} ms, at {at_ms} ms"
                    );
                }
            }
        }
    }

    #[test]
    fn a_polling_loop_stops_at_the_wake_up_before_the_one_it_acts_at() {
        let a = Instant::now();
        for poll in [ms(10), Duration::from_micros(37_350)] {
            for next_ms in [5, 76, 249, 1000] {
                let next = a + ms(next_ms);
                let wakes = polled(a, next, poll, a + ms(2000));
                for (i, w) in wakes.iter().enumerate() {
                    let expected = match i {
                        0 => Stop::At(*w),
                        _ => Stop::Before(wakes[i - 1]),
                    };
                    assert_eq!(poll_stop(a, next, poll, *w, a), expected, "{poll:?} {w:?}");
                    assert_eq!(poll_stop(a, next, poll, *w, *w - ms(1)), Stop::At(*w));
                }
            }
        }
    }

    #[test]
    fn past_its_next_action_the_loop_wakes_at_once() {
        let a = Instant::now();
        assert_eq!(poll_wake(a + ms(5), a, ms(10), a + ms(7)), a + ms(7));
        assert_eq!(poll_wake(a, a + ms(20), ms(10), a + ms(25)), a + ms(25));
    }
}
