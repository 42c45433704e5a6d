//! Owns the meta-proxy emulation, modelled on `pegasus-kv/meta-proxy` (cf6efe9, 2021) and the
//! Go client it pins: it serves only `RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX`, finds the
//! table's cluster in ZooKeeper node `<root>/<table>`, asks that cluster's metas, decodes
//! their answer and encodes it again for the client. Other RPCs get no reply.
//!
//! The inconvenient parts, as upstream has them (`meta/client.go`, `meta/init.go`):
//! - Routes are cached (LRU, no expiry) with one-shot watches: data changed → re-read and
//!   watch again (a failed re-read crashes the process); deleted → forget; any other event
//!   (a session expiry's "not watching") → the watch ends and the stale route stays.
//! - A missing node answers `ERR_OBJECT_NOT_FOUND` and bad JSON `ERR_INVALID_DATA`, uncached;
//!   valid JSON with fewer than two addresses is cached and answers `ERR_INVALID_DATA`.
//! - A [`Build::Legacy`] proxy decodes with the 2021 client, which cannot read the host_port
//!   fields a master meta always sends: the client gets no reply at all, and every later
//!   query for the same meta list hangs too (the reader goroutine has exited). A
//!   [`Build::HostPort`] proxy was rebuilt with a client that knows them.
//! - Metas that all fail also give no reply (the Go call has no deadline).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::Listener;
use tokio::sync::watch;

use super::server::{self, Handler, Outcome};
use crate::pegasus::base::{err, ErrorCode};
use crate::pegasus::frame::{self, Request};
use crate::pegasus::messages::apps::{QueryCfgRequest, QueryCfgResponse, QueryConfig};
use crate::pegasus::messages::Rpc;
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::routing::zk::{NodeEvent, NodeWatch, Zk};
use crate::routing::{node_path, Route, RouteError};

/// Which meta-proxy binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Build {
    /// Built from the 2021 code: cannot relay a master (2.6) meta's answers.
    Legacy,
    /// Rebuilt with a client that reads host_port fields: relays 2.5 and 2.6 alike.
    #[default]
    HostPort,
}

impl FromStr for Build {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "legacy" => Ok(Self::Legacy),
            "hostport" => Ok(Self::HostPort),
            other => Err(format!(
                "unknown meta-proxy build {other:?} (expected legacy or hostport)"
            )),
        }
    }
}

/// Routes one proxy keeps (`table_watcher_cache_capacity`).
const CACHE_CAPACITY: usize = 1024;

/// A running meta-proxy; dropping it stops serving.
pub struct MetaProxy {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl MetaProxy {
    /// Serves on a free loopback port, reading routes under `root` from `zk`. A bump of
    /// `sessions` ends every watch as a ZooKeeper session expiry would.
    ///
    /// # Errors
    /// The port could not be bound.
    pub async fn start(
        zk: Zk,
        root: &str,
        build: Build,
        sessions: watch::Receiver<u64>,
    ) -> std::io::Result<Self> {
        let listener = Listener::bind_loopback().await?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let inner = Inner {
            zk,
            root: root.to_string(),
            build,
            sessions,
            stopped: stop.clone(),
            cache: Mutex::default(),
            metas: Mutex::default(),
            wedged: Mutex::default(),
            crashed: AtomicBool::new(false),
            crash: watch::channel(0).0,
        };
        let inner = Arc::new(inner);
        let drops = inner.crash.subscribe();
        tokio::spawn(server::serve(listener, Arc::new(Proxy(inner)), stop, drops));
        Ok(Self { addr, shutdown })
    }

    /// The address clients use as their meta server.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetaProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A cached route: the meta list meta-proxy will ask, or why it cannot.
#[derive(Debug, Clone)]
enum Cached {
    Route(Vec<String>),
    /// Valid JSON that is not a usable route (fewer than two addresses, ...).
    Invalid,
}

#[derive(Default)]
struct Cache {
    routes: BTreeMap<String, Cached>,
    /// Least recently used first.
    order: VecDeque<String>,
}

impl Cache {
    fn get(&mut self, table: &str) -> Option<Cached> {
        let hit = self.routes.get(table).cloned()?;
        self.touch(table);
        Some(hit)
    }

    fn touch(&mut self, table: &str) {
        self.order.retain(|t| t != table);
        self.order.push_back(table.to_string());
    }

    /// Inserts (or replaces) `table`; evicts the least recently used entry when full.
    fn set(&mut self, table: &str, cached: Cached) {
        if !self.routes.contains_key(table) && self.routes.len() >= CACHE_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.routes.remove(&old);
            }
        }
        self.routes.insert(table.to_string(), cached);
        self.touch(table);
    }

    fn remove(&mut self, table: &str) {
        self.routes.remove(table);
        self.order.retain(|t| t != table);
    }
}

struct Proxy(Arc<Inner>);

struct Inner {
    zk: Zk,
    root: String,
    build: Build,
    sessions: watch::Receiver<u64>,
    /// Turns true when the proxy stops: its watches end before its ZooKeeper session does.
    stopped: watch::Receiver<bool>,
    cache: Mutex<Cache>,
    metas: Mutex<BTreeMap<String, MetaClient>>,
    /// Meta lists whose Go session stopped reading replies (legacy build only).
    wedged: Mutex<BTreeSet<String>>,
    crashed: AtomicBool,
    crash: watch::Sender<u64>,
}

/// What a lookup found: a meta list to ask, or an error to answer.
type Lookup = Result<String, &'static str>;

/// Why ZooKeeper bytes give no route: unparseable JSON is not cached, the rest is.
fn parse(bytes: &[u8]) -> Result<Cached, &'static str> {
    match Route::parse(bytes) {
        Ok(route) => Ok(Cached::Route(route.meta_addrs)),
        Err(RouteError::Json(_) | RouteError::NotObject { .. } | RouteError::NotString { .. }) => {
            Err(err::INVALID_DATA)
        }
        Err(_) => Ok(Cached::Invalid),
    }
}

impl Inner {
    async fn lookup(self: &Arc<Self>, table: &str) -> Lookup {
        let hit = self.cache.lock().expect("cache lock").get(table);
        let cached = match hit {
            Some(c) => c,
            None => self.read(table).await?,
        };
        match cached {
            Cached::Route(addrs) if addrs.len() >= 2 => Ok(addrs.join(",")),
            _ => Err(err::INVALID_DATA),
        }
    }

    /// Reads and watches `<root>/<table>` (a cache miss).
    async fn read(self: &Arc<Self>, table: &str) -> Result<Cached, &'static str> {
        let path = node_path(&self.root, table);
        let (node, watch) = self.zk.read_watch(&path).await.map_err(|e| {
            tracing::warn!("meta-proxy: reading {path}: {e}");
            err::ZOOKEEPER_OPERATION
        })?;
        let (data, _) = node.ok_or(err::OBJECT_NOT_FOUND)?;
        let cached = parse(&data)?;
        self.cache
            .lock()
            .expect("cache lock")
            .set(table, cached.clone());
        tokio::spawn(self.clone().watch(table.to_string(), watch));
        Ok(cached)
    }

    /// Follows one table's node until its watch ends.
    async fn watch(self: Arc<Self>, table: String, mut watch: NodeWatch) {
        let mut sessions = self.sessions.clone();
        sessions.mark_unchanged();
        let mut stopped = self.stopped.clone();
        loop {
            let expired = async {
                if sessions.changed().await.is_err() {
                    // Nobody can expire the session any more.
                    std::future::pending::<()>().await;
                }
            };
            let event = tokio::select! {
                biased;
                e = watch.changed() => e,
                () = expired => NodeEvent::SessionEnded,
                _ = stopped.wait_for(|s| *s) => return,
            };
            match event {
                NodeEvent::DataChanged => match self.reread(&table).await {
                    Some(next) => watch = next,
                    None => return self.crash(&table),
                },
                NodeEvent::Deleted => {
                    self.cache.lock().expect("cache lock").remove(&table);
                    return;
                }
                // "unexpected zk event": the watch ends, the cached route stays.
                _ => return,
            }
        }
    }

    async fn reread(&self, table: &str) -> Option<NodeWatch> {
        let path = node_path(&self.root, table);
        let (node, watch) = self.zk.read_watch(&path).await.ok()?;
        let cached = parse(&node?.0).ok()?;
        self.cache.lock().expect("cache lock").set(table, cached);
        Some(watch)
    }

    /// `logrus.Panicf`: the process exits; clients see refused connections.
    fn crash(&self, table: &str) {
        tracing::warn!("meta-proxy: re-reading the route of {table} failed: exiting");
        self.crashed.store(true, Ordering::Relaxed);
        self.crash.send_modify(|g| *g += 1);
    }

    fn meta(&self, addrs: &str) -> Option<MetaClient> {
        let mut metas = self.metas.lock().expect("metas lock");
        if let Some(m) = metas.get(addrs) {
            return Some(m.clone());
        }
        let parsed: Result<Vec<SocketAddr>, _> = addrs.split(',').map(str::parse).collect();
        let opts = MetaOptions {
            call_timeout: Duration::from_secs(3),
            ..MetaOptions::default()
        };
        let client = MetaClient::new(parsed.ok()?, opts);
        metas.insert(addrs.to_string(), client.clone());
        Some(client)
    }

    fn is_wedged(&self, addrs: &str) -> bool {
        self.wedged.lock().expect("wedged lock").contains(addrs)
    }

    /// The answer for the client, or `None` for no reply at all.
    async fn query(self: Arc<Self>, table: String) -> Option<QueryCfgResponse> {
        let addrs = match self.lookup(&table).await {
            Ok(addrs) => addrs,
            Err(code) => return Some(failed(code)),
        };
        if self.is_wedged(&addrs) {
            return None;
        }
        let meta = self.meta(&addrs)?;
        // The Go client asks for every partition, whatever the client asked.
        let req = QueryCfgRequest {
            app_name: table.clone(),
            partition_indices: vec![],
        };
        let resp = match meta.call_any::<QueryConfig>(&req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!("meta-proxy: query {table} on {addrs}: {e}");
                return None;
            }
        };
        let has_host_port = resp.partitions.iter().any(|p| p.hp_primary.is_some());
        if self.build == Build::Legacy && has_host_port {
            tracing::warn!("meta-proxy (legacy): cannot decode the answer of {addrs}: stuck");
            self.wedged.lock().expect("wedged lock").insert(addrs);
            return None;
        }
        Some(resp)
    }
}

fn failed(code: &str) -> QueryCfgResponse {
    QueryCfgResponse {
        err: ErrorCode::new(code),
        ..Default::default()
    }
}

impl Handler for Proxy {
    fn handle(&self, req: Request) -> Outcome {
        if req.name != QueryConfig::NAME {
            return Outcome::NoReply;
        }
        let Ok(q) = req.decode_args::<QueryCfgRequest>() else {
            return Outcome::NoReply;
        };
        let this = self.0.clone();
        Outcome::Later(Box::pin(async move {
            let resp = this.query(q.app_name).await?;
            Some(frame::encode_reply(QueryConfig::NAME, req.seqid, &resp))
        }))
    }

    fn http(&self, path: &str) -> (u16, String) {
        (404, format!("{{\"error\":\"meta-proxy has no {path}\"}}"))
    }

    fn refuses(&self) -> bool {
        self.0.crashed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_json_is_not_cached_but_a_short_meta_list_is() {
        assert_eq!(parse(b"{oops").unwrap_err(), err::INVALID_DATA);
        assert!(matches!(
            parse(br#"{"cluster_name":"a","meta_addrs":"1.1.1.1:1"}"#),
            Ok(Cached::Invalid)
        ));
        assert!(matches!(
            parse(br#"{"cluster_name":"a","meta_addrs":"1.1.1.1:1,1.1.1.2:1"}"#),
            Ok(Cached::Route(a)) if a.len() == 2
        ));
    }

    #[test]
    fn the_cache_evicts_the_least_recently_used_route() {
        let mut c = Cache::default();
        for i in 0..CACHE_CAPACITY {
            c.set(&format!("t{i}"), Cached::Invalid);
        }
        assert!(c.get("t0").is_some());
        c.set("new", Cached::Invalid);
        assert!(c.get("t0").is_some(), "recently used");
        assert!(c.get("t1").is_none(), "evicted");
    }
}
