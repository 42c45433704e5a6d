//! Owns the sandbox's client load: writers that resolve tables through meta-proxy (re-resolving
//! on `ERR_INVALID_STATE`, as the Java client does), a record of every acknowledged write and
//! of the windows in which writes were unavailable, and the check afterwards that every
//! acknowledged write is readable where the routing points.
//!
//! Besides the writers of fresh keys, one task per partition writes a fixed key of that
//! partition in a loop and reads it back: its longest gap between acknowledged writes is what
//! a client that writes one key sees, which the table-wide gaps hide (writers move on to
//! partitions that are not blocked yet).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pegasus::meta::{MetaClient, MetaOptions};
use crate::pegasus::table::{TableClient, TableOptions};

/// How the load runs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub tables: Vec<String>,
    /// Where clients resolve tables (the meta-proxy).
    pub resolver: SocketAddr,
    /// Total acknowledged-write target per second; 0 = as fast as the servers allow.
    pub rate: u32,
    /// Concurrent writers per table.
    pub writers_per_table: usize,
    /// Deadline of one write, retries included.
    pub op_timeout: Duration,
    /// Pause between two writes of a partition's fixed key; `None` = no per-partition load.
    pub partition_every: Option<Duration>,
}

/// A write acknowledged by the servers.
#[derive(Debug, Clone)]
pub struct Acked {
    pub table: String,
    pub hash_key: String,
    /// The replica server that acknowledged it, and when the reply arrived.
    pub server: String,
    pub at: Instant,
}

/// Unavailability seen by one table's writers: the gaps between consecutive acknowledged
/// writes of the table. Under a steady load gaps are milliseconds; a gap of 200 ms or more is
/// a window in which no write to the table succeeded.
#[derive(Debug, Default)]
struct Availability {
    last_ack: Option<Instant>,
    /// A write failed since the last acknowledgement (an outage still open at the end).
    failing: bool,
    windows_ms: Vec<u64>,
    /// The longest gap between two acknowledgements (or the last one and the end).
    longest_ms: u64,
}

const WINDOW_MIN: Duration = Duration::from_millis(200);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Availability {
    fn failed(&mut self) {
        self.failing = true;
    }
    fn succeeded(&mut self, acked: Instant) {
        if let Some(gap) = self.last_ack.map(|last| acked.duration_since(last)) {
            self.longest_ms = self.longest_ms.max(ms(gap));
            if gap >= WINDOW_MIN {
                tracing::info!(
                    gap_ms = ms(gap),
                    until_ms = crate::apply::journal::now_ms(),
                    "writes were unavailable"
                );
                self.windows_ms.push(ms(gap));
            }
        }
        self.last_ack = Some(acked);
        self.failing = false;
    }
    /// Closes an outage still open when the load stops.
    fn close(&mut self, ended: Instant) {
        if let (true, Some(last)) = (self.failing, self.last_ack) {
            let gap = ms(ended.duration_since(last));
            self.windows_ms.push(gap);
            self.longest_ms = self.longest_ms.max(gap);
        }
    }
}

/// A running load; [`Load::finish`] stops it and returns what it saw.
pub struct Load {
    stop: watch::Sender<bool>,
    writers: Vec<JoinHandle<WriterLog>>,
    availability: HashMap<String, Arc<Mutex<Availability>>>,
    /// Per table, per partition (filled once the table's partition count is known).
    partitions: HashMap<String, Arc<Mutex<Vec<Availability>>>>,
    probes: Vec<JoinHandle<WriterLog>>,
    started: Instant,
}

#[derive(Debug, Default)]
struct WriterLog {
    acked: Vec<Acked>,
    failed: u64,
    /// A fixed key read back with another value than was just acknowledged.
    mismatched: u64,
}

/// What the load saw.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub acked_writes: u64,
    pub failed_writes: u64,
    pub seconds: f64,
    pub acked_per_second: f64,
    /// Longest window in which some table's writes were unavailable.
    pub write_unavailable_ms: u64,
    /// Every window, per table.
    pub unavailable_windows_ms: HashMap<String, Vec<u64>>,
    /// Longest gap between acknowledged writes of one partition's key: the headline figure.
    pub write_unavailable_per_partition_ms: u64,
    /// That gap per table, per partition index.
    pub partition_unavailable_ms: HashMap<String, Vec<u64>>,
    /// Reads of a partition's key that did not return the value just acknowledged.
    pub read_back_mismatches: u64,
    #[serde(skip)]
    pub acked: Vec<Acked>,
}

impl Load {
    /// Starts the writers.
    #[must_use]
    pub fn start(cfg: &LoadConfig) -> Self {
        let (stop, stopped) = watch::channel(false);
        let total_writers = (cfg.tables.len() * cfg.writers_per_table).max(1);
        let interval = (cfg.rate > 0)
            .then(|| Duration::from_secs_f64(total_writers as f64 / f64::from(cfg.rate)));
        let meta = MetaClient::new(
            vec![cfg.resolver],
            MetaOptions {
                call_timeout: cfg.op_timeout,
                ..MetaOptions::default()
            },
        );
        let mut availability = HashMap::new();
        let mut partitions = HashMap::new();
        let mut writers = Vec::new();
        let mut probes = Vec::new();
        for table in &cfg.tables {
            let avail = Arc::new(Mutex::new(Availability::default()));
            availability.insert(table.clone(), avail.clone());
            let opts = TableOptions {
                op_timeout: cfg.op_timeout,
                ..TableOptions::default()
            };
            let client = TableClient::new(table, meta.clone(), opts);
            for w in 0..cfg.writers_per_table {
                let writer = Writer {
                    client: client.clone(),
                    id: w,
                    avail: avail.clone(),
                    interval,
                };
                writers.push(tokio::spawn(writer.run(stopped.clone())));
            }
            if let Some(every) = cfg.partition_every {
                let per = Arc::new(Mutex::new(Vec::new()));
                partitions.insert(table.clone(), per.clone());
                let probe = PartitionLoad { client, every, per };
                probes.push(tokio::spawn(probe.run(stopped.clone())));
            }
        }
        Self {
            stop,
            writers,
            availability,
            partitions,
            probes,
            started: Instant::now(),
        }
    }

    /// Stops the writers and gathers their logs.
    ///
    /// # Panics
    /// A writer panicked: its log is lost, so "nothing lost" could not be claimed.
    pub async fn finish(self) -> LoadReport {
        let _ = self.stop.send(true);
        let seconds = self.started.elapsed().as_secs_f64();
        let mut acked = Vec::new();
        let (mut failed, mut mismatched) = (0, 0);
        for w in self.writers.into_iter().chain(self.probes) {
            let log = match w.await {
                Ok(log) => log,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => continue, // cancelled: the runtime is shutting down
            };
            acked.extend(log.acked);
            failed += log.failed;
            mismatched += log.mismatched;
        }
        let ended = Instant::now();
        let unavailable_windows_ms: HashMap<String, Vec<u64>> = self
            .availability
            .into_iter()
            .map(|(t, a)| {
                let mut a = a.lock().expect("availability lock");
                a.close(ended);
                (t, std::mem::take(&mut a.windows_ms))
            })
            .collect();
        let partition_unavailable_ms: HashMap<String, Vec<u64>> = self
            .partitions
            .into_iter()
            .map(|(t, per)| {
                let mut per = per.lock().expect("availability lock");
                let gaps = per
                    .iter_mut()
                    .map(|a| {
                        a.close(ended);
                        a.longest_ms
                    })
                    .collect();
                (t, gaps)
            })
            .collect();
        let worst = |m: &HashMap<String, Vec<u64>>| m.values().flatten().copied().max();
        LoadReport {
            acked_writes: acked.len() as u64,
            failed_writes: failed,
            seconds,
            acked_per_second: acked.len() as f64 / seconds.max(1e-9),
            write_unavailable_ms: worst(&unavailable_windows_ms).unwrap_or(0),
            write_unavailable_per_partition_ms: worst(&partition_unavailable_ms).unwrap_or(0),
            unavailable_windows_ms,
            partition_unavailable_ms,
            read_back_mismatches: mismatched,
            acked,
        }
    }
}

/// Writes one fixed key per partition in a loop and reads it back.
struct PartitionLoad {
    client: TableClient,
    every: Duration,
    per: Arc<Mutex<Vec<Availability>>>,
}

impl PartitionLoad {
    async fn run(self, mut stop: watch::Receiver<bool>) -> WriterLog {
        let count = loop {
            if *stop.borrow() {
                return WriterLog::default();
            }
            match self.client.refresh().await {
                Ok(r) => break r.partition_count,
                Err(_) => tokio::time::sleep(self.every).await,
            }
        };
        let n = usize::try_from(count).unwrap_or(0);
        *self.per.lock().expect("availability lock") =
            (0..n).map(|_| Availability::default()).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for pidx in 0..count {
            let key = crate::pegasus::key::hash_key_in_partition("fixed-", pidx, count);
            let (client, per, every) = (self.client.clone(), self.per.clone(), self.every);
            let stop = stop.clone();
            let slot = usize::try_from(pidx).unwrap_or(0);
            tasks.spawn(async move { one_partition(client, key, per, slot, every, stop).await });
        }
        let _ = stop.changed().await;
        let mut log = WriterLog::default();
        while let Some(done) = tasks.join_next().await {
            let part = match done {
                Ok(part) => part,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => continue, // cancelled: the runtime is shutting down
            };
            log.failed += part.failed;
            log.mismatched += part.mismatched;
        }
        log
    }
}

async fn one_partition(
    client: TableClient,
    key: Vec<u8>,
    per: Arc<Mutex<Vec<Availability>>>,
    slot: usize,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> WriterLog {
    let mut log = WriterLog::default();
    for seq in 0u64.. {
        if *stop.borrow() {
            break;
        }
        let value = seq.to_string();
        let put = client.put(&key, b"s", value.as_bytes()).await;
        let ok = match put {
            Ok(_) => {
                let back = client.get(&key, b"s").await;
                if matches!(&back, Ok(v) if v.as_deref() != Some(value.as_bytes())) {
                    log.mismatched += 1;
                }
                true
            }
            Err(_) => false,
        };
        {
            let mut per = per.lock().expect("availability lock");
            if ok {
                per[slot].succeeded(Instant::now());
            } else {
                log.failed += 1;
                per[slot].failed();
            }
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    log
}

struct Writer {
    client: TableClient,
    id: usize,
    avail: Arc<Mutex<Availability>>,
    interval: Option<Duration>,
}

impl Writer {
    async fn run(self, mut stop: watch::Receiver<bool>) -> WriterLog {
        let mut log = WriterLog::default();
        let start = tokio::time::Instant::now();
        for seq in 0u64.. {
            if *stop.borrow() {
                break;
            }
            if let Some(every) = self.interval {
                let due = start + every.mul_f64(seq as f64);
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    () = tokio::time::sleep_until(due) => {}
                }
            }
            let hash_key = format!("w{}-{seq}", self.id);
            let result = self
                .client
                .put_reply(hash_key.as_bytes(), b"s", hash_key.as_bytes())
                .await;
            let mut avail = self.avail.lock().expect("availability lock");
            match result {
                Ok(reply) => {
                    let at = Instant::now();
                    avail.succeeded(at);
                    log.acked.push(Acked {
                        table: self.client.table().to_string(),
                        hash_key,
                        server: reply.server,
                        at,
                    });
                }
                Err(e) => {
                    tracing::debug!(table = self.client.table(), "write failed: {e}");
                    avail.failed();
                    log.failed += 1;
                }
            }
        }
        log
    }
}

/// Counts acknowledged writes that are not readable through `clients` (by table).
pub async fn count_lost(acked: Vec<Acked>, clients: &HashMap<String, TableClient>) -> u64 {
    const READERS: usize = 32;
    let acked = Arc::new(acked);
    let mut readers = tokio::task::JoinSet::new();
    for r in 0..READERS {
        let (acked, clients) = (acked.clone(), clients.clone());
        readers.spawn(async move {
            let mut lost = 0u64;
            for a in acked.iter().skip(r).step_by(READERS) {
                let got = match clients.get(&a.table) {
                    Some(c) => c.get(a.hash_key.as_bytes(), b"s").await.ok().flatten(),
                    None => None,
                };
                lost += u64::from(got.as_deref() != Some(a.hash_key.as_bytes()));
            }
            lost
        });
    }
    let mut lost = 0;
    while let Some(n) = readers.join_next().await {
        lost += n.unwrap_or(0);
    }
    lost
}
