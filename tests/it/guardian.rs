//! The write block ends without apply: the guardian apply starts for each block lifts it at
//! the deadline when apply was SIGKILLed before the switch (measured by the client load), and
//! never lifts it once the switch was sent; SIGHUP and a second SIGINT go through the one
//! restore path.

use std::process::{Child, Stdio};
use std::time::Duration;

use migrator::cutover::record::{self, BlockRecord, BlockState};
use migrator::pegasus::messages::duplication::DuplicationStatus;
use migrator::pegasus::replica::ReplicaClient;
use migrator::probe::requests::{self, Answer, Probe};
use migrator::probe::Primaries;
use migrator::sim::Version;

use crate::stage::{text, Stage, StageOpts};
use crate::support::{eventually, eventually_within, meta_client};

/// A stage whose drain cannot finish: once the duplication ships, every duplicate batch to
/// the target takes 10 s, so a run stays in the block until its deadline.
async fn stuck_in_the_block(test: &str, max_write_block: &str) -> (Stage, Child) {
    let opts = StageOpts {
        defaults: vec![
            "threshold: 1000000".into(),
            format!("max_write_block: {max_write_block}"),
        ],
        ..StageOpts::new(Version::V2_6, max_write_block)
    };
    let mut s = Stage::new(test, opts).await;
    s.start_load();
    let child = s
        .command(&["apply", "m.yaml", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let meta = meta_client(s.src());
    eventually_within("DS_LOG", Duration::from_secs(30), || async {
        meta.query_duplication("t0").await.is_ok_and(|r| {
            r.entry_list
                .first()
                .is_some_and(|e| e.status == DuplicationStatus::DS_LOG)
        })
    })
    .await;
    s.fault(s.dst(), &["slow_write_ms", "10000"]).await;
    s.journal_has("block_writes", "outcome").await;
    (s, child)
}

async fn block_record(s: &Stage) -> BlockRecord {
    let path = record::zk_path(&s.w.config.migrator_root, "src", "t0");
    let (bytes, _) = s.w.zk.read(&path).await.unwrap().expect("a block record");
    serde_json::from_slice(&bytes).unwrap()
}

async fn probe_writes(s: &Stage) -> Vec<Answer> {
    let prim = Primaries::read(&meta_client(s.src()), "t0").await.unwrap();
    let probes = ReplicaClient::new(Duration::from_millis(300));
    requests::send(&probes, &prim, Probe::Write, Duration::from_millis(600)).await
}

fn signal(child: &Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_apply_in_the_block_leaves_the_guardian_to_restore_writes_by_the_deadline() {
    let (mut s, mut child) = stuck_in_the_block("guardian-kill", "20s").await;
    child.kill().unwrap();
    child.wait().unwrap();
    let client = s.proxy_client("t0");
    eventually_within(
        "writes are taken again",
        Duration::from_secs(20),
        || async { client.put(b"after-kill", b"s", b"1").await.is_ok() },
    )
    .await;
    let r = s.finish_load().await;
    assert_eq!(r.lost, 0);
    let worst = r.report.write_unavailable_per_partition_ms;
    eprintln!(
        "per-partition windows: {:?}",
        r.report.partition_unavailable_ms
    );
    assert!(
        worst <= 20_000 + 500,
        "writes were taken again within max_write_block 20s (plus a client timeout): {worst} ms"
    );
    let rec = block_record(&s).await;
    assert_eq!(rec.state, BlockState::Lifted, "{rec:?}");
    assert!(rec.note.contains("guardian"), "{rec:?}");
    assert_eq!(s.routed_to("t0").await, "src");
    s.fault(s.dst(), &["slow_write_ms", "0"]).await;
    s.start_load();
    let again = s
        .run(&["apply", "m.yaml", "--auto-approve", "--lock-timeout", "40s"])
        .await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(s.finish_load().await.lost, 0);
    assert_eq!(block_record(&s).await.state, BlockState::Done);
}

#[tokio::test(flavor = "multi_thread")]
async fn once_the_switch_is_sent_the_guardian_never_lifts_the_block() {
    let opts = StageOpts::new(Version::V2_6, "20s");
    let mut s = Stage::new("guardian-switched", opts).await;
    s.start_load();
    s.apply_killed_at("switch", "outcome").await;
    let rec = block_record(&s).await;
    assert!(rec.state.switch_may_have_happened(), "{rec:?}");
    // Well past the deadline: the block stays, because clients may already write to dst.
    let past = rec.deadline_ms + 1_000;
    let now = migrator::apply::journal::now_ms();
    tokio::time::sleep(Duration::from_millis(past.saturating_sub(now))).await;
    assert!(
        probe_writes(&s).await.iter().all(|a| *a != Answer::Served),
        "the source must not take writes after the switch"
    );
    assert_eq!(block_record(&s).await.state, rec.state);
    let again = s
        .run(&["apply", "m.yaml", "--auto-approve", "--lock-timeout", "40s"])
        .await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(s.finish_load().await.lost, 0);
    assert_eq!(block_record(&s).await.state, BlockState::Done);
}

async fn stops_through_the_restore_on(signals: &[&str], test: &str) {
    let (mut s, child) = stuck_in_the_block(test, "30s").await;
    for name in signals {
        signal(&child, name);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("every primary takes writes again"),
        "{}",
        text(&out)
    );
    let rec = block_record(&s).await;
    assert_eq!(rec.state, BlockState::Lifted, "{rec:?}");
    eventually("writes are taken again", || async {
        probe_writes(&s).await.iter().all(|a| *a == Answer::Served)
    })
    .await;
    s.fault(s.dst(), &["slow_write_ms", "0"]).await;
    assert_eq!(s.finish_load().await.lost, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_in_the_block_restores_writes() {
    stops_through_the_restore_on(&["HUP"], "guardian-hup").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_ctrl_c_does_not_skip_the_restore() {
    stops_through_the_restore_on(&["INT", "INT"], "guardian-int").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_credentials_migrators_own_nodes_can_be_changed_only_with_them() {
    let mut s = Stage::new("zk-auth", StageOpts::new(Version::V2_6, "21s")).await;
    s.start_load();
    let mut apply = s.command(&["apply", "m.yaml", "--auto-approve"]);
    apply.env("MIGRATOR_ZK_AUTH", "alice:secret");
    let out = tokio::task::spawn_blocking(move || apply.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.finish_load().await.lost, 0);
    // This test's session has no credentials: it may read the record, not change it.
    let path = record::zk_path(&s.w.config.migrator_root, "src", "t0");
    let (bytes, version) = s.w.zk.read(&path).await.unwrap().unwrap();
    let rec: BlockRecord = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(rec.state, BlockState::Done);
    let denied = s.w.zk.set(&path, b"{}", Some(version)).await.unwrap_err();
    assert!(denied.to_string().contains("not authorized"), "{denied}");
    assert!(s.w.zk.delete(&path, None).await.is_err());
}

/// Runs apply, pauses it just before the switch is sent, runs `meddle`, lets it go on and
/// returns its output.
async fn apply_meddled<F, Fut>(s: &Stage, meddle: F) -> std::process::Output
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut apply, gate) = s.apply_paused_at("switch:before");
    let child = apply.spawn().unwrap();
    Stage::paused(&gate).await;
    meddle().await;
    std::fs::write(&gate, "go").unwrap();
    crate::stage::output(child).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_lost_its_lock_cannot_switch_and_restores_writes() {
    let opts = StageOpts {
        defaults: vec!["threshold: 1000000".into(), "max_write_block: 21s".into()],
        ..StageOpts::new(Version::V2_6, "21s")
    };
    let mut s = Stage::new("lost-lock", opts).await;
    s.start_load();
    let lock = migrator::apply::lock::lock_path(&s.w.config.migrator_root, "t0");
    // Just before the switch is sent, the lock node goes as a session expiry would take it.
    let out = apply_meddled(&s, || async {
        s.w.zk.delete(&lock, None).await.unwrap();
    })
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no longer fences this run"),
        "{}",
        text(&out)
    );
    assert_eq!(s.routed_to("t0").await, "src", "nothing was switched");
    eventually("writes are taken again", || async {
        probe_writes(&s).await.iter().all(|a| *a == Answer::Served)
    })
    .await;
    assert_eq!(s.finish_load().await.lost, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_moved_to_the_target_by_someone_else_counts_as_switched() {
    let opts = StageOpts {
        defaults: vec!["threshold: 1000000".into(), "max_write_block: 21s".into()],
        ..StageOpts::new(Version::V2_6, "21s")
    };
    let mut s = Stage::new("moved-by-other", opts).await;
    s.start_load();
    let target = migrator::routing::Route {
        cluster_name: "dst".into(),
        meta_addrs: migrator::sim::world::addrs(&s.dst().metas()),
    }
    .to_json();
    let path = migrator::routing::node_path(&s.w.root, "t0");
    let out = apply_meddled(&s, || async {
        s.w.zk.set(&path, target.as_bytes(), None).await.unwrap();
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        probe_writes(&s).await.iter().all(|a| *a != Answer::Served),
        "the source never takes writes again"
    );
    assert_eq!(block_record(&s).await.state, BlockState::Done);
    assert_eq!(s.finish_load().await.lost, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_during_apply_waits_for_its_lock_and_names_the_holder() {
    let (mut s, child) = stuck_in_the_block("abort-during", "30s").await;
    let aborted = s
        .run(&["abort", "m.yaml", "--table", "t0", "--lock-timeout", "1s"])
        .await;
    assert_eq!(aborted.status.code(), Some(1), "{}", text(&aborted));
    assert!(
        String::from_utf8_lossy(&aborted.stderr).contains("locked by another apply"),
        "{}",
        text(&aborted)
    );
    assert_eq!(
        block_record(&s).await.state,
        BlockState::Blocking,
        "untouched"
    );
    signal(&child, "INT");
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    s.fault(s.dst(), &["slow_write_ms", "0"]).await;
    assert_eq!(s.finish_load().await.lost, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stderr_does_not_stop_a_cut_over() {
    let mut s = Stage::new("closed-stderr", StageOpts::new(Version::V2_6, "21s")).await;
    s.start_load();
    let mut child = s
        .command(&["apply", "m.yaml", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader of stderr goes away (as when `2>&1 | tee` is killed).
    drop(child.stderr.take());
    let out = crate::stage::output(child).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(s.routed_to("t0").await, "dst");
    assert_eq!(s.finish_load().await.lost, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_moved_by_someone_else_in_the_block_keeps_the_block_when_apply_stops() {
    let (mut s, child) = stuck_in_the_block("moved-then-stopped", "20s").await;
    let target = migrator::routing::Route {
        cluster_name: "dst".into(),
        meta_addrs: migrator::sim::world::addrs(&s.dst().metas()),
    }
    .to_json();
    let path = migrator::routing::node_path(&s.w.root, "t0");
    s.w.zk.set(&path, target.as_bytes(), None).await.unwrap();
    signal(&child, "INT");
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("routing names dst now"),
        "{}",
        text(&out)
    );
    // Past the deadline the guardian leaves it too: clients may already write to dst.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(block_record(&s).await.state, BlockState::Blocking);
    assert!(
        probe_writes(&s).await.iter().all(|a| *a != Answer::Served),
        "the source never takes writes again"
    );
    s.fault(s.dst(), &["slow_write_ms", "0"]).await;
    // Not asserted: 0 lost. A switch by hand before the drain sends clients to dst before
    // the source's last writes shipped; migrator's part is not to make it worse.
    let _ = s.finish_load().await;
}
