//! Owns the meta-server client: leader discovery and redirection across the configured
//! addresses, a deadline per call, and typed methods for the admin RPCs.
//!
//! A non-leader answers `ERR_FORWARD_TO_OTHERS` inside the response; for query-config it also
//! names the leader in `partitions[0].primary` (upstream `src/meta/meta_service.h` `check_leader`). The client follows that
//! hint when there is one and otherwise rotates through the configured metas.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::base::err;
use super::connection::Pool;
use super::error::{Error, Result};
use super::frame::RequestHeader;
use super::messages::apps::{
    AppEnvOperation, AppInfo, AppStatus, CreateApp, CreateAppOptions, CreateAppRequest, DropApp,
    DropAppOptions, DropAppRequest, ListApps, ListAppsRequest, QueryCfgRequest, QueryCfgResponse,
    QueryConfig, UpdateAppEnv, UpdateAppEnvRequest,
};
use super::messages::duplication::{
    AddDuplication, AddDuplicationRequest, AddDuplicationResponse, DuplicationStatus,
    ModifyDuplication, ModifyDuplicationRequest, QueryDuplication, QueryDuplicationRequest,
    QueryDuplicationResponse,
};
use super::messages::nodes::{
    ClusterInfo, ClusterInfoRequest, ClusterInfoResponse, ListNodes, ListNodesRequest, NodeInfo,
    NodeStatus,
};
use super::messages::{HasErr, Rpc};

/// Timeouts of a meta client.
#[derive(Debug, Clone, Copy)]
pub struct MetaOptions {
    /// Deadline of one call, redirects and retries across metas included.
    pub call_timeout: Duration,
    /// Deadline of a TCP connect.
    pub connect_timeout: Duration,
    /// Pause before retrying when a meta says it is not ready yet.
    pub not_active_backoff: Duration,
}

impl Default for MetaOptions {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            not_active_backoff: Duration::from_millis(200),
        }
    }
}

/// A client of one cluster's meta servers.
#[derive(Debug, Clone)]
pub struct MetaClient {
    metas: Arc<Mutex<Vec<SocketAddr>>>,
    leader: Arc<AtomicUsize>,
    pool: Pool,
    opts: MetaOptions,
}

impl MetaClient {
    /// A client for the given meta addresses (no I/O until the first call).
    #[must_use]
    pub fn new(metas: Vec<SocketAddr>, opts: MetaOptions) -> Self {
        Self {
            metas: Arc::new(Mutex::new(metas)),
            leader: Arc::default(),
            pool: Pool::new(opts.connect_timeout),
            opts,
        }
    }

    /// The configured (and discovered) meta addresses.
    #[must_use]
    pub fn metas(&self) -> Vec<SocketAddr> {
        self.metas.lock().expect("meta list lock").clone()
    }

    /// The address currently believed to be the leader.
    #[must_use]
    pub fn leader(&self) -> SocketAddr {
        let metas = self.metas();
        metas
            .get(self.leader.load(Ordering::Relaxed) % metas.len().max(1))
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Sends `req` to the leader, following redirects, all within `call_timeout`; returns the
    /// response whatever its application error, except the leader-related ones this method
    /// handles.
    ///
    /// # Errors
    /// Transport and RPC-level errors from every meta, as [`Error::NoLeader`].
    pub async fn call_any<R>(&self, req: &R::Request) -> Result<R::Response>
    where
        R: Rpc,
        R::Response: HasErr + LeaderHint,
    {
        let attempts = self.metas().len() * 2 + 1;
        let mut last: Option<Error> = None;
        let mut target = self.leader();
        // One deadline for the whole call, redirects and retries included.
        let deadline = tokio::time::Instant::now() + self.opts.call_timeout;
        for _ in 0..attempts {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let call = self
                .pool
                .call::<R>(target, RequestHeader::default(), req, left);
            let outcome = tokio::time::timeout(left, call)
                .await
                .unwrap_or(Err(Error::Timeout {
                    addr: target,
                    rpc: R::NAME,
                    timeout: self.opts.call_timeout,
                }));
            match outcome {
                Ok(resp) if resp.err().is(err::FORWARD_TO_OTHERS) => {
                    last = Some(app_error::<R>(target, &resp));
                    target = match resp.leader_hint() {
                        Some(hint) if hint != target => self.remember(hint),
                        _ => self.next_after(target),
                    };
                }
                Ok(resp) if resp.err().is(err::SERVICE_NOT_ACTIVE) => {
                    last = Some(app_error::<R>(target, &resp));
                    tokio::time::sleep(self.opts.not_active_backoff).await;
                    target = self.next_after(target);
                }
                Ok(resp) => {
                    self.remember(target);
                    return Ok(resp);
                }
                Err(e @ Error::Rpc { .. }) if !e.is(err::SERVICE_NOT_ACTIVE) => return Err(e),
                Err(e) => {
                    if e.outcome_unknown() || matches!(e, Error::Connect { .. }) {
                        self.pool.evict(target).await;
                    }
                    last = Some(e);
                    target = self.next_after(target);
                }
            }
        }
        let metas = self
            .metas()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let last = last.unwrap_or(Error::Connect {
            addr: target,
            reason: "no attempt".into(),
        });
        Err(Error::NoLeader {
            metas,
            last: Box::new(last),
        })
    }

    /// Like [`call_any`](Self::call_any) but an application error other than `ERR_OK` fails.
    ///
    /// # Errors
    /// As `call_any`, plus [`Error::App`].
    pub async fn call<R>(&self, req: &R::Request) -> Result<R::Response>
    where
        R: Rpc,
        R::Response: HasErr + LeaderHint,
    {
        let resp = self.call_any::<R>(req).await?;
        if resp.err().is_ok() {
            Ok(resp)
        } else {
            Err(app_error::<R>(self.leader(), &resp))
        }
    }

    fn remember(&self, addr: SocketAddr) -> SocketAddr {
        let mut metas = self.metas.lock().expect("meta list lock");
        let idx = metas.iter().position(|m| *m == addr).unwrap_or_else(|| {
            metas.push(addr);
            metas.len() - 1
        });
        self.leader.store(idx, Ordering::Relaxed);
        addr
    }

    fn next_after(&self, addr: SocketAddr) -> SocketAddr {
        let metas = self.metas();
        let idx = metas.iter().position(|m| *m == addr).unwrap_or(0);
        metas
            .get((idx + 1) % metas.len().max(1))
            .copied()
            .unwrap_or(addr)
    }

    /// Lists tables with the given status (`AS_INVALID` = all).
    ///
    /// # Errors
    /// Any call failure.
    pub async fn list_apps(&self, status: AppStatus) -> Result<Vec<AppInfo>> {
        let req = ListAppsRequest {
            status,
            ..Default::default()
        };
        Ok(self.call::<ListApps>(&req).await?.infos)
    }

    /// The available table called `table`, if there is one.
    ///
    /// # Errors
    /// Any call failure.
    pub async fn available_app(&self, table: &str) -> Result<Option<AppInfo>> {
        let apps = self.list_apps(AppStatus::AS_AVAILABLE).await?;
        Ok(apps.into_iter().find(|a| a.app_name == table))
    }

    /// A table's partition configuration (`ERR_OBJECT_NOT_FOUND` if it does not exist).
    ///
    /// # Errors
    /// Any call failure.
    pub async fn query_config(&self, table: &str) -> Result<QueryCfgResponse> {
        let req = QueryCfgRequest {
            app_name: table.to_string(),
            partition_indices: vec![],
        };
        self.call::<QueryConfig>(&req).await
    }

    /// Cluster facts (`cluster_name`, `meta_servers`, ...).
    ///
    /// # Errors
    /// Any call failure.
    pub async fn cluster_info(&self) -> Result<ClusterInfoResponse> {
        self.call::<ClusterInfo>(&ClusterInfoRequest {}).await
    }

    /// Replica servers, alive and dead.
    ///
    /// # Errors
    /// Any call failure.
    pub async fn list_nodes(&self) -> Result<Vec<NodeInfo>> {
        let req = ListNodesRequest {
            status: NodeStatus::NS_INVALID,
        };
        Ok(self.call::<ListNodes>(&req).await?.infos)
    }

    /// A table's duplications.
    ///
    /// # Errors
    /// Any call failure (`ERR_APP_NOT_EXIST` for a missing table).
    pub async fn query_duplication(&self, table: &str) -> Result<QueryDuplicationResponse> {
        let req = QueryDuplicationRequest {
            app_name: table.to_string(),
        };
        self.call::<QueryDuplication>(&req).await
    }

    /// Adds a duplication; the response is returned whatever its error, because 2.6 answers a
    /// re-add with `ERR_DUP_EXIST` and the existing duplication's id.
    ///
    /// # Errors
    /// Transport and RPC-level failures.
    pub async fn add_duplication(
        &self,
        req: &AddDuplicationRequest,
    ) -> Result<AddDuplicationResponse> {
        self.call_any::<AddDuplication>(req).await
    }

    /// Changes a duplication's status.
    ///
    /// Retries while the meta answers `ERR_BUSY`, within the call deadline.
    ///
    /// # Errors
    /// Any call failure.
    pub async fn modify_duplication(
        &self,
        table: &str,
        dupid: i32,
        status: DuplicationStatus,
    ) -> Result<()> {
        let req = ModifyDuplicationRequest {
            app_name: table.to_string(),
            dupid,
            status: Some(status),
            fail_mode: None,
        };
        // ERR_BUSY: an earlier change of this duplication is still being persisted.
        let deadline = tokio::time::Instant::now() + self.opts.call_timeout;
        loop {
            match self.call::<ModifyDuplication>(&req).await {
                Err(e) if e.is(err::BUSY) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(self.opts.not_active_backoff).await;
                }
                other => return other.map(drop),
            }
        }
    }

    /// Sets table envs.
    ///
    /// # Errors
    /// Any call failure (`ERR_INVALID_PARAMETERS` with a hint for a rejected value).
    pub async fn set_app_envs(&self, table: &str, envs: &[(&str, &str)]) -> Result<()> {
        let req = UpdateAppEnvRequest {
            app_name: table.to_string(),
            op: AppEnvOperation::APP_ENV_OP_SET,
            keys: Some(envs.iter().map(|(k, _)| (*k).to_string()).collect()),
            values: Some(envs.iter().map(|(_, v)| (*v).to_string()).collect()),
            clear_prefix: None,
        };
        self.call::<UpdateAppEnv>(&req).await.map(drop)
    }

    /// Deletes table envs.
    ///
    /// # Errors
    /// Any call failure.
    pub async fn del_app_envs(&self, table: &str, keys: &[&str]) -> Result<()> {
        let req = UpdateAppEnvRequest {
            app_name: table.to_string(),
            op: AppEnvOperation::APP_ENV_OP_DEL,
            keys: Some(keys.iter().map(|k| (*k).to_string()).collect()),
            values: None,
            clear_prefix: None,
        };
        self.call::<UpdateAppEnv>(&req).await.map(drop)
    }

    /// Clears envs with `prefix` (all when empty).
    ///
    /// # Errors
    /// Any call failure.
    pub async fn clear_app_envs(&self, table: &str, prefix: &str) -> Result<()> {
        let req = UpdateAppEnvRequest {
            app_name: table.to_string(),
            op: AppEnvOperation::APP_ENV_OP_CLEAR,
            keys: None,
            values: None,
            clear_prefix: Some(prefix.to_string()),
        };
        self.call::<UpdateAppEnv>(&req).await.map(drop)
    }

    /// Creates a table; returns its app id.
    ///
    /// # Errors
    /// Any call failure (`ERR_APP_EXIST` when it exists and `success_if_exist` is false).
    pub async fn create_app(&self, table: &str, options: CreateAppOptions) -> Result<i32> {
        let req = CreateAppRequest {
            app_name: table.to_string(),
            options,
        };
        Ok(self.call::<CreateApp>(&req).await?.appid)
    }

    /// Drops a table.
    ///
    /// # Errors
    /// Any call failure.
    pub async fn drop_app(&self, table: &str) -> Result<()> {
        let req = DropAppRequest {
            app_name: table.to_string(),
            options: DropAppOptions {
                success_if_not_exist: false,
                reserve_seconds: None,
            },
        };
        self.call::<DropApp>(&req).await.map(drop)
    }
}

fn app_error<R: Rpc>(addr: SocketAddr, resp: &R::Response) -> Error
where
    R::Response: HasErr,
{
    Error::App {
        addr,
        rpc: R::NAME,
        code: resp.err().clone(),
        hint: resp.hint().map(str::to_string),
    }
}

/// Responses that can name the meta leader when sent to a non-leader.
pub trait LeaderHint {
    /// The leader's address, if this response names one.
    fn leader_hint(&self) -> Option<SocketAddr> {
        None
    }
}

impl LeaderHint for QueryCfgResponse {
    fn leader_hint(&self) -> Option<SocketAddr> {
        self.partitions.first().and_then(|p| p.primary.to_socket())
    }
}

macro_rules! no_leader_hint {
    ($($t:ty),*) => { $(impl LeaderHint for $t {})* };
}
use super::messages::apps::{
    CreateAppResponse, DropAppResponse, ListAppsResponse, UpdateAppEnvResponse,
};
use super::messages::duplication::{ListDuplicationResponse, ModifyDuplicationResponse};
use super::messages::nodes::ListNodesResponse;
no_leader_hint!(
    ListAppsResponse,
    UpdateAppEnvResponse,
    CreateAppResponse,
    DropAppResponse,
    QueryDuplicationResponse,
    AddDuplicationResponse,
    ModifyDuplicationResponse,
    ListDuplicationResponse,
    ListNodesResponse,
    ClusterInfoResponse
);
