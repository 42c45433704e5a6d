//! Owns `migrator dst` (hidden; `scripts/dst.sh` runs it): runs seeds of the deterministic
//! simulation of the cut-over on worker threads, prints every failing seed with what broke
//! and the first one's trace, and a summary with runs per second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::dst::{self, Options, Report};
use crate::error::Result;
use crate::exit::Exit;

/// Flags of `migrator dst`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print every seed's trace, not only the first failing one's.
    #[arg(long)]
    pub trace: bool,
    /// Run without faults (a clean migration per seed).
    #[arg(long)]
    pub no_faults: bool,
}

/// Runs the seeds; exits 1 when any failed.
///
/// # Errors
/// None of its own (a failing seed is reported, not returned).
pub async fn run(args: &Args) -> Result<Exit> {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let opts = Options {
        faults: !args.no_faults,
    };
    let (from, seeds, trace) = (args.from, args.seeds, args.trace);
    let started = Instant::now();
    let reports = tokio::task::spawn_blocking(move || run_seeds(from, seeds, jobs, &opts, trace))
        .await
        .unwrap_or_default();
    let secs = started.elapsed().as_secs_f64();
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.passed()).collect();
    for r in &failed {
        crate::say!("seed {} FAILED:", r.seed);
        for v in &r.violations {
            crate::say!("  {v}");
        }
    }
    if let Some(first) = failed.first() {
        crate::say!("\ntrace of seed {}:", first.seed);
        for line in &first.trace {
            crate::say!("{line}");
        }
        crate::say!(
            "\nreplay: scripts/dst.sh --seeds 1 --from {} --trace",
            first.seed
        );
    }
    let virtual_s: f64 = reports.iter().map(|r| r.virtual_time.as_secs_f64()).sum();
    #[allow(clippy::cast_precision_loss)]
    let n = reports.len() as f64;
    crate::say!(
        "{} passed, {} failed ({} seeds from {from} in {secs:.1}s on {jobs} threads: {:.1} runs/s, {:.0}s of virtual time each on average)",
        reports.len() - failed.len(),
        failed.len(),
        reports.len(),
        n / secs.max(1e-9),
        virtual_s / n.max(1.0)
    );
    Ok(if failed.is_empty() {
        Exit::Success
    } else {
        Exit::Error
    })
}

/// Runs seeds `from..from + count` on `jobs` threads; reports in seed order.
#[must_use]
pub fn run_seeds(from: u64, count: u64, jobs: usize, opts: &Options, trace: bool) -> Vec<Report> {
    let next = AtomicU64::new(from);
    let out = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= from + count {
                    break;
                }
                // The simulation's own log lines go to its trace, not the terminal.
                let quiet = tracing::subscriber::NoSubscriber::default();
                let report = tracing::subscriber::with_default(quiet, || dst::run(seed, opts));
                if trace {
                    let text = report.trace.join("\n");
                    crate::say!("--- seed {seed} ---\n{text}");
                }
                out.lock().expect("reports").push(report);
            });
        }
    });
    let mut reports = out.into_inner().expect("reports");
    reports.sort_by_key(|r| r.seed);
    reports
}
