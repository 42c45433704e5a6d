//! Owns the processes of a run as tasks on simulated hosts: apply runs, `abort` by another
//! operator, and the guardians apply starts (through the guardian launcher seam); which
//! process holds each ZooKeeper session, so a fault can kill it at any call.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinHandle};

use super::rng::Rng;
use super::trace::Trace;
use crate::clock::{self, Host};
use crate::routing::session::{Connector, Session};
use crate::sim::zk_model::Ensemble;

/// The guardians the run started, by pid.
#[derive(Default)]
pub struct Guardians {
    pub next_pid: u32,
    pub running: BTreeMap<u32, (String, JoinHandle<()>)>,
    /// The apply run (its host name) that started each.
    pub started_by: BTreeMap<u32, String>,
}

impl Guardians {
    /// The host of apply run `host` crashes: the guardians that run started die with it, their
    /// supervisor too, so nothing starts them again.
    pub fn crash(&mut self, host: &str, procs: &Procs, trace: &Trace) {
        let dead: Vec<u32> = self
            .started_by
            .iter()
            .filter(|(_, by)| by.as_str() == host)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in dead {
            if let Some((_, supervisor)) = self.running.get(&pid) {
                supervisor.abort();
            }
            procs.kill(&format!("guardian#{pid}"));
            trace.say(format!("guardian#{pid} dies with its host"));
        }
    }
}

/// Every process of the run that can be killed, by host name, and which holds each
/// ZooKeeper session.
#[derive(Clone, Default)]
pub struct Procs(Arc<Mutex<ProcTable>>);

#[derive(Default)]
struct ProcTable {
    running: BTreeMap<String, AbortHandle>,
    holders: BTreeMap<i64, String>,
    apply_starts: Vec<u64>,
    crashes: Vec<u64>,
}

impl Procs {
    fn table(&self) -> std::sync::MutexGuard<'_, ProcTable> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that the process on host `name` is the task of `handle`.
    pub fn register(&self, name: &str, handle: AbortHandle) {
        self.table().running.insert(name.to_string(), handle);
    }

    /// The host whose process opened `session` (`world` for the world's own).
    #[must_use]
    pub fn holder(&self, session: i64) -> String {
        self.table()
            .holders
            .get(&session)
            .cloned()
            .unwrap_or_else(|| "world".into())
    }

    /// Kills the process on host `name`, if it runs.
    pub fn kill(&self, name: &str) {
        if let Some(h) = self.table().running.remove(name) {
            h.abort();
        }
    }

    /// Notes that an apply run started now (true ms).
    pub fn apply_started(&self) {
        self.table().apply_starts.push(clock::true_now_ms());
    }

    /// Notes that a host crashed now (true ms).
    pub fn host_crashed(&self) {
        self.table().crashes.push(clock::true_now_ms());
    }

    /// When hosts crashed (true ms).
    #[must_use]
    pub fn crashes(&self) -> Vec<u64> {
        self.table().crashes.clone()
    }

    /// When every apply run started (true ms).
    #[must_use]
    pub fn apply_starts(&self) -> Vec<u64> {
        self.table().apply_starts.clone()
    }

    /// Kills the process holding `session`, as SIGKILL would: its task stops at the await it
    /// is in; its sessions expire a session timeout later.
    pub fn kill_holder(&self, session: i64, trace: &Trace) {
        let holder = self.holder(session);
        let handle = self.table().running.remove(&holder);
        if let Some(h) = handle {
            h.abort();
            trace.at(
                trace.elapsed_ms(),
                format!("{holder}: killed at a ZooKeeper call"),
            );
        }
    }

    /// Opens sessions of `ensemble`, remembering which host's process opened each.
    #[must_use]
    pub fn connector(&self, ensemble: &Arc<Ensemble>) -> Connector {
        let (me, ensemble) = (self.clone(), ensemble.clone());
        Rc::new(move |_servers: &[String], auth: Option<&str>| {
            let session = ensemble.open(auth);
            let host = clock::host().map_or_else(|| "world".to_string(), |h| h.name.to_string());
            me.table().holders.insert(session.id(), host);
            Ok(Arc::new(session) as Arc<dyn Session>)
        })
    }
}

/// How one apply run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Exit(u8),
    Killed,
    /// Killed with its host, guardians included.
    Crashed,
    Hung,
}

/// Process ids of the run's processes: guardians count from 1 (the launcher's), apply runs
/// from here, other operators' commands from [`OPERATOR_PIDS`].
const APPLY_PIDS: u32 = 1000;
/// Process ids of other operators' apply and abort.
pub const OPERATOR_PIDS: u32 = 2000;

/// Which host each apply run is on, its clock skew, and the step its clock may take.
pub struct HostPlan {
    skews: Vec<i64>,
    jumps: Vec<Option<clock::Jump>>,
    pub runs: usize,
}

impl HostPlan {
    pub fn draw(rng: &mut Rng) -> HostPlan {
        let skews = (0..3)
            .map(|_| i64::try_from(rng.range(0, 60_000)).unwrap_or(0) - 30_000)
            .collect();
        HostPlan {
            skews,
            jumps: vec![None; 3],
            runs: 0,
        }
    }

    /// Draws from `rng` (a later stream) which hosts' clocks are stepped, when and how far:
    /// each in 3 of 10 runs, within the first 150 s, by up to a minute either way.
    pub fn with_jumps(mut self, rng: &mut Rng, trace: &Trace) -> HostPlan {
        let now = tokio::time::Instant::now();
        for (i, jump) in self.jumps.iter_mut().enumerate() {
            if !rng.chance(0.3) {
                continue;
            }
            let after = rng.range(0, 150_000);
            let by_ms = i64::try_from(rng.range(0, 120_000)).unwrap_or(0) - 60_000;
            let at = trace.elapsed_ms() + after;
            trace.at(at, format!("host {i}: its wall clock steps {by_ms:+} ms"));
            *jump = Some(clock::Jump {
                at: now + Duration::from_millis(after),
                by_ms,
            });
        }
        self
    }

    /// The host of the next apply run.
    pub fn next(&mut self, rng: &mut Rng) -> Host {
        self.runs += 1;
        let i = usize::try_from(rng.range(0, self.skews.len() as u64 - 1)).unwrap_or(0);
        Host {
            name: format!("apply#{} (host {i})", self.runs).into(),
            skew_ms: self.skews[i],
            jump: self.jumps[i],
            pid: APPLY_PIDS + u32::try_from(self.runs).unwrap_or(0),
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
pub fn start_apply(
    plan: &std::path::Path,
    dir: &std::path::Path,
    host: Host,
    trace: &Trace,
    procs: &Procs,
) -> JoinHandle<u8> {
    let args = apply_args(plan, dir);
    let name = host.name.to_string();
    procs.apply_started();
    let run = start_command(
        host,
        trace,
        async move { crate::cli::apply::run(&args).await },
    );
    procs.register(&name, run.abort_handle());
    run
}

/// Runs a command's body on `host` as its process would, saying when it starts, its error,
/// and its exit code (which the task returns).
pub fn start_command(
    host: Host,
    trace: &Trace,
    command: impl std::future::Future<Output = crate::error::Result<crate::exit::Exit>> + Send + 'static,
) -> JoinHandle<u8> {
    let trace = trace.clone();
    tokio::spawn(clock::on_host(host, async move {
        trace.say("starts");
        let code = match command.await {
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

/// Starts guardians as tasks on the host of the apply that starts them.
pub fn launcher(
    guardians: Rc<RefCell<Guardians>>,
    trace: Trace,
    procs: Procs,
) -> crate::apply::guardian::Launcher {
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
        let by = clock::host();
        let (skew, jump) = by.as_ref().map_or((0, None), |h| (h.skew_ms, h.jump));
        if let Some(by) = by {
            g.started_by.insert(pid, by.name.to_string());
        }
        let host = Host {
            name: format!("guardian#{pid}").into(),
            skew_ms: skew,
            jump,
            pid,
        };
        let (trace, procs) = (trace.clone(), procs.clone());
        let handle = tokio::spawn(clock::inherit(async move {
            supervise(&parsed, host, &procs, &trace).await;
        }));
        g.running.insert(pid, (record, handle));
        pid
    })
}

/// How long a supervisor (systemd, say) takes to start a killed guardian again.
const GUARDIAN_RESTART: Duration = Duration::from_secs(2);

/// Runs a guardian on `host` as a supervisor would: a killed one is started again with the
/// same arguments; returns once one ends by itself.
async fn supervise(args: &crate::cli::guardian::Args, host: Host, procs: &Procs, trace: &Trace) {
    let name = host.name.to_string();
    loop {
        let (args, trace2) = (args_copy(args), trace.clone());
        let run = tokio::spawn(clock::on_host(host.clone(), async move {
            let exit = crate::cli::guardian::guard(&args).await;
            trace2.say(format!("ends: {exit:?}"));
        }));
        procs.register(&name, run.abort_handle());
        match run.await {
            Err(e) if e.is_cancelled() => {
                tokio::time::sleep(GUARDIAN_RESTART).await;
                trace.at(trace.elapsed_ms(), format!("{name}: started again"));
            }
            _ => return,
        }
    }
}

fn args_copy(a: &crate::cli::guardian::Args) -> crate::cli::guardian::Args {
    crate::cli::guardian::Args {
        zookeeper: a.zookeeper.clone(),
        record: a.record.clone(),
        record_file: a.record_file.clone(),
    }
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
