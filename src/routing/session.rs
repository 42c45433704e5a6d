//! Owns the narrowest seam between migrator's ZooKeeper calls ([`super::zk::Zk`]) and a
//! session: the real client (`zookeeper-client`) in production, or a model of ZooKeeper that a
//! deterministic simulation installs on its thread ([`install_simulated`]).
//!
//! Everything above this seam — timeouts, typed errors, parents, guards — runs unchanged in
//! both; this file only forwards calls.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use zookeeper_client as zkc;

use super::zk::NodeEvent;

/// A boxed call in flight.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A node's data and stat.
pub type Data = (Vec<u8>, zkc::Stat);
/// A node's data and stat, and a watch on it.
pub type WatchedData = (Vec<u8>, zkc::Stat, Watcher);
/// A node's stat if it exists, and a watch on it.
pub type WatchedStat = (Option<zkc::Stat>, Watcher);

/// How long a node lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Persistent,
    Ephemeral,
}

/// Who may change a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (routing nodes, as meta-proxy deployments create them).
    Open,
    /// The credentials that created it; anyone may read (migrator's own nodes when it
    /// authenticates).
    Owned,
}

/// A one-shot watch of either kind.
#[derive(Debug)]
pub enum Watcher {
    Real(zkc::OneshotWatcher),
    Sim(oneshot::Receiver<NodeEvent>),
}

impl Watcher {
    /// Resolves at the first change after the call that set it.
    pub async fn changed(self) -> NodeEvent {
        match self {
            Watcher::Real(w) => match w.changed().await.event_type {
                zkc::EventType::NodeCreated => NodeEvent::Created,
                zkc::EventType::NodeDeleted => NodeEvent::Deleted,
                zkc::EventType::NodeDataChanged => NodeEvent::DataChanged,
                zkc::EventType::NodeChildrenChanged => NodeEvent::ChildrenChanged,
                zkc::EventType::Session => NodeEvent::SessionEnded,
            },
            Watcher::Sim(rx) => rx.await.unwrap_or(NodeEvent::SessionEnded),
        }
    }
}

/// The calls migrator makes on a session. Errors are the client's own, so the mapping to
/// [`super::zk::ZkError`] is one piece of code for both kinds.
pub trait Session: Send + Sync + std::fmt::Debug {
    fn get_data<'a>(&'a self, path: &'a str) -> Call<'a, Result<Data, zkc::Error>>;
    fn get_and_watch_data<'a>(&'a self, path: &'a str)
        -> Call<'a, Result<WatchedData, zkc::Error>>;
    fn check_and_watch_stat<'a>(
        &'a self,
        path: &'a str,
    ) -> Call<'a, Result<WatchedStat, zkc::Error>>;
    fn create<'a>(
        &'a self,
        path: &'a str,
        data: &'a [u8],
        mode: Mode,
        access: Access,
    ) -> Call<'a, Result<zkc::Stat, zkc::Error>>;
    fn set_data<'a>(
        &'a self,
        path: &'a str,
        data: &'a [u8],
        version: Option<i32>,
    ) -> Call<'a, Result<zkc::Stat, zkc::Error>>;
    fn delete<'a>(
        &'a self,
        path: &'a str,
        version: Option<i32>,
    ) -> Call<'a, Result<(), zkc::Error>>;
    /// Creates `path` and its missing parents (persistent).
    fn mkdir<'a>(&'a self, path: &'a str, access: Access) -> Call<'a, Result<(), zkc::Error>>;
    /// One transaction: every `(node, version)` check, then `path` set to `data`, then (if
    /// given) `marker` created (persistent, with `access`). A failure names the index of the
    /// first failing operation (the set is `checks.len()`, the create the one after).
    fn check_and_set<'a>(
        &'a self,
        checks: &'a [(&'a str, i32)],
        path: &'a str,
        data: &'a [u8],
        marker: Option<(&'a str, Access)>,
    ) -> Call<'a, Result<zkc::Stat, zkc::MultiWriteError>>;
}

/// Opens simulated sessions: given the server list, a session of the simulated ensemble.
pub type Connector = Rc<dyn Fn(&[String], Option<&str>) -> Result<Arc<dyn Session>, zkc::Error>>;

thread_local! {
    static SIMULATED: RefCell<Option<Connector>> = const { RefCell::new(None) };
}

/// Sessions opened on this thread come from `connector` until the guard is dropped.
#[must_use]
pub fn install_simulated(connector: Connector) -> SimulatedGuard {
    SIMULATED.with(|s| *s.borrow_mut() = Some(connector));
    SimulatedGuard(())
}

/// Ends the thread's simulated ZooKeeper when dropped.
pub struct SimulatedGuard(());

impl Drop for SimulatedGuard {
    fn drop(&mut self) {
        SIMULATED.with(|s| s.borrow_mut().take());
    }
}

/// The simulated connector of this thread, if any.
pub(super) fn simulated() -> Option<Connector> {
    SIMULATED.with(|s| s.borrow().clone())
}

/// Routing nodes and their parents are world-writable, as meta-proxy deployments create them.
const PERSISTENT: zkc::CreateOptions<'static> =
    zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
const EPHEMERAL: zkc::CreateOptions<'static> =
    zkc::CreateMode::Ephemeral.with_acls(zkc::Acls::anyone_all());
/// migrator's own nodes when it authenticates: only the same credentials may change or delete
/// them; anyone may read them (`status` by another operator).
static OWNED_ACL: [zkc::Acl; 2] = [
    zkc::Acl::new_const(zkc::Permission::ALL, "auth", ""),
    zkc::Acl::new_const(zkc::Permission::READ, "world", "anyone"),
];

fn options(mode: Mode, access: Access) -> zkc::CreateOptions<'static> {
    let create_mode = match mode {
        Mode::Persistent => zkc::CreateMode::Persistent,
        Mode::Ephemeral => zkc::CreateMode::Ephemeral,
    };
    match (access, mode) {
        (Access::Owned, _) => create_mode.with_acls(zkc::Acls::new(&OWNED_ACL)),
        (Access::Open, Mode::Ephemeral) => EPHEMERAL,
        (Access::Open, Mode::Persistent) => PERSISTENT,
    }
}

/// The production session: `zookeeper-client`.
#[derive(Debug)]
pub struct Real(pub zkc::Client);

impl Real {
    /// Opens a session with `servers` (a connect string), with digest `auth` if given.
    ///
    /// # Errors
    /// The client's own.
    pub async fn connect(
        servers: &str,
        session_timeout: Duration,
        auth: Option<&str>,
    ) -> Result<Real, zkc::Error> {
        let mut connector = zkc::Client::connector().with_session_timeout(session_timeout);
        if let Some(a) = auth {
            connector = connector.with_auth("digest", a.as_bytes());
        }
        connector.connect(servers).await.map(Real)
    }
}

impl Session for Real {
    fn get_data<'a>(&'a self, path: &'a str) -> Call<'a, Result<Data, zkc::Error>> {
        Box::pin(self.0.get_data(path))
    }

    fn get_and_watch_data<'a>(
        &'a self,
        path: &'a str,
    ) -> Call<'a, Result<WatchedData, zkc::Error>> {
        Box::pin(async move {
            let (data, stat, w) = self.0.get_and_watch_data(path).await?;
            Ok((data, stat, Watcher::Real(w)))
        })
    }

    fn check_and_watch_stat<'a>(
        &'a self,
        path: &'a str,
    ) -> Call<'a, Result<WatchedStat, zkc::Error>> {
        Box::pin(async move {
            let (stat, w) = self.0.check_and_watch_stat(path).await?;
            Ok((stat, Watcher::Real(w)))
        })
    }

    fn create<'a>(
        &'a self,
        path: &'a str,
        data: &'a [u8],
        mode: Mode,
        access: Access,
    ) -> Call<'a, Result<zkc::Stat, zkc::Error>> {
        let opts = options(mode, access);
        Box::pin(async move { self.0.create(path, data, &opts).await.map(|(stat, _)| stat) })
    }

    fn set_data<'a>(
        &'a self,
        path: &'a str,
        data: &'a [u8],
        version: Option<i32>,
    ) -> Call<'a, Result<zkc::Stat, zkc::Error>> {
        Box::pin(self.0.set_data(path, data, version))
    }

    fn delete<'a>(
        &'a self,
        path: &'a str,
        version: Option<i32>,
    ) -> Call<'a, Result<(), zkc::Error>> {
        Box::pin(self.0.delete(path, version))
    }

    fn mkdir<'a>(&'a self, path: &'a str, access: Access) -> Call<'a, Result<(), zkc::Error>> {
        let opts = options(Mode::Persistent, access);
        Box::pin(async move { self.0.mkdir(path, &opts).await })
    }

    fn check_and_set<'a>(
        &'a self,
        checks: &'a [(&'a str, i32)],
        path: &'a str,
        data: &'a [u8],
        marker: Option<(&'a str, Access)>,
    ) -> Call<'a, Result<zkc::Stat, zkc::MultiWriteError>> {
        Box::pin(async move {
            let mut multi = self.0.new_multi_writer();
            for (node, version) in checks {
                multi.add_check_version(node, *version)?;
            }
            multi.add_set_data(path, data, None)?;
            if let Some((node, access)) = marker {
                multi.add_create(node, b"", &options(Mode::Persistent, access))?;
            }
            let results = multi.commit().await?;
            results
                .into_iter()
                .find_map(|r| match r {
                    zkc::MultiWriteResult::SetData { stat } => Some(stat),
                    _ => None,
                })
                .ok_or_else(|| {
                    zkc::Error::UnexpectedError("multi returned no set-data result".into()).into()
                })
        })
    }
}
