//! Owns waking the simulator's timer loops: a loop with nothing due sleeps instead of ticking,
//! and the code that changes what it waits on says here what happened; each event wakes the
//! loops that may now have work, which then act at the tick they would have acted at anyway.
//!
//! A wake-up that finds nothing to do costs one look at the state; a missing one would leave
//! work undone, so an event wakes every loop it might concern.

use tokio::sync::Notify;

/// One cluster's loop wake-ups. `Notify` keeps one permit, so an event while its loop is busy
/// is not lost: the loop looks once more before it sleeps.
#[derive(Debug)]
pub struct Wakes {
    group_check: Notify,
    shipping: Notify,
    dup_sync: Vec<Notify>,
    liveness: Notify,
    config_sync: Vec<Notify>,
}

impl Wakes {
    /// Wake-ups for a cluster of `replicas` replica servers.
    #[must_use]
    pub fn new(replicas: usize) -> Self {
        Self {
            group_check: Notify::new(),
            shipping: Notify::new(),
            dup_sync: (0..replicas).map(|_| Notify::new()).collect(),
            liveness: Notify::new(),
            config_sync: (0..replicas).map(|_| Notify::new()).collect(),
        }
    }

    /// A write took a decree on a table that duplicates: a duplicator may have a mutation to
    /// load.
    pub fn logged(&self) {
        self.shipping.notify_one();
    }

    /// A table or partitions were created, or a partition's primary moved: group check runs
    /// the new primary's first round, and its duplicators ship from it.
    pub fn primaries_changed(&self) {
        self.group_check.notify_one();
        self.shipping.notify_one();
    }

    /// A duplication was added, changed status or was removed.
    pub fn duplications_changed(&self) {
        self.shipping.notify_one();
        for n in &self.dup_sync {
            n.notify_one();
        }
    }

    /// A primary created a duplicator: it may ship.
    pub fn duplicators_started(&self) {
        self.shipping.notify_one();
    }

    /// Replica server `node` stopped or restarted: the failure detector watches it; a restart
    /// syncs its config and brings its primaries' group checks and duplicators back.
    pub fn server_changed(&self, node: usize) {
        self.liveness.notify_one();
        self.group_check.notify_one();
        self.shipping.notify_one();
        self.config_sync_changed(node);
    }

    /// The meta leader changed: its failure detector starts over.
    pub fn leader_changed(&self) {
        self.liveness.notify_one();
    }

    /// What stands between server `node` and its config sync changed (`synctrouble.rs`).
    pub fn config_sync_changed(&self, node: usize) {
        if let Some(n) = self.config_sync(node) {
            n.notify_one();
        }
    }

    /// Server `node` lost the meta or got it back: its config sync follows, and the meta's
    /// failure detector watches its beacons.
    pub fn meta_link_changed(&self, node: usize) {
        self.liveness.notify_one();
        self.config_sync_changed(node);
    }

    /// What wakes the group-check loop.
    #[must_use]
    pub fn group_check(&self) -> &Notify {
        &self.group_check
    }

    /// What wakes the duplication engine.
    #[must_use]
    pub fn shipping(&self) -> &Notify {
        &self.shipping
    }

    /// What wakes duplication sync.
    #[must_use]
    pub fn dup_sync(&self, node: usize) -> Option<&Notify> {
        self.dup_sync.get(node)
    }

    /// What wakes the failure detector.
    #[must_use]
    pub fn liveness(&self) -> &Notify {
        &self.liveness
    }

    /// What wakes server `node`'s config sync; `None` for an unknown server.
    #[must_use]
    pub fn config_sync(&self, node: usize) -> Option<&Notify> {
        self.config_sync.get(node)
    }
}
