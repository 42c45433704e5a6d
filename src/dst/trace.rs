//! Owns a run's trace: what happened, one line per event, under the simulated host that did
//! it, in virtual time order.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::clock;

/// The trace, shared by every part of the run.
#[derive(Clone)]
pub struct Trace {
    lines: Arc<Mutex<Vec<(u64, usize, String)>>>,
    start: Instant,
}

impl Trace {
    pub fn new() -> Trace {
        Trace {
            lines: Arc::default(),
            start: Instant::now(),
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Adds `line` now, under the calling task's host name.
    pub fn say(&self, line: impl Into<String>) {
        let who = clock::host().map_or_else(|| "world".to_string(), |h| h.name.to_string());
        self.at(self.elapsed_ms(), format!("{who}: {}", line.into()));
    }

    /// Adds `line` at virtual time `ms` since the start.
    pub fn at(&self, ms: u64, line: String) {
        let mut lines = self.lines.lock().expect("trace");
        let seq = lines.len();
        lines.push((ms, seq, line));
    }

    /// The trace with `dir` (the run's own directory, unique per run) written as `$RUN_DIR`,
    /// so the same seed reads the same wherever it ran.
    pub fn finish_in(&self, dir: &std::path::Path) -> Vec<String> {
        let dir = dir.display().to_string();
        self.finish()
            .into_iter()
            .map(|l| l.replace(&dir, "$RUN_DIR"))
            .collect()
    }

    pub fn finish(&self) -> Vec<String> {
        let mut lines = self.lines.lock().expect("trace").clone();
        lines.sort();
        lines
            .into_iter()
            .map(|(ms, _, l)| format!("{:>9.3}s {l}", ms as f64 / 1000.0))
            .collect()
    }
}
