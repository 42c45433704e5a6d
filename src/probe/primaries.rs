//! Owns the table's primaries as the meta reports them: per partition, the node and ballot.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::pegasus::meta::MetaClient;
use crate::pegasus::Error;

/// One partition's primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryOf {
    pub pidx: i32,
    /// `None` while the partition has no primary (a failover in progress).
    pub addr: Option<SocketAddr>,
    pub ballot: i64,
}

/// Every partition's primary at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primaries {
    pub app_id: i32,
    pub partition_count: i32,
    pub parts: Vec<PrimaryOf>,
}

impl Primaries {
    /// Asks the meta for `table`'s configuration.
    ///
    /// # Errors
    /// The meta could not be asked.
    pub async fn read(meta: &MetaClient, table: &str) -> Result<Self, Error> {
        let cfg = meta.query_config(table).await?;
        let mut parts: Vec<PrimaryOf> = cfg
            .partitions
            .iter()
            .map(|p| PrimaryOf {
                pidx: p.pid.partition_index,
                addr: p.primary.to_socket().filter(|a| a.port() != 0),
                ballot: p.ballot,
            })
            .collect();
        parts.sort_by_key(|p| p.pidx);
        parts.dedup_by_key(|p| p.pidx);
        Ok(Self {
            app_id: cfg.app_id,
            partition_count: cfg.partition_count,
            parts,
        })
    }

    /// The distinct nodes that hold a primary.
    #[must_use]
    pub fn nodes(&self) -> BTreeSet<SocketAddr> {
        self.parts.iter().filter_map(|p| p.addr).collect()
    }

    /// Whether every partition index `0..partition_count` is listed exactly once.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        let n = usize::try_from(self.partition_count).unwrap_or(0);
        self.parts.len() == n
            && self
                .parts
                .iter()
                .enumerate()
                .all(|(i, p)| usize::try_from(p.pidx) == Ok(i))
    }
}
