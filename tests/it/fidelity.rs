//! The simulator pinned to real servers, one test per behaviour of `src/sim/fidelity.md`
//! that names one: what a replica's app info shows, 2.5's late
//! last write, the two duplication counters, dead nodes and failover, partition states after
//! a leader change, meta-proxy's watches and builds, `/updateConfig`, env validation,
//! `ERR_BUSY`, replica info and `/config`.

use std::time::Duration;

use migrator::pegasus::base::err;
use migrator::pegasus::messages::apps::{
    AppStatus, CreateAppOptions, QueryCfgRequest, QueryConfig,
};
use migrator::pegasus::messages::duplication::{
    AddDuplicationRequest, DuplicationStatus, ModifyDuplication, ModifyDuplicationRequest,
};
use migrator::pegasus::messages::nodes::NodeStatus;
use migrator::pegasus::messages::replica_admin::PartitionStatus;
use migrator::pegasus::meta::{MetaClient, MetaOptions};
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::probe::flags::{self, CONFIG_SYNC, EMPTY_WRITE_DISABLED, GROUP_CHECK_DISABLED};
use migrator::probe::progress::{self, Known};
use migrator::probe::requests::{self, Answer, Probe};
use migrator::probe::Primaries;
use migrator::routing::{node_path, Route};
use migrator::sim::metaproxy::{Build, MetaProxy};
use migrator::sim::{Directory, SimCluster, SimConfig, Version};

use crate::support::{
    eventually, eventually_within, meta_client, shipping_everywhere, unique_root, TestZk,
};

fn replica() -> ReplicaClient {
    ReplicaClient::new(Duration::from_secs(2))
}

async fn start_with(
    directory: &Directory,
    name: &str,
    id: i8,
    version: Version,
    tweak: impl FnOnce(&mut SimConfig),
) -> SimCluster {
    let mut config = SimConfig::fast(version);
    tweak(&mut config);
    SimCluster::start(name, id, config, directory)
        .await
        .unwrap()
}

async fn table(sim: &SimCluster, name: &str, partitions: i32) -> TableClient {
    let meta = meta_client(sim);
    let opts = CreateAppOptions {
        partition_count: partitions,
        replica_count: 3,
        ..Default::default()
    };
    meta.create_app(name, opts).await.unwrap();
    TableClient::new(name, meta, TableOptions::default())
}

async fn fault(sim: &SimCluster, args: &[&str]) -> String {
    replica()
        .command(sim.metas()[0], "sim.fault", args)
        .await
        .unwrap()
}

/// Duplicates `t` from `src` to `dst` and waits for DS_LOG and a duplicator on every primary.
async fn duplicate(src: &SimCluster, t: &str) -> i32 {
    duplicate_to(src, t, "dst").await
}

/// A request to duplicate `t` to cluster `to`, checkpoint first.
fn add_request(t: &str, to: &str) -> AddDuplicationRequest {
    AddDuplicationRequest {
        app_name: t.into(),
        remote_cluster_name: to.into(),
        is_duplicating_checkpoint: Some(true),
        ..Default::default()
    }
}

async fn counters(meta: &MetaClient, t: &str, dupid: i32) -> Vec<progress::PartitionProgress> {
    let prim = Primaries::read(meta, t).await.unwrap();
    progress::read(&replica(), &prim, Some(dupid), Duration::from_secs(1))
        .await
        .into_iter()
        .map(|k| match k {
            Known::Yes(p) => p,
            Known::Unknown(why) => panic!("unknown partition: {why}"),
        })
        .collect()
}

#[tokio::test]
async fn access_control_refuses_an_anonymous_client_before_the_deny_check() {
    let acl = |c: &mut SimConfig| c.enable_acl = true;
    let sim = start_with(&Directory::default(), "a", 1, Version::V2_5, acl).await;
    let t = table(&sim, "t", 2).await;
    let node = sim.replicas()[0];
    assert!(flags::read_bool(&replica(), node, "enable_acl")
        .await
        .unwrap());
    assert!(!flags::read_bool(&replica(), node, "enable_ranger_acl")
        .await
        .unwrap());
    // An empty allowed-users list leaves the table open to everyone.
    t.put(b"h", b"s", b"v").await.unwrap();
    let meta = meta_client(&sim);
    meta.set_app_envs(
        "t",
        &[
            ("replica_access_controller.allowed_users", "svc"),
            ("replica.deny_client_request", "reconfig*write"),
        ],
    )
    .await
    .unwrap();
    let refused = t.put(b"h", b"s", b"w").await.unwrap_err();
    assert!(refused.is(err::ACL_DENY), "{refused}");
    // Never evidence of a block, whatever the deny env says.
    let prim = Primaries::read(&meta, "t").await.unwrap();
    let probes = ReplicaClient::new(Duration::from_millis(300));
    for answer in requests::send(&probes, &prim, Probe::Write, Duration::from_millis(600)).await {
        assert!(
            matches!(&answer, Answer::Failed(why) if why.contains("ERR_ACL_DENY")),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn replica_app_info_keeps_the_envs_the_replica_was_created_with() {
    let sim = start_with(&Directory::default(), "a", 1, Version::V2_5, |_| {}).await;
    table(&sim, "t", 2).await;
    let meta = meta_client(&sim);
    meta.set_app_envs("t", &[("replica.deny_client_request", "reconfig*write")])
        .await
        .unwrap();
    // Several config syncs later the deny is in force, yet app info never shows it.
    let prim = Primaries::read(&meta, "t").await.unwrap();
    let probes = ReplicaClient::new(Duration::from_millis(300));
    eventually("the deny is in force on every primary", || async {
        requests::send(&probes, &prim, Probe::Write, Duration::from_millis(600))
            .await
            .iter()
            .all(|a| *a == Answer::Refused)
    })
    .await;
    for node in sim.replicas() {
        let apps = replica().query_app_info(node).await.unwrap();
        let t = apps.iter().find(|a| a.app_name == "t").unwrap();
        assert!(t.envs.is_empty(), "{node} shows {:?}", t.envs);
    }
    let listed = meta.list_apps(AppStatus::AS_AVAILABLE).await.unwrap();
    assert!(listed[0].envs.contains_key("replica.deny_client_request"));
}

#[tokio::test]
async fn a_2_5_primary_ships_its_last_write_only_after_the_next_empty_write() {
    let directory = Directory::default();
    let slow_check = |c: &mut SimConfig| c.group_check_interval = Duration::from_millis(1500);
    let src = start_with(&directory, "src", 1, Version::V2_5, slow_check).await;
    let dst = start_with(&directory, "dst", 2, Version::V2_5, slow_check).await;
    let t = table(&src, "t", 1).await;
    let dupid = duplicate(&src, "t").await;
    t.put(b"last", b"s", b"v").await.unwrap();
    let meta = meta_client(&src);
    let target = TableClient::new("t", meta_client(&dst), TableOptions::default());
    // Within a group-check period nothing after it is logged, so it is not loadable.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = counters(&meta, "t", dupid).await;
    assert!(c[0].counters.unwrap().not_duplicated >= 1, "{c:?}");
    assert_eq!(target.get(b"last", b"s").await.unwrap(), None);
    eventually("the empty write lets it ship", || async {
        target.get(b"last", b"s").await.unwrap().is_some()
    })
    .await;
    let c = counters(&meta, "t", dupid).await;
    assert!(
        c[0].counters.unwrap().not_duplicated >= 1,
        "the empty write is the new unshipped tail: {c:?}"
    );
}

/// Writes `last` to `t` on `src` and checks that, several group-check periods later, it has
/// not reached `dst` and the partition still has an unshipped mutation.
async fn last_write_stays_unshipped(src: &SimCluster, dst: &SimCluster, dupid: i32) {
    let t = TableClient::new("t", meta_client(src), TableOptions::default());
    t.put(b"last", b"s", b"v").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await; // five group-check periods
    let target = TableClient::new("t", meta_client(dst), TableOptions::default());
    assert_eq!(target.get(b"last", b"s").await.unwrap(), None);
    let c = counters(&meta_client(src), "t", dupid).await;
    assert!(c[0].counters.unwrap().not_duplicated >= 1, "{c:?}");
}

#[tokio::test]
async fn without_empty_writes_a_2_5_partitions_last_write_is_never_shipped() {
    let directory = Directory::default();
    let src = start_with(&directory, "src", 1, Version::V2_5, |_| {}).await;
    let dst = start_with(&directory, "dst", 2, Version::V2_5, |_| {}).await;
    table(&src, "t", 1).await;
    let dupid = duplicate(&src, "t").await;
    let node = src.replicas()[0];
    assert!(!flags::read_bool(&replica(), node, EMPTY_WRITE_DISABLED)
        .await
        .unwrap());
    assert!(!flags::read_bool(&replica(), node, GROUP_CHECK_DISABLED)
        .await
        .unwrap());
    for n in src.replicas() {
        flags::update(&replica(), n, EMPTY_WRITE_DISABLED, true)
            .await
            .unwrap();
    }
    assert!(flags::read_bool(&replica(), node, EMPTY_WRITE_DISABLED)
        .await
        .unwrap());
    last_write_stays_unshipped(&src, &dst, dupid).await;
    // The flag is mutable: clearing it brings the empty write back, and with it the write.
    for n in src.replicas() {
        flags::update(&replica(), n, EMPTY_WRITE_DISABLED, "FALSE")
            .await
            .unwrap();
    }
    let target = TableClient::new("t", meta_client(&dst), TableOptions::default());
    eventually("the next empty write lets it ship", || async {
        target.get(b"last", b"s").await.unwrap().is_some()
    })
    .await;

    let off = |c: &mut SimConfig| c.group_check_disabled = true;
    let directory = Directory::default();
    let src = start_with(&directory, "src", 1, Version::V2_5, off).await;
    let dst = start_with(&directory, "dst", 2, Version::V2_5, |_| {}).await;
    table(&src, "t", 1).await;
    let dupid = duplicate(&src, "t").await;
    let node = src.replicas()[0];
    assert!(flags::read_bool(&replica(), node, GROUP_CHECK_DISABLED)
        .await
        .unwrap());
    assert!(
        flags::update(&replica(), node, GROUP_CHECK_DISABLED, false)
            .await
            .is_err(),
        "group_check_disabled is not mutable"
    );
    last_write_stays_unshipped(&src, &dst, dupid).await;
}

#[tokio::test]
async fn master_ships_the_last_write_at_once_and_the_two_counters_differ() {
    let directory = Directory::default();
    let slow_sync = |c: &mut SimConfig| {
        c.group_check_interval = Duration::from_secs(60);
        c.dup_sync_interval = Duration::from_millis(800);
    };
    let src = start_with(&directory, "src", 1, Version::V2_6, slow_sync).await;
    let _dst = start_with(&directory, "dst", 2, Version::V2_6, slow_sync).await;
    let t = table(&src, "t", 1).await;
    let dupid = duplicate(&src, "t").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for i in 0..10 {
        t.put(format!("k{i}").as_bytes(), b"s", b"v").await.unwrap();
    }
    let meta = meta_client(&src);
    eventually("every write shipped and acknowledged", || async {
        counters(&meta, "t", dupid).await[0]
            .counters
            .unwrap()
            .not_duplicated
            == 0
    })
    .await;
    let c = counters(&meta, "t", dupid).await[0].counters.unwrap();
    assert!(
        c.not_confirmed >= 10,
        "the meta confirms only at its next duplication sync: {c:?}"
    );
}

#[tokio::test]
async fn a_dead_node_stays_listed_and_its_primaries_move_without_losing_data() {
    let sim = start_with(&Directory::default(), "a", 1, Version::V2_6, |_| {}).await;
    let t = table(&sim, "t", 6).await;
    for i in 0..60 {
        t.put(format!("k{i}").as_bytes(), b"s", b"v").await.unwrap();
    }
    let meta = meta_client(&sim);
    let before = Primaries::read(&meta, "t").await.unwrap();
    let victim = sim.replicas()[0];
    fault(&sim, &["replica_down", &victim.to_string(), "on"]).await;
    assert!(
        replica().http_get(victim, "/config?name=x").await.is_err(),
        "refuses connections"
    );
    eventually("the meta lists it dead", || async {
        meta.list_nodes()
            .await
            .unwrap()
            .iter()
            .any(|n| n.node.to_socket() == Some(victim) && n.status == NodeStatus::NS_UNALIVE)
    })
    .await;
    assert_eq!(
        meta.list_nodes().await.unwrap().len(),
        3,
        "dead nodes stay listed"
    );
    let after = Primaries::read(&meta, "t").await.unwrap();
    for (b, a) in before.parts.iter().zip(&after.parts) {
        assert_ne!(a.addr, Some(victim));
        if b.addr == Some(victim) {
            assert!(a.ballot > b.ballot, "a new primary has a higher ballot");
        }
    }
    for i in 0..60 {
        let got = t.get(format!("k{i}").as_bytes(), b"s").await.unwrap();
        assert_eq!(got.as_deref(), Some(&b"v"[..]), "k{i}");
    }
    fault(&sim, &["replica_down", &victim.to_string(), "off"]).await;
    eventually(
        "it is listed alive again and rejoins as a secondary",
        || async {
            let alive = meta
                .list_nodes()
                .await
                .unwrap()
                .iter()
                .all(|n| n.status == NodeStatus::NS_ALIVE);
            let infos = replica()
                .query_replica_info(victim)
                .await
                .unwrap_or_default();
            alive
                && infos
                    .iter()
                    .any(|r| r.status == PartitionStatus::PS_SECONDARY)
        },
    )
    .await;
}

#[tokio::test]
async fn replica_info_names_each_replicas_role_ballot_and_decree() {
    let sim = start_with(&Directory::default(), "a", 1, Version::V2_5, |_| {}).await;
    let t = table(&sim, "t", 3).await;
    t.put(b"k", b"s", b"v").await.unwrap();
    let meta = meta_client(&sim);
    let prim = Primaries::read(&meta, "t").await.unwrap();
    let mut primaries = 0;
    for node in sim.replicas() {
        for r in replica().query_replica_info(node).await.unwrap() {
            let p = prim.parts[usize::try_from(r.pid.partition_index).unwrap()];
            assert_eq!(r.ballot, p.ballot);
            if r.status == PartitionStatus::PS_PRIMARY {
                assert_eq!(p.addr, Some(node));
                primaries += 1;
            }
        }
    }
    assert_eq!(primaries, 3, "every partition has exactly one primary");
    fault(&sim, &["failover", "t", "0"]).await;
    let moved = Primaries::read(&meta, "t").await.unwrap();
    assert_ne!(moved.parts[0].addr, prim.parts[0].addr);
    assert_eq!(moved.parts[0].ballot, prim.parts[0].ballot + 1);
}

/// Slow secondaries: a write the primary logged and sent out counts in its
/// `last_prepared_decree` until its prepare is acknowledged and it commits
/// (`replica::last_prepared_decree`, `replica_2pc.cpp` `init_prepare`, `on_prepare_reply`);
/// its secondaries report only what they committed here.
#[tokio::test]
async fn a_logged_write_waiting_for_its_commit_counts_in_the_primarys_prepared_decree() {
    // No empty writes meanwhile.
    let quiet = |c: &mut SimConfig| c.group_check_interval = Duration::from_secs(60);
    let sim = start_with(&Directory::default(), "a", 1, Version::V2_6, quiet).await;
    let t = table(&sim, "t", 1).await;
    t.put(b"k", b"s", b"v0").await.unwrap();
    let prim = Primaries::read(&meta_client(&sim), "t").await.unwrap();
    let node = prim.parts[0].addr.unwrap();
    let index = sim.replicas().iter().position(|a| *a == node).unwrap();
    let decrees = || async {
        let info = replica().query_replica_info(node).await.unwrap();
        let r = info.iter().find(|r| r.pid.partition_index == 0).unwrap();
        (r.last_prepared_decree, r.last_committed_decree)
    };
    let (prepared, committed) = decrees().await;
    assert_eq!(prepared, committed, "nothing in flight yet");
    // Long enough that a poll slowed by a busy machine still sees the write in flight.
    fault(&sim, &["lag", &index.to_string(), "3000"]).await;
    let writer = tokio::spawn(async move { t.put(b"k", b"s", b"v1").await });
    eventually("the primary logged the write", || async {
        decrees().await == (committed + 1, committed)
    })
    .await;
    writer.await.unwrap().unwrap();
    assert_eq!(decrees().await, (committed + 1, committed + 1));
}

#[tokio::test]
async fn a_meta_leader_change_forgets_the_last_committed_decrees() {
    let directory = Directory::default();
    let slow_sync = |c: &mut SimConfig| {
        c.dup_sync_interval = Duration::from_millis(500);
        c.meta_persist_delay = Duration::from_millis(200);
        // No empty writes meanwhile: once the writes shipped, nothing ships or reports.
        c.group_check_interval = Duration::from_secs(60);
    };
    let src = start_with(&directory, "src", 1, Version::V2_6, slow_sync).await;
    let _dst = start_with(&directory, "dst", 2, Version::V2_6, slow_sync).await;
    let t = table(&src, "t", 4).await;
    duplicate(&src, "t").await;
    for i in 0..20 {
        t.put(format!("k{i}").as_bytes(), b"s", b"v").await.unwrap();
    }
    let meta = meta_client(&src);
    let states = || async {
        meta.query_duplication("t").await.unwrap().entry_list[0]
            .partition_states
            .clone()
            .unwrap()
    };
    // Shipped and persisted: the primaries have nothing left to report.
    eventually("every partition reported and confirmed", || async {
        let s = states().await;
        s.len() == 4
            && s.values().all(|p| {
                p.last_committed_decree > 0 && p.confirmed_decree == p.last_committed_decree
            })
    })
    .await;
    fault(&src, &["leader", "1"]).await;
    let after = states().await;
    assert!(
        after.len() < 4,
        "progress is restored asynchronously: {after:?}"
    );
    assert!(
        after.values().all(|p| p.last_committed_decree == -1),
        "{after:?}"
    );
    eventually("restored, still without last committed decrees", || async {
        let s = states().await;
        s.len() == 4 && s.values().all(|p| p.last_committed_decree == -1)
    })
    .await;
}

#[tokio::test]
async fn update_env_errors_and_key_validation_follow_each_version() {
    for (version, unknown_table, quote) in [
        (Version::V2_5, err::INVALID_PARAMETERS, '"'),
        (Version::V2_6, err::APP_NOT_EXIST, '\''),
    ] {
        let sim = start_with(&Directory::default(), "a", 1, version, |_| {}).await;
        table(&sim, "t", 1).await;
        let meta = meta_client(&sim);
        let missing = meta
            .set_app_envs("nope", &[("business.info", "x")])
            .await
            .unwrap_err();
        assert!(missing.is(unknown_table), "{version}: {missing}");
        let bad = meta
            .set_app_envs("t", &[("no.such.key", "x")])
            .await
            .unwrap_err();
        assert!(bad.is(err::INVALID_PARAMETERS), "{bad}");
        assert!(
            bad.to_string().contains(&format!(
                "app_env {quote}no.such.key{quote} is not supported"
            )),
            "{version}: {bad}"
        );
        meta.del_app_envs("t", &["business.info"]).await.unwrap();
    }
}

#[tokio::test]
async fn modify_duplication_answers_busy_while_a_change_is_persisted() {
    let directory = Directory::default();
    let slow_zk = |c: &mut SimConfig| c.meta_persist_delay = Duration::from_millis(300);
    let src = start_with(&directory, "src", 1, Version::V2_6, slow_zk).await;
    let _dst = start_with(&directory, "dst", 2, Version::V2_6, slow_zk).await;
    table(&src, "t", 1).await;
    let dupid = duplicate(&src, "t").await;
    let meta = MetaClient::new(src.metas(), MetaOptions::default());
    let pause = |status| ModifyDuplicationRequest {
        app_name: "t".into(),
        dupid,
        status: Some(status),
        fail_mode: None,
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let first = meta
        .call_any::<ModifyDuplication>(&pause(DuplicationStatus::DS_PAUSE))
        .await
        .unwrap();
    assert!(first.err.is_ok(), "{first:?}");
    let second = meta
        .call_any::<ModifyDuplication>(&pause(DuplicationStatus::DS_LOG))
        .await
        .unwrap();
    assert!(second.err.is(err::BUSY), "{second:?}");
    // The client's method retries until the change is persisted.
    meta.modify_duplication("t", dupid, DuplicationStatus::DS_LOG)
        .await
        .unwrap();
}

/// Reverse pages of a count-limited multi_get over TCP, in the key layout of the Python
/// client's `test_multi_get_opt_reverse_ok`: 50 sort keys `k_0`..`k_49` under one hash key, a
/// row of another hash key sorting before it in the same (only) partition, pages of 10 from
/// the top, each next page stopping (exclusive) at the previous one's first key. Every page
/// before the last is incomplete; the last ends on the inclusive start key `k_0` and is OK.
#[tokio::test]
async fn reverse_multi_get_pages_end_complete_on_the_start_key() {
    use migrator::pegasus::base::{Blob, Gpid};
    use migrator::pegasus::key;
    use migrator::pegasus::messages::data::{rocksdb, MultiGet, MultiGetRequest};

    let sim = start_with(&Directory::default(), "a", 1, Version::V2_5, |_| {}).await;
    let t = table(&sim, "t", 1).await;
    // Keys sort by hash-key length first: "a" sorts before "h".
    t.put(b"a", b"x", b"v").await.unwrap();
    let mut sorted: Vec<String> = (0..50).map(|i| format!("k_{i}")).collect();
    for k in &sorted {
        t.put(b"h", k.as_bytes(), k.as_bytes()).await.unwrap();
    }
    sorted.sort();
    let routing = t.refresh().await.unwrap();
    let primary = routing.primaries[0].unwrap();
    let hash = key::crc64(b"h");
    let mut stop = "k_99".to_string();
    for page in 0..5 {
        let req = MultiGetRequest {
            hash_key: Blob::new(b"h"),
            max_kv_count: 10,
            start_sortkey: Blob::new(b"k_0"),
            stop_sortkey: Blob::new(stop.as_bytes()),
            start_inclusive: true,
            stop_inclusive: false,
            reverse: true,
            ..MultiGetRequest::default()
        };
        let resp = replica()
            .call::<MultiGet>(primary, Gpid::new(routing.app_id, 0), hash, &req)
            .await
            .unwrap();
        let got: Vec<String> = resp
            .kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.0.clone()).unwrap())
            .collect();
        let want = sorted.split_off(sorted.len() - 10);
        assert_eq!(got, want, "page {page}");
        let error = if page == 4 {
            rocksdb::OK
        } else {
            rocksdb::INCOMPLETE
        };
        assert_eq!(resp.error, error, "page {page}");
        stop.clone_from(&want[0]);
    }
}

/// The config-sync timer's first tick comes one full period after a server (re)starts, not at
/// a random phase: a non-zero first delay is never randomised (`timer_task::enqueue`).
#[tokio::test]
async fn a_restarted_server_syncs_on_connecting_then_a_full_period_later() {
    // Margins of a second or more: the sync on connecting must come before the env is set even
    // when the machine is busy running other tests.
    let long = |c: &mut SimConfig| c.config_sync_interval = Duration::from_millis(4000);
    let sim = start_with(&Directory::default(), "a", 1, Version::V2_5, long).await;
    table(&sim, "t", 3).await;
    let meta = meta_client(&sim);
    let app_id = meta.available_app("t").await.unwrap().unwrap().app_id;
    let node = sim.replicas()[1];
    fault(&sim, &["replica_down", &node.to_string(), "on"]).await;
    fault(&sim, &["replica_down", &node.to_string(), "off"]).await;
    let restarted_ms = migrator::clock::now_ms();
    // Past its sync on connecting (read from the simulator: a busy machine may delay it),
    // well before its first tick.
    let synced = || sim.cluster().lock().nodes[1].last_sync_ms;
    eventually("the sync on connecting", || async {
        synced() >= restarted_ms
    })
    .await;
    let connected_ms = synced();
    tokio::time::sleep(Duration::from_millis(500)).await;
    meta.set_app_envs("t", &[("replica.deny_client_request", "reconfig*write")])
        .await
        .unwrap();
    let applied = || {
        sim.cluster().lock().nodes[1]
            .deny
            .keys()
            .any(|(a, _)| *a == app_id)
    };
    eventually("the first tick applies it", || async { applied() }).await;
    // When the server applied it, from the simulator's own log: a busy machine may make this
    // test late, not the server's tick early.
    let applied_ms = sim
        .cluster()
        .lock()
        .deny_log
        .iter()
        .find_map(|e| match e {
            migrator::sim::state::DenyEvent::Applied {
                at_ms,
                node: 1,
                app_id: a,
                deny: Some(_),
                ..
            } if *a == app_id => Some(*at_ms),
            _ => None,
        })
        .expect("the deny log has the node applying it");
    let after = applied_ms.saturating_sub(connected_ms);
    assert!(
        (3900..6000).contains(&after),
        "first tick {after} ms after the sync on connecting, for a 4000 ms period"
    );
}

/// When server 1 last synced (wall ms; 0: never), from the simulator.
fn last_sync(sim: &SimCluster) -> u64 {
    sim.cluster().lock().nodes[1].last_sync_ms
}

/// Waits for server 1's next sync and returns when it was: a tick of its timer.
async fn next_sync(sim: &SimCluster) -> u64 {
    let before = last_sync(sim);
    eventually("server 1 syncs", || async { last_sync(sim) > before }).await;
    last_sync(sim)
}

/// When server 1's replica of partition `pidx` of `app_id` applied a deny, from the
/// simulator's log (a busy machine may make the test late, not the server early).
fn deny_applied(sim: &SimCluster, app_id: i32, pidx: usize) -> Option<u64> {
    sim.cluster().lock().deny_log.iter().find_map(|e| match e {
        migrator::sim::state::DenyEvent::Applied {
            at_ms,
            node: 1,
            app_id: a,
            pidx: p,
            deny: Some(_),
        } if *a == app_id && *p == pidx => Some(*at_ms),
        _ => None,
    })
}

/// A table `t` of `partitions` partitions on a 2.5 cluster tweaked by `tweak`; its app id.
async fn synced_table(
    partitions: i32,
    tweak: impl FnOnce(&mut SimConfig),
) -> (SimCluster, MetaClient, i32) {
    let sim = start_with(&Directory::default(), "a", 1, Version::V2_5, tweak).await;
    table(&sim, "t", partitions).await;
    let meta = meta_client(&sim);
    let app_id = meta.available_app("t").await.unwrap().unwrap().app_id;
    (sim, meta, app_id)
}

async fn set_deny(meta: &MetaClient, value: &str) {
    meta.set_app_envs("t", &[("replica.deny_client_request", value)])
        .await
        .unwrap();
}

/// Sets the deny env to `value`, waits up to `limit` until server 1's replica of `pidx`
/// applies it, and says how many ms after `s0` it did.
async fn applied_after(
    (sim, meta, app_id): (&SimCluster, &MetaClient, i32),
    pidx: usize,
    value: &str,
    s0: u64,
    limit: Duration,
) -> u64 {
    set_deny(meta, value).await;
    eventually_within("server 1 applies it", limit, || async {
        deny_applied(sim, app_id, pidx).is_some()
    })
    .await;
    deny_applied(sim, app_id, pidx).unwrap() - s0
}

/// A config-sync RPC that times out is not retried while the server is connected: the change
/// it carried waits for the first tick after the timeout, the ticks in between skipped
/// (`query_configuration_by_node` returns while `_config_query_task` is set,
/// `on_node_query_reply` re-asks only while connecting). The timeout is 5 s upstream; 1 s
/// here.
#[tokio::test]
async fn a_timed_out_config_sync_leaves_the_change_to_the_first_tick_after_the_timeout() {
    let (sim, meta, app_id) = synced_table(3, |c| {
        c.config_sync_interval = Duration::from_millis(400);
        c.config_sync_rpc_timeout = Duration::from_secs(1);
    })
    .await;
    let s0 = next_sync(&sim).await;
    // The call at s0 + 400 carries the deny and is lost at s0 + 1400; the ticks at s0 + 800
    // and s0 + 1200 are skipped; the one at s0 + 1600 applies it.
    fault(&sim, &["sync_slow", "1", "6000"]).await;
    let on = (&sim, &meta, app_id);
    let after = applied_after(on, 0, "reconfig*write", s0, Duration::from_secs(15)).await;
    assert!(
        // Retried at the next tick it would be ~800 ms; the test's own steps may lag on a
        // loaded machine, so the lower bound leaves room.
        (1000..3000).contains(&after),
        "applied {after} ms after the tick before the lost call, for a 400 ms period"
    );
}

/// While the meta persists a change concerning a server it answers its config sync
/// `ERR_BUSY`, and the server asks again every 500 ms rather than at its next tick
/// (`server_state::on_config_sync`, `replica_stub::on_node_query_reply`).
#[tokio::test]
async fn a_busy_meta_is_asked_again_500_ms_later_not_at_the_next_tick() {
    let (sim, meta, app_id) =
        synced_table(3, |c| c.config_sync_interval = Duration::from_millis(2000)).await;
    let s0 = next_sync(&sim).await;
    // Busy until s0 + 2250, however late this test gets here: the tick at s0 + 2000 meets it,
    // the retry at s0 + 2500 applies the deny, long before the tick at s0 + 4000.
    let busy = (s0 + 2250).saturating_sub(migrator::clock::now_ms());
    assert!(busy > 500, "the test came {} ms late", 2250 - busy);
    fault(&sim, &["sync_busy", "1", &busy.to_string()]).await;
    let on = (&sim, &meta, app_id);
    let after = applied_after(on, 0, "reconfig*write", s0, Duration::from_secs(15)).await;
    assert!(
        (2450..3500).contains(&after),
        "applied {after} ms after the tick before, for a 2000 ms period"
    );
}

/// A replica ignores a config-sync reply whose ballot for its partition is older than its
/// own: envs included (`replica::on_config_sync` returns first thing). The server's other
/// replicas apply theirs.
#[tokio::test]
async fn a_reply_at_an_older_ballot_leaves_that_replica_as_it_was() {
    let (sim, meta, _) =
        synced_table(6, |c| c.config_sync_interval = Duration::from_millis(400)).await;
    let prim = Primaries::read(&meta, "t").await.unwrap();
    let node = sim.replicas()[1];
    let mine: Vec<i32> = prim
        .parts
        .iter()
        .filter(|p| p.addr == Some(node))
        .map(|p| p.pidx)
        .collect();
    assert!(mine.len() >= 2, "server 1 is primary of {mine:?}");
    let stale = mine[0].to_string();
    fault(&sim, &["stale_ballot", "1", "t", &stale, "1500"]).await;
    set_deny(&meta, "reconfig*write").await;
    let probes = ReplicaClient::new(Duration::from_millis(300));
    let answers =
        || async { requests::send(&probes, &prim, Probe::Write, Duration::from_millis(600)).await };
    let of = |answers: &[Answer], pidx: i32| answers[usize::try_from(pidx).unwrap()].clone();
    eventually("server 1's other replica refuses the write", || async {
        of(&answers().await, mine[1]) == Answer::Refused
    })
    .await;
    assert_eq!(of(&answers().await, mine[0]), Answer::Served);
    eventually("after the window it applies the deny too", || async {
        of(&answers().await, mine[0]) == Answer::Refused
    })
    .await;
}

/// A server whose failure detector lost the meta turns its replicas inactive (clients get
/// `ERR_INVALID_STATE`), skips its ticks, and syncs at once when it has the meta back, not at
/// its next tick (`replica::on_meta_server_disconnected`, `on_meta_server_connected`).
#[tokio::test]
async fn a_server_cut_off_from_the_meta_refuses_clients_and_syncs_at_once_when_back() {
    let (sim, meta, app_id) = synced_table(3, |c| {
        c.config_sync_interval = Duration::from_millis(4000);
        // Not declared dead meanwhile.
        c.failure_detect = Duration::from_secs(5);
    })
    .await;
    let prim = Primaries::read(&meta, "t").await.unwrap();
    let pidx = prim
        .parts
        .iter()
        .find(|p| p.addr == Some(sim.replicas()[1]))
        .map(|p| p.pidx)
        .expect("server 1 is a primary");
    let s0 = next_sync(&sim).await;
    fault(&sim, &["disconnect", "1", "1500"]).await;
    let probes = ReplicaClient::new(Duration::from_millis(300));
    eventually("its primary refuses the write", || async {
        let answers =
            requests::send(&probes, &prim, Probe::Write, Duration::from_millis(600)).await;
        answers[usize::try_from(pidx).unwrap()] == Answer::Refused
    })
    .await;
    let (on, pidx) = ((&sim, &meta, app_id), usize::try_from(pidx).unwrap());
    let after = applied_after(on, pidx, "timeout*write", s0, Duration::from_secs(8)).await;
    assert!(
        (1450..3500).contains(&after),
        "applied {after} ms after its last tick: on reconnecting, not at the next tick (4000)"
    );
}

#[tokio::test]
async fn config_shows_flags_and_update_config_takes_effect_after_the_current_period() {
    for version in [Version::V2_5, Version::V2_6] {
        let long = |c: &mut SimConfig| c.config_sync_interval = Duration::from_millis(1500);
        let sim = start_with(&Directory::default(), "a", 1, version, long).await;
        table(&sim, "t", 3).await;
        let node = sim.replicas()[1];
        assert_eq!(
            flags::read(&replica(), node, CONFIG_SYNC).await.unwrap(),
            1500
        );
        let (status, body) = replica().http_get(node, "/config?name=nope").await.unwrap();
        assert_eq!(status, 200);
        assert!(body.starts_with("ERR_OBJECT_NOT_FOUND"), "{body}");
        for n in sim.replicas() {
            flags::update(&replica(), n, CONFIG_SYNC, 100)
                .await
                .unwrap();
        }
        assert_eq!(
            flags::read(&replica(), node, CONFIG_SYNC).await.unwrap(),
            100
        );
        // Let every server finish the period it was in.
        tokio::time::sleep(Duration::from_millis(1700)).await;
        let meta = meta_client(&sim);
        meta.set_app_envs("t", &[("replica.deny_client_request", "reconfig*write")])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let prim = Primaries::read(&meta, "t").await.unwrap();
        let probes = ReplicaClient::new(Duration::from_millis(300));
        let answers =
            requests::send(&probes, &prim, Probe::Write, Duration::from_millis(600)).await;
        let refused = answers.iter().filter(|a| **a == Answer::Refused).count();
        if version.is_2_6() {
            assert!(
                refused < 3,
                "master's /updateConfig never re-arms the timer: {answers:?}"
            );
        } else {
            assert_eq!(refused, 3, "2.5 syncs every 100 ms now: {answers:?}");
        }
        fault(&sim, &["replica_down", &node.to_string(), "on"]).await;
        fault(&sim, &["replica_down", &node.to_string(), "off"]).await;
        eventually("a restart forgets the runtime value", || async {
            flags::read(&replica(), node, CONFIG_SYNC).await.ok() == Some(1500)
        })
        .await;
    }
}

async fn proxy(
    zk: &migrator::routing::zk::Zk,
    root: &str,
    build: Build,
    directory: &Directory,
) -> MetaProxy {
    MetaProxy::start(zk.clone(), root, build, directory.metaproxy_sessions())
        .await
        .unwrap()
}

fn route_to(sim: &SimCluster) -> Vec<u8> {
    Route {
        cluster_name: sim.cluster().name.clone(),
        meta_addrs: sim.metas().iter().map(ToString::to_string).collect(),
    }
    .to_json()
    .into_bytes()
}

fn proxy_meta(p: &MetaProxy) -> MetaClient {
    MetaClient::new(
        vec![p.addr()],
        MetaOptions {
            call_timeout: Duration::from_millis(800),
            ..MetaOptions::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metaproxy_whose_watch_ended_keeps_the_old_route() {
    let zk_server = TestZk::get().await;
    let zk = zk_server.connect().await;
    let root = unique_root("watch-lost");
    let directory = Directory::default();
    let a = start_with(&directory, "a", 1, Version::V2_5, |_| {}).await;
    let b = start_with(&directory, "b", 2, Version::V2_5, |_| {}).await;
    table(&a, "t", 2).await;
    table(&b, "t", 2).await;
    zk.create_all(&node_path(&root, "t"), &route_to(&a))
        .await
        .unwrap();
    let p = proxy(&zk, &root, Build::HostPort, &directory).await;
    let client = proxy_meta(&p);
    let served_by = |sim: &SimCluster| {
        let replicas = sim.replicas();
        move |cfg: &migrator::pegasus::messages::apps::QueryCfgResponse| {
            cfg.partitions
                .iter()
                .all(|x| x.primary.to_socket().is_some_and(|s| replicas.contains(&s)))
        }
    };
    assert!(served_by(&a)(&client.query_config("t").await.unwrap()));
    fault(&a, &["metaproxy_watch_lost", "on"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    zk.set(&node_path(&root, "t"), &route_to(&b), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        served_by(&a)(&client.query_config("t").await.unwrap()),
        "the cached route outlives the routing change"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_metaproxy_answers_nothing_for_a_2_6_cluster() {
    let zk_server = TestZk::get().await;
    let zk = zk_server.connect().await;
    let root = unique_root("legacy");
    let directory = Directory::default();
    let old = start_with(&directory, "old", 1, Version::V2_5, |_| {}).await;
    let new = start_with(&directory, "new", 2, Version::V2_6, |_| {}).await;
    table(&old, "t25", 2).await;
    table(&new, "t26", 2).await;
    zk.create_all(&node_path(&root, "t25"), &route_to(&old))
        .await
        .unwrap();
    zk.create_all(&node_path(&root, "t26"), &route_to(&new))
        .await
        .unwrap();
    for (build, relays) in [(Build::Legacy, false), (Build::HostPort, true)] {
        let p = proxy(&zk, &root, build, &directory).await;
        let client = proxy_meta(&p);
        assert!(
            client.query_config("t25").await.is_ok(),
            "{build:?} relays 2.5"
        );
        let q = QueryCfgRequest {
            app_name: "t26".into(),
            partition_indices: vec![],
        };
        let answer = client.call_any::<QueryConfig>(&q).await;
        assert_eq!(answer.is_ok(), relays, "{build:?}: {answer:?}");
        if !relays {
            assert!(answer.unwrap_err().to_string().contains("no reply"));
        }
    }
}

/// When each primary of `t` first said `duplicating`, polled every 20 ms; by partition.
async fn shipping_since(meta: &MetaClient, t: &str, dupid: i32) -> Vec<tokio::time::Instant> {
    let prim = Primaries::read(meta, t).await.unwrap();
    let mut since: Vec<Option<tokio::time::Instant>> = vec![None; prim.parts.len()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while since.iter().any(Option::is_none) {
        assert!(tokio::time::Instant::now() < deadline, "{since:?}");
        let parts = progress::read(&replica(), &prim, Some(dupid), Duration::from_secs(1)).await;
        for (slot, p) in since.iter_mut().zip(&parts) {
            let on = p
                .value()
                .and_then(|p| p.counters)
                .is_some_and(|c| c.duplicating);
            if on && slot.is_none() {
                *slot = Some(tokio::time::Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    since.into_iter().flatten().collect()
}

#[tokio::test]
async fn adding_a_duplication_takes_five_duplication_syncs_and_each_primary_ships_at_its_servers_next_one(
) {
    // Every 600 ms, the three servers a third of a period apart.
    let period = Duration::from_millis(600);
    let directory = Directory::default();
    let slow = |c: &mut SimConfig| c.dup_sync_interval = period;
    let src = start_with(&directory, "src", 1, Version::V2_5, slow).await;
    let _dst = start_with(&directory, "dst", 2, Version::V2_5, slow).await;
    let _t = table(&src, "t", 6).await;
    let meta = meta_client(&src);
    let added = tokio::time::Instant::now();
    let dupid = meta
        .add_duplication(&add_request("t", "dst"))
        .await
        .unwrap()
        .dupid;
    let mut seen = vec![];
    while seen.last() != Some(&DuplicationStatus::DS_LOG) {
        assert!(added.elapsed() < Duration::from_secs(20), "{seen:?}");
        let status = meta.query_duplication("t").await.unwrap().entry_list[0].status;
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let to_log = added.elapsed();
    assert_eq!(
        seen,
        [
            DuplicationStatus::DS_PREPARE,
            DuplicationStatus::DS_APP,
            DuplicationStatus::DS_LOG
        ]
    );
    // Each server builds, reports the start, reports it prepared: its first three syncs,
    // the last server's first a period after the start; then any server's next sync sends
    // the create and a later one moves to DS_LOG: 3⅔ periods here, 5 with one server.
    assert!(to_log >= period * 3, "DS_LOG after {to_log:?}");
    assert!(to_log < period * 9, "DS_LOG after {to_log:?}");
    let at_log = tokio::time::Instant::now();
    let since = shipping_since(&meta, "t", dupid).await;
    let first = since.iter().min().unwrap();
    let last = since.iter().max().unwrap();
    assert!(
        *last - *first >= period / 6,
        "primaries on different servers start apart: {:?}",
        since.iter().map(|t| *t - at_log).collect::<Vec<_>>()
    );
    assert!(
        *last - at_log <= period * 2,
        "each starts within a sync of DS_LOG: {:?}",
        *last - at_log
    );
}

/// Adds a duplication of `t` on `from` to cluster `to` and waits until every primary ships.
async fn duplicate_to(from: &SimCluster, t: &str, to: &str) -> i32 {
    let meta = meta_client(from);
    let dupid = meta
        .add_duplication(&add_request(t, to))
        .await
        .unwrap()
        .dupid;
    shipping_everywhere(&meta, t, dupid).await;
    dupid
}

#[tokio::test]
async fn a_source_that_is_itself_a_follower_drops_a_write_its_duplicator_loads_before_a_duplicate()
{
    // up → src → dst, each table `t` the follower of the one before.
    let directory = Directory::default();
    let start = |name, id| start_with(&directory, name, id, Version::V2_6, |_| {});
    let (up, src, dst) = (
        start("up", 3).await,
        start("src", 1).await,
        start("dst", 2).await,
    );
    let _ = table(&up, "t", 2).await;
    duplicate_to(&up, "t", "src").await;
    let dupid = duplicate_to(&src, "t", "dst").await;
    let meta = meta_client(&src);
    meta.modify_duplication("t", dupid, DuplicationStatus::DS_PAUSE)
        .await
        .unwrap();
    crate::support::shipping_is(&meta, "t", dupid, false).await;
    let on = |sim: &SimCluster| TableClient::new("t", meta_client(sim), TableOptions::default());
    // A client's write on src, then one shipped in from up to the same partition behind it.
    on(&src).put(b"h", b"client", b"v").await.unwrap();
    on(&up).put(b"h", b"upstream", b"v").await.unwrap();
    eventually("up's write reached src", || async {
        on(&src).get(b"h", b"upstream").await.unwrap().is_some()
    })
    .await;
    meta.modify_duplication("t", dupid, DuplicationStatus::DS_LOG)
        .await
        .unwrap();
    shipping_everywhere(&meta, "t", dupid).await;
    eventually("src counts everything shipped", || async {
        counters(&meta, "t", dupid)
            .await
            .iter()
            .all(|p| p.counters.unwrap().not_duplicated == 0)
    })
    .await;
    assert_eq!(
        on(&dst).get(b"h", b"client").await.unwrap(),
        None,
        "the client's write is lost (#2284)"
    );
    assert!(on(&src).get(b"h", b"client").await.unwrap().is_some());
}

#[tokio::test]
async fn a_master_replica_server_behind_2_5_metas_keeps_its_config_sync_period_after_update_config()
{
    use migrator::probe::build::{sync_timer, SyncTimer};
    use migrator::sim::state::DenyEvent;
    // Mid-upgrade: 2.5 metas, replica server 1 already on master; every period 1500 ms.
    let mixed = |c: &mut SimConfig| {
        c.config_sync_interval = Duration::from_millis(1500);
        c.master_replicas = vec![1];
    };
    let sim = start_with(&Directory::default(), "a", 1, Version::V2_5, mixed).await;
    table(&sim, "t", 3).await;
    let timers: Vec<SyncTimer> = timers_of(&sim).await;
    assert_eq!(
        timers,
        [SyncTimer::Rearms, SyncTimer::Ignores, SyncTimer::Rearms]
    );
    for n in sim.replicas() {
        flags::update(&replica(), n, CONFIG_SYNC, 100)
            .await
            .unwrap();
    }
    // Let every server finish the period it was in, then change the env every 60 ms.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let meta = meta_client(&sim);
    let from = sim.cluster().lock().deny_log.len();
    for i in 0..25 {
        let value = if i % 2 == 0 {
            "reconfig*write"
        } else {
            "timeout*write"
        };
        meta.set_app_envs("t", &[("replica.deny_client_request", value)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // Syncs that applied a new value on `node` (one event per replica it hosts).
    let applied = |node: usize| {
        let mut at: Vec<u64> = sim.cluster().lock().deny_log[from..]
            .iter()
            .filter_map(|e| match e {
                DenyEvent::Applied { node: n, at_ms, .. } if *n == node => Some(*at_ms),
                _ => None,
            })
            .collect();
        at.dedup();
        at.len()
    };
    assert!(
        applied(0) >= 6 && applied(2) >= 6,
        "{} {}",
        applied(0),
        applied(2)
    );
    assert!(applied(1) <= 2, "still every 1500 ms: {}", applied(1));

    async fn timers_of(sim: &SimCluster) -> Vec<SyncTimer> {
        let mut out = vec![];
        for n in sim.replicas() {
            out.push(sync_timer(&replica(), n).await);
        }
        out
    }
}
