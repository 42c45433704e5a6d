//! Owns what apply tells the operator while it runs: one event per step start, wait update,
//! outcome or abort, printed as log lines on stderr, or as NDJSON on stdout with `--json`.
//!
//! The executor only emits events; it never formats output itself.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub ts_ms: u64,
    pub table: String,
    /// `start`, `wait`, `done`, `aborted`, `failed`, `operator`.
    pub kind: &'static str,
    pub step: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<f64>,
}

/// Where events go.
#[derive(Debug)]
pub struct Events {
    json: bool,
    live: Option<super::progress::Live>,
    out: Mutex<()>,
}

impl Events {
    /// NDJSON on stdout when `json`; else a live view when stderr is a terminal (`live`), or
    /// plain log lines on stderr.
    #[must_use]
    pub fn new(json: bool, live: bool) -> Self {
        let live = (!json && live).then(super::progress::Live::new);
        Self {
            json,
            live,
            out: Mutex::new(()),
        }
    }

    /// Emits one event.
    pub fn emit(&self, table: &str, kind: &'static str, step: &'static str, message: String) {
        self.emit_full(Event {
            ts_ms: super::journal::now_ms(),
            table: table.into(),
            kind,
            step,
            message,
            lag: None,
            eta_s: None,
        });
    }

    /// Emits a wait update with the current lag and an estimate of the time left.
    pub fn progress(
        &self,
        table: &str,
        step: &'static str,
        lag: i64,
        eta_s: Option<f64>,
        message: String,
    ) {
        let ts_ms = super::journal::now_ms();
        self.emit_full(Event {
            ts_ms,
            table: table.into(),
            kind: "wait",
            step,
            message,
            lag: Some(lag),
            eta_s,
        });
    }

    fn emit_full(&self, e: Event) {
        let _guard = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", serde_json::to_string(&e).unwrap_or_default());
        } else if let Some(live) = &self.live {
            let eta = e
                .eta_s
                .map(|s| format!(" (ETA {s:.0}s)"))
                .unwrap_or_default();
            let finished = matches!(e.kind, "done" | "aborted" | "operator" | "failed");
            live.show(
                &e.table,
                format!("{}: {}{eta}", e.step, e.message),
                finished,
            );
        } else {
            let eta = e
                .eta_s
                .map(|s| format!(" (ETA {s:.0}s)"))
                .unwrap_or_default();
            if e.message.is_empty() {
                crate::tell!("[{}] {}", e.table, e.step);
            } else {
                crate::tell!("[{}] {}: {}{eta}", e.table, e.step, e.message);
            }
        }
    }
}

/// Estimates seconds until `lag` reaches `target` from two samples `dt` seconds apart.
#[must_use]
pub fn eta(previous: i64, now: i64, dt: f64, target: i64) -> Option<f64> {
    let rate = (previous - now) as f64 / dt;
    (rate > 0.0 && now > target).then(|| (now - target) as f64 / rate)
}
