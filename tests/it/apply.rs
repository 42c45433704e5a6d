//! `migrator apply` against simulated clusters and real ZooKeeper with a client load running
//! through meta-proxy: migrations lose no acknowledged write, runs converge after SIGKILL at
//! each step, an outlasted write block is restored, a routing change by someone else stops the
//! switch, stale plans and held locks are refused.

use std::process::Stdio;
use std::time::Duration;

use migrator::pegasus::base::err;
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::probe::{progress, Primaries};
use migrator::routing::{node_path, Route};
use migrator::sim::world::addrs;
use migrator::sim::Version;

use crate::stage::{text, Stage, StageOpts};
use crate::support::{eventually, meta_client};

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

/// Every partition's longest gap between acknowledged writes of its fixed key stays under
/// `bound`, and the client saw no stale read-back.
fn assert_partition_windows(r: &crate::stage::LoadResult, bound: Duration) {
    let worst = r.report.write_unavailable_per_partition_ms;
    eprintln!(
        "per-partition write-unavailable ms: {:?}; table-wide windows: {:?}",
        r.report.partition_unavailable_ms, r.report.unavailable_windows_ms
    );
    assert!(
        worst > 0,
        "the per-partition load ran: {:?}",
        r.report.partition_unavailable_ms
    );
    assert!(
        u128::from(worst) <= bound.as_millis(),
        "a partition was write-unavailable for {worst} ms (bound {bound:?}): {:?}",
        r.report.partition_unavailable_ms
    );
    assert_eq!(r.report.read_back_mismatches, 0);
}

/// The bound for a fast-simulator cut-over: the block's budget (10 s) plus a client's
/// deadline.
const WINDOW_BOUND: Duration = Duration::from_millis(10_500);

async fn migrates_three_tables_under_load(source: Version, target: Version) {
    let opts = StageOpts {
        versions: (source, target),
        tables: vec!["t0", "t1", "t2"],
        ..StageOpts::new(source, "21s")
    };
    let mut s = Stage::new("three", opts).await;
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
    let r = s.finish_load().await;
    assert!(
        r.report.acked_writes > 100,
        "the load ran: {}",
        r.report.acked_writes
    );
    assert_eq!(
        r.lost, 0,
        "every acknowledged write is readable on the target"
    );
    assert_partition_windows(&r, WINDOW_BOUND);
    for t in ["t0", "t1", "t2"] {
        assert_eq!(s.routed_to(t).await, "dst");
        assert_eq!(s.dup_count(t).await, 1);
    }
    let direct = TableClient::new(
        "t0",
        meta_client(s.src()),
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
    let journal = s.journal_text();
    assert_cutovers_one_at_a_time(&journal);
    assert!(
        journal
            .lines()
            .any(|l| l.contains("\"told_every_primary\":true")),
        "the journal records when every primary told clients to move: {journal}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_5_source_migrates_to_2_5_under_load_without_losing_a_write() {
    migrates_three_tables_under_load(Version::V2_5, Version::V2_5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_5_source_migrates_to_2_6_under_load_without_losing_a_write() {
    migrates_three_tables_under_load(Version::V2_5, Version::V2_6).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_6_source_migrates_to_2_6_under_load_without_losing_a_write() {
    migrates_three_tables_under_load(Version::V2_6, Version::V2_6).await;
}

async fn converges_after_sigkill(step: &str, event: &str) {
    let mut s = Stage::new(
        &format!("crash-{step}-{event}"),
        StageOpts::new(Version::V2_6, "21s"),
    )
    .await;
    s.start_load();
    s.apply_killed_at(step, event).await;
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
                assert!(said.contains("aborted:"), "{}", text(&out));
            }
            other => panic!(
                "re-run {attempt} after a kill at {step}/{event} exited {other:?}: {}",
                text(&out)
            ),
        }
    }
    let r = s.finish_load().await;
    assert_eq!(r.lost, 0, "nothing lost after a kill at {step}/{event}");
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
    // Every duplicate batch takes 10 s: with the catch-up threshold out of the way, the block
    // comes at once and the drain cannot finish within max_write_block = 8 s.
    let opts = StageOpts {
        defaults: vec!["threshold: 1000000".into(), "max_write_block: 21s".into()],
        ..StageOpts::new(Version::V2_5, "21s")
    };
    let mut s = Stage::new("slow", opts).await;
    s.start_load_at(20);
    let child = s
        .command(&["apply", "m.yaml", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let meta = meta_client(s.src());
    eventually("the duplication ships (DS_LOG)", || async {
        meta.query_duplication("t0").await.is_ok_and(|r| {
            r.entry_list.first().is_some_and(|e| {
                e.status == migrator::pegasus::messages::duplication::DuplicationStatus::DS_LOG
            })
        })
    })
    .await;
    s.fault(s.dst(), &["slow_write_ms", "10000"]).await;
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("aborted") && said.contains("every primary takes writes again"),
        "{}",
        text(&out)
    );
    let restored = s
        .journal_text()
        .lines()
        .rev()
        .find(|l| l.contains("\"event\":\"restored\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .unwrap();
    let blocked = restored["detail"]["write_block_ms"].as_u64().unwrap();
    assert!(
        blocked <= 18_000,
        "writes were taken again within max_write_block: {blocked} ms"
    );
    let via_proxy = s.proxy_client("t0");
    eventually("writes succeed again", || async {
        via_proxy.put(b"after-abort", b"s", b"1").await.is_ok()
    })
    .await;
    assert_eq!(s.routed_to("t0").await, "src");
    s.fault(s.dst(), &["slow_write_ms", "0"]).await;
    let again = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let r = s.finish_load().await;
    assert_eq!(r.lost, 0);
    assert_eq!(s.routed_to("t0").await, "dst");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routing_change_by_someone_else_stops_the_switch_and_restores_writes() {
    let mut s = Stage::new("cas", StageOpts::new(Version::V2_6, "21s")).await;
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
    let mut reordered = addrs(&s.src().metas());
    reordered.reverse();
    let theirs = Route {
        cluster_name: "src".into(),
        meta_addrs: reordered,
    }
    .to_json();
    s.w.zk
        .set(&node_path(&s.w.root, "t0"), theirs.as_bytes(), None)
        .await
        .unwrap();
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("changed by someone else") && said.contains(&theirs),
        "{said}"
    );
    let (data, _) =
        s.w.zk
            .read(&node_path(&s.w.root, "t0"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(String::from_utf8(data).unwrap(), theirs, "nothing switched");
    let direct = TableClient::new("t0", meta_client(s.src()), TableOptions::default());
    eventually("writes restored", || async {
        direct.put(b"after", b"s", b"1").await.is_ok()
    })
    .await;
    let r = s.finish_load().await;
    assert_eq!(r.lost, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_saved_plan_is_refused_naming_what_changed() {
    let s = Stage::new("stale", StageOpts::new(Version::V2_5, "21s")).await;
    let plan = s.run(&["plan", "m.yaml"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let route = Route {
        cluster_name: "src".into(),
        meta_addrs: addrs(&s.src().metas()),
    };
    s.w.zk
        .set(
            &node_path(&s.w.root, "t0"),
            route.to_json().as_bytes(),
            None,
        )
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
    let s = Stage::new("lock", StageOpts::new(Version::V2_5, "21s")).await;
    let holder = r#"{"operator":"alice@ops-1","pid":1,"plan_hash":"abc"}"#;
    let other_session = migrator::routing::zk::Zk::connect(
        std::slice::from_ref(&s.w.zk_addr),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let lock = migrator::apply::lock::lock_path(&s.w.config.migrator_root, "t0");
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
    let s = Stage::new("confirm", StageOpts::new(Version::V2_5, "21s")).await;
    let out = s.run(&["apply", "m.yaml"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auto-approve"));
    assert_eq!(s.dup_count("t0").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_metaproxy_apply_stops_for_the_operator_with_writes_restored() {
    let s = Stage::new("manual", StageOpts::new(Version::V2_5, "21s")).await;
    s.edit_plan(|yaml| {
        let mut in_metaproxy = false;
        yaml.lines()
            .filter(|l| {
                if !l.starts_with(' ') {
                    in_metaproxy = l.starts_with("metaproxy:");
                }
                !in_metaproxy
            })
            .map(|l| format!("{l}\n"))
            .collect()
    });
    let out = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("manual cut-over needed: point the clients of t0 at cluster dst"),
        "{said}"
    );
    let apps = meta_client(s.src())
        .list_apps(Default::default())
        .await
        .unwrap();
    let t0 = apps.iter().find(|a| a.app_name == "t0").unwrap();
    assert!(
        !t0.envs.contains_key("replica.deny_client_request"),
        "writes were restored: {:?}",
        t0.envs
    );
    let direct = TableClient::new("t0", meta_client(s.src()), TableOptions::default());
    eventually("the source takes writes", || async {
        direct.put(b"k", b"s", b"v").await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_abort_before_and_after_the_switch() {
    let opts = StageOpts {
        defaults: vec!["threshold: 1000".into(), "max_write_block: 21s".into()],
        ..StageOpts::new(Version::V2_6, "21s")
    };
    let mut s = Stage::new("abort", opts).await;
    let status = s.run(&["status", "m.yaml"]).await;
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("t0: src → dst: not started"),
        "{}",
        text(&status)
    );
    // A slow target stretches the drain, so the kill lands with writes blocked, before the switch.
    s.fault(s.dst(), &["slow_write_ms", "1500"]).await;
    s.start_load_at(20);
    s.apply_killed_at("block_writes", "outcome").await;
    s.fault(s.dst(), &["slow_write_ms", "0"]).await;
    let aborted = s
        .run(&[
            "abort",
            "m.yaml",
            "--table",
            "t0",
            "--remove-duplication",
            "--lock-timeout",
            "40s",
        ])
        .await;
    assert_eq!(aborted.status.code(), Some(0), "{}", text(&aborted));
    let said = String::from_utf8_lossy(&aborted.stdout);
    // The killed run's lock outlives it by a session timeout; by the time abort holds it the
    // guardian may already have lifted the block at its deadline.
    let record = migrator::cutover::record::zk_path(&s.w.config.migrator_root, "src", "t0");
    let (bytes, _) = s.w.zk.read(&record).await.unwrap().unwrap();
    let rec: migrator::cutover::record::BlockRecord = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        rec.state,
        migrator::cutover::record::BlockState::Lifted,
        "{rec:?}"
    );
    assert!(
        said.contains("removed")
            && (said.contains("writes restored: every primary takes writes again")
                || rec.note.contains("guardian")),
        "{said} / {rec:?}"
    );
    assert_eq!(s.dup_count("t0").await, 0);
    let direct = TableClient::new("t0", meta_client(s.src()), TableOptions::default());
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
    meta_client(s.dst()).drop_app("t0").await.unwrap();
    let done = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    let r = s.finish_load().await;
    assert_eq!(r.lost, 0);
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

/// A block record whose deny env was never set (apply killed between writing the one and
/// setting the other) is not reported as blocked writes; once the env is on the meta it is.
#[tokio::test(flavor = "multi_thread")]
async fn status_tells_an_open_block_record_from_a_deny_env_in_force() {
    use migrator::cutover::record::{zk_path, BlockRecord, BlockState, RecordStore};
    use migrator::pegasus::envs::DENY_ENV;

    let s = Stage::new("status-record", StageOpts::new(Version::V2_6, "60s")).await;
    let now = migrator::apply::journal::now_ms();
    let record = BlockRecord {
        source_cluster: "src".into(),
        source_metas: vec![],
        target_cluster: "dst".into(),
        table: "t0".into(),
        app_id: 1,
        deny_value: "timeout*write".into(),
        started_ms: now,
        deadline_ms: now + 60_000,
        give_up_ms: now + 50_000,
        state: BlockState::Blocking,
        owner: "test@host pid 1".into(),
        note: String::new(),
        routing: None,
        fence: None,
        fence_epoch: None,
        exact_keys: 0,
        superseded: false,
    };
    let store = RecordStore::Zk {
        zk: s.w.zk.clone(),
        path: zk_path(&s.w.config.migrator_root, "src", "t0"),
    };
    store.put(&record, None).await.unwrap();

    let open = s.run(&["status", "m.yaml"]).await;
    let said = String::from_utf8_lossy(&open.stdout);
    assert!(
        said.contains("block record open (timeout*write")
            && said.contains("deny env not set on src: writes are taken")
            && !said.contains("writes blocked"),
        "{}",
        text(&open)
    );

    meta_client(s.src())
        .set_app_envs("t0", &[(DENY_ENV, "timeout*write")])
        .await
        .unwrap();
    let blocked = s.run(&["status", "m.yaml"]).await;
    let said = String::from_utf8_lossy(&blocked.stdout);
    assert!(
        said.contains("writes blocked (timeout*write)") && !said.contains("deny env not set"),
        "{}",
        text(&blocked)
    );
}

/// Each primary starts shipping at its own server's first duplication sync after the meta's
/// DS_LOG; a block before that would drain up to a sync period longer than the budget says.
#[tokio::test(flavor = "multi_thread")]
async fn the_block_begins_only_once_every_primary_ships() {
    let opts = StageOpts {
        defaults: vec![
            "threshold: 100".into(),
            "max_write_block: 21s".into(),
            "verify: off".into(),
        ],
        // Three servers a second apart: DS_LOG reaches the last primary up to 3 s late.
        tweak: |c| c.dup_sync_interval = Duration::from_secs(3),
        ..StageOpts::new(Version::V2_5, "21s")
    };
    let s = Stage::new("ships-first", opts).await;
    let (mut apply, gate) = s.apply_paused_at("set_deny:before");
    let child = apply.spawn().unwrap();
    Stage::paused(&gate).await;
    let meta = meta_client(s.src());
    let dupid = meta.query_duplication("t0").await.unwrap().entry_list[0].dupid;
    let prim = Primaries::read(&meta, "t0").await.unwrap();
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let parts = progress::read(&replica, &prim, Some(dupid), Duration::from_secs(2)).await;
    let idle = progress::not_shipping(&parts);
    std::fs::write(&gate, "go").unwrap();
    let out = crate::stage::output(child).await;
    assert!(
        idle.is_empty(),
        "partitions {idle:?} did not ship yet at the block"
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
