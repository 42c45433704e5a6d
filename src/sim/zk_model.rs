//! Owns a model of a ZooKeeper ensemble for deterministic simulations, behind the same
//! [`Session`] seam the real client uses: nodes with versions and server times, one-transaction
//! check-and-set, ephemeral nodes that go with their session, sessions that expire a session
//! timeout after their holder is gone (killed or dropped), one-shot watches, owned nodes, and a
//! fault chosen per call (late, lost before or after the server applied it, session expiry).
//!
//! A session's calls are applied in the order they were sent, as ZooKeeper does; a call whose
//! caller gave up waiting is still applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use zookeeper_client as zkc;

use crate::routing::session::{
    Access, Call, Connector, Data, Mode, Session, WatchedData, WatchedStat, Watcher,
};
use crate::routing::zk::NodeEvent;

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZkFault {
    /// The server applies it this late (later calls of the session wait behind it).
    pub delay_ms: u64,
    /// The answer arrives this late.
    pub reply_delay_ms: u64,
    /// The connection is lost before the server sees the call.
    pub lose_before: bool,
    /// The server applies it, and the connection is lost before the answer.
    pub lose_after: bool,
    /// The session expires before the call is applied.
    pub expire_session: bool,
    /// The process holding the session dies right after the server applied the call (the
    /// answer never reaches it).
    pub kill_holder: bool,
}

/// Chooses the fault of each call: (session id, operation, path).
pub type ZkPolicy = Box<dyn FnMut(i64, &'static str, &str) -> ZkFault + Send>;

/// Kills the process that holds a session (a simulation's hosts).
pub type KillHook = Box<dyn Fn(i64) + Send>;
/// Told of every change as the ensemble applies it (under its lock: it must not call it).
pub type ChangeHook = Box<dyn Fn(&Change) + Send>;

/// One change the ensemble applied, for a simulation's checks and traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub at_ms: u64,
    pub session: i64,
    pub path: String,
    /// The node's data after the change; `None`: deleted.
    pub data: Option<Vec<u8>>,
    pub version: i32,
}

#[derive(Debug, Clone)]
struct Node {
    data: Vec<u8>,
    version: i32,
    ctime: i64,
    mtime: i64,
    czxid: i64,
    mzxid: i64,
    ephemeral_owner: i64,
    /// Credentials that may change it (owned nodes).
    owner: Option<String>,
}

#[derive(Debug, Default)]
struct Sess {
    expired: bool,
    auth: Option<String>,
    /// Calls wait here in the order they were sent.
    order: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchKind {
    Data,
    Exists,
}

#[derive(Debug)]
struct WatchEntry {
    path: String,
    kind: WatchKind,
    session: i64,
    tx: oneshot::Sender<NodeEvent>,
}

#[derive(Default)]
struct State {
    /// Told of every change as it is applied.
    on_change: Option<ChangeHook>,
    nodes: BTreeMap<String, Node>,
    sessions: BTreeMap<i64, Sess>,
    watches: Vec<WatchEntry>,
    next_session: i64,
    zxid: i64,
    history: Vec<Change>,
}

/// A simulated ensemble.
pub struct Ensemble {
    state: Mutex<State>,
    policy: Mutex<Option<ZkPolicy>>,
    kill: Mutex<Option<KillHook>>,
    session_timeout: Duration,
}

/// The ensemble's clock: true time, whatever host the calling session's process runs on.
fn now_ms() -> i64 {
    i64::try_from(crate::clock::true_now_ms()).unwrap_or(i64::MAX)
}

fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

impl State {
    fn stat(&self, path: &str) -> Option<zkc::Stat> {
        let n = self.nodes.get(path)?;
        let prefix = format!("{path}/");
        let children = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/'))
            .count();
        Some(zkc::Stat {
            czxid: n.czxid,
            mzxid: n.mzxid,
            pzxid: n.mzxid,
            ctime: n.ctime,
            mtime: n.mtime,
            version: n.version,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: n.ephemeral_owner,
            data_length: i32::try_from(n.data.len()).unwrap_or(i32::MAX),
            num_children: i32::try_from(children).unwrap_or(i32::MAX),
        })
    }

    fn has_children(&self, path: &str) -> bool {
        let prefix = format!("{path}/");
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// Fires (and forgets) the watches on `path` that `event` triggers.
    fn fire(&mut self, path: &str, event: NodeEvent) {
        let (fired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.watches)
            .into_iter()
            .partition(|w| {
                w.path == path && (w.kind == WatchKind::Exists || event != NodeEvent::Created)
            });
        self.watches = kept;
        for w in fired {
            let _ = w.tx.send(event);
        }
    }

    fn record(&mut self, session: i64, path: &str) {
        let (data, version) = self
            .nodes
            .get(path)
            .map_or((None, -1), |n| (Some(n.data.clone()), n.version));
        let change = Change {
            at_ms: crate::clock::true_now_ms(),
            session,
            path: path.to_string(),
            data,
            version,
        };
        if let Some(hook) = &self.on_change {
            hook(&change);
        }
        self.history.push(change);
    }

    fn may_change(&self, session: i64, owner: Option<&String>) -> bool {
        owner.is_none_or(|o| self.sessions.get(&session).and_then(|s| s.auth.as_ref()) == Some(o))
    }

    fn create(
        &mut self,
        session: i64,
        path: &str,
        data: &[u8],
        mode: Mode,
        access: Access,
    ) -> Result<zkc::Stat, zkc::Error> {
        if self.nodes.contains_key(path) {
            return Err(zkc::Error::NodeExists);
        }
        if let Some(p) = parent(path) {
            let Some(pn) = self.nodes.get(p) else {
                return Err(zkc::Error::NoNode);
            };
            if pn.ephemeral_owner != 0 {
                return Err(zkc::Error::NoChildrenForEphemerals);
            }
        }
        self.zxid += 1;
        let owner = match access {
            Access::Owned => self.sessions.get(&session).and_then(|s| s.auth.clone()),
            Access::Open => None,
        };
        self.nodes.insert(
            path.to_string(),
            Node {
                data: data.to_vec(),
                version: 0,
                ctime: now_ms(),
                mtime: now_ms(),
                czxid: self.zxid,
                mzxid: self.zxid,
                ephemeral_owner: if mode == Mode::Ephemeral { session } else { 0 },
                owner,
            },
        );
        self.record(session, path);
        self.fire(path, NodeEvent::Created);
        Ok(self.stat(path).expect("just created"))
    }

    fn set(
        &mut self,
        session: i64,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> Result<zkc::Stat, zkc::Error> {
        let n = self.nodes.get(path).ok_or(zkc::Error::NoNode)?;
        if version.is_some_and(|v| v != n.version) {
            return Err(zkc::Error::BadVersion);
        }
        if !self.may_change(session, n.owner.as_ref()) {
            return Err(zkc::Error::NoAuth);
        }
        self.zxid += 1;
        let zxid = self.zxid;
        let n = self.nodes.get_mut(path).expect("checked above");
        n.data = data.to_vec();
        n.version += 1;
        n.mtime = now_ms();
        n.mzxid = zxid;
        self.record(session, path);
        self.fire(path, NodeEvent::DataChanged);
        Ok(self.stat(path).expect("exists"))
    }

    fn delete(&mut self, session: i64, path: &str, version: Option<i32>) -> Result<(), zkc::Error> {
        let n = self.nodes.get(path).ok_or(zkc::Error::NoNode)?;
        if version.is_some_and(|v| v != n.version) {
            return Err(zkc::Error::BadVersion);
        }
        // ZooKeeper checks the delete permission on the parent.
        let parent_owner = parent(path).and_then(|p| self.nodes.get(p)?.owner.clone());
        if !self.may_change(session, parent_owner.as_ref()) {
            return Err(zkc::Error::NoAuth);
        }
        if self.has_children(path) {
            return Err(zkc::Error::NotEmpty);
        }
        self.zxid += 1;
        self.nodes.remove(path);
        self.record(session, path);
        self.fire(path, NodeEvent::Deleted);
        Ok(())
    }

    fn check_and_set(
        &mut self,
        session: i64,
        checks: &[(String, i32)],
        path: &str,
        data: &[u8],
        marker: Option<&(String, Access)>,
    ) -> Result<zkc::Stat, zkc::MultiWriteError> {
        let failed = |index, source| zkc::MultiWriteError::OperationFailed { index, source };
        for (index, (node, version)) in checks.iter().enumerate() {
            match self.nodes.get(node) {
                None => return Err(failed(index, zkc::Error::NoNode)),
                Some(n) if n.version != *version => {
                    return Err(failed(index, zkc::Error::BadVersion))
                }
                Some(_) => {}
            }
        }
        match self.nodes.get(path) {
            None => return Err(failed(checks.len(), zkc::Error::NoNode)),
            Some(n) if !self.may_change(session, n.owner.as_ref()) => {
                return Err(failed(checks.len(), zkc::Error::NoAuth))
            }
            Some(_) => {}
        }
        if let Some((node, _)) = marker {
            // All or nothing: the create is checked before the set is applied.
            if self.nodes.contains_key(node) {
                return Err(failed(checks.len() + 1, zkc::Error::NodeExists));
            }
            if parent(node).is_some_and(|p| !self.nodes.contains_key(p)) {
                return Err(failed(checks.len() + 1, zkc::Error::NoNode));
            }
        }
        let stat = self
            .set(session, path, data, None)
            .map_err(|e| failed(checks.len(), e))?;
        if let Some((node, access)) = marker {
            self.create(session, node, b"", Mode::Persistent, *access)
                .map_err(|e| failed(checks.len() + 1, e))?;
        }
        Ok(stat)
    }

    fn expire(&mut self, session: i64) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.expired {
            return;
        }
        s.expired = true;
        let ephemerals: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.ephemeral_owner == session)
            .map(|(p, _)| p.clone())
            .collect();
        for path in ephemerals {
            self.zxid += 1;
            self.nodes.remove(&path);
            self.record(session, &path);
            self.fire(&path, NodeEvent::Deleted);
        }
        let (ended, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.watches)
            .into_iter()
            .partition(|w| w.session == session);
        self.watches = kept;
        for w in ended {
            let _ = w.tx.send(NodeEvent::SessionEnded);
        }
    }
}

impl Ensemble {
    /// An empty ensemble whose sessions expire `session_timeout` after their holder is gone.
    #[must_use]
    pub fn new(session_timeout: Duration) -> Arc<Ensemble> {
        Arc::new(Ensemble {
            state: Mutex::default(),
            policy: Mutex::new(None),
            kill: Mutex::new(None),
            session_timeout,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Chooses every later call's fault with `policy`.
    pub fn set_policy(&self, policy: Option<ZkPolicy>) {
        *self
            .policy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = policy;
    }

    /// Tells `hook` of every later change as it is applied.
    pub fn set_change_hook(&self, hook: Option<ChangeHook>) {
        self.lock().on_change = hook;
    }

    /// Kills session holders with `hook` when a fault says so.
    pub fn set_kill_hook(&self, hook: Option<KillHook>) {
        *self
            .kill
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = hook;
    }

    fn kill_holder(&self, session: i64) {
        if let Some(hook) = self
            .kill
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            hook(session);
        }
    }

    fn fault(&self, session: i64, op: &'static str, path: &str) -> ZkFault {
        self.policy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
            .map_or_else(ZkFault::default, |p| p(session, op, path))
    }

    /// Opens a session with credentials `auth`.
    #[must_use]
    pub fn open(self: &Arc<Self>, auth: Option<&str>) -> SimSession {
        let mut st = self.lock();
        st.next_session += 1;
        let id = st.next_session;
        st.sessions.insert(
            id,
            Sess {
                auth: auth.map(str::to_string),
                ..Sess::default()
            },
        );
        SimSession {
            ensemble: self.clone(),
            id,
        }
    }

    /// A connector that opens sessions of this ensemble, for [`crate::routing::session`].
    #[must_use]
    pub fn connector(self: &Arc<Self>) -> Connector {
        let me = self.clone();
        std::rc::Rc::new(move |_servers: &[String], auth: Option<&str>| {
            Ok(Arc::new(me.open(auth)) as Arc<dyn Session>)
        })
    }

    /// Ends session `id` now, as the ensemble does when it stops hearing from it.
    pub fn expire(&self, id: i64) {
        self.lock().expire(id);
    }

    /// Sessions not yet expired.
    #[must_use]
    pub fn live_sessions(&self) -> Vec<i64> {
        let st = self.lock();
        st.sessions
            .iter()
            .filter(|(_, s)| !s.expired)
            .map(|(id, _)| *id)
            .collect()
    }

    /// A node's data and version, read outside any session (for checks).
    #[must_use]
    pub fn peek(&self, path: &str) -> Option<(Vec<u8>, i32)> {
        let st = self.lock();
        st.nodes.get(path).map(|n| (n.data.clone(), n.version))
    }

    /// Writes a node outside any session, creating parents (another operator's edit).
    pub fn poke(&self, path: &str, data: &[u8]) {
        let mut st = self.lock();
        let mut at = 0;
        while let Some(i) = path[at + 1..].find('/') {
            let p = &path[..at + 1 + i];
            if !st.nodes.contains_key(p) {
                let _ = st.create(0, p, b"", Mode::Persistent, Access::Open);
            }
            at += 1 + i;
        }
        if st.nodes.contains_key(path) {
            let _ = st.set(0, path, data, None);
        } else {
            let _ = st.create(0, path, data, Mode::Persistent, Access::Open);
        }
    }

    /// Deletes a node outside any session, whoever holds it (an operator's `delete` by hand).
    pub fn remove(&self, path: &str) {
        let _ = self.lock().delete(0, path, None);
    }

    /// Every change applied so far.
    #[must_use]
    pub fn history(&self) -> Vec<Change> {
        self.lock().history.clone()
    }

    /// Runs `apply` on session `id` as the server would: after earlier calls of the session,
    /// with this call's fault; the answer is awaited, the call applies even if nobody waits.
    fn run<T: Send + 'static>(
        self: &Arc<Self>,
        id: i64,
        op: &'static str,
        path: &str,
        apply: impl FnOnce(&mut State) -> Result<T, zkc::Error> + Send + 'static,
    ) -> Call<'static, Result<T, zkc::Error>> {
        let fault = self.fault(id, op, path);
        let me = self.clone();
        let order = self.lock().sessions.get(&id).map(|s| s.order.clone());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let Some(order) = order else {
                let _ = tx.send(Err(zkc::Error::SessionExpired));
                return;
            };
            let turn = order.lock().await;
            if fault.lose_before {
                drop(turn);
                tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
                let _ = tx.send(Err(zkc::Error::ConnectionLoss));
                return;
            }
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
            let result = {
                let mut st = me.lock();
                if fault.expire_session {
                    st.expire(id);
                }
                if st.sessions.get(&id).is_none_or(|s| s.expired) {
                    Err(zkc::Error::SessionExpired)
                } else {
                    apply(&mut st)
                }
            };
            drop(turn);
            if fault.kill_holder {
                me.kill_holder(id);
                return;
            }
            tokio::time::sleep(Duration::from_millis(fault.reply_delay_ms)).await;
            let answer = if fault.lose_after && !matches!(result, Err(zkc::Error::SessionExpired)) {
                Err(zkc::Error::ConnectionLoss)
            } else {
                result
            };
            let _ = tx.send(answer);
        });
        Box::pin(async move { rx.await.unwrap_or(Err(zkc::Error::ConnectionLoss)) })
    }

    fn watch(&self, st: &mut State, session: i64, path: &str, kind: WatchKind) -> Watcher {
        let (tx, rx) = oneshot::channel();
        st.watches.push(WatchEntry {
            path: path.to_string(),
            kind,
            session,
            tx,
        });
        Watcher::Sim(rx)
    }

    /// Called when the last handle of session `id` is dropped: it expires a session timeout
    /// later, as the ensemble stops hearing its heartbeats.
    fn orphan(self: &Arc<Self>, id: i64) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.clone();
        let timeout = self.session_timeout;
        rt.spawn(async move {
            tokio::time::sleep(timeout).await;
            me.expire(id);
        });
    }
}

/// One session of a simulated ensemble.
pub struct SimSession {
    ensemble: Arc<Ensemble>,
    id: i64,
}

impl std::fmt::Debug for SimSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimSession({})", self.id)
    }
}

impl SimSession {
    /// The session id.
    #[must_use]
    pub fn id(&self) -> i64 {
        self.id
    }
}

impl Drop for SimSession {
    fn drop(&mut self) {
        self.ensemble.orphan(self.id);
    }
}

impl Session for SimSession {
    fn get_data<'a>(&'a self, path: &'a str) -> Call<'a, Result<Data, zkc::Error>> {
        let p = path.to_string();
        self.ensemble.run(self.id, "read", path, move |st| {
            let n = st.nodes.get(&p).ok_or(zkc::Error::NoNode)?;
            Ok((n.data.clone(), st.stat(&p).expect("exists")))
        })
    }

    fn get_and_watch_data<'a>(
        &'a self,
        path: &'a str,
    ) -> Call<'a, Result<WatchedData, zkc::Error>> {
        let (p, id, ens) = (path.to_string(), self.id, self.ensemble.clone());
        self.ensemble.run(self.id, "read", path, move |st| {
            let n = st.nodes.get(&p).ok_or(zkc::Error::NoNode)?;
            let data = n.data.clone();
            let stat = st.stat(&p).expect("exists");
            let w = ens.watch(st, id, &p, WatchKind::Data);
            Ok((data, stat, w))
        })
    }

    fn check_and_watch_stat<'a>(
        &'a self,
        path: &'a str,
    ) -> Call<'a, Result<WatchedStat, zkc::Error>> {
        let (p, id, ens) = (path.to_string(), self.id, self.ensemble.clone());
        self.ensemble.run(self.id, "exists", path, move |st| {
            let stat = st.stat(&p);
            let w = ens.watch(st, id, &p, WatchKind::Exists);
            Ok((stat, w))
        })
    }

    fn create<'a>(
        &'a self,
        path: &'a str,
        data: &'a [u8],
        mode: Mode,
        access: Access,
    ) -> Call<'a, Result<zkc::Stat, zkc::Error>> {
        let (p, d, id) = (path.to_string(), data.to_vec(), self.id);
        self.ensemble.run(self.id, "create", path, move |st| {
            st.create(id, &p, &d, mode, access)
        })
    }

    fn set_data<'a>(
        &'a self,
        path: &'a str,
        data: &'a [u8],
        version: Option<i32>,
    ) -> Call<'a, Result<zkc::Stat, zkc::Error>> {
        let (p, d, id) = (path.to_string(), data.to_vec(), self.id);
        self.ensemble
            .run(self.id, "set", path, move |st| st.set(id, &p, &d, version))
    }

    fn delete<'a>(
        &'a self,
        path: &'a str,
        version: Option<i32>,
    ) -> Call<'a, Result<(), zkc::Error>> {
        let (p, id) = (path.to_string(), self.id);
        self.ensemble.run(self.id, "delete", path, move |st| {
            st.delete(id, &p, version)
        })
    }

    fn mkdir<'a>(&'a self, path: &'a str, access: Access) -> Call<'a, Result<(), zkc::Error>> {
        let (p, id) = (path.to_string(), self.id);
        self.ensemble.run(self.id, "mkdir", path, move |st| {
            let mut at = 0;
            loop {
                let end = p[at + 1..].find('/').map_or(p.len(), |i| at + 1 + i);
                let prefix = &p[..end];
                if !st.nodes.contains_key(prefix) {
                    st.create(id, prefix, b"", Mode::Persistent, access)?;
                }
                if end == p.len() {
                    return Ok(());
                }
                at = end;
            }
        })
    }

    fn check_and_set<'a>(
        &'a self,
        checks: &'a [(&'a str, i32)],
        path: &'a str,
        data: &'a [u8],
        marker: Option<(&'a str, Access)>,
    ) -> Call<'a, Result<zkc::Stat, zkc::MultiWriteError>> {
        let owned: Vec<(String, i32)> =
            checks.iter().map(|(p, v)| ((*p).to_string(), *v)).collect();
        let (p, d, id) = (path.to_string(), data.to_vec(), self.id);
        let marker = marker.map(|(m, a)| (m.to_string(), a));
        // The transaction's own failure travels inside the call's success, so that the fault
        // path (lost, expired) stays the plain error of every other call.
        let call = self.ensemble.run(self.id, "multi", path, move |st| {
            Ok(st.check_and_set(id, &owned, &p, &d, marker.as_ref()))
        });
        Box::pin(async move {
            match call.await {
                Ok(result) => result,
                Err(source) => Err(zkc::MultiWriteError::RequestFailed { source }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::session::install_simulated;
    use crate::routing::zk::{CasConflict, Zk};

    async fn connect(ensemble: &Arc<Ensemble>) -> Zk {
        let _guard = install_simulated(ensemble.connector());
        Zk::connect(&["zk.sim:2181".into()], Duration::from_secs(5))
            .await
            .unwrap()
    }

    /// The same sequence as `routing::zk`'s test against the real server.
    #[tokio::test(start_paused = true)]
    async fn a_fenced_compare_and_set_creates_its_marker_exactly_when_it_commits() {
        let ensemble = Ensemble::new(Duration::from_secs(10));
        let zk = connect(&ensemble).await;
        let (node, fence, marker) = ("/m/route", "/m/lock", "/m/route.switched.1");
        zk.create_all(node, b"source").await.unwrap();
        zk.create_all(fence, b"").await.unwrap();
        let refused = zk
            .compare_and_set_guarded(node, 0, b"target", &[(fence, 7)], Some(marker))
            .await
            .unwrap();
        assert_eq!(refused, Err(CasConflict::Guard { path: fence.into() }));
        assert_eq!(zk.read(marker).await.unwrap(), None);
        let done = zk
            .compare_and_set_guarded(node, 0, b"target", &[(fence, 0)], Some(marker))
            .await
            .unwrap();
        assert_eq!(done, Ok(1));
        assert!(zk.read(marker).await.unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_ephemeral_node_outlives_its_dead_holder_by_the_session_timeout() {
        let ensemble = Ensemble::new(Duration::from_secs(10));
        let holder = connect(&ensemble).await;
        let other = connect(&ensemble).await;
        holder.create_ephemeral("/l/lock", b"me").await.unwrap();
        drop(holder);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(
            other.read("/l/lock").await.unwrap().is_some(),
            "still within the timeout"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            other.read("/l/lock").await.unwrap(),
            None,
            "expired with its session"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_lost_after_it_applied_says_unknown_and_did_apply() {
        let ensemble = Ensemble::new(Duration::from_secs(10));
        let zk = connect(&ensemble).await;
        zk.create_all("/u/n", b"a").await.unwrap();
        ensemble.set_policy(Some(Box::new(|_, op, _| ZkFault {
            lose_after: op == "set",
            ..ZkFault::default()
        })));
        let err = zk.set("/u/n", b"b", Some(0)).await.unwrap_err();
        assert!(err.outcome_unknown(), "{err}");
        ensemble.set_policy(None);
        assert_eq!(zk.read("/u/n").await.unwrap(), Some((b"b".to_vec(), 1)));
    }
}
