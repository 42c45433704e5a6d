//! Owns replica-server behaviour: data RPCs routed by the header's gpid with the real checks
//! (hosted, `replica.deny_client_request`, primary), the duplicate receiver, query app info,
//! and the read-only views (perf counters, HTTP) in `replica_views`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::meta::respond;
use super::server::{Handler, Outcome};
use super::state::{pegasus_now, App, Cluster, Counted, Partition, Record, State};
use super::storage::{self, Write};
use super::{atomic, scan};
use super::{replica_views, tables};
use crate::pegasus::base::{err, Blob, ErrorCode, Gpid};
use crate::pegasus::frame::{self, Request};
use crate::pegasus::messages::apps::{QueryAppInfo, QueryAppInfoResponse};
use crate::pegasus::messages::command::RemoteCommand;
use crate::pegasus::messages::data::{
    rocksdb, ClearScanner, CountResponse, Duplicate, DuplicateRequest, DuplicateResponse, Get,
    GetScanner, GetScannerRequest, MultiGet, MultiGetRequest, MultiGetResponse, MultiPut, Put,
    ReadResponse, Remove, Scan, ScanRequest, ScanResponse, SortkeyCount, Ttl, TtlResponse,
    UpdateResponse,
};
use crate::pegasus::messages::data::{
    CheckAndMutate, CheckAndMutateRequest, CheckAndSet, CheckAndSetRequest, CheckAndSetResponse,
    Incr, IncrRequest, IncrResponse, MultiRemove, MultiRemoveRequest, MultiRemoveResponse,
};
use crate::pegasus::messages::replica_admin::{
    ManualCompactionStatus, PartitionStatus, QueryReplicaInfo, QueryReplicaInfoResponse,
    ReplicaInfo,
};
use crate::pegasus::messages::Rpc;
use crate::pegasus::thrift::Wire;

/// The table env listing the users the legacy access control lets in (comma-separated; empty:
/// everyone).
pub const ALLOWED_USERS_ENV: &str = "replica_access_controller.allowed_users";

/// The table env that makes scanners drop records of other partitions (used during splits).
pub const VALIDATE_PARTITION_HASH_ENV: &str = "replica.split.validate_partition_hash";

/// One replica server of a simulated cluster.
#[derive(Clone)]
pub struct ReplicaNode {
    pub cluster: Arc<Cluster>,
    pub index: usize,
    /// Handles writes that already passed the checks on arrival (a stalled primary logging
    /// them late): the deny env is not looked at again.
    pub admitted: bool,
    /// Such a write was logged on arrival, so replies showed it all along (slow secondaries,
    /// not a slow disk).
    pub logged_early: bool,
}

/// What a request does, for the replica's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    /// `incr`, `check_and_set`, `check_and_mutate`.
    NonIdempotentWrite,
}

/// A request that passed the replica's checks: the table and partition it targets.
struct Target {
    app_id: i32,
    pidx: usize,
}

impl ReplicaNode {
    fn server(&self) -> String {
        self.cluster.replicas[self.index].to_string()
    }

    fn error(req: &Request, code: &str) -> Option<Vec<u8>> {
        Some(frame::encode_error_reply(code, &req.name, req.seqid))
    }

    /// The checks of `on_client_write`/`on_client_read`, in the server's order: hosted here,
    /// deny env (as this replica applied it at a config sync), read throttling, duplication
    /// master (likewise) for non-idempotent writes, primary (and not made inactive by a lost
    /// meta).
    fn check(
        &self,
        state: &State,
        req: &Request,
        access: Access,
    ) -> Result<Target, Option<Vec<u8>>> {
        let write = access != Access::Read;
        let (app_id, pidx) = (req.header.app_id, req.header.partition_index);
        let app = state
            .apps
            .get(&app_id)
            .filter(|a| a.status == crate::pegasus::messages::apps::AppStatus::AS_AVAILABLE);
        let part = usize::try_from(pidx)
            .ok()
            .and_then(|p| app.and_then(|a| a.partitions.get(p)));
        let Some(part) = part.filter(|p| p.hosted_on(self.index)) else {
            return Err(Self::error(req, err::OBJECT_NOT_FOUND));
        };
        if app.is_some_and(|a| self.denies_anonymous(a)) {
            return Err(Self::error(req, err::ACL_DENY));
        }
        let pid = (app_id, usize::try_from(pidx).unwrap_or(0));
        if let Some(deny) = state.nodes[self.index]
            .deny
            .get(&pid)
            .filter(|_| !self.admitted)
        {
            if (write && deny.write) || (!write && deny.read) {
                // timeout*: drop without a reply; reconfig*: make the client re-resolve.
                return Err(if deny.reconfig {
                    Self::error(req, err::INVALID_STATE)
                } else {
                    None
                });
            }
        }
        // A throttled read is refused before the primary check (`on_client_read`,
        // `throttle_read_request`): the `read_busy` fault.
        let throttled =
            || app.is_some_and(|a| self.cluster.faults.strike(Counted::ReadBusy, &a.name, 1) > 0);
        if access == Access::Read && throttled() {
            return Err(Self::error(req, err::BUSY));
        }
        // A duplication master refuses non-idempotent writes before the primary check, so a
        // secondary answers this too (`replica::on_client_write`).
        let node = &state.nodes[self.index];
        if access == Access::NonIdempotentWrite && node.dup_masters.contains(&pid) {
            return Err(Self::error(req, err::OPERATION_DISABLED));
        }
        if part.primary != self.index || node.inactive.contains(&pid) {
            return Err(Self::error(req, err::INVALID_STATE));
        }
        Ok(Target {
            app_id,
            pidx: usize::try_from(pidx).unwrap_or(0),
        })
    }

    /// Whether access control refuses a client that did not authenticate (every client of the
    /// simulator): Ranger matches no policy for it; the legacy check lets it pass only while the
    /// table's allowed users are empty (`replica_access_controller::allowed`).
    fn denies_anonymous(&self, app: &App) -> bool {
        let config = &self.cluster.config;
        if config.enable_ranger_acl {
            return true;
        }
        config.enable_acl
            && app
                .envs
                .get(ALLOWED_USERS_ENV)
                .is_some_and(|users| users.split(',').any(|u| !u.trim().is_empty()))
    }

    /// Runs `f` on the primary partition a write targets, after the replica's checks; the
    /// reply is `f`'s result encoded, an RPC-level error, or nothing (`timeout*` deny).
    fn write_with<T: Wire>(
        &self,
        req: &Request,
        f: impl FnOnce(&mut App, usize) -> T,
    ) -> Option<Vec<u8>> {
        self.commit(req, Access::Write, |app, t| {
            Some(frame::encode_reply(&req.name, req.seqid, &f(app, t.pidx)))
        })
    }

    /// Runs `f` on the partition a write targets once the replica's checks passed (else their
    /// reply): notes the keys a write admitted before the block changes under it, and wakes the
    /// duplication engine when the table duplicates.
    fn commit(
        &self,
        req: &Request,
        access: Access,
        f: impl FnOnce(&mut App, &Target) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let mut state = self.cluster.lock();
        let t = match self.check(&state, req, access) {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        let before = self
            .lands_under_block(&state, &t)
            .then(|| state.apps[&t.app_id].partitions[t.pidx].data.clone());
        let app = state.apps.get_mut(&t.app_id).expect("checked");
        let reply = f(app, &t)?;
        if let Some(before) = before {
            note_landed(&mut app.partitions[t.pidx], &before);
        }
        let logged = app.is_duplicating();
        drop(state);
        self.wrote(logged);
        Some(reply)
    }

    /// After a write took a decree: a table that duplicates may have a mutation to ship.
    fn wrote(&self, duplicating: bool) {
        if duplicating {
            self.cluster.wakes.logged();
        }
    }

    /// Whether this is a write the node admitted before the table's write deny reached it and
    /// logs only now that the deny is in force, unseen by any reply meanwhile (see
    /// `Partition::landed_under_block`).
    fn lands_under_block(&self, state: &State, t: &Target) -> bool {
        self.admitted
            && !self.logged_early
            && state.nodes[self.index]
                .deny
                .get(&(t.app_id, t.pidx))
                .is_some_and(|d| d.write)
    }

    /// Applies a client write.
    fn write(&self, req: &Request) -> Option<Vec<u8>> {
        let Some(write) = Write::decode(&req.name, &req.args) else {
            return Self::error(req, err::INVALID_DATA);
        };
        if let Write::MultiRemove(q) = &write {
            return self.multi_remove(req, q, &write);
        }
        self.write_with(req, |app, pidx| UpdateResponse {
            error: rocksdb::OK,
            app_id: app.id,
            partition_index: req.header.partition_index,
            decree: storage::apply_client_write(app, pidx, req, &write, self.cluster.cluster_id),
            server: self.server(),
        })
    }

    fn multi_remove(
        &self,
        req: &Request,
        q: &MultiRemoveRequest,
        write: &Write,
    ) -> Option<Vec<u8>> {
        let own = self.cluster.cluster_id;
        self.write_with(req, |app, pidx| {
            let (error, decree, count) = if q.sort_keys.is_empty() {
                let d = storage::take_decree(app, pidx);
                (rocksdb::INVALID_ARGUMENT, d, 0)
            } else {
                let d = storage::apply_client_write(app, pidx, req, write, own);
                (
                    rocksdb::OK,
                    d,
                    i64::try_from(q.sort_keys.len()).unwrap_or(i64::MAX),
                )
            };
            MultiRemoveResponse {
                error,
                count,
                app_id: app.id,
                partition_index: req.header.partition_index,
                decree,
                server: self.server(),
            }
        })
    }

    /// `incr`, `check_and_set`, `check_and_mutate`: refused on a duplication master, else
    /// applied with a decree of their own (never logged: they are never shipped).
    fn non_idempotent(&self, req: &Request) -> Option<Vec<u8>> {
        self.commit(req, Access::NonIdempotentWrite, |app, t| {
            self.non_idempotent_on(req, app, t)
        })
    }

    /// `incr`, `check_and_set` or `check_and_mutate` on partition `t` of `app`.
    fn non_idempotent_on(&self, req: &Request, app: &mut App, t: &Target) -> Option<Vec<u8>> {
        let (now, server) = (pegasus_now(), self.server());
        let tag = storage::timetag(super::state::now_us(), self.cluster.cluster_id, false);
        let pidx_i32 = req.header.partition_index;
        let reply = match req.name.as_str() {
            Incr::NAME => {
                let Ok(q) = req.decode_args::<IncrRequest>() else {
                    return Self::error(req, err::INVALID_DATA);
                };
                let data = &mut app.partitions[t.pidx].data;
                let (error, new_value) = atomic::incr(data, &q, now, tag);
                let decree = storage::take_decree(app, t.pidx);
                frame::encode_reply(
                    &req.name,
                    req.seqid,
                    &IncrResponse {
                        error,
                        new_value,
                        app_id: app.id,
                        partition_index: pidx_i32,
                        decree,
                        server,
                    },
                )
            }
            _ => {
                let data = &mut app.partitions[t.pidx].data;
                let answer = if req.name == CheckAndSet::NAME {
                    let Ok(q) = req.decode_args::<CheckAndSetRequest>() else {
                        return Self::error(req, err::INVALID_DATA);
                    };
                    atomic::check_and_set(data, &q, now, tag)
                } else {
                    let Ok(q) = req.decode_args::<CheckAndMutateRequest>() else {
                        return Self::error(req, err::INVALID_DATA);
                    };
                    atomic::check_and_mutate(data, &q, now, tag)
                };
                let decree = storage::take_decree(app, t.pidx);
                let (error, returned) = answer;
                frame::encode_reply(
                    &req.name,
                    req.seqid,
                    &CheckAndSetResponse {
                        error,
                        check_value_returned: returned.is_some(),
                        check_value_exist: returned.as_ref().is_some_and(Option::is_some),
                        check_value: Blob(returned.flatten().unwrap_or_default()),
                        app_id: app.id,
                        partition_index: pidx_i32,
                        decree,
                        server,
                    },
                )
            }
        };
        Some(reply)
    }

    /// Applies mutations shipped by a duplication master.
    fn duplicate(&self, req: &Request) -> Option<Vec<u8>> {
        let Ok(dup) = req.decode_args::<DuplicateRequest>() else {
            return Self::error(req, err::INVALID_DATA);
        };
        let entries = dup.entries.unwrap_or_default();
        let (own, dir) = (self.cluster.cluster_id, &self.cluster.directory);
        let faults = &self.cluster.faults;
        self.write_with(req, |app, pidx| {
            let mut entries = entries;
            entries.drain(..faults.strike(Counted::DupDrop, &app.name, entries.len()));
            match storage::apply_duplicate(app, pidx, &entries, own, |id| dir.knows_id(id)) {
                Ok(_) => DuplicateResponse {
                    error: Some(0),
                    error_hint: None,
                },
                Err((code, hint)) => DuplicateResponse {
                    error: Some(code),
                    error_hint: Some(hint),
                },
            }
        })
    }

    fn read<T: Wire>(&self, req: &Request, f: impl FnOnce(&App, usize) -> T) -> Option<Vec<u8>> {
        let state = self.cluster.lock();
        match self.check(&state, req, Access::Read) {
            Ok(t) => Some(frame::encode_reply(
                &req.name,
                req.seqid,
                &f(&state.apps[&t.app_id], t.pidx),
            )),
            Err(reply) => reply,
        }
    }

    fn get(&self, req: &Request) -> Option<Vec<u8>> {
        let Ok(key) = req.decode_args::<Blob>() else {
            return Self::error(req, err::INVALID_DATA);
        };
        let now = pegasus_now();
        self.read(req, |app, pidx| {
            let rec = app.partitions[pidx]
                .data
                .get(&key.0)
                .filter(|r| !r.expired(now));
            ReadResponse {
                error: if rec.is_some() {
                    rocksdb::OK
                } else {
                    rocksdb::NOT_FOUND
                },
                value: Blob(rec.map(|r| r.value.clone()).unwrap_or_default()),
                app_id: app.id,
                partition_index: i32::try_from(pidx).unwrap_or(0),
                server: self.server(),
            }
        })
    }

    fn multi_get(&self, req: &Request) -> Option<Vec<u8>> {
        let Ok(q) = req.decode_args::<MultiGetRequest>() else {
            return Self::error(req, err::INVALID_DATA);
        };
        let now = pegasus_now();
        self.read(req, |app, pidx| {
            let (error, kvs) = super::multi_get::rows(&app.partitions[pidx].data, &q, now);
            MultiGetResponse {
                error,
                kvs,
                app_id: app.id,
                partition_index: i32::try_from(pidx).unwrap_or(0),
                server: self.server(),
            }
        })
    }

    fn ttl(&self, req: &Request) -> Option<Vec<u8>> {
        let Ok(key) = req.decode_args::<Blob>() else {
            return Self::error(req, err::INVALID_DATA);
        };
        let now = pegasus_now();
        self.read(req, |app, pidx| {
            let (error, ttl_seconds) = scan::ttl(app.partitions[pidx].data.get(&key.0), now);
            TtlResponse {
                error,
                ttl_seconds,
                app_id: app.id,
                partition_index: i32::try_from(pidx).unwrap_or(0),
                server: self.server(),
            }
        })
    }

    fn sortkey_count(&self, req: &Request) -> Option<Vec<u8>> {
        let Ok(hash_key) = req.decode_args::<Blob>() else {
            return Self::error(req, err::INVALID_DATA);
        };
        let now = pegasus_now();
        self.read(req, |app, pidx| CountResponse {
            error: rocksdb::OK,
            count: scan::sortkey_count(&app.partitions[pidx].data, &hash_key.0, now),
            app_id: app.id,
            partition_index: i32::try_from(pidx).unwrap_or(0),
            server: self.server(),
        })
    }

    /// Runs `f` with the whole state after the read checks (scanners live on the node).
    fn scan_with(
        &self,
        req: &Request,
        f: impl FnOnce(&mut State, Target) -> ScanResponse,
    ) -> Option<Vec<u8>> {
        let mut state = self.cluster.lock();
        let t = match self.check(&state, req, Access::Read) {
            Ok(t) => t,
            Err(reply) => return reply,
        };
        let table = state.apps[&t.app_id].name.clone();
        let mut resp = f(&mut state, t);
        // Only a batch that read records and left a scanner open can have run out of time.
        let cut = resp.error == rocksdb::OK
            && !resp.kvs.is_empty()
            && resp.context_id != crate::pegasus::messages::data::scan_context::COMPLETED;
        // Any batch that had more to read can run out of time before its first record.
        let live = resp.error == rocksdb::OK
            && resp.context_id != crate::pegasus::messages::data::scan_context::COMPLETED;
        if cut && self.cluster.faults.strike(Counted::ScanSlow, &table, 1) > 0 {
            scan::out_of_time(&mut state.nodes[self.index].scanners, &mut resp);
        } else if live && self.cluster.faults.strike(Counted::ScanStuck, &table, 1) > 0 {
            scan::out_of_time(&mut state.nodes[self.index].scanners, &mut resp);
            resp.kvs.clear();
        }
        resp.server = self.server();
        Some(frame::encode_reply(&req.name, req.seqid, &resp))
    }

    fn get_scanner(&self, req: &Request) -> Option<Vec<u8>> {
        let Ok(q) = req.decode_args::<GetScannerRequest>() else {
            return Self::error(req, err::INVALID_DATA);
        };
        let now = pegasus_now();
        let node = self.index;
        self.scan_with(req, |state, t| {
            let State { nodes, apps, .. } = state;
            let app = &apps[&t.app_id];
            let validate_env = app
                .envs
                .get(VALIDATE_PARTITION_HASH_ENV)
                .is_some_and(|v| v == "true");
            let mut resp = scan::open(
                &mut nodes[node].scanners,
                &app.partitions[t.pidx].data,
                t.app_id,
                t.pidx,
                app.partitions.len(),
                validate_env,
                &q,
                now,
            );
            resp.app_id = t.app_id;
            resp.partition_index = i32::try_from(t.pidx).unwrap_or(0);
            resp
        })
    }

    fn scan(&self, req: &Request) -> Option<Vec<u8>> {
        let Ok(q) = req.decode_args::<ScanRequest>() else {
            return Self::error(req, err::INVALID_DATA);
        };
        let now = pegasus_now();
        let node = self.index;
        self.scan_with(req, |state, t| {
            scan::next(state, node, (t.app_id, t.pidx), q.context_id, now)
        })
    }

    /// Drops a scanner; never replies (a one-way RPC).
    fn clear_scanner(&self, req: &Request) {
        let (app_id, pidx) = (req.header.app_id, req.header.partition_index);
        if let (Ok(id), Ok(pidx)) = (req.decode_args::<i64>(), usize::try_from(pidx)) {
            let scanners = &mut self.cluster.lock().nodes[self.index].scanners;
            let _ = scanners.take_of(id, app_id, pidx);
        }
    }

    /// The tables this node hosts, with the envs each replica was created with: config sync
    /// never updates them (`replica::on_config_sync`), so they cannot show an applied env.
    fn query_app_info(&self, req: &Request) -> Outcome {
        let state = self.cluster.lock();
        let v2_6 = self.cluster.config.version.is_2_6();
        let apps = state
            .apps
            .values()
            .filter(|a| a.partitions.iter().any(|p| p.hosted_on(self.index)))
            .map(|a| {
                let mut info = tables::app_info(a, v2_6);
                info.envs = a.created_envs.clone();
                info
            })
            .collect();
        respond::<QueryAppInfo>(req, |_| QueryAppInfoResponse {
            err: ErrorCode::ok(),
            apps,
        })
    }

    /// Every replica this node hosts, with its role, ballot and decrees
    /// (`replica_stub::on_query_replica_info`; the request is not looked at).
    fn query_replica_info(&self, req: &Request) -> Outcome {
        let state = self.cluster.lock();
        let mut replicas = Vec::new();
        for app in state.apps.values() {
            for (pidx, p) in app.partitions.iter().enumerate() {
                if !p.hosted_on(self.index) {
                    continue;
                }
                let status = if p.primary == self.index {
                    PartitionStatus::PS_PRIMARY
                } else {
                    PartitionStatus::PS_SECONDARY
                };
                replicas.push(ReplicaInfo {
                    pid: Gpid::new(app.id, i32::try_from(pidx).unwrap_or(i32::MAX)),
                    ballot: p.ballot,
                    status,
                    last_committed_decree: p.last_committed,
                    last_prepared_decree: if p.primary == self.index {
                        p.last_prepared_on(self.index)
                    } else {
                        p.last_committed
                    },
                    last_durable_decree: p.last_committed,
                    app_type: app.app_type.clone(),
                    disk_tag: "data0".into(),
                    manual_compact_status: Some(ManualCompactionStatus::IDLE),
                });
            }
        }
        respond::<QueryReplicaInfo>(req, |_| QueryReplicaInfoResponse {
            err: ErrorCode::ok(),
            replicas,
        })
    }

    fn data(&self, req: Request) -> Outcome {
        let delay = self.cluster.faults.write_delay();
        let is_write = matches!(
            req.name.as_str(),
            Put::NAME
                | Remove::NAME
                | MultiPut::NAME
                | MultiRemove::NAME
                | Incr::NAME
                | CheckAndSet::NAME
                | CheckAndMutate::NAME
                | Duplicate::NAME
        );
        if is_write && !delay.is_zero() {
            let node = self.clone();
            return Outcome::Later(Box::pin(async move {
                tokio::time::sleep(delay).await;
                node.data_now(&req)
            }));
        }
        let stall = self.cluster.faults.stall(self.index);
        if is_write && req.name != Duplicate::NAME && !stall.is_zero() {
            return self.stalled(req, stall);
        }
        let lag = self.cluster.faults.commit_lag(self.index);
        if is_write && req.name != Duplicate::NAME && !lag.is_zero() {
            return self.lagged(req, lag);
        }
        self.data_now(&req).map_or(Outcome::NoReply, Outcome::Reply)
    }

    /// What a client write is, for the replica's checks.
    fn access_of(name: &str) -> Access {
        match name {
            Incr::NAME | CheckAndSet::NAME | CheckAndMutate::NAME => Access::NonIdempotentWrite,
            _ => Access::Write,
        }
    }

    /// Slow secondaries: a write passes the checks and is logged on arrival, so the primary's
    /// `last_prepared_decree` counts it, then commits `lag` later, once its prepare is
    /// acknowledged (`replica_2pc.cpp` `init_prepare`, `on_prepare_reply`).
    fn lagged(&self, req: Request, lag: std::time::Duration) -> Outcome {
        let pid = {
            let mut state = self.cluster.lock();
            let t = match self.check(&state, &req, Self::access_of(&req.name)) {
                Ok(t) => t,
                Err(reply) => return reply.map_or(Outcome::NoReply, Outcome::Reply),
            };
            let part = &mut state.apps.get_mut(&t.app_id).expect("checked").partitions[t.pidx];
            *part.logged_uncommitted.entry(self.index).or_default() += 1;
            (t.app_id, t.pidx)
        };
        let node = Self {
            admitted: true,
            logged_early: true,
            ..self.clone()
        };
        Outcome::Later(Box::pin(async move {
            tokio::time::sleep(lag).await;
            let reply = node.data_now(&req);
            node.uncount_logged(pid);
            reply
        }))
    }

    /// A logged write of partition `pid` committed (or its primary moved away).
    fn uncount_logged(&self, (app_id, pidx): (i32, usize)) {
        let mut state = self.cluster.lock();
        let part = state
            .apps
            .get_mut(&app_id)
            .and_then(|a| a.partitions.get_mut(pidx));
        if let Some(n) = part.and_then(|p| p.logged_uncommitted.get_mut(&self.index)) {
            *n = n.saturating_sub(1);
        }
    }

    /// A stalled primary (a slow disk): a write passes the checks on arrival, then is logged
    /// and committed `stall` later; until logged it shows in no reply, as
    /// `last_prepared_decree` counts only logged mutations (`replica.cpp`, v2.5.0 and master).
    fn stalled(&self, req: Request, stall: std::time::Duration) -> Outcome {
        if let Err(reply) = self.check(&self.cluster.lock(), &req, Self::access_of(&req.name)) {
            return reply.map_or(Outcome::NoReply, Outcome::Reply);
        }
        let node = Self {
            admitted: true,
            ..self.clone()
        };
        Outcome::Later(Box::pin(async move {
            tokio::time::sleep(stall).await;
            node.data_now(&req)
        }))
    }

    fn data_now(&self, req: &Request) -> Option<Vec<u8>> {
        match req.name.as_str() {
            Put::NAME | Remove::NAME | MultiPut::NAME | MultiRemove::NAME => self.write(req),
            Incr::NAME | CheckAndSet::NAME | CheckAndMutate::NAME => self.non_idempotent(req),
            Duplicate::NAME => self.duplicate(req),
            Get::NAME => self.get(req),
            MultiGet::NAME => self.multi_get(req),
            Ttl::NAME => self.ttl(req),
            SortkeyCount::NAME => self.sortkey_count(req),
            GetScanner::NAME => self.get_scanner(req),
            Scan::NAME => self.scan(req),
            ClearScanner::NAME => {
                self.clear_scanner(req);
                None
            }
            _ => Self::error(req, err::HANDLER_NOT_FOUND),
        }
    }
}

impl Handler for ReplicaNode {
    fn handle(&self, req: Request) -> Outcome {
        match req.name.as_str() {
            QueryAppInfo::NAME => self.query_app_info(&req),
            QueryReplicaInfo::NAME => self.query_replica_info(&req),
            RemoteCommand::NAME => respond::<RemoteCommand>(&req, |c| {
                replica_views::command(self, &c.cmd, &c.arguments)
            }),
            _ => with_latency(self.data(req), self.cluster.faults.rpc_latency()),
        }
    }

    fn http(&self, path: &str) -> (u16, String) {
        replica_views::http(self, path)
    }

    fn refuses(&self) -> bool {
        self.cluster.faults.is_unreachable() || !self.cluster.lock().nodes[self.index].alive
    }
}

/// `outcome` answered `latency` later (a network round trip: `sim.fault rpc_latency_ms`).
/// Requests are handled at once and answered concurrently, as over a real network.
fn with_latency(outcome: Outcome, latency: std::time::Duration) -> Outcome {
    if latency.is_zero() {
        return outcome;
    }
    match outcome {
        Outcome::NoReply => Outcome::NoReply,
        Outcome::Reply(bytes) => Outcome::Later(Box::pin(async move {
            tokio::time::sleep(latency).await;
            Some(bytes)
        })),
        Outcome::Later(fut) => Outcome::Later(Box::pin(async move {
            let bytes = fut.await;
            tokio::time::sleep(latency).await;
            bytes
        })),
    }
}

/// Adds to `p.landed_under_block` the keys whose records differ from `before`.
fn note_landed(p: &mut Partition, before: &BTreeMap<Vec<u8>, Record>) {
    let changed: Vec<Vec<u8>> = before
        .iter()
        .filter(|(k, r)| p.data.get(*k) != Some(*r))
        .map(|(k, _)| k.clone())
        .chain(p.data.keys().filter(|k| !before.contains_key(*k)).cloned())
        .collect();
    p.landed_under_block.extend(changed);
}
