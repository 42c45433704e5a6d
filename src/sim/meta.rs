//! Owns meta-server behaviour: decode a request, change or read cluster state, build the reply
//! a real meta of the configured version would send (non-leaders answer
//! `ERR_FORWARD_TO_OTHERS`, naming the leader in query-config replies).

use std::sync::Arc;

use super::app_envs;
use super::duplication;
use super::faults;
use super::server::{Handler, Outcome};
use super::state::Cluster;
use super::tables::{self, v4};
use crate::pegasus::base::{err, ErrorCode, HostPort, RpcAddress};
use crate::pegasus::frame::{self, Request};
use crate::pegasus::messages::apps::{
    AppStatus, CreateApp, CreateAppResponse, DropApp, DropAppResponse, ListApps, ListAppsRequest,
    ListAppsResponse, PartitionConfiguration, PatternMatchType, QueryCfgRequest, QueryCfgResponse,
    QueryConfig, UpdateAppEnv, UpdateAppEnvResponse,
};
use crate::pegasus::messages::command::{Command, RemoteCommand};
use crate::pegasus::messages::duplication::{
    AddDuplication, AddDuplicationResponse, ListDuplication, ListDuplicationResponse,
    ModifyDuplication, ModifyDuplicationResponse, QueryDuplication, QueryDuplicationResponse,
};
use crate::pegasus::messages::nodes::{
    ClusterInfo, ClusterInfoResponse, ListNodes, ListNodesResponse, NodeInfo, NodeStatus,
};
use crate::pegasus::messages::Rpc;

/// One meta server of a simulated cluster.
pub struct MetaNode {
    pub cluster: Arc<Cluster>,
    pub index: usize,
}

/// Responses whose `err` can be set (to answer as a non-leader).
pub trait SetErr: Default {
    fn set_err(&mut self, code: ErrorCode);
}

macro_rules! set_err {
    ($($t:ty),*) => {$(
        impl SetErr for $t {
            fn set_err(&mut self, code: ErrorCode) { self.err = code; }
        }
    )*};
}
set_err!(
    ListAppsResponse,
    QueryCfgResponse,
    UpdateAppEnvResponse,
    CreateAppResponse,
    DropAppResponse,
    ClusterInfoResponse,
    ListNodesResponse,
    QueryDuplicationResponse,
    AddDuplicationResponse,
    ModifyDuplicationResponse,
    ListDuplicationResponse
);

/// Decodes the args of `R`, runs `f`, encodes its result (RPC-level error if undecodable).
pub fn respond<R: Rpc>(req: &Request, f: impl FnOnce(R::Request) -> R::Response) -> Outcome {
    match req.decode_args::<R::Request>() {
        Ok(args) => Outcome::Reply(frame::encode_reply(R::NAME, req.seqid, &f(args))),
        Err(e) => {
            tracing::debug!("{}: bad args: {e}", R::NAME);
            Outcome::Reply(frame::encode_error_reply(
                err::INVALID_DATA,
                &req.name,
                req.seqid,
            ))
        }
    }
}

impl MetaNode {
    fn is_leader(&self) -> bool {
        self.cluster.lock().leader % self.cluster.metas.len() == self.index
    }

    /// Serves `R` on the leader; elsewhere answers the default response with FORWARD.
    fn leader_only<R>(&self, req: &Request, f: impl FnOnce(R::Request) -> R::Response) -> Outcome
    where
        R: Rpc,
        R::Response: SetErr,
    {
        if self.is_leader() {
            return respond::<R>(req, f);
        }
        let mut resp = R::Response::default();
        resp.set_err(ErrorCode::new(err::FORWARD_TO_OTHERS));
        Outcome::Reply(frame::encode_reply(R::NAME, req.seqid, &resp))
    }

    fn query_config(&self, req: &Request) -> Outcome {
        if !self.is_leader() {
            return respond::<QueryConfig>(req, |_| self.forward_config());
        }
        respond::<QueryConfig>(req, |q| self.config_of(&q))
    }

    fn forward_config(&self) -> QueryCfgResponse {
        let leader = self.cluster.leader_addr();
        let v2_6 = self.cluster.config.version.is_2_6();
        let hint = PartitionConfiguration {
            primary: RpcAddress::from_socket(v4(leader)),
            hp_primary: v2_6.then(|| HostPort::new("localhost", leader.port())),
            ..Default::default()
        };
        QueryCfgResponse {
            err: ErrorCode::new(err::FORWARD_TO_OTHERS),
            partitions: vec![hint],
            ..Default::default()
        }
    }

    fn config_of(&self, q: &QueryCfgRequest) -> QueryCfgResponse {
        let state = self.cluster.lock();
        let Some(app) = state.app_by_name(&q.app_name) else {
            return error_resp(err::OBJECT_NOT_FOUND);
        };
        if app.status != AppStatus::AS_AVAILABLE {
            return error_resp(match app.status {
                AppStatus::AS_CREATING | AppStatus::AS_RECALLING => err::BUSY_CREATING,
                AppStatus::AS_DROPPING => err::BUSY_DROPPING,
                _ => err::UNKNOWN,
            });
        }
        let all: Vec<usize> = (0..app.partitions.len()).collect();
        let wanted: Vec<usize> = if q.partition_indices.is_empty() {
            all
        } else {
            q.partition_indices
                .iter()
                .filter_map(|&i| usize::try_from(i).ok())
                .filter(|&i| i < app.partitions.len())
                .collect()
        };
        QueryCfgResponse {
            err: ErrorCode::ok(),
            app_id: app.id,
            partition_count: i32::try_from(app.partitions.len()).unwrap_or(i32::MAX),
            is_stateful: true,
            partitions: wanted
                .into_iter()
                .map(|p| tables::partition_config(&self.cluster, app, p))
                .collect(),
        }
    }

    fn list_apps(&self, q: &ListAppsRequest) -> ListAppsResponse {
        let state = self.cluster.lock();
        let v2_6 = self.cluster.config.version.is_2_6();
        let infos = state
            .apps
            .values()
            .filter(|a| q.status == AppStatus::AS_INVALID || a.status == q.status)
            .filter(|a| !v2_6 || name_matches(&a.name, q.app_name_pattern.as_deref(), q.match_type))
            .map(|a| tables::app_info(a, v2_6))
            .collect();
        ListAppsResponse {
            err: ErrorCode::ok(),
            infos,
            hint_message: None,
        }
    }

    fn cluster_info(&self) -> ClusterInfoResponse {
        let c = &self.cluster;
        let pairs = [
            ("meta_servers", c.meta_list()),
            ("primary_meta_server", c.leader_addr().to_string()),
            ("zookeeper_hosts", "127.0.0.1:2181".to_string()),
            ("zookeeper_root", format!("/pegasus/{}", c.name)),
            ("meta_function_level", "steady".to_string()),
            (
                "balance_operation_count",
                "move_pri=0,copy_pri=0,copy_sec=0,total=0".to_string(),
            ),
            ("primary_replica_count_stddev", "0.00".to_string()),
            ("total_replica_count_stddev", "0.00".to_string()),
            ("cluster_name", c.name.clone()),
        ];
        ClusterInfoResponse {
            err: ErrorCode::ok(),
            keys: pairs.iter().map(|(k, _)| (*k).to_string()).collect(),
            values: pairs.into_iter().map(|(_, v)| v).collect(),
        }
    }

    fn list_nodes(&self) -> ListNodesResponse {
        let v2_6 = self.cluster.config.version.is_2_6();
        let state = self.cluster.lock();
        // Dead servers stay listed (`meta_service::on_list_nodes`).
        let infos = self
            .cluster
            .replicas
            .iter()
            .zip(&state.nodes)
            .map(|(a, n)| NodeInfo {
                status: if n.listed_alive {
                    NodeStatus::NS_ALIVE
                } else {
                    NodeStatus::NS_UNALIVE
                },
                node: RpcAddress::from_socket(v4(*a)),
                hp_node: v2_6.then(|| HostPort::new("localhost", a.port())),
            })
            .collect();
        ListNodesResponse {
            err: ErrorCode::ok(),
            infos,
        }
    }

    fn command(&self, req: &Request) -> Outcome {
        respond::<RemoteCommand>(req, |c: Command| {
            match faults::run_command(&self.cluster, &c) {
                Some(out) => out,
                None => format!("unknown command '{}'", c.cmd),
            }
        })
    }
}

fn error_resp(code: &str) -> QueryCfgResponse {
    QueryCfgResponse {
        err: ErrorCode::new(code),
        ..Default::default()
    }
}

/// 2.6's app-name filter; applied only when both pattern and match type are set.
fn name_matches(name: &str, pattern: Option<&str>, kind: Option<PatternMatchType>) -> bool {
    let (Some(p), Some(kind)) = (pattern, kind) else {
        return true;
    };
    match kind {
        PatternMatchType::PMT_MATCH_EXACT => name == p,
        PatternMatchType::PMT_MATCH_ANYWHERE => name.contains(p),
        PatternMatchType::PMT_MATCH_PREFIX => name.starts_with(p),
        PatternMatchType::PMT_MATCH_POSTFIX => name.ends_with(p),
        _ => true,
    }
}

fn app_result<T: SetErr>(r: Result<T, (&'static str, String)>) -> T {
    r.unwrap_or_else(|(code, _)| {
        let mut t = T::default();
        t.set_err(ErrorCode::new(code));
        t
    })
}

impl Handler for MetaNode {
    fn handle(&self, req: Request) -> Outcome {
        let c = &self.cluster;
        match req.name.as_str() {
            QueryConfig::NAME => self.query_config(&req),
            ListApps::NAME => self.leader_only::<ListApps>(&req, |q| self.list_apps(&q)),
            ClusterInfo::NAME => self.leader_only::<ClusterInfo>(&req, |_| self.cluster_info()),
            ListNodes::NAME => self.leader_only::<ListNodes>(&req, |_| self.list_nodes()),
            UpdateAppEnv::NAME => {
                self.leader_only::<UpdateAppEnv>(&req, |q| {
                    match app_envs::update(&mut c.lock(), &q, c.config.version.is_2_6()) {
                        Ok(()) => UpdateAppEnvResponse {
                            err: ErrorCode::ok(),
                            hint_message: String::new(),
                        },
                        Err((code, hint)) => UpdateAppEnvResponse {
                            err: ErrorCode::new(code),
                            hint_message: hint,
                        },
                    }
                })
            }
            CreateApp::NAME => self.leader_only::<CreateApp>(&req, |q| {
                let r = tables::create_app(c, &mut c.lock(), &q.app_name, &q.options);
                app_result(r.map(|appid| CreateAppResponse {
                    err: ErrorCode::ok(),
                    appid,
                }))
            }),
            DropApp::NAME => self.leader_only::<DropApp>(&req, |q| {
                let r = tables::drop_app(&mut c.lock(), &q.app_name);
                match r {
                    Err(_) if q.options.success_if_not_exist => DropAppResponse {
                        err: ErrorCode::ok(),
                    },
                    r => app_result(r.map(|()| DropAppResponse {
                        err: ErrorCode::ok(),
                    })),
                }
            }),
            QueryDuplication::NAME => {
                self.leader_only::<QueryDuplication>(&req, |q| duplication::query(c, &q))
            }
            AddDuplication::NAME => {
                self.leader_only::<AddDuplication>(&req, |q| duplication::add(c, &q))
            }
            ModifyDuplication::NAME => {
                self.leader_only::<ModifyDuplication>(&req, |q| duplication::modify(c, &q))
            }
            ListDuplication::NAME if c.config.version.is_2_6() => {
                self.leader_only::<ListDuplication>(&req, |q| duplication::list(c, &q))
            }
            RemoteCommand::NAME => self.command(&req),
            _ => Outcome::Reply(frame::encode_error_reply(
                err::HANDLER_NOT_FOUND,
                &req.name,
                req.seqid,
            )),
        }
    }

    fn http(&self, path: &str) -> (u16, String) {
        (404, format!("{{\"error\":\"no handler for {path}\"}}"))
    }

    fn refuses(&self) -> bool {
        self.cluster.faults.is_unreachable()
    }
}
