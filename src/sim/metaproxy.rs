//! Owns the meta-proxy emulation: serves `RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX` by reading
//! `<root>/<table>` from ZooKeeper (`{"cluster_name", "meta_addrs"}`), asking that cluster's
//! metas, and returning their reply verbatim. Other RPCs get no reply, as upstream.
//!
//! Routes are cached and watched; a node change drops the cache entry so the next query reads
//! the new route (upstream re-reads on the event; the effect for clients is the same).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::server::{self, Handler, Outcome};
use crate::pegasus::base::{err, ErrorCode};
use crate::pegasus::frame::{self, Request};
use crate::pegasus::messages::apps::{QueryCfgRequest, QueryCfgResponse, QueryConfig};
use crate::pegasus::messages::Rpc;
use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::routing::zk::Zk;
use crate::routing::{node_path, Route};

/// A running meta-proxy; dropping it stops serving.
pub struct MetaProxy {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl MetaProxy {
    /// Serves on a free loopback port, reading routes under `root` from `zk`.
    ///
    /// # Errors
    /// The port could not be bound.
    pub async fn start(zk: Zk, root: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let inner = Inner {
            zk,
            root: root.trim_end_matches('/').to_string(),
            routes: Mutex::default(),
            metas: Mutex::default(),
        };
        let proxy = Arc::new(Proxy(Arc::new(inner)));
        let never = watch::channel(0).1;
        tokio::spawn(server::serve(listener, proxy, stop, never));
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

struct Proxy(Arc<Inner>);

struct Inner {
    zk: Zk,
    root: String,
    routes: Mutex<HashMap<String, Route>>,
    metas: Mutex<HashMap<String, MetaClient>>,
}

impl Inner {
    /// The route of `table`: cached, or read from ZooKeeper with a watch that evicts it.
    async fn route(self: &Arc<Self>, table: &str) -> Result<Route, &'static str> {
        if let Some(r) = self.routes.lock().expect("routes lock").get(table).cloned() {
            return Ok(r);
        }
        let path = node_path(&self.root, table);
        let (node, watcher) = self.zk.read_watch(&path).await.map_err(|e| {
            tracing::warn!("meta-proxy: reading {path}: {e}");
            err::ZOOKEEPER_OPERATION
        })?;
        let this = self.clone();
        let name = table.to_string();
        tokio::spawn(async move {
            watcher.changed().await;
            this.routes.lock().expect("routes lock").remove(&name);
        });
        let (data, _) = node.ok_or(err::OBJECT_NOT_FOUND)?;
        let route = Route::parse(&data).map_err(|e| {
            tracing::warn!("meta-proxy: {path}: {e}");
            err::INVALID_DATA
        })?;
        self.routes
            .lock()
            .expect("routes lock")
            .insert(table.to_string(), route.clone());
        Ok(route)
    }

    fn meta(&self, route: &Route) -> Result<MetaClient, &'static str> {
        let key = route.meta_addrs.join(",");
        let mut metas = self.metas.lock().expect("metas lock");
        if let Some(m) = metas.get(&key) {
            return Ok(m.clone());
        }
        let addrs: Result<Vec<SocketAddr>, _> =
            route.meta_addrs.iter().map(|a| a.parse()).collect();
        let opts = MetaOptions {
            call_timeout: Duration::from_secs(3),
            ..MetaOptions::default()
        };
        let client = MetaClient::new(addrs.map_err(|_| err::INVALID_DATA)?, opts);
        metas.insert(key, client.clone());
        Ok(client)
    }

    async fn query(self: Arc<Self>, q: QueryCfgRequest) -> QueryCfgResponse {
        let failed = |code: &str| QueryCfgResponse {
            err: ErrorCode::new(code),
            ..Default::default()
        };
        let route = match self.route(&q.app_name).await {
            Ok(r) => r,
            Err(code) => return failed(code),
        };
        let meta = match self.meta(&route) {
            Ok(m) => m,
            Err(code) => return failed(code),
        };
        match meta.call_any::<QueryConfig>(&q).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(
                    "meta-proxy: query {} on {}: {e}",
                    q.app_name,
                    route.cluster_name
                );
                failed(e.code().unwrap_or(err::TIMEOUT))
            }
        }
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
            let resp = this.query(q).await;
            Some(frame::encode_reply(QueryConfig::NAME, req.seqid, &resp))
        }))
    }

    fn http(&self, path: &str) -> (u16, String) {
        (404, format!("{{\"error\":\"meta-proxy has no {path}\"}}"))
    }

    fn refuses(&self) -> bool {
        false
    }
}
