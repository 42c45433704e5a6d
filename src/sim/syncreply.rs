//! Owns one config sync between a replica server and the meta, as data: what the meta answers
//! (`ERR_BUSY`, or each partition the server hosts with its table's envs and whether the table
//! duplicates), and what the server's replicas do with the answer: each applies its partition's
//! part unless that part comes at a ballot older than its own, and serves clients again if the
//! server had lost the meta (`server_state::on_config_sync`, `replica::on_config_sync`,
//! `replica::on_meta_server_disconnected`, v2.5.0 and master).

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::state::{Cluster, Deny, DenyEvent, State, DENY_ENV};
use super::synctrouble::Pid;

/// The meta's answer to one config sync.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A change concerning the server is being persisted: ask again in 500 ms.
    Busy,
    /// Every partition the meta has the server host.
    Parts(Vec<Part>),
}

/// One partition of an answer.
#[derive(Debug, Clone)]
pub struct Part {
    pub pid: Pid,
    /// The table's deny flags and whether it duplicates; `None` when the part comes at a
    /// ballot older than the replica's, which then applies nothing of it.
    pub update: Option<(Option<Deny>, bool)>,
}

/// What the meta answers server `node`'s config sync at `now`.
#[must_use]
pub fn answer(state: &State, node: usize, now: Instant) -> Answer {
    let trouble = &state.nodes[node].trouble;
    if trouble.busy(now) {
        return Answer::Busy;
    }
    let mut parts = Vec::new();
    for app in state.apps.values() {
        let deny = app.envs.get(DENY_ENV).and_then(|v| Deny::parse(v));
        for (pidx, p) in app.partitions.iter().enumerate() {
            if !p.hosted_on(node) {
                continue;
            }
            let pid = (app.id, pidx);
            let update = (!trouble.stale(pid, now)).then_some((deny, app.is_duplicating()));
            parts.push(Part { pid, update });
        }
    }
    Answer::Parts(parts)
}

/// Server `node` applies the partitions of an answer. A replica the answer does not list
/// keeps nothing (upstream closes it or turns it into an error replica).
pub fn apply(cluster: &Cluster, node: usize, parts: &[Part]) {
    let at_ms = crate::clock::now_ms();
    let mut state = cluster.lock();
    let listed: BTreeSet<Pid> = parts.iter().map(|p| p.pid).collect();
    let n = &mut state.nodes[node];
    n.last_sync_ms = at_ms;
    let unlisted: Vec<Pid> = n
        .deny
        .keys()
        .filter(|pid| !listed.contains(pid))
        .copied()
        .collect();
    let mut log: Vec<DenyEvent> = unlisted
        .into_iter()
        .filter_map(|pid| n.deny.remove(&pid).map(|_| applied(at_ms, node, pid, None)))
        .collect();
    n.dup_masters.retain(|pid| listed.contains(pid));
    n.inactive.retain(|pid| listed.contains(pid));
    for part in parts {
        let Some((deny, duplicating)) = part.update else {
            continue;
        };
        let before = match deny {
            Some(d) => n.deny.insert(part.pid, d),
            None => n.deny.remove(&part.pid),
        };
        if before != deny {
            log.push(applied(at_ms, node, part.pid, deny));
        }
        if duplicating {
            n.dup_masters.insert(part.pid);
        } else {
            n.dup_masters.remove(&part.pid);
        }
        // Its configuration is applied with it: a replica the lost meta made inactive is
        // back in its role.
        n.inactive.remove(&part.pid);
    }
    state.deny_log.extend(log);
}

/// Server `node` lost the meta, or (re)started: every replica it hosts serves no client until a
/// config sync applies its partition.
pub fn inactivate(state: &mut State, node: usize) {
    let hosted: Vec<Pid> = state
        .apps
        .values()
        .flat_map(|a| {
            a.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.hosted_on(node))
                .map(|(pidx, _)| (a.id, pidx))
        })
        .collect();
    state.nodes[node].inactive.extend(hosted);
}

/// A restarted server `node` has forgotten the envs its replicas applied.
pub fn forget(state: &mut State, node: usize) {
    let at_ms = crate::clock::now_ms();
    let n = &mut state.nodes[node];
    let log: Vec<DenyEvent> = std::mem::take(&mut n.deny)
        .into_keys()
        .map(|pid| applied(at_ms, node, pid, None))
        .collect();
    n.dup_masters.clear();
    state.deny_log.extend(log);
    inactivate(state, node);
}

fn applied(at_ms: u64, node: usize, (app_id, pidx): Pid, deny: Option<Deny>) -> DenyEvent {
    DenyEvent::Applied {
        at_ms,
        node,
        app_id,
        pidx,
        deny,
    }
}
