//! Owns `migrator validate FILE [--json]`: offline checks of a plan file, exit 0 or 1.

use std::path::PathBuf;

use serde_json::json;

use crate::error::Result;
use crate::exit::Exit;
use crate::spec::load::Error as SpecError;

/// Flags of `migrator validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (YAML).
    pub file: PathBuf,
    /// Print the diagnostics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Validates the file without contacting any server.
///
/// # Errors
/// Never for an invalid file (that is exit 1 with diagnostics); only for output failures.
pub fn run(args: &Args) -> Result<Exit> {
    let result = crate::spec::load(&args.file);
    let file = args.file.display().to_string();
    let diagnostics = match &result {
        Ok(_) => vec![],
        Err(SpecError::Invalid(d)) => d.clone(),
        Err(other) => vec![crate::spec::load::Diagnostic {
            file: file.clone(),
            line: 1,
            column: 1,
            path: String::new(),
            message: other.to_string(),
        }],
    };
    if args.json {
        let doc = json!({
            "format_version": "1.0",
            "valid": diagnostics.is_empty(),
            "error_count": diagnostics.len(),
            "diagnostics": diagnostics,
        });
        crate::say!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if let Ok(spec) = &result {
        crate::say!("{file}: valid ({} migration(s))", spec.migrations.len());
    } else {
        for d in &diagnostics {
            crate::tell!("{d}");
        }
        crate::tell!("{file}: {} error(s)", diagnostics.len());
    }
    Ok(if diagnostics.is_empty() {
        Exit::Success
    } else {
        Exit::Error
    })
}
