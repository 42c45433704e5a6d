//! Owns reading one partition ahead of its merge: a task per partition runs the scanner and
//! hands its batches over a channel of `PREFETCH`, so the next batch is on its way while the
//! merge uses this one, and every partition of both sides reads at once. Dropping the reader
//! stops the task once its current batch is in (never in the middle of a request, whose reply
//! could hold a scanner nobody would release); it then releases the server's scanner.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::pace::Pacer;
use crate::pegasus::error::Result;
use crate::pegasus::messages::data::KeyValue;
use crate::pegasus::scanner::PartitionScanner;

/// Batches a partition reads ahead of the merge (one more may wait to be handed over).
pub const PREFETCH: usize = 2;

/// The batches of one partition, read ahead.
pub struct Reader {
    rx: mpsc::Receiver<Result<Vec<KeyValue>>>,
    /// Records read and not yet taken.
    ahead: Arc<AtomicUsize>,
}

impl Reader {
    /// Starts reading with `scanner`, under the limits of `pacer` (its cluster's).
    #[must_use]
    pub fn start(scanner: PartitionScanner, pacer: Arc<Pacer>) -> Self {
        let (tx, rx) = mpsc::channel(PREFETCH);
        let ahead = Arc::new(AtomicUsize::new(0));
        tokio::spawn(read(scanner, pacer, tx, ahead.clone()));
        Self { rx, ahead }
    }

    /// The next batch (possibly empty while the scan goes on), `None` once the partition is
    /// read.
    ///
    /// # Errors
    /// The scan failed past its retries.
    pub async fn next(&mut self) -> Result<Option<Vec<KeyValue>>> {
        match self.rx.recv().await {
            Some(Ok(batch)) => {
                self.ahead.fetch_sub(batch.len(), Ordering::Relaxed);
                Ok(Some(batch))
            }
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    /// Records read ahead and not yet taken.
    #[must_use]
    pub fn ahead(&self) -> usize {
        self.ahead.load(Ordering::Relaxed)
    }

    /// A reader of a partition already read to the end.
    #[cfg(test)]
    pub(super) fn finished() -> Self {
        let (_, rx) = mpsc::channel(1);
        Self {
            rx,
            ahead: Arc::default(),
        }
    }
}

/// Reads batches into `tx` until the scan ends or fails, or nobody takes them any more; each
/// batch paid for with `pacer` (its records and bytes), its round trip and each `ERR_BUSY`
/// told to it.
async fn read(
    mut scanner: PartitionScanner,
    pacer: Arc<Pacer>,
    tx: mpsc::Sender<Result<Vec<KeyValue>>>,
    ahead: Arc<AtomicUsize>,
) {
    loop {
        let (busy, asked) = (scanner.busy_refusals(), tokio::time::Instant::now());
        let batch = scanner.next_batch().await;
        for _ in busy..scanner.busy_refusals() {
            pacer.busy();
        }
        if batch.is_ok() {
            pacer.round_trip(asked.elapsed());
        }
        let more = match batch {
            Ok(Some(b)) => {
                let bytes = b.iter().map(|kv| kv.key.0.len() + kv.value.0.len()).sum();
                pacer.pace(b.len(), bytes).await;
                ahead.fetch_add(b.len(), Ordering::Relaxed);
                tx.send(Ok(b)).await.is_ok()
            }
            Ok(None) => false,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                false
            }
        };
        if !more {
            break;
        }
    }
    scanner.close().await;
}
