//! Owns each replica server's config-sync stub: when it asks the meta for its partitions and
//! applies the answer (`replica_stub.cpp` `query_configuration_by_node`, `on_node_query_reply`,
//! `on_meta_server_connected`, `on_meta_server_disconnected`, v2.5.0 and master).
//!
//! Its timer ticks every `config_sync_interval_ms` from the server's start; on v2.5.0 it
//! re-arms with the flag as it stands when a period ends (`/updateConfig` calls
//! `timer_task::update_interval`), on master with the start-up value (`/updateConfig` reaches
//! the metrics service's no-op hook). A tick asks the meta unless the server is cut off from
//! it or its previous call is pending — an RPC not yet answered (up to its timeout) or the
//! 500 ms wait after an `ERR_BUSY` — and skipped ticks are not made up. A failed call leaves
//! the next try to the next tick, except while connecting, when it asks again at once; on
//! (re)connecting to the meta it asks at once. What the meta answers and what the replicas do
//! with it is `syncreply.rs`; what delays it, `synctrouble.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::state::Cluster;
use super::syncreply::{self, Answer};
use super::ticks;

/// How long a server waits to ask again after the meta answered `ERR_BUSY` (a constant in
/// `on_node_query_reply`).
pub const BUSY_RETRY: Duration = Duration::from_millis(500);

/// Runs node `index`'s config sync until `shutdown` turns true. It sleeps until the next
/// thing due (a tick, an answer, a retry, the meta back); a restart or a fault wakes it.
pub async fn run(cluster: Arc<Cluster>, index: usize, mut shutdown: watch::Receiver<bool>) {
    let Some(woken) = cluster.wakes.config_sync(index) else {
        return;
    };
    let mut stub = Stub::new(&cluster, index);
    let mut wake = Some(Instant::now());
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            () = woken.notified() => {}
            () = ticks::until(wake) => {}
        }
        match stub.step(&cluster) {
            Some(next) => wake = next,
            None => break,
        }
    }
}

/// The server's view of its link to the meta (`replica_stub::_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Disconnected,
    /// Connected again; the first answer makes it `Connected`.
    Connecting,
    Connected,
}

/// The call a server has outstanding (`_config_query_task`): ticks skip while there is one.
#[derive(Debug)]
enum Pending {
    /// An RPC in flight: its answer arrives at `at`, or, `None`, it fails then.
    Call { at: Instant, answer: Option<Answer> },
    /// The wait after `ERR_BUSY`: it asks again at `at`.
    Busy { at: Instant },
}

impl Pending {
    fn at(&self) -> Instant {
        match self {
            Self::Call { at, .. } | Self::Busy { at } => *at,
        }
    }
}

/// One server's config-sync stub.
struct Stub {
    index: usize,
    /// The first tick after the first start: servers start at different moments, so their
    /// phases spread over one period.
    phase: Duration,
    /// `config_sync_interval_ms` at start-up.
    started: Duration,
    /// The server's epoch as last seen; `None` before the first look.
    epoch: Option<u64>,
    /// When the timer ticks next.
    tick: Instant,
    link: Link,
    pending: Option<Pending>,
}

/// What the stub reads of its server.
struct Facts {
    alive: bool,
    epoch: u64,
    flag_ms: u32,
    cut_off: bool,
    reconnects_at: Option<Instant>,
}

impl Facts {
    fn read(cluster: &Cluster, index: usize, now: Instant) -> Option<Self> {
        let state = cluster.lock();
        let node = state.nodes.get(index)?;
        Some(Self {
            alive: node.alive,
            epoch: node.epoch,
            flag_ms: node.config_sync_interval_ms,
            cut_off: node.trouble.cut_off(now),
            reconnects_at: node.trouble.reconnects_at(now),
        })
    }
}

impl Stub {
    fn new(cluster: &Cluster, index: usize) -> Self {
        let started = cluster.config.config_sync_interval;
        let nodes = u32::try_from(cluster.replicas.len()).unwrap_or(1).max(1);
        let spread = started / nodes * u32::try_from(index).unwrap_or(0);
        Self {
            index,
            phase: if spread.is_zero() { started } else { spread },
            started,
            epoch: None,
            tick: Instant::now(),
            link: Link::Disconnected,
            pending: None,
        }
    }

    /// Does what is due now; returns when to look again (`None`: only when woken), or `None`
    /// itself when the server does not exist.
    fn step(&mut self, cluster: &Cluster) -> Option<Option<Instant>> {
        let now = Instant::now();
        let node = Facts::read(cluster, self.index, now)?;
        if !node.alive {
            // Stopped: nothing runs until it restarts with a new epoch.
            return Some(None);
        }
        if self.epoch != Some(node.epoch) {
            self.start(node.epoch, now);
        }
        self.follow_link(cluster, node.cut_off, now);
        self.answer_due(cluster, now);
        self.tick_due(cluster, node.flag_ms, now);
        let reconnect = node
            .reconnects_at
            .filter(|_| self.link == Link::Disconnected);
        let wake = [
            Some(self.tick),
            self.pending.as_ref().map(Pending::at),
            reconnect,
        ]
        .into_iter()
        .flatten()
        .min();
        Some(wake)
    }

    /// The server (re)started: nothing outstanding, not yet connected, the timer's first
    /// tick a period away (the spread phase at its first start; a restart that came before
    /// this loop's first look is still a restart).
    fn start(&mut self, epoch: u64, now: Instant) {
        self.epoch = Some(epoch);
        self.pending = None;
        self.link = Link::Disconnected;
        self.tick = now + if epoch == 0 { self.phase } else { self.started };
    }

    /// Follows the failure detector: losing the meta makes every replica inactive; getting
    /// it back asks at once, unless a call is still outstanding (its answer then counts).
    fn follow_link(&mut self, cluster: &Cluster, cut_off: bool, now: Instant) {
        match (cut_off, self.link) {
            (true, Link::Disconnected) | (false, Link::Connecting | Link::Connected) => {}
            (true, _) => {
                self.link = Link::Disconnected;
                syncreply::inactivate(&mut cluster.lock(), self.index);
            }
            (false, Link::Disconnected) => {
                self.link = Link::Connecting;
                if self.pending.is_none() {
                    self.ask(cluster, now);
                }
            }
        }
    }

    fn answer_due(&mut self, cluster: &Cluster, now: Instant) {
        if self.pending.as_ref().is_none_or(|p| p.at() > now) {
            return;
        }
        match self.pending.take() {
            Some(Pending::Call { answer, .. }) => self.answered(cluster, answer, now),
            Some(Pending::Busy { .. }) => self.ask(cluster, now),
            None => {}
        }
    }

    fn tick_due(&mut self, cluster: &Cluster, flag_ms: u32, now: Instant) {
        if now < self.tick {
            return;
        }
        let period = if cluster.config.replica_version(self.index).is_2_6() {
            self.started
        } else {
            Duration::from_millis(u64::from(flag_ms))
        };
        self.tick += period.max(Duration::from_millis(1));
        if self.pending.is_none() {
            self.ask(cluster, now);
        }
    }

    /// Asks the meta (`query_configuration_by_node`): not while disconnected. The meta
    /// answers at once; a slow call's answer arrives later, or never.
    fn ask(&mut self, cluster: &Cluster, now: Instant) {
        if self.link == Link::Disconnected {
            return;
        }
        let (slow, answer) = {
            let mut state = cluster.lock();
            let slow = state.nodes[self.index].trouble.slow_next.take();
            (slow, syncreply::answer(&state, self.index, now))
        };
        let Some(slow) = slow else {
            self.answered(cluster, Some(answer), now);
            return;
        };
        let timeout = cluster.config.config_sync_rpc_timeout;
        self.pending = Some(Pending::Call {
            at: now + slow.min(timeout),
            answer: (slow < timeout).then_some(answer),
        });
    }

    /// An answer arrived (`on_node_query_reply`); `None`: the call failed.
    fn answered(&mut self, cluster: &Cluster, answer: Option<Answer>, now: Instant) {
        let Some(answer) = answer else {
            if self.link == Link::Connecting {
                self.ask(cluster, now);
            }
            return;
        };
        if self.link == Link::Connecting {
            self.link = Link::Connected;
        }
        if self.link != Link::Connected {
            // It lost the meta meanwhile: the answer is dropped.
            return;
        }
        match answer {
            Answer::Busy => {
                self.pending = Some(Pending::Busy {
                    at: now + BUSY_RETRY,
                })
            }
            Answer::Parts(parts) => syncreply::apply(cluster, self.index, &parts),
        }
    }
}

#[cfg(test)]
mod tests;
