//! Owns the append-only journal `.migrator/journal.jsonl`: one JSON line per step intent
//! (before a mutation) and outcome (after it), with the plan hash, the YAML's git commit, the
//! operator, and the values before/after. Each line is flushed and synced before the step acts.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// Facts shared by every record of one apply run.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub plan_hash: String,
    pub git_commit: Option<String>,
    pub operator: String,
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    run: RunInfo,
}

impl Journal {
    /// Opens (creating) the journal at `path` for appending.
    ///
    /// # Errors
    /// The file or its directory cannot be created.
    pub fn open(path: &Path, run: RunInfo) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            run,
        })
    }

    /// Appends one record; `event` is `intent`, `outcome`, `restored`, ...
    ///
    /// # Errors
    /// The write or sync failed (the caller must not act without its intent on disk).
    pub fn record(
        &self,
        table: &str,
        step: &str,
        event: &str,
        detail: Value,
    ) -> std::io::Result<()> {
        let line = serde_json::json!({
            "ts_ms": now_ms(),
            "plan_hash": self.run.plan_hash,
            "git_commit": self.run.git_commit,
            "operator": self.run.operator,
            "table": table,
            "step": step,
            "event": event,
            "detail": detail,
        });
        let mut f = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writeln!(f, "{line}")?;
        f.sync_data()
    }

    /// When the write block of `table` began, if the journal shows one still in force (a block
    /// intent with no later restore or switch): a resumed run keeps the original deadline.
    #[must_use]
    pub fn open_block_start_ms(&self, table: &str) -> Option<u64> {
        let file = File::open(&self.path).ok()?;
        let mut start = None;
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["table"] != table {
                continue;
            }
            let (step, event) = (
                v["step"].as_str().unwrap_or(""),
                v["event"].as_str().unwrap_or(""),
            );
            if step == "block_writes" && event == "intent" {
                start = start.or(v["ts_ms"].as_u64());
            } else if event == "restored" || (step == "switch" && event == "outcome") {
                start = None;
            }
        }
        start
    }
}

impl Journal {
    /// The values a speed-up of `cluster` replaced, if the journal shows it was lowered and
    /// never restored.
    #[must_use]
    pub fn unrestored_speed_up(
        &self,
        cluster: &str,
    ) -> Option<std::collections::BTreeMap<String, u64>> {
        let file = File::open(&self.path).ok()?;
        let mut open = None;
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["step"] != "speed_up" || v["detail"]["cluster"] != cluster {
                continue;
            }
            match v["event"].as_str() {
                Some("intent") => {
                    open = serde_json::from_value(v["detail"]["original"].clone()).ok();
                }
                Some("restored") => open = None,
                _ => {}
            }
        }
        open
    }
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `user@host` of whoever runs the tool.
#[must_use]
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// The git commit of the repository holding `file`, when there is one.
#[must_use]
pub fn git_commit(file: &Path) -> Option<String> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
