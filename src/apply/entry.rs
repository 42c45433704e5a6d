//! Owns the journal's record types: one enum of everything apply and abort write, each
//! record's step and event named once, by its variant (serialized as `step`, `event`,
//! `detail`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One journal record's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Entry {
    Duplicate(Duplicate),
    BlockWrites(Block),
    Drain(Drain),
    Verify(Verify),
    Switch(Switch),
    SpeedUp(SpeedUp),
    Finish(Finish),
}

/// Adding the duplication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum Duplicate {
    Intent { remote: String },
    Outcome { dupid: i32 },
}

/// Who lifted a write block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiftedBy {
    Apply,
    Abort,
}

/// The write block: set, guarded, in force, lifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum Block {
    Intent {
        env: String,
        after: String,
        max_write_block_ms: u64,
        sync_bound_ms: u64,
        restore_reserve_ms: u64,
        started_ms: u64,
        deadline_ms: u64,
        resumed: bool,
    },
    Guardian {
        pid: u32,
        record: String,
        log: String,
    },
    Outcome {
        started_ms: u64,
        first_in_force_after_ms: Option<u64>,
        all_in_force_after_ms: Option<u64>,
    },
    RestoreIntent {
        env: String,
    },
    Restored {
        by: LiftedBy,
        write_block_ms: Option<u64>,
        /// Whether every primary was seen taking writes again (none: not checked).
        seen_on_every_primary: Option<bool>,
        said: String,
    },
}

/// The comparison before the block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum Verify {
    Outcome {
        mode: crate::verify::Mode,
        /// Absent in journals written before verdicts existed.
        #[serde(default)]
        verdict: Option<crate::verify::Verdict>,
        scanned: u64,
        differences: u64,
        /// Keys still being written on the source: not compared.
        #[serde(default)]
        changing: u64,
        /// Keys found different and not re-read: not compared.
        #[serde(default)]
        not_rechecked: u64,
        #[serde(default)]
        expiry_compared: Option<bool>,
        /// Sample mode: the salt that chose the sample (`verify --sample-salt` repeats it).
        #[serde(default)]
        sample_salt: Option<u64>,
        rounds: u32,
    },
    /// Inside the block, before the switch: the keys the gate left were compared.
    AtSwitch {
        keys: u64,
        verdict: crate::verify::Verdict,
        took_ms: u64,
    },
}

/// The drain after the block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum Drain {
    Outcome {
        drained_after_block_ms: u64,
        /// Partition index → the decree it had to ship.
        baselines: BTreeMap<String, i64>,
    },
}

/// The routing switch and telling clients to move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum Switch {
    Intent {
        path: String,
        version: i32,
        before: String,
        after: String,
    },
    Outcome {
        path: String,
        after: String,
    },
    /// The operator confirmed a manual cut-over.
    Confirmed,
    Proxies {
        serve_target: Vec<String>,
        not_serving_target: Vec<String>,
    },
    Reconfigured {
        env: String,
        after: String,
        write_block_ms: Option<u64>,
        told_every_primary: bool,
        at_ms: u64,
    },
}

/// The lowered config-sync period of a source cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum SpeedUp {
    Intent {
        cluster: String,
        flag: String,
        to: u64,
        /// Replica server → the value it had.
        original: BTreeMap<String, u64>,
    },
    Outcome {
        cluster: String,
        failed: BTreeMap<String, String>,
    },
    RestoreIntent {
        cluster: String,
        original: BTreeMap<String, u64>,
    },
    Restored {
        cluster: String,
        failed: Vec<String>,
    },
}

/// The end of the table's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "detail", rename_all = "snake_case")]
pub enum Finish {
    Intent { remove_duplication: i32 },
    Outcome { migrated: bool },
}

impl Entry {
    /// `<step>:<event>`, as failure points name journal writes.
    #[must_use]
    pub fn point(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        format!(
            "{}:{}",
            v["step"].as_str().unwrap_or_default(),
            v["event"].as_str().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_step_event_detail_shape() {
        let e = Entry::SpeedUp(SpeedUp::Restored {
            cluster: "src".into(),
            failed: vec![],
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["step"], "speed_up");
        assert_eq!(v["event"], "restored");
        assert_eq!(v["detail"]["cluster"], "src");
        assert_eq!(e.point(), "speed_up:restored");
        assert_eq!(serde_json::from_value::<Entry>(v).unwrap(), e);
    }

    #[test]
    fn unit_events_round_trip() {
        let e = Entry::Switch(Switch::Confirmed);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(e.point(), "switch:confirmed");
        assert_eq!(serde_json::from_value::<Entry>(v).unwrap(), e);
    }
}
