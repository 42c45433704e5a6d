//! Owns what apply tells the operator while it runs: typed events (a step started, a wait
//! update, how a table ended), rendered in this one place as log lines or a live view on
//! stderr, or as NDJSON on stdout with `--json`.
//!
//! The executor only emits events; it never formats output itself.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

use crate::plan::StepKind;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A step began.
    Start,
    /// A step waits, or says what it did along the way.
    Wait,
    /// The table is migrated.
    Done,
    /// The cut-over was abandoned and the write block lifted.
    Aborted,
    /// The run stopped on an error with nothing blocked by it.
    Failed,
    /// An operator must act.
    Operator,
}

impl EventKind {
    /// Whether the table's run ended with this event.
    #[must_use]
    pub fn ends_the_table(self) -> bool {
        !matches!(self, Self::Start | Self::Wait)
    }
}

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub ts_ms: u64,
    /// The table, or the source cluster for cluster-wide events (the speed-up).
    pub table: String,
    pub kind: EventKind,
    /// The step it happened in; none for cluster-wide events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepKind>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<f64>,
}

impl Event {
    /// The human line without the table: `<step>: <message> (ETA ..)`, never the step twice.
    #[must_use]
    pub fn text(&self) -> String {
        let eta = self
            .eta_s
            .map(|s| format!(" (ETA {s:.0}s)"))
            .unwrap_or_default();
        match (self.step.map(StepKind::label), self.message.as_str()) {
            (Some(step), "") => step.to_string(),
            (Some(step), msg) => format!("{step}: {msg}{eta}"),
            (None, msg) => format!("{msg}{eta}"),
        }
    }
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

    /// A step of `table` began.
    pub fn start(&self, table: &str, step: StepKind) {
        self.emit(table, EventKind::Start, Some(step), String::new());
    }

    /// A step of `table` waits or reports on its way.
    pub fn wait(&self, table: &str, step: StepKind, message: String) {
        self.emit(table, EventKind::Wait, Some(step), message);
    }

    /// Something happened to a whole source cluster.
    pub fn cluster(&self, cluster: &str, message: String) {
        self.emit(cluster, EventKind::Wait, None, message);
    }

    /// Emits one event.
    pub fn emit(&self, table: &str, kind: EventKind, step: Option<StepKind>, message: String) {
        self.render(&Event {
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
        step: StepKind,
        lag: i64,
        eta_s: Option<f64>,
        message: String,
    ) {
        self.render(&Event {
            ts_ms: super::journal::now_ms(),
            table: table.into(),
            kind: EventKind::Wait,
            step: Some(step),
            message,
            lag: Some(lag),
            eta_s,
        });
    }

    fn render(&self, e: &Event) {
        let _guard = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default());
        } else if let Some(live) = &self.live {
            live.show(&e.table, e.text(), e.kind.ends_the_table());
        } else {
            crate::tell!("[{}] {}", e.table, e.text());
        }
    }
}

impl Events {
    /// Prints how each table ended and a count, on stdout (one JSON summary with `json`).
    pub fn report(outcomes: &[(String, super::Outcome)], json: bool) {
        use super::Outcome;
        if json {
            let tables: Vec<_> = outcomes
                .iter()
                .map(|(t, o)| serde_json::json!({"table": t, "result": o}))
                .collect();
            crate::say!(
                "{}",
                serde_json::json!({"type": "summary", "tables": tables})
            );
            return;
        }
        let mut counts = [0usize; 4];
        for (table, o) in outcomes {
            let (slot, line) = match o {
                Outcome::Done {
                    write_block_ms: Some(ms),
                } => (0, format!("migrated (writes were blocked for {ms} ms)")),
                Outcome::Done {
                    write_block_ms: None,
                } => (0, "migrated".into()),
                Outcome::Aborted { reason } => (1, format!("aborted: {reason}")),
                Outcome::Stopped { reason } => (2, format!("stopped: {reason}")),
                Outcome::Failed { reason } => (2, format!("failed: {reason}")),
                Outcome::NeedsOperator { reason } => (3, format!("needs an operator: {reason}")),
            };
            counts[slot] += 1;
            crate::say!("{table}: {line}");
        }
        crate::say!(
            "Apply: {} migrated, {} aborted, {} failed or stopped, {} need an operator.",
            counts[0],
            counts[1],
            counts[2],
            counts[3]
        );
    }
}

/// Estimates seconds until `lag` reaches `target` from two samples `dt` seconds apart.
#[must_use]
pub fn eta(previous: i64, now: i64, dt: f64, target: i64) -> Option<f64> {
    let rate = (previous - now) as f64 / dt;
    (rate > 0.0 && now > target).then(|| (now - target) as f64 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(step: Option<StepKind>, message: &str, eta_s: Option<f64>) -> Event {
        Event {
            ts_ms: 0,
            table: "t".into(),
            kind: EventKind::Wait,
            step,
            message: message.into(),
            lag: None,
            eta_s,
        }
    }

    #[test]
    fn lines_name_the_step_once() {
        let cases = [
            (event(Some(StepKind::Preflight), "", None), "preflight"),
            (
                event(Some(StepKind::CatchUp), "lag 5", Some(3.2)),
                "catch up: lag 5 (ETA 3s)",
            ),
            (event(None, "speed-up restored", None), "speed-up restored"),
        ];
        for (e, want) in cases {
            assert_eq!(e.text(), want);
        }
    }

    #[test]
    fn json_spells_kinds_and_steps_in_snake_case() {
        let mut e = event(Some(StepKind::BlockWrites), "x", None);
        e.kind = EventKind::Operator;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "operator");
        assert_eq!(v["step"], "block_writes");
        assert!(EventKind::Operator.ends_the_table());
        assert!(!EventKind::Wait.ends_the_table());
    }
}
