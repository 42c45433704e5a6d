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
    (
        5062,
        "liveness: guardians' aftercare deleted an absent deny env every second, and the simulated late syncs it caused piled up until no server synced",
    ),
    (7646, "the same with another operator's apply"),
    (
        3838,
        "a second operator's apply planned before it held the locks, then added a duplication of a table another run had migrated meanwhile, and held every table's lock while it waited",
    ),
    (
        1293,
        "(g): a duplicate batch handled late was overtaken by the next one and put an older value back on the target (the simulator reordered a connection's requests; a server does not)",
    ),
    (
        1022,
        "(f), once 2.5 sources were no longer blocked in every world: the source meta's create of the follower table lost its reply, every retry met ERR_APP_EXIST, the duplication stayed in DS_PREPARE for good and every run waited its 10 minutes out; apply now stops for an operator",
    ),
    (1458, "the same, after a host crash"),
    (
        6945,
        "R8, (g): a write a stalled primary admitted before the block committed after the drain; no reply shows such a write, so (g) now leaves keys that landed under the block to (a) and (b), and finish waits for them before removing the duplication",
    ),
    (
        4315,
        "(f), once timeout* silence had to outlast a failed config sync: the budget left out the two polls of unanswered probes the evidence can lose, the least budget had no rounding slack left, and every run gave up for want of the switch's 8 s",
    ),
    (
        1737,
        "(c), with 2.5 sources at the default 30 s config sync: a run resuming a block whose host had crashed (guardian included) waited one old period for its speed-up before taking the block over, past its give_up",
    ),
    (
        4170,
        "(c), at the default 30 s config sync: a re-run set a fresh block before the guardian's lift of the last one had reached every server, so one server denied writes from the first block's start to the second one's end",
    ),
    (6118, "the same after apply's own lift"),
    (
        14594,
        "the same on a server that held no primary of the table (no probe reaches it), found on a build with R6 undone and failing on the code as it stood: a fresh block now also waits one config sync at the period read after the last lift",
    ),
    (16259, "the same"),
    (
        2390,
        "(c), the same once more: the wait after the lift counted one config sync, but the server's sync after the lift was lost (the next came a period later), and a primary moved onto it during the wait after it had been probed; the wait now allows one failed sync and the probes come after it",
    ),
    (
        4401,
        "(e), once another operator set deny envs by hand: a guardian's aftercare deleted an env of its block's value that an operator set 30 s after the lift, taking it for its own set landing late; it now does so only within 30 s of the lift's record",
    ),
    (
        4022,
        "(e), the same after the guardian's host clock stepped back 46 s: its shared clock followed the step and kept that window open; a shared clock now advances with monotonic time once measured",
    ),
    (
        1134,
        "(e): another operator's `migrator abort` deleted a deny env an operator had set by hand long after migrator's block was lifted, taking it for a late landing of that block's set",
    ),
];

/// Seeds that fail on the code as it stands, for a cause not fixed yet: each must still fail
/// with the invariant named (so a fix shows here), and the thousand-seed run lets only these
/// fail. benches/README.md and the issue note tell what each is.
const OPEN_FINDINGS: &[(u64, &str, &str)] = &[];

fn explain(r: &Report) -> String {
    format!(
        "seed {} broke:\n  {}\ntrace:\n{}",
        r.seed,
        r.violations.join("\n  "),
        r.trace.join("\n")
    )
}

/// Seeds whose worlds verify before the block (seed 182's does not): 1006 and 1020 in sample
/// mode, 1042, 1109 and 1150 in full mode.
const VERIFYING: &[u64] = &[1006, 1020, 1042, 1109, 1150];

/// The first line where two traces of one seed part, with its neighbours.
fn first_difference(seed: u64, a: &[String], b: &[String]) -> String {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let show = |t: &[String]| t[at.saturating_sub(2)..(at + 3).min(t.len())].join("\n");
    format!(
        "seed {seed} ran differently from line {at}:\n{}\n--- against ---\n{}",
        show(a),
        show(b)
    )
}

#[test]
fn a_seed_replays_the_same_trace() {
    let opts = Options::default();
    for seed in std::iter::once(182).chain(VERIFYING.iter().copied()) {
        let first = dst::run(seed, &opts);
        let again = dst::run(seed, &opts);
        assert!(first.trace.len() > 50, "a run says what happened");
        assert!(
            first.trace == again.trace,
            "{}",
            first_difference(seed, &first.trace, &again.trace)
        );
    }
}

/// The thousand-seed test runs worlds on several threads of one process: nothing one world
/// does may reach another (seed 1424 once ran differently inside `cargo test`).
#[test]
fn a_seed_replays_the_same_trace_beside_other_worlds() {
    let opts = Options::default();
    let alone: Vec<Report> = VERIFYING.iter().map(|s| dst::run(*s, &opts)).collect();
    for round in 0..2 {
        let together: Vec<Report> = std::thread::scope(|scope| {
            let runs: Vec<_> = VERIFYING
                .iter()
                .map(|s| scope.spawn(|| dst::run(*s, &opts)))
                .collect();
            runs.into_iter().map(|r| r.join().expect("a run")).collect()
        });
        for (a, t) in alone.iter().zip(&together) {
            assert!(
                a.trace == t.trace,
                "round {round}: {}",
                first_difference(a.seed, &a.trace, &t.trace)
            );
        }
    }
}

/// `migrator dst --trace` (scripts/dst.sh) prints the trace a test run of the seed records:
/// nothing of the process that ran it (its id, its clock) shows.
#[test]
fn the_command_line_prints_the_trace_a_test_records() {
    for seed in [182, 1042] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_migrator"))
            .args(["dst", "--seeds", "1", "--jobs", "1", "--trace", "--from"])
            .arg(seed.to_string())
            .output()
            .expect("run migrator dst");
        let text = String::from_utf8_lossy(&out.stdout);
        let printed: Vec<String> = text
            .lines()
            .skip_while(|l| !l.starts_with("--- seed"))
            .skip(1)
            .take_while(|l| !l.contains(" passed, "))
            .map(str::to_string)
            .collect();
        let here = dst::run(seed, &Options::default());
        assert!(
            here.trace == printed,
            "{}",
            first_difference(seed, &here.trace, &printed)
        );
    }
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
    let open = |seed: u64| OPEN_FINDINGS.iter().any(|(s, ..)| *s == seed);
    let failed: Vec<&Report> = reports
        .iter()
        .filter(|r| !r.passed() && !open(r.seed))
        .collect();
    let seeds: Vec<u64> = failed.iter().map(|r| r.seed).collect();
    assert!(
        failed.is_empty(),
        "{} of {count} seeds failed: {seeds:?}\n{}",
        failed.len(),
        failed.first().map(|r| explain(r)).unwrap_or_default()
    );
    // A world whose tables `plan` blocks passes every check and tests nothing: most runs must
    // carry a table through to the end (each source version, so neither half goes blank).
    for version in ["V2_5", "V2_6"] {
        let of_version: Vec<&Report> = reports
            .iter()
            .filter(|r| {
                r.trace
                    .first()
                    .is_some_and(|l| l.contains(&format!("source: {version}")))
            })
            .collect();
        let migrated = of_version
            .iter()
            .filter(|r| r.trace.iter().any(|l| l.contains("finish: migrated")))
            .count();
        assert!(
            migrated * 10 >= of_version.len() * 8,
            "only {migrated} of {} runs with a {version} source migrated a table",
            of_version.len()
        );
    }
}

#[test]
fn the_open_findings_still_fail_as_recorded() {
    for (seed, invariant, what) in OPEN_FINDINGS {
        let report = dst::run(*seed, &Options::default());
        assert!(
            report.violations.iter().any(|v| v.starts_with(invariant)),
            "seed {seed} no longer breaks {invariant} ({what}): fixed? move it to REGRESSIONS\n{}",
            explain(&report)
        );
    }
}
