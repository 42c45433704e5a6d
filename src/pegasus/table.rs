//! Owns the data client of one table as official clients behave: resolve the partition
//! configuration through the meta servers (or meta-proxy), route each key by its hash to the
//! primary, and on `ERR_INVALID_STATE` / `ERR_OBJECT_NOT_FOUND` / a lost connection re-resolve
//! and retry until the call's deadline. A timeout is not retried (the write may have landed).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::base::{err, Blob, Gpid};
use super::error::{Error, Result};
use super::key;
use super::messages::data::{rocksdb, Get, Put, Remove, Ttl, UpdateRequest};
use super::messages::Rpc;
use super::meta::MetaClient;
use super::replica::ReplicaClient;

/// The routing of one table at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub app_id: i32,
    pub partition_count: i32,
    pub primaries: Vec<Option<SocketAddr>>,
}

impl Routing {
    /// The primary serving routing hash `hash` and its partition; `None` while it has none.
    #[must_use]
    pub fn target(&self, hash: u64) -> Option<(SocketAddr, Gpid)> {
        let pidx = key::partition_index(hash, self.partition_count);
        let addr = (*self.primaries.get(usize::try_from(pidx).ok()?)?)?;
        Some((addr, Gpid::new(self.app_id, pidx)))
    }
}

/// Timeouts of a table client.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// Deadline of one operation, retries included.
    pub op_timeout: Duration,
    /// Pause between a refresh and the retry.
    pub retry_backoff: Duration,
}

impl Default for TableOptions {
    fn default() -> Self {
        Self {
            op_timeout: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(20),
        }
    }
}

/// A client of one table.
#[derive(Debug, Clone)]
pub struct TableClient {
    table: String,
    meta: MetaClient,
    replica: ReplicaClient,
    routing: Arc<RwLock<Option<Arc<Routing>>>>,
    opts: TableOptions,
}

impl TableClient {
    /// A client of `table` resolved through `meta` (a cluster's metas or a meta-proxy).
    #[must_use]
    pub fn new(table: &str, meta: MetaClient, opts: TableOptions) -> Self {
        Self {
            table: table.to_string(),
            meta,
            replica: ReplicaClient::new(opts.op_timeout),
            routing: Arc::default(),
            opts,
        }
    }

    /// The table name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The meta servers the table is resolved through.
    #[must_use]
    pub fn meta(&self) -> &MetaClient {
        &self.meta
    }

    /// Re-reads the partition configuration.
    ///
    /// # Errors
    /// The meta query failed or returned an unusable configuration.
    pub async fn refresh(&self) -> Result<Arc<Routing>> {
        let cfg = self.meta.query_config(&self.table).await?;
        let count = usize::try_from(cfg.partition_count).unwrap_or(0);
        if count == 0 || cfg.partitions.len() != count {
            return Err(Error::App {
                addr: self.meta.leader(),
                rpc: super::messages::apps::QueryConfig::NAME,
                code: super::base::ErrorCode::new(err::INVALID_DATA),
                hint: Some(format!(
                    "{} partitions for a count of {count}",
                    cfg.partitions.len()
                )),
            });
        }
        let mut primaries = vec![None; count];
        for p in &cfg.partitions {
            if let Some(slot) = usize::try_from(p.pid.partition_index)
                .ok()
                .and_then(|i| primaries.get_mut(i))
            {
                *slot = p.primary.to_socket();
            }
        }
        let routing = Arc::new(Routing {
            app_id: cfg.app_id,
            partition_count: cfg.partition_count,
            primaries,
        });
        *self.routing.write().expect("routing lock") = Some(routing.clone());
        Ok(routing)
    }

    pub(crate) async fn routing(&self) -> Result<Arc<Routing>> {
        let cached = self.routing.read().expect("routing lock").clone();
        match cached {
            Some(r) => Ok(r),
            None => self.refresh().await,
        }
    }

    /// Sends `req` for a key with routing hash `hash`, re-resolving on routing errors.
    pub(crate) async fn call<R: Rpc>(&self, hash: u64, req: &R::Request) -> Result<R::Response> {
        let deadline = Instant::now() + self.opts.op_timeout;
        loop {
            let result = self.call_once::<R>(hash, req).await;
            match result {
                Err(e) if retriable(&e) && Instant::now() + self.opts.retry_backoff < deadline => {
                    tokio::time::sleep(self.opts.retry_backoff).await;
                    // A failed refresh is retried on the next round until the deadline.
                    let _ = self.refresh().await;
                }
                other => return other,
            }
        }
    }

    /// Sends `req` once to the primary the cached routing names, with no retry: for callers
    /// that restart on their own terms (scanners).
    pub(crate) async fn call_once<R: Rpc>(
        &self,
        hash: u64,
        req: &R::Request,
    ) -> Result<R::Response> {
        self.call_once_within::<R>(hash, req, self.opts.op_timeout)
            .await
    }

    /// Like [`TableClient::call_once`], waiting at most `timeout` for the reply.
    pub(crate) async fn call_once_within<R: Rpc>(
        &self,
        hash: u64,
        req: &R::Request,
        timeout: Duration,
    ) -> Result<R::Response> {
        let routing = self.routing().await?;
        let Some((addr, gpid)) = routing.target(hash) else {
            return Err(Error::Rpc {
                addr: self.meta.leader(),
                rpc: R::NAME,
                code: super::base::ErrorCode::new(err::OBJECT_NOT_FOUND),
            });
        };
        self.replica
            .call_within::<R>(addr, gpid, hash, req, timeout)
            .await
    }

    /// Sends one-way RPC `R` for routing hash `hash`, best effort (nothing is awaited or
    /// retried: a lost one-way message is what the protocol allows).
    pub(crate) async fn send_oneway<R: Rpc>(&self, hash: u64, req: &R::Request) {
        let Ok(routing) = self.routing().await else {
            return;
        };
        if let Some((addr, gpid)) = routing.target(hash) {
            let _ = self.replica.send::<R>(addr, gpid, hash, req).await;
        }
    }

    /// Writes `value` at (`hash_key`, `sort_key`); returns the decree it was committed at.
    ///
    /// # Errors
    /// Routing, transport or storage failure.
    pub async fn put(&self, hash_key: &[u8], sort_key: &[u8], value: &[u8]) -> Result<i64> {
        self.put_reply(hash_key, sort_key, value)
            .await
            .map(|r| r.decree)
    }

    /// Like [`TableClient::put`], returning the whole reply (which server took the write).
    ///
    /// # Errors
    /// Routing, transport or storage failure.
    pub async fn put_reply(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        value: &[u8],
    ) -> Result<super::messages::data::UpdateResponse> {
        self.put_ttl(hash_key, sort_key, value, None).await
    }

    /// Writes `value` at (`hash_key`, `sort_key`), expiring after `ttl_seconds` if given.
    ///
    /// # Errors
    /// Routing, transport or storage failure.
    pub async fn put_ttl(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        value: &[u8],
        ttl_seconds: Option<u32>,
    ) -> Result<super::messages::data::UpdateResponse> {
        let expire = ttl_seconds.map_or(0, |t| key::epoch_now().saturating_add(t));
        self.put_expiring(hash_key, sort_key, value, expire).await
    }

    /// Writes `value` at (`hash_key`, `sort_key`) expiring at `expire_ts` (Pegasus epoch
    /// seconds; 0 = never), as put requests carry it.
    ///
    /// # Errors
    /// Routing, transport or storage failure.
    pub async fn put_expiring(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        value: &[u8],
        expire: u32,
    ) -> Result<super::messages::data::UpdateResponse> {
        let key = composite(hash_key, sort_key)?;
        let hash = key::key_hash(&key);
        let req = UpdateRequest {
            key: Blob(key),
            value: Blob::new(value),
            expire_ts_seconds: i32::try_from(expire).unwrap_or(i32::MAX),
        };
        let resp = self.call::<Put>(hash, &req).await?;
        self.storage_ok::<Put>(resp.error)?;
        Ok(resp)
    }

    /// Reads (`hash_key`, `sort_key`); `None` when absent.
    ///
    /// # Errors
    /// Routing, transport or storage failure.
    pub async fn get(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = composite(hash_key, sort_key)?;
        let hash = key::key_hash(&key);
        let resp = self.call::<Get>(hash, &Blob(key)).await?;
        match resp.error {
            rocksdb::NOT_FOUND => Ok(None),
            code => self.storage_ok::<Get>(code).map(|()| Some(resp.value.0)),
        }
    }

    /// The seconds (`hash_key`, `sort_key`) has left: `Some(None)` when it never expires,
    /// `None` when it is absent or expired.
    ///
    /// # Errors
    /// Routing, transport or storage failure.
    pub async fn ttl(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<Option<Option<u32>>> {
        let key = composite(hash_key, sort_key)?;
        let hash = key::key_hash(&key);
        let resp = self.call::<Ttl>(hash, &Blob(key)).await?;
        match resp.error {
            rocksdb::NOT_FOUND => Ok(None),
            code => self
                .storage_ok::<Ttl>(code)
                .map(|()| Some(u32::try_from(resp.ttl_seconds).ok())),
        }
    }

    /// Deletes (`hash_key`, `sort_key`).
    ///
    /// # Errors
    /// Routing, transport or storage failure.
    pub async fn remove(&self, hash_key: &[u8], sort_key: &[u8]) -> Result<()> {
        let key = composite(hash_key, sort_key)?;
        let hash = key::key_hash(&key);
        let resp = self.call::<Remove>(hash, &Blob(key)).await?;
        self.storage_ok::<Remove>(resp.error)
    }

    pub(crate) fn storage_ok<R: Rpc>(&self, code: i32) -> Result<()> {
        if code == rocksdb::OK {
            return Ok(());
        }
        Err(Error::App {
            addr: self.meta.leader(),
            rpc: R::NAME,
            code: super::base::ErrorCode::new(&format!("rocksdb error {code}")),
            hint: None,
        })
    }
}

fn composite(hash_key: &[u8], sort_key: &[u8]) -> Result<Vec<u8>> {
    key::composite_key(hash_key, sort_key).map_err(|e| Error::App {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        rpc: "key",
        code: super::base::ErrorCode::new(err::INVALID_PARAMETERS),
        hint: Some(e.to_string()),
    })
}

/// Errors after which official clients refresh the configuration and try again.
fn retriable(e: &Error) -> bool {
    matches!(e, Error::ConnectionLost { .. } | Error::Connect { .. })
        || e.is(err::INVALID_STATE)
        || e.is(err::OBJECT_NOT_FOUND)
}
