//! Golden files: rendered output compared exactly with the text kept under `tests/data/`.

/// Compares `text` with the golden file `name`; on a mismatch the panic shows a unified diff.
/// `UPDATE_GOLDEN=1` rewrites the file instead (review the change with `git diff`).
pub fn assert_golden(name: &str, text: &str) {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; set UPDATE_GOLDEN=1 to create it"));
    if want != text {
        let diff = similar::TextDiff::from_lines(want.as_str(), text)
            .unified_diff()
            .context_radius(3)
            .header(&format!("tests/data/{name}"), "rendered")
            .to_string();
        panic!(
            "rendered text differs from tests/data/{name} (set UPDATE_GOLDEN=1 to accept):\n{diff}"
        );
    }
}
