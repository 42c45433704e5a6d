//! Deterministic failure points on both sides of every mutating call of a cut-over (the run
//! dies as a SIGKILL would, or its journal write fails): each time a re-run converges, no
//! acknowledged write is lost, and no write is acknowledged by the source after the first
//! write acknowledged by the target.

use std::process::Stdio;

use migrator::routing::{node_path, Route};
use migrator::sim::world::addrs;
use migrator::sim::Version;

use crate::stage::{assert_writes_never_split, text, Stage, StageOpts};

async fn converges_after(point: &str, remove_duplication: bool, provoke_restore: bool) {
    let mut opts = StageOpts::new(Version::V2_6, "21s");
    if remove_duplication {
        opts.defaults.push("remove_duplication: true".into());
    }
    let name = format!("fail-{}", point.replace(':', "-"));
    let mut s = Stage::new(&name, opts).await;
    s.start_load();
    let mut first = s.command(&["apply", "m.yaml", "--auto-approve"]);
    first
        .env(migrator::apply::failpoint::ENV, point)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut first = first.spawn().unwrap();
    if provoke_restore {
        // Someone edits the routing node during the block: the run must restore writes.
        s.journal_has("block_writes", "intent").await;
        let mut reordered = addrs(&s.src().metas());
        reordered.reverse();
        let theirs = Route {
            cluster_name: "src".into(),
            meta_addrs: reordered,
        };
        s.w.zk
            .set(
                &node_path(&s.w.root, "t0"),
                theirs.to_json().as_bytes(),
                None,
            )
            .await
            .unwrap();
    }
    let status = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    assert_ne!(status.code(), Some(0), "the failpoint {point} was reached");
    let mut done = false;
    for _ in 0..4 {
        let out = s
            .run(&["apply", "m.yaml", "--auto-approve", "--lock-timeout", "40s"])
            .await;
        match out.status.code() {
            Some(0) => {
                done = true;
                break;
            }
            Some(3) => {}
            other => panic!("a re-run after {point} exited {other:?}: {}", text(&out)),
        }
    }
    assert!(done, "re-runs converge after {point}");
    // Clients learn of the move at their next write (a refused one, then a re-resolve): give
    // them time to write on the target, whose first acknowledgement the check below needs.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let r = s.finish_load().await;
    assert_eq!(r.lost, 0, "nothing lost after {point}");
    assert_eq!(s.routed_to("t0").await, "dst");
    let dups = s.dup_count("t0").await;
    assert_eq!(
        dups,
        usize::from(!remove_duplication),
        "duplications after {point}"
    );
    assert_writes_never_split(&s, &r);
}

macro_rules! failpoint_test {
    ($name:ident, $point:literal) => {
        failpoint_test!($name, $point, false, false);
    };
    ($name:ident, $point:literal, $remove:expr, $restore:expr) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            converges_after($point, $remove, $restore).await;
        }
    };
}

failpoint_test!(dies_before_adding_the_duplication, "add_duplication:before");
failpoint_test!(dies_after_adding_the_duplication, "add_duplication:after");
failpoint_test!(dies_before_setting_the_deny_env, "set_deny:before");
failpoint_test!(dies_after_setting_the_deny_env, "set_deny:after");
failpoint_test!(
    dies_before_deleting_the_deny_env,
    "delete_deny:before",
    false,
    true
);
failpoint_test!(
    dies_after_deleting_the_deny_env,
    "delete_deny:after",
    false,
    true
);
failpoint_test!(dies_before_sending_the_switch, "switch:before");
failpoint_test!(
    dies_with_the_switch_committed_and_its_reply_lost,
    "switch:after"
);
failpoint_test!(dies_before_reconfig_all, "reconfig_all:before");
failpoint_test!(dies_after_reconfig_all, "reconfig_all:after");
failpoint_test!(
    dies_before_removing_the_duplication,
    "remove_duplication:before",
    true,
    false
);
failpoint_test!(
    dies_after_removing_the_duplication,
    "remove_duplication:after",
    true,
    false
);
failpoint_test!(fails_to_journal_the_block, "journal:block_writes:intent");
failpoint_test!(fails_to_journal_the_switch, "journal:switch:intent");
failpoint_test!(fails_to_journal_the_reconfig, "journal:switch:reconfigured");
