//! Owns what the simulator's unit tests of its timer loops share: a cluster with no sockets, a
//! table on it, a future that counts how often it is polled (each poll is a wake-up), a loop
//! started with that count, and a recorder of how a value changed over virtual time.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::config::SimConfig;
use super::state::{Cluster, Directory};
use super::tables;
use crate::pegasus::messages::apps::CreateAppOptions;

/// A cluster of one meta and three replica servers that serves nothing: only its state and
/// the loops a test starts on it.
#[must_use]
pub fn cluster(config: SimConfig) -> Arc<Cluster> {
    let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
    Arc::new(Cluster::new(
        "c",
        1,
        config,
        vec![addr(1)],
        vec![addr(2), addr(3), addr(4)],
        Directory::default(),
    ))
}

/// Creates table `name` of `partitions` partitions, three replicas each; returns its id.
pub fn create(cluster: &Cluster, name: &str, partitions: i32) -> i32 {
    let opts = CreateAppOptions {
        partition_count: partitions,
        replica_count: 3,
        app_type: "pegasus".into(),
        is_stateful: true,
        ..Default::default()
    };
    tables::create_app(cluster, &mut cluster.lock(), name, &opts).expect("a new table")
}

/// `inner`, counting its polls in `polls`.
pub struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicU64>,
}

impl<F: Future> Counted<F> {
    /// Wraps `inner`; `polls` counts every poll.
    pub fn new(inner: F, polls: Arc<AtomicU64>) -> Self {
        Self {
            inner: Box::pin(inner),
            polls,
        }
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// A loop under test, running until this is dropped, with its wake-ups counted from `t0`.
pub struct Started {
    polls: Arc<AtomicU64>,
    t0: tokio::time::Instant,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Started {
    /// Spawns the loop `start` makes of its stop signal, now.
    pub fn new<F>(start: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> F) -> Self
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let polls = Arc::new(AtomicU64::new(0));
        tokio::spawn(Counted::new(start(stopped), polls.clone()));
        Self {
            polls,
            t0: tokio::time::Instant::now(),
            _stop: stop,
        }
    }

    /// How often the loop woke so far.
    #[must_use]
    pub fn woke(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Sleeps until `ms` after the loop started.
    pub async fn at(&self, ms: u64) {
        tokio::time::sleep_until(self.t0 + std::time::Duration::from_millis(ms)).await;
    }
}

/// The values something took, in order, each once (consecutive repeats dropped). Sampled every
/// millisecond, it lists every change that lasts a millisecond or more whatever order tasks
/// run in within one instant, so two runs can be compared by their histories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History<T>(pub Vec<T>);

impl<T: PartialEq> History<T> {
    /// Records `value` unless it is the last one recorded.
    pub fn see(&mut self, value: T) {
        if self.0.last() != Some(&value) {
            self.0.push(value);
        }
    }
}
