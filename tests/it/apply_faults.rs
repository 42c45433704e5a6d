//! `migrator apply` on a world that misbehaves as real clusters do: a source replica server
//! down before the plan, a primary moving during catch-up and during the block, a meta leader
//! change in the block, a meta-proxy whose watch ended, the config-sync speed-up restored
//! after success, abort, and a SIGKILL followed by a re-run, and lag that grew again during
//! verify. Every run: nothing acknowledged is
//! lost, and every partition's write window stays under the budget.

use std::process::Stdio;
use std::time::Duration;

use migrator::pegasus::messages::duplication::DuplicationStatus;
use migrator::pegasus::messages::nodes::NodeStatus;
use migrator::pegasus::replica::ReplicaClient;
use migrator::probe::flags::{self, CONFIG_SYNC};
use migrator::probe::requests::{self, Answer, Probe};
use migrator::probe::Primaries;
use migrator::sim::{SimConfig, Version};

use crate::stage::{assert_writes_never_split, text, LoadResult, Stage, StageOpts};
use crate::support::{eventually, eventually_within, meta_client};

/// The budget plus a client deadline.
const WINDOW_BOUND: Duration = Duration::from_millis(10_500);

fn assert_clean(r: &LoadResult) {
    assert_eq!(
        r.lost, 0,
        "every acknowledged write is readable where routing points"
    );
    assert_eq!(r.report.read_back_mismatches, 0);
    let worst = r.report.write_unavailable_per_partition_ms;
    eprintln!(
        "per-partition windows: {:?}",
        r.report.partition_unavailable_ms
    );
    assert!(
        u128::from(worst) <= WINDOW_BOUND.as_millis(),
        "a partition was write-unavailable for {worst} ms: {:?}",
        r.report.partition_unavailable_ms
    );
}

/// `out` is a successful apply: t0 routed to the target, and the load lost nothing.
async fn migrated_cleanly(s: &mut Stage, out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    assert_eq!(s.routed_to("t0").await, "dst");
    // Writes in flight at the switch get their answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_clean(&s.finish_load().await);
}

async fn apply_in_background(s: &Stage) -> std::process::Child {
    s.command(&["apply", "m.yaml", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_replica_server_down_before_the_plan_does_not_stop_the_migration() {
    let mut s = Stage::new("node-down", StageOpts::new(Version::V2_5, "21s")).await;
    let victim = s.src().replicas()[2].to_string();
    s.fault(s.src(), &["replica_down", &victim, "on"]).await;
    let meta = meta_client(s.src());
    eventually("the meta lists it dead", || async {
        meta.list_nodes()
            .await
            .unwrap()
            .iter()
            .any(|n| n.status == NodeStatus::NS_UNALIVE)
    })
    .await;
    s.start_load();
    let plan = s.run(&["plan", "m.yaml"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("dead replica servers"),
        "{}",
        text(&plan)
    );
    let out = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    migrated_cleanly(&mut s, &out).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_moving_during_catch_up_and_during_the_block_is_followed() {
    let mut s = Stage::new("failover", StageOpts::new(Version::V2_6, "21s")).await;
    s.start_load();
    let child = apply_in_background(&s).await;
    let meta = meta_client(s.src());
    eventually_within("DS_LOG", Duration::from_secs(30), || async {
        meta.query_duplication("t0").await.is_ok_and(|r| {
            r.entry_list
                .first()
                .is_some_and(|e| e.status == DuplicationStatus::DS_LOG)
        })
    })
    .await;
    s.fault(s.src(), &["failover", "t0", "0"]).await;
    s.journal_has("block_writes", "intent").await;
    s.fault(s.src(), &["failover", "t0", "1"]).await;
    let out = crate::stage::output(child).await;
    migrated_cleanly(&mut s, &out).await;
}

/// Slow secondaries on one source server: a write admitted there before the block commits
/// 3 s later (its client waits up to 5 s) and shows meanwhile only as prepared > committed on
/// its primary, while writers of other partitions move on to the target. The drain waits for
/// it to commit and ship, so the source acknowledges nothing after the target's first
/// acknowledgement and nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn the_drain_waits_for_a_logged_write_to_commit_and_ship() {
    let mut s = Stage::new("lagged", StageOpts::new(Version::V2_6, "21s")).await;
    s.fault(s.src(), &["lag", "0", "3000"]).await;
    s.start_load_with(300, 8, Duration::from_secs(5));
    let out = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert!(text(&out).contains("writes in flight"), "{}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let r = s.finish_load().await;
    assert_writes_never_split(&s, &r);
    assert_eq!(r.lost, 0, "every acknowledged write is on the target");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_meta_leader_change_during_the_block_is_survived() {
    let mut s = Stage::new("leader", StageOpts::new(Version::V2_6, "21s")).await;
    s.start_load();
    let child = apply_in_background(&s).await;
    s.journal_has("block_writes", "intent").await;
    s.fault(s.src(), &["leader", "1"]).await;
    let out = crate::stage::output(child).await;
    migrated_cleanly(&mut s, &out).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metaproxy_that_lost_its_watch_stops_apply_after_the_switch_with_writes_blocked() {
    let opts = StageOpts {
        metaproxies: 2,
        ..StageOpts::new(Version::V2_6, "21s")
    };
    let mut s = Stage::new("stale-proxy", opts).await;
    s.start_load();
    let child = apply_in_background(&s).await;
    s.journal_has("block_writes", "intent").await;
    // As a ZooKeeper session expiry would: every proxy's watches end, routes stay cached.
    s.fault(s.src(), &["metaproxy_watch_lost", "on"]).await;
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("still serves it from another cluster") && said.contains("stay blocked"),
        "{}",
        text(&out)
    );
    assert_eq!(s.routed_to("t0").await, "dst", "routing switched");
    let prim = Primaries::read(&meta_client(s.src()), "t0").await.unwrap();
    let probes = ReplicaClient::new(Duration::from_millis(300));
    let answers = requests::send(&probes, &prim, Probe::Write, Duration::from_millis(600)).await;
    assert!(
        answers.iter().all(|a| *a == Answer::Refused),
        "the block (reconfig, the default) is kept on the source: {answers:?}"
    );
    let r = s.finish_load().await;
    assert_eq!(r.lost, 0);
}

fn slow_source_sync(c: &mut SimConfig) {
    c.config_sync_interval = Duration::from_millis(1000);
}

fn speed_up_opts(max_write_block: &str) -> StageOpts {
    StageOpts {
        tweak: slow_source_sync,
        ..StageOpts::new(Version::V2_5, max_write_block)
    }
}

/// Adds `config_sync_during_cutover: 200ms` to the source cluster of the plan.
fn with_speed_up(s: &Stage) {
    s.edit_plan(|yaml| {
        yaml.lines()
            .map(|l| {
                if l.starts_with("  src: { meta:") {
                    format!(
                        "{}, config_sync_during_cutover: 200ms }}\n",
                        l.trim_end_matches(" }")
                    )
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    });
}

async fn source_sync_values(s: &Stage) -> Vec<u64> {
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let mut out = Vec::new();
    for node in s.src().replicas() {
        out.push(flags::read(&replica, node, CONFIG_SYNC).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_speed_up_is_restored_after_success() {
    let mut s = Stage::new("speed-ok", speed_up_opts("21s")).await;
    with_speed_up(&s);
    s.start_load();
    let plan = s.run(&["plan", "m.yaml"]).await;
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("1000 → 200 during its cut-overs"),
        "{}",
        text(&plan)
    );
    let child = apply_in_background(&s).await;
    s.journal_has("speed_up", "outcome").await;
    assert_eq!(source_sync_values(&s).await, vec![200, 200, 200]);
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(source_sync_values(&s).await, vec![1000, 1000, 1000]);
    let restored = s.journal_text().lines().any(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["step"] == "speed_up" && v["event"] == "restored" && v["detail"]["cluster"] == "src"
    });
    assert!(restored, "the journal records the restore");
    assert_clean(&s.finish_load().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_speed_up_is_restored_after_an_abort() {
    let opts = StageOpts {
        defaults: vec!["threshold: 1000000".into(), "max_write_block: 21s".into()],
        ..speed_up_opts("21s")
    };
    let mut s = Stage::new("speed-abort", opts).await;
    with_speed_up(&s);
    s.start_load_at(20);
    let child = apply_in_background(&s).await;
    s.journal_has("speed_up", "outcome").await;
    // A target that takes 10 s per batch: the drain cannot finish in the budget.
    s.fault(s.dst(), &["slow_write_ms", "10000"]).await;
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(source_sync_values(&s).await, vec![1000, 1000, 1000]);
    s.fault(s.dst(), &["slow_write_ms", "0"]).await;
    let r = s.finish_load().await;
    assert_eq!(r.lost, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_speed_up_left_by_a_killed_apply_is_restored_by_the_next_run() {
    let mut s = Stage::new("speed-kill", speed_up_opts("21s")).await;
    with_speed_up(&s);
    s.start_load();
    s.apply_killed_at("speed_up", "outcome").await;
    assert_eq!(
        source_sync_values(&s).await,
        vec![200, 200, 200],
        "left lowered"
    );
    let mut done = false;
    for _ in 0..3 {
        let out = s
            .run(&["apply", "m.yaml", "--auto-approve", "--lock-timeout", "40s"])
            .await;
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out));
        done = out.status.code() == Some(0);
        if done {
            break;
        }
    }
    assert!(done, "a re-run completes");
    assert_eq!(source_sync_values(&s).await, vec![1000, 1000, 1000]);
    assert_clean(&s.finish_load().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_that_grew_during_verify_is_caught_up_again_before_the_block() {
    use migrator::pegasus::envs::DENY_ENV;
    use migrator::pegasus::messages::apps::AppStatus;
    use migrator::pegasus::table::{TableClient, TableOptions};
    // Two tables, one cut-over at a time on the source (the default).
    let mut opts = StageOpts::new(Version::V2_6, "21s");
    opts.tables = vec!["t0", "t1"];
    let s = Stage::new("lag-after-verify", opts).await;
    let out_path = s.dir.path().join("apply.err");
    let (mut apply, gate) = s.apply_paused_at("verify:after");
    apply.stderr(std::fs::File::create(&out_path).unwrap());
    let child = apply.spawn().unwrap();
    Stage::paused(&gate).await;

    // Duplication stops shipping while the source takes 300 writes: the lag is over 100.
    let meta = meta_client(s.src());
    let dupid = meta.query_duplication("t0").await.unwrap().entry_list[0].dupid;
    meta.modify_duplication("t0", dupid, DuplicationStatus::DS_PAUSE)
        .await
        .unwrap();
    let t0 = TableClient::new("t0", meta_client(s.src()), TableOptions::default());
    for i in 0..300 {
        t0.put(format!("late{i}").as_bytes(), b"s", b"v")
            .await
            .unwrap();
    }
    std::fs::write(&gate, "go").unwrap();

    // apply waits for t0's lag again instead of blocking, without holding the source's one
    // cut-over turn: t1 migrates meanwhile.
    let said = || std::fs::read_to_string(&out_path).unwrap_or_default();
    let t0_waits_again = || {
        said()
            .split_once("[t0] verify")
            .is_some_and(|(_, after)| after.contains("[t0] catch up: lag"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !t0_waits_again() {
        assert!(
            std::time::Instant::now() < deadline,
            "no catch-up after verify:\n{}",
            said()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually_within(
        "t1 migrates while t0 waits",
        Duration::from_secs(60),
        || async { s.routed_to("t1").await == "dst" },
    )
    .await;
    let apps = meta.list_apps(AppStatus::AS_AVAILABLE).await.unwrap();
    let app = apps.iter().find(|a| a.app_name == "t0").unwrap();
    assert_eq!(
        app.envs.get(DENY_ENV),
        None,
        "t0: nothing blocked while behind"
    );
    assert_eq!(s.routed_to("t0").await, "src");

    meta.modify_duplication("t0", dupid, DuplicationStatus::DS_LOG)
        .await
        .unwrap();
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", said(), text(&out));
    assert_eq!(s.routed_to("t0").await, "dst");
    let dst = TableClient::new("t0", meta_client(s.dst()), TableOptions::default());
    for i in [0, 299] {
        let got = dst.get(format!("late{i}").as_bytes(), b"s").await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&b"v"[..]),
            "late{i} reached the target"
        );
    }
}
