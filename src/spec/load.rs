//! Owns reading a plan file: the size cap, YAML parsing and type checks (yaml_serde), then the
//! semantic rules, every problem reported as `file:line:column: message`.
//!
//! Reads one file; everything else here is pure.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::locate::{Index, Position};
use super::validate::validate;
use super::{RawSpec, Spec};

/// Largest plan file accepted; real plans are a few kilobytes.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

/// One problem in a plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The YAML path of the node, e.g. `migrations[2].from` (empty for syntax errors).
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Why a plan file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_SPEC_BYTES`].
    #[error(
        "{file}: {size} bytes is too large for a plan file (the limit is {MAX_SPEC_BYTES} bytes)"
    )]
    TooLarge { file: String, size: u64 },
    /// The file has syntax, type or semantic errors.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// Reads and validates the plan file at `path`.
///
/// # Errors
/// Unreadable, too large, or invalid (every problem found, with its position).
pub fn load(path: &Path) -> Result<Spec, Error> {
    let file = path.display().to_string();
    let read_err = |source| Error::Read {
        file: file.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_SPEC_BYTES {
        return Err(Error::TooLarge { file, size });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    load_str(&file, &text)
}

/// Validates plan text; `file` names it in diagnostics.
///
/// # Errors
/// Too large, or invalid.
pub fn load_str(file: &str, text: &str) -> Result<Spec, Error> {
    if text.len() as u64 > MAX_SPEC_BYTES {
        return Err(Error::TooLarge {
            file: file.to_string(),
            size: text.len() as u64,
        });
    }
    let raw: RawSpec =
        serde_yaml::from_str(text).map_err(|e| Error::Invalid(vec![yaml_diagnostic(file, &e)]))?;
    let index = Index::build(text);
    let duplicates: Vec<Diagnostic> = index
        .duplicate_keys()
        .iter()
        .map(|(path, first, again)| Diagnostic {
            file: file.to_string(),
            line: again.line,
            column: again.column,
            path: path.clone(),
            message: format!("duplicate entry {path} (first at line {})", first.line),
        })
        .collect();
    if !duplicates.is_empty() {
        return Err(Error::Invalid(duplicates));
    }
    validate(&raw).map_err(|issues| {
        let diagnostics = issues
            .into_iter()
            .map(|issue| {
                let Position { line, column } = index.position(&issue.path);
                Diagnostic {
                    file: file.to_string(),
                    line,
                    column,
                    path: issue.path,
                    message: issue.message,
                }
            })
            .collect();
        Error::Invalid(diagnostics)
    })
}

fn yaml_diagnostic(file: &str, e: &serde_yaml::Error) -> Diagnostic {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    // The position goes in front, so drop yaml_serde's own " at line L column C" suffix.
    let mut message = e.to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    Diagnostic {
        file: file.to_string(),
        line,
        column,
        path: String::new(),
        message,
    }
}
