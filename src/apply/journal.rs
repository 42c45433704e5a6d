//! Owns the append-only journal `.migrator/journal.jsonl`: one JSON line per step intent
//! (before a mutation) and outcome (after it), naming the source cluster, table and app id,
//! with the plan hash, the YAML's git commit, the operator, and the values before/after. Each
//! line is one write, synced before the step acts; the file is private (0600) and never
//! opened through a symbolic link.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::entry::{Entry, SpeedUp};

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
            crate::files::private_dir(dir)?;
        }
        let file = crate::files::append_private(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            run,
        })
    }

    /// Appends one record about `subject`.
    ///
    /// # Errors
    /// The write or sync failed (the caller must not act without its intent on disk).
    pub fn record(&self, subject: &Subject, entry: &Entry) -> std::io::Result<()> {
        let line = Line {
            ts_ms: now_ms(),
            run: &self.run,
            cluster: &subject.cluster,
            table: &subject.table,
            app_id: subject.app_id,
            entry,
        };
        if super::failpoint::journal_fails(&entry.point()) {
            return Err(std::io::Error::other("failpoint: journal write refused"));
        }
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let mut f = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One write per record: a reader never sees half a line from this process.
        f.write_all(&bytes)?;
        f.sync_data()
    }

    /// Every readable entry so far, oldest first (lines of other versions are skipped).
    fn entries(&self) -> Vec<Entry> {
        let Ok(file) = File::open(&self.path) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Recorded>(&l).ok())
            .map(|r| r.entry)
            .collect()
    }

    /// The values a speed-up of `cluster` replaced, if the journal shows it was lowered and
    /// never restored.
    #[must_use]
    pub fn unrestored_speed_up(&self, cluster: &str) -> Option<BTreeMap<String, u64>> {
        let mut open = None;
        for entry in self.entries() {
            match entry {
                Entry::SpeedUp(SpeedUp::Intent {
                    cluster: c,
                    original,
                    ..
                }) if c == cluster => open = Some(original),
                Entry::SpeedUp(SpeedUp::Restored { cluster: c, .. }) if c == cluster => {
                    open = None;
                }
                _ => {}
            }
        }
        open
    }
}

/// One line as written.
#[derive(Serialize)]
struct Line<'a> {
    ts_ms: u64,
    #[serde(flatten)]
    run: &'a RunInfo,
    cluster: &'a str,
    table: &'a str,
    app_id: Option<i32>,
    #[serde(flatten)]
    entry: &'a Entry,
}

/// One line as read back.
#[derive(Deserialize)]
struct Recorded {
    #[serde(flatten)]
    entry: Entry,
}

/// What a journal record is about: a table of a source cluster (app id once known), or the
/// cluster itself (empty table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub cluster: String,
    pub table: String,
    pub app_id: Option<i32>,
}

impl Subject {
    /// The cluster as a whole.
    #[must_use]
    pub fn cluster(cluster: &str) -> Self {
        Self {
            cluster: cluster.into(),
            ..Self::default()
        }
    }
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now_ms() -> u64 {
    crate::clock::now_ms()
}

/// `user@host` of whoever runs the tool (in a simulation, a fixed name: a seed's trace must
/// not depend on the machine that ran it).
#[must_use]
pub fn operator() -> String {
    if crate::clock::simulated() {
        return "operator@sim".into();
    }
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
