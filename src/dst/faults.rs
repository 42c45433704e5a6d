//! Owns what goes wrong in a run: the seeded RPC and ZooKeeper faults, kills of a process at
//! any of its ZooKeeper calls, trouble on the source's servers when the deny env is set, the
//! timed outside actions (server faults, routing set back by hand, another operator's abort)
//! and healing them all for the liveness phase.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::procs::Procs;
use super::rng::Rng;
use super::trace::Trace;
use crate::clock::Host;
use crate::net::RequestFault;
use crate::pegasus::messages::apps::UpdateAppEnv;
use crate::pegasus::messages::command::Command;
use crate::pegasus::messages::Rpc;
use crate::plan::budget::{ms, restore_reserve, PROBE_TIMEOUT, SWITCH_RESERVE};
use crate::probe::flags::CONFIG_SYNC;
use crate::sim::world::World;
use crate::sim::zk_model::{Ensemble, ZkFault};
use crate::sim::Cluster;

/// Shared state of the RPC faults.
pub struct Chaos {
    pub on: bool,
    pub rng: Rng,
    pub rpc_fault: f64,
    /// Chance that setting a deny env troubles one source server (it syncs late and stalls).
    pub trouble: f64,
    /// The source, once built: its meta addresses and state.
    pub source: Option<(Vec<SocketAddr>, Arc<Cluster>)>,
    /// What the late config syncs injected so far can add, in total.
    pub sync_lateness: Duration,
    pub trace: Trace,
    /// How each stall holds its writes (`StallKind`), on a later stream of its own.
    pub stall_kinds: Rng,
}

/// How a stalled source server holds the writes it admitted: a slow disk logs them late, so
/// no reply shows them (`sim.fault stall`); slow secondaries commit them late, and its
/// prepared decree counts them meanwhile (`sim.fault lag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallKind {
    SlowDisk,
    SlowSecondaries,
}

impl StallKind {
    /// Either, evenly.
    pub fn draw(rng: &mut Rng) -> Self {
        if rng.chance(0.5) {
            Self::SlowDisk
        } else {
            Self::SlowSecondaries
        }
    }

    /// The two faults that make `node` hold its writes `ms` this way (and ends the other way).
    fn faults(self, node: usize, ms: u64) -> [(&'static str, Vec<String>); 2] {
        let (disk, secondaries) = match self {
            Self::SlowDisk => (ms, 0),
            Self::SlowSecondaries => (0, ms),
        };
        [
            ("stall", vec![node.to_string(), disk.to_string()]),
            ("lag", vec![node.to_string(), secondaries.to_string()]),
        ]
    }
}

/// One cause of a late config sync on a source server, as upstream has them
/// (`src/sim/synctrouble.rs`), with its `sim.fault`.
#[derive(Debug, Clone)]
pub enum LateSync {
    /// The server's next sync RPC is answered this many ms late; from the RPC timeout on it
    /// is lost.
    Slow(u64),
    /// The meta answers the server's syncs `ERR_BUSY` for this many ms.
    Busy(u64),
    /// The meta's replies carry one partition at an older ballot for this many ms.
    Stale(String, usize, u64),
    /// The server is cut off from the meta for this many ms.
    Disconnect(u64),
}

impl LateSync {
    /// Draws a cause; a stale ballot concerns `table`'s partition 0 or 1.
    fn draw(rng: &mut Rng, table: &str) -> Self {
        match rng.range(0, 3) {
            0 => Self::Slow(rng.range(200, 8000)),
            1 => Self::Busy(rng.range(200, 6000)),
            2 => Self::Stale(
                table.to_string(),
                usize::from(rng.chance(0.5)),
                rng.range(200, 6000),
            ),
            _ => Self::Disconnect(rng.range(200, 6000)),
        }
    }

    /// The fault's name and arguments for server `node`.
    fn fault(&self, node: usize) -> (&'static str, Vec<String>) {
        let node = node.to_string();
        match self {
            Self::Slow(ms) => ("sync_slow", vec![node, ms.to_string()]),
            Self::Busy(ms) => ("sync_busy", vec![node, ms.to_string()]),
            Self::Stale(table, pidx, ms) => (
                "stale_ballot",
                vec![node, table.clone(), pidx.to_string(), ms.to_string()],
            ),
            Self::Disconnect(ms) => ("disconnect", vec![node, ms.to_string()]),
        }
    }

    /// How much later than one config-sync period after a change the server may apply it
    /// because of this cause, on a cluster configured as `config`. Ticks skip while a call is
    /// pending; a call answered late carries what the meta held when asked, one that fails
    /// (at the RPC timeout) leaves the change to the next tick: at most the call's time and a
    /// period. `ERR_BUSY` is asked again every 500 ms: the window and one wait. A reply
    /// ignored for its older ballot leaves it to the first sync after the window. A server
    /// cut off syncs when it is back, and the meta re-adding it (and moving its primaries)
    /// answers the servers concerned busy for a persist.
    #[must_use]
    pub fn lateness(&self, config: &crate::sim::SimConfig) -> Duration {
        let sync = config.config_sync_interval;
        let busy_once = config.meta_persist_delay + crate::sim::envsync::BUSY_RETRY;
        match self {
            Self::Slow(ms) => Duration::from_millis(*ms).min(config.config_sync_rpc_timeout) + sync,
            Self::Busy(ms) => Duration::from_millis(*ms) + crate::sim::envsync::BUSY_RETRY,
            Self::Stale(_, _, ms) => Duration::from_millis(*ms) + sync,
            Self::Disconnect(ms) => Duration::from_millis(*ms) + busy_once * 2,
        }
    }
}

/// Runs `sim.fault NAME ARGS…` on `cluster`; what it said.
fn run_fault(cluster: &Cluster, name: &str, args: Vec<String>) -> String {
    let mut arguments = vec![name.to_string()];
    arguments.extend(args);
    let cmd = Command {
        cmd: "sim.fault".into(),
        arguments,
    };
    let said = crate::sim::faults::run_command(cluster, &cmd).unwrap_or_default();
    format!("{} → {said}", cmd.arguments.join(" "))
}

/// What each RPC a simulated server receives meets while faults are on: dropped before or
/// after the server acted, handled late, answered late. A deny env set on the source may also
/// trouble one of its servers: the block reaches it late, and the writes it admits stall.
pub fn net_policy(chaos: Rc<RefCell<Chaos>>) -> crate::net::FaultPolicy {
    Box::new(move |server: SocketAddr, rpc: &str| {
        let mut c = chaos.borrow_mut();
        if !c.on {
            return RequestFault::None;
        }
        if rpc == UpdateAppEnv::NAME {
            trouble(&mut c, server);
        }
        let p = c.rpc_fault;
        if !c.rng.chance(p) {
            return RequestFault::None;
        }
        match c.rng.range(0, 3) {
            0 => RequestFault::DropBefore,
            1 => RequestFault::DropAfter,
            2 => RequestFault::DelayMs(c.rng.range(10, 3000)),
            _ => RequestFault::DelayReplyMs(c.rng.range(10, 3000)),
        }
    })
}

/// Maybe troubles a source server as an env change reaches `server`.
fn trouble(c: &mut Chaos, server: SocketAddr) {
    let Some((metas, source)) = c.source.clone() else {
        return;
    };
    let p = c.trouble;
    if !metas.contains(&server) || !c.rng.chance(p) {
        return;
    }
    let node = usize::try_from(c.rng.range(0, source.replicas.len() as u64 - 1)).unwrap_or(0);
    let tables: Vec<String> = source
        .lock()
        .apps
        .values()
        .filter(|a| a.status == crate::pegasus::messages::apps::AppStatus::AS_AVAILABLE)
        .map(|a| a.name.clone())
        .collect();
    let Some(table) = (!tables.is_empty()).then(|| c.rng.pick(&tables).clone()) else {
        return;
    };
    let cause = LateSync::draw(&mut c.rng, &table);
    let stall = *c.rng.pick(&[0, 700, 1500, 4000]);
    let (name, args) = cause.fault(node);
    let said = run_fault(&source, name, args);
    let kind = StallKind::draw(&mut c.stall_kinds);
    for (name, args) in kind.faults(node, stall) {
        run_fault(&source, name, args);
    }
    c.sync_lateness += cause.lateness(&source.config);
    c.trace.at(
        c.trace.elapsed_ms(),
        format!(
            "trouble: source {said}; server {node} holds admitted writes {stall} ms ({kind:?})"
        ),
    );
}

/// When to kill a process at one of its ZooKeeper calls.
#[derive(Debug, Default)]
pub struct Kills {
    /// Kill the current apply at its n-th call from now.
    pub apply_at: Option<u32>,
    /// Kill a guardian at the n-th guardian call from now.
    pub guardian_at: Option<u32>,
    apply_calls: u32,
    guardian_calls: u32,
}

impl Kills {
    /// Kills the current apply run at its `n`-th ZooKeeper call from now.
    pub fn arm_apply(&mut self, n: u32) {
        (self.apply_at, self.apply_calls) = (Some(n), 0);
    }

    fn strikes(&mut self, holder: &str) -> bool {
        let (at, calls) = if holder.starts_with("apply#") {
            (&mut self.apply_at, &mut self.apply_calls)
        } else if holder.starts_with("guardian#") {
            (&mut self.guardian_at, &mut self.guardian_calls)
        } else {
            return false;
        };
        if at.is_none() {
            return false;
        }
        *calls += 1;
        if *at == Some(*calls) {
            *at = None;
            return true;
        }
        false
    }
}

/// A stretch of time in which ZooKeeper applies writes only at its end, as a leader does
/// whose transaction log waits on a long fsync (ZooKeeper warns "fsync-ing the write ahead
/// log ... took N ms"); reads are answered meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct ZkStall {
    pub from: Instant,
    pub until: Instant,
}

impl ZkStall {
    /// The delay a call `op` sent now meets.
    fn delay_ms(&self, op: &str) -> u64 {
        let now = Instant::now();
        let write = matches!(op, "create" | "delete" | "set" | "mkdir" | "multi");
        if !write || now < self.from || now >= self.until {
            return 0;
        }
        u64::try_from((self.until - now).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Faults of the ZooKeeper calls of migrator's sessions (the world's own — meta-proxy's — are
/// spared): lost before or after the server applied them, late, answered late, the session
/// expired, writes held by a `stall`; and kills of the calling process armed in `kills`.
pub fn zk_policy(
    rng: Rng,
    p: f64,
    stall: Option<ZkStall>,
    procs: Procs,
    kills: Arc<Mutex<Kills>>,
    lateness: ZkLateness,
) -> crate::sim::zk_model::ZkPolicy {
    let rng = Mutex::new(rng);
    Box::new(move |session, op, path| {
        let holder = procs.holder(session);
        let mut fault = draw_zk_fault(&rng, p, &holder, &kills);
        if holder != "world" && !fault.kill_holder {
            fault.delay_ms += stall.map_or(0, |s| s.delay_ms(op));
        }
        lateness.note(&holder, op, path, &fault);
        fault
    })
}

/// The time each faulted ZooKeeper call of a migrator process cost it, when: what a block's
/// end may be late by on account of ZooKeeper (a lift must record itself there first).
#[derive(Clone, Default)]
pub struct ZkLateness(Arc<Mutex<Vec<(u64, u64)>>>);

impl ZkLateness {
    fn note(&self, holder: &str, op: &str, path: &str, fault: &ZkFault) {
        if holder == "world" || *fault == ZkFault::default() || fault.kill_holder {
            return;
        }
        if op == "multi" && path.starts_with(super::ROOT) {
            // The switch ends the block when it commits, whatever its caller's deadline. Its
            // worst case is budgeted before give_up (R6), and the restore's reserve follows:
            // only a transaction applied later than both is lateness.
            let absorbed = SWITCH_RESERVE + restore_reserve(Duration::ZERO, PROBE_TIMEOUT);
            let over = fault.delay_ms.saturating_sub(ms(absorbed));
            if over > 0 {
                self.push(over);
            }
            return;
        }
        // A call is given up on after its deadline: the guardian's 5 s, apply's 10 s.
        let deadline: u64 = if holder.starts_with("guardian") {
            5_000
        } else {
            10_000
        };
        let cost = if fault.lose_before || fault.lose_after || fault.expire_session {
            deadline
        } else {
            (fault.delay_ms + fault.reply_delay_ms).min(deadline)
        };
        self.push(cost);
    }

    fn push(&self, cost: u64) {
        let at = crate::clock::true_now_ms();
        self.0.lock().expect("zk lateness").push((at, cost));
    }

    /// Every (moment in wall-clock ms, cost in ms) noted.
    #[must_use]
    pub fn log(&self) -> Vec<(u64, u64)> {
        self.0.lock().expect("zk lateness").clone()
    }
}

fn draw_zk_fault(rng: &Mutex<Rng>, p: f64, holder: &str, kills: &Mutex<Kills>) -> ZkFault {
    if holder == "world" {
        return ZkFault::default();
    }
    if kills.lock().expect("kills").strikes(holder) {
        return ZkFault {
            kill_holder: true,
            ..ZkFault::default()
        };
    }
    let mut rng = rng.lock().expect("zk rng");
    if !rng.chance(p) {
        return ZkFault::default();
    }
    match rng.range(0, 9) {
        0 | 1 => ZkFault {
            lose_before: true,
            ..ZkFault::default()
        },
        2 | 3 => ZkFault {
            lose_after: true,
            ..ZkFault::default()
        },
        4 | 5 => ZkFault {
            delay_ms: rng.range(10, 12_000),
            ..ZkFault::default()
        },
        6 | 7 => ZkFault {
            reply_delay_ms: rng.range(10, 12_000),
            ..ZkFault::default()
        },
        8 => ZkFault {
            expire_session: true,
            ..ZkFault::default()
        },
        _ => ZkFault {
            delay_ms: rng.range(10, 500),
            lose_after: true,
            ..ZkFault::default()
        },
    }
}

/// Ends every fault still switched on in the clusters.
pub fn heal(world: &World) {
    use std::sync::atomic::Ordering::Relaxed;
    for sim in [&world.source, &world.target] {
        let faults = &sim.cluster().faults;
        faults.slow_write_ms.store(0, Relaxed);
        for slot in faults.stall_ms.iter().chain(&faults.commit_lag_ms) {
            slot.store(0, Relaxed);
        }
        crate::sim::synctrouble::heal(sim.cluster());
        for node in 0..sim.cluster().replicas.len() {
            crate::sim::liveness::set_down(sim.cluster(), node, false);
        }
    }
}

/// What the run's outside actors act on.
pub struct Env<'a> {
    pub world: &'a World,
    pub ensemble: &'a Ensemble,
    pub plan: &'a std::path::Path,
    pub dir: &'a std::path::Path,
    pub trace: &'a Trace,
    pub procs: &'a Procs,
    pub kills: &'a Arc<Mutex<Kills>>,
    pub guardians: &'a std::rc::Rc<std::cell::RefCell<super::procs::Guardians>>,
}

/// Outside events of the safety phase, at drawn times.
pub struct Actions {
    at: Vec<(Instant, Action)>,
    /// What the late config syncs injected so far can add, in total.
    pub sync_lateness: Duration,
    /// Operators' commands still running.
    pub operators: Vec<JoinHandle<u8>>,
    /// How each stall holds its writes, on a later stream of its own.
    stall_kinds: Rng,
    /// Deny envs other operators set by hand.
    pub hand_denies: super::hand_deny::HandDenies,
}

#[derive(Debug, Clone)]
enum Action {
    Fault(&'static str, Vec<String>),
    /// A source server holds the writes it admits this many ms (0: no more).
    Stall(usize, u64),
    /// A source server's process dies (`true`) or is started again.
    ReplicaDown(usize, bool),
    /// Another operator sets a table's deny env by hand to this value for this many ms.
    HandDeny(String, &'static str, u64),
    /// A source server's config sync comes late.
    LateSync(usize, LateSync),
    SlowWrites(u64),
    /// An operator points a table's routing back at the source (undoing a switch by hand).
    RouteBack(String),
    /// An operator runs `migrator abort` for a table.
    Abort(String),
    /// Another operator runs `migrator apply` of the same plan from a machine of their own
    /// (their own journal): only ZooKeeper tells them what the first run did.
    Apply,
    /// Configuration management (or an operator) sets `config_sync_interval_ms` back to the
    /// period in the servers' config, undoing a speed-up under whatever block is live.
    RestoreSync(u64),
    /// An operator deletes a table's apply lock node by hand, taking it for a stale one
    /// (another run may then take the lock while its holder still runs: R9).
    DeleteLock(String),
}

impl Actions {
    pub fn draw(rng: &mut Rng, world: &World, faults: bool, stall_kinds: Rng) -> Actions {
        let mut at = Vec::new();
        if faults {
            let now = Instant::now();
            let n = rng.range(0, 8);
            let replicas = world.source.replicas().len() as u64;
            for _ in 0..n {
                let when = now + Duration::from_millis(rng.range(0, 100_000));
                let table = rng.pick(&world.tables).clone();
                let node = usize::try_from(rng.range(0, replicas - 1)).unwrap_or(0);
                let action = match rng.range(0, 11) {
                    0 => Action::Fault("failover", vec![table, rng.range(0, 1).to_string()]),
                    1 => Action::Fault("leader", vec![rng.range(0, 2).to_string()]),
                    2 => Action::SlowWrites(rng.range(100, 2500)),
                    3 => Action::Stall(node, rng.range(100, 3000)),
                    4 => Action::Stall(node, 0),
                    5 | 6 => Action::LateSync(
                        usize::try_from(rng.range(0, replicas - 1)).unwrap_or(0),
                        LateSync::draw(rng, &table),
                    ),
                    7 => Action::RouteBack(table),
                    8 => Action::Abort(table),
                    9 => Action::Fault("drop_connections", Vec::new()),
                    _ => Action::Apply,
                };
                at.push((when, action));
            }
            at.sort_by_key(|(t, _)| *t);
        }
        Actions {
            at,
            sync_lateness: Duration::ZERO,
            operators: Vec::new(),
            stall_kinds,
            hand_denies: super::hand_deny::HandDenies::default(),
        }
    }

    /// Adds a restore of the source's config-sync period to `period` at `ms` from now.
    pub fn restore_sync_at(&mut self, ms: u64, period: Duration) {
        let period = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        self.insert_at(ms, Action::RestoreSync(period));
    }

    /// Adds a source server's crash at `ms` from now and its restart `lasting` ms later.
    pub fn replica_down_at(&mut self, ms: u64, node: usize, lasting: u64) {
        self.insert_at(ms, Action::ReplicaDown(node, true));
        self.insert_at(ms + lasting, Action::ReplicaDown(node, false));
    }

    /// Adds another operator's deny env set by hand on `table` at `ms` from now, deleted
    /// `lasting` ms later.
    pub fn hand_deny_at(&mut self, ms: u64, table: &str, value: &'static str, lasting: u64) {
        self.insert_at(ms, Action::HandDeny(table.to_string(), value, lasting));
    }

    /// Adds an operator's delete of `table`'s lock node at `ms` from now.
    pub fn delete_lock_at(&mut self, ms: u64, table: &str) {
        self.insert_at(ms, Action::DeleteLock(table.to_string()));
    }

    fn insert_at(&mut self, ms: u64, action: Action) {
        let when = Instant::now() + Duration::from_millis(ms);
        let at = self.at.partition_point(|(t, _)| *t <= when);
        self.at.insert(at, (when, action));
    }

    pub fn next_at(&self) -> Option<Instant> {
        self.at.first().map(|(t, _)| *t)
    }

    pub fn fire(&mut self, env: &Env<'_>) {
        let (world, trace) = (env.world, env.trace);
        let now = Instant::now();
        while self.at.first().is_some_and(|(t, _)| *t <= now) {
            let (_, action) = self.at.remove(0);
            let source = world.source.cluster();
            let (name, args) = match action {
                Action::Fault(name, args) => (name, args),
                Action::HandDeny(table, value, lasting) => {
                    let looks = super::hand_deny::Looks {
                        ensemble: env.ensemble,
                        lock: crate::apply::lock::lock_path(super::MIGRATOR_ROOT, &table),
                        record: format!(
                            "{}/blocks/{}/{table}",
                            super::MIGRATOR_ROOT,
                            world.config.source_name
                        ),
                    };
                    let lasting = Duration::from_millis(lasting);
                    let what = (table.as_str(), value, lasting);
                    let denies = &self.hand_denies;
                    if let Some(task) = super::hand_deny::start(source, &looks, what, denies, trace)
                    {
                        self.operators.push(task);
                    }
                    continue;
                }
                Action::ReplicaDown(node, down) => {
                    let addr = source.replicas[node].to_string();
                    let on = if down { "on" } else { "off" };
                    ("replica_down", vec![addr, on.into()])
                }
                Action::Stall(node, ms) => {
                    let kind = StallKind::draw(&mut self.stall_kinds);
                    for (name, args) in kind.faults(node, ms) {
                        trace.say(format!("source: {}", run_fault(source, name, args)));
                    }
                    continue;
                }
                Action::LateSync(node, cause) => {
                    self.sync_lateness += cause.lateness(&source.config);
                    cause.fault(node)
                }
                Action::SlowWrites(ms) => ("slow_write_ms", vec![ms.to_string()]),
                Action::RouteBack(table) => {
                    route_back(env, &table);
                    continue;
                }
                Action::Abort(table) => {
                    self.operators.push(start_abort(env, &table));
                    continue;
                }
                Action::Apply => {
                    self.operators.push(start_second_apply(env));
                    continue;
                }
                Action::RestoreSync(period) => {
                    self.operators.push(restore_sync(env, period));
                    continue;
                }
                Action::DeleteLock(table) => {
                    let lock = crate::apply::lock::lock_path(super::MIGRATOR_ROOT, &table);
                    env.ensemble.remove(&lock);
                    trace.say(format!("operator: deleted {lock} by hand"));
                    continue;
                }
            };
            if name == "failover" {
                // The meta persisting the new primary answers its server's syncs busy.
                self.sync_lateness +=
                    source.config.meta_persist_delay + crate::sim::envsync::BUSY_RETRY;
            }
            trace.say(format!("source: {}", run_fault(source, name, args)));
        }
    }
}

/// An operator writes the source's route into `table`'s routing node by hand.
fn route_back(env: &Env<'_>, table: &str) {
    let route = crate::routing::Route {
        cluster_name: env.world.config.source_name.clone(),
        meta_addrs: crate::sim::world::addrs(&env.world.source.metas()),
    };
    env.ensemble.poke(
        &crate::routing::node_path(super::ROOT, table),
        route.to_json().as_bytes(),
    );
    env.trace.say(format!(
        "operator: routing of {table} set back to the source by hand"
    ));
}

/// Another operator runs `migrator apply` on a host of their own, with their own journal.
fn start_second_apply(env: &Env<'_>) -> JoinHandle<u8> {
    let host = Host {
        name: "operator apply".into(),
        skew_ms: 1_500,
        jump: None,
        pid: super::procs::OPERATOR_PIDS,
    };
    super::procs::start_apply(
        env.plan,
        &env.dir.join("operator"),
        host,
        env.trace,
        env.procs,
    )
}

/// Configuration management sets every source server's config-sync period back to `period`
/// (`/updateConfig`, as the speed-up itself is set).
fn restore_sync(env: &Env<'_>, period: u64) -> JoinHandle<u8> {
    let host = Host {
        name: "config management".into(),
        skew_ms: 0,
        jump: None,
        pid: super::procs::OPERATOR_PIDS + 2,
    };
    let servers = env.world.source.replicas();
    let trace = env.trace.clone();
    tokio::spawn(crate::clock::on_host(host, async move {
        let replica = crate::pegasus::replica::ReplicaClient::new(Duration::from_secs(5));
        for node in servers {
            let said = crate::probe::flags::update(&replica, node, CONFIG_SYNC, period).await;
            trace.say(format!(
                "{CONFIG_SYNC}={period} on {node}: {}",
                said.map_or_else(|e| e.to_string(), |()| "set".into())
            ));
        }
        0
    }))
}

/// An operator runs `migrator abort --table TABLE` on a host of its own.
fn start_abort(env: &Env<'_>, table: &str) -> JoinHandle<u8> {
    let args = crate::cli::abort::Args {
        file: env.plan.to_path_buf(),
        table: Some(table.to_string()),
        remove_duplication: false,
        journal: env.dir.join("operator").join("journal.jsonl"),
        lock_timeout: "5s".into(),
        not_switched: false,
    };
    let host = Host {
        name: format!("abort {table}").into(),
        skew_ms: 0,
        jump: None,
        pid: super::procs::OPERATOR_PIDS + 1,
    };
    super::procs::start_command(host, env.trace, async move {
        crate::cli::abort::run(&args).await
    })
}
