//! Owns the apply lock: one ephemeral ZooKeeper node per table under migrator's own root
//! (`<migrator_root>/locks/<table>`, holding who, where, when and which plan), or, without
//! meta-proxy, an exclusive `flock` on `.migrator/lock`. A crashed holder's ZooKeeper lock goes
//! with its session; its file lock with its process.

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
    file: Option<std::fs::File>,
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
        file: None,
    };
    for table in tables {
        let path = lock_path(root, table);
        loop {
            match zk.create_ephemeral(&path, holder.as_bytes()).await {
                Ok(()) => break,
                Err(ZkError::NodeExists { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(ZkError::NodeExists { .. }) => {
                    let held_by = zk.read(&path).await.ok().flatten().map_or_else(
                        || "unknown".into(),
                        |(d, _)| String::from_utf8_lossy(&d).into_owned(),
                    );
                    return Err(LockError::Held {
                        table: table.clone(),
                        holder: held_by,
                    });
                }
                Err(e) => return Err(LockError::Io(e.to_string())),
            }
        }
        locks.paths.push(path);
    }
    Ok(locks)
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

    /// The ZooKeeper lock node of `table`, if this run holds one (a fence for the switch:
    /// it vanishes with the session that owns it).
    #[must_use]
    pub fn zk_node(&self, table: &str) -> Option<&str> {
        self.paths
            .iter()
            .find(|p| p.rsplit('/').next() == Some(table))
            .map(String::as_str)
    }
}
