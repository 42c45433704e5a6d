//! Owns the apply lock: one ephemeral ZooKeeper node per table under migrator's own root
//! (`<migrator_root>/locks/<table>`, holding who, where, when and which plan), or, without
//! meta-proxy, an exclusive `flock` on `.migrator/lock`. A crashed holder's ZooKeeper lock goes
//! with its session; its file lock with its process.
//!
//! A ZooKeeper lock also fences the switch: the lock node at version 0 and the table's lock
//! epoch (`<migrator_root>/lock-epochs/<table>`) at the version it had when this run took the
//! lock. Whoever takes a free lock moves the epoch first, so a lock re-created by another run
//! after this run's session ended fails the fence, though it is again at version 0.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::routing::zk::{Zk, ZkError};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it.
    #[error("table {table} is locked by another apply: {holder}")]
    Held { table: String, holder: String },
    /// ZooKeeper or the file system failed.
    #[error("cannot take the apply lock: {0}")]
    Io(String),
}

/// Held locks; released on drop (ZooKeeper nodes also vanish with the session, a file lock
/// with the process).
#[derive(Debug)]
pub struct Locks {
    zk: Option<Zk>,
    paths: Vec<String>,
    fences: Vec<Fence>,
    file: Option<std::fs::File>,
}

/// What a switch checks in its transaction: this run still holds the lock it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lock node (ephemeral: gone with this run's session).
    pub lock: String,
    /// The table's lock epoch, and its version when this run took the lock.
    pub epoch: String,
    pub epoch_version: i32,
}

impl Fence {
    /// The (node, version) checks of the fence.
    #[must_use]
    pub fn guards(&self) -> [(&str, i32); 2] {
        [
            (self.lock.as_str(), 0),
            (self.epoch.as_str(), self.epoch_version),
        ]
    }
}

/// The lock epoch node of `table`: moved by every run that takes a free lock.
#[must_use]
pub fn epoch_path(migrator_root: &str, table: &str) -> String {
    format!(
        "{}/lock-epochs/{table}",
        migrator_root.trim_end_matches('/')
    )
}

/// The lock node of `table` under migrator's own root.
#[must_use]
pub fn lock_path(migrator_root: &str, table: &str) -> String {
    format!("{}/locks/{table}", migrator_root.trim_end_matches('/'))
}

/// Takes one ZooKeeper lock per table, waiting up to `timeout` for each.
///
/// # Errors
/// [`LockError::Held`] naming the holder once `timeout` passes.
pub async fn take_zk(
    zk: &Zk,
    root: &str,
    tables: &[String],
    holder: &str,
    timeout: Duration,
) -> Result<Locks, LockError> {
    let deadline = Instant::now() + timeout;
    let mut locks = Locks {
        zk: Some(zk.clone()),
        paths: vec![],
        fences: vec![],
        file: None,
    };
    let io = |e: ZkError| LockError::Io(e.to_string());
    for table in tables {
        let path = lock_path(root, table);
        let epoch = epoch_path(root, table);
        loop {
            // Only a run that may take the lock moves the epoch: one waiting for a held lock
            // must not break its holder's fence.
            if zk.read(&path).await.map_err(io)?.is_none() {
                bump(zk, &epoch).await.map_err(io)?;
            }
            match zk.create_ephemeral(&path, holder.as_bytes()).await {
                Ok(()) => {
                    let (_, epoch_version) =
                        zk.read(&epoch).await.map_err(io)?.ok_or_else(|| {
                            LockError::Io(format!("{epoch} vanished while taking the lock"))
                        })?;
                    locks.fences.push(Fence {
                        lock: path.clone(),
                        epoch,
                        epoch_version,
                    });
                    break;
                }
                Err(ZkError::NodeExists { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(ZkError::NodeExists { .. }) => {
                    // Gone since the create met it (its holder's session ended): the lock is
                    // free, take it; a holder can only be named, never guessed.
                    if let Some((data, _)) = zk.read(&path).await.map_err(io)? {
                        return Err(LockError::Held {
                            table: table.clone(),
                            holder: String::from_utf8_lossy(&data).into_owned(),
                        });
                    }
                }
                Err(e) => return Err(LockError::Io(e.to_string())),
            }
        }
        locks.paths.push(path);
    }
    Ok(locks)
}

/// Moves the epoch node at `path` to a new version (creating it the first time).
async fn bump(zk: &Zk, path: &str) -> Result<(), ZkError> {
    match zk.set(path, b"", None).await {
        Ok(_) => Ok(()),
        Err(ZkError::NoNode { .. }) => match zk.create_all(path, b"").await {
            Ok(()) | Err(ZkError::NodeExists { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Takes the local lock file `path` (no meta-proxy): one apply at a time from this directory.
/// An exclusive `flock` on the open file: the kernel releases it when the holder exits, however
/// it exits, so there is no stale lock to judge and no race to take one over.
///
/// # Errors
/// [`LockError::Held`] if another process holds it past `timeout`.
pub async fn take_file(path: &Path, holder: &str, timeout: Duration) -> Result<Locks, LockError> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + timeout;
    let io = |e: std::io::Error| LockError::Io(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        crate::files::private_dir(dir).map_err(io)?;
    }
    let mut file = crate::files::open_private(path).map_err(io)?;
    loop {
        // SAFETY: flock on a file descriptor this process owns; no memory is involved.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if taken {
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(format!("{holder}\n").as_bytes())
                .map_err(io)?;
            return Ok(Locks {
                zk: None,
                paths: vec![],
                fences: vec![],
                file: Some(file),
            });
        }
        if Instant::now() >= deadline {
            let mut held = String::new();
            let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut held));
            return Err(LockError::Held {
                table: "(all)".into(),
                holder: held.trim().into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Locks {
    /// Releases every lock now.
    pub async fn release(mut self) {
        if let Some(zk) = self.zk.take() {
            for p in std::mem::take(&mut self.paths) {
                let _ = zk.delete(&p, None).await;
            }
        }
        // Closing the file releases its flock.
        drop(self.file.take());
    }

    /// The fence of `table`'s ZooKeeper lock, if this run holds one.
    #[must_use]
    pub fn fence(&self, table: &str) -> Option<&Fence> {
        self.fences
            .iter()
            .find(|f| f.lock.rsplit('/').next() == Some(table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::test_zk::{unique, TestZk};
    use crate::routing::zk::CasConflict;
    use crate::sim::zk_model::{Ensemble, ZkFault};

    async fn connect(ensemble: &std::sync::Arc<Ensemble>) -> Zk {
        let _guard = crate::routing::session::install_simulated(ensemble.connector());
        Zk::connect(&["zk.sim:2181".into()], Duration::from_secs(5))
            .await
            .unwrap()
    }

    /// A waiting run's last create meets the holder's node, and the holder's session expires
    /// before the run reads who holds it: the lock is free, so the run takes it (it once
    /// reported the lock held by "unknown").
    #[tokio::test(start_paused = true)]
    async fn a_holder_gone_between_the_last_create_and_the_read_of_it_leaves_the_lock_free() {
        let ensemble = Ensemble::new(Duration::from_secs(10));
        let holder = connect(&ensemble).await;
        let waiter = connect(&ensemble).await;
        let (holder_id, waiter_id) = (1, 2);
        assert_eq!(ensemble.live_sessions(), [holder_id, waiter_id]);
        let held = take_zk(&holder, "/m", &["t".into()], "holder", Duration::ZERO)
            .await
            .unwrap();
        let held_epoch = held.fence("t").unwrap().epoch_version;
        // Each create of the waiter is applied at once and answered 3 s later; the holder's
        // session expires in between (at 2 s), past the waiter's 1 s deadline.
        ensemble.set_policy(Some(Box::new(move |session, op, _| ZkFault {
            reply_delay_ms: if session == waiter_id && op == "create" {
                3_000
            } else {
                0
            },
            ..ZkFault::default()
        })));
        let expire = {
            let ensemble = ensemble.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                ensemble.expire(holder_id);
            })
        };
        let taken = take_zk(
            &waiter,
            "/m",
            &["t".into()],
            "waiter",
            Duration::from_secs(1),
        )
        .await;
        expire.await.unwrap();
        let taken = taken.unwrap_or_else(|e| panic!("the lock was free: {e}"));
        let fence = taken.fence("t").unwrap();
        assert!(
            fence.epoch_version > held_epoch,
            "taking it moved the epoch"
        );
        assert_eq!(
            waiter.read(&fence.lock).await.unwrap().map(|(d, _)| d),
            Some(b"waiter".to_vec())
        );
    }

    /// Run A took the lock; its node vanished (as with an expired session) and run B took
    /// the lock again, at version 0 like A's: A's fence must fail, B's pass.
    #[tokio::test]
    async fn a_lock_taken_again_by_another_run_fails_the_first_runs_fence() {
        let server = TestZk::get();
        let (a, b) = (server.connect().await, server.connect().await);
        let root = unique("lock-fence");
        let routing = format!("{root}/routing/t");
        a.create_all(&routing, b"source").await.unwrap();
        let wait = Duration::from_millis(100);

        let a_locks = take_zk(&a, &root, &["t".into()], "a", wait).await.unwrap();
        let a_fence = a_locks.fence("t").unwrap().clone();
        let held = take_zk(&b, &root, &["t".into()], "b", wait).await;
        assert!(matches!(held, Err(LockError::Held { .. })), "{held:?}");
        assert_eq!(
            a.read(&a_fence.epoch).await.unwrap().unwrap().1,
            a_fence.epoch_version,
            "a run waiting for a held lock leaves its holder's fence alone"
        );

        a.delete(&a_fence.lock, None).await.unwrap();
        let b_locks = take_zk(&b, &root, &["t".into()], "b", wait).await.unwrap();
        let b_fence = b_locks.fence("t").unwrap().clone();
        assert_eq!(
            b_fence.lock, a_fence.lock,
            "the same lock node, again at version 0"
        );

        let switch = |zk: &Zk, fence: &Fence| {
            let (zk, fence, routing) = (zk.clone(), fence.clone(), routing.clone());
            async move {
                zk.compare_and_set_guarded(&routing, 0, b"target", &fence.guards(), None)
                    .await
                    .unwrap()
            }
        };
        assert!(
            matches!(switch(&a, &a_fence).await, Err(CasConflict::Guard { .. })),
            "the first run's fence fails"
        );
        assert_eq!(
            switch(&b, &b_fence).await,
            Ok(1),
            "the holder's fence passes"
        );
        b_locks.release().await;
    }
}
