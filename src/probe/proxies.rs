//! Owns asking a meta-proxy instance which cluster it serves a table from: the proxy answers
//! only `RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX`, with no cluster name, so the replica
//! servers its answer names tell the cluster (`meta/init.go`, pegasus-kv/meta-proxy).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::pegasus::connection::Pool;
use crate::pegasus::frame::RequestHeader;
use crate::pegasus::messages::apps::{QueryCfgRequest, QueryConfig};
use crate::pegasus::Error;

/// What a proxy said about a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAnswer {
    /// A configuration naming these replica servers.
    Served(BTreeSet<SocketAddr>),
    /// An error inside the answer (`ERR_OBJECT_NOT_FOUND`, `ERR_INVALID_DATA`, ...).
    Error(String),
    /// Nothing within the deadline: what a 2021 build does when it cannot decode a 2.6 meta's
    /// answer (and when all the metas behind it fail).
    NoAnswer,
    /// The proxy could not be reached.
    Unreachable(String),
}

/// Asks `proxy` for `table`'s configuration, within `deadline`.
pub async fn ask(pool: &Pool, proxy: SocketAddr, table: &str, deadline: Duration) -> ProxyAnswer {
    let req = QueryCfgRequest {
        app_name: table.to_string(),
        partition_indices: vec![],
    };
    let call = pool.call::<QueryConfig>(proxy, RequestHeader::default(), &req, deadline);
    match tokio::time::timeout(deadline * 2, call).await {
        Err(_) | Ok(Err(Error::Timeout { .. })) => ProxyAnswer::NoAnswer,
        Ok(Err(e @ (Error::Connect { .. } | Error::ConnectionLost { .. }))) => {
            ProxyAnswer::Unreachable(e.to_string())
        }
        Ok(Err(e)) => ProxyAnswer::Error(e.to_string()),
        Ok(Ok(resp)) if !resp.err.is_ok() => ProxyAnswer::Error(resp.err.to_string()),
        Ok(Ok(resp)) => ProxyAnswer::Served(
            resp.partitions
                .iter()
                .flat_map(|p| std::iter::once(&p.primary).chain(&p.secondaries))
                .filter_map(|a| a.to_socket())
                .collect(),
        ),
    }
}

/// Which of `clusters` (name, replica servers) the answer's servers belong to.
#[must_use]
pub fn cluster_of<'a>(
    served: &BTreeSet<SocketAddr>,
    clusters: &[(&'a str, &BTreeSet<SocketAddr>)],
) -> Option<&'a str> {
    clusters
        .iter()
        .find(|(_, nodes)| !served.is_empty() && served.iter().all(|s| nodes.contains(s)))
        .map(|(name, _)| *name)
}
