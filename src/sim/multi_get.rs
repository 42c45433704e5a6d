//! Owns `multi_get` as `on_multi_get` (v2.5.0 = master) answers it: the listed sort keys, or a
//! sort-key range with its prefix/anywhere/postfix filter, at most `max_kv_count` records
//! (capped at 3000, the iteration limit that also counts skipped records) and `max_kv_size`
//! bytes (the record that crosses it is kept), `Incomplete` (7) when a limit stopped it while
//! any key follows — even one outside the range — unless the last record examined was the
//! range's own end in scan order (the stop key of an inclusive stop, or reversed the start key
//! of an inclusive start), and, reversed, the last records of the range still in ascending
//! order. Expired records are skipped. Sizes count what is returned (no
//! value with `no_value`); listed sort keys are limited in size only by the request.

use std::collections::BTreeMap;

use super::scan::matches;
use super::state::Record;
use crate::pegasus::base::Blob;
use crate::pegasus::key;
use crate::pegasus::messages::data::{rocksdb, FilterType, KeyValue, MultiGetRequest};

/// `rocksdb_multi_get_max_iteration_count`.
pub const MAX_ITERATION: usize = 3000;
/// `rocksdb_multi_get_max_iteration_size`.
pub const MAX_SIZE: usize = 30 << 20;

/// The reply's error code and rows (keys are sort keys).
#[must_use]
pub fn rows(
    data: &BTreeMap<Vec<u8>, Record>,
    q: &MultiGetRequest,
    now: u32,
) -> (i32, Vec<KeyValue>) {
    let limit = |v: i32, cap: usize| {
        usize::try_from(v)
            .ok()
            .filter(|&n| n > 0)
            .map_or(cap, |n| n.min(cap))
    };
    let max_count = limit(q.max_kv_count, MAX_ITERATION);
    let max_size = limit(q.max_kv_size, MAX_SIZE);
    let value = |r: &Record| {
        if q.no_value {
            Vec::new()
        } else {
            r.value.clone()
        }
    };
    let kv = |sort: &[u8], r: &Record| KeyValue {
        key: Blob::new(sort),
        value: Blob(value(r)),
        expire_ts_seconds: None,
    };
    if !super::scan::filter_supported(q.sort_key_filter_type) {
        return (rocksdb::INVALID_ARGUMENT, vec![]);
    }
    if !q.sort_keys.is_empty() {
        // Listed keys: the count is capped, the size only by the request.
        let max_size = limit(q.max_kv_size, usize::MAX);
        let (mut out, mut size) = (Vec::new(), 0);
        for s in &q.sort_keys {
            let Ok(k) = key::composite_key(&q.hash_key.0, &s.0) else {
                continue;
            };
            let Some(r) = data.get(&k).filter(|r| !r.expired(now)) else {
                continue;
            };
            if out.len() >= max_count || size >= max_size {
                return (rocksdb::INCOMPLETE, out);
            }
            let kv = kv(&s.0, r);
            size += kv.key.0.len() + kv.value.0.len();
            out.push(kv);
        }
        return (rocksdb::OK, out);
    }
    let Some(range) = range(q) else {
        return (rocksdb::OK, vec![]);
    };
    let prefix_len = key::composite_key(&q.hash_key.0, b"").map_or(0, |p| p.len());
    let keys: Box<dyn Iterator<Item = (&Vec<u8>, &Record)>> = if q.reverse {
        Box::new(data.range(..=range.stop.clone()).rev())
    } else {
        Box::new(data.range(range.start.clone()..))
    };
    let filter = (q.sort_key_filter_type, q.sort_key_filter_pattern.0.clone());
    let (mut out, mut size, mut examined) = (Vec::new(), 0, 0);
    let mut keys = keys.peekable();
    let mut stopped_early = false;
    while let Some((k, r)) = keys.peek() {
        if out.len() >= max_count || size >= max_size || examined >= MAX_ITERATION {
            stopped_early = true;
            break;
        }
        if !range.contains(k) {
            let before_start = range.precedes(k);
            let after_stop = !before_start;
            // Forward scans end past the stop; reverse ones before the start (and skip the
            // keys past an exclusive stop they begin on).
            if (q.reverse && before_start) || (!q.reverse && after_stop) {
                break;
            }
            keys.next();
            continue;
        }
        examined += 1;
        let sort = &k[prefix_len.min(k.len())..];
        if !r.expired(now) && matches(&filter, sort) {
            let kv = kv(sort, r);
            size += kv.key.0.len() + kv.value.0.len();
            out.push(kv);
        }
        // The range's own end completes the scan whatever the limits say, even when the record
        // there was skipped: nothing after it can belong to the range.
        let at_end = range.ends_at(k, q.reverse);
        keys.next();
        if at_end {
            break;
        }
    }
    if q.reverse {
        out.reverse();
    }
    let follows = stopped_early && keys.peek().is_some();
    let error = if follows {
        rocksdb::INCOMPLETE
    } else {
        rocksdb::OK
    };
    (error, out)
}

/// The keys a range request covers: from `start` to `stop`, each end inclusive or not.
struct KeyRange {
    start: Vec<u8>,
    start_inclusive: bool,
    stop: Vec<u8>,
    stop_inclusive: bool,
}

impl KeyRange {
    fn contains(&self, k: &[u8]) -> bool {
        let after_start = k > self.start.as_slice() || (self.start_inclusive && k == self.start);
        let before_stop = k < self.stop.as_slice() || (self.stop_inclusive && k == self.stop);
        after_start && before_stop
    }

    /// Whether `k` lies on the start's side of the range (the start itself when exclusive).
    fn precedes(&self, k: &[u8]) -> bool {
        k < self.start.as_slice() || (!self.start_inclusive && k == self.start)
    }

    /// Whether `k` is the last key of the range in scan order: an inclusive end a scan stops
    /// on without looking further.
    fn ends_at(&self, k: &[u8], reverse: bool) -> bool {
        if reverse {
            self.start_inclusive && k == self.start
        } else {
            self.stop_inclusive && k == self.stop
        }
    }
}

/// The key range of a range request, narrowed by a prefix filter; `None` when empty.
fn range(q: &MultiGetRequest) -> Option<KeyRange> {
    let prefix = key::composite_key(&q.hash_key.0, b"").ok()?;
    let mut start = prefix.clone();
    start.extend_from_slice(&q.start_sortkey.0);
    let mut start_inclusive = q.start_inclusive;
    let mut stop = if q.stop_sortkey.0.is_empty() {
        (next_blob(&prefix), false)
    } else {
        let mut s = prefix.clone();
        s.extend_from_slice(&q.stop_sortkey.0);
        (s, q.stop_inclusive)
    };
    if q.sort_key_filter_type == FilterType::FT_MATCH_PREFIX
        && !q.sort_key_filter_pattern.0.is_empty()
    {
        let mut p = prefix;
        p.extend_from_slice(&q.sort_key_filter_pattern.0);
        if p > start {
            start.clone_from(&p);
            start_inclusive = true;
        }
        let end = next_blob(&p);
        if end < stop.0 || (end == stop.0 && stop.1) {
            stop = (end, false);
        }
    }
    let empty = start > stop.0 || (start == stop.0 && !(start_inclusive && stop.1));
    (!empty).then_some(KeyRange {
        start,
        start_inclusive,
        stop: stop.0,
        stop_inclusive: stop.1,
    })
}

/// The smallest key greater than every key starting with `prefix`.
fn next_blob(prefix: &[u8]) -> Vec<u8> {
    let mut n = prefix.to_vec();
    while let Some(last) = n.pop() {
        if last < 0xff {
            n.push(last + 1);
            return n;
        }
    }
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(sorts: &[&str]) -> BTreeMap<Vec<u8>, Record> {
        sorts
            .iter()
            .map(|s| {
                let rec = Record {
                    value: s.as_bytes().to_vec(),
                    timetag: 0,
                    expire_ts: 0,
                };
                (key::composite_key(b"h", s.as_bytes()).unwrap(), rec)
            })
            .chain(std::iter::once((
                key::composite_key(b"i", b"other").unwrap(),
                Record {
                    value: vec![],
                    timetag: 0,
                    expire_ts: 0,
                },
            )))
            .collect()
    }

    fn req() -> MultiGetRequest {
        MultiGetRequest {
            hash_key: Blob::new(b"h"),
            ..MultiGetRequest::default()
        }
    }

    fn names(kvs: &[KeyValue]) -> Vec<String> {
        kvs.iter()
            .map(|kv| String::from_utf8(kv.key.0.clone()).unwrap())
            .collect()
    }

    #[test]
    fn ranges_filters_limits_and_reverse_follow_the_server() {
        let d = data(&["", "a1", "a2", "b1", "b2", "c1"]);
        let mut all = req();
        all.max_kv_count = 0;
        all.start_inclusive = true; // as the clients' options default
        let cases: Vec<(&str, MultiGetRequest, i32, Vec<&str>)> = vec![
            (
                "the whole hash key",
                all.clone(),
                rocksdb::OK,
                vec!["", "a1", "a2", "b1", "b2", "c1"],
            ),
            (
                "an exclusive empty start skips the empty sort key",
                MultiGetRequest {
                    start_inclusive: false,
                    ..all.clone()
                },
                rocksdb::OK,
                vec!["a1", "a2", "b1", "b2", "c1"],
            ),
            (
                "listed keys: sizes count no value with no_value, no 30 MB cap",
                MultiGetRequest {
                    sort_keys: vec![Blob::new(b"a1"), Blob::new(b"b1"), Blob::new(b"c1")],
                    max_kv_size: 4,
                    no_value: true,
                    ..all.clone()
                },
                rocksdb::INCOMPLETE,
                vec!["a1", "b1"],
            ),
            (
                "a prefix filter narrows the range",
                MultiGetRequest {
                    sort_key_filter_type: FilterType::FT_MATCH_PREFIX,
                    sort_key_filter_pattern: Blob::new(b"b"),
                    ..all.clone()
                },
                rocksdb::OK,
                vec!["b1", "b2"],
            ),
            (
                "postfix",
                MultiGetRequest {
                    sort_key_filter_type: FilterType::FT_MATCH_POSTFIX,
                    sort_key_filter_pattern: Blob::new(b"1"),
                    ..all.clone()
                },
                rocksdb::OK,
                vec!["a1", "b1", "c1"],
            ),
            (
                "a count limit with keys left: incomplete",
                MultiGetRequest {
                    max_kv_count: 2,
                    ..all.clone()
                },
                rocksdb::INCOMPLETE,
                vec!["", "a1"],
            ),
            (
                "exactly the range's size: still incomplete, a key of another hash key follows",
                MultiGetRequest {
                    max_kv_count: 6,
                    ..all.clone()
                },
                rocksdb::INCOMPLETE,
                vec!["", "a1", "a2", "b1", "b2", "c1"],
            ),
            (
                "reverse: the last ones, ascending",
                MultiGetRequest {
                    max_kv_count: 2,
                    reverse: true,
                    ..all.clone()
                },
                rocksdb::INCOMPLETE,
                vec!["b2", "c1"],
            ),
            (
                "a size limit keeps the record that crosses it",
                MultiGetRequest {
                    max_kv_size: 5,
                    start_sortkey: Blob::new(b"a"),
                    ..all.clone()
                },
                rocksdb::INCOMPLETE,
                vec!["a1", "a2"],
            ),
            (
                "start and stop, exclusive stop",
                MultiGetRequest {
                    start_sortkey: Blob::new(b"a2"),
                    stop_sortkey: Blob::new(b"b2"),
                    start_inclusive: true,
                    stop_inclusive: false,
                    ..all.clone()
                },
                rocksdb::OK,
                vec!["a2", "b1"],
            ),
            (
                "listed sort keys, a missing one skipped, limited",
                MultiGetRequest {
                    sort_keys: vec![Blob::new(b"c1"), Blob::new(b"zz"), Blob::new(b"a1")],
                    max_kv_count: 1,
                    ..all.clone()
                },
                rocksdb::INCOMPLETE,
                vec!["c1"],
            ),
        ];
        check(&d, cases);
    }

    fn check(d: &BTreeMap<Vec<u8>, Record>, cases: Vec<(&str, MultiGetRequest, i32, Vec<&str>)>) {
        for (name, q, error, want) in cases {
            let (e, kvs) = rows(d, &q, 0);
            assert_eq!(
                (e, names(&kvs)),
                (error, want.iter().map(ToString::to_string).collect()),
                "{name}"
            );
        }
    }

    /// The layout of the official Python client's `test_multi_get_opt_reverse_ok`: pages of a
    /// reverse scan whose last one ends exactly on the (inclusive) start key, with another hash
    /// key sorting before the scanned one in the same partition. Upstream completes a scan on
    /// its inclusive end key before it looks at the limits, so that page is OK.
    #[test]
    fn a_scan_that_stops_on_its_inclusive_end_key_is_complete() {
        let mut d = data(&["", "a1", "a2", "b1", "b2", "c1"]);
        let before = key::composite_key(b"g", b"before").unwrap();
        d.insert(before, d.values().next().unwrap().clone());
        let range =
            |start: &str, stop: &str, start_inclusive, stop_inclusive, count| MultiGetRequest {
                start_sortkey: Blob::new(start.as_bytes()),
                stop_sortkey: Blob::new(stop.as_bytes()),
                start_inclusive,
                stop_inclusive,
                max_kv_count: count,
                ..req()
            };
        let reverse = |q: MultiGetRequest| MultiGetRequest { reverse: true, ..q };
        let cases: Vec<(&str, MultiGetRequest, i32, Vec<&str>)> = vec![
            (
                "reverse, a page before the last: incomplete",
                reverse(range("a1", "c1", true, false, 2)),
                rocksdb::INCOMPLETE,
                vec!["b1", "b2"],
            ),
            (
                "reverse, the last page ends on the inclusive start key: complete",
                reverse(range("a1", "b1", true, false, 2)),
                rocksdb::OK,
                vec!["a1", "a2"],
            ),
            (
                "reverse over the whole hash key, exactly its size: complete",
                reverse(range("", "", true, false, 6)),
                rocksdb::OK,
                vec!["", "a1", "a2", "b1", "b2", "c1"],
            ),
            (
                "reverse, an exclusive start key still follows: incomplete",
                reverse(range("a1", "b1", false, false, 1)),
                rocksdb::INCOMPLETE,
                vec!["a2"],
            ),
            (
                "forward, the page ends on the inclusive stop key: complete",
                range("a2", "b2", true, true, 3),
                rocksdb::OK,
                vec!["a2", "b1", "b2"],
            ),
            (
                "forward, an exclusive stop key still follows: incomplete",
                range("a2", "b2", true, false, 2),
                rocksdb::INCOMPLETE,
                vec!["a2", "b1"],
            ),
        ];
        check(&d, cases);
    }
}
