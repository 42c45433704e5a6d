//! Owns what counts as evidence that a deny env is in force on each partition's primary,
//! from the answers to migrator's probe requests (`probe::requests`), and the wait until every
//! partition shows it.
//!
//! The replica's app info cannot show an applied env (`replica_config.cpp`, v2.5.0), so:
//! - writes blocked: `reconfig*write` refuses the probe write with `ERR_INVALID_STATE`;
//!   `timeout*write` leaves it unanswered, which counts only once the source's longest
//!   config-sync period has passed since the meta accepted the env, and then only after
//!   [`MIN_SILENT_PROBES`] unanswered probes spanning [`silence_span`]: a stalled primary is
//!   silent too, and the span outlasts a server whose sync failed once (a timed-out call, an
//!   answer ignored for an older ballot), so a primary that only lacks the deny for that is
//!   not taken for one that has it. A probe write that is served — at once, or late, after it
//!   was judged unanswered — proves the block is not in force there, whenever it comes: the
//!   partition's evidence starts over (silence is weak evidence; `reconfig` is the default
//!   mode). A server cut off from the meta refuses the probe with `ERR_INVALID_STATE` (its
//!   replicas are inactive): under `timeout*` that breaks the silence; under `reconfig*` it
//!   counts, rightly, since such a replica serves again only after a config sync applied the
//!   envs the meta holds, the deny among them;
//! - writes restored: the probe write is served;
//! - clients told to move (`reconfig*all`): the probe read is refused with
//!   `ERR_INVALID_STATE` (neither `*write` value refuses reads).
//!
//! Each partition is judged on the primary the meta names in that poll; when a partition's
//! primary changes (a new ballot) its evidence starts over, since the new primary enforces
//! only what its own server's last config sync applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::pegasus::meta::MetaClient;
use crate::pegasus::replica::ReplicaClient;
use crate::probe::requests::{self, Answer, Late, Probe};

pub use crate::plan::budget::{silence_span, MIN_SILENT_PROBES};
use crate::probe::Primaries;
use crate::spec::BlockMode;

/// What is being waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// The write block of `mode`; `settled` once the longest config-sync period has passed
    /// since the meta accepted the env.
    WritesBlocked { mode: BlockMode, settled: bool },
    /// The deny env was deleted.
    WritesRestored,
    /// `reconfig*all`.
    ClientsToldToMove,
}

impl Awaited {
    /// The probe request that shows it.
    #[must_use]
    pub fn probe(self) -> Probe {
        match self {
            Self::ClientsToldToMove => Probe::Read,
            _ => Probe::Write,
        }
    }
}

/// One partition's state in one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    InForce,
    /// Unanswered under a settled `timeout*` block: counts once enough silence adds up.
    Silent,
    NotYet,
    /// Served while writes should be blocked: whatever was seen before is void.
    Disproved,
    Unknown(String),
}

/// Judges one probe answer.
#[must_use]
pub fn judge(awaited: Awaited, answer: &Answer) -> Verdict {
    match (awaited, answer) {
        (_, Answer::Failed(why)) => Verdict::Unknown(why.clone()),
        (Awaited::WritesBlocked { .. }, Answer::Served) => Verdict::Disproved,
        (Awaited::WritesBlocked { mode, .. }, Answer::Refused) => match mode {
            BlockMode::Reconfig => Verdict::InForce,
            BlockMode::Timeout => {
                Verdict::Unknown("refused, though timeout* gives no reply".into())
            }
        },
        (Awaited::WritesBlocked { mode, settled }, Answer::NoReply) => match (mode, settled) {
            (BlockMode::Timeout, true) => Verdict::Silent,
            (BlockMode::Timeout, false) => Verdict::NotYet,
            (BlockMode::Reconfig, _) => Verdict::Unknown("no reply to the probe write".into()),
        },
        (Awaited::WritesRestored, Answer::Served) => Verdict::InForce,
        (Awaited::WritesRestored, _) => Verdict::NotYet,
        (Awaited::ClientsToldToMove, Answer::Refused) => Verdict::InForce,
        (Awaited::ClientsToldToMove, Answer::Served) => Verdict::NotYet,
        (Awaited::ClientsToldToMove, Answer::NoReply) => {
            Verdict::Unknown("no reply to the probe read".into())
        }
    }
}

/// Where every partition stands in a wait.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Per partition: the ballot it was judged at and when it was first seen in force.
    pub seen: BTreeMap<i32, (i64, Instant)>,
    /// Per partition not in force: why (the last poll's verdict).
    pub missing: BTreeMap<i32, String>,
    pub partition_count: i32,
    /// How long a partition's unanswered probes must span to count ([`silence_span`]).
    pub silence_span: Duration,
    /// Per partition: its unbroken run of unanswered probes — ballot, first, how many.
    silence: BTreeMap<i32, (i64, Instant, u32)>,
    /// Probes judged unanswered whose calls go on, by partition and ballot.
    late: Arc<Mutex<Vec<(i32, i64, Late)>>>,
}

impl Tally {
    /// Whether every partition is in force.
    #[must_use]
    pub fn complete(&self) -> bool {
        usize::try_from(self.partition_count).is_ok_and(|n| n > 0 && self.seen.len() == n)
    }

    /// Whether every partition of `prim` is in force at the ballot `prim` names.
    #[must_use]
    pub fn complete_for(&self, prim: &Primaries) -> bool {
        self.complete()
            && prim
                .parts
                .iter()
                .all(|p| self.seen.get(&p.pidx).is_some_and(|(b, _)| *b == p.ballot))
    }

    /// When the last partition was first seen in force.
    #[must_use]
    pub fn last_seen(&self) -> Option<Instant> {
        self.seen.values().map(|(_, t)| *t).max()
    }

    /// When the first partition was seen in force.
    #[must_use]
    pub fn first_seen(&self) -> Option<Instant> {
        self.seen.values().map(|(_, t)| *t).min()
    }

    /// Keeps watching an unanswered probe of partition `pidx` at `ballot`.
    pub fn watch_late(&self, pidx: i32, ballot: i64, late: Late) {
        lock(&self.late).push((pidx, ballot, late));
    }

    /// Every partition whose unanswered probe was served since, at the ballot `prim` names,
    /// takes writes: that voids its evidence of a block, and is the evidence of a lift
    /// (`awaited`), seen `now`.
    pub fn harvest_late(&mut self, prim: &Primaries, awaited: Awaited, now: Instant) {
        let mut served = Vec::new();
        lock(&self.late).retain_mut(|(pidx, ballot, rx)| match rx.try_recv() {
            Ok(Answer::Served) => {
                served.push((*pidx, *ballot));
                false
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => true,
            _ => false,
        });
        for (pidx, ballot) in served {
            if prim
                .parts
                .iter()
                .any(|p| p.pidx == pidx && p.ballot == ballot)
            {
                if awaited == Awaited::WritesRestored {
                    self.seen.entry(pidx).or_insert((ballot, now));
                    self.missing.remove(&pidx);
                } else {
                    self.disprove(pidx, "a probe write left unanswered was served late");
                }
            }
        }
    }

    /// Voids partition `pidx`'s evidence (and its run of silence): its primary takes writes.
    pub fn disprove(&mut self, pidx: i32, why: &str) {
        self.seen.remove(&pidx);
        self.silence.remove(&pidx);
        self.missing.insert(pidx, why.into());
    }

    /// Counts one unanswered probe of partition `pidx` at `ballot`; whether the run of them
    /// now spans enough to count.
    fn add_silence(&mut self, pidx: i32, ballot: i64, now: Instant) -> bool {
        let run = self.silence.entry(pidx).or_insert((ballot, now, 0));
        if run.0 != ballot {
            *run = (ballot, now, 0);
        }
        run.2 += 1;
        let (_, first, count) = *run;
        if count >= MIN_SILENT_PROBES && now.saturating_duration_since(first) >= self.silence_span {
            return true;
        }
        self.missing.insert(
            pidx,
            format!(
                "the probe write was left unanswered {count} time(s) over {:.1}s; it counts after {MIN_SILENT_PROBES} over {:.1}s",
                now.saturating_duration_since(first).as_secs_f64(),
                self.silence_span.as_secs_f64()
            ),
        );
        false
    }

    /// Records one poll: the primaries and each partition's verdict.
    pub fn record(&mut self, prim: &Primaries, verdicts: &[Verdict], now: Instant) {
        self.partition_count = prim.partition_count;
        for (p, v) in prim.parts.iter().zip(verdicts) {
            if self.seen.get(&p.pidx).is_some_and(|(b, _)| *b != p.ballot) {
                // A new primary: what the old one enforced says nothing about it.
                self.seen.remove(&p.pidx);
            }
            match v {
                Verdict::InForce => {
                    self.seen.entry(p.pidx).or_insert((p.ballot, now));
                    self.missing.remove(&p.pidx);
                }
                Verdict::Silent if self.seen.contains_key(&p.pidx) => {}
                Verdict::Silent if self.add_silence(p.pidx, p.ballot, now) => {
                    self.seen.insert(p.pidx, (p.ballot, now));
                    self.missing.remove(&p.pidx);
                }
                Verdict::Silent => {}
                Verdict::Disproved => self.disprove(p.pidx, "its primary served the probe write"),
                Verdict::NotYet if !self.seen.contains_key(&p.pidx) => {
                    self.missing.insert(p.pidx, "not yet".into());
                }
                Verdict::Unknown(why) if !self.seen.contains_key(&p.pidx) => {
                    // A failed probe is no silence: the run of unanswered ones starts over.
                    self.silence.remove(&p.pidx);
                    self.missing.insert(p.pidx, why.clone());
                }
                _ => {}
            }
        }
    }

    /// The partitions not in force, for messages: `0 (why), 3 (why)`.
    #[must_use]
    pub fn describe_missing(&self) -> String {
        let n = usize::try_from(self.partition_count).unwrap_or(0);
        (0..n)
            .filter_map(|p| i32::try_from(p).ok())
            .filter(|p| !self.seen.contains_key(p))
            .map(|p| {
                let why = self.missing.get(&p).map_or("not asked", String::as_str);
                format!("{p} ({why})")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How to poll.
pub struct Poller<'a> {
    pub meta: &'a MetaClient,
    pub table: &'a str,
    /// A client whose call deadline is the probe deadline.
    pub probes: &'a ReplicaClient,
    /// A client with a long deadline: a probe write judged unanswered is still watched with
    /// it, in case it is served late.
    pub patient: &'a ReplicaClient,
    pub probe_deadline: Duration,
    pub poll: Duration,
    /// The source's config-sync bound (the span unanswered probes must cover, see
    /// [`silence_span`]).
    pub sync: Duration,
}

impl Poller<'_> {
    /// Polls until every partition shows `awaited` or `deadline` passes; `settled_at` is when
    /// a `timeout*` block's silence starts to count. Returns whether every partition did.
    pub async fn until_every_partition(
        &self,
        awaited: Awaited,
        settled_at: Instant,
        deadline: Instant,
        tally: &mut Tally,
    ) -> bool {
        loop {
            if self.poll_once(awaited, settled_at, tally).await {
                return true;
            }
            if Instant::now() + self.poll >= deadline {
                return false;
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// One poll: reads the primaries, probes each, records the verdicts; whether every
    /// partition is now in force.
    pub async fn poll_once(
        &self,
        awaited: Awaited,
        settled_at: Instant,
        tally: &mut Tally,
    ) -> bool {
        let Ok(prim) = Primaries::read(self.meta, self.table).await else {
            return false;
        };
        let now = Instant::now();
        let awaited = match awaited {
            Awaited::WritesBlocked { mode, .. } => Awaited::WritesBlocked {
                mode,
                settled: now >= settled_at,
            },
            other => other,
        };
        tally.silence_span = silence_span(self.sync);
        // A write probe left unanswered is watched on: served late, it shows writes taken (a
        // slow commit), which voids a block's evidence and proves a lift.
        let verdicts: Vec<Verdict> = if awaited.probe() == Probe::Write {
            let watched =
                requests::send_watched(self.patient, &prim, Probe::Write, self.probe_deadline * 2)
                    .await;
            let mut verdicts = Vec::new();
            for (p, (answer, late)) in prim.parts.iter().zip(watched) {
                if let Some(late) = late {
                    tally.watch_late(p.pidx, p.ballot, late);
                }
                verdicts.push(judge(awaited, &answer));
            }
            tally.harvest_late(&prim, awaited, now);
            verdicts
        } else {
            let answers =
                requests::send(self.probes, &prim, awaited.probe(), self.probe_deadline * 2).await;
            answers.iter().map(|a| judge(awaited, a)).collect()
        };
        tally.record(&prim, &verdicts, now);
        tally.complete_for(&prim)
    }
}

/// What a message says of an env change the meta holds that probes have not yet seen on every
/// primary, for a source whose servers sync every `sync`. It promises no time: a server whose
/// sync fails applies it at a later tick, one the meta answers `ERR_BUSY` once that ends, one
/// cut off from the meta when it is back.
#[must_use]
pub fn not_yet_applied(sync: Duration) -> String {
    format!(
        "replicas apply it at their next config sync, every {} (later on a server whose sync fails, that the meta answers busy, or that is cut off from the meta)",
        crate::render::words::secs(crate::plan::budget::ms(sync))
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod timing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::PrimaryOf;

    fn blocked(mode: BlockMode, settled: bool) -> Awaited {
        Awaited::WritesBlocked { mode, settled }
    }

    #[test]
    fn each_answer_means_what_the_server_does() {
        use Answer::{Failed, NoReply, Refused, Served};
        use Verdict::{Disproved, InForce, NotYet, Silent};
        let cases = [
            (blocked(BlockMode::Reconfig, false), Refused, InForce),
            (blocked(BlockMode::Reconfig, true), Served, Disproved),
            (blocked(BlockMode::Timeout, true), NoReply, Silent),
            (blocked(BlockMode::Timeout, false), NoReply, NotYet),
            (blocked(BlockMode::Timeout, true), Served, Disproved),
            (Awaited::WritesRestored, Served, InForce),
            (Awaited::WritesRestored, NoReply, NotYet),
            (Awaited::WritesRestored, Refused, NotYet),
            (Awaited::ClientsToldToMove, Refused, InForce),
            (Awaited::ClientsToldToMove, Served, NotYet),
        ];
        for (awaited, answer, want) in cases {
            assert_eq!(judge(awaited, &answer), want, "{awaited:?} {answer:?}");
        }
        assert!(matches!(
            judge(blocked(BlockMode::Timeout, true), &Failed("refused".into())),
            Verdict::Unknown(_)
        ));
        assert!(matches!(
            judge(blocked(BlockMode::Timeout, true), &Refused),
            Verdict::Unknown(_)
        ));
    }

    #[test]
    fn an_env_not_yet_seen_everywhere_is_promised_for_no_time() {
        let said = not_yet_applied(Duration::from_millis(1500));
        assert!(said.contains("every 1.5s"), "{said}");
        assert!(!said.contains("within"), "{said}");
        assert!(said.contains("sync fails"), "{said}");
    }

    fn prim(ballots: &[i64]) -> Primaries {
        Primaries {
            app_id: 1,
            partition_count: i32::try_from(ballots.len()).unwrap(),
            parts: ballots
                .iter()
                .enumerate()
                .map(|(i, &ballot)| PrimaryOf {
                    pidx: i32::try_from(i).unwrap(),
                    addr: None,
                    ballot,
                })
                .collect(),
        }
    }

    #[test]
    fn a_new_primary_starts_its_partition_over() {
        let t = Instant::now();
        let mut tally = Tally::default();
        tally.record(&prim(&[1, 1]), &[Verdict::InForce, Verdict::NotYet], t);
        assert!(!tally.complete());
        assert_eq!(tally.describe_missing(), "1 (not yet)");
        tally.record(&prim(&[1, 1]), &[Verdict::NotYet, Verdict::InForce], t);
        assert!(
            tally.complete(),
            "partition 0 stays in force at the same ballot"
        );
        tally.record(&prim(&[2, 1]), &[Verdict::NotYet, Verdict::InForce], t);
        assert!(!tally.complete(), "partition 0 has a new primary");
        assert_eq!(tally.describe_missing(), "0 (not yet)");
    }

    fn silent_polls(tally: &mut Tally, prim: &Primaries, start: Instant, every: Duration, n: u32) {
        for i in 0..n {
            tally.record(prim, &[Verdict::Silent], start + every * i);
        }
    }

    #[test]
    fn silence_counts_only_after_enough_probes_spanning_the_span() {
        let t = Instant::now();
        let p = prim(&[1]);
        let mut tally = Tally {
            silence_span: Duration::from_secs(5),
            ..Tally::default()
        };
        silent_polls(&mut tally, &p, t, Duration::from_secs(1), 5);
        assert!(!tally.complete(), "4 s of silence is less than the span");
        assert!(tally.describe_missing().contains("unanswered 5 time(s)"));
        tally.record(&p, &[Verdict::Silent], t + Duration::from_secs(5));
        assert!(tally.complete(), "six unanswered probes over 5 s count");

        let mut two = Tally {
            silence_span: Duration::from_secs(5),
            ..Tally::default()
        };
        silent_polls(&mut two, &p, t, Duration::from_secs(10), 2);
        assert!(!two.complete(), "two probes are too few however far apart");
    }

    #[test]
    fn a_served_probe_voids_what_was_seen_and_the_silence_so_far() {
        let t = Instant::now();
        let p = prim(&[1, 1]);
        let mut tally = Tally::default();
        tally.record(&p, &[Verdict::InForce, Verdict::InForce], t);
        assert!(tally.complete());
        tally.record(&p, &[Verdict::InForce, Verdict::Disproved], t);
        assert!(
            !tally.complete(),
            "a served probe at the same ballot is not ignored"
        );
        assert_eq!(
            tally.describe_missing(),
            "1 (its primary served the probe write)"
        );

        let one = prim(&[1]);
        let mut silent = Tally {
            silence_span: Duration::from_secs(2),
            ..Tally::default()
        };
        silent_polls(&mut silent, &one, t, Duration::from_secs(1), 2);
        silent.record(&one, &[Verdict::Disproved], t + Duration::from_secs(2));
        silent.record(&one, &[Verdict::Silent], t + Duration::from_secs(3));
        assert!(
            !silent.complete(),
            "the run of silence starts over after a served probe"
        );
    }

    #[tokio::test]
    async fn a_probe_served_after_it_was_judged_unanswered_disproves_its_partition() {
        let t = Instant::now();
        let p = prim(&[1, 1]);
        let mut tally = Tally::default();
        let (late_tx, late_rx) = tokio::sync::oneshot::channel();
        let (still_tx, still_rx) = tokio::sync::oneshot::channel::<Answer>();
        tally.watch_late(0, 1, late_rx);
        tally.watch_late(1, 1, still_rx);
        tally.record(&p, &[Verdict::InForce, Verdict::InForce], t);
        let blocked = blocked(BlockMode::Timeout, true);
        tally.harvest_late(&p, blocked, t);
        assert!(tally.complete(), "nothing answered yet");
        late_tx.send(Answer::Served).unwrap();
        tally.harvest_late(&p, blocked, t);
        assert!(!tally.complete());
        assert!(tally
            .describe_missing()
            .starts_with("0 (a probe write left unanswered was served late"));
        assert!(
            tally.seen.contains_key(&1),
            "the other partition keeps its evidence"
        );
        drop(still_tx);
    }

    #[tokio::test]
    async fn a_probe_served_after_it_was_judged_unanswered_shows_writes_taken_again() {
        let t = Instant::now();
        let p = prim(&[1, 1]);
        let mut tally = Tally::default();
        let (late_tx, late_rx) = tokio::sync::oneshot::channel();
        tally.watch_late(0, 1, late_rx);
        tally.record(&p, &[Verdict::NotYet, Verdict::InForce], t);
        assert!(!tally.complete());
        late_tx.send(Answer::Served).unwrap();
        let later = t + Duration::from_secs(1);
        tally.harvest_late(&p, Awaited::WritesRestored, later);
        assert!(tally.complete(), "{}", tally.describe_missing());
        assert_eq!(tally.seen[&0], (1, later));
    }
}
