//! Owns the live progress view on a terminal: one line per table (indicatif, on stderr) showing
//! its phase, what it waits for, the lag and an ETA; finished lines stay on screen.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The live view.
#[derive(Debug)]
pub struct Live {
    bars: MultiProgress,
    lines: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Live {
    /// A view drawn on stderr.
    #[must_use]
    pub fn new() -> Self {
        Self {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            lines: Mutex::default(),
        }
    }

    fn line(&self, table: &str) -> ProgressBar {
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lines
            .entry(table.to_string())
            .or_insert_with(|| {
                let bar = self.bars.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<12} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(table.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }

    /// Shows `text` on `table`'s line; `finished` freezes the line.
    pub fn show(&self, table: &str, text: String, finished: bool) {
        let bar = self.line(table);
        if finished {
            bar.finish_with_message(text);
        } else {
            bar.set_message(text);
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}
