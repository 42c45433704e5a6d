//! Owns scanning a table as the official clients do: one scanner per partition (the partition
//! index as the routing hash), the whole key range `[00 00, FF FF)`, batches until the server
//! says the scan completed. A scanner lost on the server (error 1, e.g. after a primary
//! change) or a routing error restarts just after the last key received, like the Java client;
//! so does a batch the server cut short at its iteration time limit (error 7, no context).
//! A lost connection halves the batch for the rest of the scan: a reply over the frame cap
//! (large values) breaks it too.

use super::base::Blob;
use super::error::{Error, Result};
use super::messages::data::{
    rocksdb, scan_context, ClearScanner, FilterType, GetScanner, GetScannerRequest, KeyValue, Scan,
    ScanRequest, ScanResponse,
};
use super::table::TableClient;

/// How a scan reads.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Records per batch (the server caps it at 1000).
    pub batch_size: i32,
    /// Keys only.
    pub no_value: bool,
    /// Each record's absolute expiry (Pegasus epoch seconds, 0 = none) in `expire_ts_seconds`.
    pub return_expire_ts: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            no_value: false,
            return_expire_ts: true,
        }
    }
}

/// One partition's scan, batch by batch.
#[derive(Debug)]
pub struct PartitionScanner {
    client: TableClient,
    pidx: i32,
    opts: ScanOptions,
    /// The server's scanner, while one is open.
    context: Option<i64>,
    /// The last key returned: a restart begins after it.
    last_key: Option<Vec<u8>>,
    done: bool,
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
            context: None,
            last_key: None,
            done: false,
        }
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
        let mut restarts = 0;
        loop {
            let resp = match self.context {
                Some(id) => {
                    let req = ScanRequest { context_id: id };
                    self.client.call_once::<Scan>(self.hash(), &req).await
                }
                None => {
                    let req = self.open_request();
                    self.client.call_once::<GetScanner>(self.hash(), &req).await
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
                    // so give the slow server a moment.
                    self.context = None;
                    if let Some(last) = r.kvs.last() {
                        self.last_key = Some(last.key.0.clone());
                        return Ok(Some(r.kvs));
                    }
                    tokio::time::sleep(backoff(restarts)).await;
                }
                Ok(r) => return self.accept(r).map(Some),
                // A throttled replica refuses before it looks at the scanner: ask it again.
                Err(e) if e.is(super::base::err::BUSY) && restarts < RESTARTS => {
                    tokio::time::sleep(backoff(restarts)).await;
                }
                Err(e) if restartable(&e) && restarts < RESTARTS => {
                    if matches!(e, Error::ConnectionLost { .. }) {
                        // A reply over the frame cap (large values) breaks the connection:
                        // smaller batches get through.
                        self.opts.batch_size = (self.opts.batch_size / 2).max(1);
                    }
                    if let Some(id) = self.context.take() {
                        // It may still be open there (a timeout): release it, best effort.
                        self.client
                            .send_oneway::<ClearScanner>(self.hash(), &id)
                            .await;
                    }
                    pause_before_retry(&self.client, restarts).await;
                }
                Err(e) => return Err(e),
            }
            restarts += 1;
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
            batch_size: self.opts.batch_size,
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

    fn accept(&mut self, r: ScanResponse) -> Result<Vec<KeyValue>> {
        self.client.storage_ok::<Scan>(r.error)?;
        if let Some(last) = r.kvs.last() {
            self.last_key = Some(last.key.0.clone());
        }
        if r.context_id == scan_context::COMPLETED || r.context_id == scan_context::NOT_EXIST {
            self.context = None;
            self.done = true;
        } else {
            self.context = Some(r.context_id);
        }
        Ok(r.kvs)
    }

    /// Releases the server's scanner if one is open (one-way: no reply is awaited).
    pub async fn close(mut self) {
        if let Some(id) = self.context.take() {
            self.client
                .send_oneway::<ClearScanner>(self.hash(), &id)
                .await;
        }
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
