//! Owns what counts as evidence that a deny env is in force on each partition's primary,
//! from the answers to migrator's probe requests (`probe::requests`), and the wait until every
//! partition shows it.
//!
//! The replica's app info cannot show an applied env (server-behaviour.md §1.2), so:
//! - writes blocked: `reconfig*write` refuses the probe write with `ERR_INVALID_STATE`;
//!   `timeout*write` leaves it unanswered, which counts only once the source's longest
//!   config-sync period has passed since the meta accepted the env (a slow node also stays
//!   silent); a probe write that is served proves the block is not in force there yet;
//! - writes restored: the probe write is served;
//! - clients told to move (`reconfig*all`): the probe read is refused with
//!   `ERR_INVALID_STATE` (neither `*write` value refuses reads).
//!
//! Each partition is judged on the primary the meta names in that poll; when a partition's
//! primary changes (a new ballot) its evidence starts over, since the new primary enforces
//! only what its own server's last config sync applied.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::pegasus::meta::MetaClient;
use crate::pegasus::replica::ReplicaClient;
use crate::probe::requests::{self, Answer, Probe};
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
    NotYet,
    Unknown(String),
}

/// Judges one probe answer.
#[must_use]
pub fn judge(awaited: Awaited, answer: &Answer) -> Verdict {
    match (awaited, answer) {
        (_, Answer::Failed(why)) => Verdict::Unknown(why.clone()),
        (Awaited::WritesBlocked { .. }, Answer::Served) => Verdict::NotYet,
        (Awaited::WritesBlocked { mode, .. }, Answer::Refused) => match mode {
            BlockMode::Reconfig => Verdict::InForce,
            BlockMode::Timeout => {
                Verdict::Unknown("refused, though timeout* gives no reply".into())
            }
        },
        (Awaited::WritesBlocked { mode, settled }, Answer::NoReply) => match (mode, settled) {
            (BlockMode::Timeout, true) => Verdict::InForce,
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
                Verdict::NotYet if !self.seen.contains_key(&p.pidx) => {
                    self.missing.insert(p.pidx, "not yet".into());
                }
                Verdict::Unknown(why) if !self.seen.contains_key(&p.pidx) => {
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
    pub probe_deadline: Duration,
    pub poll: Duration,
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
        let answers =
            requests::send(self.probes, &prim, awaited.probe(), self.probe_deadline * 2).await;
        let verdicts: Vec<Verdict> = answers.iter().map(|a| judge(awaited, a)).collect();
        tally.record(&prim, &verdicts, now);
        tally.complete_for(&prim)
    }
}

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
        use Verdict::{InForce, NotYet};
        let cases = [
            (blocked(BlockMode::Reconfig, false), Refused, InForce),
            (blocked(BlockMode::Reconfig, true), Served, NotYet),
            (blocked(BlockMode::Timeout, true), NoReply, InForce),
            (blocked(BlockMode::Timeout, false), NoReply, NotYet),
            (blocked(BlockMode::Timeout, true), Served, NotYet),
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
}
