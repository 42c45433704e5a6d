//! Planning against simulated clusters and real ZooKeeper: fresh tables migrate, a hand-made
//! duplication resumes, routing elsewhere blocks, 2.5 and 2.6 sources both plan, and an
//! unreachable or misnamed cluster is one clear error.

use migrator::observe::{observe, Error as ObserveError, ObserveOptions};
use migrator::pegasus::messages::duplication::AddDuplicationRequest;
use migrator::plan::{Action, StepKind};
use migrator::routing::{node_path, Route};
use migrator::sim::{Directory, SimCluster, Version};
use migrator::spec::Spec;

use crate::support::{eventually, meta_client, start_in, unique_root, TestZk};

struct World {
    zk: TestZk,
    root: String,
    src: SimCluster,
    dst: SimCluster,
}

fn quoted(addrs: &[std::net::SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl World {
    async fn new(test: &str, src_version: Version, tables: &[&str]) -> World {
        let zk = TestZk::get().await;
        let directory = Directory::default();
        let src = start_in(&directory, "src", 1, src_version).await;
        let dst = start_in(&directory, "dst", 2, Version::V2_6).await;
        let root = unique_root(test);
        let session = zk.connect().await;
        for t in tables {
            src.create_table(t, 4, 1).unwrap();
            let route = Route {
                cluster_name: "src".into(),
                meta_addrs: src.metas().iter().map(ToString::to_string).collect(),
            };
            session
                .create_all(&node_path(&root, t), route.to_json().as_bytes())
                .await
                .unwrap();
        }
        World { zk, root, src, dst }
    }

    fn spec(&self, tables: &[&str]) -> Spec {
        let mut text = format!(
            "version: 1\nclusters:\n  src: {{ meta: [{}] }}\n  dst: {{ meta: [{}] }}\nmetaproxy: {{ zookeeper: [\"{}\"], root: {} }}\n\
             defaults: {{ threshold: 10 }}\nmigrations:\n",
            quoted(&self.src.metas()),
            quoted(&self.dst.metas()),
            self.zk.addr,
            self.root
        );
        for t in tables {
            text.push_str(&format!("  - {{ table: {t}, from: src, to: dst }}\n"));
        }
        migrator::spec::load_str("test.yaml", &text).unwrap()
    }
}

async fn plan_of(spec: &Spec) -> migrator::plan::Plan {
    let observed = observe(spec, ObserveOptions::default()).await.unwrap();
    migrator::plan::plan(spec, &observed)
}

async fn scenario(version: Version) {
    let tables = ["fresh", "resumed", "elsewhere", "taken"];
    let w = World::new("scenario", version, &tables).await;
    let meta = meta_client(&w.src);
    let req = AddDuplicationRequest {
        app_name: "resumed".into(),
        remote_cluster_name: "dst".into(),
        is_duplicating_checkpoint: Some(true),
        ..Default::default()
    };
    meta.add_duplication(&req).await.unwrap();
    let route = Route {
        cluster_name: "other".into(),
        meta_addrs: vec!["10.9.9.9:1".into(), "10.9.9.8:1".into()],
    };
    w.zk.connect()
        .await
        .set(
            &node_path(&w.root, "elsewhere"),
            route.to_json().as_bytes(),
            None,
        )
        .await
        .unwrap();
    w.dst.create_table("taken", 4, 1).unwrap();

    let spec = w.spec(&tables);
    let catch_up_lag = |t: &migrator::plan::TablePlan| {
        t.steps.iter().find_map(|s| match &s.detail {
            migrator::plan::StepDetail::CatchUp { lag, .. } => Some(*lag),
            _ => None,
        })
    };
    // Each primary ships from its server's first duplication sync after DS_LOG; a 2.5
    // partition's newest write (an empty one every group check here) waits for the next.
    let settled = |lag: Option<Option<i64>>| lag.flatten().is_some_and(|l| (0..=4).contains(&l));
    eventually("the duplication reaches DS_LOG and ships", || async {
        let t = &plan_of(&spec).await.tables[1];
        t.phase == Some(StepKind::CatchUp) && settled(catch_up_lag(t))
    })
    .await;
    let plan = plan_of(&spec).await;
    let by_name = |n: &str| plan.tables.iter().find(|t| t.table == n).unwrap();
    assert_eq!(by_name("fresh").action, Action::Migrate);
    assert_eq!(by_name("fresh").steps.len(), StepKind::ALL.len());
    let resumed = by_name("resumed");
    assert_eq!(
        (resumed.action, resumed.phase),
        (Action::Resume, Some(StepKind::CatchUp))
    );
    assert!(
        settled(catch_up_lag(resumed)),
        "lag is known on {version}: {:?}",
        catch_up_lag(resumed)
    );
    assert_eq!(by_name("elsewhere").blockers[0].code, "routing_elsewhere");
    assert_eq!(by_name("taken").blockers[0].code, "target_exists");
    let s = plan.summary();
    assert_eq!((s.migrate, s.resume, s.done, s.blocked), (1, 1, 0, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_5_source_plans_each_phase_and_blocker() {
    scenario(Version::V2_5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_6_source_plans_each_phase_and_blocker() {
    scenario(Version::V2_6).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_version_0_table_is_blocked() {
    let w = World::new("v0", Version::V2_5, &[]).await;
    w.src.create_table("old", 4, 0).unwrap();
    let route = Route {
        cluster_name: "src".into(),
        meta_addrs: w.src.metas().iter().map(ToString::to_string).collect(),
    };
    w.zk.connect()
        .await
        .create_all(&node_path(&w.root, "old"), route.to_json().as_bytes())
        .await
        .unwrap();
    let plan = plan_of(&w.spec(&["old"])).await;
    assert_eq!(plan.tables[0].blockers[0].code, "data_version");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_meta_is_one_clear_error_naming_the_cluster() {
    let w = World::new("unreachable", Version::V2_5, &["t"]).await;
    let spec = w.spec(&["t"]);
    migrator::pegasus::replica::ReplicaClient::new(std::time::Duration::from_secs(1))
        .command(w.dst.metas()[0], "sim.fault", &["unreachable", "on"])
        .await
        .unwrap();
    let opts = ObserveOptions {
        timeout: std::time::Duration::from_millis(500),
        ..ObserveOptions::default()
    };
    let err = observe(&spec, opts).await.unwrap_err();
    assert!(
        matches!(&err, ObserveError::Cluster { cluster, .. } if cluster == "dst"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("cluster dst is unreachable"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_key_that_is_not_the_cluster_name_is_refused() {
    let w = World::new("misnamed", Version::V2_5, &["t"]).await;
    let mut spec = w.spec(&["t"]);
    let dst = spec.clusters.remove("dst").unwrap();
    spec.clusters.insert("prod".into(), dst);
    spec.migrations[0].to = "prod".into();
    let err = observe(&spec, ObserveOptions::default()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cluster prod in the plan file is dst according to its meta servers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_reads_the_flags_that_stop_a_2_5_drain() {
    use migrator::pegasus::replica::ReplicaClient;
    use migrator::probe::flags::{self, EMPTY_WRITE_DISABLED};

    let w = World::new("no-empty-write", Version::V2_5, &["t"]).await;
    let spec = w.spec(&["t"]);
    let p = plan_of(&spec).await;
    assert_eq!(p.tables[0].action, Action::Migrate, "{:?}", p.tables[0]);
    let node = w.src.replicas()[1];
    let replica = ReplicaClient::new(std::time::Duration::from_secs(2));
    flags::update(&replica, node, EMPTY_WRITE_DISABLED, true)
        .await
        .unwrap();
    let p = plan_of(&spec).await;
    let t = &p.tables[0];
    assert_eq!(t.action, Action::Blocked);
    let b = t
        .blockers
        .iter()
        .find(|b| b.code == "empty_write_disabled")
        .unwrap_or_else(|| panic!("{:?}", t.blockers));
    assert!(b.reason.contains(&node.to_string()), "{}", b.reason);
}
