//! Owns the guardian: a process apply starts for each write block, detached from the terminal
//! and from apply itself (its own process group, no terminal I/O, SIGHUP and SIGINT ignored),
//! so the block ends at its deadline even when apply is killed, loses its host's terminal, or
//! hangs. It announces itself (an ephemeral node, or a file, next to the record) once it has
//! read the record; apply blocks nothing before that.
//!
//! At `give_up_ms` (by ZooKeeper's clock, measured against its own when it first read the
//! record, or the monotonic one it started with, whichever comes first) it lifts the deny env — only if the block record still says `Blocking` (its
//! compare-and-set to `Lifting` loses to apply's `SwitchSent`) and routing still names the
//! source — and records that. It keeps trying while the block is due and open, watches a
//! `SwitchSent` record (apply may take it back to `Blocking`), and after a lift deletes the
//! deny env again if a late write of it lands. A ZooKeeper session that expires is replaced.
//!
//! `give_up_ms` is the deadline less the restore reserve, which counts the servers' next
//! config sync after the lift as on time (`plan::budget`): a server whose sync fails, or that
//! is cut off from the meta, takes writes again that much past the deadline.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::journal::now_ms;
use crate::cutover::protocol::{dead_switch_liftable, guardian_round, GuardianRound};
use crate::cutover::record::{BlockRecord, BlockState, Lift, RecordStore, Transition};
use crate::pegasus::envs::DENY_ENV;
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::plan::budget::ms;
use crate::routing::zk::{Zk, ZkError};
use crate::routing::Route;

/// How long past the deadline a guardian keeps watching a record it may not act on.
const LINGER: Duration = Duration::from_secs(600);
/// How long a guardian that never read its record waits for it (apply waits less for the
/// announcement, so it blocked nothing).
const NEVER_READ: Duration = Duration::from_secs(60);
/// How long after a lift it keeps watching for a deny env that lands late.
const AFTERCARE: Duration = Duration::from_secs(120);
/// How long after the lift was recorded a set of the deny env sent before it may still land
/// (delayed in the network): only that long is an env of the block's value taken for a late
/// landing and deleted; later it is someone else's, set by hand, and left alone.
pub const LATE_SET: Duration = Duration::from_secs(30);
/// Shortens [`LINGER`] (milliseconds): a test knob, so tests can require every guardian they
/// start to exit; production never sets it.
pub const LINGER_ENV: &str = "MIGRATOR_GUARDIAN_LINGER_MS";
/// Shortens [`AFTERCARE`] (milliseconds), likewise.
pub const AFTERCARE_ENV: &str = "MIGRATOR_GUARDIAN_AFTERCARE_MS";

fn knob(env: &str, default: Duration) -> Duration {
    std::env::var(env)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(default, Duration::from_millis)
        .min(default)
}

fn linger() -> Duration {
    knob(LINGER_ENV, LINGER)
}

fn aftercare() -> Duration {
    knob(AFTERCARE_ENV, AFTERCARE)
}

/// Pause between two reads of the record.
const POLL: Duration = Duration::from_millis(100);
/// Consecutive failed reads before the ZooKeeper session is replaced.
const RECONNECT_AFTER: u32 = 20;
use crate::plan::budget::LIFT_CALL;

/// What the guardian did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Someone else resolved the block (`Done`, `Lifted`, a switch, or no record).
    Resolved(String),
    /// The guardian lifted it at the deadline.
    Lifted,
    /// Routing no longer names the source: the block stays, an operator must look.
    LeftForOperator(String),
}

/// Where a guardian finds its record: the arguments of `migrator guardian`.
#[must_use]
pub fn args(store: &RecordStore) -> Vec<String> {
    match store {
        RecordStore::Zk { zk, path } => vec![
            "--zookeeper".into(),
            zk.servers().join(","),
            "--record".into(),
            path.clone(),
        ],
        RecordStore::File { path } => vec!["--record-file".into(), path.display().to_string()],
    }
}

/// Starts a guardian from its arguments instead of a process (a simulation's hosts); returns
/// its pid.
pub type Launcher = std::rc::Rc<dyn Fn(Vec<String>) -> u32>;

thread_local! {
    static LAUNCHER: std::cell::RefCell<Option<Launcher>> = const { std::cell::RefCell::new(None) };
}

/// Guardians started on this thread go to `launcher` until the guard is dropped.
#[must_use]
pub fn install_launcher(launcher: Launcher) -> LauncherGuard {
    LAUNCHER.with(|l| *l.borrow_mut() = Some(launcher));
    LauncherGuard(())
}

/// Ends an installed launcher when dropped.
pub struct LauncherGuard(());

impl Drop for LauncherGuard {
    fn drop(&mut self) {
        LAUNCHER.with(|l| l.borrow_mut().take());
    }
}

/// Starts a detached guardian for the record in `store`, logging to `log`; returns its pid.
///
/// # Errors
/// The binary could not be started.
pub fn spawn(store: &RecordStore, log: &Path) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    if let Some(launch) = LAUNCHER.with(|l| l.borrow().clone()) {
        return Ok(launch(args(store)));
    }
    let exe = std::env::current_exe()?;
    if let Some(dir) = log.parent() {
        crate::files::private_dir(dir)?;
    }
    let out = crate::files::append_private(log)?;
    let mut command = Command::new(exe);
    // Credentials travel in the environment, never on a command line others can read.
    if let Some(auth) = crate::routing::zk::ZkAuth::installed() {
        command.env(crate::routing::zk::AUTH_ENV, auth.as_env());
    }
    let child = command
        .arg("guardian")
        .args(args(store))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

/// Announcement slots per block: each guardian of a block (one per run that resumed it)
/// takes its own, so each withdraws only its own and a waiting run sees every one.
const SLOTS: usize = 8;

/// Where a guardian of the block that started at `started_ms` announces itself in `slot`: an
/// ephemeral node (it vanishes with the guardian's session) or a file next to the record.
#[must_use]
pub fn marker(store: &RecordStore, started_ms: u64, slot: usize) -> String {
    match store {
        RecordStore::Zk { path, .. } => format!("{path}.guardian.{started_ms}.{slot}"),
        RecordStore::File { path } => format!("{}.guardian.{started_ms}.{slot}", path.display()),
    }
}

/// Whether some guardian of the block that started at `started_ms` is announced; `None`: not
/// known (ZooKeeper did not answer), which a caller waiting for guardians to stop must take
/// as still announced.
pub async fn any_announced(store: &RecordStore, started_ms: u64) -> Option<bool> {
    for slot in 0..SLOTS {
        let marker = marker(store, started_ms, slot);
        let here = match store {
            RecordStore::Zk { zk, .. } => zk.read(&marker).await.ok()?.is_some(),
            RecordStore::File { .. } => file_guardian_alive(Path::new(&marker)),
        };
        if here {
            return Some(true);
        }
    }
    Some(false)
}

/// Whether a file announcement names a live process (a killed guardian leaves its file).
fn file_guardian_alive(marker: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(marker) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Clears file announcements left by earlier guardians of the same block (a file outlives its
/// guardian; a ZooKeeper marker is ephemeral), so only a live guardian's counts.
pub fn forget_announcement(store: &RecordStore, started_ms: u64) {
    if let RecordStore::File { .. } = store {
        for slot in 0..SLOTS {
            let _ = std::fs::remove_file(marker(store, started_ms, slot));
        }
    }
}

/// Announces this guardian in the first free slot; returns it.
async fn announce(store: &RecordStore, started_ms: u64) -> Result<usize, String> {
    let pid = crate::clock::pid().to_string();
    for slot in 0..SLOTS {
        let marker = marker(store, started_ms, slot);
        let made = match store {
            RecordStore::Zk { zk, .. } => {
                match zk.create_ephemeral(&marker, pid.as_bytes()).await {
                    Ok(()) => true,
                    Err(ZkError::NodeExists { .. }) => false,
                    Err(e) => return Err(e.to_string()),
                }
            }
            RecordStore::File { .. } => {
                match crate::files::create_private(Path::new(&marker))
                    .and_then(|mut f| std::io::Write::write_all(&mut f, pid.as_bytes()))
                {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        if made {
            return Ok(slot);
        }
    }
    Err(format!(
        "every one of the {SLOTS} announcement slots is taken"
    ))
}

/// Removes this guardian's announcement, so a run waiting for it to stop need not wait for
/// its session to expire.
async fn withdraw(store: &RecordStore, started_ms: u64, slot: usize) {
    let marker = marker(store, started_ms, slot);
    match store {
        RecordStore::Zk { zk, .. } => {
            let _ = zk.delete(&marker, None).await;
        }
        RecordStore::File { .. } => {
            let _ = std::fs::remove_file(&marker);
        }
    }
}

/// A guardian's view of its record, able to reopen its ZooKeeper session.
pub struct Watch {
    pub store: RecordStore,
    pub routing_zk: Option<Zk>,
    /// The servers to reconnect to (ZooKeeper stores).
    pub servers: Vec<String>,
}

impl Watch {
    async fn reconnect(&mut self) {
        let RecordStore::Zk { path, .. } = &self.store else {
            return;
        };
        if let Ok(zk) = Zk::connect(&self.servers, Duration::from_secs(5)).await {
            self.store = RecordStore::Zk {
                zk: zk.clone(),
                path: path.clone(),
            };
            self.routing_zk = Some(zk);
        }
    }
}

/// Rounds in a row a guardian tries to read ZooKeeper's clock before it falls back to its
/// host's.
const CLOCK_TRIES: u32 = 10;

/// Guards the block until it is resolved, then withdraws its announcement.
pub async fn run(mut watch: Watch) -> Ended {
    let mut guarded = None;
    let mut slot = None;
    let ended = rounds(&mut watch, &mut guarded, &mut slot).await;
    if let (Some(started_ms), Some(slot)) = (guarded, slot) {
        withdraw(&watch.store, started_ms, slot).await;
    }
    ended
}

async fn rounds(
    watch: &mut Watch,
    guarded: &mut Option<u64>,
    announced: &mut Option<usize>,
) -> Ended {
    let mut failures = 0u32;
    // The last deadline read: a record that cannot be read long past it is given up on.
    let mut last_deadline: Option<u64> = None;
    let mut mono_give_up: Option<Instant> = None;
    let mut lifted_at: Option<u64> = None;
    // The record's times are ZooKeeper's (`RecordStore::clock`), measured once it answered.
    let mut clock: Option<crate::clock::Shared> = None;
    let mut round = 0u64;
    let started = Instant::now();
    loop {
        round += 1;
        let record = match watch.store.read().await {
            Ok(Some((r, _))) => r,
            Ok(None) => return Ended::Resolved("no block record".into()),
            Err(e) => {
                failures += 1;
                crate::tell!("guardian: {e}");
                let now = clock.map_or_else(now_ms, |c| c.now_ms());
                if last_deadline.is_some_and(|d| now > d + ms(linger())) {
                    return Ended::LeftForOperator(format!(
                        "the block record cannot be read long past its deadline: {e}"
                    ));
                }
                if last_deadline.is_none() && started.elapsed() > NEVER_READ {
                    // Never announced, so apply blocked nothing under this guardian.
                    return Ended::LeftForOperator(format!(
                        "the block record could not be read in {NEVER_READ:?}: {e}"
                    ));
                }
                if failures % RECONNECT_AFTER == 0 {
                    watch.reconnect().await;
                    // The old session's marker went with it.
                    *announced = None;
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let shared = match clock {
            Some(c) => c,
            None => match watch.store.clock().await {
                Ok(c) => *clock.insert(c),
                Err(e) if failures < CLOCK_TRIES => {
                    failures += 1;
                    crate::tell!("guardian: reading ZooKeeper's clock: {e}");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                Err(e) => {
                    // The record reads but its clock cannot be written: this host's clock it is.
                    crate::tell!("guardian: reading ZooKeeper's clock: {e}; using this host's");
                    *clock.insert(crate::clock::Shared::LOCAL)
                }
            },
        };
        failures = 0;
        last_deadline = Some(record.deadline_ms);
        // A later run replaced the record with a block of its own, and its own guardian.
        if *guarded.get_or_insert(record.started_ms) != record.started_ms {
            return Ended::Resolved("a newer block replaced this one".into());
        }
        if record.superseded {
            return Ended::Resolved("a newer block supersedes this one".into());
        }
        if announced.is_none() {
            *announced = announce(&watch.store, record.started_ms).await.ok();
            if announced.is_some() {
                // Act only on a record read after the announcement: a run replacing the block
                // waits for announced guardians alone, so one that lost its session (and its
                // slot) may hold a record another run has replaced since; its aftercare then
                // deleted the newer block's deny env of the same value (seed 9415, found on
                // a build with R7 undone).
                tokio::time::sleep(POLL).await;
                continue;
            }
        }
        let now = shared.now_ms();
        let give_up = *mono_give_up.get_or_insert_with(|| {
            Instant::now() + Duration::from_millis(record.give_up_ms.saturating_sub(now))
        });
        let due = now >= record.give_up_ms || Instant::now() >= give_up;
        let lingering = now <= record.deadline_ms + ms(linger());
        match guardian_round(record.state, due, lingering) {
            GuardianRound::LiftAtDeadline => {
                if let Some(ended) = lift_at_deadline(watch, &record, lingering).await {
                    if ended != Ended::Lifted {
                        return ended;
                    }
                    lifted_at.get_or_insert(now);
                }
            }
            GuardianRound::LiftDeadSwitch => {
                if let Some(ended) = lift_dead_switch(watch, &record).await {
                    if ended != Ended::Lifted {
                        return ended;
                    }
                    lifted_at.get_or_insert(now);
                }
            }
            GuardianRound::Watch => {}
            GuardianRound::End => {
                return Ended::Resolved(format!("the block is {:?}", record.state))
            }
            // A lift its owner did not finish (it died): the switch was never sent.
            GuardianRound::FinishLift => {
                if finish_lift(&watch.store, &record).await.is_ok() {
                    lifted_at.get_or_insert(now);
                }
            }
            GuardianRound::Aftercare => {
                let since = *lifted_at.get_or_insert(now);
                if now > since.max(record.deadline_ms) + ms(aftercare()) {
                    return Ended::Lifted;
                }
                // A set of the deny env that was in flight can land after the lift: once it
                // landed the meta shows it, so only then is it deleted, and only while it can
                // be that set.
                if round % 10 == 0 && late_set_may_land(&watch.store, shared, since).await {
                    let _ = lift_if_landed(&record).await;
                }
            }
        }
        if !lingering {
            // Long past the deadline nothing this guardian may still do will change.
            return if lifted_at.is_some() {
                Ended::Lifted
            } else {
                Ended::LeftForOperator(format!(
                    "the block is still {:?} {}s past its deadline",
                    record.state,
                    linger().as_secs()
                ))
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The deadline came with the record still `Blocking`: lift the block unless routing moved.
/// Routing that names another cluster may come back (someone undoing a mistake), so it is
/// watched until well past the deadline before being left to an operator. `None`: nothing
/// decided in this round (look again).
async fn lift_at_deadline(watch: &Watch, record: &BlockRecord, lingering: bool) -> Option<Ended> {
    let note = "guardian: the write-block deadline came before the switch";
    let routing = record.routing.as_ref().map(|r| r.path.as_str());
    match watch
        .store
        .begin_lift(routing, &record.source_cluster, note)
        .await
        .ok()?
    {
        Lift::RoutingElsewhere(_) if lingering => None,
        Lift::RoutingElsewhere(names) => Some(Ended::LeftForOperator(format!(
            "routing node {} names {} instead of {}: the block stays",
            routing.unwrap_or_default(),
            names.as_deref().unwrap_or("nothing"),
            record.source_cluster
        ))),
        Lift::Began(t) => match *t {
            Transition::Done(rec, _) => finish_lift(&watch.store, &rec)
                .await
                .ok()
                .map(|()| Ended::Lifted),
            Transition::Lost(_) => None,
            Transition::Missing => Some(Ended::Resolved("no block record".into())),
        },
    }
}

/// Whether a switch fenced on lock node `lock` (and the lock epoch at a version) can no longer
/// commit: the lock node is gone, or the epoch moved (another run took the lock since). An
/// unanswered read proves nothing.
async fn fence_broken(zk: &Zk, lock: &str, epoch: Option<&(String, i32)>) -> bool {
    if matches!(zk.read(lock).await, Ok(None)) {
        return true;
    }
    match epoch {
        Some((path, version)) => match zk.read(path).await {
            Ok(Some((_, now))) => now != *version,
            Ok(None) => true,
            Err(_) => false,
        },
        None => false,
    }
}

/// A `SwitchSent` record whose fence (the lock node of the run that sent the switch) is gone
/// with routing still naming the source: that switch was decided and did not happen (a
/// session's requests are processed in order, an expired session's are dropped, and the
/// multi checked the lock node). Lift it, the routing version guarding the record change.
async fn lift_dead_switch(watch: &Watch, record: &BlockRecord) -> Option<Ended> {
    let (Some(zk), Some(fence), Some(routing)) =
        (&watch.routing_zk, &record.fence, &record.routing)
    else {
        return None;
    };
    let fence_gone = fence_broken(zk, fence, record.fence_epoch.as_ref()).await;
    let committed = switch_committed(&watch.store, record).await?;
    let (data, version) = zk.read(&routing.path).await.ok()??;
    let names = Route::parse(&data).ok().map(|r| r.cluster_name);
    let names_source = names.as_deref() == Some(record.source_cluster.as_str());
    let names_target = names.as_deref() == Some(record.target_cluster.as_str());
    if fence_gone && (committed || names_target) {
        // The switch committed (whatever routing says now: someone may have moved it back,
        // and writes since then exist only on the target), or routing names the target: the
        // block stays for good.
        let note = "guardian: the switch committed, or routing names the target";
        let _ = watch
            .store
            .transition(BlockState::SwitchSent, BlockState::Switched, note)
            .await;
        return Some(Ended::Resolved("the switch committed".into()));
    }
    if committed || !dead_switch_liftable(fence_gone, names_source) {
        return None;
    }
    let note = "guardian: the switch's run is gone and routing still names the source";
    let moved = watch
        .store
        .modify(
            BlockState::SwitchSent,
            Some((&routing.path, version)),
            |r| {
                r.state = BlockState::Lifting;
                r.note = note.into();
            },
        )
        .await
        .ok()?;
    match moved {
        Transition::Done(rec, _) => finish_lift(&watch.store, &rec)
            .await
            .ok()
            .map(|()| Ended::Lifted),
        Transition::Lost(_) | Transition::Missing => None,
    }
}

/// Whether the switch of `record`'s block committed: its transaction's marker exists.
/// `None`: not known (the read failed, or the store has no ZooKeeper).
pub async fn switch_committed(store: &RecordStore, record: &BlockRecord) -> Option<bool> {
    let RecordStore::Zk { zk, path } = store else {
        return None;
    };
    let marker = crate::cutover::record::switch_marker(path, record.started_ms);
    zk.read(&marker).await.ok().map(|m| m.is_some())
}

/// Deletes the deny env (unless it is someone else's value), then records `Lifted`.
///
/// # Errors
/// The delete or the record write failed.
pub async fn finish_lift(store: &RecordStore, record: &BlockRecord) -> Result<(), String> {
    lift(record).await?;
    match store
        .transition(BlockState::Lifting, BlockState::Lifted, &record.note)
        .await
        .map_err(|e| e.to_string())?
    {
        Transition::Done(..) | Transition::Missing => Ok(()),
        Transition::Lost(r) if r.state == BlockState::Lifted => Ok(()),
        Transition::Lost(r) => Err(format!("the record became {:?} while lifting", r.state)),
    }
}

/// Whether a set of the deny env sent before the lift may still land: for [`LATE_SET`] after
/// the `Lifted` record was written (ZooKeeper's clock), or after this guardian saw the lift
/// (`lifted_ms`, by `clock`) when the record's write time cannot be read.
async fn late_set_may_land(
    store: &RecordStore,
    clock: crate::clock::Shared,
    lifted_ms: u64,
) -> bool {
    let recorded = match store.last_written().await {
        Some((r, written_ms)) if r.state == BlockState::Lifted => written_ms,
        Some(_) => return false,
        None => lifted_ms,
    };
    clock.now_ms() < recorded + ms(LATE_SET)
}

/// Whether `store`'s record was written `Lifted` less than [`LATE_SET`] ago by ZooKeeper's
/// clock, so that an env of its value may still be its own set landing late (`abort` asks);
/// not when either cannot be read, or for a record kept in a file.
pub async fn lifted_moments_ago(store: &RecordStore) -> bool {
    let Some((r, written_ms)) = store.last_written().await else {
        return false;
    };
    let Ok(clock) = store.clock().await else {
        return false;
    };
    r.state == BlockState::Lifted && clock.now_ms() < written_ms + ms(LATE_SET)
}

/// Deletes `record`'s deny env if the source meta shows it (a set that landed after the lift).
async fn lift_if_landed(record: &BlockRecord) -> Result<(), String> {
    let meta = lift_client(record);
    if current_deny(&meta, record).await?.as_deref() != Some(&record.deny_value) {
        return Ok(());
    }
    meta.del_app_envs(&record.table, &[DENY_ENV])
        .await
        .map_err(|e| e.to_string())
}

/// The deny env the source meta holds for `record`'s table now.
async fn current_deny(meta: &MetaClient, record: &BlockRecord) -> Result<Option<String>, String> {
    let app = meta
        .available_app(&record.table)
        .await
        .map_err(|e| e.to_string())?;
    Ok(app.and_then(|a| a.envs.get(DENY_ENV).cloned()))
}

/// The source meta of `record`, with calls bounded as a lift's are.
fn lift_client(record: &BlockRecord) -> MetaClient {
    let metas = record
        .source_metas
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let opts = MetaOptions {
        call_timeout: LIFT_CALL,
        ..MetaOptions::default()
    };
    MetaClient::new(metas, opts)
}

/// Sends the delete of `record`'s deny env on its source — also when it looks absent, since a
/// set of it may still be in flight — unless someone set another value since.
///
/// # Errors
/// The source meta could not be asked or refused, or holds someone else's value.
pub async fn lift(record: &BlockRecord) -> Result<(), String> {
    let meta = lift_client(record);
    let current = current_deny(&meta, record).await?;
    if let Some(other) = current.filter(|v| *v != record.deny_value) {
        return Err(format!(
            "{DENY_ENV}={other} on {} is not this block's value; it is left alone",
            record.source_cluster
        ));
    }
    meta.del_app_envs(&record.table, &[DENY_ENV])
        .await
        .map_err(|e| e.to_string())
}
