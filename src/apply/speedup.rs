//! Owns each source cluster's config-sync facts for a run, and the optional speed-up: lowering
//! `config_sync_interval_ms` on the source's replica servers while it has cut-overs
//! (`/updateConfig`), journaled, and restoring the values read before when its last cut-over
//! of the run ends — or, in a later run, when the journal shows it was left lowered.
//!
//! The tool never relies on the lowered value until it can be in force: on 2.5 a new period
//! starts when the current one ends (one old interval), and on master `/updateConfig` does not
//! re-arm the timer at all, so there the speed-up is not applied and the bound stays the value
//! read (`src/sim/fidelity.md`, config-sync rows). That is decided per replica server, by its
//! build (`probe::build`): a 2.5 meta may front master replica servers mid-upgrade.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::entry::{Entry, SpeedUp};
use super::journal::{Journal, Subject};
use crate::pegasus::messages::nodes::NodeStatus;
use crate::pegasus::meta::MetaClient;
use crate::pegasus::replica::ReplicaClient;
use crate::probe::build::{self, SyncTimer};
use crate::probe::flags::{self, CONFIG_SYNC, GROUP_CHECK};

/// What a server's config sync is assumed to be when `/config` cannot be read: the default.
pub const DEFAULT_CONFIG_SYNC: Duration = Duration::from_secs(30);

/// One source cluster's config-sync facts and speed-up state.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    /// Master (2.6) servers: `/updateConfig` does not change the config-sync period.
    pub master: bool,
    /// `config_sync_interval_ms` per live replica server, as read at the start of the run.
    pub original: BTreeMap<SocketAddr, u64>,
    /// The speed-up's value, when the plan asks for one and every live server's build honours
    /// it.
    pub lowered_to: Option<Duration>,
    /// The longest `group_check_interval_ms` of the live servers: an idle primary writes an
    /// empty mutation at most once per period.
    pub group_check: Duration,
    /// A live server's period could not be read: it counts as the default.
    pub unreadable: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the lowered value was set (it is in force one old period later).
    lowered_at: Option<Instant>,
    /// Tables of this run whose cut-over has begun and not ended.
    active: usize,
    /// Every live server took the lowered value.
    all_lowered: bool,
}

impl Source {
    /// Reads the live replica servers' config-sync periods; `speed_up` is the plan's
    /// `config_sync_during_cutover` for this cluster.
    pub async fn load(
        name: &str,
        meta: &MetaClient,
        replica: &ReplicaClient,
        speed_up: Option<Duration>,
    ) -> Source {
        let nodes = meta.list_nodes().await.unwrap_or_default();
        let master = nodes.iter().any(|n| n.hp_node.is_some());
        let mut original = BTreeMap::new();
        let mut group_check = None;
        let mut unreadable = false;
        // A server whose build does not re-arm its timer would keep the old period.
        let mut fixed_timer = false;
        for n in nodes.iter().filter(|n| n.status == NodeStatus::NS_ALIVE) {
            if let Some(addr) = n.node.to_socket() {
                fixed_timer |= build::sync_timer(replica, addr).await == SyncTimer::Ignores;
                match flags::read(replica, addr, CONFIG_SYNC).await {
                    Ok(ms) => drop(original.insert(addr, ms)),
                    Err(_) => unreadable = true,
                }
                let gc = flags::read(replica, addr, GROUP_CHECK).await.ok();
                group_check = group_check.max(gc);
            }
        }
        Source {
            name: name.to_string(),
            master,
            original,
            lowered_to: speed_up.filter(|_| !master && !fixed_timer),
            unreadable,
            group_check: Duration::from_millis(
                group_check.unwrap_or(crate::plan::budget::DEFAULT_GROUP_CHECK_MS),
            ),
            state: Mutex::default(),
        }
    }

    /// Takes over a speed-up an earlier run left in place: `left` holds the values it
    /// replaced, which this run restores at its end.
    pub fn adopt(&mut self, left: &BTreeMap<String, u64>) {
        self.original = left
            .iter()
            .filter_map(|(a, ms)| Some((a.parse().ok()?, *ms)))
            .collect();
        let state = self.state.get_mut().expect("speed-up lock");
        // When it was lowered is not known here: count from now.
        state.lowered_at = Some(Instant::now());
    }

    /// The longest config-sync period that can be in force on any live server now.
    #[must_use]
    pub fn sync_bound(&self) -> Duration {
        let read = self.longest_original();
        let state = self.state.lock().expect("speed-up lock");
        match (self.lowered_to, state.lowered_at) {
            (Some(to), Some(at)) if state.all_lowered && Instant::now() >= at + read => {
                to.min(read)
            }
            _ => read,
        }
    }

    /// The longest config-sync period the servers had before any speed-up: what a restore
    /// must allow for, since another run (or `abort`) may restore the speed-up meanwhile —
    /// the speed-up is per cluster, its users are not.
    #[must_use]
    pub fn unsped_bound(&self) -> Duration {
        self.longest_original()
    }

    fn longest_original(&self) -> Duration {
        let read = self
            .original
            .values()
            .max()
            .map(|&ms| Duration::from_millis(ms));
        match read {
            Some(d) if !self.unreadable => d,
            Some(d) => d.max(DEFAULT_CONFIG_SYNC),
            None => DEFAULT_CONFIG_SYNC,
        }
    }

    /// When the speed-up is in force (now, without one).
    #[must_use]
    pub fn speed_up_ready_at(&self) -> Instant {
        let state = self.state.lock().expect("speed-up lock");
        match (self.lowered_to, state.lowered_at) {
            (Some(_), Some(at)) => at + self.longest_original(),
            _ => Instant::now(),
        }
    }

    /// A table of this cluster starts its cut-over: the first one lowers the period.
    pub async fn begin(&self, replica: &ReplicaClient, journal: &Journal) {
        let lower = {
            let mut state = self.state.lock().expect("speed-up lock");
            state.active += 1;
            state.active == 1 && state.lowered_at.is_none()
        };
        let Some(to) = self.lowered_to.filter(|_| lower) else {
            return;
        };
        let to_ms = u64::try_from(to.as_millis()).unwrap_or(u64::MAX);
        let originals: BTreeMap<String, u64> = self
            .original
            .iter()
            .map(|(a, ms)| (a.to_string(), *ms))
            .collect();
        let _ = journal.record(
            &Subject::cluster(&self.name),
            &Entry::SpeedUp(SpeedUp::Intent {
                cluster: self.name.clone(),
                flag: CONFIG_SYNC.into(),
                to: to_ms,
                original: originals,
            }),
        );
        let mut failed = BTreeMap::new();
        for addr in self.original.keys() {
            if let Err(e) = flags::update(replica, *addr, CONFIG_SYNC, to_ms).await {
                failed.insert(addr.to_string(), e.to_string());
            }
        }
        // A server that did not take the lowered value keeps its period: then the bound does
        // not change (the values that did change are restored all the same).
        let lowered_at = Instant::now();
        {
            let mut state = self.state.lock().expect("speed-up lock");
            state.lowered_at = Some(lowered_at);
            state.all_lowered = failed.is_empty();
        }
        let _ = journal.record(
            &Subject::cluster(&self.name),
            &Entry::SpeedUp(SpeedUp::Outcome {
                cluster: self.name.clone(),
                failed,
            }),
        );
    }

    /// A table's cut-over ended; the last one restores the period. Returns what was
    /// restored, for the operator.
    pub async fn end(&self, replica: &ReplicaClient, journal: &Journal) -> Option<String> {
        let restore = {
            let mut state = self.state.lock().expect("speed-up lock");
            state.active = state.active.saturating_sub(1);
            state.active == 0 && state.lowered_at.take().is_some()
        };
        if !restore {
            return None;
        }
        let originals = self
            .original
            .iter()
            .map(|(a, ms)| (a.to_string(), *ms))
            .collect();
        Some(restore_values(&self.name, &originals, replica, journal).await)
    }
}

/// Sets `originals` back and journals it; returns a line for the operator.
pub async fn restore_values(
    cluster: &str,
    originals: &BTreeMap<String, u64>,
    replica: &ReplicaClient,
    journal: &Journal,
) -> String {
    let _ = journal.record(
        &Subject::cluster(cluster),
        &Entry::SpeedUp(SpeedUp::RestoreIntent {
            cluster: cluster.into(),
            original: originals.clone(),
        }),
    );
    let mut failed = Vec::new();
    for (addr, ms) in originals {
        let Ok(node) = addr.parse::<SocketAddr>() else {
            continue;
        };
        if let Err(e) = flags::update(replica, node, CONFIG_SYNC, *ms).await {
            failed.push(format!("{addr}: {e}"));
        }
    }
    let _ = journal.record(
        &Subject::cluster(cluster),
        &Entry::SpeedUp(SpeedUp::Restored {
            cluster: cluster.into(),
            failed: failed.clone(),
        }),
    );
    if failed.is_empty() {
        format!(
            "{CONFIG_SYNC} restored on {} replica server(s) of {cluster}",
            originals.len()
        )
    } else {
        format!(
            "{CONFIG_SYNC} could not be restored on {} of {cluster}: set it back by hand (GET /updateConfig?{CONFIG_SYNC}=<value>)",
            failed.join("; ")
        )
    }
}
