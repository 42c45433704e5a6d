//! Owns one seeded run: the world the seed draws, the processes (apply runs, guardians) as
//! killable tasks on simulated hosts, the faults of the safety phase, the liveness phase that
//! heals them and runs apply until it converges, and the facts the checks need.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::check::{self, Facts};
use super::faults::{heal, net_policy, zk_policy, Actions, Chaos, Env, Kills, ZkLateness, ZkStall};
use super::procs::{launcher, start_apply, Guardians, HostPlan, Procs, RunEnd};
use super::rng::Rng;
use super::trace::Trace;
use super::writers::{ClusterOf, Writers};
use super::{Report, EPOCH_MS, MIGRATOR_ROOT, ROOT, ZK_ADDR};
use crate::clock;
use crate::plan::budget::{self, Budget};
use crate::plan::observed::ClusterObs;
use crate::routing::session;
use crate::sim::metaproxy::Build;
use crate::sim::world::{TableSpec, World, WorldConfig, ZkSource};
use crate::sim::zk_model::Ensemble;
use crate::sim::{SimConfig, Version};
use crate::spec::BlockMode;

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

/// Upstream 2.5's default `config_sync_interval_ms`: the period the speed-up exists for.
const UPSTREAM_CONFIG_SYNC: Duration = Duration::from_secs(30);

/// The verify modes a world draws from: off half the time.
const VERIFY_MODES: [&str; 4] = ["off", "off", "sample", "full"];

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
    /// Chance that a deny env set troubles a source server (late sync, stalled writes).
    trouble: f64,
    /// The plan removes the duplication after the switch.
    remove_duplication: bool,
    /// The verify gate's mode (`off`, `sample`, `full`).
    verify: &'static str,
    /// The config-sync speed-up during the cut-over (2.5 sources only).
    speed_up: Option<Duration>,
}

impl Shape {
    /// The world of `rng`; `later` draws what was added since (`Rng::later`).
    fn draw(rng: &mut Rng, later: &mut Rng) -> Shape {
        let mut shape = Shape {
            source: *rng.pick(&[Version::V2_5, Version::V2_6]),
            tables: usize::try_from(rng.range(1, 2)).unwrap_or(1),
            partitions: *rng.pick(&[2, 4]),
            config_sync: Duration::from_millis(rng.range(200, 2000)),
            block_mode: if rng.chance(0.5) {
                "timeout"
            } else {
                "reconfig"
            },
            max_write_block_s: *rng.pick(&[0, 10, 40]),
            rpc_fault: *rng.pick(&[0.0, 0.01, 0.03, 0.08]),
            zk_fault: *rng.pick(&[0.0, 0.02, 0.05, 0.1]),
            trouble: *rng.pick(&[0.0, 0.3, 0.7]),
            remove_duplication: rng.chance(0.5),
            verify: VERIFY_MODES[usize::try_from(rng.range(0, 3)).unwrap_or(0)],
            speed_up: None,
        };
        if shape.source == Version::V2_5 && rng.chance(0.3) {
            shape.speed_up = Some(Duration::from_millis(100));
        }
        if shape.source == Version::V2_5 && later.chance(0.25) {
            // A 2.5 cluster left at the default period, where the speed-up matters: mostly
            // with it. A restore must then allow for the full period, whoever restores it.
            shape.config_sync = UPSTREAM_CONFIG_SYNC;
            shape.speed_up = later.chance(0.7).then_some(Duration::from_millis(100));
        }
        // The draw is headroom over the least budget `plan` accepts: a tight budget is the
        // interesting case, one `plan` would block tests nothing.
        shape.max_write_block_s += shape.least_budget_s();
        shape
    }

    /// The least `max_write_block` `plan` accepts for this world, in whole seconds.
    fn least_budget_s(&self) -> u64 {
        let source = ClusterObs {
            master: self.source == Version::V2_6,
            config_sync_ms: [("n".to_string(), budget::ms(self.config_sync))].into(),
            group_check_ms: Some(budget::ms(
                self.sim_config(self.source).group_check_interval,
            )),
            dead_nodes: vec![],
            fixed_sync_timer: vec![],
        };
        let mode = if self.block_mode == "timeout" {
            BlockMode::Timeout
        } else {
            BlockMode::Reconfig
        };
        Budget::of(&source, self.speed_up, mode)
            .with_exact_check(self.verify != "off")
            .needed_ms()
            .div_ceil(1000)
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

pub(super) async fn run(seed: u64, opts: Options) -> Report {
    let trace = Trace::new();
    let _clock = clock::simulate(EPOCH_MS);
    let mut rng = Rng::new(seed);
    let mut later = Rng::later(seed, 1);
    let shape = Shape::draw(&mut rng, &mut later);
    trace.say(format!("seed {seed}: {shape:?}"));

    let chaos = Rc::new(RefCell::new(Chaos {
        on: false,
        rng: rng.fork(),
        rpc_fault: if opts.faults { shape.rpc_fault } else { 0.0 },
        trouble: shape.trouble,
        source: None,
        sync_lateness: Duration::ZERO,
        trace: trace.clone(),
        stall_kinds: Rng::later(seed, 5),
    }));
    let _net = crate::net::simulate(Some(net_policy(chaos.clone())));
    let procs = Procs::default();
    let ensemble = Ensemble::new(crate::routing::zk::SESSION_TIMEOUT);
    let _zk = session::install_simulated(procs.connector(&ensemble));
    let kill_trace = trace.clone();
    let killer = procs.clone();
    ensemble.set_kill_hook(Some(Box::new(move |s| killer.kill_holder(s, &kill_trace))));
    let sink_trace = trace.clone();
    let _out = crate::cli::out::capture(Rc::new(move |_, line| sink_trace.say(line)));
    let guardians = Rc::new(RefCell::new(Guardians::default()));
    let _launcher = crate::apply::guardian::install_launcher(launcher(
        guardians.clone(),
        trace.clone(),
        procs.clone(),
    ));

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
    chaos.borrow_mut().source = Some((world.source.metas(), world.source.cluster().clone()));
    let (switch_hook, at_switch) = super::at_switch::hook(
        ROOT,
        &world.config.target_name,
        world.source.cluster().clone(),
        world.target.cluster().clone(),
    );
    ensemble.set_change_hook(Some(switch_hook));
    let kills = Arc::new(std::sync::Mutex::new(Kills::default()));
    let zk_lateness = ZkLateness::default();
    if opts.faults {
        // A ZooKeeper write stall now and then (`ZkStall`), on a later stream of its own.
        let mut stalls = Rng::later(seed, 2);
        let stall = stalls.chance(0.25).then(|| {
            let (after, lasting) = (stalls.range(0, 150_000), stalls.range(2_000, 12_000));
            let at = trace.elapsed_ms() + after;
            trace.at(at, format!("ZooKeeper holds writes for {lasting} ms"));
            let from = Instant::now() + Duration::from_millis(after);
            let until = from + Duration::from_millis(lasting);
            ZkStall { from, until }
        });
        let policy = zk_policy(
            rng.fork(),
            shape.zk_fault,
            stall,
            procs.clone(),
            kills.clone(),
            zk_lateness.clone(),
        );
        ensemble.set_policy(Some(policy));
    }
    // Unique per run: one process may run the same seed twice at once (two tests).
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run_no = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "migrator-dst-{}-{seed}-{run_no}",
        std::process::id()
    ));
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

    let mut hosts = HostPlan::draw(&mut rng).with_jumps(&mut Rng::later(seed, 7), &trace);
    let env = Env {
        world: &world,
        ensemble: &ensemble,
        plan: &plan,
        dir: &dir,
        trace: &trace,
        procs: &procs,
        kills: &kills,
        guardians: &guardians,
    };
    let mut actions = Actions::draw(&mut rng, &world, opts.faults, Rng::later(seed, 6));
    if opts.faults && shape.speed_up.is_some() && later.chance(0.4) {
        actions.restore_sync_at(later.range(0, 100_000), shape.config_sync);
    }
    let mut locks = Rng::later(seed, 4);
    if opts.faults && locks.chance(0.15) {
        let table = locks.pick(&world.tables).clone();
        actions.delete_lock_at(locks.range(0, 100_000), &table);
    }
    let mut hands = Rng::later(seed, 9);
    if opts.faults && hands.chance(0.15) {
        let table = hands.pick(&world.tables).clone();
        let value = *hands.pick(&["timeout*write", "reconfig*write", "reconfig*all"]);
        // Half of them before the first apply takes the table's lock.
        let within = if hands.chance(0.5) { 1_000 } else { 100_000 };
        let (at, lasting) = (hands.range(0, within), hands.range(1_000, 60_000));
        actions.hand_deny_at(at, &table, value, lasting);
    }
    let mut downs = Rng::later(seed, 8);
    if opts.faults && downs.chance(0.2) {
        let node = usize::try_from(downs.range(0, 2)).unwrap_or(0);
        actions.replica_down_at(downs.range(0, 100_000), node, downs.range(2_000, 40_000));
    }
    if opts.faults && rng.chance(0.15) {
        kills.lock().expect("kills").guardian_at =
            Some(u32::try_from(rng.range(1, 300)).unwrap_or(1));
    }
    chaos.borrow_mut().on = opts.faults;
    let mut crashes = Rng::later(seed, 3);
    let safety_end = safety_phase(
        &env,
        &mut rng,
        &mut crashes,
        &mut hosts,
        &mut actions,
        &opts,
    )
    .await;
    chaos.borrow_mut().on = false;
    ensemble.set_policy(None);
    *kills.lock().expect("kills") = Kills::default();
    heal(&world);
    trace.say(format!(
        "faults healed (safety phase ended: {safety_end:?})"
    ));
    // Another operator's apply still running holds its tables' locks: it finishes first (as
    // that operator would let it), so the liveness runs are not refused for a lock it holds.
    for op in &mut actions.operators {
        let _ = tokio::time::timeout(RUN_LIMIT, op).await;
    }

    // Sometimes nobody runs apply again: the guardians alone must end every block.
    let rerun = !opts.faults || rng.chance(0.75);
    let runs = if rerun {
        liveness_phase(&plan, &dir, &mut hosts, &trace, &procs).await
    } else {
        trace.say("nobody runs apply again");
        Vec::new()
    };
    // Let the duplication ship what the writers left, and guardians end: their aftercare, or
    // their watch of a block nobody resolves.
    // A guardian whose block an operator must resolve watches it until well past its deadline.
    let left_open = !rerun || runs.last() == Some(&RunEnd::Exit(4));
    let quiet_until = Instant::now()
        + if left_open {
            Duration::from_secs(shape.max_write_block_s) + check::GUARDIAN_LINGER
        } else {
            check::GUARDIAN_AFTER_END
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
    trace_meta_envs(&trace, &deny_log);
    let facts = Facts {
        source: world.config.source_name.clone(),
        target: world.config.target_name.clone(),
        tables: world.tables.clone(),
        writes: writers.log.lock().expect("write log").clone(),
        liveness_runs: runs,
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
        sync_lateness: actions.sync_lateness + chaos.borrow().sync_lateness,
        zk_lateness: zk_lateness.log(),
        at_switch: at_switch.lock().expect("at switch").clone(),
        crashes: procs.crashes(),
        apply_starts: procs.apply_starts(),
        hand_denies: actions.hand_denies.lock().expect("hand denies").clone(),
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
        trace: trace.finish_in(&dir),
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
        // Another application's table already lives on the target and is routed there: the
        // evidence `plan` wants that the meta-proxy relays a 2.6 target (without it a 2.5
        // source's tables are blocked and the run tests nothing).
        target_tables: vec![TableSpec::new("other", 2, 5)],
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
        format!("verify: {}", shape.verify),
        format!("remove_duplication: {}", shape.remove_duplication),
    ];
    let mut yaml = world.plan_yaml(&defaults);
    if let Some(speed_up) = shape.speed_up {
        // The source's cluster line gains `config_sync_during_cutover`.
        let line = format!("  {}: {{ meta:", world.config.source_name);
        yaml = yaml
            .lines()
            .map(|l| match l.strip_suffix(" }") {
                Some(head) if l.starts_with(&line) => format!(
                    "{head}, config_sync_during_cutover: {}ms }}\n",
                    speed_up.as_millis()
                ),
                _ => format!("{l}\n"),
            })
            .collect();
    }
    let path = dir.join("migrations.yaml");
    std::fs::write(&path, yaml).expect("write the plan file");
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

/// The whole host of apply run `host` goes down: its guardians and their supervisor too.
fn crash_host(env: &Env<'_>, host: &str) {
    env.trace.say("its host crashed");
    env.procs.host_crashed();
    env.guardians.borrow_mut().crash(host, env.procs, env.trace);
}

/// The safety phase: apply runs while faults strike; it may be killed at any moment, and run
/// again (on another host) or not; `crashes` draws whether a kill at a ZooKeeper call takes
/// the whole host (a later stream). Returns how the last run ended.
async fn safety_phase(
    env: &Env<'_>,
    rng: &mut Rng,
    crashes: &mut Rng,
    hosts: &mut HostPlan,
    actions: &mut Actions,
    opts: &Options,
) -> RunEnd {
    let trace = env.trace;
    let mut end = RunEnd::Killed;
    let attempts = if opts.faults { rng.range(1, 3) } else { 1 };
    for attempt in 0..attempts {
        let host = hosts.next(rng);
        let host_name = host.name.to_string();
        let mut run = start_apply(env.plan, env.dir, host, trace, env.procs);
        // Killed at one of its ZooKeeper calls (the cut-over's awaits), at a moment, or not.
        let mode = if opts.faults { rng.range(0, 99) } else { 99 };
        if mode < 45 {
            let n = u32::try_from(rng.range(1, 120)).unwrap_or(1);
            env.kills.lock().expect("kills").arm_apply(n);
        }
        let kill_at = (45..65)
            .contains(&mode)
            .then(|| Duration::from_millis(rng.range(0, 90_000)));
        let limit = kill_at.unwrap_or(RUN_LIMIT);
        let deadline = Instant::now() + limit;
        end = loop {
            let next_action = actions.next_at().map_or(deadline, |a| a.min(deadline));
            tokio::select! {
                biased;
                done = &mut run => break match done {
                    Ok(code) => RunEnd::Exit(code),
                    // Killed at a ZooKeeper call: as likely with its whole host as a kill at a
                    // moment, and more likely than that with a block open (its record writes
                    // and guardian are ZooKeeper calls).
                    Err(_) if crashes.chance(0.3) => {
                        crash_host(env, &host_name);
                        RunEnd::Crashed
                    }
                    Err(_) => RunEnd::Killed,
                },
                () = tokio::time::sleep_until(next_action) => {
                    if Instant::now() >= deadline {
                        run.abort();
                        trace.say(if kill_at.is_some() { "apply killed" } else { "apply hung: killed" });
                        if kill_at.is_some() && rng.chance(0.3) {
                            crash_host(env, &host_name);
                            break RunEnd::Crashed;
                        }
                        break if kill_at.is_some() { RunEnd::Killed } else { RunEnd::Hung };
                    }
                    actions.fire(env);
                }
            }
        };
        env.kills.lock().expect("kills").apply_at = None;
        if attempt + 1 < attempts {
            // Somebody notices, sooner or later, and runs apply again; after a host crash, on
            // another host at once (an operator on call, or a job scheduler).
            let within = if end == RunEnd::Crashed {
                3_000
            } else {
                40_000
            };
            tokio::time::sleep(Duration::from_millis(rng.range(0, within))).await;
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
    procs: &Procs,
) -> Vec<RunEnd> {
    let mut ends = Vec::new();
    let mut rng = Rng::new(hosts.runs as u64);
    for _ in 0..LIVENESS_RUNS {
        let host = hosts.next(&mut rng);
        let mut run = start_apply(plan, dir, host, trace, procs);
        let end = tokio::select! {
            // Unbiased, select! polls in an order tokio draws per process.
            biased;
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

/// Puts each deny env change the source meta took, and each server applying one, into the
/// trace at the moment it happened.
fn trace_meta_envs(trace: &Trace, log: &[crate::sim::state::DenyEvent]) {
    use crate::sim::state::DenyEvent;
    for e in log {
        let (at_ms, line) = match e {
            DenyEvent::Meta {
                at_ms,
                app_id,
                value,
            } => {
                let what = value
                    .as_deref()
                    .map_or("deleted".into(), |v| format!("= {v}"));
                (at_ms, format!("source meta: app {app_id} deny env {what}"))
            }
            DenyEvent::Applied {
                at_ms,
                node,
                app_id,
                pidx,
                deny,
            } => (
                at_ms,
                format!("source server {node}: {app_id}.{pidx} applies deny {deny:?}"),
            ),
        };
        trace.at(at_ms.saturating_sub(EPOCH_MS), line);
    }
}
