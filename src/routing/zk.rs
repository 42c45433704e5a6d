//! Owns ZooKeeper I/O for routing: one session, calls bounded by a timeout, typed outcomes.
//!
//! A call that times out or loses its connection may or may not have been applied by the
//! server, so it becomes [`ZkError::Unknown`]: callers must re-read before retrying. Routing
//! record parsing lives in the parent module; this file moves bytes and versions only.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zkc;

use super::session::{self, Access, Mode, Session, Watcher};

/// Negotiated session timeout: an ephemeral node (a lock) outlives a crashed owner this long.
/// Servers clamp it to [2, 20] ticks, so it stays valid for the usual 2 s tick.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Digest credentials (`user:password`) for ZooKeeper, from the environment
/// (`MIGRATOR_ZK_AUTH`) or a file named on the command line, never from the plan file.
#[derive(Clone)]
pub struct ZkAuth(String);

impl std::fmt::Debug for ZkAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.0.split(':').next().unwrap_or_default();
        write!(f, "ZkAuth({user}:***)")
    }
}

/// The environment variable that carries credentials (also to the guardian).
pub const AUTH_ENV: &str = "MIGRATOR_ZK_AUTH";

static AUTH: std::sync::OnceLock<Option<ZkAuth>> = std::sync::OnceLock::new();

impl ZkAuth {
    /// Credentials from `text` (`user:password`, surrounding whitespace ignored).
    ///
    /// # Errors
    /// Not `user:password`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text.split_once(':') {
            Some((user, pass)) if !user.is_empty() && !pass.is_empty() => Ok(Self(text.into())),
            _ => Err("ZooKeeper credentials must be user:password".into()),
        }
    }

    /// The credentials, as `AUTH_ENV` wants them.
    #[must_use]
    pub fn as_env(&self) -> &str {
        &self.0
    }

    /// Uses `auth` for every session this process opens (call once, at start-up).
    pub fn install(auth: Option<ZkAuth>) {
        let _ = AUTH.set(auth);
    }

    /// The installed credentials.
    #[must_use]
    pub fn installed() -> Option<&'static ZkAuth> {
        AUTH.get().and_then(Option::as_ref)
    }
}

/// A ZooKeeper session, cheap to clone; the session (and its ephemeral nodes) ends when the
/// last clone is dropped.
#[derive(Debug, Clone)]
pub struct Zk {
    client: Arc<dyn Session>,
    timeout: Duration,
    servers: Vec<String>,
    /// The session authenticated: migrator's own nodes are [`Access::Owned`].
    authed: bool,
}

/// Why a ZooKeeper call failed.
#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    /// `connect` was given an empty server list.
    #[error("no ZooKeeper servers given")]
    NoServers,
    /// No session could be established within the connect timeout.
    #[error("could not connect to ZooKeeper {servers} within {timeout:?}")]
    ConnectTimeout { servers: String, timeout: Duration },
    /// The servers refused the session or the connect string is malformed.
    #[error("could not connect to ZooKeeper {servers}: {reason}")]
    Connect { servers: String, reason: zkc::Error },
    /// No answer in time, or the connection broke mid-call: it may or may not have happened.
    #[error("ZooKeeper {op} of {path}: outcome unknown ({cause}); re-read before retrying")]
    Unknown {
        op: &'static str,
        path: String,
        cause: UnknownCause,
    },
    /// The node does not exist.
    #[error("ZooKeeper node {path} does not exist")]
    NoNode { path: String },
    /// The node already exists (for an ephemeral node: someone else holds it).
    #[error("ZooKeeper node {path} already exists")]
    NodeExists { path: String },
    /// A versioned write found the node at another version.
    #[error("ZooKeeper node {path} is not at the expected version")]
    BadVersion { path: String },
    /// Any other refusal (auth, bad path, expired session, ...).
    #[error("ZooKeeper {op} of {path} failed: {reason}")]
    Failed {
        op: &'static str,
        path: String,
        reason: zkc::Error,
    },
}

impl ZkError {
    /// Whether the call may have taken effect on the server although it reported no success.
    #[must_use]
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, ZkError::Unknown { .. })
    }
}

/// Why a call's outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownCause {
    /// Our per-call timeout passed first.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The client reported the connection lost or timed out while the call was in flight.
    #[error("connection lost")]
    ConnectionLost,
}

/// A compare-and-set that lost the race; not an error, the caller re-reads and re-plans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CasConflict {
    /// Someone wrote the node after it was read.
    #[error("ZooKeeper node {path} changed since it was read at version {expected_version}")]
    Changed { path: String, expected_version: i32 },
    /// Someone deleted the node after it was read.
    #[error("ZooKeeper node {path} was deleted since it was read at version {expected_version}")]
    Deleted { path: String, expected_version: i32 },
    /// A guard node changed or is gone (a lock lost with its session, a record moved on).
    #[error("ZooKeeper node {path} no longer guards this write (lost lock or moved record)")]
    Guard { path: String },
}

/// What woke a [`NodeWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeEvent {
    /// The node was created (the watch was set while it was missing).
    Created,
    /// The node was deleted.
    Deleted,
    /// The node's data was written (even with identical bytes).
    DataChanged,
    /// The node's children changed (not produced by data or existence watches).
    ChildrenChanged,
    /// The session expired or was closed: this watch will never fire; reconnect and re-read.
    SessionEnded,
}

/// A one-shot watch on one node, set by [`Zk::read_watch`].
#[derive(Debug)]
pub struct NodeWatch(Watcher);

impl NodeWatch {
    /// Resolves at the first change after the read. Not bounded by the call timeout: waiting
    /// is its purpose, so wrap it in the caller's own deadline.
    pub async fn changed(self) -> NodeEvent {
        self.0.changed().await
    }
}

impl Zk {
    /// Opens a session with the ensemble `servers` (`host:port` each). `timeout` bounds the
    /// connect and, afterwards, every call.
    ///
    /// # Errors
    /// [`ZkError::ConnectTimeout`] or [`ZkError::Connect`], naming the servers.
    pub async fn connect(servers: &[String], timeout: Duration) -> Result<Zk, ZkError> {
        if servers.is_empty() {
            return Err(ZkError::NoServers);
        }
        let joined = servers.join(",");
        let auth = ZkAuth::installed();
        let credentials = auth.map(|a| a.0.as_str());
        if let Some(simulated) = session::simulated() {
            return match simulated(servers, credentials) {
                Ok(client) => Ok(Zk {
                    client,
                    timeout,
                    servers: servers.to_vec(),
                    authed: auth.is_some(),
                }),
                Err(reason) => Err(ZkError::Connect {
                    servers: joined,
                    reason,
                }),
            };
        }
        let connect = session::Real::connect(&joined, SESSION_TIMEOUT, credentials);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(client)) => Ok(Zk {
                client: Arc::new(client),
                timeout,
                servers: servers.to_vec(),
                authed: auth.is_some(),
            }),
            Ok(Err(reason)) => Err(ZkError::Connect {
                servers: joined,
                reason,
            }),
            Err(_) => Err(ZkError::ConnectTimeout {
                servers: joined,
                timeout,
            }),
        }
    }

    /// The same session, with calls bounded by `timeout` instead (a step that must know soon).
    #[must_use]
    pub fn with_call_timeout(&self, timeout: Duration) -> Zk {
        Zk {
            timeout,
            ..self.clone()
        }
    }

    /// The servers this session was opened with.
    #[must_use]
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Reads a node's data and version; `None` if it does not exist.
    ///
    /// # Errors
    /// [`ZkError::Unknown`] on timeout or connection loss; [`ZkError::Failed`] otherwise.
    pub async fn read(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, ZkError> {
        Ok(self
            .read_stamped(path)
            .await?
            .map(|(data, version, _)| (data, version)))
    }

    /// Like [`Zk::read`], with the moment ZooKeeper last wrote the node (`mtime`, ms since the
    /// epoch by its own clock: see [`crate::clock::Shared`]).
    ///
    /// # Errors
    /// As [`Zk::read`].
    pub async fn read_stamped(&self, path: &str) -> Result<Option<(Vec<u8>, i32, i64)>, ZkError> {
        match self.bounded("read", path, self.client.get_data(path)).await {
            Ok((data, stat)) => Ok(Some((data, stat.version, stat.mtime))),
            Err(ZkError::NoNode { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`Zk::read`], and also sets a watch that fires at the next change: data written,
    /// node deleted, or (when it was missing) node created.
    ///
    /// # Errors
    /// As [`Zk::read`].
    pub async fn read_watch(
        &self,
        path: &str,
    ) -> Result<(Option<(Vec<u8>, i32)>, NodeWatch), ZkError> {
        match self
            .bounded("read", path, self.client.get_and_watch_data(path))
            .await
        {
            Ok((data, stat, watch)) => return Ok((Some((data, stat.version)), NodeWatch(watch))),
            Err(ZkError::NoNode { .. }) => {}
            Err(e) => return Err(e),
        }
        // A data watch cannot be set on a missing node; an exists-watch also fires on creation.
        let exists = self.client.check_and_watch_stat(path);
        let (stat, watch) = self.bounded("read", path, exists).await?;
        if stat.is_none() {
            return Ok((None, NodeWatch(watch)));
        }
        // Created between the two calls. The exists-watch already covers any later change, so
        // a plain read completes the answer.
        Ok((self.read(path).await?, NodeWatch(watch)))
    }

    /// Creates a persistent node with `data`, creating missing parents (empty, persistent,
    /// world-writable) first.
    ///
    /// # Errors
    /// [`ZkError::NodeExists`] if the node itself exists; timeouts as [`Zk::read`].
    pub async fn create_all(&self, path: &str, data: &[u8]) -> Result<(), ZkError> {
        self.create_parents(path).await?;
        let create = self
            .client
            .create(path, data, Mode::Persistent, Access::Open);
        self.bounded("create", path, create).await.map(drop)
    }

    /// Measures ZooKeeper's clock against this host's by writing `path` (created empty, open,
    /// if missing): the write's `mtime` is ZooKeeper's time while it was in flight.
    ///
    /// # Errors
    /// As [`Zk::set`]; the write's outcome unknown is an error too (no stamp was read).
    pub async fn shared_clock(&self, path: &str) -> Result<crate::clock::Shared, ZkError> {
        let mut created = false;
        loop {
            let sent = crate::clock::now_ms();
            let set = self.client.set_data(path, b"", None);
            match self.bounded("set", path, set).await {
                Ok(stat) => {
                    let answered = crate::clock::now_ms();
                    return Ok(crate::clock::Shared::from_write(stat.mtime, sent, answered));
                }
                Err(ZkError::NoNode { .. }) if !created => {
                    created = true;
                    match self.create_all(path, b"").await {
                        Ok(()) | Err(ZkError::NodeExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes `data`; with `expected_version`, only if the node is still at that version.
    /// Returns the new version.
    ///
    /// # Errors
    /// [`ZkError::BadVersion`], [`ZkError::NoNode`]; timeouts as [`Zk::read`].
    pub async fn set(
        &self,
        path: &str,
        data: &[u8],
        expected_version: Option<i32>,
    ) -> Result<i32, ZkError> {
        let set = self.client.set_data(path, data, expected_version);
        self.bounded("set", path, set)
            .await
            .map(|stat| stat.version)
    }

    /// Writes `data` only if the node is still at `expected_version`, as one multi transaction
    /// (check version + set data), so a future multi can check more nodes in the same step.
    /// Returns the new version, or the conflict when someone else got there first.
    ///
    /// # Errors
    /// [`ZkError::Unknown`] on timeout or connection loss: the write may have happened.
    pub async fn compare_and_set(
        &self,
        path: &str,
        expected_version: i32,
        data: &[u8],
    ) -> Result<Result<i32, CasConflict>, ZkError> {
        self.compare_and_set_guarded(path, expected_version, data, &[], None)
            .await
    }

    /// Like [`Zk::compare_and_set`], and in the same transaction checks that each `guards`
    /// node is still at its version: a fence (a lock node this session owns, a record this
    /// run moved), and creates `marker` (empty, migrator's own): a node that exists only if
    /// this transaction committed. A guard that fails is [`CasConflict::Guard`]: nothing was
    /// written.
    ///
    /// # Errors
    /// As [`Zk::compare_and_set`].
    pub async fn compare_and_set_guarded(
        &self,
        path: &str,
        expected_version: i32,
        data: &[u8],
        guards: &[(&str, i32)],
        marker: Option<&str>,
    ) -> Result<Result<i32, CasConflict>, ZkError> {
        const OP: &str = "compare-and-set";
        let mut checks = guards.to_vec();
        checks.push((path, expected_version));
        let marker = marker.map(|m| (m, self.mine()));
        let commit = self.client.check_and_set(&checks, path, data, marker);
        match tokio::time::timeout(self.timeout, commit).await {
            Err(_) => Err(unknown(OP, path, UnknownCause::TimedOut(self.timeout))),
            Ok(Ok(stat)) => Ok(Ok(stat.version)),
            Ok(Err(e)) => cas_failure(path, expected_version, guards, e),
        }
    }

    /// Deletes a node; with `expected_version`, only if it is still at that version.
    ///
    /// # Errors
    /// [`ZkError::NoNode`], [`ZkError::BadVersion`]; timeouts as [`Zk::read`].
    pub async fn delete(&self, path: &str, expected_version: Option<i32>) -> Result<(), ZkError> {
        let delete = self.client.delete(path, expected_version);
        self.bounded("delete", path, delete).await
    }

    /// Creates an ephemeral node of migrator's (a lock), which lives as long as this session;
    /// creates missing parents. Authenticated sessions make them owned (see [`ZkAuth`]).
    ///
    /// # Errors
    /// [`ZkError::NodeExists`] if the node exists, i.e. another session holds it.
    pub async fn create_ephemeral(&self, path: &str, data: &[u8]) -> Result<(), ZkError> {
        self.create_mine(path, data, Mode::Ephemeral).await
    }

    /// Creates a persistent node of migrator's (a block record) and its missing parents,
    /// owned when the session authenticated.
    ///
    /// # Errors
    /// [`ZkError::NodeExists`] if the node exists; timeouts as [`Zk::read`].
    pub async fn create_owned(&self, path: &str, data: &[u8]) -> Result<(), ZkError> {
        self.create_mine(path, data, Mode::Persistent).await
    }

    /// Who may change migrator's own nodes: only its credentials when it authenticated.
    fn mine(&self) -> Access {
        if self.authed {
            Access::Owned
        } else {
            Access::Open
        }
    }

    async fn create_mine(&self, path: &str, data: &[u8], mode: Mode) -> Result<(), ZkError> {
        let access = self.mine();
        let create = self.client.create(path, data, mode, access);
        match self.bounded("create", path, create).await {
            Err(ZkError::NoNode { .. }) => self.create_parents_with(path, access).await?,
            other => return other.map(drop),
        }
        let create = self.client.create(path, data, mode, access);
        self.bounded("create", path, create).await.map(drop)
    }

    /// `mkdir -p` of the parent of `path`; the root always exists.
    async fn create_parents(&self, path: &str) -> Result<(), ZkError> {
        self.create_parents_with(path, Access::Open).await
    }

    async fn create_parents_with(&self, path: &str, access: Access) -> Result<(), ZkError> {
        match path.rfind('/') {
            Some(i) if i > 0 => {
                let parent = &path[..i];
                self.bounded("create parents", parent, self.client.mkdir(parent, access))
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Runs one call under the session's timeout and types its error.
    async fn bounded<T>(
        &self,
        op: &'static str,
        path: &str,
        call: impl Future<Output = Result<T, zkc::Error>>,
    ) -> Result<T, ZkError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(op, path, e)),
            Err(_) => Err(unknown(op, path, UnknownCause::TimedOut(self.timeout))),
        }
    }
}

/// The multi fails as a whole; ZooKeeper reports the first failing operation with its index:
/// a guard (the first `guards.len()`), or the node's own version check right after them,
/// which means someone else wrote or deleted the node.
fn cas_failure(
    path: &str,
    expected_version: i32,
    guards: &[(&str, i32)],
    error: zkc::MultiWriteError,
) -> Result<Result<i32, CasConflict>, ZkError> {
    let check = guards.len();
    match error {
        zkc::MultiWriteError::OperationFailed {
            index,
            source: zkc::Error::BadVersion | zkc::Error::NoNode,
        } if index < check => Ok(Err(CasConflict::Guard {
            path: guards[index].0.to_owned(),
        })),
        zkc::MultiWriteError::OperationFailed {
            index,
            source: zkc::Error::BadVersion,
        } if index == check => Ok(Err(CasConflict::Changed {
            path: path.to_owned(),
            expected_version,
        })),
        zkc::MultiWriteError::OperationFailed {
            index,
            source: zkc::Error::NoNode,
        } if index == check => Ok(Err(CasConflict::Deleted {
            path: path.to_owned(),
            expected_version,
        })),
        zkc::MultiWriteError::OperationFailed { source, .. }
        | zkc::MultiWriteError::RequestFailed { source } => {
            Err(classify("compare-and-set", path, source))
        }
    }
}

fn classify(op: &'static str, path: &str, error: zkc::Error) -> ZkError {
    let path = path.to_owned();
    match error {
        zkc::Error::NoNode => ZkError::NoNode { path },
        zkc::Error::NodeExists => ZkError::NodeExists { path },
        zkc::Error::BadVersion => ZkError::BadVersion { path },
        zkc::Error::ConnectionLoss | zkc::Error::Timeout => ZkError::Unknown {
            op,
            path,
            cause: UnknownCause::ConnectionLost,
        },
        reason => ZkError::Failed { op, path, reason },
    }
}

fn unknown(op: &'static str, path: &str, cause: UnknownCause) -> ZkError {
    ZkError::Unknown {
        op,
        path: path.to_owned(),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::routing::test_zk::{unique, TestZk, TIMEOUT};

    #[tokio::test]
    async fn create_all_makes_parents_and_read_returns_data_and_version() {
        let zk = TestZk::get();
        let zk = zk.connect().await;
        let base = unique("create_all");
        let node = format!("{base}/metaproxy/orders");

        zk.create_all(&node, b"route").await.unwrap();
        zk.create_all(&format!("{base}/metaproxy/users"), b"")
            .await
            .unwrap();

        assert_eq!(zk.read(&node).await.unwrap(), Some((b"route".to_vec(), 0)));
        let again = zk.create_all(&node, b"x").await.unwrap_err();
        assert!(
            matches!(again, ZkError::NodeExists { ref path } if *path == node),
            "{again}"
        );
    }

    #[tokio::test]
    async fn the_shared_clock_is_read_by_writing_a_node_it_creates_when_missing() {
        let zk = TestZk::get();
        let zk = zk.connect().await;
        let node = format!("{}/clock", unique("clock"));
        let first = zk.shared_clock(&node).await.unwrap();
        let again = zk.shared_clock(&node).await.unwrap();
        // The server runs on this host: its clock is this one, give or take a round trip.
        for c in [first, again] {
            assert!(c.offset_ms.abs() < 2_000, "{c:?}");
        }
        assert_eq!(zk.read(&node).await.unwrap().map(|(_, v)| v), Some(2));
    }

    #[tokio::test]
    async fn read_of_a_missing_node_is_none() {
        let zk = TestZk::get();
        let zk = zk.connect().await;
        assert_eq!(zk.read(&unique("missing")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn set_with_a_wrong_version_fails_and_with_the_right_one_succeeds() {
        let zk = TestZk::get();
        let zk = zk.connect().await;
        let node = unique("set");
        zk.create_all(&node, b"v0").await.unwrap();

        let err = zk.set(&node, b"v1", Some(5)).await.unwrap_err();
        assert!(matches!(err, ZkError::BadVersion { .. }), "{err}");
        assert!(err.to_string().contains(&node), "{err}");

        assert_eq!(zk.set(&node, b"v1", Some(0)).await.unwrap(), 1);
        assert_eq!(zk.set(&node, b"v2", None).await.unwrap(), 2);
        assert_eq!(zk.read(&node).await.unwrap(), Some((b"v2".to_vec(), 2)));
    }

    #[tokio::test]
    async fn compare_and_set_applies_once_then_reports_a_conflict() {
        let zk = TestZk::get();
        let zk = zk.connect().await;
        let node = unique("cas");
        zk.create_all(&node, b"source").await.unwrap();

        assert_eq!(
            zk.compare_and_set(&node, 0, b"target").await.unwrap(),
            Ok(1)
        );
        let stale = zk.compare_and_set(&node, 0, b"other").await.unwrap();
        assert_eq!(
            stale,
            Err(CasConflict::Changed {
                path: node.clone(),
                expected_version: 0
            })
        );
        assert_eq!(zk.read(&node).await.unwrap(), Some((b"target".to_vec(), 1)));

        zk.delete(&node, Some(1)).await.unwrap();
        let gone = zk.compare_and_set(&node, 1, b"other").await.unwrap();
        assert_eq!(
            gone,
            Err(CasConflict::Deleted {
                path: node,
                expected_version: 1
            })
        );
    }

    #[tokio::test]
    async fn a_fenced_compare_and_set_creates_its_marker_exactly_when_it_commits() {
        let zk = TestZk::get();
        let zk = zk.connect().await;
        let base = unique("marker");
        let (node, fence, marker) = (
            format!("{base}/route"),
            format!("{base}/lock"),
            format!("{base}/route.switched.1"),
        );
        zk.create_all(&node, b"source").await.unwrap();
        zk.create_all(&fence, b"").await.unwrap();

        let refused = zk
            .compare_and_set_guarded(&node, 0, b"target", &[(&fence, 7)], Some(&marker))
            .await
            .unwrap();
        assert_eq!(
            refused,
            Err(CasConflict::Guard {
                path: fence.clone()
            })
        );
        assert_eq!(
            zk.read(&marker).await.unwrap(),
            None,
            "nothing of a refused multi"
        );
        assert_eq!(zk.read(&node).await.unwrap(), Some((b"source".to_vec(), 0)));

        let done = zk
            .compare_and_set_guarded(&node, 0, b"target", &[(&fence, 0)], Some(&marker))
            .await
            .unwrap();
        assert_eq!(done, Ok(1));
        assert!(
            zk.read(&marker).await.unwrap().is_some(),
            "the marker came with it"
        );
    }

    #[tokio::test]
    async fn delete_checks_the_version() {
        let zk = TestZk::get();
        let zk = zk.connect().await;
        let node = unique("delete");
        zk.create_all(&node, b"").await.unwrap();

        let err = zk.delete(&node, Some(3)).await.unwrap_err();
        assert!(matches!(err, ZkError::BadVersion { .. }), "{err}");
        zk.delete(&node, Some(0)).await.unwrap();
        let err = zk.delete(&node, None).await.unwrap_err();
        assert!(matches!(err, ZkError::NoNode { .. }), "{err}");
    }

    #[tokio::test]
    async fn watch_fires_on_set_data_and_on_creation() {
        let zk = TestZk::get();
        let zk = zk.connect().await;
        let node = unique("watch");

        let (found, watch) = zk.read_watch(&node).await.unwrap();
        assert_eq!(found, None);
        zk.create_all(&node, b"v0").await.unwrap();
        let event = tokio::time::timeout(TIMEOUT, watch.changed())
            .await
            .unwrap();
        assert_eq!(event, NodeEvent::Created);

        let (found, watch) = zk.read_watch(&node).await.unwrap();
        assert_eq!(found, Some((b"v0".to_vec(), 0)));
        zk.set(&node, b"v1", Some(0)).await.unwrap();
        let event = tokio::time::timeout(TIMEOUT, watch.changed())
            .await
            .unwrap();
        assert_eq!(event, NodeEvent::DataChanged);

        let (_, watch) = zk.read_watch(&node).await.unwrap();
        zk.delete(&node, None).await.unwrap();
        let event = tokio::time::timeout(TIMEOUT, watch.changed())
            .await
            .unwrap();
        assert_eq!(event, NodeEvent::Deleted);
    }

    #[tokio::test]
    async fn ephemeral_node_is_exclusive_and_vanishes_with_its_session() {
        let server = TestZk::get();
        let holder = server.connect().await;
        let other = server.connect().await;
        let node = format!("{}/lock", unique("ephemeral"));

        holder.create_ephemeral(&node, b"holder").await.unwrap();
        let err = other.create_ephemeral(&node, b"other").await.unwrap_err();
        assert!(
            matches!(err, ZkError::NodeExists { ref path } if *path == node),
            "{err}"
        );

        drop(holder);
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while other.read(&node).await.unwrap().is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{node} outlived its session"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        other.create_ephemeral(&node, b"other").await.unwrap();
    }

    #[tokio::test]
    async fn connect_to_a_dead_server_fails_in_time_and_names_it() {
        // Port 1 on loopback: nothing listens there.
        let servers = ["127.0.0.1:1".to_owned()];
        let started = std::time::Instant::now();
        let err = Zk::connect(&servers, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }

    #[tokio::test]
    async fn calls_after_the_server_stops_report_an_unknown_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let server =
            crate::sim::zk_server::ZkServer::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let zk = Zk::connect(&[server.addr().to_string()], TIMEOUT)
            .await
            .unwrap();
        drop(server);
        let err = zk.set("/anything", b"", None).await.unwrap_err();
        assert!(err.outcome_unknown(), "{err}");
        assert!(err.to_string().contains("outcome unknown"), "{err}");
    }
}
