//! Owns the simulation's clients: writers with the Java client's behaviour (the table's
//! partition configuration resolved through meta-proxy and cached, re-resolved on
//! `ERR_INVALID_STATE`, `ERR_OBJECT_NOT_FOUND` and lost connections, retried within an
//! operation timeout), each writing one key with increasing versions and recording every
//! acknowledgement with the cluster that gave it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::pegasus::table::{TableClient, TableOptions};

/// One write a writer sent, and how it ended.
#[derive(Debug, Clone)]
pub struct Write {
    pub table: String,
    pub writer: usize,
    pub version: u64,
    pub sent_ms: u64,
    /// `(cluster, when)` of the acknowledgement; `None`: failed or timed out (it may still
    /// have landed).
    pub acked: Option<(String, u64)>,
}

/// The writers of every table, and what they saw.
pub struct Writers {
    pub log: Arc<Mutex<Vec<Write>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// The key writer `w` owns.
#[must_use]
pub fn key_of(writer: usize) -> Vec<u8> {
    format!("writer{writer}").into_bytes()
}

/// Which cluster a replica address belongs to.
pub type ClusterOf = Arc<dyn Fn(&str) -> String + Send + Sync>;

impl Writers {
    /// Starts `per_table` writers on each of `tables`, resolving through `proxy`, one write
    /// every `pause` (each waits for the last).
    #[must_use]
    pub fn start(
        tables: &[String],
        per_table: usize,
        proxy: SocketAddr,
        pause: Duration,
        cluster_of: &ClusterOf,
    ) -> Writers {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for table in tables {
            for w in 0..per_table {
                let meta = MetaClient::new(vec![proxy], MetaOptions::default());
                let opts = TableOptions {
                    op_timeout: Duration::from_secs(5),
                    retry_backoff: Duration::from_millis(50),
                };
                let client = TableClient::new(table, meta, opts);
                let (log, cluster_of, table) = (log.clone(), cluster_of.clone(), table.clone());
                tasks.push(tokio::spawn(async move {
                    write_forever(&client, &table, w, pause, &log, &cluster_of).await;
                }));
            }
        }
        Writers { log, tasks }
    }

    /// Stops every writer (a write in flight is left as sent, not acknowledged).
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

async fn write_forever(
    client: &TableClient,
    table: &str,
    writer: usize,
    pause: Duration,
    log: &Mutex<Vec<Write>>,
    cluster_of: &ClusterOf,
) {
    let key = key_of(writer);
    for version in 1u64.. {
        let sent_ms = crate::clock::now_ms();
        let index = {
            let mut log = log.lock().expect("write log");
            log.push(Write {
                table: table.to_string(),
                writer,
                version,
                sent_ms,
                acked: None,
            });
            log.len() - 1
        };
        let value = version.to_string();
        if let Ok(reply) = client.put_reply(&key, b"v", value.as_bytes()).await {
            let at = crate::clock::now_ms();
            log.lock().expect("write log")[index].acked = Some((cluster_of(&reply.server), at));
        }
        tokio::time::sleep(pause).await;
    }
}
