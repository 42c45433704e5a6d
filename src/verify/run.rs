//! Owns one verify run from start to verdict: both layouts read, the partition groups started
//! (or taken up from a checkpoint) and saved as they go, the suspects re-read, and the layouts
//! read again to see they held.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::checkpoint::{Saved, Settings, Store};
use super::compare::{Counts, Diff};
use super::group::{ClassJob, ClassState, Shared};
use super::layout::{self, Layout};
use super::pace::Pacers;
use super::recheck::{self, Sides};
use super::shard::ShardReport;
use super::stream::{class_partitions, classes};
use super::{sets_default_ttl, Error, Mode, Options, Outcome, Progress, Result, Totals, Verdict};
use crate::pegasus::table::TableClient;

/// Where a run saves its progress, and whether it takes up the saved one.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    pub store: Store,
    pub resume: bool,
}

/// Compares the table `src` reads with the one `dst` reads.
///
/// # Errors
/// A scan or read failed past its retries, a scan did not ascend, or the layout changed.
pub async fn verify(
    src: &TableClient,
    dst: &TableClient,
    opts: Options,
    progress: Arc<Progress>,
) -> Result<Outcome> {
    verify_resumable(src, dst, opts, progress, None, None).await
}

/// Like [`verify`], saving its progress to `checkpointing`'s store every so often (and when
/// it fails), going on from the saved progress when asked to resume (the saved sample
/// included), and forgetting it once it reaches a verdict; reading under `pacers` (the
/// clusters' shared ones, `pace::Registry::pacers`) or, without, pacers of its own.
///
/// # Errors
/// As [`verify`]; and a checkpoint to resume from that is missing, unreadable or was saved
/// for another layout.
pub async fn verify_resumable(
    src: &TableClient,
    dst: &TableClient,
    opts: Options,
    progress: Arc<Progress>,
    checkpointing: Option<&Checkpointing>,
    pacers: Option<Pacers>,
) -> Result<Outcome> {
    let started = Instant::now();
    let s = Layout::read(src).await.map_err(Error::Source)?;
    let t = Layout::read(dst).await.map_err(Error::Target)?;
    let default_ttl = sets_default_ttl(src).await.map_err(Error::Source)?
        || sets_default_ttl(dst).await.map_err(Error::Target)?;
    let g = classes(s.partitions, t.partitions);
    let now = Settings {
        mode: opts.mode,
        sample_rate: opts.sample_rate,
        sample_salt: opts.sample_salt,
        compare_expiry: opts.compare_expiry && !default_ttl,
        partitions: [s.partitions, t.partitions],
    };
    let start = start_from(checkpointing, now, g)?;
    let settings = start.settings;
    let opts = Options {
        mode: settings.mode,
        sample_rate: settings.sample_rate,
        sample_salt: settings.sample_salt,
        compare_expiry: settings.compare_expiry,
        ..opts
    };
    let mine = |c: usize| i32::try_from(c).is_ok_and(|c| opts.shard.takes(c));
    let taken = (0..start.classes.len()).filter(|c| mine(*c)).count() as u64;
    progress.classes.store(taken, Ordering::Relaxed);
    let done = (start.classes.iter().enumerate())
        .filter(|(i, c)| c.done && mine(*i))
        .count() as u64;
    progress.classes_done.store(done, Ordering::Relaxed);
    let compared: u64 = start.classes.iter().map(|c| c.counts.scanned).sum();
    progress.records.store(compared, Ordering::Relaxed);
    let sides = Sides {
        src: src.clone(),
        dst: dst.clone(),
        expiry: opts.compare_expiry,
        pacers: Arc::new(pacers.unwrap_or_else(|| Pacers::new(opts.limits()))),
    };
    let shared = Arc::new(Shared {
        suspects: Mutex::new(start.suspects),
        not_rechecked: AtomicU64::new(start.not_rechecked),
        values_compared: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        classes: Mutex::new(start.classes),
        progress,
    });
    // Stopped when the groups end, or when the run is dropped (a killed task saves no more).
    let saver = checkpointing.map(|c| {
        let (store, shared) = (c.store.clone(), shared.clone());
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(store.every).await;
                save(&store, &shared, settings);
            }
        }))
    });
    let groups = compare_groups(&sides, &shared, opts, (s.partitions, t.partitions)).await;
    drop(saver);
    if let Some(c) = checkpointing {
        save(&c.store, &shared, settings);
    }
    let max_in_hand = groups?;
    let mut suspects = std::mem::take(&mut *shared.suspects.lock().expect("suspects lock"));
    // A sampled key can be found twice (its expiry by the merge, its value by the sample),
    // and a resumed group finds again what it found past its last saved key.
    suspects.sort_by(|a, b| a.key.cmp(&b.key));
    suspects.dedup_by(|a, b| a.key == b.key);
    let settled = recheck::settle(&sides, suspects, opts.settle).await?;
    let after = [
        Layout::read(src).await.map_err(Error::Source)?,
        Layout::read(dst).await.map_err(Error::Target)?,
    ];
    if let Some(moved) = layout::moved([s, t], after) {
        return Err(Error::LayoutChanged(moved));
    }
    if let Some(c) = checkpointing {
        c.store.remove();
    }
    let classes = shared.classes.lock().expect("classes lock").clone();
    let mut scanned = Counts::default();
    for c in &classes {
        scanned.add(&c.counts);
    }
    let not_rechecked = shared.not_rechecked.load(Ordering::Relaxed);
    let not_compared = settled.changing.len() as u64 + not_rechecked;
    Ok(Outcome {
        verdict: Verdict::of(settled.differing.len() as u64, not_compared),
        mode: opts.mode,
        expiry_compared: opts.compare_expiry,
        scanned,
        after_settling: Totals::of(&settled, not_rechecked),
        differing: settled.differing,
        changing: settled.changing,
        rounds: settled.rounds,
        not_rechecked,
        values_compared: classes.iter().map(|c| c.values_compared).sum(),
        sample: (opts.mode == Mode::Sample).then(|| opts.sample().report()),
        partitions: Some([s.partitions, t.partitions]),
        shard: Some(ShardReport {
            index: opts.shard.index,
            count: opts.shard.count,
            groups: u32::try_from((0..g).filter(|c| opts.shard.takes(*c)).count()).unwrap_or(0),
            groups_total: u32::try_from(g).unwrap_or(0),
        }),
        keys_given: None,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        max_in_hand,
    })
}

/// What a run starts from: nothing, or a checkpoint.
struct Start {
    settings: Settings,
    classes: Vec<ClassState>,
    suspects: Vec<Diff>,
    not_rechecked: u64,
}

/// A fresh start with `now`'s settings, or, when resuming, the saved run (its sample too).
fn start_from(checkpointing: Option<&Checkpointing>, now: Settings, g: i32) -> Result<Start> {
    let fresh = Start {
        settings: now,
        classes: vec![ClassState::default(); usize::try_from(g).unwrap_or(0)],
        suspects: Vec::new(),
        not_rechecked: 0,
    };
    let Some(c) = checkpointing.filter(|c| c.resume) else {
        return Ok(fresh);
    };
    let store = &c.store;
    let saved = store.load()?.ok_or_else(|| store.missing())?;
    if let Some(why) = saved.settings().unfit_for(&now) {
        return Err(store.mismatch(why).into());
    }
    let classes = saved
        .classes()
        .ok_or_else(|| store.corrupt("a key is not hex".into()))?;
    if classes.len() != fresh.classes.len() {
        return Err(store
            .corrupt(format!("{} groups saved for {g}", classes.len()))
            .into());
    }
    let suspects = saved
        .suspects()
        .ok_or_else(|| store.corrupt("a key is not hex".into()))?;
    Ok(Start {
        settings: saved.settings(),
        classes,
        suspects,
        not_rechecked: saved.not_rechecked,
    })
}

/// Runs every group not done yet, `opts.parallelism` at once; the most records one held.
/// After a failure the others stop at their next batch and release their scanners; the first
/// failure is the run's.
async fn compare_groups(
    sides: &Sides,
    shared: &Arc<Shared>,
    opts: Options,
    (s, t): (i32, i32),
) -> Result<usize> {
    let g = classes(s, t);
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.parallelism.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for class in (0..g).filter(|c| opts.shard.takes(*c)) {
        let job = ClassJob {
            class: usize::try_from(class).unwrap_or(0),
            sides: sides.clone(),
            src_parts: class_partitions(s, g, class),
            dst_parts: class_partitions(t, g, class),
            counts: (s, t),
            opts,
            shared: shared.clone(),
        };
        let limit = limit.clone();
        tasks.spawn(async move {
            let _slot = limit.acquire_owned().await;
            job.run().await
        });
    }
    let mut max_in_hand = 0;
    let mut failed = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| Error::Task(e.to_string())) {
            Ok(Ok(held)) => max_in_hand = max_in_hand.max(held),
            Ok(Err(Error::Stopped)) => {}
            Ok(Err(e)) | Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                failed.get_or_insert(e);
            }
        }
    }
    failed.map_or(Ok(max_in_hand), Err)
}

/// Saves the run's state now; a failure is logged (the run goes on without it).
fn save(store: &Store, shared: &Shared, settings: Settings) {
    let classes = shared.classes.lock().expect("classes lock").clone();
    let suspects = shared.suspects.lock().expect("suspects lock").clone();
    let not_rechecked = shared.not_rechecked.load(Ordering::Relaxed);
    let saved = Saved::of(settings, &classes, &suspects, not_rechecked);
    if let Err(e) = store.save(&saved) {
        tracing::warn!("verify checkpoint not saved: {e}");
    }
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
