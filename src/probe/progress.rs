//! Owns per-partition decrees and duplication counters, read on the nodes that hold the
//! table's primaries: `RPC_QUERY_REPLICA_INFO` (ballot, status, committed and prepared
//! decrees) and `GET /replica/duplication` (`not_duplicated_mutations_num` = lcd − the last
//! decree the remote acknowledged; `not_confirmed_mutations_num` = lcd − what the meta last
//! confirmed). The decrees are read first: a write in between makes "shipped" err low.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;

use super::primaries::Primaries;
use crate::pegasus::base::Gpid;
use crate::pegasus::messages::replica_admin::PartitionStatus;
use crate::pegasus::replica::ReplicaClient;
use crate::pegasus::Error;

/// A per-partition fact, or why it is not known in this poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known<T> {
    Yes(T),
    Unknown(String),
}

impl<T> Known<T> {
    /// The value, if known.
    #[must_use]
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Yes(v) => Some(v),
            Self::Unknown(_) => None,
        }
    }
}

/// One partition on its primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    pub ballot: i64,
    pub last_committed: i64,
    pub last_prepared: i64,
    /// The duplication's counters; `None` when no duplication was asked about.
    pub counters: Option<Counters>,
}

/// One duplication's counters on a primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub not_duplicated: i64,
    pub not_confirmed: i64,
    /// Its duplicator ships: it learned DS_LOG at its server's duplication sync, which comes
    /// up to one sync period (10 s) after the meta's DS_LOG (`duplicating`, the pipeline not
    /// paused: `duplication_sync_timer::get_dup_states`, v2.5.0 and master).
    pub duplicating: bool,
}

impl PartitionProgress {
    /// Decrees shipped and acknowledged by the remote (lcd − not_duplicated).
    #[must_use]
    pub fn shipped(&self) -> Option<i64> {
        self.counters
            .map(|c| self.last_committed - c.not_duplicated)
    }
}

/// What one node said.
struct NodeAnswer {
    replicas: BTreeMap<Gpid, (PartitionStatus, i64, i64, i64)>,
    counters: BTreeMap<String, Counters>,
}

/// Every partition of `prim` on its primary; with `dupid`, that duplication's counters too.
/// Nodes are asked in parallel, each within `deadline`.
pub async fn read(
    replica: &ReplicaClient,
    prim: &Primaries,
    dupid: Option<i32>,
    deadline: Duration,
) -> Vec<Known<PartitionProgress>> {
    let mut asks = JoinSet::new();
    for node in prim.nodes() {
        let (replica, app_id) = (replica.clone(), prim.app_id);
        asks.spawn(async move {
            let answer = tokio::time::timeout(deadline, ask(&replica, node, app_id, dupid)).await;
            let answer =
                answer.unwrap_or_else(|_| Err(format!("{node} did not answer in {deadline:?}")));
            (node, answer)
        });
    }
    let mut answers: BTreeMap<SocketAddr, Result<NodeAnswer, String>> = BTreeMap::new();
    while let Some(Ok((node, answer))) = asks.join_next().await {
        answers.insert(node, answer);
    }
    prim.parts
        .iter()
        .map(|p| {
            let Some(addr) = p.addr else {
                return Known::Unknown(format!("partition {} has no primary", p.pidx));
            };
            match answers.get(&addr) {
                Some(Ok(a)) => partition(a, prim.app_id, p.pidx, p.ballot, addr, dupid),
                Some(Err(e)) => Known::Unknown(e.clone()),
                None => Known::Unknown(format!("{addr} was not asked")),
            }
        })
        .collect()
}

/// One entry per partition: the reply also lists the node's closing and closed replicas, as
/// they were when closing began (`replica_stub::on_query_replica_info`, v2.5.0 and master), so
/// a partition can appear twice; the entry with the highest ballot is the live one.
fn newest_per_partition(
    entries: impl Iterator<Item = (Gpid, (PartitionStatus, i64, i64, i64))>,
) -> BTreeMap<Gpid, (PartitionStatus, i64, i64, i64)> {
    let mut out: BTreeMap<Gpid, (PartitionStatus, i64, i64, i64)> = BTreeMap::new();
    for (gpid, v) in entries {
        if out.get(&gpid).is_none_or(|kept| v.1 > kept.1) {
            out.insert(gpid, v);
        }
    }
    out
}

fn partition(
    a: &NodeAnswer,
    app_id: i32,
    pidx: i32,
    ballot: i64,
    addr: SocketAddr,
    dupid: Option<i32>,
) -> Known<PartitionProgress> {
    let gpid = Gpid::new(app_id, pidx);
    let Some(&(status, their_ballot, lcd, lpd)) = a.replicas.get(&gpid) else {
        return Known::Unknown(format!("{addr} does not host {app_id}.{pidx}"));
    };
    if status != PartitionStatus::PS_PRIMARY || their_ballot != ballot {
        return Known::Unknown(format!(
            "{addr} is not yet primary of {app_id}.{pidx} at ballot {ballot} ({} at {their_ballot})",
            status.name()
        ));
    }
    let counters = match dupid {
        None => None,
        Some(id) => match a.counters.get(&format!("{app_id}.{pidx}")) {
            Some(c) => Some(*c),
            None => {
                return Known::Unknown(format!(
                    "{addr} runs no duplicator {id} for {app_id}.{pidx} yet"
                ))
            }
        },
    };
    Known::Yes(PartitionProgress {
        ballot,
        last_committed: lcd,
        last_prepared: lpd.max(lcd),
        counters,
    })
}

async fn ask(
    replica: &ReplicaClient,
    node: SocketAddr,
    app_id: i32,
    dupid: Option<i32>,
) -> Result<NodeAnswer, String> {
    let infos = replica
        .query_replica_info(node)
        .await
        .map_err(|e| e.to_string())?;
    let replicas = newest_per_partition(infos.into_iter().filter(|r| r.pid.app_id == app_id).map(
        |r| {
            let v = (
                r.status,
                r.ballot,
                r.last_committed_decree,
                r.last_prepared_decree,
            );
            (r.pid, v)
        },
    ));
    let counters = match dupid {
        Some(id) => dup_counters(replica, node, app_id, id)
            .await
            .map_err(|e| e.to_string())?,
        None => BTreeMap::new(),
    };
    Ok(NodeAnswer { replicas, counters })
}

/// `/replica/duplication?appid=N` for duplication `dupid`, keyed `"<app_id>.<pidx>"`; a 404
/// (no primary or no duplicator there yet) is empty.
async fn dup_counters(
    replica: &ReplicaClient,
    node: SocketAddr,
    app_id: i32,
    dupid: i32,
) -> Result<BTreeMap<String, Counters>, Error> {
    let path = format!("/replica/duplication?appid={app_id}");
    let (status, body) = replica.http_get(node, &path).await?;
    if status == 404 {
        return Ok(BTreeMap::new());
    }
    let unreadable = |why: &str| Error::Http {
        addr: node,
        path: path.clone(),
        reason: why.to_string(),
        status: Some(status),
    };
    if status != 200 {
        return Err(unreadable(body.trim()));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|_| unreadable("not JSON"))?;
    let Some(parts) = v.get(dupid.to_string()).and_then(|p| p.as_object()) else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (gpid, p) in parts {
        let field = |name: &str| {
            p[name]
                .as_i64()
                .ok_or_else(|| unreadable(&format!("{gpid}: no {name}")))
        };
        let duplicating = p["duplicating"]
            .as_bool()
            .ok_or_else(|| unreadable(&format!("{gpid}: no duplicating")))?;
        out.insert(
            gpid.clone(),
            Counters {
                not_duplicated: field("not_duplicated_mutations_num")?,
                not_confirmed: field("not_confirmed_mutations_num")?,
                duplicating,
            },
        );
    }
    Ok(out)
}

/// This table's lag for duplication `entry`, the larger of what is known: the primaries' live
/// `not_duplicated` summed (when every partition answered), and master's `partition_states`
/// (lcd − confirmed) when they cover every partition with a known last committed decree —
/// those lag a duplication sync and freeze while shipping stalls, so they never stand alone
/// when the primaries can be asked. `None` when neither is complete.
#[must_use]
pub fn lag(
    entry: &crate::pegasus::messages::duplication::DuplicationEntry,
    partition_count: i32,
    progress: &[Known<PartitionProgress>],
) -> Option<i64> {
    let from_states = entry.partition_states.as_ref().and_then(|states| {
        let complete = usize::try_from(partition_count).is_ok_and(|n| states.len() == n)
            && states.values().all(|s| s.last_committed_decree >= 0);
        complete.then(|| {
            states
                .values()
                .map(|s| (s.last_committed_decree - s.confirmed_decree).max(0))
                .sum::<i64>()
        })
    });
    let from_primaries: Option<i64> = progress
        .iter()
        .map(|p| p.value().and_then(|p| p.counters).map(|c| c.not_duplicated))
        .sum();
    match (from_states, from_primaries) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The partitions whose primary's duplicator does not ship yet (or is not known to).
#[must_use]
pub fn not_shipping(progress: &[Known<PartitionProgress>]) -> Vec<usize> {
    progress
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            !p.value()
                .and_then(|p| p.counters)
                .is_some_and(|c| c.duplicating)
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_replica_listed_beside_the_live_one_is_not_taken_for_it() {
        let g = Gpid::new(3, 1);
        let live = (PartitionStatus::PS_PRIMARY, 7, 40, 41);
        let closed = (PartitionStatus::PS_PRIMARY, 5, 12, 12);
        for order in [[live, closed], [closed, live]] {
            let kept = newest_per_partition(order.into_iter().map(|v| (g, v)));
            assert_eq!(kept.get(&g), Some(&live), "{order:?}");
        }
    }
}
