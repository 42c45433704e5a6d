//! `migrator apply` against simulated clusters and real ZooKeeper with a client load running
//! through meta-proxy: migrations lose no acknowledged write, runs converge after SIGKILL at
//! each step, an outlasted write block is restored, a routing change by someone else stops the
//! switch, stale plans and held locks are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use migrator::pegasus::base::err;
use migrator::pegasus::meta::{MetaClient, MetaOptions};
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::routing::{node_path, Route};
use migrator::sim::load::{count_lost, Load, LoadConfig};
use migrator::sim::metaproxy::MetaProxy;
use migrator::sim::{Directory, SimCluster, Version};

use crate::support::{eventually, meta_client, start_in, unique_root, TestZk};

struct Stage {
    zk: TestZk,
    root: String,
    src: SimCluster,
    dst: SimCluster,
    proxy: MetaProxy,
    dir: tempfile::TempDir,
    tables: Vec<String>,
    load: Option<Load>,
}

fn addrs(sim: &SimCluster) -> Vec<String> {
    sim.metas().iter().map(ToString::to_string).collect()
}

impl Stage {
    async fn new(test: &str, version: Version, tables: &[&str], max_write_block: &str) -> Stage {
        let zk = TestZk::get().await;
        let directory = Directory::default();
        let src = start_in(&directory, "src", 1, version).await;
        let dst = start_in(&directory, "dst", 2, version).await;
        let root = unique_root(test);
        let session = zk.connect().await;
        for t in tables {
            src.create_table(t, 4, 1).unwrap();
            let client = TableClient::new(t, meta_client(&src), TableOptions::default());
            for i in 0..50 {
                client
                    .put(
                        format!("seed{i}").as_bytes(),
                        b"s",
                        format!("seed{i}").as_bytes(),
                    )
                    .await
                    .unwrap();
            }
            let route = Route {
                cluster_name: "src".into(),
                meta_addrs: addrs(&src),
            };
            session
                .create_all(&node_path(&root, t), route.to_json().as_bytes())
                .await
                .unwrap();
        }
        let proxy = MetaProxy::start(session, &root).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let list = |s: &SimCluster| {
            addrs(s)
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut yaml = format!(
            "version: 1\nclusters:\n  src: {{ meta: [{}] }}\n  dst: {{ meta: [{}] }}\nmetaproxy: {{ zookeeper: [\"{}\"], root: {root} }}\n\
             defaults: {{ threshold: 100, max_write_block: {max_write_block} }}\nmigrations:\n",
            list(&src),
            list(&dst),
            zk.addr
        );
        for t in tables {
            yaml.push_str(&format!("  - {{ table: {t}, from: src, to: dst }}\n"));
        }
        std::fs::write(dir.path().join("m.yaml"), yaml).unwrap();
        let tables = tables.iter().map(|t| (*t).to_string()).collect();
        Stage {
            zk,
            root,
            src,
            dst,
            proxy,
            dir,
            tables,
            load: None,
        }
    }

    fn start_load(&mut self) {
        self.start_load_at(300);
    }

    fn start_load_at(&mut self, rate: u32) {
        let cfg = LoadConfig {
            tables: self.tables.clone(),
            resolver: self.proxy.addr(),
            rate,
            writers_per_table: 2,
            op_timeout: Duration::from_millis(500),
        };
        self.load = Some(Load::start(&cfg));
    }

    /// The binary in the stage's directory; apply's waits are bounded so a bug fails fast.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_migrator"));
        c.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if args.first() == Some(&"apply") && args.len() > 1 {
            c.args(["--catch-up-timeout", "60s", "--checkpoint-timeout", "60s"]);
        }
        c
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command(args);
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join(".migrator/journal.jsonl")
    }

    /// Stops the load; returns (acknowledged, lost) read back where routing now points.
    async fn finish_load(&mut self) -> (u64, u64) {
        let report = self.load.take().expect("load running").finish().await;
        let mut clients = HashMap::new();
        let session = self.zk.connect().await;
        for t in &self.tables {
            let (data, _) = session
                .read(&node_path(&self.root, t))
                .await
                .unwrap()
                .unwrap();
            let route = Route::parse(&data).unwrap();
            let sim = if route.cluster_name == "dst" {
                &self.dst
            } else {
                &self.src
            };
            clients.insert(
                t.clone(),
                TableClient::new(t, meta_client(sim), TableOptions::default()),
            );
        }
        let acked = report.acked_writes;
        (acked, count_lost(report.acked, &clients).await)
    }

    async fn routed_to(&self, table: &str) -> String {
        let (data, _) = self
            .zk
            .connect()
            .await
            .read(&node_path(&self.root, table))
            .await
            .unwrap()
            .unwrap();
        Route::parse(&data).unwrap().cluster_name
    }

    async fn dup_count(&self, table: &str) -> usize {
        meta_client(&self.src)
            .query_duplication(table)
            .await
            .unwrap()
            .entry_list
            .len()
    }
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Cut-overs on one source cluster never overlap (default --max-concurrent-cutovers 1): each
/// table's block intent comes after the previous table's switch.
fn assert_cutovers_one_at_a_time(journal: &str) {
    let mut spans: Vec<(u64, u64)> = vec![];
    let records: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for table in ["t0", "t1", "t2"] {
        let at = |step: &str, event: &str| {
            records
                .iter()
                .find(|r| r["table"] == table && r["step"] == step && r["event"] == event)
                .and_then(|r| r["ts_ms"].as_u64())
                .unwrap()
        };
        spans.push((at("block_writes", "intent"), at("switch", "reconfigured")));
    }
    spans.sort_unstable();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "overlapping cut-overs: {spans:?}"
    );
}

async fn migrates_three_tables_under_load(version: Version) {
    let mut s = Stage::new("three", version, &["t0", "t1", "t2"], "10s").await;
    s.start_load();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Apply: 3 migrated"),
        "{}",
        text(&out)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (acked, lost) = s.finish_load().await;
    assert!(acked > 100, "the load ran: {acked}");
    assert_eq!(
        lost, 0,
        "every acknowledged write is readable on the target"
    );
    for t in ["t0", "t1", "t2"] {
        assert_eq!(s.routed_to(t).await, "dst");
        assert_eq!(s.dup_count(t).await, 1);
    }
    let direct = TableClient::new(
        "t0",
        meta_client(&s.src),
        TableOptions {
            op_timeout: Duration::from_millis(300),
            ..TableOptions::default()
        },
    );
    eventually("the source answers ERR_INVALID_STATE", || async {
        direct
            .put(b"x", b"s", b"y")
            .await
            .is_err_and(|e| e.is(err::INVALID_STATE))
    })
    .await;
    let plan = s.run(&["plan", "m.yaml", "--detailed-exitcode"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(String::from_utf8_lossy(&plan.stdout).contains("No changes."));
    let again = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("No changes."),
        "{}",
        text(&again)
    );
    let journal = std::fs::read_to_string(s.journal()).unwrap();
    assert_cutovers_one_at_a_time(&journal);
    assert!(
        journal.lines().any(|l| l.contains("\"write_block_ms\"")),
        "the journal records each write block"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_5_source_migrates_three_tables_under_load_without_losing_a_write() {
    migrates_three_tables_under_load(Version::V2_5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_6_source_migrates_three_tables_under_load_without_losing_a_write() {
    migrates_three_tables_under_load(Version::V2_6).await;
}

/// Waits until the journal has a record of `step`/`event`, then SIGKILLs `child`.
async fn kill_at(child: &mut Child, journal: &Path, step: &str, event: &str) {
    let needle = (
        format!("\"step\":\"{step}\""),
        format!("\"event\":\"{event}\""),
    );
    eventually(&format!("{step} {event} in the journal"), || async {
        let text = std::fs::read_to_string(journal).unwrap_or_default();
        text.lines()
            .any(|l| l.contains(&needle.0) && l.contains(&needle.1))
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn converges_after_sigkill(step: &str, event: &str) {
    let mut s = Stage::new(
        &format!("crash-{step}-{event}"),
        Version::V2_6,
        &["t0"],
        "10s",
    )
    .await;
    s.start_load();
    let mut first = s
        .command(&["apply", "m.yaml", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_at(&mut first, &s.journal(), step, event).await;
    // The killed run's ZooKeeper session (and lock) lives until its session times out; by then
    // its write block may have outlived max_write_block, so a re-run restores writes and
    // reports the abort (exit 3), and the next one completes.
    for attempt in 1..=3 {
        let out = s
            .run(&["apply", "m.yaml", "--auto-approve", "--lock-timeout", "40s"])
            .await;
        match out.status.code() {
            Some(0) => break,
            Some(3) if attempt < 3 => {
                let said = String::from_utf8_lossy(&out.stdout);
                assert!(said.contains("aborted, writes restored"), "{}", text(&out));
            }
            other => panic!(
                "re-run {attempt} after a kill at {step}/{event} exited {other:?}: {}",
                text(&out)
            ),
        }
    }
    let (_, lost) = s.finish_load().await;
    assert_eq!(lost, 0, "nothing lost after a kill at {step}/{event}");
    assert_eq!(s.routed_to("t0").await, "dst");
    assert_eq!(
        s.dup_count("t0").await,
        1,
        "exactly one duplication after a kill at {step}/{event}"
    );
}

macro_rules! crash_test {
    ($name:ident, $step:literal, $event:literal) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            converges_after_sigkill($step, $event).await;
        }
    };
}
crash_test!(
    converges_after_sigkill_once_duplication_is_intended,
    "duplicate",
    "intent"
);
crash_test!(
    converges_after_sigkill_once_duplication_is_added,
    "duplicate",
    "outcome"
);
crash_test!(
    converges_after_sigkill_once_the_block_is_intended,
    "block_writes",
    "intent"
);
crash_test!(
    converges_after_sigkill_once_writes_are_blocked,
    "block_writes",
    "outcome"
);
crash_test!(
    converges_after_sigkill_once_the_switch_is_intended,
    "switch",
    "intent"
);
crash_test!(
    converges_after_sigkill_once_routing_switched,
    "switch",
    "outcome"
);
crash_test!(
    converges_after_sigkill_once_the_source_is_reconfigured,
    "switch",
    "reconfigured"
);

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_outlasting_max_write_block_aborts_restores_writes_and_a_later_apply_completes() {
    let mut s = Stage::new("slow", Version::V2_5, &["t0"], "1s").await;
    // Every duplicate batch takes 1.5 s: a light load still catches up (threshold 100), but the
    // drain after the block cannot finish within max_write_block = 1 s.
    let replica = ReplicaClient::new(Duration::from_secs(2));
    replica
        .command(s.dst.metas()[0], "sim.fault", &["slow_write_ms", "1500"])
        .await
        .unwrap();
    s.start_load_at(20);
    let out = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("aborted, writes restored"),
        "{}",
        text(&out)
    );
    let via_proxy = TableClient::new(
        "t0",
        MetaClient::new(vec![s.proxy.addr()], MetaOptions::default()),
        TableOptions::default(),
    );
    eventually("writes succeed again", || async {
        via_proxy.put(b"after-abort", b"s", b"1").await.is_ok()
    })
    .await;
    assert_eq!(s.routed_to("t0").await, "src");
    replica
        .command(s.dst.metas()[0], "sim.fault", &["slow_write_ms", "0"])
        .await
        .unwrap();
    let again = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let (_, lost) = s.finish_load().await;
    assert_eq!(lost, 0);
    assert_eq!(s.routed_to("t0").await, "dst");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routing_change_by_someone_else_stops_the_switch_and_restores_writes() {
    let mut s = Stage::new("cas", Version::V2_6, &["t0"], "5s").await;
    s.start_load();
    let child = s
        .command(&["apply", "m.yaml", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journal = s.journal();
    eventually("the block is intended", || async {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        text.lines()
            .any(|l| l.contains("\"step\":\"block_writes\"") && l.contains("\"event\":\"intent\""))
    })
    .await;
    let mut reordered = addrs(&s.src);
    reordered.reverse();
    let theirs = Route {
        cluster_name: "src".into(),
        meta_addrs: reordered,
    }
    .to_json();
    s.zk.connect()
        .await
        .set(&node_path(&s.root, "t0"), theirs.as_bytes(), None)
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("changed by someone else") && said.contains(&theirs),
        "{said}"
    );
    let (data, _) =
        s.zk.connect()
            .await
            .read(&node_path(&s.root, "t0"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(String::from_utf8(data).unwrap(), theirs, "nothing switched");
    let direct = TableClient::new("t0", meta_client(&s.src), TableOptions::default());
    eventually("writes restored", || async {
        direct.put(b"after", b"s", b"1").await.is_ok()
    })
    .await;
    let (_, lost) = s.finish_load().await;
    assert_eq!(lost, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_saved_plan_is_refused_naming_what_changed() {
    let s = Stage::new("stale", Version::V2_5, &["t0"], "10s").await;
    let plan = s.run(&["plan", "m.yaml"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let route = Route {
        cluster_name: "src".into(),
        meta_addrs: addrs(&s.src),
    };
    s.zk.connect()
        .await
        .set(&node_path(&s.root, "t0"), route.to_json().as_bytes(), None)
        .await
        .unwrap();
    let out = s.run(&["apply"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("saved plan is stale: t0: routing node changed"),
        "{said}"
    );
    assert_eq!(s.dup_count("t0").await, 0, "nothing was done");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_apply_fails_naming_the_lock_holder() {
    let s = Stage::new("lock", Version::V2_5, &["t0"], "10s").await;
    let holder = r#"{"operator":"alice@ops-1","pid":1,"plan_hash":"abc"}"#;
    let other_session = s.zk.connect().await;
    let lock = migrator::apply::lock::lock_path(&s.root, "t0");
    other_session
        .create_ephemeral(&lock, holder.as_bytes())
        .await
        .unwrap();
    let out = s
        .run(&["apply", "m.yaml", "--auto-approve", "--lock-timeout", "1s"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("alice@ops-1"),
        "{}",
        text(&out)
    );
    assert_eq!(s.dup_count("t0").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_or_approval_apply_refuses() {
    let s = Stage::new("confirm", Version::V2_5, &["t0"], "10s").await;
    let out = s.run(&["apply", "m.yaml"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auto-approve"));
    assert_eq!(s.dup_count("t0").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_metaproxy_apply_stops_for_the_operator_with_writes_restored() {
    let s = Stage::new("manual", Version::V2_5, &["t0"], "10s").await;
    let path = s.dir.path().join("m.yaml");
    let yaml: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("metaproxy:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, yaml).unwrap();
    let out = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("manual cut-over needed: point the clients of t0 at cluster dst"),
        "{said}"
    );
    let apps = meta_client(&s.src)
        .list_apps(Default::default())
        .await
        .unwrap();
    let t0 = apps.iter().find(|a| a.app_name == "t0").unwrap();
    assert!(
        !t0.envs.contains_key("replica.deny_client_request"),
        "writes were restored: {:?}",
        t0.envs
    );
    let direct = TableClient::new("t0", meta_client(&s.src), TableOptions::default());
    eventually("the source takes writes", || async {
        direct.put(b"k", b"s", b"v").await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_abort_before_and_after_the_switch() {
    let mut s = Stage::new("abort", Version::V2_6, &["t0"], "10s").await;
    let status = s.run(&["status", "m.yaml"]).await;
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("t0: src → dst: not started"),
        "{}",
        text(&status)
    );
    // A slow target stretches the drain, so the kill lands with writes blocked, before the switch.
    let replica = ReplicaClient::new(Duration::from_secs(2));
    replica
        .command(s.dst.metas()[0], "sim.fault", &["slow_write_ms", "1500"])
        .await
        .unwrap();
    s.start_load_at(20);
    let mut child = s
        .command(&["apply", "m.yaml", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_at(&mut child, &s.journal(), "block_writes", "outcome").await;
    replica
        .command(s.dst.metas()[0], "sim.fault", &["slow_write_ms", "0"])
        .await
        .unwrap();
    let aborted = s
        .run(&["abort", "m.yaml", "--table", "t0", "--remove-duplication"])
        .await;
    assert_eq!(aborted.status.code(), Some(0), "{}", text(&aborted));
    let said = String::from_utf8_lossy(&aborted.stdout);
    assert!(
        said.contains("writes restored (confirmed on every primary)") && said.contains("removed"),
        "{said}"
    );
    assert_eq!(s.dup_count("t0").await, 0);
    let direct = TableClient::new("t0", meta_client(&s.src), TableOptions::default());
    eventually("the source takes writes", || async {
        direct.put(b"k", b"s", b"v").await.is_ok()
    })
    .await;

    let blocked = s
        .run(&["apply", "m.yaml", "--auto-approve", "--lock-timeout", "40s"])
        .await;
    assert_eq!(
        blocked.status.code(),
        Some(4),
        "the orphaned follower blocks: {}",
        text(&blocked)
    );
    meta_client(&s.dst).drop_app("t0").await.unwrap();
    let done = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    let (_, lost) = s.finish_load().await;
    assert_eq!(lost, 0);
    let status = s.run(&["status", "m.yaml"]).await;
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("t0: src → dst: done"),
        "{}",
        text(&status)
    );
    let refused = s.run(&["abort", "m.yaml"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("clients already use dst"),
        "{}",
        text(&refused)
    );
}
