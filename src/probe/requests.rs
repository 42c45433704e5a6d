//! Owns the tool's own probe requests to each partition's primary, the evidence that a deny
//! env is (or is no longer) in force there (upstream `on_client_write` and `on_client_read`; `src/sim/fidelity.md`): a remove of a key
//! in migrator's reserved namespace — answered at once by a primary that takes writes,
//! `ERR_INVALID_STATE` under `reconfig*write|all`, nothing under `timeout*write|all` — and a
//! get of the same key, refused with `ERR_INVALID_STATE` once `reconfig*all` is in force.
//!
//! The key does not exist, so an accepted remove changes no data (it is a decree, and is
//! duplicated as a remove of a missing key).

use std::time::Duration;

use tokio::task::JoinSet;

use super::primaries::Primaries;
use crate::pegasus::base::{err, Blob, Gpid};
use crate::pegasus::key;
use crate::pegasus::messages::data::{Get, Remove};
use crate::pegasus::messages::Rpc;
use crate::pegasus::replica::ReplicaClient;
use crate::pegasus::Error;

/// Hash keys with this prefix are migrator's; applications must not use them.
pub const RESERVED_PREFIX: &str = "__migrator_probe__.";

/// How a primary answered a probe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Served: writes (or reads) are taken there.
    Served,
    /// `ERR_INVALID_STATE`: a `reconfig*` deny (or the node is no longer primary).
    Refused,
    /// No reply within the deadline: what a `timeout*` deny looks like.
    NoReply,
    /// No primary, connection refused, another error: nothing learned.
    Failed(String),
}

/// Which request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Write,
    Read,
}

/// A probe judged unanswered whose call goes on: its late answer, if it comes.
pub type Late = tokio::sync::oneshot::Receiver<Answer>;

/// Like [`send`], but each call is made with `patient` (a client with a long deadline) and is
/// judged at `deadline`; a call unanswered by then goes on, and its receiver is returned
/// beside its `NoReply`: a silence that later turns out to be a served probe disproves it.
pub async fn send_watched(
    patient: &ReplicaClient,
    prim: &Primaries,
    probe: Probe,
    deadline: Duration,
) -> Vec<(Answer, Option<Late>)> {
    let mut asks = JoinSet::new();
    for (i, p) in prim.parts.iter().enumerate() {
        let Some(addr) = p.addr else { continue };
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let call = one(patient.clone(), prim, p.pidx, addr, probe);
        // Detached: it outlives this poll, bounded by the patient client's own deadline.
        tokio::spawn(crate::clock::inherit(async move {
            let _ = tx.send(call.await);
        }));
        asks.spawn(async move {
            match tokio::time::timeout(deadline, &mut rx).await {
                Ok(Ok(answer)) => (i, answer, None),
                Ok(Err(_)) => (i, Answer::Failed("probe dropped".into()), None),
                Err(_) => (i, Answer::NoReply, Some(rx)),
            }
        });
    }
    let mut out: Vec<(Answer, Option<Late>)> = (0..prim.parts.len())
        .map(|_| (Answer::Failed("no primary".into()), None))
        .collect();
    while let Some(Ok((i, answer, late))) = asks.join_next().await {
        out[i] = (answer, late);
    }
    out
}

/// One probe call to partition `pidx`'s primary at `addr`, classified.
fn one(
    replica: ReplicaClient,
    prim: &Primaries,
    pidx: i32,
    addr: std::net::SocketAddr,
    probe: Probe,
) -> impl std::future::Future<Output = Answer> + Send + 'static {
    let hash_key = key::hash_key_in_partition(RESERVED_PREFIX, pidx, prim.partition_count);
    let composite = key::composite_key(&hash_key, b"").expect("short reserved key");
    let hash = key::key_hash(&composite);
    let gpid = Gpid::new(prim.app_id, pidx);
    async move {
        let result = match probe {
            Probe::Write => replica
                .call::<Remove>(addr, gpid, hash, &Blob(composite))
                .await
                .map(drop),
            Probe::Read => replica
                .call::<Get>(addr, gpid, hash, &Blob(composite))
                .await
                .map(drop),
        };
        classify(result)
    }
}

/// Sends `probe` to every partition's primary at once, each within `deadline`.
pub async fn send(
    replica: &ReplicaClient,
    prim: &Primaries,
    probe: Probe,
    deadline: Duration,
) -> Vec<Answer> {
    let mut asks = JoinSet::new();
    for (i, p) in prim.parts.iter().enumerate() {
        let Some(addr) = p.addr else { continue };
        let call = one(replica.clone(), prim, p.pidx, addr, probe);
        asks.spawn(async move {
            let answer = tokio::time::timeout(deadline, call)
                .await
                .unwrap_or(Answer::NoReply);
            (i, answer)
        });
    }
    let mut out = vec![Answer::Failed("no primary".into()); prim.parts.len()];
    while let Some(Ok((i, answer))) = asks.join_next().await {
        out[i] = answer;
    }
    out
}

fn classify(result: Result<(), Error>) -> Answer {
    match result {
        Ok(()) => Answer::Served,
        Err(Error::Timeout { .. }) => Answer::NoReply,
        Err(e) if e.is(err::INVALID_STATE) => Answer::Refused,
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// The name of the probe RPC, for messages.
#[must_use]
pub fn rpc_name(probe: Probe) -> &'static str {
    match probe {
        Probe::Write => Remove::NAME,
        Probe::Read => Get::NAME,
    }
}
