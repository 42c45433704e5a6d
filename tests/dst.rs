//! The deterministic simulation of the real cut-over (`migrator::dst`) in `cargo test`: a
//! thousand seeded runs keep every invariant, a seed replays the same trace, and the seeds
//! that found a bug stay here as regressions. `DST_SEEDS=N` runs N seeds instead;
//! `scripts/dst.sh` runs more, with traces.

use migrator::cli::dst::run_seeds;
use migrator::dst::{self, Options, Report};

/// Seeds that failed before a fix, with what they found (benches/README.md tells the story).
const REGRESSIONS: &[(u64, &str)] = &[
    (
        182,
        "R2: a stale guardian's delayed delete of the deny env lands in a newer block",
    ),
    (
        40,
        "R1: timeout mode took a stalled primary's silence for the block and split writes",
    ),
    (65, "R1: the same with another primary and timing"),
    (
        196,
        "R3: the guardian of a committed switch whose apply died never exited",
    ),
    (
        1093,
        "R4, first fix: a routing rewrite that changed nothing left a block no one lifts",
    ),
    (
        1738,
        "check (c): a deny env the meta took late and lost before any server applied it",
    ),
    (
        3187,
        "check (c): ZooKeeper calls faulted around the guardian's lift delay it",
    ),
];

fn explain(r: &Report) -> String {
    format!(
        "seed {} broke:\n  {}\ntrace:\n{}",
        r.seed,
        r.violations.join("\n  "),
        r.trace.join("\n")
    )
}

#[test]
fn a_seed_replays_the_same_trace() {
    let opts = Options::default();
    let first = dst::run(182, &opts);
    let again = dst::run(182, &opts);
    assert!(first.trace.len() > 50, "a run says what happened");
    assert_eq!(first.trace, again.trace, "seed 182 ran differently twice");
}

#[test]
fn the_seeds_that_found_bugs_pass() {
    for (seed, what) in REGRESSIONS {
        let report = dst::run(*seed, &Options::default());
        assert!(report.passed(), "{what}\n{}", explain(&report));
    }
}

#[test]
fn a_thousand_seeds_keep_every_invariant() {
    let count = std::env::var("DST_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let jobs = std::thread::available_parallelism().map_or(2, usize::from);
    let reports = run_seeds(1000, count, jobs, &Options::default(), false);
    assert_eq!(reports.len() as u64, count);
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.passed()).collect();
    let seeds: Vec<u64> = failed.iter().map(|r| r.seed).collect();
    assert!(
        failed.is_empty(),
        "{} of {count} seeds failed: {seeds:?}\n{}",
        failed.len(),
        failed.first().map(|r| explain(r)).unwrap_or_default()
    );
}
