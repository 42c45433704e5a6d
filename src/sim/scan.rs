//! Owns the replica's scanners and the other key-range reads, as `pegasus_server_impl.cpp`
//! (v2.5.0 = master here) does them: `get_scanner` opens a scan of one partition and returns
//! its first batch, `scan` the next, `clear_scanner` drops one (no reply); `ttl` and
//! `sortkey_count`. Expired records are invisible to every read.
//!
//! Fidelity (see `fidelity.md`): batch = `batch_size` if in 1..1000, else 1000; `get_scanner`
//! examines at most 1000 records, `scan` at most a batch (skipped records count), so a batch
//! can come back short, even empty, with a live context; a full batch gets a live context
//! whenever any key follows, even past the stop key (the next `scan` then returns none and
//! −1). Contexts live on the replica server (a new primary does not know them), get a new id
//! each batch, and vanish after 5 idle minutes; an unknown id is error 1. An empty range
//! answers error 0 with context id 0 (the thrift default), as the server does. Simplified: a
//! context resumes at the next key rather than holding a snapshot.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

use super::state::{Record, State};
use crate::pegasus::base::Blob;
use crate::pegasus::key;
use crate::pegasus::messages::data::{
    rocksdb, scan_context, FilterType, GetScannerRequest, KeyValue, ScanResponse,
};

/// `rocksdb_max_iteration_count`: the largest batch, and what `get_scanner` examines at most.
pub const MAX_ITERATION: usize = 1000;
/// How long an unused scan context is kept.
pub const CONTEXT_IDLE: Duration = Duration::from_secs(300);

/// An open scanner: where it resumes and what it returns.
#[derive(Debug, Clone)]
pub struct ScanContext {
    pub app_id: i32,
    pub pidx: usize,
    /// The next key to examine (inclusive).
    pub next: Vec<u8>,
    pub stop: Vec<u8>,
    pub stop_inclusive: bool,
    pub batch: usize,
    pub opts: ScanOptions,
    pub used: Instant,
}

/// What a scanner returns of each record.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub no_value: bool,
    pub return_expire_ts: bool,
    pub only_return_count: bool,
    pub hash_filter: (FilterType, Vec<u8>),
    pub sort_filter: (FilterType, Vec<u8>),
    /// Drop records whose key hash masked by the first is not the second (the partition
    /// index): the request flag and the table env `replica.split.validate_partition_hash`.
    pub validate_hash: Option<(u64, u64)>,
}

/// Scanners of one replica server.
#[derive(Debug, Clone, Default)]
pub struct Scanners {
    next_id: i64,
    open: BTreeMap<i64, ScanContext>,
}

impl Scanners {
    /// Empty, with ids starting at a random multiple of 2³² (may be negative, as upstream's).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            next_id: ((seed & 0xffff_ffff) << 32) as i64,
            open: BTreeMap::new(),
        }
    }

    fn put(&mut self, ctx: ScanContext) -> i64 {
        let mut id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        if id == scan_context::COMPLETED || id == scan_context::NOT_EXIST {
            id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
        }
        self.open.insert(id, ctx);
        id
    }

    /// Scanners open (not idle too long).
    #[must_use]
    pub fn open_count(&self) -> usize {
        self.open
            .values()
            .filter(|c| c.used.elapsed() < CONTEXT_IDLE)
            .count()
    }

    /// Takes the context `id` out, unless unknown or idle too long.
    pub fn take(&mut self, id: i64) -> Option<ScanContext> {
        self.open.retain(|_, c| c.used.elapsed() < CONTEXT_IDLE);
        self.open.remove(&id)
    }

    /// Takes the context `id` out if the replica of partition `pidx` of `app_id` holds it:
    /// upstream keeps one context cache per replica (`pegasus_server_impl::_context_cache`).
    pub fn take_of(&mut self, id: i64, app_id: i32, pidx: usize) -> Option<ScanContext> {
        let mine = self
            .open
            .get(&id)
            .is_some_and(|c| c.app_id == app_id && c.pidx == pidx);
        if mine {
            self.take(id)
        } else {
            None
        }
    }
}

/// The batch size a request asks for.
#[must_use]
pub fn batch_of(batch_size: i32) -> usize {
    usize::try_from(batch_size)
        .ok()
        .filter(|&b| b > 0 && b < MAX_ITERATION)
        .unwrap_or(MAX_ITERATION)
}

/// What one batch found.
pub struct Batch {
    pub kvs: Vec<KeyValue>,
    pub count: usize,
    /// Where a live context resumes; `None`: completed.
    pub resume: Option<Vec<u8>>,
}

/// Reads one batch from `start` (inclusive) of `data` within `stop`.
#[must_use]
pub fn batch(
    data: &BTreeMap<Vec<u8>, Record>,
    start: &[u8],
    stop: (&[u8], bool),
    batch: usize,
    examine: usize,
    opts: &ScanOptions,
    now: u32,
) -> Batch {
    let mut out = Batch {
        kvs: Vec::new(),
        count: 0,
        resume: None,
    };
    let mut examined = 0;
    let mut keys = data.range(start.to_vec()..).peekable();
    while let Some((k, rec)) = keys.peek() {
        if out.count >= batch || examined >= examine {
            out.resume = Some((*k).clone());
            return out;
        }
        let past = k.as_slice() > stop.0 || (k.as_slice() == stop.0 && !stop.1);
        if past {
            return out;
        }
        examined += 1;
        if visible(k, rec, opts, now) {
            out.count += 1;
            if !opts.only_return_count {
                out.kvs.push(key_value(k, rec, opts));
            }
        }
        let at_stop = k.as_slice() == stop.0;
        keys.next();
        if at_stop {
            return out;
        }
    }
    out
}

fn visible(k: &[u8], rec: &Record, opts: &ScanOptions, now: u32) -> bool {
    if rec.expired(now) {
        return false;
    }
    if let Some((mask, pidx)) = opts.validate_hash {
        if key::key_hash(k) & mask != pidx {
            return false;
        }
    }
    let Some((hash_key, sort_key)) = key::split_key(k) else {
        return false;
    };
    matches(&opts.hash_filter, hash_key) && matches(&opts.sort_filter, sort_key)
}

/// `validate_filter`: an empty pattern matches everything; a shorter value never matches.
#[must_use]
pub fn matches(filter: &(FilterType, Vec<u8>), value: &[u8]) -> bool {
    let (kind, pattern) = filter;
    if pattern.is_empty() {
        return true;
    }
    if value.len() < pattern.len() {
        return false;
    }
    match *kind {
        FilterType::FT_MATCH_ANYWHERE => value.windows(pattern.len()).any(|w| w == pattern),
        FilterType::FT_MATCH_PREFIX => value.starts_with(pattern),
        FilterType::FT_MATCH_POSTFIX => value.ends_with(pattern),
        _ => true,
    }
}

fn key_value(k: &[u8], rec: &Record, opts: &ScanOptions) -> KeyValue {
    KeyValue {
        key: Blob::new(k),
        value: Blob::new(if opts.no_value {
            &[][..]
        } else {
            rec.value.as_slice()
        }),
        expire_ts_seconds: opts
            .return_expire_ts
            .then(|| i32::try_from(rec.expire_ts).unwrap_or(i32::MAX)),
    }
}

/// The filter types the server knows (`is_filter_type_supported`); others are error 4.
#[must_use]
pub fn filter_supported(f: FilterType) -> bool {
    matches!(
        f,
        FilterType::FT_NO_FILTER
            | FilterType::FT_MATCH_ANYWHERE
            | FilterType::FT_MATCH_PREFIX
            | FilterType::FT_MATCH_POSTFIX
    )
}

/// Where a scan starts: a hash-key prefix filter moves the start up to the prefix (only the
/// start: keys order by hash-key length first), which is then inclusive (`on_get_scanner`).
fn start_of(req: &GetScannerRequest) -> (Vec<u8>, bool) {
    let (start, inclusive) = (req.start_key.0.clone(), req.start_inclusive);
    let pattern = &req.hash_key_filter_pattern.0;
    if req.hash_key_filter_type != FilterType::FT_MATCH_PREFIX || pattern.is_empty() {
        return (start, inclusive);
    }
    match key::composite_key(pattern, b"") {
        Ok(prefix) if prefix > start => (prefix, true),
        _ => (start, inclusive),
    }
}

/// Opens a scanner of partition `pidx` of `app_id` on the node `scanners` belongs to and
/// reads its first batch. `validate_env`: the table's `replica.split.validate_partition_hash`.
#[allow(clippy::too_many_arguments)]
pub fn open(
    scanners: &mut Scanners,
    data: &BTreeMap<Vec<u8>, Record>,
    app_id: i32,
    pidx: usize,
    partition_count: usize,
    validate_env: bool,
    req: &GetScannerRequest,
    now: u32,
) -> ScanResponse {
    let mut resp = ScanResponse::default();
    if !filter_supported(req.hash_key_filter_type) || !filter_supported(req.sort_key_filter_type) {
        resp.error = rocksdb::INVALID_ARGUMENT;
        return resp;
    }
    let (start, start_inclusive) = start_of(req);
    let (start, stop) = (&start, &req.stop_key.0);
    let empty = start > stop || (start == stop && !(start_inclusive && req.stop_inclusive));
    if empty {
        // No context is assigned: the reply keeps the default id 0.
        return resp;
    }
    let validate = req.validate_partition_hash.unwrap_or(true) && validate_env;
    let opts = ScanOptions {
        no_value: req.no_value,
        return_expire_ts: req.return_expire_ts.unwrap_or(false),
        only_return_count: req.only_return_count.unwrap_or(false),
        hash_filter: (
            req.hash_key_filter_type,
            req.hash_key_filter_pattern.0.clone(),
        ),
        sort_filter: (
            req.sort_key_filter_type,
            req.sort_key_filter_pattern.0.clone(),
        ),
        validate_hash: validate.then(|| {
            let mask = u64::try_from(partition_count.saturating_sub(1)).unwrap_or(0);
            (mask, u64::try_from(pidx).unwrap_or(0))
        }),
    };
    let mut first = start.clone();
    if !start_inclusive {
        first.push(0); // the smallest key after `start`
    }
    let size = batch_of(req.batch_size);
    let b = batch(
        data,
        &first,
        (stop, req.stop_inclusive),
        size,
        MAX_ITERATION,
        &opts,
        now,
    );
    let ctx = ScanContext {
        app_id,
        pidx,
        next: Vec::new(),
        stop: stop.clone(),
        stop_inclusive: req.stop_inclusive,
        batch: size,
        opts,
        used: Instant::now(),
    };
    finish(scanners, ctx, b, &mut resp);
    resp
}

/// The next batch of scanner `id` of the replica (`app_id`, `pidx`) on server `node` (error 1
/// when that replica has none).
pub fn next(
    state: &mut State,
    node: usize,
    (app_id, pidx): (i32, usize),
    id: i64,
    now: u32,
) -> ScanResponse {
    let mut resp = ScanResponse::default();
    let State { nodes, apps, .. } = state;
    let scanners = &mut nodes[node].scanners;
    let Some(ctx) = scanners.take_of(id, app_id, pidx) else {
        resp.error = rocksdb::NOT_FOUND;
        return resp;
    };
    let Some(part) = apps
        .get(&ctx.app_id)
        .and_then(|a| a.partitions.get(ctx.pidx))
    else {
        resp.error = rocksdb::NOT_FOUND;
        return resp;
    };
    // A scan examines at most one batch of records, skipped ones included.
    let b = batch(
        &part.data,
        &ctx.next,
        (&ctx.stop, ctx.stop_inclusive),
        ctx.batch,
        ctx.batch,
        &ctx.opts,
        now,
    );
    resp.app_id = ctx.app_id;
    resp.partition_index = i32::try_from(ctx.pidx).unwrap_or(0);
    finish(scanners, ctx, b, &mut resp);
    resp
}

fn finish(scanners: &mut Scanners, mut ctx: ScanContext, b: Batch, resp: &mut ScanResponse) {
    resp.kvs = b.kvs;
    if ctx.opts.only_return_count {
        resp.kv_count = Some(i32::try_from(b.count).unwrap_or(i32::MAX));
    }
    resp.context_id = match b.resume {
        Some(next) => {
            ctx.next = next;
            ctx.used = Instant::now();
            scanners.put(ctx)
        }
        None => scan_context::COMPLETED,
    };
}

/// Ends a batch as a server whose iteration time limit (`rocksdb_iteration_threshold_time_ms`)
/// passed midway: error 7 with the records read until then (here: the first half), and no
/// context — the scanner is gone, its id left at 0.
pub fn out_of_time(scanners: &mut Scanners, resp: &mut ScanResponse) {
    resp.error = rocksdb::INCOMPLETE;
    resp.kvs.truncate(resp.kvs.len() / 2);
    // Ids are never -1 or -2, so this drops exactly the context the batch just saved.
    let _ = scanners.take(resp.context_id);
    resp.context_id = 0;
}

/// A record's TTL reply: (error, ttl_seconds) — −1 without TTL, error 1 when missing or
/// expired (`on_ttl`).
#[must_use]
pub fn ttl(rec: Option<&Record>, now: u32) -> (i32, i32) {
    match rec {
        Some(r) if !r.expired(now) && r.expire_ts == 0 => (rocksdb::OK, -1),
        Some(r) if !r.expired(now) => (
            rocksdb::OK,
            i32::try_from(r.expire_ts - now).unwrap_or(i32::MAX),
        ),
        _ => (rocksdb::NOT_FOUND, 0),
    }
}

/// How many live sort keys `hash_key` has (`on_sortkey_count`).
#[must_use]
pub fn sortkey_count(data: &BTreeMap<Vec<u8>, Record>, hash_key: &[u8], now: u32) -> i64 {
    let Ok(prefix) = key::composite_key(hash_key, b"") else {
        return 0;
    };
    let n = data
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(_, r)| !r.expired(now))
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}
