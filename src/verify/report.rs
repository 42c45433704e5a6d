//! Owns how a verify is told: keys as text (UTF-8 when valid, else with `\xNN` escapes; a
//! backslash is always doubled), the per-table lines and the JSON report.

use super::compare::Kind;
use super::Outcome;

/// `bytes` as text: UTF-8 when valid (a backslash doubled), else printable ASCII with `\xNN`
/// for the rest (a backslash too).
#[must_use]
pub fn text(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(char::is_control) {
            // A literal backslash is doubled, so `\x00` in a key never reads as a byte.
            return s.replace('\\', "\\\\");
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
    let verdict = match o.verdict {
        super::Verdict::Equal => "equal".to_string(),
        super::Verdict::Incomplete => format!(
            "incomplete: no difference where compared, {} key(s) not compared",
            o.not_compared()
        ),
        super::Verdict::Different => format!("{} difference(s)", o.differences()),
    };
    let mut out = vec![match o.keys_given {
        Some(n) => format!(
            "{table} {from} → {to}: {verdict} ({n} given key(s) re-checked, nothing scanned; {:.1}s)",
            o.elapsed_ms as f64 / 1000.0
        ),
        None => format!(
            "{table} {from} → {to}: {verdict} ({} mode; {} source records scanned, {} on the target, {} matched at first sight; {:.1}s)",
            o.mode.name(),
            c.scanned,
            c.target_scanned,
            c.matched,
            o.elapsed_ms as f64 / 1000.0
        ),
    }];
    if o.verdict != super::Verdict::Equal || c.differences() > 0 {
        let a = &o.after_settling;
        let mut more = String::new();
        if a.not_rechecked > 0 {
            more += &format!(
                "; {} found and not re-read (past the suspect cap): not compared",
                a.not_rechecked
            );
        }
        if a.changing > 0 {
            more += &format!(
                "; {} still being written on the source: not compared",
                a.changing
            );
        }
        out.push(format!(
            "    after {} re-read round(s): missing on the target {}, extra on the target {}, different {}{more}",
            o.rounds, a.missing, a.extra, a.different,
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
    for d in o
        .changing
        .iter()
        .take(first.saturating_sub(o.differing.len()))
    {
        out.push(format!("    {:<9} {}", "changing", key_text(&d.key)));
    }
    if !o.expiry_compared {
        out.push(
            "    expiries not compared: a table sets default_ttl, so each cluster gives puts without expiry their own".into(),
        );
    }
    if let Some(s) = &o.sample {
        out.push(format!(
            "    values compared for {} sampled record(s) (rate {}, salt {}: --sample-salt {} repeats this sample); every key and expiry compared",
            o.values_compared, s.rate, s.salt, s.salt
        ));
        let for_99 = s
            .lost_for_99_percent
            .map_or_else(|| "no number".to_string(), |k| k.to_string());
        out.push(format!(
            "    records whose value alone is wrong: a run like this catches one of 1 with chance {:.1}%, of 10 {:.1}%, of 100 {:.1}%; {for_99} for 99%",
            s.detect_1 * 100.0,
            s.detect_10 * 100.0,
            s.detect_100 * 100.0
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
        assert_eq!(text(br"a\x00"), r"a\\x00", "a literal backslash is doubled");
        assert_eq!(text(b"a\\\x00"), r"a\x5c\x00");
    }
}
