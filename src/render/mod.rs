//! Owns presenting plans: a versioned JSON document (`json`), Terraform-style human text
//! (`human`) and Markdown for pull requests (`markdown`), all built from the same view so they
//! cannot disagree; the two views for people group tables alike (`group`) and share their
//! words (`words`).
//!
//! Renderers write to any `impl Write`; they never decide where output goes.

pub mod group;
pub mod human;
pub mod json;
pub mod markdown;
pub mod natural;
pub mod words;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Text for people; `color` only when stdout is a terminal.
    Human { color: bool },
    /// Versioned JSON.
    Json,
}
