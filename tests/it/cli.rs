//! The `migrator` binary: `sandbox` serves, writes its files, and leaves nothing behind on
//! SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use migrator::pegasus::meta::{MetaClient, MetaOptions};
use migrator::pegasus::table::{TableClient, TableOptions};

fn wait_for(path: &Path, limit: Duration) -> Duration {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < limit,
            "{} not written within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// A child process killed when the test ends, even by a failed assertion.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "sandbox did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn processes_mentioning(text: &str) -> Vec<String> {
    let out = Command::new("pgrep").args(["-af", text]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_serves_writes_its_files_and_leaves_nothing_behind_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_migrator"))
            .args(["sandbox", "--dir"])
            .arg(dir.path())
            .args([
                "--write-rate",
                "200",
                "--config-sync-ms",
                "100",
                "--with-v0-table",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let took = wait_for(&dir.path().join("migrations.yaml"), Duration::from_secs(30));
    eprintln!("sandbox files written after {took:?}");
    let sandbox: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sandbox.json")).unwrap())
            .unwrap();
    assert_eq!(sandbox["clusters"][0]["name"], "sandbox-a");
    assert_eq!(sandbox["clusters"][1]["version"], "2.6");
    assert_eq!(sandbox["tables"].as_array().unwrap().len(), 4);
    assert!(sandbox["metaproxy"]["address"].is_string());
    let spec = migrator::spec::load(&dir.path().join("migrations.yaml")).unwrap();
    assert_eq!(spec.migrations.len(), 4);
    // Its plan file plans: only the data-version-0 table is blocked (the write-block budget
    // written there fits the sandbox's timings).
    let planned = migrator(&["plan", "migrations.yaml", "--json"], dir.path());
    assert!(planned.status.success(), "{planned:?}");
    let doc: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let blockers: Vec<&str> = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["blockers"].as_array().unwrap())
        .map(|b| b["code"].as_str().unwrap())
        .collect();
    assert_eq!(blockers, ["data_version"], "{doc}");

    // Our production client reaches the source cluster's metas from sandbox.json.
    let metas = sandbox["clusters"][0]["meta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().parse().unwrap())
        .collect();
    let t0 = TableClient::new(
        "t0",
        MetaClient::new(metas, MetaOptions::default()),
        TableOptions::default(),
    );
    assert_eq!(
        t0.get(b"seed7", b"s").await.unwrap(),
        Some(b"seed7".to_vec())
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = wait_exit(&mut child.0, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let client: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("client.json")).unwrap())
            .unwrap();
    assert!(client["acked_writes"].as_u64().unwrap() > 0, "{client}");
    assert_eq!(client["lost_writes"], 0, "{client}");
    let zk_dir = dir.path().join("zookeeper");
    let left = processes_mentioning(&zk_dir.display().to_string());
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn sandbox_exits_promptly_on_sigterm_when_its_zookeeper_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_migrator"))
            .args(["sandbox", "--dir"])
            .arg(dir.path())
            .args(["--write-rate", "100", "--config-sync-ms", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&dir.path().join("migrations.yaml"), Duration::from_secs(30));
    let zk_dir = dir.path().join("zookeeper");
    Command::new("pkill")
        .args(["-KILL", "-f", &zk_dir.display().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    // Measured at about 1.7 s; the bound only catches a wait on the lost ZooKeeper session.
    let status = wait_exit(&mut child.0, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

fn migrator(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_migrator"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn validate_reports_json_diagnostics_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plans/two-clusters-metaproxy.yaml"
    );
    let ok = migrator(&["validate", good], dir.path());
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid (2 migration(s))"));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nclusters: {}\nmigrations:\n  - { table: t, from: a, to: a }\n",
    )
    .unwrap();
    let out = migrator(&["validate", "--json", bad.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let diags = v["diagnostics"].as_array().unwrap();
    assert!(
        diags.iter().any(|d| d["line"] == 4
            && d["message"]
                .as_str()
                .unwrap()
                .contains("from and to are both a")),
        "{v}"
    );
    let human = migrator(&["validate", bad.to_str().unwrap()], dir.path());
    assert!(
        String::from_utf8_lossy(&human.stderr).contains("bad.yaml:4:"),
        "{human:?}"
    );
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // 2 means "changes" to scripts: a typo must never look like one.
    for args in [
        &["plan"][..],
        &["apply", "--no-such-flag", "x.yaml"],
        &["no-such-command"],
    ] {
        let out = migrator(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
    for (args, says) in [
        (
            &["verify", "x.yaml", "--rate", "0"][..],
            "--rate 0 would never read",
        ),
        (
            &["verify", "x.yaml", "--sample-rate", "2"],
            "--sample-rate must be within 0..1",
        ),
    ] {
        let out = migrator(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{args:?}: {said}");
    }
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        let out = migrator(args, dir.path());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?} prints on stdout");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_saves_a_plan_that_show_prints_and_exit_codes_follow_changes() {
    let zk = crate::support::TestZk::get().await;
    let directory = migrator::sim::Directory::default();
    let a = crate::support::start_in(&directory, "a", 1, migrator::sim::Version::V2_5).await;
    let b = crate::support::start_in(&directory, "b", 2, migrator::sim::Version::V2_6).await;
    a.create_table("t", 4, 1).unwrap();
    let root = crate::support::unique_root("cli-plan");
    let route = migrator::routing::Route {
        cluster_name: "a".into(),
        meta_addrs: a.metas().iter().map(ToString::to_string).collect(),
    };
    zk.connect()
        .await
        .create_all(
            &migrator::routing::node_path(&root, "t"),
            route.to_json().as_bytes(),
        )
        .await
        .unwrap();
    let list = |s: &migrator::sim::SimCluster| {
        s.metas()
            .iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let yaml = format!(
        "version: 1\nclusters:\n  a: {{ meta: [{}] }}\n  b: {{ meta: [{}] }}\nmetaproxy: {{ zookeeper: [\"{}\"], root: {root} }}\nmigrations:\n  - {{ table: t, from: a, to: b }}\n",
        list(&a),
        list(&b),
        zk.addr
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), yaml).unwrap();
    let out = tokio::task::spawn_blocking({
        let d = dir.path().to_path_buf();
        move || migrator(&["plan", "m.yaml", "--json", "--detailed-exitcode"], &d)
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(planned["tables"][0]["action"], "migrate");
    assert!(dir.path().join(".migrator/plan.json").exists());
    let shown = migrator(&["show", "--json"], dir.path());
    assert_eq!(shown.status.code(), Some(0));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&shown.stdout).unwrap(),
        planned
    );
    let text = migrator(&["show"], dir.path());
    assert!(String::from_utf8_lossy(&text.stdout)
        .contains("Plan: 1 to migrate, 0 to resume, 0 already done, 0 blocked."));
    std::fs::write(dir.path().join("junk.json"), "{\"format_version\": 99}").unwrap();
    let junk = migrator(&["show", "junk.json"], dir.path());
    assert_eq!(junk.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&junk.stderr).contains("plan file format 99 is not supported"),
        "{junk:?}"
    );
}
