//! Owns the duplication engine of a source cluster: DS_PREPARE → (create the follower table on
//! the target with `RPC_CM_CREATE_APP`) → DS_APP → (copy the checkpoint, wait until the follower
//! is healthy) → DS_LOG → ship logged mutations with `RPC_RRDB_RRDB_DUPLICATE` to the target's
//! primaries at the configured rate and batch size, advancing confirmed decrees.
//!
//! Each tick decides under the state lock what to do and runs the network steps as tasks
//! outside it; a step that fails is simply tried again on a later tick, as the server does.
//! When a tick leaves nothing to do — no status step, nothing in flight or loadable, no
//! shipping rate still decaying — the engine sleeps until a write, a duplication change, a
//! new duplicator or primary, or a restart wakes it, and goes on at the next tick of its timer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

use tokio::sync::watch;

use super::state::{
    Cluster, Dup, Record, DUPLICATE_LOG_BATCH_BYTES, DUPLICATE_WRITE, EMPTY_WRITE,
    FOLLOWER_STATUS_ENV, MASTER_APP_NAME_ENV, MASTER_CLUSTER_ENV, MASTER_METAS_ENV,
};
use crate::pegasus::base::{Blob, Gpid, TaskCode};
use crate::pegasus::key;
use crate::pegasus::messages::apps::CreateAppOptions;
use crate::pegasus::messages::data::{
    Duplicate, DuplicateEntry, DuplicateRequest, Put, UpdateRequest,
};
use crate::pegasus::messages::duplication::DuplicationStatus::{self, DS_APP, DS_PREPARE};
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::pegasus::replica::ReplicaClient;
use crate::pegasus::thrift::to_bytes;

use super::ticks::{self, Grid, Stop};

/// Runs the engine of `cluster` until `shutdown` turns true.
pub async fn run(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    let engine = Arc::new(Engine {
        replica: ReplicaClient::new(cluster.config.rpc_timeout),
        metas: std::sync::Mutex::default(),
        cluster,
    });
    let grid = Grid::new(Instant::now(), engine.cluster.config.dup_tick);
    let mut last_shipped: BTreeMap<(i32, i32), Vec<u64>> = BTreeMap::new();
    let (mut last, mut next) = (None, Some(0));
    loop {
        let stop = next.map(|k| grid.stop(k, Instant::now()));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = engine.cluster.wakes.shipping().notified(), if next.is_none() => {
                // Most changes come from other loops' ticks at this instant (an empty write,
                // a new duplicator), which ran first: their timers were armed earlier.
                next = Some(grid.first_from(last, Instant::now()));
            }
            () = ticks::until(stop.map(Stop::instant)) => {
                if stop.is_some_and(Stop::acts) {
                    let (steps, idle) = engine.plan_tick(&mut last_shipped);
                    for step in steps {
                        tokio::spawn(engine.clone().run_step(step));
                    }
                    last = next;
                    next = (!idle).then(|| grid.first_from(last, Instant::now()));
                }
            }
        }
    }
}

struct Engine {
    cluster: Arc<Cluster>,
    replica: ReplicaClient,
    metas: std::sync::Mutex<BTreeMap<String, MetaClient>>,
}

/// Where a step applies.
#[derive(Debug, Clone)]
struct DupRef {
    app_id: i32,
    dupid: i32,
    remote: String,
    remote_app: String,
}

enum Step {
    CreateFollower(DupRef, CreateAppOptions),
    CopyCheckpoint(DupRef, Vec<BTreeMap<Vec<u8>, Record>>),
    Ship(DupRef, usize, Vec<DuplicateEntry>, i64, u64),
}

impl Engine {
    fn meta(&self, remote: &str) -> Option<MetaClient> {
        let peer = self.cluster.directory.get(remote)?;
        let mut metas = self.metas.lock().expect("meta cache lock");
        let opts = MetaOptions {
            call_timeout: self.cluster.config.rpc_timeout,
            ..MetaOptions::default()
        };
        Some(
            metas
                .entry(remote.to_string())
                .or_insert_with(|| MetaClient::new(peer.metas, opts))
                .clone(),
        )
    }

    /// Decides this tick's steps and refreshes the shipping rates; also says whether the next
    /// tick would find nothing to do (so the engine may sleep until something changes).
    fn plan_tick(&self, last_shipped: &mut BTreeMap<(i32, i32), Vec<u64>>) -> (Vec<Step>, bool) {
        let c = &self.cluster;
        let tick_secs = c.config.dup_tick.as_secs_f64();
        let budget =
            ((f64::from(c.config.ship_rate) * tick_secs) as usize).clamp(1, c.config.ship_batch);
        let rule = LoadRule::of(c.config.version);
        let mut steps = Vec::new();
        let mut idle = true;
        let mut state = c.lock();
        let alive: Vec<bool> = state.nodes.iter().map(|n| n.alive).collect();
        for app in state.apps.values_mut().filter(|a| !a.dups.is_empty()) {
            let (app_id, envs, max_replicas, name) = (
                app.id,
                app.envs.clone(),
                app.max_replica_count,
                app.name.clone(),
            );
            let partitions = &app.partitions;
            for dup in app.dups.values_mut() {
                update_rates(dup, last_shipped, app_id, tick_secs);
                let r = DupRef {
                    app_id,
                    dupid: dup.dupid,
                    remote: dup.remote.clone(),
                    remote_app: dup.remote_app_name.clone(),
                };
                match dup.status {
                    DS_PREPARE if dup.create_due && !dup.busy => {
                        dup.busy = true;
                        dup.create_due = false;
                        let replicas = dup.remote_replica_count.clamp(1, max_replicas.max(1));
                        let opts = follower_options(c, &envs, partitions.len(), replicas, &name);
                        steps.push(Step::CreateFollower(r.clone(), opts));
                    }
                    DS_APP
                        if !dup.busy
                            && !dup.follower_ready
                            && !c.faults.stuck_in_app.load(Ordering::Relaxed) =>
                    {
                        dup.busy = true;
                        steps.push(Step::CopyCheckpoint(
                            r.clone(),
                            partitions.iter().map(|p| p.data.clone()).collect(),
                        ));
                    }
                    _ => {}
                }
                // Each primary ships once its own duplicator learned DS_LOG, whatever the
                // meta says meanwhile (a pause or a removal reaches it at its next sync).
                let ctx = ShipCtx {
                    budget,
                    own_id: c.cluster_id,
                    rule,
                    alive: &alive,
                };
                steps.extend(ship_steps(dup, partitions, &r, &ctx));
                idle &= is_idle(dup, partitions, rule, &alive);
            }
        }
        (steps, idle)
    }

    async fn run_step(self: Arc<Self>, step: Step) {
        match step {
            Step::CreateFollower(r, opts) => {
                let ok = self.create_follower(&r, opts).await;
                self.finish_status_step(&r, DS_PREPARE, ok);
            }
            Step::CopyCheckpoint(r, data) => {
                let ok = self.copy_checkpoint(&r, data).await;
                self.finish_status_step(&r, DS_APP, ok);
            }
            Step::Ship(r, pidx, entries, last_decree, hash) => {
                let n = entries.len() as u64;
                let ok = self.ship(&r, entries, hash).await;
                self.finish_ship(&r, pidx, ok.then_some((last_decree, n)));
            }
        }
    }

    async fn create_follower(&self, r: &DupRef, opts: CreateAppOptions) -> bool {
        let Some(meta) = self.meta(&r.remote) else {
            return false;
        };
        match meta.create_app(&r.remote_app, opts).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(table = r.remote_app, "created follower app failed: {e}");
                false
            }
        }
    }

    async fn copy_checkpoint(&self, r: &DupRef, data: Vec<BTreeMap<Vec<u8>, Record>>) -> bool {
        let Some(meta) = self.meta(&r.remote) else {
            return false;
        };
        let Some(target) = self.remote_table(&meta, r).await else {
            return false;
        };
        if target.primaries.len() != data.len() {
            tracing::warn!(
                table = r.remote_app,
                "follower partition count differs from the source"
            );
            return false;
        }
        for records in &data {
            for chunk in records
                .iter()
                .collect::<Vec<_>>()
                .chunks(self.cluster.config.ship_batch)
            {
                let entries: Vec<_> = chunk
                    .iter()
                    .map(|(k, rec)| self.checkpoint_entry(k, rec))
                    .collect();
                let hash =
                    key::key_hash(chunk.last().map(|(k, _)| k.as_slice()).unwrap_or_default());
                if !self.send(&target, entries, hash).await {
                    return false;
                }
            }
        }
        if self.cluster.config.version.is_2_6() {
            return meta
                .set_app_envs(&r.remote_app, &[(FOLLOWER_STATUS_ENV, "created")])
                .await
                .is_ok();
        }
        true
    }

    fn checkpoint_entry(&self, key: &[u8], rec: &Record) -> DuplicateEntry {
        let put = UpdateRequest {
            key: Blob::new(key),
            value: Blob::new(rec.value.clone()),
            expire_ts_seconds: 0,
        };
        let mut raw = vec![0x0c, 0, 1];
        raw.extend(to_bytes(&put));
        raw.push(0);
        DuplicateEntry {
            timestamp: Some((rec.timetag >> 8) as i64),
            task_code: Some(TaskCode(
                <Put as crate::pegasus::messages::Rpc>::NAME.into(),
            )),
            raw_message: Some(Blob(raw)),
            cluster_id: Some(self.cluster.cluster_id),
            verify_timetag: None,
        }
    }

    async fn ship(&self, r: &DupRef, entries: Vec<DuplicateEntry>, hash: u64) -> bool {
        let Some(meta) = self.meta(&r.remote) else {
            return false;
        };
        let Some(target) = self.remote_table(&meta, r).await else {
            return false;
        };
        self.send(&target, entries, hash).await
    }

    async fn send(&self, target: &RemoteTable, entries: Vec<DuplicateEntry>, hash: u64) -> bool {
        let count = i32::try_from(target.primaries.len()).unwrap_or(1);
        let pidx = key::partition_index(hash, count);
        let addr = target.primaries[usize::try_from(pidx).unwrap_or(0)];
        let req = DuplicateRequest {
            entries: Some(entries),
        };
        match self
            .replica
            .call::<Duplicate>(addr, Gpid::new(target.app_id, pidx), hash, &req)
            .await
        {
            Ok(resp) if resp.error.unwrap_or(0) == 0 => true,
            Ok(resp) => {
                tracing::debug!("duplicate refused: {:?} {:?}", resp.error, resp.error_hint);
                false
            }
            Err(e) => {
                tracing::debug!("duplicate failed: {e}");
                false
            }
        }
    }

    async fn remote_table(&self, meta: &MetaClient, r: &DupRef) -> Option<RemoteTable> {
        let cfg = meta.query_config(&r.remote_app).await.ok()?;
        let primaries: Option<Vec<SocketAddr>> = cfg
            .partitions
            .iter()
            .map(|p| p.primary.to_socket())
            .collect();
        let primaries = primaries?;
        (usize::try_from(cfg.partition_count).ok() == Some(primaries.len())
            && !primaries.is_empty())
        .then_some(RemoteTable {
            app_id: cfg.app_id,
            primaries,
        })
    }

    /// A status step in `from` ended (`ok`: it did its work): the follower's create answered
    /// moves to DS_APP; a copied checkpoint makes the follower healthy, and the meta moves to
    /// DS_LOG at the next duplication sync that finds it so (`dupsync`).
    fn finish_status_step(&self, r: &DupRef, from: DuplicationStatus, ok: bool) {
        let persist = self.cluster.config.meta_persist_delay;
        let mut state = self.cluster.lock();
        let Some(dup) = dup_mut(&mut state, r) else {
            return;
        };
        dup.busy = false;
        if ok && dup.status == from {
            match from {
                // The follower is healthy: the next duplication sync in DS_APP moves on.
                DS_APP => dup.follower_ready = true,
                _ => dup.alter(DS_APP, persist),
            }
        }
    }

    fn finish_ship(&self, r: &DupRef, pidx: usize, done: Option<(i64, u64)>) {
        let mut state = self.cluster.lock();
        let Some(app) = state.apps.get_mut(&r.app_id) else {
            return;
        };
        if let Some(part) = app.dups.get_mut(&r.dupid).map(|d| &mut d.parts[pidx]) {
            part.shipping = false;
            if let Some((decree, n)) = done {
                part.last_decree = part.last_decree.max(decree);
                part.shipped += n;
            }
        }
        let floor = app.log_floor(pidx).unwrap_or(i64::MAX);
        let log = &mut app.partitions[pidx].log;
        while log.front().is_some_and(|m| m.decree <= floor) {
            log.pop_front();
        }
    }
}

struct RemoteTable {
    app_id: i32,
    primaries: Vec<SocketAddr>,
}

fn dup_mut<'a>(state: &'a mut super::state::State, r: &DupRef) -> Option<&'a mut Dup> {
    state.apps.get_mut(&r.app_id)?.dups.get_mut(&r.dupid)
}

/// What the source meta sends to create the follower: source envs plus the master markers.
fn follower_options(
    c: &Cluster,
    envs: &BTreeMap<String, String>,
    partitions: usize,
    replicas: i32,
    source_app: &str,
) -> CreateAppOptions {
    let mut envs = envs.clone();
    envs.insert(MASTER_CLUSTER_ENV.into(), c.name.clone());
    envs.insert(MASTER_METAS_ENV.into(), c.meta_list());
    if c.config.version.is_2_6() {
        envs.insert(MASTER_APP_NAME_ENV.into(), source_app.to_string());
        envs.insert(FOLLOWER_STATUS_ENV.into(), "creating".into());
    }
    CreateAppOptions {
        partition_count: i32::try_from(partitions).unwrap_or(i32::MAX),
        replica_count: replicas,
        success_if_exist: false,
        app_type: "pegasus".into(),
        is_stateful: true,
        envs,
        atomic_idempotent: None,
    }
}

/// Which logged mutations a primary's duplicator may load.
#[derive(Debug, Clone, Copy)]
enum LoadRule {
    /// v2.5.0 `load_mutation::run`: up to `max_commit_on_disk`, the newest logged mutation's
    /// committed decree, so mutation N waits until N+1 is logged.
    MaxCommitOnDisk,
    /// master (a774afea1): up to the last applied decree.
    LastApplied,
}

impl LoadRule {
    fn of(version: super::Version) -> Self {
        if version.is_2_6() {
            Self::LastApplied
        } else {
            Self::MaxCommitOnDisk
        }
    }

    /// The highest decree loadable in a partition whose last committed decree is `lcd`
    /// (each mutation carries its predecessor as its committed decree).
    fn loadable(self, lcd: i64) -> i64 {
        match self {
            Self::MaxCommitOnDisk => (lcd - 1).max(0),
            Self::LastApplied => lcd,
        }
    }
}

struct ShipCtx<'a> {
    budget: usize,
    own_id: i8,
    rule: LoadRule,
    alive: &'a [bool],
}

fn update_rates(
    dup: &mut Dup,
    last_shipped: &mut BTreeMap<(i32, i32), Vec<u64>>,
    app_id: i32,
    tick_secs: f64,
) {
    let prev = last_shipped
        .entry((app_id, dup.dupid))
        .or_insert_with(|| dup.parts.iter().map(|p| p.shipped).collect());
    for (part, prev) in dup.parts.iter_mut().zip(prev.iter_mut()) {
        let delta = part.shipped.saturating_sub(*prev) as f64;
        part.ship_rate = 0.5 * part.ship_rate + 0.5 * delta / tick_secs;
        *prev = part.shipped;
    }
}

/// Whether the primary of `p` runs a duplicator for `part` with nothing in flight and a
/// mutation it may load.
fn has_loadable(
    part: &super::state::DupPartition,
    p: &super::state::Partition,
    rule: LoadRule,
    alive: &[bool],
) -> bool {
    part.ships()
        && !part.shipping
        && alive.get(p.primary).copied().unwrap_or(false)
        && part.last_decree < rule.loadable(p.last_committed)
}

/// Whether a tick would change nothing in `dup`: no status step to start or in flight, no
/// batch in flight or to load, and every shipping rate down to zero (each tick halves it).
fn is_idle(
    dup: &Dup,
    partitions: &[super::state::Partition],
    rule: LoadRule,
    alive: &[bool],
) -> bool {
    let step_to_start = dup.create_due || (dup.status == DS_APP && !dup.follower_ready);
    if dup.busy || step_to_start {
        return false;
    }
    dup.parts.iter().zip(partitions).all(|(part, p)| {
        !part.shipping && part.ship_rate == 0.0 && !has_loadable(part, p, rule, alive)
    })
}

/// The mutations of a loaded batch a duplicator sends (`pegasus_mutation_duplicator::
/// duplicate`): empty writes are never loaded, DUPLICATE mutations (shipped here by another
/// cluster) are skipped, and what was gathered goes out once it reaches
/// `duplicate_log_batch_bytes` or at the batch's last mutation — but a batch whose last
/// mutation is a DUPLICATE never reaches that check, so what was gathered since the last send
/// is dropped while the duplicator counts the whole batch shipped (apache/incubator-pegasus
/// #2284, v2.5.0 and master; master also skips BULK_LOAD, which the simulator never logs).
fn sent_of<'a>(batch: &[&'a super::state::Mutation]) -> Vec<&'a super::state::Mutation> {
    let loaded: Vec<&super::state::Mutation> = batch
        .iter()
        .copied()
        .filter(|m| m.code != EMPTY_WRITE)
        .collect();
    let mut sent = Vec::new();
    let (mut gathered, mut bytes) = (Vec::new(), 0);
    for (i, m) in loaded.iter().enumerate() {
        if m.code == DUPLICATE_WRITE {
            continue;
        }
        gathered.push(*m);
        bytes += m.raw.len();
        if i + 1 == loaded.len() || bytes >= DUPLICATE_LOG_BATCH_BYTES {
            sent.append(&mut gathered);
            bytes = 0;
        }
    }
    sent
}

/// Shipping steps for partitions of `dup` whose primary runs a duplicator with loadable
/// mutations and nothing in flight. Empty writes are never shipped, but a batch of them
/// still advances `last_decree`.
fn ship_steps(
    dup: &mut Dup,
    partitions: &[super::state::Partition],
    r: &DupRef,
    ctx: &ShipCtx<'_>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for (pidx, p) in partitions.iter().enumerate() {
        let part = &mut dup.parts[pidx];
        if !has_loadable(part, p, ctx.rule, ctx.alive) {
            continue;
        }
        let loadable = ctx.rule.loadable(p.last_committed);
        let from = part.last_decree;
        let batch: Vec<_> = p
            .log
            .iter()
            .filter(|m| m.decree > from && m.decree <= loadable)
            .take(ctx.budget)
            .collect();
        let Some(last) = batch.last() else {
            // Nothing logged past it (writes before the duplication started).
            part.last_decree = loadable;
            continue;
        };
        let last_decree = last.decree;
        let sent = sent_of(&batch);
        // A batch is routed by its last sent write's hash.
        let hash = sent.last().map(|m| m.hash);
        let entries: Vec<_> = sent
            .iter()
            .map(|m| DuplicateEntry {
                timestamp: Some(m.timestamp_us),
                task_code: Some(TaskCode(m.code.to_string())),
                raw_message: Some(Blob(m.raw.clone())),
                cluster_id: Some(ctx.own_id),
                verify_timetag: None,
            })
            .collect();
        let Some(hash) = hash else {
            part.last_decree = last_decree;
            continue;
        };
        part.shipping = true;
        steps.push(Step::Ship(r.clone(), pidx, entries, last_decree, hash));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pegasus::messages::duplication::DuplicationFailMode;
    use crate::pegasus::messages::duplication::DuplicationStatus::DS_LOG;
    use crate::sim::config::{SimConfig, Version};
    use crate::sim::state::DupPartition;
    use crate::sim::storage;
    use crate::sim::test_support::{cluster, create, Started};

    /// A duplication of `app_id` in DS_LOG whose primaries run their duplicators, from decree 0.
    fn logging(c: &Cluster, app_id: i32) {
        let mut state = c.lock();
        let app = state.apps.get_mut(&app_id).expect("table");
        let parts = app
            .partitions
            .iter()
            .map(|_| DupPartition {
                duplicator: true,
                replica_status: DS_LOG,
                replica_confirmed: 0,
                ..DupPartition::new(0)
            })
            .collect();
        let dup = Dup {
            dupid: 1,
            remote: "b".into(),
            status: DS_LOG,
            prev_status: DS_LOG,
            fail_mode: DuplicationFailMode::FAIL_SLOW,
            create_ts_ms: 0,
            remote_app_name: app.name.clone(),
            remote_replica_count: 3,
            parts,
            status_since: Instant::now(),
            busy: false,
            create_due: false,
            follower_ready: true,
            altering_until: None,
        };
        app.dups.insert(1, dup);
        drop(state);
        c.wakes.duplications_changed();
    }

    fn last_decree(c: &Cluster, app_id: i32) -> i64 {
        c.lock().apps[&app_id].dups[&1].parts[0].last_decree
    }

    fn mutation(decree: i64, code: &'static str, bytes: usize) -> super::super::state::Mutation {
        super::super::state::Mutation {
            decree,
            timestamp_us: 0,
            code,
            raw: vec![0; bytes],
            hash: 0,
        }
    }

    #[test]
    fn a_batch_that_ends_with_a_duplicate_drops_what_it_gathered_since_its_last_send() {
        let put = "RPC_RRDB_RRDB_PUT";
        let sent = |muts: &[super::super::state::Mutation]| {
            let batch: Vec<_> = muts.iter().collect();
            sent_of(&batch).iter().map(|m| m.decree).collect::<Vec<_>>()
        };
        let small = [
            mutation(1, put, 10),
            mutation(2, put, 10),
            mutation(3, EMPTY_WRITE, 0),
        ];
        assert_eq!(sent(&small), [1, 2], "the last loaded one sends the batch");
        let lost = [
            mutation(1, put, 10),
            mutation(2, DUPLICATE_WRITE, 10),
            mutation(3, put, 10),
            mutation(4, DUPLICATE_WRITE, 10),
        ];
        assert_eq!(sent(&lost), Vec::<i64>::new(), "#2284: nothing goes out");
        let big = [
            mutation(1, put, DUPLICATE_LOG_BATCH_BYTES),
            mutation(2, put, 10),
            mutation(3, DUPLICATE_WRITE, 10),
        ];
        assert_eq!(sent(&big), [1], "sent at 4096 bytes; the rest is dropped");
    }

    #[test]
    fn a_duplication_is_idle_when_nothing_is_loadable_in_flight_or_decaying() {
        let c = cluster(SimConfig::fast(Version::V2_5));
        let id = create(&c, "t", 1);
        logging(&c, id);
        let rule = LoadRule::of(Version::V2_5);
        let alive = [true; 3];
        let idle = |c: &Cluster| {
            let state = c.lock();
            let app = &state.apps[&id];
            is_idle(&app.dups[&1], &app.partitions, rule, &alive)
        };
        assert!(idle(&c));
        let write = |c: &Cluster| {
            storage::take_decree(c.lock().apps.get_mut(&id).expect("table"), 0);
        };
        write(&c);
        assert!(idle(&c), "2.5 loads a mutation once the next one is logged");
        write(&c);
        assert!(!idle(&c), "decree 1 is loadable");
        c.lock()
            .apps
            .get_mut(&id)
            .expect("table")
            .dups
            .get_mut(&1)
            .expect("dup")
            .parts[0]
            .last_decree = 1;
        assert!(idle(&c));
        let mut state = c.lock();
        let part = &mut state
            .apps
            .get_mut(&id)
            .expect("table")
            .dups
            .get_mut(&1)
            .expect("dup")
            .parts[0];
        part.ship_rate = 1e-300;
        drop(state);
        assert!(!idle(&c), "a rate still decays");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_engine_sleeps_until_a_write_and_acts_at_its_next_tick() {
        // Ticks every 20 ms from the start.
        let c = cluster(SimConfig::fast(Version::V2_5));
        let s = Started::new(|stop| run(c.clone(), stop));
        let at = |ms| s.at(ms);
        at(7).await;
        let id = create(&c, "t", 1);
        logging(&c, id);
        at(500).await;
        let woke = s.woke();
        at(1_003).await;
        assert_eq!(s.woke(), woke, "idle: no wake-up");
        // Two empty-record writes: on 2.5 the first becomes loadable, and a batch of only
        // empty records advances the duplicator without a network step.
        for _ in 0..2 {
            storage::take_decree(c.lock().apps.get_mut(&id).expect("table"), 0);
        }
        c.wakes.logged();
        at(1_019).await;
        assert_eq!(last_decree(&c, id), 0, "not before the next tick");
        at(1_021).await;
        assert_eq!(last_decree(&c, id), 1, "at the tick of 1020 ms");
        at(3_000).await;
        assert!(s.woke() < woke + 6, "asleep again");
    }
}
