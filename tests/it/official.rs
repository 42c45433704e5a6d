//! The official Python client (PyPI `pypegasus3`, unmodified) puts, gets, reads TTLs and
//! sort-key counts, and scans the whole table through the simulator, and the simulator really
//! holds what it wrote, in the partition the key routes to.
//!
//! Needs the client's venv: run `scripts/official-client-setup.sh` (or point
//! `MIGRATOR_OFFICIAL_PY` at a python that has `pypegasus3`). Without it the test fails.
//!
//! Only 2.5 mode: pypegasus3 knows `partition_configuration` fields 1-7 and skips others by their
//! wire type, but the 2.6 host_port fields 9-11 are placeholder "structs" (string, i16, i8 with no
//! STOP), so its generic skip misparses them and raises `TProtocolException: invalid TType` on
//! every 2.6 query-config reply (upstream `src/common/serialization_helper/thrift_helper.h`). A real 2.6 server sends the same bytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use migrator::pegasus::key;
use migrator::sim::{SimCluster, Version};

use crate::support::start;

const RECORDS: usize = 40;

/// The venv python: `MIGRATOR_OFFICIAL_PY`, else `.venv-official/bin/python` in the crate.
fn official_python() -> PathBuf {
    let setup = "run scripts/official-client-setup.sh to install the official client (pypegasus3)";
    if let Some(py) = std::env::var_os("MIGRATOR_OFFICIAL_PY") {
        let py = PathBuf::from(py);
        assert!(
            py.exists(),
            "MIGRATOR_OFFICIAL_PY={} does not exist: {setup}",
            py.display()
        );
        return py;
    }
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-official/bin/python");
    assert!(
        py.exists(),
        "{} does not exist and MIGRATOR_OFFICIAL_PY is unset: {setup}",
        py.display()
    );
    py
}

/// Runs tests/official_client/put_get.py against `sim`; returns (success, stdout, stderr).
async fn put_get(sim: &SimCluster, table: &str, n: usize) -> (bool, String, String) {
    let metas = sim
        .metas()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official_client/put_get.py");
    let mut child = Command::new(official_python())
        .arg(script)
        .args([metas.as_str(), table, &n.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the official client's python");
    // The script stops itself after 60 s; poll without blocking the runtime the sim runs on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("poll python").is_none() {
        if tokio::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("the official client hung for 90 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn official_client_round_trips(version: Version) {
    let sim = start("sim-a", 1, version).await;
    sim.create_table("t1", 8, 1).unwrap();
    let (ok, stdout, stderr) = put_get(&sim, "t1", RECORDS).await;
    assert!(
        ok,
        "official client failed against {version:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(
        stdout.trim(),
        format!(
            r#"{{"put": {RECORDS}, "get_ok": {RECORDS}, "ttl_ok": 1, "multi_ok": 1, "scanned": {}}}"#,
            RECORDS + 3
        ),
        "stderr: {stderr}"
    );

    let state = sim.cluster().lock();
    let app = state.app_by_name("t1").unwrap();
    for i in 0..RECORDS {
        let k = key::composite_key(format!("hk{i}").as_bytes(), b"sk").unwrap();
        let pidx = usize::try_from(key::partition_index(key::key_hash(&k), 8)).unwrap();
        let held = app.partitions[pidx]
            .data
            .get(&k)
            .map(|r| r.value.as_slice());
        assert_eq!(
            held,
            Some(format!("v{i}").as_bytes()),
            "hk{i} in partition {pidx}"
        );
    }
    let total: usize = app.partitions.iter().map(|p| p.data.len()).sum();
    assert_eq!(total, RECORDS + 3, "nothing else was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_client_puts_and_gets_through_a_2_5_simulator() {
    official_client_round_trips(Version::V2_5).await;
}
