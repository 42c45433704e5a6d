//! Owns one seeded run: the world the seed draws, the processes (apply runs, guardians) as
//! killable tasks on simulated hosts, the faults of the safety phase, the liveness phase that
//! heals them and runs apply until it converges, and the facts the checks need.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::check::{self, Facts, GuardianLife};
use super::rng::Rng;
use super::writers::{ClusterOf, Writers};
use super::Report;
use crate::clock::{self, Host};
use crate::net::RequestFault;
use crate::pegasus::messages::command::Command;
use crate::routing::session;
use crate::sim::metaproxy::Build;
use crate::sim::world::{TableSpec, World, WorldConfig, ZkSource};
use crate::sim::zk_model::{Ensemble, ZkFault};
use crate::sim::{SimConfig, Version};

/// 2026-12-01 00:00:00 UTC: every run's wall clock starts here.
const EPOCH_MS: u64 = 1_796_083_200_000;
/// The ZooKeeper servers the plan names (the model answers whatever the list).
const ZK_ADDR: &str = "zk.sim:2181";
const ROOT: &str = "/pegasus/metaproxy";
const MIGRATOR_ROOT: &str = "/migrator";
/// The longest one apply run may take in the liveness phase before it counts as a hang.
const RUN_LIMIT: Duration = Duration::from_secs(900);
/// Apply runs in the liveness phase before the run counts as not converging.
const LIVENESS_RUNS: usize = 6;

/// How runs are made.
#[derive(Debug, Clone)]
pub struct Options {
    /// Inject faults in the safety phase (off: a clean migration, for the baseline).
    pub faults: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { faults: true }
    }
}

/// What the seed drew for the world and its faults.
#[derive(Debug, Clone)]
struct Shape {
    source: Version,
    tables: usize,
    partitions: i32,
    config_sync: Duration,
    block_mode: &'static str,
    max_write_block_s: u64,
    /// Probabilities of RPC and ZooKeeper faults while faults are on.
    rpc_fault: f64,
    zk_fault: f64,
}

impl Shape {
    fn draw(rng: &mut Rng) -> Shape {
        Shape {
            source: *rng.pick(&[Version::V2_5, Version::V2_6]),
            tables: usize::try_from(rng.range(1, 2)).unwrap_or(1),
            partitions: *rng.pick(&[2, 4]),
            config_sync: Duration::from_millis(rng.range(200, 2000)),
            block_mode: if rng.chance(0.5) {
                "timeout"
            } else {
                "reconfig"
            },
            max_write_block_s: *rng.pick(&[15, 30, 60]),
            rpc_fault: *rng.pick(&[0.0, 0.01, 0.03, 0.08]),
            zk_fault: *rng.pick(&[0.0, 0.02, 0.05, 0.1]),
        }
    }

    fn sim_config(&self, version: Version) -> SimConfig {
        SimConfig {
            config_sync_interval: self.config_sync,
            group_check_interval: Duration::from_millis(1000),
            dup_sync_interval: Duration::from_millis(500),
            failure_detect: Duration::from_secs(2),
            ..SimConfig::fast(version)
        }
    }
}

/// The trace, shared by every part of the run.
#[derive(Clone)]
pub(super) struct Trace {
    lines: Arc<Mutex<Vec<(u64, usize, String)>>>,
    start: Instant,
}

impl Trace {
    fn new() -> Trace {
        Trace {
            lines: Arc::default(),
            start: Instant::now(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Adds `line` now, under the calling task's host name.
    pub(super) fn say(&self, line: impl Into<String>) {
        let who = clock::host().map_or_else(|| "world".to_string(), |h| h.name.to_string());
        self.at(self.elapsed_ms(), format!("{who}: {}", line.into()));
    }

    /// Adds `line` at virtual time `ms` since the start.
    pub(super) fn at(&self, ms: u64, line: String) {
        let mut lines = self.lines.lock().expect("trace");
        let seq = lines.len();
        lines.push((ms, seq, line));
    }

    fn finish(&self) -> Vec<String> {
        let mut lines = self.lines.lock().expect("trace").clone();
        lines.sort();
        lines
            .into_iter()
            .map(|(ms, _, l)| format!("{:>9.3}s {l}", ms as f64 / 1000.0))
            .collect()
    }
}

/// The guardians the run started, by pid.
#[derive(Default)]
struct Guardians {
    next_pid: u32,
    running: BTreeMap<u32, (String, JoinHandle<()>)>,
    lives: Arc<Mutex<Vec<GuardianLife>>>,
}

/// How one apply run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Exit(u8),
    Killed,
    Hung,
}

/// Shared state of the faults.
struct Chaos {
    on: bool,
    rng: Rng,
    rpc_fault: f64,
}

pub(super) async fn run(seed: u64, opts: Options) -> Report {
    let trace = Trace::new();
    let _clock = clock::simulate(EPOCH_MS);
    let mut rng = Rng::new(seed);
    let shape = Shape::draw(&mut rng);
    trace.say(format!("seed {seed}: {shape:?}"));

    let chaos = Rc::new(RefCell::new(Chaos {
        on: false,
        rng: rng.fork(),
        rpc_fault: if opts.faults { shape.rpc_fault } else { 0.0 },
    }));
    let _net = crate::net::simulate(Some(net_policy(chaos.clone())));
    let ensemble = Ensemble::new(crate::routing::zk::SESSION_TIMEOUT);
    let _zk = session::install_simulated(ensemble.connector());
    let sink_trace = trace.clone();
    let _out = crate::cli::out::capture(Rc::new(move |_, line| sink_trace.say(line)));
    let guardians = Rc::new(RefCell::new(Guardians::default()));
    let _launcher =
        crate::apply::guardian::install_launcher(launcher(guardians.clone(), trace.clone()));

    let world = match build_world(&shape).await {
        Ok(w) => w,
        Err(e) => {
            return Report {
                seed,
                trace: trace.finish(),
                violations: vec![format!("the world could not be built: {e}")],
                virtual_time: Duration::ZERO,
            }
        }
    };
    let world_sessions = ensemble.live_sessions();
    if opts.faults {
        ensemble.set_policy(Some(zk_policy(rng.fork(), shape.zk_fault, world_sessions)));
    }
    let dir = std::env::temp_dir().join(format!("migrator-dst-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let plan = write_plan(&world, &shape, &dir);
    let cluster_of = cluster_of(&world);
    let mut writers = Writers::start(
        &world.tables,
        2,
        world.proxy_addrs()[0],
        Duration::from_millis(rng.range(50, 300)),
        &cluster_of,
    );
    tokio::time::sleep(Duration::from_millis(rng.range(500, 3000))).await;

    let mut hosts = HostPlan::draw(&mut rng);
    let env = Env {
        world: &world,
        ensemble: &ensemble,
        plan: &plan,
        dir: &dir,
        trace: &trace,
    };
    let mut actions = Actions::draw(&mut rng, &world, opts.faults);
    chaos.borrow_mut().on = opts.faults;
    let safety_end = safety_phase(&env, &mut rng, &mut hosts, &mut actions, &opts).await;
    chaos.borrow_mut().on = false;
    ensemble.set_policy(None);
    heal(&world);
    trace.say(format!(
        "faults healed (safety phase ended: {safety_end:?})"
    ));

    // Sometimes nobody runs apply again: the guardians alone must end every block.
    let rerun = !opts.faults || rng.chance(0.75);
    let runs = if rerun {
        liveness_phase(&plan, &dir, &mut hosts, &trace).await
    } else {
        trace.say("nobody runs apply again");
        Vec::new()
    };
    // Let the duplication ship what the writers left, and guardians end: their aftercare, or
    // their watch of a block nobody resolves.
    let quiet_until = Instant::now()
        + if rerun {
            check::GUARDIAN_AFTER_END
        } else {
            Duration::from_secs(shape.max_write_block_s) + check::GUARDIAN_LINGER
        };
    tokio::time::sleep(Duration::from_secs(5)).await;
    writers.stop();
    while Instant::now() < quiet_until && !all_ended(&guardians) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for op in std::mem::take(&mut actions.operators) {
        op.abort();
    }

    let (deny_log, app_ids) = {
        let state = world.source.cluster().lock();
        let ids = state
            .apps
            .values()
            .map(|a| (a.id, a.name.clone()))
            .collect();
        (state.deny_log.clone(), ids)
    };
    let facts = Facts {
        source: world.config.source_name.clone(),
        target: world.config.target_name.clone(),
        tables: world.tables.clone(),
        writes: writers.log.lock().expect("write log").clone(),
        liveness_runs: runs,
        guardians: guardians.borrow().lives.lock().expect("lives").clone(),
        guardians_running: guardians
            .borrow()
            .running
            .iter()
            .filter(|(_, (_, h))| !h.is_finished())
            .map(|(pid, (rec, _))| (*pid, rec.clone()))
            .collect(),
        routing: world
            .tables
            .iter()
            .map(|t| (t.clone(), routed_to(&ensemble, t)))
            .collect(),
        zk_history: ensemble.history(),
        deny_log,
        app_ids,
        config_sync: shape.config_sync,
        late_sync: actions.late_sync,
        record_root: format!("{MIGRATOR_ROOT}/blocks/{}", world.config.source_name),
        routing_root: ROOT.into(),
        end_ms: clock::now_ms(),
        rerun,
    };
    let values = check::read_final_values(&world, &facts);
    let violations = check::all(&facts, &values);
    for c in &facts.zk_history {
        if c.path.starts_with(MIGRATOR_ROOT) || c.path.starts_with(ROOT) {
            let ms = c.at_ms.saturating_sub(EPOCH_MS);
            let data = c.data.as_ref().map_or_else(
                || "deleted".to_string(),
                |d| String::from_utf8_lossy(d).into_owned(),
            );
            trace.at(ms, format!("zk: {} v{} = {data}", c.path, c.version));
        }
    }
    let virtual_time = Duration::from_millis(trace.elapsed_ms());
    for (_, (_, h)) in std::mem::take(&mut guardians.borrow_mut().running) {
        h.abort();
    }
    drop(world);
    let _ = std::fs::remove_dir_all(&dir);
    Report {
        seed,
        trace: trace.finish(),
        violations,
        virtual_time,
    }
}

async fn build_world(shape: &Shape) -> Result<World, String> {
    let tables = (0..shape.tables)
        .map(|i| TableSpec::new(&format!("t{i}"), shape.partitions, 20))
        .collect();
    World::start(WorldConfig {
        source_name: "src".into(),
        target_name: "dst".into(),
        source: shape.sim_config(shape.source),
        target: shape.sim_config(Version::V2_6),
        zookeeper: ZkSource::Existing(ZK_ADDR.into()),
        root: ROOT.into(),
        migrator_root: MIGRATOR_ROOT.into(),
        tables,
        target_tables: Vec::new(),
        metaproxies: 1,
        metaproxy_build: Build::HostPort,
    })
    .await
    .map_err(|e| e.to_string())
}

fn write_plan(world: &World, shape: &Shape, dir: &std::path::Path) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let defaults = vec![
        "threshold: 1000".to_string(),
        format!("max_write_block: {}s", shape.max_write_block_s),
        format!("block_mode: {}", shape.block_mode),
        "verify: off".to_string(),
    ];
    let path = dir.join("migrations.yaml");
    std::fs::write(&path, world.plan_yaml(&defaults)).expect("write the plan file");
    path
}

fn cluster_of(world: &World) -> ClusterOf {
    let source: Vec<String> = world
        .source
        .replicas()
        .iter()
        .map(ToString::to_string)
        .collect();
    let (src, dst) = (
        world.config.source_name.clone(),
        world.config.target_name.clone(),
    );
    Arc::new(move |server: &str| {
        if source.iter().any(|s| s == server) {
            src.clone()
        } else {
            dst.clone()
        }
    })
}

fn routed_to(ensemble: &Ensemble, table: &str) -> Option<String> {
    let (data, _) = ensemble.peek(&crate::routing::node_path(ROOT, table))?;
    crate::routing::Route::parse(&data)
        .ok()
        .map(|r| r.cluster_name)
}

fn net_policy(chaos: Rc<RefCell<Chaos>>) -> crate::net::FaultPolicy {
    Box::new(move |_server: SocketAddr, _rpc: &str| {
        let mut c = chaos.borrow_mut();
        let p = c.rpc_fault;
        if !c.on || !c.rng.chance(p) {
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

/// Faults of the ZooKeeper calls of migrator's sessions (the world's own, meta-proxy's, are
/// `spared`).
fn zk_policy(rng: Rng, p: f64, spared: Vec<i64>) -> crate::sim::zk_model::ZkPolicy {
    let rng = Mutex::new(rng);
    Box::new(move |session, _op, _path| {
        if spared.contains(&session) {
            return ZkFault::default();
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
    })
}

/// Which host each apply run is on, and its clock skew.
struct HostPlan {
    skews: Vec<i64>,
    runs: usize,
}

impl HostPlan {
    fn draw(rng: &mut Rng) -> HostPlan {
        let skews = (0..3)
            .map(|_| i64::try_from(rng.range(0, 6000)).unwrap_or(0) - 3000)
            .collect();
        HostPlan { skews, runs: 0 }
    }

    /// The host of the next apply run.
    fn next(&mut self, rng: &mut Rng) -> Host {
        self.runs += 1;
        let i = usize::try_from(rng.range(0, self.skews.len() as u64 - 1)).unwrap_or(0);
        Host {
            name: format!("apply#{} (host {i})", self.runs).into(),
            skew_ms: self.skews[i],
        }
    }
}

fn apply_args(plan: &std::path::Path, dir: &std::path::Path) -> crate::cli::apply::Args {
    crate::cli::apply::Args {
        path: Some(plan.to_path_buf()),
        auto_approve: true,
        parallelism: 4,
        max_concurrent_cutovers: 1,
        lock_timeout: "15s".into(),
        checkpoint_timeout: "10m".into(),
        catch_up_timeout: "10m".into(),
        json: false,
        journal: dir.join(".migrator").join("journal.jsonl"),
    }
}

/// Starts apply on `host`.
fn start_apply(
    plan: &std::path::Path,
    dir: &std::path::Path,
    host: Host,
    trace: &Trace,
) -> JoinHandle<u8> {
    let args = apply_args(plan, dir);
    let trace = trace.clone();
    tokio::spawn(clock::on_host(host, async move {
        trace.say("starts");
        let code = match crate::cli::apply::run(&args).await {
            Ok(exit) => exit.code(),
            Err(e) => {
                trace.say(format!("error: {e}"));
                e.exit().code()
            }
        };
        trace.say(format!("exits {code}"));
        code
    }))
}

/// The safety phase: apply runs while faults strike; it may be killed at any moment, and run
/// again (on another host) or not. Returns how the last run ended.
async fn safety_phase(
    env: &Env<'_>,
    rng: &mut Rng,
    hosts: &mut HostPlan,
    actions: &mut Actions,
    opts: &Options,
) -> RunEnd {
    let trace = env.trace;
    let mut end = RunEnd::Killed;
    let attempts = if opts.faults { rng.range(1, 3) } else { 1 };
    for attempt in 0..attempts {
        let host = hosts.next(rng);
        let mut run = start_apply(env.plan, env.dir, host, trace);
        let kill_at =
            (opts.faults && rng.chance(0.6)).then(|| Duration::from_millis(rng.range(0, 90_000)));
        let limit = kill_at.unwrap_or(RUN_LIMIT);
        let deadline = Instant::now() + limit;
        end = loop {
            let next_action = actions.next_at().map_or(deadline, |a| a.min(deadline));
            tokio::select! {
                biased;
                done = &mut run => break done.map_or(RunEnd::Killed, RunEnd::Exit),
                () = tokio::time::sleep_until(next_action) => {
                    if Instant::now() >= deadline {
                        run.abort();
                        trace.say(if kill_at.is_some() { "apply killed" } else { "apply hung: killed" });
                        break if kill_at.is_some() { RunEnd::Killed } else { RunEnd::Hung };
                    }
                    actions.fire(env);
                }
            }
        };
        if attempt + 1 < attempts {
            // Somebody notices, sooner or later, and runs apply again.
            tokio::time::sleep(Duration::from_millis(rng.range(0, 40_000))).await;
        }
    }
    // Let whatever the last run left (a guardian's deadline) play out under the faults.
    let settle = Instant::now() + Duration::from_secs(rng.range(0, 90));
    while let Some(at) = actions.next_at().filter(|a| *a < settle) {
        tokio::time::sleep_until(at).await;
        actions.fire(env);
    }
    tokio::time::sleep_until(settle).await;
    end
}

/// Ends every fault still switched on in the clusters.
fn heal(world: &World) {
    use std::sync::atomic::Ordering::Relaxed;
    for sim in [&world.source, &world.target] {
        let faults = &sim.cluster().faults;
        faults.slow_write_ms.store(0, Relaxed);
        for slot in faults.late_sync_ms.iter().chain(&faults.stall_ms) {
            slot.store(0, Relaxed);
        }
    }
}

fn all_ended(guardians: &RefCell<Guardians>) -> bool {
    guardians
        .borrow()
        .running
        .values()
        .all(|(_, h)| h.is_finished())
}

/// The liveness phase: apply is run until a run ends with a verdict (migrated, lifted,
/// or an operator needed) within [`RUN_LIMIT`]; every run's end.
async fn liveness_phase(
    plan: &std::path::Path,
    dir: &std::path::Path,
    hosts: &mut HostPlan,
    trace: &Trace,
) -> Vec<RunEnd> {
    let mut ends = Vec::new();
    let mut rng = Rng::new(hosts.runs as u64);
    for _ in 0..LIVENESS_RUNS {
        let host = hosts.next(&mut rng);
        let mut run = start_apply(plan, dir, host, trace);
        let end = tokio::select! {
            done = &mut run => done.map_or(RunEnd::Killed, RunEnd::Exit),
            () = tokio::time::sleep(RUN_LIMIT) => { run.abort(); RunEnd::Hung }
        };
        ends.push(end);
        match end {
            RunEnd::Exit(0 | 4) | RunEnd::Hung => break,
            _ => tokio::time::sleep(Duration::from_secs(12)).await,
        }
    }
    ends
}

/// What the run's outside actors act on.
struct Env<'a> {
    world: &'a World,
    ensemble: &'a Ensemble,
    plan: &'a std::path::Path,
    dir: &'a std::path::Path,
    trace: &'a Trace,
}

/// Outside events of the safety phase, at drawn times.
struct Actions {
    at: Vec<(Instant, Action)>,
    /// Config-sync lateness injected so far.
    late_sync: Duration,
    /// Operators' commands still running.
    operators: Vec<JoinHandle<()>>,
}

#[derive(Debug, Clone)]
enum Action {
    Fault(&'static str, Vec<String>),
    SlowWrites(u64),
    /// An operator points a table's routing back at the source (undoing a switch by hand).
    RouteBack(String),
    /// An operator runs `migrator abort` for a table.
    Abort(String),
}

impl Actions {
    fn draw(rng: &mut Rng, world: &World, faults: bool) -> Actions {
        let mut at = Vec::new();
        if faults {
            let now = Instant::now();
            let n = rng.range(0, 8);
            let replicas = world.source.replicas().len() as u64;
            for _ in 0..n {
                let when = now + Duration::from_millis(rng.range(0, 100_000));
                let table = rng.pick(&world.tables).clone();
                let node = rng.range(0, replicas - 1).to_string();
                let action = match rng.range(0, 10) {
                    0 => Action::Fault("failover", vec![table, rng.range(0, 1).to_string()]),
                    1 => Action::Fault("leader", vec![rng.range(0, 2).to_string()]),
                    2 => Action::SlowWrites(rng.range(100, 2500)),
                    3 => Action::Fault("stall", vec![node, rng.range(100, 3000).to_string()]),
                    4 => Action::Fault("stall", vec![node, "0".into()]),
                    5 | 6 => {
                        Action::Fault("late_sync", vec![node, rng.range(200, 6000).to_string()])
                    }
                    7 => Action::RouteBack(table),
                    8 => Action::Abort(table),
                    _ => Action::Fault("drop_connections", Vec::new()),
                };
                at.push((when, action));
            }
            at.sort_by_key(|(t, _)| *t);
        }
        Actions {
            at,
            late_sync: Duration::ZERO,
            operators: Vec::new(),
        }
    }

    fn next_at(&self) -> Option<Instant> {
        self.at.first().map(|(t, _)| *t)
    }

    fn fire(&mut self, env: &Env<'_>) {
        let (world, trace) = (env.world, env.trace);
        let now = Instant::now();
        while self.at.first().is_some_and(|(t, _)| *t <= now) {
            let (_, action) = self.at.remove(0);
            let (name, args) = match action {
                Action::Fault(name, args) => (name, args),
                Action::SlowWrites(ms) => ("slow_write_ms", vec![ms.to_string()]),
                Action::RouteBack(table) => {
                    route_back(env, &table);
                    continue;
                }
                Action::Abort(table) => {
                    self.operators.push(start_abort(env, &table));
                    continue;
                }
            };
            if name == "late_sync" {
                self.late_sync += Duration::from_millis(args[1].parse().unwrap_or(0));
            }
            let mut arguments = vec![name.to_string()];
            arguments.extend(args);
            let cmd = Command {
                cmd: "sim.fault".into(),
                arguments,
            };
            let said = crate::sim::faults::run_command(world.source.cluster(), &cmd);
            trace.say(format!(
                "source: {} → {}",
                cmd.arguments.join(" "),
                said.unwrap_or_default()
            ));
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
        &crate::routing::node_path(ROOT, table),
        route.to_json().as_bytes(),
    );
    env.trace.say(format!(
        "operator: routing of {table} set back to the source by hand"
    ));
}

/// An operator runs `migrator abort --table TABLE` on a host of its own.
fn start_abort(env: &Env<'_>, table: &str) -> JoinHandle<()> {
    let args = crate::cli::abort::Args {
        file: env.plan.to_path_buf(),
        table: Some(table.to_string()),
        remove_duplication: false,
        journal: env.dir.join("operator").join("journal.jsonl"),
        lock_timeout: "5s".into(),
        not_switched: false,
    };
    let trace = env.trace.clone();
    let host = Host {
        name: format!("abort {table}").into(),
        skew_ms: 0,
    };
    tokio::spawn(clock::on_host(host, async move {
        trace.say("starts");
        let code = match crate::cli::abort::run(&args).await {
            Ok(exit) => exit.code(),
            Err(e) => {
                trace.say(format!("error: {e}"));
                e.exit().code()
            }
        };
        trace.say(format!("exits {code}"));
    }))
}

/// Starts guardians as tasks on the host of the apply that starts them.
fn launcher(guardians: Rc<RefCell<Guardians>>, trace: Trace) -> crate::apply::guardian::Launcher {
    Rc::new(move |args: Vec<String>| {
        let mut g = guardians.borrow_mut();
        g.next_pid += 1;
        let pid = g.next_pid;
        let parsed = parse_guardian_args(&args);
        let record = parsed
            .record
            .clone()
            .or_else(|| parsed.record_file.as_ref().map(|p| p.display().to_string()))
            .unwrap_or_default();
        let skew = clock::host().map_or(0, |h| h.skew_ms);
        let host = Host {
            name: format!("guardian#{pid}").into(),
            skew_ms: skew,
        };
        let lives = g.lives.clone();
        let trace = trace.clone();
        let started_ms = clock::now_ms();
        let rec = record.clone();
        let handle = tokio::spawn(clock::on_host(host, async move {
            let exit = crate::cli::guardian::guard(&parsed).await;
            trace.say(format!("ends: {exit:?}"));
            lives.lock().expect("lives").push(GuardianLife {
                pid,
                record: rec,
                started_ms,
                ended_ms: clock::now_ms(),
            });
        }));
        g.running.insert(pid, (record, handle));
        pid
    })
}

fn parse_guardian_args(args: &[String]) -> crate::cli::guardian::Args {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    crate::cli::guardian::Args {
        zookeeper: value("--zookeeper"),
        record: value("--record"),
        record_file: value("--record-file").map(PathBuf::from),
    }
}
