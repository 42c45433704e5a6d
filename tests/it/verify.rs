//! `verify` against simulated clusters over TCP: equal tables report nothing; changed,
//! missing and extra records are each reported exactly, expiry included; different partition
//! counts; expired records are invisible on both sides; records still being copied settle;
//! memory stays at a few batches whatever the table's size; the command exits 2 on a
//! corrupted copy (`sim.fault corrupt`) and refuses a source that denies reads; keys not
//! compared make the verdict incomplete (exit 5, the gate stops); a failed or dropped run
//! releases its scanners; a split is seen; a killed run resumes; both sides read at once over
//! a slow network; differences go to a file and are re-checked alone; tables share each
//! cluster's limit; three shard processes merge to one run's verdict.

use std::sync::Arc;
use std::time::Duration;

use migrator::pegasus::key;
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::sim::state::Counted;
use migrator::sim::{Directory, SimCluster, Version};
use migrator::verify::compare::Kind;
use migrator::verify::{self, recheck::Settle, Mode, Options, Progress, Verdict};

use crate::support::{meta_client, start_in};

struct Pair {
    a: SimCluster,
    b: SimCluster,
    src: TableClient,
    dst: TableClient,
}

async fn pair(src_partitions: i32, dst_partitions: i32) -> Pair {
    let dir = Directory::default();
    let a = start_in(&dir, "va", 1, Version::V2_5).await;
    let b = start_in(&dir, "vb", 2, Version::V2_6).await;
    a.create_table("t", src_partitions, 1).unwrap();
    b.create_table("t", dst_partitions, 1).unwrap();
    let opts = TableOptions::default();
    let src = TableClient::new("t", meta_client(&a), opts);
    let dst = TableClient::new("t", meta_client(&b), opts);
    Pair { a, b, src, dst }
}

/// Record `i`: hash key, sort key, value, expiry (every 10th expires in an hour).
fn record(i: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>, u32) {
    let expire = if i % 10 == 0 {
        key::epoch_now() / 100 * 100 + 3600
    } else {
        0
    };
    (
        format!("user{i:05}").into_bytes(),
        format!("s{}", i % 3).into_bytes(),
        format!("value-{i}").into_bytes(),
        expire,
    )
}

async fn fill(t: &TableClient, n: usize) {
    for i in 0..n {
        let (h, s, v, e) = record(i);
        t.put_expiring(&h, &s, &v, e).await.unwrap();
    }
}

fn quick() -> Options {
    Options {
        batch: 50,
        settle: Settle {
            rounds: 2,
            first_pause: Duration::from_millis(50),
            within: Duration::from_secs(5),
        },
        ..Options::default()
    }
}

async fn run(p: &Pair, opts: Options) -> verify::Outcome {
    verify::verify(&p.src, &p.dst, opts, Arc::new(Progress::default()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn equal_tables_report_nothing_whatever_the_partition_counts() {
    for (s, d) in [(8, 8), (8, 4), (4, 16)] {
        let p = pair(s, d).await;
        fill(&p.src, 300).await;
        fill(&p.dst, 300).await;
        // Some batches on each side end at the servers' iteration time limit (error 7).
        for sim in [&p.a, &p.b] {
            sim.cluster().faults.arm(Counted::ScanSlow, "t", 5);
        }
        // Batches of 5: every partition has batches that leave a scanner open, so can be cut.
        let o = run(
            &p,
            Options {
                batch: 5,
                ..quick()
            },
        )
        .await;
        for sim in [&p.a, &p.b] {
            assert_eq!(sim.cluster().faults.left(Counted::ScanSlow, "t"), 0);
        }
        assert_eq!(o.verdict, Verdict::Equal, "{s}→{d}: {:?}", o.differing);
        assert_eq!(
            (o.scanned.scanned, o.scanned.matched),
            (300, 300),
            "{s}→{d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_missing_extra_and_expiry_differences_are_each_reported_exactly() {
    let p = pair(8, 4).await;
    fill(&p.src, 200).await;
    fill(&p.dst, 200).await;
    let (h, s, _, _) = record(3);
    p.dst.put(&h, &s, b"changed").await.unwrap();
    let (h, s, v, _) = record(4);
    p.dst
        .put_expiring(&h, &s, &v, key::epoch_now() + 999)
        .await
        .unwrap();
    for i in [5, 6] {
        let (h, s, _, _) = record(i);
        p.dst.remove(&h, &s).await.unwrap();
    }
    for i in 0..3 {
        p.dst
            .put(format!("extra{i}").as_bytes(), b"x", b"y")
            .await
            .unwrap();
    }
    // Expired on one side only: invisible, so no difference.
    p.src.put_ttl(b"gone", b"x", b"y", Some(0)).await.unwrap();
    let o = run(&p, quick()).await;
    assert_eq!(
        (
            o.count(Kind::Different),
            o.count(Kind::Missing),
            o.count(Kind::Extra)
        ),
        (2, 2, 3),
        "{:?}",
        o.differing
    );
    let text = verify::report::lines("t", "va", "vb", &o, 10).join("\n");
    assert!(text.contains("missing   user00005 / s2"), "{text}");
    assert!(text.contains("extra     extra0 / x"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn expiries_given_by_a_default_ttl_are_not_compared_but_values_are() {
    let p = pair(4, 4).await;
    // The target gives every put without expiry one of its own (db_expire_ts).
    meta_client(&p.b)
        .set_app_envs("t", &[("default_ttl", "86400")])
        .await
        .unwrap();
    for i in 0..50 {
        let (h, s, v, _) = record(i);
        p.src.put(&h, &s, &v).await.unwrap();
        p.dst.put(&h, &s, &v).await.unwrap();
    }
    let (h, s, _, _) = record(9);
    p.dst.put(&h, &s, b"changed").await.unwrap();
    let ttl = p.dst.ttl(&record(1).0, &record(1).1).await.unwrap();
    assert!(
        ttl.is_some_and(|t| t.is_some_and(|secs| secs > 86_000)),
        "the target gave it a TTL: {ttl:?}"
    );

    // Expired on the source, still there on the target for a few minutes (stamped later by
    // the lag): moving, not extra. One that stays for hours is extra.
    let now = key::epoch_now();
    p.src.put_expiring(b"old", b"x", b"v", now).await.unwrap();
    p.dst
        .put_expiring(b"old", b"x", b"v", now + 300)
        .await
        .unwrap();
    p.dst
        .put_expiring(b"stale", b"x", b"v", now + 5000)
        .await
        .unwrap();

    let o = run(&p, quick()).await;
    assert!(!o.expiry_compared);
    let keys = |ds: &[verify::compare::Diff]| ds.iter().map(|d| d.key.clone()).collect::<Vec<_>>();
    assert_eq!(
        keys(&o.differing),
        vec![
            key::composite_key(b"stale", b"x").unwrap(),
            key::composite_key(&h, &s).unwrap()
        ],
        "the changed value and the lasting extra: {:?}",
        o.differing
    );
    assert_eq!(
        keys(&o.changing),
        vec![key::composite_key(b"old", b"x").unwrap()]
    );
    let text = verify::report::lines("t", "va", "vb", &o, 10).join("\n");
    assert!(text.contains("expiries not compared"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corruption_fault_is_exactly_what_verify_finds_even_twice_and_over_expired_records() {
    let p = pair(4, 4).await;
    fill(&p.src, 120).await;
    fill(&p.dst, 120).await;
    // Expired records sort first in each partition; a corruption must not waste itself on them.
    for i in 0..12 {
        p.dst
            .put_ttl(format!("a-gone{i}").as_bytes(), b"x", b"y", Some(0))
            .await
            .unwrap();
    }
    let replica = ReplicaClient::new(Duration::from_secs(2));
    for _ in 0..2 {
        let said = replica
            .command(p.b.metas()[0], "sim.fault", &["corrupt", "t", "9"])
            .await
            .unwrap();
        assert!(said.contains("3 changed, 3 dropped, 3 added"), "{said}");
    }
    let o = run(&p, quick()).await;
    let a = o.after_settling;
    assert_eq!(
        (a.different, a.missing, a.extra),
        (6, 6, 6),
        "{:?}",
        o.differing
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_estimated_record_count_comes_from_2_5_counters_and_master_metrics() {
    use migrator::probe::{keys, Primaries};
    let p = pair(4, 8).await;
    fill(&p.src, 100).await;
    fill(&p.dst, 60).await;
    let replica = ReplicaClient::new(Duration::from_secs(2));
    for (sim, want) in [(&p.a, 100), (&p.b, 60)] {
        let meta = meta_client(sim);
        // Refreshed every rdb_stat_interval (200 ms here): it catches up with the writes.
        crate::support::eventually("the estimate catches up", || async {
            let prim = Primaries::read(&meta, "t").await.unwrap();
            keys::estimated_keys(&replica, &prim).await == Some(want)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_still_being_copied_settle_before_they_count() {
    let p = pair(4, 4).await;
    fill(&p.src, 100).await;
    fill(&p.dst, 100).await;
    // Written on the source now and on the target 300 ms later, as duplication would.
    let (src, dst) = (p.src.clone(), p.dst.clone());
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            let k = format!("late{i}");
            src.put(k.as_bytes(), b"s", b"v").await.unwrap();
            let dst = dst.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                dst.put(k.as_bytes(), b"s", b"v").await.unwrap();
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut opts = quick();
    opts.settle = Settle {
        rounds: 5,
        first_pause: Duration::from_millis(400),
        within: Duration::from_secs(20),
    };
    let o = run(&p, opts).await;
    writer.await.unwrap();
    assert_eq!(o.differences(), 0, "{:?}", o.differing);
}

/// A counter written every few ms on the source, reaching the target 300 ms later, until the
/// returned flag is set; the task ends then.
fn hot_counter(
    p: &Pair,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let (src, dst, halt) = (p.src.clone(), p.dst.clone(), stop.clone());
    let writer = tokio::spawn(async move {
        let mut i = 0u64;
        while !halt.load(Ordering::Relaxed) {
            i += 1;
            let v = i.to_string();
            src.put(b"counter", b"n", v.as_bytes()).await.unwrap();
            let dst = dst.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                dst.put(b"counter", b"n", v.as_bytes()).await.unwrap();
            });
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    (stop, writer)
}

/// Settling quick enough for a test, long enough for a key written every 3 ms to be seen
/// changing.
fn settle_while_written() -> Options {
    let mut opts = quick();
    opts.settle = Settle {
        rounds: 3,
        first_pause: Duration::from_millis(100),
        within: Duration::from_secs(10),
    };
    opts
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_written_all_along_is_not_compared_and_hides_no_real_difference() {
    use std::sync::atomic::Ordering;
    let p = pair(4, 4).await;
    fill(&p.src, 100).await;
    fill(&p.dst, 100).await;
    let (h, s, _, _) = record(7);
    p.dst.put(&h, &s, b"changed").await.unwrap();
    let (stop, writer) = hot_counter(&p);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let o = run(&p, settle_while_written()).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let counter = key::composite_key(b"counter", b"n").unwrap();
    assert_eq!(
        o.changing.iter().map(|d| &d.key).collect::<Vec<_>>(),
        vec![&counter],
        "{o:?}"
    );
    assert_eq!(
        o.differences(),
        1,
        "only the real difference: {:?}",
        o.differing
    );
    assert_eq!(o.verdict, Verdict::Different, "a real difference wins");
    assert_eq!(o.differing[0].key, key::composite_key(&h, &s).unwrap());
    assert_eq!(
        (o.after_settling.different, o.after_settling.changing),
        (1, 1)
    );
    let text = verify::report::lines("t", "va", "vb", &o, 10).join("\n");
    assert!(
        text.contains("1 still being written on the source: not compared"),
        "{text}"
    );
    assert!(text.contains("changing  counter / n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_not_compared_make_the_verdict_incomplete_never_equal() {
    use std::sync::atomic::Ordering;
    // Only a key still being written differs: nothing differs where compared, but that key
    // was not compared, so the tables are not known to be equal.
    let p = pair(4, 4).await;
    fill(&p.src, 100).await;
    fill(&p.dst, 100).await;
    let (stop, writer) = hot_counter(&p);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let o = run(&p, settle_while_written()).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!((o.differences(), o.not_compared()), (0, 1), "{o:?}");
    assert_eq!(o.verdict, Verdict::Incomplete);
    let text = verify::report::lines("t", "va", "vb", &o, 10).join("\n");
    assert!(
        text.contains("t va → vb: incomplete: no difference where compared, 1 key(s) not compared"),
        "{text}"
    );

    // Differences past the suspect cap are not re-read: not compared either, not different.
    let p = pair(4, 4).await;
    fill(&p.src, 60).await;
    fill(&p.dst, 60).await;
    let replica = ReplicaClient::new(Duration::from_secs(2));
    replica
        .command(p.b.metas()[0], "sim.fault", &["corrupt", "t", "3"])
        .await
        .unwrap();
    let capped = Options {
        max_suspects: 0,
        ..quick()
    };
    let o = run(&p, capped).await;
    assert_eq!((o.differences(), o.not_rechecked), (0, 3), "{o:?}");
    assert_eq!(o.verdict, Verdict::Incomplete);
    let text = verify::report::lines("t", "va", "vb", &o, 10).join("\n");
    assert!(
        text.contains("3 found and not re-read (past the suspect cap): not compared"),
        "{text}"
    );
    // With room to re-read them, the same keys are differences.
    let o = run(&p, quick()).await;
    assert_eq!((o.differences(), o.verdict), (3, Verdict::Different));
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_stays_at_a_few_batches_and_sample_mode_checks_keys_and_a_sample() {
    // Two groups, each merging 4 source partitions against 1 target partition.
    let p = pair(8, 2).await;
    fill(&p.src, 3000).await;
    fill(&p.dst, 3000).await;
    let (h, s, _, _) = record(7);
    p.dst.put(&h, &s, b"changed").await.unwrap();
    let (h, s, _, _) = record(8);
    p.dst.remove(&h, &s).await.unwrap();
    let full = run(&p, quick()).await;
    assert_eq!(full.scanned.scanned, 3000);
    // Per partition a batch (50) in hand and up to three read ahead (two in its channel, one
    // waiting to go in), and a batch per side of the merge, whatever the table's size.
    assert!(
        full.max_in_hand <= ((4 + 1) * 4 + 2) * 50,
        "held {} records at once",
        full.max_in_hand
    );
    assert!(full.max_in_hand >= 50, "the measure sees the buffers");
    assert_eq!(
        (full.count(Kind::Different), full.count(Kind::Missing)),
        (1, 1)
    );

    let sample = Options {
        mode: Mode::Sample,
        sample_rate: 0.5,
        ..quick()
    };
    let o = run(&p, sample).await;
    assert_eq!(o.count(Kind::Missing), 1, "every key's presence is checked");
    assert!(
        (1000..2000).contains(&o.values_compared),
        "about half the values: {}",
        o.values_compared
    );
    let sampled = sample
        .sample()
        .contains(&key::composite_key(b"user00007", b"s1").unwrap());
    assert_eq!(o.count(Kind::Different), u64::from(sampled));
    let said = o.sample.unwrap();
    assert_eq!((said.rate, said.salt), (0.5, sample.sample_salt));
    let text = verify::report::lines("t", "va", "vb", &o, 10).join("\n");
    assert!(
        text.contains(&format!("--sample-salt {} repeats this sample", said.salt)),
        "{text}"
    );
    assert!(
        text.contains("catches one of 1 with chance 50.0%, of 10 99.9%, of 100 100.0%; 7 for 99%"),
        "{text}"
    );

    // Another salt samples other hash keys: over runs, every key's value is compared.
    let mut caught = 0;
    for salt in 0..8 {
        let o = run(
            &p,
            Options {
                sample_salt: salt,
                ..sample
            },
        )
        .await;
        caught += o.count(Kind::Different);
    }
    assert!((1..8).contains(&caught), "caught in {caught} of 8 runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_finds_a_corrupted_copy_before_the_cut_over_and_exits_2() {
    use crate::stage::{text, Stage, StageOpts};
    let mut s = Stage::new("verify-cli", StageOpts::new(Version::V2_6, "21s")).await;
    let early = s.run(&["verify", "m.yaml"]).await;
    assert_eq!(early.status.code(), Some(1), "{}", text(&early));
    assert!(
        text(&early).contains("t0 does not exist on dst: nothing to compare yet"),
        "{}",
        text(&early)
    );
    s.start_load();
    // Duplicated and caught up, stopped just before the block: both sides serve reads.
    let mut apply = s.command(&["apply", "m.yaml", "--auto-approve"]);
    apply.env(migrator::apply::failpoint::ENV, "set_deny:before");
    let out = tokio::task::spawn_blocking(move || apply.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
    s.finish_load().await;
    // The killed run left its block open; lift it now rather than race its deadline.
    let lifted = s
        .run(&["abort", "m.yaml", "--table", "t0", "--lock-timeout", "20s"])
        .await;
    assert_eq!(lifted.status.code(), Some(0), "{}", text(&lifted));
    assert!(
        text(&lifted).contains("open block record"),
        "abort closes the block record the killed run left: {}",
        text(&lifted)
    );

    let equal = s.run(&["verify", "m.yaml"]).await;
    assert_eq!(equal.status.code(), Some(0), "{}", text(&equal));
    assert!(
        String::from_utf8_lossy(&equal.stdout).contains("t0 src → dst: equal"),
        "{}",
        text(&equal)
    );

    // That run reached a verdict: nothing is left to resume.
    let resume = s.run(&["verify", "m.yaml", "--resume"]).await;
    assert_eq!(resume.status.code(), Some(1), "{}", text(&resume));
    assert!(
        text(&resume).contains("no checkpoint to resume from")
            && text(&resume).contains(".migrator/verify/t0.src.dst.json"),
        "{}",
        text(&resume)
    );

    let said = s.fault(s.dst(), &["corrupt", "t0", "6"]).await;
    assert!(said.contains("2 changed, 2 dropped, 2 added"), "{said}");
    let out = s
        .run(&["verify", "m.yaml", "--json", "--settle-rounds", "1"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["tables"][0];
    assert_eq!(
        (&t["equal"], &t["verdict"]),
        (&false.into(), &"different".into())
    );
    let kinds: Vec<&str> = t["outcome"]["differing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for (kind, n) in [("missing", 2), ("extra", 2), ("different", 2)] {
        assert_eq!(
            kinds.iter().filter(|k| **k == kind).count(),
            n,
            "{kind}: {v}"
        );
    }
    // The differences to a file, and only those keys checked again.
    let out = s
        .run(&[
            "verify",
            "m.yaml",
            "--settle-rounds",
            "1",
            "--diff-out",
            "d.ndjson",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stage_dir = s
        .journal()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let written = std::fs::read_to_string(stage_dir.join("d.ndjson")).unwrap();
    assert_eq!(written.lines().count(), 6, "{written}");
    let out = s
        .run(&[
            "verify",
            "m.yaml",
            "--settle-rounds",
            "1",
            "--keys",
            "d.ndjson",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out)
            .contains("t0 src → dst: 6 difference(s) (6 given key(s) re-checked, nothing scanned"),
        "{}",
        text(&out)
    );

    // With no room to re-read them, the differences are not compared: incomplete, exit 5.
    let out = s
        .run(&["verify", "m.yaml", "--json", "--max-suspects", "0"])
        .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["tables"][0];
    assert_eq!(
        (&t["equal"], &t["verdict"]),
        (&false.into(), &"incomplete".into())
    );
    assert_eq!(t["outcome"]["after_settling"]["not_rechecked"], 6, "{v}");
    let usage = s.run(&["verify", "m.yaml", "--table", "nope"]).await;
    assert_eq!(usage.status.code(), Some(1), "{}", text(&usage));

    // After a cut-over the source denies reads: a clear error, at once. (The gate would
    // refuse the corrupted copy, so this cut-over goes without it.)
    s.edit_plan(|y| y.replace("defaults:\n", "defaults:\n  verify: off\n"));
    let out = s.run(&["apply", "m.yaml", "--auto-approve"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = s.run(&["verify", "m.yaml"]).await;
    assert_eq!(after.status.code(), Some(1), "{}", text(&after));
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("denies reads"),
        "{}",
        text(&after)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_stops_a_corrupted_table_before_any_write_is_blocked() {
    use crate::stage::{text, Stage, StageOpts};
    use migrator::pegasus::envs::DENY_ENV;
    use migrator::pegasus::messages::apps::AppStatus;
    let mut opts = StageOpts::new(Version::V2_6, "21s");
    opts.defaults.push("verify: full".into());
    let s = Stage::new("verify-gate", opts).await;
    let (mut apply, gate) = s.apply_paused_at("verify:before");
    let child = apply.spawn().unwrap();
    Stage::paused(&gate).await;
    let said = s.fault(s.dst(), &["corrupt", "t0", "3"]).await;
    assert!(said.contains("1 changed, 1 dropped, 1 added"), "{said}");
    std::fs::write(&gate, "go").unwrap();
    let out = crate::stage::output(child).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("verify found differences that did not settle, so nothing was blocked"),
        "{}",
        text(&out)
    );
    assert!(
        said.contains("missing on the target 1, extra on the target 1, different 1"),
        "{said}"
    );
    let checkpoint = s.journal().with_file_name("verify").join("t0.src.dst.json");
    assert!(!checkpoint.exists(), "a verdict leaves nothing to resume");
    // Re-reading takes rounds (about 15 s): apply says how far it is meanwhile.
    let told = String::from_utf8_lossy(&out.stderr);
    assert!(
        told.contains("[t0] verify: 50 records compared; re-reading the differences found"),
        "{told}"
    );
    let apps = meta_client(s.src())
        .list_apps(AppStatus::AS_AVAILABLE)
        .await
        .unwrap();
    let t0 = apps.iter().find(|a| a.app_name == "t0").unwrap();
    assert_eq!(t0.envs.get(DENY_ENV), None, "no write was ever blocked");
    assert_eq!(s.routed_to("t0").await, "src");
    assert!(
        !s.journal_says("block_writes", "intent"),
        "the block was never even intended"
    );
}

/// Apply with `verify: full` while a key `hot / n` is written every few milliseconds on the
/// source and the target applies each duplicated batch 200 ms late, so verify can never
/// compare it; with `drop_copies` the target drops the copies of writes duplicated to it, so
/// that key really differs.
/// What the target does while the gate runs on a hot key.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// Applies its copies late: the gate cannot compare the key.
    Lags,
    /// Drops its copies: the key differs.
    DropsCopies,
    /// Applies its copies late and answers every data request 1.3 s late: one read of the key
    /// takes longer than the exact check's reserve allows.
    Far,
}

async fn gate_with_a_hot_key(
    test: &str,
    target: Target,
) -> (crate::stage::Stage, std::process::Output) {
    use crate::stage::{Stage, StageOpts};
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut opts = StageOpts::new(Version::V2_6, "21s");
    opts.defaults.push("verify: full".into());
    let s = Stage::new(test, opts).await;
    let (mut apply, gate) = s.apply_paused_at("verify:before");
    let child = apply.spawn().unwrap();
    Stage::paused(&gate).await;
    let faults: &[&[&str]] = match target {
        Target::DropsCopies => &[&["dup_drop", "t0", "1000000"]],
        Target::Lags => &[&["slow_write_ms", "200"]],
        // Lagging too, so the gate cannot compare the key whatever the timing.
        Target::Far => &[&["slow_write_ms", "200"], &["rpc_latency_ms", "1300"]],
    };
    for command in faults {
        assert_eq!(s.fault(s.dst(), command).await, "OK");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let t = TableClient::new("t0", meta_client(s.src()), TableOptions::default());
    let halt = stop.clone();
    let writer = tokio::spawn(async move {
        let mut i = 0u64;
        while !halt.load(Ordering::Relaxed) {
            i += 1;
            // Refused once the block is in force: the writer just goes on trying.
            let _ = t.put(b"hot", b"n", i.to_string().as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    crate::support::eventually("the key written", || async {
        TableClient::new("t0", meta_client(s.src()), TableOptions::default())
            .get(b"hot", b"n")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    std::fs::write(&gate, "go").unwrap();
    let out = crate::stage::output(child).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    (s, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_too_hot_to_compare_before_the_block_are_compared_inside_it_before_the_switch() {
    use crate::stage::text;
    let (s, out) = gate_with_a_hot_key("verify-gate-exact", Target::Lags).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let journal = s.journal_text();
    assert!(
        journal.contains(r#""verdict":"incomplete""#) && journal.contains(r#""changing":1"#),
        "the gate could not compare the hot key: {journal}"
    );
    assert!(
        journal.contains(r#""event":"at_switch","detail":{"keys":1,"verdict":"equal""#),
        "it was compared inside the block: {journal}"
    );
    assert_eq!(s.routed_to("t0").await, "dst");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hot_key_that_differs_inside_the_block_lifts_it_and_nothing_is_switched() {
    use crate::stage::text;
    let (s, out) = gate_with_a_hot_key("verify-gate-incomplete", Target::DropsCopies).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "inside the write block the keys verify could not compare before did not all match"
        ),
        "{}",
        text(&out)
    );
    assert!(said.contains("hot / n"), "{said}");
    assert!(
        said.contains("writes restored"),
        "the block was lifted: {said}"
    );
    assert_eq!(s.routed_to("t0").await, "src");
    let journal = s.journal_text();
    assert!(
        journal.contains(r#""event":"at_switch","detail":{"keys":1,"verdict":"different""#),
        "{journal}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_keys_whose_read_would_not_fit_the_exact_checks_reserve_stop_the_gate_before_the_block()
{
    use crate::stage::text;
    let (s, out) = gate_with_a_hot_key("verify-gate-far", Target::Far).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("more than the 3s the budget reserves; nothing was blocked"),
        "{}",
        text(&out)
    );
    assert!(
        !s.journal_says("block_writes", "intent"),
        "nothing was blocked"
    );
    assert_eq!(s.routed_to("t0").await, "src");
}

/// Scanners open on `sim`'s replica servers.
fn open_scanners(sim: &SimCluster) -> usize {
    let state = sim.cluster().lock();
    state.nodes.iter().map(|n| n.scanners.open_count()).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verify_that_fails_leaves_no_scanner_open_on_the_servers() {
    let p = Arc::new(pair(4, 4).await);
    fill(&p.src, 400).await;
    fill(&p.dst, 400).await;
    let replica = ReplicaClient::new(Duration::from_secs(2));
    for sim in [&p.a, &p.b] {
        replica
            .command(sim.metas()[0], "sim.fault", &["rpc_latency_ms", "20"])
            .await
            .unwrap();
    }
    let opts = Options {
        batch: 5,
        ..quick()
    };
    let both_open = |p: &Pair| open_scanners(&p.a) > 0 && open_scanners(&p.b) > 0;
    let none_open = |p: &Pair| open_scanners(&p.a) + open_scanners(&p.b) == 0;

    // A source that stops answering scans fails a group; every group's scanners go, on both
    // sides, the failed one's and those of the groups still running.
    let q = p.clone();
    let run = tokio::spawn(async move {
        verify::verify(&q.src, &q.dst, opts, Arc::new(Progress::default())).await
    });
    crate::support::eventually("scanners open on both sides", || async { both_open(&p) }).await;
    p.a.cluster().faults.arm(Counted::ReadBusy, "t", 1_000_000);
    let failed = run.await.unwrap();
    assert!(
        matches!(failed, Err(verify::Error::Source(_))),
        "{failed:?}"
    );
    crate::support::eventually("every scanner released", || async { none_open(&p) }).await;
}

async fn sim_command(sim: &SimCluster, cmd: &str, args: &[&str]) -> String {
    ReplicaClient::new(Duration::from_secs(2))
        .command(sim.metas()[0], cmd, args)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_a_split_left_in_the_other_half_are_counted_not_compared() {
    let p = pair(4, 4).await;
    fill(&p.src, 200).await;
    fill(&p.dst, 200).await;
    // Each parent and its child hold every record of both: half of each is foreign.
    let said = sim_command(&p.a, "sim.table", &["split", "t"]).await;
    assert_eq!(said, "OK: t has 8 partitions");
    let o = run(&p, quick()).await;
    assert_eq!(o.verdict, Verdict::Equal, "{:?}", o.differing);
    let c = o.scanned;
    assert_eq!(
        (c.scanned, c.matched, c.foreign, c.differences()),
        (200, 200, 200, 0),
        "every record compared once, from its own partition"
    );
    // With the split's env on, the servers leave them out themselves.
    meta_client(&p.a)
        .set_app_envs(
            "t",
            &[(verify::layout::VALIDATE_PARTITION_HASH_ENV, "true")],
        )
        .await
        .unwrap();
    let o = run(&p, quick()).await;
    assert_eq!((o.verdict, o.scanned.foreign), (Verdict::Equal, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layout_changed_during_a_run_is_an_error_to_re_run_on_not_a_verdict() {
    let p = Arc::new(pair(4, 4).await);
    fill(&p.src, 400).await;
    fill(&p.dst, 400).await;
    for sim in [&p.a, &p.b] {
        sim_command(sim, "sim.fault", &["rpc_latency_ms", "20"]).await;
    }
    let opts = Options {
        batch: 5,
        ..quick()
    };
    let start = |p: Arc<Pair>| {
        tokio::spawn(async move {
            verify::verify(&p.src, &p.dst, opts, Arc::new(Progress::default())).await
        })
    };
    let scanning = |p: &Pair| open_scanners(&p.a) > 0 && open_scanners(&p.b) > 0;

    // The target splits while its partitions are scanned: its children are never read.
    let run = start(p.clone());
    crate::support::eventually("scanning", || async { scanning(&p) }).await;
    sim_command(&p.b, "sim.table", &["split", "t"]).await;
    let e = run.await.unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "the layout changed during the run (the target's 4 partitions, replica.split.validate_partition_hash off → 8 partitions, replica.split.validate_partition_hash off): re-run verify"
    );

    // The split's env turned on under the source's scans.
    let run = start(p.clone());
    crate::support::eventually("scanning", || async { scanning(&p) }).await;
    meta_client(&p.a)
        .set_app_envs(
            "t",
            &[(verify::layout::VALIDATE_PARTITION_HASH_ENV, "true")],
        )
        .await
        .unwrap();
    let e = run.await.unwrap().unwrap_err();
    assert!(
        matches!(&e, verify::Error::LayoutChanged(m) if m.side == verify::layout::Side::Source),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_resumes_from_its_checkpoint_and_a_failed_group_from_its_last_key() {
    use migrator::verify::checkpoint::Store;
    use migrator::verify::Checkpointing;
    let p = Arc::new(pair(4, 4).await);
    fill(&p.src, 400).await;
    fill(&p.dst, 400).await;
    let (h, s, _, _) = record(9);
    p.dst.put(&h, &s, b"changed").await.unwrap();
    for sim in [&p.a, &p.b] {
        sim_command(sim, "sim.fault", &["rpc_latency_ms", "10"]).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path(), "t", "va", "vb", Duration::from_millis(50));
    let opts = Options {
        batch: 5,
        parallelism: 2,
        mode: Mode::Sample,
        sample_rate: 0.5,
        sample_salt: 11,
        ..quick()
    };
    let first = Checkpointing {
        store: store.clone(),
        resume: false,
    };
    let progress = Arc::new(Progress::default());
    let (q, seen) = (p.clone(), progress.clone());
    let killed = tokio::spawn(async move {
        verify::verify_resumable(&q.src, &q.dst, opts, seen, Some(&first), None).await
    });
    // Killed once half the table is compared and saved.
    crate::support::eventually("half compared and saved", || async {
        progress.records.load(std::sync::atomic::Ordering::Relaxed) >= 200
            && store
                .load()
                .unwrap()
                .is_some_and(|s| s.classes.iter().map(|c| c.counts.scanned).sum::<u64>() >= 150)
    })
    .await;
    killed.abort();
    let saved = store.load().unwrap().unwrap();
    let done_before: u64 = saved.classes.iter().map(|c| c.counts.scanned).sum();
    assert!(done_before < 400, "{done_before}");

    // Resumed with another salt asked: the saved sample goes on.
    let resume = Checkpointing {
        store: store.clone(),
        resume: true,
    };
    let progress = Arc::new(Progress::default());
    let o = verify::verify_resumable(
        &p.src,
        &p.dst,
        Options {
            sample_salt: 99,
            ..opts
        },
        progress.clone(),
        Some(&resume),
        None,
    )
    .await
    .unwrap();
    assert_eq!(o.sample.unwrap().salt, 11);
    assert_eq!(
        (o.scanned.scanned, o.scanned.target_scanned),
        (400, 400),
        "every record counted once: {:?}",
        o.scanned
    );
    let fresh = run(&p, opts).await;
    assert_eq!(
        (o.verdict, o.differences(), o.values_compared),
        (fresh.verdict, fresh.differences(), fresh.values_compared),
        "the same verdict and counts as one run"
    );
    assert!(
        store.load().unwrap().is_none(),
        "a verdict forgets the checkpoint"
    );
    let e = verify::verify_resumable(&p.src, &p.dst, opts, progress, Some(&resume), None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no checkpoint to resume from"),
        "{e}"
    );

    // A group whose reads fail past the scanner's retries goes on from its last key.
    let progress = Arc::new(Progress::default());
    let (q, seen) = (p.clone(), progress.clone());
    // One group at a time, full mode: every refusal goes to the one source scanner.
    let one_group = Options {
        parallelism: 1,
        mode: Mode::Full,
        ..opts
    };
    let run = tokio::spawn(async move { verify::verify(&q.src, &q.dst, one_group, seen).await });
    crate::support::eventually("a group under way", || async {
        progress.records.load(std::sync::atomic::Ordering::Relaxed) >= 30
    })
    .await;
    // Nine refusals in a row: one more than a scanner retries.
    p.a.cluster().faults.arm(Counted::ReadBusy, "t", 9);
    let o = run.await.unwrap().unwrap();
    assert_eq!(p.a.cluster().faults.left(Counted::ReadBusy, "t"), 0);
    assert_eq!((o.verdict, o.scanned.scanned), (Verdict::Different, 400));
    let read = progress.records.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        read < 400 + 30,
        "the group went on from its last key, not from its start: {read} compared"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn over_a_slow_network_both_sides_and_every_partition_read_at_once() {
    let p = pair(8, 8).await;
    for sim in [&p.a, &p.b] {
        sim.seed_direct("t", 8000, 32).unwrap();
        sim_command(sim, "sim.fault", &["rpc_latency_ms", "40"]).await;
    }
    let opts = Options {
        batch: 50,
        parallelism: 8,
        ..quick()
    };
    let o = run(&p, opts).await;
    assert_eq!((o.verdict, o.scanned.matched), (Verdict::Equal, 8000));
    // About 1000 records per partition: 20 batches and the last. Asking one side, then the
    // other, would take 2 × 21 round trips of 40 ms per group (1.7 s); both sides at once take
    // about 21 (0.84 s), the groups all in parallel.
    let sequential_ms = 2 * 21 * 40;
    assert!(
        o.elapsed_ms * 4 < sequential_ms * 3,
        "{} ms: the sides were not read at once",
        o.elapsed_ms
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn differences_go_to_a_file_and_only_those_keys_are_checked_again_after_a_repair() {
    let p = pair(4, 4).await;
    fill(&p.src, 100).await;
    fill(&p.dst, 100).await;
    let replica = ReplicaClient::new(Duration::from_secs(2));
    let said = replica
        .command(p.b.metas()[0], "sim.fault", &["corrupt", "t", "3"])
        .await
        .unwrap();
    assert!(said.contains("1 changed, 1 dropped, 1 added"), "{said}");
    let o = run(&p, quick()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("diffs.ndjson");
    verify::diffs::write((&p.src, &p.dst), Default::default(), "t", &o, &path)
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 3, "{lines:?}");
    for kind in ["missing", "extra", "different"] {
        let l = lines.iter().find(|l| l["kind"] == kind).unwrap();
        let (s, t) = (&l["source"], &l["target"]);
        match kind {
            "missing" => assert!(s.is_object() && t.is_null(), "{l}"),
            "extra" => assert!(s.is_null() && t.is_object(), "{l}"),
            _ => assert!(s["value_crc64"] != t["value_crc64"], "{l}"),
        }
    }

    // Re-checking the file's keys finds the same; other keys are not read.
    let keys = verify::diffs::read_keys(&path, "t").unwrap();
    let again = verify::diffs::verify_keys(&p.src, &p.dst, quick(), keys.clone())
        .await
        .unwrap();
    assert_eq!(
        (again.verdict, again.differences()),
        (Verdict::Different, 3)
    );
    assert_eq!(again.keys_given, Some(3));
    let text = verify::report::lines("t", "va", "vb", &again, 10).join("\n");
    assert!(
        text.contains("3 given key(s) re-checked, nothing scanned"),
        "{text}"
    );

    // The README's repair: the source's value written again, the target's extra deleted.
    for l in &lines {
        let k = verify::diffs::unbase64(l["key_b64"].as_str().unwrap()).unwrap();
        let (h, s) = key::split_key(&k).unwrap();
        if l["kind"] == "extra" {
            p.dst.remove(h, s).await.unwrap();
        } else {
            // As duplication ships a re-put: the value and its expiry.
            let kv = migrator::pegasus::scanner::read_one(&p.src, &k)
                .await
                .unwrap()
                .unwrap();
            let expire = u32::try_from(kv.expire_ts_seconds.unwrap_or(0)).unwrap();
            p.dst.put_expiring(h, s, &kv.value.0, expire).await.unwrap();
        }
    }
    let repaired = verify::diffs::verify_keys(&p.src, &p.dst, quick(), keys)
        .await
        .unwrap();
    assert_eq!(repaired.verdict, Verdict::Equal, "{:?}", repaired.differing);
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_verified_at_once_share_each_clusters_limit_and_a_busy_cluster_slows_them() {
    use migrator::verify::pace::{Limits, Registry};
    let p = Arc::new(pair(4, 4).await);
    p.a.create_table("u", 4, 1).unwrap();
    p.b.create_table("u", 4, 1).unwrap();
    let u = |sim: &SimCluster| TableClient::new("u", meta_client(sim), TableOptions::default());
    let (u_src, u_dst) = (u(&p.a), u(&p.b));
    for t in [&p.src, &p.dst, &u_src, &u_dst] {
        fill(t, 600).await;
    }
    let limits = Limits {
        records: Some(2000),
        bytes: None,
    };
    let opts = Options {
        rate: limits.records,
        ..quick()
    };
    let process = Registry::default();
    let shared = || process.pacers("share-va", "share-vb", limits);
    let started = tokio::time::Instant::now();
    let one = |src: TableClient, dst: TableClient| {
        let pacers = shared();
        tokio::spawn(async move {
            let progress = Arc::new(Progress::default());
            verify::verify_resumable(&src, &dst, opts, progress, None, Some(pacers)).await
        })
    };
    let (a, b) = (
        one(p.src.clone(), p.dst.clone()),
        one(u_src.clone(), u_dst.clone()),
    );
    for run in [a, b] {
        assert_eq!(run.await.unwrap().unwrap().verdict, Verdict::Equal);
    }
    // 1,200 records from each cluster at 2,000/s between both tables: 0.6 s at least (each
    // table alone at that rate would take 0.3 s).
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(550), "{took:?}");

    // A replica that refuses reads as too busy slows every reader of its cluster.
    let busy = process.pacers("busy-va", "busy-vb", Limits::default());
    p.a.cluster().faults.arm(Counted::ReadBusy, "t", 2);
    let o = verify::verify_resumable(
        &p.src,
        &p.dst,
        quick(),
        Arc::new(Progress::default()),
        None,
        Some(busy.clone()),
    )
    .await
    .unwrap();
    assert_eq!(o.verdict, Verdict::Equal);
    assert_eq!(p.a.cluster().faults.left(Counted::ReadBusy, "t"), 0);
    assert_eq!((busy.source.halvings(), busy.target.halvings()), (2, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn three_shards_as_separate_processes_merge_to_the_verdict_and_counts_of_one_run() {
    use crate::stage::{output, text, Stage, StageOpts};
    use std::process::Stdio;
    let s = Stage::new("verify-shards", StageOpts::new(Version::V2_6, "21s")).await;
    // 4 source and 8 target partitions: 4 groups, shared 2 + 1 + 1 by the shards.
    s.dst().create_table("t0", 8, 1).unwrap();
    for sim in [s.src(), s.dst()] {
        sim.seed_direct("t0", 3000, 32).unwrap();
    }
    let said = s.fault(s.dst(), &["corrupt", "t0", "9"]).await;
    assert!(said.contains("3 changed, 3 dropped, 3 added"), "{said}");
    let quick = ["--json", "--settle-rounds", "1", "--mode", "sample"];
    let salt = ["--sample-salt", "7", "--sample-rate", "0.3"];
    let shards: Vec<_> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let mut c = s.command(&["verify", "m.yaml", "--table", "t0", "--shard", &shard]);
            c.args(quick)
                .args(salt)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let dir = s
        .journal()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut reports = Vec::new();
    for (i, child) in shards.into_iter().enumerate() {
        let out = output(child).await;
        assert_eq!(out.status.code(), Some(2), "shard {i}: {}", text(&out));
        let path = dir.join(format!("shard-{i}.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        reports.push(path.display().to_string());
    }
    let mut merge = vec!["verify", "--merge"];
    merge.extend(reports.iter().map(String::as_str));
    let merged = s.run(&[merge.as_slice(), &["--json"]].concat()).await;
    assert_eq!(merged.status.code(), Some(2), "{}", text(&merged));
    let whole = s
        .run(&[&["verify", "m.yaml", "--table", "t0"][..], &quick, &salt].concat())
        .await;
    assert_eq!(whole.status.code(), Some(2), "{}", text(&whole));
    let doc = |o: &std::process::Output| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["tables"][0].clone()
    };
    let (m, w) = (doc(&merged), doc(&whole));
    assert_eq!(m["verdict"], w["verdict"]);
    for part in ["scanned", "after_settling"] {
        assert_eq!(m["outcome"][part], w["outcome"][part], "{part}");
    }
    assert_eq!(
        m["outcome"]["values_compared"],
        w["outcome"]["values_compared"]
    );
    let keys = |t: &serde_json::Value| {
        let mut k: Vec<String> = t["outcome"]["differing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&m), keys(&w));
    assert_eq!(m["outcome"]["after_settling"]["missing"], 3, "{m}");

    // A shard left out is refused, not merged into a smaller verdict.
    let short = s
        .run(&["verify", "--merge", &reports[0], &reports[2]])
        .await;
    assert_eq!(short.status.code(), Some(1), "{}", text(&short));
    assert!(
        text(&short).contains("shard 1/3 is missing"),
        "{}",
        text(&short)
    );
}
