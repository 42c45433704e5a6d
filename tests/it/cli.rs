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
    let mut child = Command::new(env!("CARGO_BIN_EXE_migrator"))
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
        .unwrap();
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
        Some(b"seed".to_vec())
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30));
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
