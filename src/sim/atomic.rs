//! Owns the writes that read before they write — `incr`, `check_and_set`,
//! `check_and_mutate` — and `multi_remove`, as `pegasus_write_service_impl.h` (v2.5.0) applies
//! them to a partition: what they change and what they answer. Every one takes a decree, also
//! when it refuses (the server writes an empty record then). While a table is a duplication
//! master the first three never get here (`ERR_OPERATION_DISABLED`, `replica_2pc.cpp`).

use std::collections::BTreeMap;

use super::state::Record;
use crate::pegasus::key;
use crate::pegasus::messages::data::{
    rocksdb, CasCheckType, CheckAndMutateRequest, CheckAndSetRequest, IncrRequest,
    MultiRemoveRequest, MutateOperation,
};

type Data = BTreeMap<Vec<u8>, Record>;

/// A live record's value (missing or expired: none).
fn live<'a>(data: &'a Data, k: &[u8], now: u32) -> Option<&'a Record> {
    data.get(k).filter(|r| !r.expired(now))
}

/// `multi_remove`: (error, count). The count is the number of sort keys asked for, whether
/// they existed or not; none asked for is error 4.
pub fn multi_remove(data: &mut Data, q: &MultiRemoveRequest) -> (i32, i64) {
    if q.sort_keys.is_empty() {
        return (rocksdb::INVALID_ARGUMENT, 0);
    }
    for s in &q.sort_keys {
        if let Ok(k) = key::composite_key(&q.hash_key.0, &s.0) {
            data.remove(&k);
        }
    }
    (
        rocksdb::OK,
        i64::try_from(q.sort_keys.len()).unwrap_or(i64::MAX),
    )
}

/// `incr`: (error, new_value). A missing or expired key starts from 0; an empty value is 0;
/// anything else must be a whole int64 (`strtoll` base 0) or it is error 4; overflow is error
/// 4 answering the old value. TTL: request 0 keeps it, < 0 clears it, > 0 sets it.
pub fn incr(data: &mut Data, q: &IncrRequest, now: u32, timetag: u64) -> (i32, i64) {
    let request_ts = u32::try_from(q.expire_ts_seconds).unwrap_or(0);
    let (old, expire_ts) = match live(data, &q.key.0, now) {
        None => (0, request_ts),
        Some(r) => {
            let old = if r.value.is_empty() {
                Some(0)
            } else {
                parse_int64(&r.value)
            };
            let Some(old) = old else {
                return (rocksdb::INVALID_ARGUMENT, 0);
            };
            let keep = match q.expire_ts_seconds {
                0 => r.expire_ts,
                t if t < 0 => 0,
                _ => request_ts,
            };
            (old, keep)
        }
    };
    let Some(new) = old.checked_add(q.increment) else {
        return (rocksdb::INVALID_ARGUMENT, old);
    };
    let rec = Record {
        value: new.to_string().into_bytes(),
        timetag,
        expire_ts,
    };
    data.insert(q.key.0.clone(), rec);
    (rocksdb::OK, new)
}

/// What a check found: the value it read (if live), and whether it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    pub value: Option<Vec<u8>>,
    /// `None`: an integer check could not parse the value or operand (error 4).
    pub passed: Option<bool>,
}

/// Reads the check key and runs the check (`validate_check`); `None` for an unknown type.
#[must_use]
fn check(
    data: &Data,
    hash_key: &[u8],
    sort_key: &[u8],
    kind: CasCheckType,
    operand: &[u8],
    now: u32,
) -> Option<Checked> {
    let k = key::composite_key(hash_key, sort_key).ok()?;
    let value = live(data, &k, now).map(|r| r.value.clone());
    let passed = passes(kind, value.as_deref(), operand)?;
    Some(Checked { value, passed })
}

/// Whether `value` passes check `kind` against `operand`: `Some(None)` when an integer check
/// cannot parse; `None` for an unknown check type.
fn passes(kind: CasCheckType, value: Option<&[u8]>, operand: &[u8]) -> Option<Option<bool>> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    use CasCheckType as C;
    let exists = value.is_some();
    let v = value.unwrap_or_default();
    let order = |o: std::cmp::Ordering, kind: C, base: i32| match kind.value() - base {
        0 => o == Less,
        1 => o != Greater,
        2 => o == Equal,
        3 => o != Less,
        _ => o == Greater,
    };
    Some(Some(match kind {
        C::CT_NO_CHECK => true,
        C::CT_VALUE_NOT_EXIST => !exists,
        C::CT_VALUE_NOT_EXIST_OR_EMPTY => v.is_empty(),
        C::CT_VALUE_EXIST => exists,
        C::CT_VALUE_NOT_EMPTY => !v.is_empty(),
        C::CT_VALUE_MATCH_ANYWHERE | C::CT_VALUE_MATCH_PREFIX | C::CT_VALUE_MATCH_POSTFIX => {
            exists
                && (operand.is_empty()
                    || (v.len() >= operand.len()
                        && match kind {
                            C::CT_VALUE_MATCH_ANYWHERE => {
                                v.windows(operand.len()).any(|w| w == operand)
                            }
                            C::CT_VALUE_MATCH_PREFIX => v.starts_with(operand),
                            _ => v.ends_with(operand),
                        }))
        }
        C::CT_VALUE_BYTES_LESS
        | C::CT_VALUE_BYTES_LESS_OR_EQUAL
        | C::CT_VALUE_BYTES_EQUAL
        | C::CT_VALUE_BYTES_GREATER_OR_EQUAL
        | C::CT_VALUE_BYTES_GREATER => exists && order(v.cmp(operand), kind, 8),
        C::CT_VALUE_INT_LESS
        | C::CT_VALUE_INT_LESS_OR_EQUAL
        | C::CT_VALUE_INT_EQUAL
        | C::CT_VALUE_INT_GREATER_OR_EQUAL
        | C::CT_VALUE_INT_GREATER => {
            if !exists {
                false
            } else {
                let (Some(a), Some(b)) = (parse_int64(v), parse_int64(operand)) else {
                    return Some(None);
                };
                order(a.cmp(&b), kind, 13)
            }
        }
        C::Unknown(_) => return None,
    }))
}

/// What a conditional write answers: (error, the check's value if it is to be returned).
pub type CasAnswer = (i32, Option<Option<Vec<u8>>>);

/// The check's fields, shared by `check_and_set` and `check_and_mutate`.
struct Condition<'a> {
    hash_key: &'a [u8],
    sort_key: &'a [u8],
    kind: CasCheckType,
    operand: &'a [u8],
    return_value: bool,
}

/// Runs `cond` and, if it passes, `write`; answers error 13 when it fails and 4 when it cannot
/// be evaluated (an integer that does not parse, an unknown check type).
fn when_checked(
    data: &mut Data,
    cond: &Condition,
    now: u32,
    write: impl FnOnce(&mut Data),
) -> CasAnswer {
    let Some(c) = check(
        data,
        cond.hash_key,
        cond.sort_key,
        cond.kind,
        cond.operand,
        now,
    ) else {
        return (rocksdb::INVALID_ARGUMENT, None);
    };
    let returned = cond.return_value.then(|| c.value.clone());
    match c.passed {
        Some(true) => {
            write(data);
            (rocksdb::OK, returned)
        }
        Some(false) => (rocksdb::TRY_AGAIN, returned),
        None => (rocksdb::INVALID_ARGUMENT, returned),
    }
}

/// A record written at `timetag` with an absolute expiry (0: none), cast as the server casts it.
fn record(value: &[u8], timetag: u64, expire_ts_seconds: i32) -> Record {
    Record {
        value: value.to_vec(),
        timetag,
        expire_ts: super::storage::expire_ts(expire_ts_seconds),
    }
}

/// `check_and_set`: writes the set key if the check passes.
pub fn check_and_set(data: &mut Data, q: &CheckAndSetRequest, now: u32, timetag: u64) -> CasAnswer {
    let cond = Condition {
        hash_key: &q.hash_key.0,
        sort_key: &q.check_sort_key.0,
        kind: q.check_type,
        operand: &q.check_operand.0,
        return_value: q.return_check_value,
    };
    let sort = if q.set_diff_sort_key {
        &q.set_sort_key.0
    } else {
        &q.check_sort_key.0
    };
    when_checked(data, &cond, now, |data| {
        if let Ok(k) = key::composite_key(&q.hash_key.0, sort) {
            data.insert(k, record(&q.set_value.0, timetag, q.set_expire_ts_seconds));
        }
    })
}

/// `check_and_mutate`: applies every put and delete, in order, if the check passes. An empty
/// list, an unknown operation or check type is error 4 before anything is read.
pub fn check_and_mutate(
    data: &mut Data,
    q: &CheckAndMutateRequest,
    now: u32,
    timetag: u64,
) -> CasAnswer {
    let bad_op = q.mutate_list.iter().any(|m| {
        !matches!(
            m.operation,
            MutateOperation::MO_PUT | MutateOperation::MO_DELETE
        )
    });
    if q.mutate_list.is_empty() || bad_op {
        return (rocksdb::INVALID_ARGUMENT, None);
    }
    let cond = Condition {
        hash_key: &q.hash_key.0,
        sort_key: &q.check_sort_key.0,
        kind: q.check_type,
        operand: &q.check_operand.0,
        return_value: q.return_check_value,
    };
    when_checked(data, &cond, now, |data| {
        for m in &q.mutate_list {
            let Ok(k) = key::composite_key(&q.hash_key.0, &m.sort_key.0) else {
                continue;
            };
            if m.operation == MutateOperation::MO_PUT {
                data.insert(k, record(&m.value.0, timetag, m.set_expire_ts_seconds));
            } else {
                data.remove(&k);
            }
        }
    })
}

/// `dsn::buf2int64`: `strtoll` base 0 over the whole buffer (leading spaces, a sign, `0x` hex,
/// `0` octal), within int64.
#[must_use]
pub fn parse_int64(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?.trim_start();
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, body) = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, hex)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pegasus::base::Blob;

    #[test]
    fn integers_parse_as_strtoll_base_0_over_the_whole_value() {
        let cases: [(&str, Option<i64>); 9] = [
            ("42", Some(42)),
            ("  -7", Some(-7)),
            ("0x1F", Some(31)),
            ("017", Some(15)),
            ("0", Some(0)),
            ("12a", None),
            ("", None),
            ("9223372036854775808", None),
            ("-9223372036854775808", Some(i64::MIN)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_int64(text.as_bytes()), want, "{text:?}");
        }
    }

    fn put(data: &mut Data, sort: &str, value: &str) {
        let rec = Record {
            value: value.as_bytes().to_vec(),
            timetag: 0,
            expire_ts: 0,
        };
        data.insert(key::composite_key(b"h", sort.as_bytes()).unwrap(), rec);
    }

    #[test]
    fn incr_starts_from_nothing_refuses_text_and_overflow() {
        let mut d = Data::new();
        let k = key::composite_key(b"h", b"n").unwrap();
        let req = |inc| IncrRequest {
            key: Blob(k.clone()),
            increment: inc,
            expire_ts_seconds: 0,
        };
        assert_eq!(incr(&mut d, &req(5), 0, 0), (rocksdb::OK, 5));
        assert_eq!(incr(&mut d, &req(-2), 0, 0), (rocksdb::OK, 3));
        assert_eq!(
            incr(&mut d, &req(i64::MAX), 0, 0),
            (rocksdb::INVALID_ARGUMENT, 3)
        );
        put(&mut d, "n", "text");
        assert_eq!(incr(&mut d, &req(1), 0, 0), (rocksdb::INVALID_ARGUMENT, 0));
    }

    #[test]
    fn checks_follow_each_type() {
        use CasCheckType as C;
        type Case<'a> = (C, Option<&'a [u8]>, &'a [u8], Option<Option<bool>>);
        let cases: Vec<Case> = vec![
            (C::CT_VALUE_NOT_EXIST, None, b"", Some(Some(true))),
            (
                C::CT_VALUE_NOT_EXIST_OR_EMPTY,
                Some(b""),
                b"",
                Some(Some(true)),
            ),
            (C::CT_VALUE_NOT_EMPTY, Some(b""), b"", Some(Some(false))),
            (
                C::CT_VALUE_MATCH_PREFIX,
                Some(b"abc"),
                b"ab",
                Some(Some(true)),
            ),
            (
                C::CT_VALUE_MATCH_POSTFIX,
                Some(b"abc"),
                b"ab",
                Some(Some(false)),
            ),
            (C::CT_VALUE_MATCH_ANYWHERE, None, b"", Some(Some(false))),
            (
                C::CT_VALUE_BYTES_LESS,
                Some(b"abc"),
                b"abd",
                Some(Some(true)),
            ),
            (
                C::CT_VALUE_BYTES_GREATER_OR_EQUAL,
                Some(b"abc"),
                b"abc",
                Some(Some(true)),
            ),
            (C::CT_VALUE_INT_GREATER, Some(b"10"), b"9", Some(Some(true))),
            (C::CT_VALUE_INT_LESS, Some(b"ten"), b"9", Some(None)),
            (C::Unknown(18), Some(b"x"), b"", None),
        ];
        for (kind, value, operand, want) in cases {
            assert_eq!(passes(kind, value, operand), want, "{kind:?}");
        }
    }

    #[test]
    fn a_failed_check_writes_nothing_and_says_try_again() {
        let mut d = Data::new();
        put(&mut d, "c", "1");
        let q = CheckAndSetRequest {
            hash_key: Blob::new(b"h"),
            check_sort_key: Blob::new(b"c"),
            check_type: CasCheckType::CT_VALUE_NOT_EXIST,
            set_value: Blob::new(b"new"),
            return_check_value: true,
            ..CheckAndSetRequest::default()
        };
        assert_eq!(
            check_and_set(&mut d, &q, 0, 0),
            (rocksdb::TRY_AGAIN, Some(Some(b"1".to_vec())))
        );
        let q = CheckAndSetRequest {
            check_type: CasCheckType::CT_VALUE_EXIST,
            ..q
        };
        assert_eq!(check_and_set(&mut d, &q, 0, 0).0, rocksdb::OK);
        let k = key::composite_key(b"h", b"c").unwrap();
        assert_eq!(d[&k].value, b"new");
    }
}
