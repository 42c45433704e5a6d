//! Owns the block record: what anyone — this apply, a later one on another host, `status`,
//! `abort`, and the guardian that outlives them — needs to know about a write block, kept
//! where they can all read it: `<migrator_root>/blocks/<cluster>/<table>` in ZooKeeper, or
//! `.migrator/blocks/<cluster>.<table>.json` without meta-proxy.
//!
//! Every change is a compare-and-set on the record's version, so the two parties that may end
//! a block — apply sending the switch, the guardian lifting the block at the deadline — can
//! never both win: the first to move the record out of `Blocking` decides.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::routing::zk::{Zk, ZkError};

/// Where a block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockState {
    /// Writes are blocked (or about to be); the switch has not been sent.
    Blocking,
    /// The routing switch was sent: from here the block is never lifted automatically.
    SwitchSent,
    /// Routing names the target.
    Switched,
    /// `reconfig*all` set: the cut-over is complete.
    Done,
    /// Someone is lifting the block (the switch was never sent).
    Lifting,
    /// The deny env was deleted; writes are taken again once replicas sync.
    Lifted,
}

impl BlockState {
    /// Whether a switch may have happened (the block must stay).
    #[must_use]
    pub fn switch_may_have_happened(self) -> bool {
        matches!(self, Self::SwitchSent | Self::Switched | Self::Done)
    }
}

/// The routing node a block's switch moves, for the guardian's last check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRef {
    pub zookeeper: Vec<String>,
    pub path: String,
}

/// One write block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub source_cluster: String,
    pub source_metas: Vec<String>,
    pub target_cluster: String,
    pub table: String,
    pub app_id: i32,
    /// The `replica.deny_client_request` value this block set.
    pub deny_value: String,
    pub started_ms: u64,
    /// Writes must be taken again by then (`started_ms + max_write_block`).
    pub deadline_ms: u64,
    /// From then on the block is lifted if the switch was not sent (deadline − restore).
    pub give_up_ms: u64,
    pub state: BlockState,
    /// Who set it: `user@host pid N`.
    pub owner: String,
    /// Who changed the state last, and why.
    #[serde(default)]
    pub note: String,
    pub routing: Option<RoutingRef>,
    /// The lock node the switch was fenced on (set with `SwitchSent`): once it is gone, that
    /// switch can never commit.
    #[serde(default)]
    pub fence: Option<String>,
    /// The lock epoch node and its version when that run took the lock: once it moved,
    /// another run took the lock, and that switch can never commit either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_epoch: Option<(String, i32)>,
    /// Keys the verify gate could not compare, left to compare inside this block before the
    /// switch (their list is a file on the host of the run that opened the block).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exact_keys: u64,
    /// A later run is about to replace this ended block: its guardian must stop now (its
    /// aftercare deletes a deny env equal to this block's, which the new block sets too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

/// Why the record store failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("block record {path}: {source}")]
    Zk { path: String, source: ZkError },
    #[error("block record {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("block record {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
}

/// Where one table's record lives.
#[derive(Debug, Clone)]
pub enum RecordStore {
    Zk { zk: Zk, path: String },
    File { path: PathBuf },
}

/// The node the switch's transaction creates beside a ZooKeeper record of the block that
/// started at `started_ms`: it exists exactly when that switch committed, whatever routing
/// says later (someone may move it back by hand).
#[must_use]
pub fn switch_marker(record_path: &str, started_ms: u64) -> String {
    format!("{record_path}.switched.{started_ms}")
}

/// The record path of `table` of `cluster` under `migrator_root`.
#[must_use]
pub fn zk_path(migrator_root: &str, cluster: &str, table: &str) -> String {
    format!(
        "{}/blocks/{cluster}/{table}",
        migrator_root.trim_end_matches('/')
    )
}

/// The node written to read ZooKeeper's clock: `<migrator_root>/clock`, beside `blocks`.
fn clock_path(record_path: &str) -> String {
    match record_path.rfind("/blocks/") {
        Some(i) => format!("{}/clock", &record_path[..i]),
        None => format!("{record_path}.clock"),
    }
}

/// The record file of `table` of `cluster` under `dir` (`.migrator`).
#[must_use]
pub fn file_path(dir: &Path, cluster: &str, table: &str) -> PathBuf {
    dir.join("blocks").join(format!("{cluster}.{table}.json"))
}

impl RecordStore {
    /// Where the block record of `m` lives: migrator's ZooKeeper root with meta-proxy, the
    /// state dir (`.migrator`) without.
    #[must_use]
    pub fn of(
        spec: &crate::spec::Spec,
        zk: Option<&Zk>,
        state_dir: &Path,
        m: &crate::spec::Migration,
    ) -> Self {
        match (zk, &spec.metaproxy) {
            (Some(zk), Some(mp)) => Self::Zk {
                zk: zk.clone(),
                path: zk_path(&mp.migrator_root, &m.from, &m.table),
            },
            _ => Self::File {
                path: file_path(state_dir, &m.from, &m.table),
            },
        }
    }

    /// The clock the record's times are kept in: ZooKeeper's for a ZooKeeper record (read
    /// by writing `<migrator_root>/clock`), so any host that resumes the block or guards it
    /// reads its deadlines alike; this host's for a file.
    ///
    /// # Errors
    /// ZooKeeper could not be written.
    pub async fn clock(&self) -> Result<crate::clock::Shared, RecordError> {
        match self {
            Self::Zk { zk, path } => {
                let node = clock_path(path);
                zk.shared_clock(&node)
                    .await
                    .map_err(|source| RecordError::Zk { path: node, source })
            }
            Self::File { .. } => Ok(crate::clock::Shared::LOCAL),
        }
    }

    /// Where the record is, for messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Zk { path, .. } => format!("ZooKeeper {path}"),
            Self::File { path } => path.display().to_string(),
        }
    }

    /// The record and its version; `None` when there is none.
    ///
    /// # Errors
    /// The store cannot be read, or holds something that is not a record.
    pub async fn read(&self) -> Result<Option<(BlockRecord, i32)>, RecordError> {
        let (bytes, version) = match self {
            Self::Zk { zk, path } => match zk.read(path).await {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(None),
                Err(source) => return Err(self.zk_err(source)),
            },
            Self::File { path } => match read_file(path) {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(None),
                Err(source) => return Err(self.file_err(source)),
            },
        };
        serde_json::from_slice(&bytes)
            .map(|r| Some((r, version)))
            .map_err(|e| RecordError::Corrupt {
                path: self.describe(),
                reason: e.to_string(),
            })
    }

    /// The record and when it was last written, by ZooKeeper's clock (the shared one); `None`
    /// for a file, or when it cannot be read.
    pub async fn last_written(&self) -> Option<(BlockRecord, u64)> {
        let Self::Zk { zk, path } = self else {
            return None;
        };
        let (bytes, _, mtime) = zk.read_stamped(path).await.ok()??;
        let record = serde_json::from_slice(&bytes).ok()?;
        Some((record, u64::try_from(mtime).ok()?))
    }

    /// Writes `record` if the stored one is still at `version` (`None`: only if there is
    /// none). Returns the new version, or `None` when someone else changed it first.
    ///
    /// # Errors
    /// The store cannot be written (for ZooKeeper, possibly with an unknown outcome: re-read).
    pub async fn put(
        &self,
        record: &BlockRecord,
        version: Option<i32>,
    ) -> Result<Option<i32>, RecordError> {
        let bytes = serde_json::to_vec(record).expect("records serialize");
        match self {
            Self::Zk { zk, path } => {
                let result = match version {
                    None => zk.create_owned(path, &bytes).await.map(|()| 0),
                    Some(v) => zk.set(path, &bytes, Some(v)).await,
                };
                match result {
                    Ok(v) => Ok(Some(v)),
                    Err(ZkError::NodeExists { .. } | ZkError::BadVersion { .. }) => Ok(None),
                    Err(ZkError::NoNode { .. }) if version.is_some() => Ok(None),
                    Err(source) => Err(self.zk_err(source)),
                }
            }
            Self::File { path } => put_file(path, &bytes, version).map_err(|e| self.file_err(e)),
        }
    }

    /// Moves the record from `from` to `to` with `note`, if it is still at `version` in state
    /// `from`. Returns the new record and version, or the record as it now stands.
    ///
    /// # Errors
    /// As [`RecordStore::read`] and [`RecordStore::put`].
    pub async fn transition(
        &self,
        from: BlockState,
        to: BlockState,
        note: &str,
    ) -> Result<Transition, RecordError> {
        self.modify(from, None, |r| {
            r.state = to;
            r.note = note.to_string();
        })
        .await
    }

    /// Changes the record with `change` if it is in state `from`, as one compare-and-set; with
    /// `guard` (ZooKeeper only), only if that node is still at that version too.
    ///
    /// # Errors
    /// As [`RecordStore::read`] and [`RecordStore::put`].
    pub async fn modify(
        &self,
        from: BlockState,
        guard: Option<(&str, i32)>,
        change: impl FnOnce(&mut BlockRecord),
    ) -> Result<Transition, RecordError> {
        let Some((mut record, version)) = self.read().await? else {
            return Ok(Transition::Missing);
        };
        if record.state != from {
            return Ok(Transition::Lost(record));
        }
        change(&mut record);
        let written = match (self, guard) {
            (Self::Zk { zk, path }, Some(guard)) => {
                let bytes = serde_json::to_vec(&record).expect("records serialize");
                match zk
                    .compare_and_set_guarded(path, version, &bytes, &[guard], None)
                    .await
                {
                    Ok(Ok(v)) => Some(v),
                    Ok(Err(_)) => None,
                    Err(source) => return Err(self.zk_err(source)),
                }
            }
            _ => self.put(&record, Some(version)).await?,
        };
        match written {
            Some(v) => Ok(Transition::Done(record, v)),
            None => Ok(match self.read().await? {
                Some((now, _)) => Transition::Lost(now),
                None => Transition::Missing,
            }),
        }
    }

    /// Moves a `Blocking` record to `Lifting` with `note` — only while the routing node at
    /// `routing` (in this store's ZooKeeper) names `source`, checked in the same transaction,
    /// so a switch by anyone that lands first stops the lift. File stores have no routing.
    ///
    /// # Errors
    /// As [`RecordStore::modify`], and the routing node cannot be read.
    pub async fn begin_lift(
        &self,
        routing: Option<&str>,
        source: &str,
        note: &str,
    ) -> Result<Lift, RecordError> {
        let guard = match (self, routing) {
            (Self::Zk { zk, .. }, Some(path)) => {
                let node = zk.read(path).await.map_err(|e| self.zk_err(e))?;
                let names = node
                    .as_ref()
                    .and_then(|(d, _)| crate::routing::Route::parse(d).ok())
                    .map(|r| r.cluster_name);
                let names_source = names.as_deref() == Some(source);
                if !super::protocol::may_lift(Some(names_source)) {
                    return Ok(Lift::RoutingElsewhere(names));
                }
                node.map(|(_, v)| (path, v))
            }
            _ => None,
        };
        let t = self
            .modify(BlockState::Blocking, guard, |r| {
                r.state = BlockState::Lifting;
                r.note = note.to_string();
            })
            .await?;
        Ok(Lift::Began(Box::new(t)))
    }

    fn zk_err(&self, source: ZkError) -> RecordError {
        RecordError::Zk {
            path: self.describe(),
            source,
        }
    }

    fn file_err(&self, source: std::io::Error) -> RecordError {
        RecordError::File {
            path: PathBuf::from(self.describe()),
            source,
        }
    }
}

/// A table the plan finds done whose run died between the switch and recording it: its
/// record still says the switch is under way; it is over.
pub async fn close_finished(store: &RecordStore) {
    let note = "apply: the cut-over had completed";
    for from in [BlockState::SwitchSent, BlockState::Switched] {
        let _ = store.transition(from, BlockState::Done, note).await;
    }
}

/// What `begin_lift` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lift {
    /// The record's transition (to `Lifting` when `Done`).
    Began(Box<Transition>),
    /// Routing names another cluster (or nothing): the block must stay.
    RoutingElsewhere(Option<String>),
}

/// What a transition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// It happened: the record as written and its version.
    Done(BlockRecord, i32),
    /// Someone else moved the record first: here is what it says now.
    Lost(BlockRecord),
    /// There is no record.
    Missing,
}

/// File records carry their version next to the record, as `{"version":N,"record":{...}}`.
#[derive(Serialize, Deserialize)]
struct Versioned {
    version: i32,
    record: serde_json::Value,
}

fn read_file(path: &Path) -> std::io::Result<Option<(Vec<u8>, i32)>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let v: Versioned = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(Some((serde_json::to_vec(&v.record)?, v.version)))
}

/// A compare-and-set on a file: under an exclusive `flock` on a lock file that is never
/// deleted (the kernel releases it if the holder dies), re-read the version, then replace the
/// file atomically (a temporary file of this process, fsync, rename).
fn put_file(path: &Path, bytes: &[u8], version: Option<i32>) -> std::io::Result<Option<i32>> {
    use std::os::fd::AsRawFd;
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::files::private_dir(dir)?;
    let lock = crate::files::open_private(&path.with_extension("lock"))?;
    // SAFETY: flock on a descriptor this function owns; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let current = read_file(path)?.map(|(_, v)| v);
    if current != version {
        return Ok(None);
    }
    let next = version.map_or(0, |v| v + 1);
    let record: serde_json::Value = serde_json::from_slice(bytes)?;
    let tmp = path.with_extension(format!("tmp.{}", crate::clock::pid()));
    let mut f = crate::files::create_private(&tmp)?;
    f.write_all(&serde_json::to_vec(&Versioned {
        version: next,
        record,
    })?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    drop(lock);
    Ok(Some(next))
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_node_sits_beside_the_blocks() {
        assert_eq!(
            clock_path(&zk_path("/migrator", "src", "t0")),
            "/migrator/clock"
        );
        assert_eq!(clock_path(&zk_path("/a/b/", "c", "d")), "/a/b/clock");
        assert_eq!(clock_path("/odd"), "/odd.clock");
    }

    pub(crate) fn sample() -> BlockRecord {
        BlockRecord {
            source_cluster: "a".into(),
            source_metas: vec!["127.0.0.1:1".into()],
            target_cluster: "b".into(),
            table: "t".into(),
            app_id: 3,
            deny_value: "timeout*write".into(),
            started_ms: 1,
            deadline_ms: 2,
            give_up_ms: 2,
            state: BlockState::Blocking,
            owner: "me".into(),
            note: String::new(),
            routing: None,
            fence: None,
            fence_epoch: None,
            exact_keys: 0,
            superseded: false,
        }
    }

    #[tokio::test]
    async fn only_one_party_moves_a_file_record_out_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::File {
            path: file_path(dir.path(), "a", "t"),
        };
        assert_eq!(store.read().await.unwrap(), None);
        assert_eq!(store.put(&sample(), None).await.unwrap(), Some(0));
        assert_eq!(store.put(&sample(), None).await.unwrap(), None, "exists");
        let first = store
            .transition(BlockState::Blocking, BlockState::SwitchSent, "apply")
            .await
            .unwrap();
        assert!(matches!(first, Transition::Done(_, 1)));
        let second = store
            .transition(BlockState::Blocking, BlockState::Lifting, "guardian")
            .await
            .unwrap();
        match second {
            Transition::Lost(r) => assert_eq!(r.state, BlockState::SwitchSent),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.put(&sample(), Some(0)).await.unwrap(),
            None,
            "stale version"
        );
    }
}
