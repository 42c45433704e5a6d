//! Owns how a verify is told: keys as text (UTF-8 when valid, else with `\xNN` escapes), the
//! per-table lines and the JSON report.

use super::compare::Kind;
use super::Outcome;

/// `bytes` as text: UTF-8 when valid, else printable ASCII with `\xNN` for the rest.
#[must_use]
pub fn text(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(char::is_control) {
            return s.to_string();
        }
    }
    let mut out = String::new();
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A full key as `hash_key / sort_key` text.
#[must_use]
pub fn key_text(full_key: &[u8]) -> String {
    match crate::pegasus::key::split_key(full_key) {
        Some((h, s)) => format!("{} / {}", text(h), text(s)),
        None => text(full_key),
    }
}

/// The lines that tell one table's result.
#[must_use]
pub fn lines(table: &str, from: &str, to: &str, o: &Outcome, first: usize) -> Vec<String> {
    let c = &o.scanned;
    let verdict = if o.differences() == 0 {
        "equal".to_string()
    } else {
        format!("{} difference(s)", o.differences())
    };
    let mut out = vec![format!(
        "{table} {from} → {to}: {verdict} ({} mode; {} source records scanned, {} on the target, {} matched at first sight; {:.1}s)",
        o.mode.name(),
        c.scanned,
        c.target_scanned,
        c.matched,
        o.elapsed_ms as f64 / 1000.0
    )];
    if o.differences() > 0 || c.differences() > 0 {
        out.push(format!(
            "    after {} re-read round(s): missing on the target {}, extra on the target {}, different {}{}",
            o.rounds,
            o.count(Kind::Missing),
            o.count(Kind::Extra),
            o.count(Kind::Different),
            if o.not_rechecked > 0 {
                format!("; {} more found and not re-read", o.not_rechecked)
            } else {
                String::new()
            }
        ));
    }
    for d in o.differing.iter().take(first) {
        let kind = match d.kind {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Different => "different",
        };
        out.push(format!("    {kind:<9} {}", key_text(&d.key)));
    }
    if o.mode == super::Mode::Sample {
        out.push(format!(
            "    values compared for {} sampled record(s); every key and expiry compared",
            o.values_compared
        ));
    }
    out
}

impl serde::Serialize for super::compare::Diff {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (hash_key, sort_key) = crate::pegasus::key::split_key(&self.key)
            .map_or((text(&self.key), String::new()), |(h, k)| {
                (text(h), text(k))
            });
        let mut st = s.serialize_struct("Diff", 3)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("hash_key", &hash_key)?;
        st.serialize_field("sort_key", &sort_key)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_text_or_escapes() {
        assert_eq!(text(b"user:42"), "user:42");
        assert_eq!(text(b"a\x00b\xff"), "a\\x00b\\xff");
        assert_eq!(text("日本".as_bytes()), "日本");
        let k = crate::pegasus::key::composite_key(b"h\x01", b"s").unwrap();
        assert_eq!(key_text(&k), "h\\x01 / s");
    }
}
