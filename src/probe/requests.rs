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
        let hash_key = key::hash_key_in_partition(RESERVED_PREFIX, p.pidx, prim.partition_count);
        let composite = key::composite_key(&hash_key, b"").expect("short reserved key");
        let hash = key::key_hash(&composite);
        let gpid = Gpid::new(prim.app_id, p.pidx);
        let replica = replica.clone();
        asks.spawn(async move {
            let call = async {
                match probe {
                    Probe::Write => replica
                        .call::<Remove>(addr, gpid, hash, &Blob(composite))
                        .await
                        .map(drop),
                    Probe::Read => replica
                        .call::<Get>(addr, gpid, hash, &Blob(composite))
                        .await
                        .map(drop),
                }
            };
            let answer = match tokio::time::timeout(deadline, call).await {
                Err(_) => Answer::NoReply,
                Ok(result) => classify(result),
            };
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
