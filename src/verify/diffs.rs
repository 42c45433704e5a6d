//! Owns the differences as a file to act on: `--diff-out` writes one JSON line per key still
//! differing or still changing — the key in base64 and as text, and for each side its value's
//! length and crc64 and its expiry as read when the file is written — and `--keys` reads such
//! a file back (any line with a `key_b64`, of the table asked for) to re-check only those keys.

use std::io::{BufRead, Write};
use std::path::Path;

use super::compare::Counts;
use super::compare::Diff;
use super::pace::{Limits, Pacers};
use super::recheck::{self, Sides};
use super::report::text;
use super::{Error, Outcome, Result};
use crate::pegasus::key;
use crate::pegasus::messages::data::KeyValue;
use crate::pegasus::scanner::read_one;
use crate::pegasus::table::TableClient;

/// Why a keys file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {why}")]
    Line {
        path: String,
        line: usize,
        why: String,
    },
}

/// One side of a key as the file tells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Copy {
    pub value_len: usize,
    /// crc64 of the value, in hex.
    pub value_crc64: String,
    /// Absolute expiry (Pegasus epoch seconds), 0 for none.
    pub expire_ts: i64,
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    pub table: String,
    /// `missing`, `extra`, `different` or `changing`.
    pub kind: String,
    pub key_b64: String,
    pub hash_key: String,
    pub sort_key: String,
    /// `None`: the side does not hold the key (or it expired).
    pub source: Option<Copy>,
    pub target: Option<Copy>,
}

/// Appends every key `o` left differing or changing to `path`, each read again on both sides
/// (within `limits` on each).
///
/// # Errors
/// A read failed, or the file could not be written.
pub async fn write(
    (src, dst): (&TableClient, &TableClient),
    limits: Limits,
    table: &str,
    o: &Outcome,
    path: &Path,
) -> Result<()> {
    let sides = sides(src, dst, o.expiry_compared, limits);
    let mut out = Vec::new();
    let named = |d: &Diff| match d.kind {
        super::compare::Kind::Missing => "missing",
        super::compare::Kind::Extra => "extra",
        super::compare::Kind::Different => "different",
    };
    let all: Vec<(&Diff, &str)> = o
        .differing
        .iter()
        .map(|d| (d, named(d)))
        .chain(o.changing.iter().map(|d| (d, "changing")))
        .collect();
    // Read 64 keys at a time, each on both sides at once: round trips overlap.
    for chunk in all.chunks(64) {
        sides.pacers.source.pace(chunk.len(), 0).await;
        sides.pacers.target.pace(chunk.len(), 0).await;
        let mut set = tokio::task::JoinSet::new();
        for (i, (d, _)) in chunk.iter().enumerate() {
            let (src, dst, key) = (sides.src.clone(), sides.dst.clone(), d.key.clone());
            set.spawn(async move {
                let (s, t) = tokio::join!(read_one(&src, &key), read_one(&dst, &key));
                (i, s.map_err(Error::Source), t.map_err(Error::Target))
            });
        }
        let mut read = vec![None; chunk.len()];
        while let Some(joined) = set.join_next().await {
            let (i, s, t) = joined.map_err(|e| Error::Task(e.to_string()))?;
            read[i] = Some((s?, t?));
        }
        for ((d, kind), r) in chunk.iter().zip(read) {
            let (s, t) = r.ok_or_else(|| Error::Task("a read went missing".into()))?;
            let line = line(table, kind, &d.key, s.as_ref(), t.as_ref());
            let json = serde_json::to_string(&line).map_err(|e| Error::Task(e.to_string()))?;
            out.extend_from_slice(json.as_bytes());
            out.push(b'\n');
        }
    }
    let io = |e: std::io::Error| {
        Error::Keys(KeysError::Io {
            path: path.display().to_string(),
            source: e,
        })
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&out))
        .map_err(io)
}

/// Re-checks only `keys` (as `--keys` reads them from a file): each read on both sides in
/// the settling rounds of `opts`, nothing scanned. The verdict is over those keys alone.
///
/// # Errors
/// A read failed.
pub async fn verify_keys(
    src: &TableClient,
    dst: &TableClient,
    opts: super::Options,
    keys: Vec<Vec<u8>>,
) -> Result<Outcome> {
    let started = tokio::time::Instant::now();
    let expiry = opts.compare_expiry
        && !(super::sets_default_ttl(src).await.map_err(Error::Source)?
            || super::sets_default_ttl(dst).await.map_err(Error::Target)?);
    let sides = sides(src, dst, expiry, opts.limits());
    let given = keys.len() as u64;
    // How they differed is found by the first read; until then each is a suspect.
    let suspects = keys
        .into_iter()
        .map(|key| Diff {
            key,
            kind: super::compare::Kind::Different,
        })
        .collect();
    let settle = recheck::Settle {
        rounds: opts.settle.rounds.max(1),
        ..opts.settle
    };
    let settled = recheck::settle(&sides, suspects, settle).await?;
    let not_compared = settled.changing.len() as u64;
    Ok(Outcome {
        verdict: super::Verdict::of(settled.differing.len() as u64, not_compared),
        mode: super::Mode::Full,
        expiry_compared: expiry,
        scanned: Counts::default(),
        after_settling: super::Totals::of(&settled, 0),
        differing: settled.differing,
        changing: settled.changing,
        rounds: settled.rounds,
        not_rechecked: 0,
        values_compared: 0,
        sample: None,
        partitions: None,
        shard: None,
        keys_given: Some(given),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        max_in_hand: 0,
    })
}

fn sides(src: &TableClient, dst: &TableClient, expiry: bool, limits: Limits) -> Sides {
    Sides {
        src: src.clone(),
        dst: dst.clone(),
        expiry,
        pacers: std::sync::Arc::new(Pacers::new(limits)),
    }
}

/// The line of a key with its two reads.
#[must_use]
pub fn line(
    table: &str,
    kind: &str,
    full_key: &[u8],
    source: Option<&KeyValue>,
    target: Option<&KeyValue>,
) -> Line {
    let (hash_key, sort_key) = key::split_key(full_key)
        .map_or((text(full_key), String::new()), |(h, s)| (text(h), text(s)));
    let copy = |kv: &KeyValue| Copy {
        value_len: kv.value.0.len(),
        value_crc64: format!("{:016x}", key::crc64(&kv.value.0)),
        expire_ts: i64::from(kv.expire_ts_seconds.unwrap_or(0)),
    };
    Line {
        table: table.to_string(),
        kind: kind.to_string(),
        key_b64: base64(full_key),
        hash_key,
        sort_key,
        source: source.map(copy),
        target: target.map(copy),
    }
}

/// The keys of `table` in the file at `path` (lines of other tables are skipped; a line
/// without a `table` counts for every table).
///
/// # Errors
/// The file cannot be read, a line is not JSON, or has no valid `key_b64`.
pub fn read_keys(path: &Path, table: &str) -> std::result::Result<Vec<Vec<u8>>, KeysError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| KeysError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut keys = Vec::new();
    for (i, l) in std::io::BufReader::new(file).lines().enumerate() {
        let bad = |why: String| KeysError::Line {
            path: shown.clone(),
            line: i + 1,
            why,
        };
        let l = l.map_err(|e| bad(e.to_string()))?;
        if l.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&l).map_err(|e| bad(e.to_string()))?;
        if v.get("table")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t != table)
        {
            continue;
        }
        let b64 = v
            .get("key_b64")
            .and_then(|k| k.as_str())
            .ok_or_else(|| bad("no key_b64".into()))?;
        let k = unbase64(b64).ok_or_else(|| bad(format!("key_b64 {b64:?} is not base64")))?;
        if key::split_key(&k).is_none() {
            return Err(bad(
                "key_b64 is not a Pegasus key (2-byte hash key length first)".into(),
            ));
        }
        keys.push(k);
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in standard base64 with padding.
#[must_use]
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 back to bytes; `None` if it is not.
#[must_use]
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                u32::try_from(ALPHABET.iter().position(|&a| a == c)?).ok()?
            };
            n = (n << 6) | v;
        }
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pegasus::base::Blob;

    #[test]
    fn base64_goes_there_and_back() {
        for (raw, b64) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\x00\x05hk\xff", "AAVoa/8="),
        ] {
            assert_eq!(base64(raw), b64);
            assert_eq!(unbase64(b64).as_deref(), Some(raw));
        }
        assert_eq!(unbase64("Zg="), None);
        assert_eq!(unbase64("Z!=="), None);
        assert_eq!(unbase64("===="), None);
    }

    #[test]
    fn a_line_tells_each_side_and_reads_back_as_its_key() {
        let k = key::composite_key(b"user\x01", b"s").unwrap();
        let kv = KeyValue {
            key: Blob(k.clone()),
            value: Blob(b"abc".to_vec()),
            expire_ts_seconds: Some(77),
        };
        let l = line("t", "missing", &k, Some(&kv), None);
        assert_eq!(
            (l.hash_key.as_str(), l.sort_key.as_str()),
            ("user\\x01", "s")
        );
        let src = l.source.as_ref().unwrap();
        assert_eq!((src.value_len, src.expire_ts), (3, 77));
        assert_eq!(src.value_crc64, format!("{:016x}", key::crc64(b"abc")));
        assert_eq!(l.target, None);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("diffs.ndjson");
        let other = line("u", "extra", b"\x00\x01zq", None, None);
        let body = [&l, &other]
            .iter()
            .map(|l| serde_json::to_string(l).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, body + "\n\n").unwrap();
        assert_eq!(read_keys(&path, "t").unwrap(), vec![k]);
        assert_eq!(read_keys(&path, "u").unwrap(), vec![b"\x00\x01zq".to_vec()]);

        std::fs::write(&path, "{\"key_b64\": \"AA\"}\n").unwrap();
        let e = read_keys(&path, "t").unwrap_err().to_string();
        assert!(e.ends_with("line 1: key_b64 \"AA\" is not base64"), "{e}");
        std::fs::write(&path, "not json\n").unwrap();
        assert!(read_keys(&path, "t").is_err());
    }
}
