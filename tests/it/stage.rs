//! A stage for end-to-end tests: a simulated world (source, target, meta-proxies over real
//! ZooKeeper) built by the same world builder as `migrator sandbox`, a plan file in a temp
//! dir, the `migrator` binary run there, and a client load through meta-proxy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use migrator::pegasus::meta::{MetaClient, MetaOptions};
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::sim::load::{count_lost, Load, LoadConfig, LoadReport};
use migrator::sim::metaproxy::Build;
use migrator::sim::world::{TableSpec, World, WorldConfig, ZkSource};
use migrator::sim::{SimCluster, SimConfig, Version};

use crate::support::{meta_client, unique_root, TestZk};

/// How a stage is built.
#[derive(Clone)]
pub struct StageOpts {
    pub versions: (Version, Version),
    pub tables: Vec<&'static str>,
    pub partitions: i32,
    pub defaults: Vec<String>,
    pub metaproxies: usize,
    pub build: Build,
    /// Tables that live on the target already, routed there.
    pub target_tables: Vec<&'static str>,
    pub tweak: fn(&mut SimConfig),
}

impl StageOpts {
    /// One source table `t0` (4 partitions) on `version` clusters, `max_write_block`.
    pub fn new(version: Version, max_write_block: &str) -> Self {
        Self {
            versions: (version, version),
            tables: vec!["t0"],
            partitions: 4,
            defaults: vec![
                "threshold: 100".into(),
                format!("max_write_block: {max_write_block}"),
            ],
            metaproxies: 1,
            build: Build::HostPort,
            // Another application already lives on the target, routed through meta-proxy.
            target_tables: vec!["r0"],
            tweak: |_| {},
        }
    }
}

/// What the load saw and what was lost.
pub struct LoadResult {
    pub report: LoadReport,
    pub lost: u64,
}

pub struct Stage {
    pub w: World,
    pub dir: tempfile::TempDir,
    pub load: Option<Load>,
    _zk: TestZk,
}

/// How long the stage waits at its end for the guardians its runs started to exit: their
/// waits are shortened (`stage_guardian_env`), so one still running is a failure.
const GUARDIANS_EXIT_WITHIN: Duration = Duration::from_secs(60);

/// The guardians of the stage's runs (their record names its unique ZooKeeper root or its
/// directory) must exit by themselves: one that does not is killed by its pid and fails the
/// test, as a test must leave no process behind.
impl Drop for Stage {
    fn drop(&mut self) {
        let patterns = [
            format!("guardian .*{}/", self.w.config.migrator_root),
            format!("guardian .*{}/", self.dir.path().display()),
        ];
        let running = || -> Vec<String> {
            patterns
                .iter()
                .filter_map(|p| Command::new("pgrep").args(["-f", p]).output().ok())
                .flat_map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let until = std::time::Instant::now() + GUARDIANS_EXIT_WITHIN;
        let mut left = running();
        while !left.is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
            left = running();
        }
        for pid in &left {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "guardians {left:?} were still running {GUARDIANS_EXIT_WITHIN:?} after the test"
            );
        }
    }
}

/// Shortens the guardians' waits past a block's end, so each exits soon after its block.
fn stage_guardian_env(c: &mut Command) {
    use migrator::apply::guardian::{AFTERCARE_ENV, LINGER_ENV};
    c.env(LINGER_ENV, "3000").env(AFTERCARE_ENV, "2000");
}

impl Stage {
    pub async fn new(test: &str, opts: StageOpts) -> Stage {
        let zk = TestZk::get().await;
        let config = |v| {
            let mut c = SimConfig::fast(v);
            (opts.tweak)(&mut c);
            c
        };
        let specs = |names: &[&str]| {
            names
                .iter()
                .map(|t| TableSpec::new(t, opts.partitions, 50))
                .collect()
        };
        let w = World::start(WorldConfig {
            source_name: "src".into(),
            target_name: "dst".into(),
            source: config(opts.versions.0),
            target: config(opts.versions.1),
            zookeeper: ZkSource::Existing(zk.addr.clone()),
            root: unique_root(test),
            migrator_root: unique_root(&format!("{test}-migrator")),
            tables: specs(&opts.tables),
            target_tables: specs(&opts.target_tables),
            metaproxies: opts.metaproxies,
            metaproxy_build: opts.build,
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), w.plan_yaml(&opts.defaults)).unwrap();
        Stage {
            w,
            dir,
            load: None,
            _zk: zk,
        }
    }

    pub fn src(&self) -> &SimCluster {
        &self.w.source
    }

    pub fn dst(&self) -> &SimCluster {
        &self.w.target
    }

    /// Rewrites the plan file with `f`.
    pub fn edit_plan(&self, f: impl FnOnce(String) -> String) {
        let path = self.dir.path().join("m.yaml");
        let yaml = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, f(yaml)).unwrap();
    }

    pub fn start_load(&mut self) {
        self.start_load_at(300);
    }

    pub fn start_load_at(&mut self, rate: u32) {
        self.start_load_with(rate, 2, Duration::from_millis(500));
    }

    /// Load of `writers` per table, whose clients wait up to `op_timeout` for each write's
    /// answer.
    pub fn start_load_with(&mut self, rate: u32, writers: usize, op_timeout: Duration) {
        let cfg = LoadConfig {
            tables: self.w.tables.clone(),
            resolver: self.w.proxy_addrs()[0],
            rate,
            writers_per_table: writers,
            op_timeout,
            partition_every: Some(Duration::from_millis(50)),
        };
        self.load = Some(Load::start(&cfg));
    }

    /// The binary in the stage's directory; apply's waits are bounded so a bug fails fast.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_migrator"));
        c.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        stage_guardian_env(&mut c);
        if args.first() == Some(&"apply") && args.len() > 1 {
            c.args(["--catch-up-timeout", "60s", "--checkpoint-timeout", "60s"]);
        }
        c
    }

    /// `apply m.yaml --auto-approve` that stops at failpoint `point` (`call:when`) until the
    /// returned gate file exists; output piped. Wait for the stop with [`Stage::paused`].
    pub fn apply_paused_at(&self, point: &str) -> (Command, PathBuf) {
        let gate = self
            .dir
            .path()
            .join(format!("pause-{}", point.replace(':', "-")));
        let mut apply = self.command(&["apply", "m.yaml", "--auto-approve"]);
        apply
            .env(
                migrator::apply::failpoint::PAUSE_ENV,
                format!("{point}={}", gate.display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        (apply, gate)
    }

    /// Waits until an apply started by [`Stage::apply_paused_at`] stopped at its gate.
    pub async fn paused(gate: &std::path::Path) {
        let reached = gate.with_extension("reached");
        crate::support::eventually_within(
            "apply stops at its pause point",
            Duration::from_secs(60),
            || async { reached.exists() },
        )
        .await;
    }

    /// `apply m.yaml --auto-approve` started quietly, then SIGKILLed as soon as the journal
    /// has a `step`/`event` record: a crash at that point.
    pub async fn apply_killed_at(&self, step: &str, event: &str) {
        let mut child = self
            .command(&["apply", "m.yaml", "--auto-approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.journal_has(step, event).await;
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command(args);
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.path().join(".migrator/journal.jsonl")
    }

    pub fn journal_text(&self) -> String {
        std::fs::read_to_string(self.journal()).unwrap_or_default()
    }

    /// Whether the journal has a `step`/`event` record.
    pub fn journal_says(&self, step: &str, event: &str) -> bool {
        self.journal_text().lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["step"] == step && v["event"] == event)
        })
    }

    /// Waits (up to a minute) until the journal has a `step`/`event` record.
    pub async fn journal_has(&self, step: &str, event: &str) {
        crate::support::eventually_within(
            &format!("{step} {event} in the journal"),
            Duration::from_secs(60),
            || async { self.journal_says(step, event) },
        )
        .await;
    }

    /// Stops the load; reads every acknowledged write back where routing now points.
    pub async fn finish_load(&mut self) -> LoadResult {
        let report = self.load.take().expect("load running").finish().await;
        let mut clients = HashMap::new();
        for t in &self.w.tables {
            let sim = if self.routed_to(t).await == "dst" {
                self.dst()
            } else {
                self.src()
            };
            clients.insert(
                t.clone(),
                TableClient::new(t, meta_client(sim), TableOptions::default()),
            );
        }
        let lost = count_lost(report.acked.clone(), &clients).await;
        LoadResult { report, lost }
    }

    pub async fn routed_to(&self, table: &str) -> String {
        self.w.routed_to(table).await.unwrap().unwrap()
    }

    pub async fn dup_count(&self, table: &str) -> usize {
        meta_client(self.src())
            .query_duplication(table)
            .await
            .unwrap()
            .entry_list
            .len()
    }

    /// A remote command on a meta of `sim` (the simulator's faults).
    pub async fn fault(&self, sim: &SimCluster, args: &[&str]) -> String {
        ReplicaClient::new(Duration::from_secs(2))
            .command(sim.metas()[0], "sim.fault", args)
            .await
            .unwrap()
    }

    /// A client of `table` through the first meta-proxy.
    pub fn proxy_client(&self, table: &str) -> TableClient {
        TableClient::new(
            table,
            MetaClient::new(vec![self.w.proxy_addrs()[0]], MetaOptions::default()),
            TableOptions::default(),
        )
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Waits for `child` to end without blocking the runtime the simulators run on.
pub async fn output(child: std::process::Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// No write acknowledged by `src` after the first one acknowledged by `dst`.
pub fn assert_writes_never_split(s: &Stage, r: &LoadResult) {
    let on = |sim: &migrator::sim::SimCluster| -> Vec<String> {
        sim.replicas().iter().map(ToString::to_string).collect()
    };
    let (src, dst) = (on(s.src()), on(s.dst()));
    let first_on_target = r
        .report
        .acked
        .iter()
        .filter(|a| dst.contains(&a.server))
        .map(|a| a.at)
        .min()
        .expect("the target acknowledged writes");
    let late: Vec<_> = r
        .report
        .acked
        .iter()
        .filter(|a| src.contains(&a.server) && a.at > first_on_target)
        .map(|a| (&a.hash_key, a.at - first_on_target))
        .collect();
    assert!(
        late.is_empty(),
        "the source acknowledged writes after the target did: {late:?}"
    );
}
