//! Owns the executor: runs each table's remaining steps, tables in parallel up to
//! `parallelism`, cut-overs (block → drain → switch) limited per source cluster, and turns the
//! tables' outcomes into one result.
//!
//! Steps live in `table`; waits in `gate`; the journal, lock and events in their own modules.

pub mod block;
mod catch_up;
mod checkpoint;
mod drain;
mod duplicate;
pub mod entry;
pub mod events;
pub mod evidence;
pub mod exact;
pub mod failpoint;
mod finish;
pub mod gate;
mod guard;
pub mod guardian;
pub mod journal;
pub mod lock;
mod preflight;
pub mod progress;
pub mod speedup;
mod switch;
pub mod table;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::exit::Exit;
use crate::pegasus::meta::MetaClient;
use crate::pegasus::replica::ReplicaClient;
use crate::plan::{Action, Plan};
use crate::routing::zk::Zk;
use crate::spec::Spec;

/// How apply runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tables worked on at once.
    pub parallelism: usize,
    /// Cut-overs (block → switch) at once per source cluster.
    pub max_concurrent_cutovers: usize,
    /// Longest wait for a duplication to reach DS_LOG.
    pub checkpoint_timeout: Duration,
    /// Longest wait for a table's lag to fall under its threshold.
    pub catch_up_timeout: Duration,
    /// Deadline of one probe request (a blocked `timeout*` write is never answered).
    pub probe_timeout: Duration,
    /// Longest wait, after the switch, for every listed meta-proxy to serve the target.
    pub proxy_timeout: Duration,
    /// Pause between polls of a gate.
    pub poll: Duration,
    /// A terminal is attached: a manual cut-over can ask the operator to confirm.
    pub interactive: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            parallelism: 4,
            max_concurrent_cutovers: 1,
            checkpoint_timeout: Duration::from_secs(3600),
            catch_up_timeout: Duration::from_secs(3600),
            probe_timeout: crate::plan::budget::PROBE_TIMEOUT,
            proxy_timeout: Duration::from_secs(10),
            poll: crate::plan::budget::POLL_PAUSE,
            interactive: false,
        }
    }
}

impl Options {
    /// Pause between polls of the waits before a block (checkpoint, catch-up), which may last
    /// an hour and ask the meta and every primary each time: ten gate polls, at most 1 s.
    #[must_use]
    pub fn idle_poll(&self) -> Duration {
        (self.poll * 10).min(Duration::from_secs(1))
    }
}

/// How one table ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every step done; `write_block_ms` is how long writes were blocked, if they were.
    Done { write_block_ms: Option<u64> },
    /// The cut-over was abandoned before the switch and the write block lifted (the reason
    /// says what was seen of it); a later apply resumes.
    Aborted { reason: String },
    /// Stopped (interrupted, or a wait ran out) with nothing blocked; a later apply resumes.
    Stopped { reason: String },
    /// Something failed with nothing blocked by this run.
    Failed { reason: String },
    /// Stopped where an operator must act.
    NeedsOperator { reason: String },
}

impl Outcome {
    /// The exit status this outcome asks for (3 only when a block was lifted).
    #[must_use]
    pub fn exit(&self) -> Exit {
        match self {
            Self::Done { .. } => Exit::Success,
            Self::Stopped { .. } | Self::Failed { .. } => Exit::Error,
            Self::Aborted { .. } => Exit::Lifted,
            Self::NeedsOperator { .. } => Exit::NeedsOperator,
        }
    }

    /// The event that reports this outcome.
    #[must_use]
    pub fn event_kind(&self) -> events::EventKind {
        match self {
            Self::Done { .. } => events::EventKind::Done,
            Self::Aborted { .. } => events::EventKind::Aborted,
            Self::Stopped { .. } | Self::Failed { .. } => events::EventKind::Failed,
            Self::NeedsOperator { .. } => events::EventKind::Operator,
        }
    }

    /// Why it ended so (empty when done).
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Self::Done { .. } => "",
            Self::Aborted { reason }
            | Self::Stopped { reason }
            | Self::Failed { reason }
            | Self::NeedsOperator { reason } => reason,
        }
    }
}

/// The exit status of a whole run.
#[must_use]
pub fn exit(outcomes: &[(String, Outcome)]) -> Exit {
    Exit::worst(outcomes.iter().map(|(_, o)| o.exit()))
}

/// Everything the steps share.
pub struct Ctx {
    pub spec: Spec,
    pub metas: BTreeMap<String, MetaClient>,
    pub replica: ReplicaClient,
    /// Calls whose deadline is `probe_timeout` (probe requests, meta-proxy questions).
    pub probes: ReplicaClient,
    pub proxy_pool: crate::pegasus::connection::Pool,
    /// Each source cluster's config-sync facts and speed-up.
    pub sources: BTreeMap<String, Arc<speedup::Source>>,
    pub zk: Option<Zk>,
    pub journal: journal::Journal,
    pub events: events::Events,
    pub opts: Options,
    cutovers: BTreeMap<String, Arc<Semaphore>>,
    /// Turns true at the first SIGINT/SIGTERM/SIGHUP: start nothing new, restore blocked
    /// writes.
    pub stopping: watch::Receiver<bool>,
    /// The ZooKeeper lock node this run holds, per table: the switch's fence.
    pub fences: BTreeMap<String, lock::Fence>,
    /// Where local state lives (`.migrator`): block records and guardian logs without
    /// meta-proxy.
    pub state_dir: std::path::PathBuf,
    /// Held while a manual cut-over asks the operator, so questions never interleave.
    pub prompt: tokio::sync::Mutex<()>,
    /// The operator's answers, line by line, once a prompt first needs them.
    pub stdin: tokio::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    /// Each cluster's read limit, shared by the tables this run verifies at once.
    pub pacers: crate::verify::pace::Registry,
}

impl Ctx {
    /// Bundles the shared parts; one cut-over semaphore per source cluster.
    #[must_use]
    pub fn new(
        spec: Spec,
        metas: BTreeMap<String, MetaClient>,
        zk: Option<Zk>,
        journal: journal::Journal,
        events: events::Events,
        opts: Options,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        let cutovers = spec
            .migrations
            .iter()
            .map(|m| {
                (
                    m.from.clone(),
                    Arc::new(Semaphore::new(opts.max_concurrent_cutovers.max(1))),
                )
            })
            .collect();
        Self {
            spec,
            metas,
            replica: ReplicaClient::new(Duration::from_secs(10)),
            probes: ReplicaClient::new(opts.probe_timeout),
            proxy_pool: crate::pegasus::connection::Pool::new(opts.probe_timeout),
            sources: BTreeMap::new(),
            zk,
            journal,
            events,
            opts,
            cutovers,
            stopping,
            fences: BTreeMap::new(),
            state_dir: std::path::PathBuf::from(".migrator"),
            prompt: tokio::sync::Mutex::new(()),
            stdin: tokio::sync::Mutex::new(None),
            pacers: crate::verify::pace::Registry::default(),
        }
    }

    /// Records the lock nodes this run holds (the switch checks them) and the state dir.
    #[must_use]
    pub fn with_fences(mut self, locks: &lock::Locks, state_dir: std::path::PathBuf) -> Self {
        self.fences = self
            .spec
            .migrations
            .iter()
            .filter_map(|m| Some((m.table.clone(), locks.fence(&m.table)?.clone())))
            .collect();
        self.state_dir = state_dir;
        self
    }

    /// Gives up `table`'s ZooKeeper lock once its run is over, so another run can take the
    /// table on while this one still works on others. Its switch, if one was sent, is decided
    /// by then: this session's delete is applied after it, and a switch arriving later fails
    /// its fence.
    pub async fn release_lock(&self, table: &str) {
        if let (Some(zk), Some(fence)) = (&self.zk, self.fences.get(table)) {
            let _ = zk.delete(&fence.lock, Some(0)).await;
        }
    }

    /// Where the block record of `m` lives: migrator's ZooKeeper root with meta-proxy, the
    /// state dir without.
    #[must_use]
    pub fn record_store(&self, m: &crate::spec::Migration) -> crate::cutover::record::RecordStore {
        crate::cutover::record::RecordStore::of(&self.spec, self.zk.as_ref(), &self.state_dir, m)
    }

    /// Reads each source cluster's config-sync facts. A speed-up an earlier run left in place
    /// is taken over on a cluster in `cutting_over` (this run restores it at its end), and
    /// restored now on the others.
    pub async fn load_sources(mut self, cutting_over: &[String]) -> Self {
        for m in &self.spec.migrations {
            if self.sources.contains_key(&m.from) {
                continue;
            }
            let speed_up = self
                .spec
                .clusters
                .get(&m.from)
                .and_then(|c| c.config_sync_during_cutover);
            let meta = &self.metas[&m.from];
            let mut src = speedup::Source::load(&m.from, meta, &self.replica, speed_up).await;
            if let Some(left) = self.journal.unrestored_speed_up(&m.from) {
                if cutting_over.contains(&m.from) {
                    // The servers show the lowered value: the journal has what it replaced.
                    src.adopt(&left);
                } else {
                    let said =
                        speedup::restore_values(&m.from, &left, &self.replica, &self.journal).await;
                    self.events.cluster(&m.from, said);
                }
            }
            self.sources.insert(m.from.clone(), Arc::new(src));
        }
        self
    }
}

async fn close_record(ctx: &Ctx, table: &str) {
    if let Some(m) = ctx.spec.migrations.iter().find(|m| m.table == table) {
        crate::cutover::record::close_finished(&ctx.record_store(m)).await;
    }
}

/// Runs every table of `plan` that has work; blocked tables are reported, not run.
pub async fn execute(ctx: Arc<Ctx>, plan: &Plan) -> Vec<(String, Outcome)> {
    let limit = Arc::new(Semaphore::new(ctx.opts.parallelism.max(1)));
    let mut runs = JoinSet::new();
    let mut outcomes = Vec::new();
    for tp in plan.tables.iter().cloned() {
        match tp.action {
            Action::Done => {
                close_record(&ctx, &tp.table).await;
                continue;
            }
            Action::Blocked => {
                let reason = tp
                    .blockers
                    .iter()
                    .map(|b| format!("{} ({})", b.reason, b.fix))
                    .collect::<Vec<_>>()
                    .join("; ");
                outcomes.push((tp.table.clone(), Outcome::NeedsOperator { reason }));
                continue;
            }
            Action::Migrate | Action::Resume => {}
        }
        let (ctx, limit) = (ctx.clone(), limit.clone());
        let cutover = ctx.cutovers[&tp.from].clone();
        runs.spawn(crate::clock::inherit(async move {
            let _slot = limit.acquire_owned().await;
            let outcome = table::run(&ctx, &tp, cutover).await;
            ctx.release_lock(&tp.table).await;
            (tp.table, outcome)
        }));
    }
    while let Some(done) = runs.join_next().await {
        match done {
            Ok(pair) => outcomes.push(pair),
            Err(e) => outcomes.push((
                "?".into(),
                Outcome::Failed {
                    reason: format!("a table run crashed: {e}"),
                },
            )),
        }
    }
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    outcomes
}
