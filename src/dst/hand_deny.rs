//! Owns another operator's deny env set by hand on a source table: set only while no migrator
//! run holds the table (no apply lock, no open block record, no deny env, no lift in the last
//! `LATE_SET`, after which the README says a guardian may delete a late-landing env of the
//! block's value), as an operator who looked first would, and deleted some seconds later if it
//! is still theirs. What it records
//! lets the checks tell it from migrator's blocks and see whether anyone touched it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::cutover::record::{BlockRecord, BlockState};
use crate::pegasus::envs::DENY_ENV;
use crate::pegasus::messages::apps::{AppEnvOperation, UpdateAppEnvRequest};
use crate::sim::state::Cluster;
use crate::sim::zk_model::Ensemble;

use super::trace::Trace;

/// A deny env an operator set by hand, and when (true wall-clock ms).
#[derive(Debug, Clone)]
pub struct HandDeny {
    pub app_id: i32,
    pub table: String,
    pub value: String,
    pub set_ms: u64,
    /// When they deleted it; `None` if it was no longer theirs to delete.
    pub deleted_ms: Option<u64>,
}

/// Every hand-set deny env of a run.
pub type HandDenies = Arc<Mutex<Vec<HandDeny>>>;

/// What the operator looks at before acting on `table`, and where.
pub struct Looks<'a> {
    pub ensemble: &'a Ensemble,
    pub lock: String,
    pub record: String,
}

/// Sets `value` by hand on `table` of `source` if nobody holds it, and deletes it `lasting`
/// later; the task ends once it is deleted (or left to whoever changed it).
pub fn start(
    source: &Arc<Cluster>,
    looks: &Looks<'_>,
    (table, value, lasting): (&str, &str, Duration),
    denies: &HandDenies,
    trace: &Trace,
) -> Option<JoinHandle<u8>> {
    if let Some(why) = held(source, looks, table) {
        trace.say(format!(
            "operator: leaves the deny env of {table} alone ({why})"
        ));
        return None;
    }
    let (app_id, set_ms) = change(source, table, Some(value))?;
    let index = {
        let mut all = denies.lock().expect("hand denies");
        all.push(HandDeny {
            app_id,
            table: table.to_string(),
            value: value.to_string(),
            set_ms,
            deleted_ms: None,
        });
        all.len() - 1
    };
    trace.say(format!(
        "operator: set {DENY_ENV}={value} on {table} by hand"
    ));
    let (source, denies, trace) = (source.clone(), denies.clone(), trace.clone());
    let (table, value) = (table.to_string(), value.to_string());
    Some(tokio::spawn(async move {
        tokio::time::sleep(lasting).await;
        let still = current(&source, &table).as_deref() == Some(value.as_str());
        let deleted = still.then(|| change(&source, &table, None)).flatten();
        if let Some((_, at_ms)) = deleted {
            denies.lock().expect("hand denies")[index].deleted_ms = Some(at_ms);
            trace.say(format!("operator: deleted the deny env of {table}"));
        } else {
            trace.say(format!(
                "operator: the deny env of {table} is no longer theirs; left alone"
            ));
        }
        0
    }))
}

/// Why the operator leaves `table` alone, if they do.
fn held(source: &Cluster, looks: &Looks<'_>, table: &str) -> Option<&'static str> {
    if looks.ensemble.peek(&looks.lock).is_some() {
        return Some("a migrator run holds its lock");
    }
    let open = looks
        .ensemble
        .peek(&looks.record)
        .and_then(|(data, _)| serde_json::from_slice::<BlockRecord>(&data).ok())
        .is_some_and(|r| !matches!(r.state, BlockState::Lifted | BlockState::Done));
    if open {
        return Some("its block record is open");
    }
    let quiet_from = crate::apply::guardian::LATE_SET + Duration::from_secs(2);
    let lifted_lately = looks
        .ensemble
        .history()
        .iter()
        .rfind(|c| c.path == looks.record)
        .is_some_and(|c| {
            crate::clock::true_now_ms() < c.at_ms + crate::plan::budget::ms(quiet_from)
        });
    if lifted_lately {
        return Some("its block was lifted moments ago");
    }
    current(source, table).map(|_| "a deny env is set")
}

fn current(source: &Cluster, table: &str) -> Option<String> {
    let state = source.lock();
    state.app_by_name(table)?.envs.get(DENY_ENV).cloned()
}

/// Sets (or with `None` deletes) the deny env on the meta, as an env update does; the app id
/// and the time the meta's log gives the change, which the checks match it by.
fn change(source: &Cluster, table: &str, value: Option<&str>) -> Option<(i32, u64)> {
    let op = if value.is_some() {
        AppEnvOperation::APP_ENV_OP_SET
    } else {
        AppEnvOperation::APP_ENV_OP_DEL
    };
    let req = UpdateAppEnvRequest {
        app_name: table.to_string(),
        op,
        keys: Some(vec![DENY_ENV.to_string()]),
        values: value.map(|v| vec![v.to_string()]),
        clear_prefix: None,
    };
    let mut state = source.lock();
    let logged = state.deny_log.len();
    crate::sim::app_envs::update(&mut state, &req, source.config.version.is_2_6()).ok()?;
    // The change the update logged, if it changed anything.
    match state.deny_log.get(logged) {
        Some(crate::sim::state::DenyEvent::Meta { at_ms, app_id, .. }) => Some((*app_id, *at_ms)),
        _ => None,
    }
}
