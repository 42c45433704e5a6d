//! The example CI workflow (`examples/github-workflow.yml`): its validate and plan steps run
//! as written against a simulated world, with `migrator` on the PATH.

use std::path::Path;
use std::process::Command;

use migrator::sim::Version;

use crate::stage::{Stage, StageOpts};

/// The `run:` script of the step named `name` in job `job`.
fn step(workflow: &serde_json::Value, job: &str, name: &str) -> String {
    workflow["jobs"][job]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["run"].as_str())
        .unwrap_or_else(|| panic!("no step {name} in job {job}"))
        .to_string()
}

fn run(script: &str, dir: &Path, plan_file: &str) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_migrator")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    Command::new("bash")
        .args(["-eo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("PLAN_FILE", plan_file)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_workflow_validates_and_posts_a_markdown_plan() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/github-workflow.yml"
    ))
    .unwrap();
    let workflow: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    let s = Stage::new("workflow", StageOpts::new(Version::V2_6, "21s")).await;
    let dir = s.dir.path();

    let validate = run(&step(&workflow, "validate", "validate"), dir, "m.yaml");
    assert!(validate.status.success(), "{validate:?}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("validate.json")).unwrap()).unwrap();
    assert_eq!(v["valid"], true);

    // A broken plan file: the step fails and prints one annotation naming file and line.
    std::fs::write(
        dir.join("bad.yaml"),
        "version: 1\nclusters: {}\nmigrations:\n  - { table: t, from: a, to: a }\n",
    )
    .unwrap();
    let bad = run(&step(&workflow, "validate", "validate"), dir, "bad.yaml");
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(said.contains("::error file=bad.yaml,line=4,col="), "{said}");

    let plan = run(&step(&workflow, "plan", "plan"), dir, "m.yaml");
    assert!(
        plan.status.success(),
        "changes (exit 2) pass the step: {plan:?}"
    );
    let md = std::fs::read_to_string(dir.join("plan.md")).unwrap();
    assert!(md.starts_with("### migrator plan"), "{md}");
    assert!(md.contains("| ➕ | `t0` |"), "{md}");
    assert!(md.len() < migrator::render::markdown::LIMIT);
    assert!(
        dir.join("plan.json").exists(),
        "the plan is saved for review"
    );
}
