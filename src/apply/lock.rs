//! Owns the apply lock: one ephemeral ZooKeeper node per table under the meta-proxy root
//! (`<root>/__migrator_locks__/<table>`, holding who, where, when and which plan), or, without
//! meta-proxy, a local lock file. A crashed holder's ZooKeeper lock goes with its session.

use std::path::{Path, PathBuf};
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

/// Held locks; released on drop (ZooKeeper nodes also vanish with the session).
#[derive(Debug)]
pub struct Locks {
    zk: Option<Zk>,
    paths: Vec<String>,
    file: Option<PathBuf>,
}

/// The lock node of `table`.
#[must_use]
pub fn lock_path(root: &str, table: &str) -> String {
    format!("{}/__migrator_locks__/{table}", root.trim_end_matches('/'))
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
///
/// # Errors
/// [`LockError::Held`] if a live process holds it past `timeout`.
pub async fn take_file(path: &Path, holder: &str, timeout: Duration) -> Result<Locks, LockError> {
    let deadline = Instant::now() + timeout;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| LockError::Io(e.to_string()))?;
    }
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                use std::io::Write;
                let _ = writeln!(f, "{holder}");
                return Ok(Locks {
                    zk: None,
                    paths: vec![],
                    file: Some(path.to_path_buf()),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let held = std::fs::read_to_string(path).unwrap_or_default();
                if !holder_alive(&held) {
                    // The holder crashed: its lock protects nothing any more.
                    let _ = std::fs::remove_file(path);
                    continue;
                }
                if Instant::now() >= deadline {
                    return Err(LockError::Held {
                        table: "(all)".into(),
                        holder: held.trim().into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(LockError::Io(e.to_string())),
        }
    }
}

/// Whether the process named in a holder record (`"pid": N`) still runs.
fn holder_alive(record: &str) -> bool {
    let pid = serde_json::from_str::<serde_json::Value>(record.trim())
        .ok()
        .and_then(|v| v["pid"].as_u64());
    pid.is_none_or(|p| Path::new(&format!("/proc/{p}")).exists())
}

impl Locks {
    /// Releases every lock now.
    pub async fn release(mut self) {
        if let Some(zk) = self.zk.take() {
            for p in std::mem::take(&mut self.paths) {
                let _ = zk.delete(&p, None).await;
            }
        }
        if let Some(f) = self.file.take() {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl Drop for Locks {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = std::fs::remove_file(f);
        }
    }
}
