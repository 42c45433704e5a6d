//! Owns `migrator verify FILE [--table T] [--mode full|sample] [--sample-rate R]
//! [--sample-salt N] [--rate N] [--byte-rate N] [--max-suspects N] [--resume] [--diff-out FILE]
//! [--keys FILE] [--shard I/N] [--json]`: compare each table on its source and target and
//! report what differs (`--merge`: `verify_merge`); exit 0 when equal (every key compared and matched), 2 when different, 5 when
//! incomplete (no difference, but keys not compared), 1 on error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::chosen_migrations;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::pegasus::table::{TableClient, TableOptions};
use crate::spec::Migration;
use crate::verify::{self, Mode, Options, Progress, Verdict};

/// Flags of `migrator verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (YAML).
    #[arg(required_unless_present = "merge")]
    pub file: Option<PathBuf>,
    /// Only this table (default: every table of the file).
    #[arg(long)]
    pub table: Option<String>,
    /// `full`: every record's key, value and expiry; `sample`: every key and expiry, the
    /// values of a sample of hash keys.
    #[arg(long, value_enum, default_value_t = Mode::Full)]
    pub mode: Mode,
    /// The fraction of hash keys whose values `sample` compares.
    #[arg(long, default_value_t = 0.01)]
    pub sample_rate: f64,
    /// The salt that picks `sample`'s hash keys (default: a new one each run; the report
    /// prints it, so a run can be repeated).
    #[arg(long)]
    pub sample_salt: Option<u64>,
    /// Most records read per second from each cluster (default: no limit).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Most bytes (keys and values) scanned per second from each cluster (default: no limit).
    #[arg(long)]
    pub byte_rate: Option<u64>,
    /// Partition groups compared at once (each reads all its partitions on both sides at
    /// once, a few batches ahead).
    #[arg(long, default_value_t = 16)]
    pub parallelism: usize,
    /// Rounds of re-reading differences before they count.
    #[arg(long, default_value_t = 5)]
    pub settle_rounds: u32,
    /// Differences kept for re-reading; more are not compared (the verdict is then at best
    /// `incomplete`). 100,000 keys hold about 10 MB.
    #[arg(long, default_value_t = 100_000)]
    pub max_suspects: usize,
    /// Go on from the checkpoint a failed or killed run left under `.migrator/verify/` (its
    /// mode and sample included) instead of starting over.
    #[arg(long)]
    pub resume: bool,
    /// Write every key still differing or changing to FILE, one JSON line each: the key in
    /// base64 and as text, and per side the value's length and crc64 and the expiry.
    #[arg(long, value_name = "FILE")]
    pub diff_out: Option<PathBuf>,
    /// Re-check only the keys in FILE (lines with a `key_b64`, as `--diff-out` writes them;
    /// lines of other tables are skipped) instead of scanning the tables.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub keys: Option<PathBuf>,
    /// Compare only share I of N of the partition groups (`I/N`: those whose group number
    /// modulo N is I), so N processes split one table; merge their `--json` reports with
    /// `--merge`. In sample mode give every shard the same `--sample-salt`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<verify::shard::Shard>,
    /// Merge the `--json` reports of a verify's shards (no plan file needed): one verdict and
    /// counts, as one run would give.
    #[arg(long, value_name = "REPORT", num_args = 1.., conflicts_with_all = ["keys", "resume", "diff_out"])]
    pub merge: Vec<PathBuf>,
    /// Print the whole report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// How often a run saves its progress under `.migrator/verify/`.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// How many differing keys are printed per table.
const FIRST_KEYS: usize = 10;

/// Verifies the chosen tables.
///
/// # Errors
/// An invalid plan file, an unknown table, or a cluster that cannot be read.
pub async fn run(args: &Args) -> Result<Exit> {
    if !(0.0..=1.0).contains(&args.sample_rate) {
        return Err(Error::Usage("--sample-rate must be within 0..1".into()));
    }
    for (flag, limit) in [("--rate", args.rate), ("--byte-rate", args.byte_rate)] {
        if limit == Some(0) {
            return Err(Error::Usage(format!(
                "{flag} 0 would never read a record: use at least 1, or leave it out for no limit"
            )));
        }
    }
    let Some(file) = args.file.as_ref().filter(|_| args.merge.is_empty()) else {
        return super::verify_merge::run(&args.merge, args.json);
    };
    let spec = crate::spec::load(file)?;
    let chosen = chosen_migrations(&spec, file, args.table.as_deref())?;
    let opts = Options {
        mode: args.mode,
        sample_rate: args.sample_rate,
        sample_salt: args.sample_salt.unwrap_or_else(verify::sample::random_salt),
        rate: args.rate,
        byte_rate: args.byte_rate,
        shard: args.shard.unwrap_or_default(),
        parallelism: args.parallelism,
        max_suspects: args.max_suspects,
        settle: verify::recheck::Settle {
            rounds: args.settle_rounds,
            ..verify::recheck::Settle::default()
        },
        ..Options::default()
    };
    if let Some(path) = &args.diff_out {
        std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    }
    let mut reports = Vec::new();
    let mut statuses = Vec::new();
    // A table that cannot be verified does not hide the others: they are reported, then the
    // first error is (exit 1).
    let mut failed = None;
    let pacers = verify::pace::Registry::default();
    for m in chosen {
        let checkpointing = verify::Checkpointing {
            store: verify::checkpoint::Store::new(
                std::path::Path::new(".migrator"),
                &label(&m.table, opts.shard),
                &m.from,
                &m.to,
                CHECKPOINT_EVERY,
            ),
            resume: args.resume,
        };
        let outcome = match verify_one(&spec, m, opts, &checkpointing, &pacers, args).await {
            Ok(o) => o,
            Err(e) => {
                if args.json {
                    reports.push(serde_json::json!({
                        "table": m.table, "from": m.from, "to": m.to, "error": e.to_string(),
                    }));
                } else {
                    crate::say!("{} {} → {}: not verified: {e}", m.table, m.from, m.to);
                    if checkpointing.store.path().exists() {
                        crate::say!(
                            "    progress saved in {}: `--resume` goes on from it",
                            checkpointing.store.path().display()
                        );
                    }
                }
                failed.get_or_insert(e);
                continue;
            }
        };
        statuses.push(exit_of(outcome.verdict));
        if args.json {
            reports.push(serde_json::json!({
                "table": m.table, "from": m.from, "to": m.to,
                "verdict": outcome.verdict,
                "equal": outcome.verdict == Verdict::Equal, "outcome": outcome,
            }));
        } else {
            for line in verify::report::lines(&m.table, &m.from, &m.to, &outcome, FIRST_KEYS) {
                crate::say!("{line}");
            }
        }
    }
    if args.json {
        let doc = serde_json::json!({"format_version": "1.0", "tables": reports});
        crate::say!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(Exit::worst(statuses)),
    }
}

/// The exit status of one table's verdict.
fn exit_of(v: Verdict) -> Exit {
    match v {
        Verdict::Equal => Exit::Success,
        Verdict::Different => Exit::Changes,
        Verdict::Incomplete => Exit::Incomplete,
    }
}

/// Verifies one table, showing progress on a terminal.
async fn verify_one(
    spec: &crate::spec::Spec,
    m: &Migration,
    opts: Options,
    checkpointing: &verify::Checkpointing,
    pacers: &verify::pace::Registry,
    args: &Args,
) -> Result<verify::Outcome> {
    let failed = |source| Error::Verify {
        table: m.table.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        source: Box::new(source),
    };
    let keys = match &args.keys {
        Some(path) => Some(verify::diffs::read_keys(path, &m.table).map_err(|e| failed(e.into()))?),
        None => None,
    };
    let timeout = Duration::from_secs(10);
    let client = |meta| {
        let t = TableOptions {
            op_timeout: timeout,
            ..TableOptions::default()
        };
        TableClient::new(&m.table, meta, t)
    };
    let src_meta = crate::observe::meta_client(spec, &m.from, timeout).await?;
    refuse_denied_reads(&src_meta, m).await?;
    let dst_meta = crate::observe::meta_client(spec, &m.to, timeout).await?;
    refuse_missing_target(&dst_meta, m).await?;
    let (src, dst) = (client(src_meta), client(dst_meta));
    let progress = Arc::new(Progress::default());
    let replica = crate::pegasus::replica::ReplicaClient::new(timeout);
    progress.estimate_of(&src, &replica).await;
    let shower = (!args.json && keys.is_none() && std::io::stderr().is_terminal()).then(|| {
        let p = progress.clone();
        let table = m.table.clone();
        tokio::spawn(async move { show(&table, &p).await })
    });
    let result = match keys {
        Some(keys) => verify::diffs::verify_keys(&src, &dst, opts, keys).await,
        None => {
            let pacers = pacers.pacers(&m.from, &m.to, opts.limits());
            verify::verify_resumable(
                &src,
                &dst,
                opts,
                progress,
                Some(checkpointing),
                Some(pacers),
            )
            .await
        }
    };
    if let Some(s) = shower {
        s.abort();
    }
    let outcome = result.map_err(failed)?;
    if let Some(path) = &args.diff_out {
        verify::diffs::write((&src, &dst), opts.limits(), &m.table, &outcome, path)
            .await
            .map_err(failed)?;
    }
    Ok(outcome)
}

fn io_err(path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A target without the table has nothing to compare (the duplication creates it): say so
/// rather than report every record missing.
async fn refuse_missing_target(
    meta: &crate::pegasus::meta::MetaClient,
    m: &Migration,
) -> Result<()> {
    if meta.available_app(&m.table).await?.is_some() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} does not exist on {}: nothing to compare yet (apply's duplication creates it)",
        m.table, m.to
    )))
}

/// A source that denies reads (`reconfig*all` after a cut-over, or `*read`) cannot be
/// scanned: say so at once rather than after every retry.
async fn refuse_denied_reads(meta: &crate::pegasus::meta::MetaClient, m: &Migration) -> Result<()> {
    use crate::pegasus::envs::DENY_ENV;
    let app = meta.available_app(&m.table).await?;
    match app.as_ref().and_then(|a| a.envs.get(DENY_ENV)) {
        Some(v) if v.ends_with("*all") || v.ends_with("*read") => Err(Error::Usage(format!(
            "{} on {} denies reads ({DENY_ENV} = {v}): verify compares while both clusters serve reads, before the switch",
            m.table, m.from
        ))),
        _ => Ok(()),
    }
}

/// A live line: how far the verify is, and at what rate.
async fn show(table: &str, p: &Progress) {
    let bar = indicatif::ProgressBar::new_spinner();
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let rate = p.records.load(Ordering::Relaxed) as f64 / elapsed.max(0.001);
        bar.set_message(format!("{table}: {} ({rate:.0}/s)", p.describe(elapsed)));
        bar.tick();
    }
}

/// The table's name in its checkpoint's: a shard's own (`T_shard-I-of-N`), so shards sharing
/// a directory never take up each other's.
fn label(table: &str, shard: verify::shard::Shard) -> String {
    if shard.is_split() {
        format!("{table}_shard-{}-of-{}", shard.index, shard.count)
    } else {
        table.to_string()
    }
}
