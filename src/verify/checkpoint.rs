//! Owns a verify's checkpoint: each partition group's last key compared and counts, the
//! suspects found so far and the run's settings, saved every few seconds under
//! `.migrator/verify/` (and once more when the run ends without a verdict), so that
//! `verify --resume` goes on where a failed or killed run stopped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::compare::{Counts, Diff, Kind};
use super::group::ClassState;
use super::Mode;

/// The format of the file.
const FORMAT_VERSION: u32 = 1;

/// Why a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a checkpoint this version reads: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("no checkpoint to resume from at {}: run without --resume", path.display())]
    Missing { path: PathBuf },
    #[error("the checkpoint at {} does not fit this run ({why}): run without --resume", path.display())]
    Mismatch { path: PathBuf, why: String },
}

/// A run as saved.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub format_version: u32,
    pub mode: Mode,
    pub sample_rate: f64,
    pub sample_salt: u64,
    pub compare_expiry: bool,
    /// The source's and the target's partition counts.
    pub partitions: [i32; 2],
    pub classes: Vec<SavedClass>,
    pub suspects: Vec<SavedDiff>,
    pub not_rechecked: u64,
}

/// One group as saved (keys in hex).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedClass {
    pub through: Option<String>,
    pub counts: Counts,
    pub values_compared: u64,
    pub done: bool,
}

/// A suspect as saved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedDiff {
    pub key: String,
    pub kind: Kind,
}

impl Saved {
    /// A run's state: its settings, groups and suspects.
    #[must_use]
    pub fn of(
        settings: Settings,
        classes: &[ClassState],
        suspects: &[Diff],
        not_rechecked: u64,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            mode: settings.mode,
            sample_rate: settings.sample_rate,
            sample_salt: settings.sample_salt,
            compare_expiry: settings.compare_expiry,
            partitions: settings.partitions,
            classes: classes
                .iter()
                .map(|c| SavedClass {
                    through: c.through.as_deref().map(hex),
                    counts: c.counts,
                    values_compared: c.values_compared,
                    done: c.done,
                })
                .collect(),
            suspects: suspects
                .iter()
                .map(|d| SavedDiff {
                    key: hex(&d.key),
                    kind: d.kind,
                })
                .collect(),
            not_rechecked,
        }
    }

    /// The settings saved.
    #[must_use]
    pub fn settings(&self) -> Settings {
        Settings {
            mode: self.mode,
            sample_rate: self.sample_rate,
            sample_salt: self.sample_salt,
            compare_expiry: self.compare_expiry,
            partitions: self.partitions,
        }
    }

    /// The groups' states, `None` if a key is not hex.
    #[must_use]
    pub fn classes(&self) -> Option<Vec<ClassState>> {
        self.classes
            .iter()
            .map(|c| {
                Some(ClassState {
                    through: match &c.through {
                        Some(h) => Some(unhex(h)?),
                        None => None,
                    },
                    counts: c.counts,
                    values_compared: c.values_compared,
                    done: c.done,
                })
            })
            .collect()
    }

    /// The suspects, `None` if a key is not hex.
    #[must_use]
    pub fn suspects(&self) -> Option<Vec<Diff>> {
        self.suspects
            .iter()
            .map(|d| {
                Some(Diff {
                    key: unhex(&d.key)?,
                    kind: d.kind,
                })
            })
            .collect()
    }
}

/// What must be the same for a run to go on from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub mode: Mode,
    pub sample_rate: f64,
    pub sample_salt: u64,
    pub compare_expiry: bool,
    pub partitions: [i32; 2],
}

impl Settings {
    /// Why `self` (saved) cannot go on as `now`, if it cannot. The sample is the saved one
    /// (a resumed run takes it over), so only what the tables decide must match.
    #[must_use]
    pub fn unfit_for(&self, now: &Settings) -> Option<String> {
        if self.partitions != now.partitions {
            return Some(format!(
                "saved with {} and {} partitions, now {} and {}",
                self.partitions[0], self.partitions[1], now.partitions[0], now.partitions[1]
            ));
        }
        if self.compare_expiry != now.compare_expiry {
            return Some("a table's default_ttl changed since".into());
        }
        None
    }
}

/// Where one table's checkpoint lives and how often it is saved.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    /// Pause between two saves.
    pub every: Duration,
}

impl Store {
    /// The checkpoint of `table` from cluster `from` to `to` under `state_dir` (`.migrator`).
    #[must_use]
    pub fn new(state_dir: &Path, table: &str, from: &str, to: &str, every: Duration) -> Self {
        let name = format!("{}.{}.{}.json", safe(table), safe(from), safe(to));
        Self {
            path: state_dir.join("verify").join(name),
            every,
        }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved run, if there is one.
    ///
    /// # Errors
    /// It cannot be read, or is not a checkpoint.
    pub fn load(&self) -> Result<Option<Saved>, CheckpointError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io(source)),
        };
        let saved: Saved = serde_json::from_str(&text).map_err(|e| self.corrupt(e.to_string()))?;
        if saved.format_version != FORMAT_VERSION {
            return Err(self.corrupt(format!("format version {}", saved.format_version)));
        }
        Ok(Some(saved))
    }

    /// Saves `saved` whole: written beside the file, then moved over it.
    ///
    /// # Errors
    /// The directory or the file cannot be written.
    pub fn save(&self, saved: &Saved) -> Result<(), CheckpointError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::files::private_dir(dir).map_err(|e| self.io(e))?;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec(saved).map_err(|e| self.corrupt(e.to_string()))?;
        let mut f = crate::files::create_private(&tmp).map_err(|e| self.io(e))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }

    /// Forgets the run (it reached a verdict).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// `Missing` or `Mismatch` for this file.
    #[must_use]
    pub fn missing(&self) -> CheckpointError {
        CheckpointError::Missing {
            path: self.path.clone(),
        }
    }

    /// The saved run does not fit this one.
    #[must_use]
    pub fn mismatch(&self, why: String) -> CheckpointError {
        CheckpointError::Mismatch {
            path: self.path.clone(),
            why,
        }
    }

    fn io(&self, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The file is not a checkpoint this version reads.
    #[must_use]
    pub fn corrupt(&self, why: String) -> CheckpointError {
        CheckpointError::Corrupt {
            path: self.path.clone(),
            why,
        }
    }
}

/// A name as a file name part: letters, digits, `-` and `_` kept, anything else `_`.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `bytes` as lowercase hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hex back to bytes; `None` if it is not.
#[must_use]
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            mode: Mode::Sample,
            sample_rate: 0.25,
            sample_salt: 42,
            compare_expiry: true,
            partitions: [8, 4],
        }
    }

    #[test]
    fn a_run_is_saved_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "t/x", "a", "b", Duration::from_secs(5));
        assert!(store.path().ends_with("verify/t_x.a.b.json"));
        assert_eq!(store.load().unwrap(), None);
        let classes = vec![
            ClassState {
                through: Some(vec![0, 3, b'a', 0xff]),
                counts: Counts {
                    scanned: 7,
                    matched: 6,
                    missing: 1,
                    ..Counts::default()
                },
                values_compared: 2,
                done: false,
            },
            ClassState::default(),
        ];
        let suspects = vec![Diff {
            key: vec![0, 1, b'k'],
            kind: Kind::Missing,
        }];
        let saved = Saved::of(settings(), &classes, &suspects, 3);
        store.save(&saved).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back, saved);
        assert_eq!(back.classes().unwrap(), classes);
        assert_eq!(back.suspects().unwrap(), suspects);
        assert_eq!(back.settings(), settings());

        std::fs::write(store.path(), "{not json").unwrap();
        let e = store.load().unwrap_err();
        assert!(matches!(e, CheckpointError::Corrupt { .. }), "{e}");
        store.remove();
        assert_eq!(store.load().unwrap(), None);
    }

    #[test]
    fn only_the_tables_layout_and_expiry_rule_must_still_fit() {
        let saved = settings();
        let other_sample = Settings {
            sample_salt: 7,
            sample_rate: 0.5,
            ..saved
        };
        assert_eq!(
            saved.unfit_for(&other_sample),
            None,
            "the saved sample is taken over"
        );
        let split = Settings {
            partitions: [16, 4],
            ..saved
        };
        assert_eq!(
            saved.unfit_for(&split).unwrap(),
            "saved with 8 and 4 partitions, now 16 and 4"
        );
        assert!(saved
            .unfit_for(&Settings {
                compare_expiry: false,
                ..saved
            })
            .is_some());
    }

    #[test]
    fn keys_go_to_hex_and_back() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00ab10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(""), Some(vec![]));
    }
}
