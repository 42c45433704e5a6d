//! Owns calls to replica servers: data RPCs addressed to a partition, remote commands, and
//! the HTTP endpoints served on the same port.

use std::net::SocketAddr;
use std::time::Duration;

use super::base::Gpid;
use super::connection::Pool;
use super::error::{Error, Result};
use super::frame::RequestHeader;
use super::http::HttpClient;
use super::messages::apps::{AppInfo, QueryAppInfo, QueryAppInfoRequest};
use super::messages::command::{Command, RemoteCommand};
use super::messages::replica_admin::{QueryReplicaInfo, QueryReplicaInfoRequest, ReplicaInfo};
use super::messages::Rpc;

/// The v0 header of a request to partition `gpid` for a key with routing hash `hash`.
#[must_use]
pub fn data_header(gpid: Gpid, hash: u64) -> RequestHeader {
    RequestHeader {
        app_id: gpid.app_id,
        partition_index: gpid.partition_index,
        client_timeout_ms: 0,
        thread_hash: gpid.thread_hash(),
        partition_hash: hash,
    }
}

/// A client of replica servers (any number, pooled connections).
#[derive(Debug, Clone)]
pub struct ReplicaClient {
    pool: Pool,
    http: HttpClient,
    timeout: Duration,
}

impl ReplicaClient {
    /// A client whose calls wait at most `timeout`.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self {
            pool: Pool::new(timeout),
            http: HttpClient::default(),
            timeout,
        }
    }

    /// The per-call deadline.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends data RPC `R` to `addr` for partition `gpid`.
    ///
    /// # Errors
    /// Transport failures and RPC-level errors (`ERR_INVALID_STATE`, `ERR_OBJECT_NOT_FOUND`, ...).
    pub async fn call<R: Rpc>(
        &self,
        addr: SocketAddr,
        gpid: Gpid,
        hash: u64,
        req: &R::Request,
    ) -> Result<R::Response> {
        self.call_within::<R>(addr, gpid, hash, req, self.timeout)
            .await
    }

    /// Like [`ReplicaClient::call`], waiting at most `timeout` for the reply (scans wait
    /// longer than other reads: the server may work on a batch for 30 s).
    ///
    /// # Errors
    /// Transport failures and RPC-level errors.
    pub async fn call_within<R: Rpc>(
        &self,
        addr: SocketAddr,
        gpid: Gpid,
        hash: u64,
        req: &R::Request,
        timeout: Duration,
    ) -> Result<R::Response> {
        let result = self
            .pool
            .call::<R>(addr, data_header(gpid, hash), req, timeout)
            .await;
        if let Err(e) = &result {
            if matches!(e, Error::ConnectionLost { .. } | Error::Connect { .. }) {
                self.pool.evict(addr).await;
            }
        }
        result
    }

    /// Sends one-way data RPC `R` to `addr` for partition `gpid` (no reply is awaited).
    ///
    /// # Errors
    /// The server cannot be reached.
    pub async fn send<R: Rpc>(
        &self,
        addr: SocketAddr,
        gpid: Gpid,
        hash: u64,
        req: &R::Request,
    ) -> Result<()> {
        let conn = self.pool.get(addr).await?;
        conn.send::<R>(data_header(gpid, hash), req)
    }

    /// Runs a remote command on any server (meta or replica) and returns its output.
    ///
    /// # Errors
    /// Transport and RPC-level failures.
    pub async fn command(&self, addr: SocketAddr, cmd: &str, args: &[&str]) -> Result<String> {
        let req = Command {
            cmd: cmd.to_string(),
            arguments: args.iter().map(|a| (*a).to_string()).collect(),
        };
        self.pool
            .call::<RemoteCommand>(addr, RequestHeader::default(), &req, self.timeout)
            .await
    }

    /// The tables replica server `addr` hosts, with the envs it has applied (config sync).
    ///
    /// # Errors
    /// Transport, RPC-level or application failures.
    pub async fn query_app_info(&self, addr: SocketAddr) -> Result<Vec<AppInfo>> {
        let resp = self
            .pool
            .call::<QueryAppInfo>(
                addr,
                RequestHeader::default(),
                &QueryAppInfoRequest::default(),
                self.timeout,
            )
            .await?;
        if !resp.err.is_ok() {
            return Err(Error::App {
                addr,
                rpc: QueryAppInfo::NAME,
                code: resp.err,
                hint: None,
            });
        }
        Ok(resp.apps)
    }

    /// Every replica server `addr` hosts, with its role, ballot and decrees.
    ///
    /// # Errors
    /// Transport, RPC-level or application failures.
    pub async fn query_replica_info(&self, addr: SocketAddr) -> Result<Vec<ReplicaInfo>> {
        let resp = self
            .pool
            .call::<QueryReplicaInfo>(
                addr,
                RequestHeader::default(),
                &QueryReplicaInfoRequest::default(),
                self.timeout,
            )
            .await?;
        if !resp.err.is_ok() {
            return Err(Error::App {
                addr,
                rpc: QueryReplicaInfo::NAME,
                code: resp.err,
                hint: None,
            });
        }
        Ok(resp.replicas)
    }

    /// `GET path` on the server's HTTP endpoint (same port as RPC); returns status and body.
    ///
    /// # Errors
    /// [`Error::Http`] on transport failure or a malformed response.
    pub async fn http_get(&self, addr: SocketAddr, path: &str) -> Result<(u16, String)> {
        self.http.get(addr, path, self.timeout).await
    }
}
