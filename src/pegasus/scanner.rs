//! Owns scanning a table as the official clients do: one scanner per partition (the partition
//! index as the routing hash), the whole key range `[00 00, FF FF)`, batches until the server
//! says the scan completed. A scanner lost on the server (error 1, e.g. after a primary
//! change) or a routing error restarts just after the last key received, like the Java client;
//! so does a batch the server cut short at its iteration time limit (error 7, no context).
//! A batch waits longer than that limit before it times out. A timeout, or a batch cut before
//! it read a record, halves the batch (the server examines at most a batch per `scan`); a
//! lost connection halves it for the rest of the scan (a reply over the frame cap, large
//! values); each batch that comes back whole doubles it again up to that cap. Restarts are
//! counted from the last batch that made progress.

use super::base::Blob;
use super::error::{Error, Result};
use super::messages::data::{
    rocksdb, scan_context, ClearScanner, FilterType, GetScanner, GetScannerRequest, KeyValue, Scan,
    ScanRequest, ScanResponse,
};
use super::table::TableClient;
use std::time::Duration;

/// How long a scan waits for one batch: longer than the server works on one
/// (`rocksdb_iteration_threshold_time_ms`, 30 s by default, `pegasus_server_impl_init.cpp`
/// v2.5.0), after which it answers error 7 with what it read. Waiting less gives up on batches
/// the server is still reading and asks again for the same work.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(35);

/// How a scan reads.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Records per batch (the server caps it at 1000).
    pub batch_size: i32,
    /// Keys only.
    pub no_value: bool,
    /// Each record's absolute expiry (Pegasus epoch seconds, 0 = none) in `expire_ts_seconds`.
    pub return_expire_ts: bool,
    /// How long one batch may take (`SCAN_TIMEOUT`).
    pub timeout: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            no_value: false,
            return_expire_ts: true,
            timeout: SCAN_TIMEOUT,
        }
    }
}

/// One partition's scan, batch by batch.
#[derive(Debug)]
pub struct PartitionScanner {
    client: TableClient,
    pidx: i32,
    opts: ScanOptions,
    /// Records asked per batch now, and the most asked (lowered by a lost connection).
    batch: i32,
    ceiling: i32,
    /// The server's scanner, while one is open, and the batch size it was opened with.
    context: Option<i64>,
    opened_with: i32,
    /// The last key returned: a restart begins after it.
    last_key: Option<Vec<u8>>,
    done: bool,
    /// Calls the replica refused as too busy (`ERR_BUSY`), over the scan.
    busy: u64,
}

/// Restarts allowed in one call before giving up (with the backoff: about 10 s).
const RESTARTS: u32 = 8;

/// The pause before restart `n` (from 0): 100 ms doubling, at most 2 s.
fn backoff(n: u32) -> std::time::Duration {
    std::time::Duration::from_millis(100u64 << n.min(5)).min(std::time::Duration::from_secs(2))
}

impl PartitionScanner {
    /// A scan of partition `pidx` of `client`'s table.
    #[must_use]
    pub fn new(client: TableClient, pidx: i32, opts: ScanOptions) -> Self {
        Self {
            client,
            pidx,
            opts,
            batch: opts.batch_size.max(1),
            ceiling: opts.batch_size.max(1),
            context: None,
            opened_with: 0,
            last_key: None,
            done: false,
            busy: 0,
        }
    }

    /// Calls the replica refused as too busy (`ERR_BUSY`) so far.
    #[must_use]
    pub fn busy_refusals(&self) -> u64 {
        self.busy
    }

    /// The same scan, going on just after `key` (a scan resumed where another stopped).
    #[must_use]
    pub fn resume_after(mut self, key: Vec<u8>) -> Self {
        self.last_key = Some(key);
        self
    }

    /// Records asked per batch now.
    #[must_use]
    pub fn batch_size(&self) -> i32 {
        self.batch
    }

    /// The last key returned, if any.
    #[must_use]
    pub fn last_key(&self) -> Option<&[u8]> {
        self.last_key.as_deref()
    }

    /// The next batch of records (full composite keys), or `None` once the partition is
    /// scanned. A batch may be empty while the scan goes on.
    ///
    /// # Errors
    /// Routing or transport failure past the table client's retries, or a storage error.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<KeyValue>>> {
        if self.done {
            return Ok(None);
        }
        // Counted from the last progress: each call returns one.
        let mut restarts = 0;
        loop {
            let resp = match self.context {
                Some(id) => {
                    let req = ScanRequest { context_id: id };
                    self.client
                        .call_once_within::<Scan>(self.hash(), &req, self.opts.timeout)
                        .await
                }
                None => {
                    let req = self.open_request();
                    self.opened_with = self.batch;
                    self.client
                        .call_once_within::<GetScanner>(self.hash(), &req, self.opts.timeout)
                        .await
                }
            };
            match resp {
                // Past the restarts, the server's answer is the error (`accept`).
                Ok(r)
                    if r.error == rocksdb::NOT_FOUND
                        && self.context.is_some()
                        && restarts < RESTARTS =>
                {
                    // The server no longer knows the scanner: start again after the last key.
                    self.context = None;
                }
                Ok(r) if r.error == rocksdb::INCOMPLETE && restarts < RESTARTS => {
                    // The server's iteration time limit passed: what it read is good, its
                    // scanner is gone. Go on after the last record; no record is no progress,
                    // so ask for less and give the slow server a moment.
                    self.context = None;
                    if let Some(last) = r.kvs.last() {
                        self.last_key = Some(last.key.0.clone());
                        return Ok(Some(r.kvs));
                    }
                    self.shrink();
                    tokio::time::sleep(backoff(restarts)).await;
                }
                Ok(r) => return self.accept(r).await.map(Some),
                // A throttled replica refuses before it looks at the scanner: ask it again.
                Err(e) if e.is(super::base::err::BUSY) && restarts < RESTARTS => {
                    self.busy += 1;
                    tokio::time::sleep(backoff(restarts)).await;
                }
                Err(e) if restartable(&e) && restarts < RESTARTS => {
                    match e {
                        // A reply over the frame cap (large values) breaks the connection:
                        // smaller batches get through, and larger ones never will.
                        Error::ConnectionLost { .. } => {
                            self.shrink();
                            self.ceiling = self.batch;
                        }
                        // A batch the server did not answer in time: ask for less.
                        Error::Timeout { .. } => self.shrink(),
                        _ => {}
                    }
                    // It may still be open there (a timeout): release it, best effort.
                    self.release().await;
                    pause_before_retry(&self.client, restarts).await;
                }
                Err(e) => return Err(e),
            }
            restarts += 1;
        }
    }

    /// Halves the batch (at least 1).
    fn shrink(&mut self) {
        self.batch = (self.batch / 2).max(1);
    }

    /// After a batch that came back whole: doubles the batch up to the cap. An open scanner
    /// keeps the size it was opened with, so it is released and the next batch opens anew.
    async fn grow(&mut self) {
        if self.batch >= self.ceiling {
            return;
        }
        self.batch = self.batch.saturating_mul(2).min(self.ceiling);
        if self.context.is_some() && self.opened_with < self.batch {
            self.release().await;
        }
    }

    /// Releases the server's scanner if one is open (one-way: no reply is awaited).
    async fn release(&mut self) {
        if let Some(id) = self.context.take() {
            self.client
                .send_oneway::<ClearScanner>(self.hash(), &id)
                .await;
        }
    }

    fn hash(&self) -> u64 {
        u64::try_from(self.pidx).unwrap_or(0)
    }

    fn open_request(&self) -> GetScannerRequest {
        let (start_key, start_inclusive) = match &self.last_key {
            Some(k) => (k.clone(), false),
            None => (vec![0, 0], true),
        };
        GetScannerRequest {
            start_key: Blob(start_key),
            stop_key: Blob(vec![0xff, 0xff]),
            start_inclusive,
            stop_inclusive: false,
            batch_size: self.batch,
            no_value: self.opts.no_value,
            hash_key_filter_type: FilterType::FT_NO_FILTER,
            hash_key_filter_pattern: Blob::default(),
            sort_key_filter_type: FilterType::FT_NO_FILTER,
            sort_key_filter_pattern: Blob::default(),
            validate_partition_hash: Some(true),
            return_expire_ts: Some(self.opts.return_expire_ts),
            full_scan: Some(true),
            only_return_count: None,
        }
    }

    async fn accept(&mut self, r: ScanResponse) -> Result<Vec<KeyValue>> {
        self.client.storage_ok::<Scan>(r.error)?;
        if let Some(last) = r.kvs.last() {
            self.last_key = Some(last.key.0.clone());
        }
        if r.context_id == scan_context::COMPLETED || r.context_id == scan_context::NOT_EXIST {
            self.context = None;
            self.done = true;
        } else {
            self.context = Some(r.context_id);
            self.grow().await;
        }
        Ok(r.kvs)
    }

    /// Releases the server's scanner if one is open (one-way: no reply is awaited).
    pub async fn close(mut self) {
        self.release().await;
    }
}

impl Drop for PartitionScanner {
    /// A scanner dropped with its server scanner open (its task aborted, an error on the way
    /// out) releases it in the background, so it does not linger 5 minutes on the server.
    fn drop(&mut self) {
        let Some(id) = self.context.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, hash) = (self.client.clone(), self.hash());
        rt.spawn(async move { client.send_oneway::<ClearScanner>(hash, &id).await });
    }
}

/// Backs off (a busy, silent, splitting or moving partition needs a moment), then refreshes
/// the routing (a primary may have moved).
async fn pause_before_retry(client: &TableClient, attempt: u32) {
    tokio::time::sleep(backoff(attempt)).await;
    let _ = client.refresh().await;
}

/// Errors after which a scan restarts from its last key on a fresh routing: a read is safe to
/// repeat, so timeouts, a read-throttled replica (`ERR_BUSY`, `replica_throttle.cpp`) and a
/// splitting partition count as well as a moved primary.
fn restartable(e: &Error) -> bool {
    use super::base::err;
    matches!(
        e,
        Error::ConnectionLost { .. } | Error::Connect { .. } | Error::Timeout { .. }
    ) || [
        err::INVALID_STATE,
        err::OBJECT_NOT_FOUND,
        err::BUSY,
        err::SPLITTING,
    ]
    .iter()
    .any(|code| e.is(code))
}

/// Reads one record with its expiry (a scanner over exactly `key`), `None` when absent or
/// expired. Used where a record must be re-read exactly as a scan sees it.
///
/// # Errors
/// Routing, transport or storage failure.
pub async fn read_one(client: &TableClient, key: &[u8]) -> Result<Option<KeyValue>> {
    let req = GetScannerRequest {
        start_key: Blob(key.to_vec()),
        stop_key: Blob(key.to_vec()),
        start_inclusive: true,
        stop_inclusive: true,
        batch_size: 1,
        no_value: false,
        hash_key_filter_type: FilterType::FT_NO_FILTER,
        hash_key_filter_pattern: Blob::default(),
        sort_key_filter_type: FilterType::FT_NO_FILTER,
        sort_key_filter_pattern: Blob::default(),
        validate_partition_hash: Some(true),
        return_expire_ts: Some(true),
        full_scan: None,
        only_return_count: None,
    };
    let hash = super::key::key_hash(key);
    let mut attempt = 0;
    let resp = loop {
        match client.call_once::<GetScanner>(hash, &req).await {
            // A batch cut at the iteration time limit says nothing about the key: ask again.
            Ok(r) if r.error == rocksdb::INCOMPLETE && attempt < RESTARTS => {
                tokio::time::sleep(backoff(attempt)).await;
            }
            Ok(r) => break r,
            Err(e) if restartable(&e) && attempt < RESTARTS => {
                pause_before_retry(client, attempt).await;
            }
            Err(e) => return Err(e),
        }
        attempt += 1;
    };
    client.storage_ok::<GetScanner>(resp.error)?;
    if resp.context_id != scan_context::COMPLETED && resp.context_id != scan_context::NOT_EXIST {
        client
            .send_oneway::<ClearScanner>(hash, &resp.context_id)
            .await;
    }
    Ok(resp.kvs.into_iter().find(|kv| kv.key.0 == key))
}
