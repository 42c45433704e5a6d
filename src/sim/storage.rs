//! Owns applying writes to a partition: one decree per write, the duplication log, and
//! timetags (`timestamp << 8 | cluster_id << 1 | is_delete`), plus applying shipped
//! duplicate entries on a follower.

use super::state::{App, Mutation, Record, EMPTY_WRITE};
use crate::pegasus::base::Blob;
use crate::pegasus::frame::Request;
use crate::pegasus::key;
use crate::pegasus::messages::data::{
    DuplicateEntry, MultiPut, MultiPutRequest, MultiRemove, MultiRemoveRequest, Put, Remove,
    UpdateRequest,
};
use crate::pegasus::messages::Rpc;
use crate::pegasus::thrift::{Reader, Wire};

/// A decoded client write.
#[derive(Debug, Clone)]
pub enum Write {
    Put(UpdateRequest),
    Remove(Blob),
    MultiPut(MultiPutRequest),
    MultiRemove(MultiRemoveRequest),
}

impl Write {
    /// Decodes the args of a write RPC named `code`; `None` for other RPCs or bad args.
    #[must_use]
    pub fn decode(code: &str, args: &[u8]) -> Option<Self> {
        let mut r = Reader::new(args);
        match code {
            Put::NAME => UpdateRequest::read(&mut r).ok().map(Self::Put),
            Remove::NAME => Blob::read(&mut r).ok().map(Self::Remove),
            MultiPut::NAME => MultiPutRequest::read(&mut r).ok().map(Self::MultiPut),
            MultiRemove::NAME => MultiRemoveRequest::read(&mut r).ok().map(Self::MultiRemove),
            _ => None,
        }
    }

    /// The RPC name of this write.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Put(_) => Put::NAME,
            Self::Remove(_) => Remove::NAME,
            Self::MultiPut(_) => MultiPut::NAME,
            Self::MultiRemove(_) => MultiRemove::NAME,
        }
    }

    /// The routing hash duplication uses for this write.
    #[must_use]
    pub fn hash(&self) -> u64 {
        match self {
            Self::Put(u) => key::key_hash(&u.key.0),
            Self::Remove(k) => key::key_hash(&k.0),
            Self::MultiPut(m) => key::crc64(&m.hash_key.0),
            Self::MultiRemove(m) => key::crc64(&m.hash_key.0),
        }
    }

    fn is_delete(&self) -> bool {
        matches!(self, Self::Remove(_) | Self::MultiRemove(_))
    }
}

/// The timetag stored with a record.
#[must_use]
pub fn timetag(timestamp_us: i64, cluster_id: i8, is_delete: bool) -> u64 {
    let ts = (timestamp_us as u64) & ((1 << 56) - 1);
    (ts << 8) | (u64::from(cluster_id as u8) << 1) | u64::from(is_delete)
}

/// Applies a client write to partition `pidx` as one new decree; returns the decree.
pub fn apply_client_write(
    app: &mut App,
    pidx: usize,
    req: &Request,
    write: &Write,
    cluster_id: i8,
) -> i64 {
    let ts = super::state::now_us();
    let logging = app.is_duplicating();
    let default_ttl = default_ttl(app);
    let p = &mut app.partitions[pidx];
    p.last_committed += 1;
    p.last_prepare = tokio::time::Instant::now();
    let decree = p.last_committed;
    apply(
        &mut p.data,
        write,
        timetag(ts, cluster_id, write.is_delete()),
        default_ttl,
    );
    if logging {
        p.log.push_back(Mutation {
            decree,
            timestamp_us: ts,
            code: write.code(),
            raw: req.raw_message(),
            hash: write.hash(),
        });
    }
    decree
}

/// A write that takes a decree without changing data as the log sees it (a refused
/// conditional write, or a non-idempotent one, which is never shipped): returns the decree.
pub fn take_decree(app: &mut App, pidx: usize) -> i64 {
    apply_empty_write(app, pidx);
    app.partitions[pidx].last_committed
}

/// The primary's empty write (group check): a decree with no data, logged but never shipped.
pub fn apply_empty_write(app: &mut App, pidx: usize) {
    let logging = app.is_duplicating();
    let p = &mut app.partitions[pidx];
    p.last_committed += 1;
    p.last_prepare = tokio::time::Instant::now();
    if logging {
        p.log.push_back(Mutation {
            decree: p.last_committed,
            timestamp_us: super::state::now_us(),
            code: EMPTY_WRITE,
            raw: Vec::new(),
            hash: 0,
        });
    }
}

/// The table's `default_ttl` env in seconds (0: none), as `update_default_ttl` reads it.
fn default_ttl(app: &App) -> u32 {
    app.envs
        .get("default_ttl")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn apply(
    data: &mut std::collections::BTreeMap<Vec<u8>, Record>,
    write: &Write,
    timetag: u64,
    default_ttl: u32,
) {
    // A put without expiry expires `default_ttl` after it is applied, on this cluster's clock
    // (`rocksdb_wrapper::db_expire_ts`): a follower's copy expires later by the lag.
    let expire_ts = |seconds: i32| match expire_ts(seconds) {
        0 if default_ttl > 0 => super::state::pegasus_now().saturating_add(default_ttl),
        ts => ts,
    };
    match write {
        Write::Put(u) => {
            data.insert(
                u.key.0.clone(),
                Record {
                    value: u.value.0.clone(),
                    timetag,
                    expire_ts: expire_ts(u.expire_ts_seconds),
                },
            );
        }
        Write::Remove(k) => {
            data.remove(&k.0);
        }
        Write::MultiRemove(m) => {
            let _ = super::atomic::multi_remove(data, m);
        }
        Write::MultiPut(m) => {
            for kv in &m.kvs {
                if let Ok(k) = key::composite_key(&m.hash_key.0, &kv.key.0) {
                    data.insert(
                        k,
                        Record {
                            value: kv.value.0.clone(),
                            timetag,
                            expire_ts: expire_ts(m.expire_ts_seconds),
                        },
                    );
                }
            }
        }
    }
}

/// A request's `expire_ts_seconds` as stored: the server casts it to unsigned, so a negative
/// value is a far-off expiry (and gets no `default_ttl`).
pub(super) fn expire_ts(seconds: i32) -> u32 {
    u32::from_ne_bytes(seconds.to_ne_bytes())
}

/// Why a follower refused a duplicate entry: rocksdb code and hint.
pub type EntryError = (i32, String);

/// Applies shipped entries on a follower partition as one decree (the receiver of
/// `RPC_RRDB_RRDB_DUPLICATE`). Stops at the first bad entry, as the server does.
///
/// # Errors
/// Error 4 for an unconfigured or own cluster id, or an entry that cannot be decoded.
pub fn apply_duplicate(
    app: &mut App,
    pidx: usize,
    entries: &[DuplicateEntry],
    own_id: i8,
    known_id: impl Fn(i8) -> bool,
) -> Result<i64, EntryError> {
    let default_ttl = default_ttl(app);
    let logging = app.is_duplicating();
    let p = &mut app.partitions[pidx];
    p.last_committed += 1;
    p.last_prepare = tokio::time::Instant::now();
    if logging {
        // Logged as one DUPLICATE mutation, which this table's own duplications skip.
        let raw: Vec<u8> = entries
            .iter()
            .filter_map(|e| e.raw_message.as_ref())
            .flat_map(|b| b.0.iter().copied())
            .collect();
        p.log.push_back(Mutation {
            decree: p.last_committed,
            timestamp_us: super::state::now_us(),
            code: super::state::DUPLICATE_WRITE,
            raw,
            hash: 0,
        });
    }
    for e in entries {
        let id = e.cluster_id.unwrap_or(0);
        if id == own_id {
            return Err((4, "self-duplicating".into()));
        }
        if !known_id(id) {
            return Err((4, "request cluster id is unconfigured".into()));
        }
        let code = e
            .task_code
            .as_ref()
            .map(|t| t.0.as_str())
            .unwrap_or_default();
        let raw = e
            .raw_message
            .as_ref()
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        let write =
            decode_raw(code, raw).ok_or_else(|| (4, format!("unrecognized task code {code}")))?;
        apply(
            &mut p.data,
            &write,
            timetag(e.timestamp.unwrap_or(0), id, write.is_delete()),
            default_ttl,
        );
    }
    Ok(p.last_committed)
}

/// Decodes a logged raw message (wrapper field header, value, STOP).
fn decode_raw(code: &str, raw: &[u8]) -> Option<Write> {
    let value = raw.get(3..raw.len().checked_sub(1)?)?;
    Write::decode(code, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetag_packs_timestamp_cluster_and_delete_flag() {
        assert_eq!(timetag(1, 2, true), (1 << 8) | (2 << 1) | 1);
        assert_eq!(timetag(5, 1, false), (5 << 8) | 2);
    }
}
