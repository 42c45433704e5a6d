//! Defines the cluster RPCs: list nodes and cluster info.

use super::{has_err, rpc};
use crate::pegasus::base::{ErrorCode, HostPort, RpcAddress};
use crate::{thrift_enum, thrift_struct};

thrift_enum! {
    /// Liveness of a replica server.
    pub enum NodeStatus { NS_INVALID = 0, NS_ALIVE = 1, NS_UNALIVE = 2 }
}

thrift_struct! {
    /// `configuration_list_nodes_request`; NS_INVALID lists alive and dead nodes.
    pub struct ListNodesRequest {
        1: status: NodeStatus,
    }
}

thrift_struct! {
    /// `node_info`; `hp_node` only from 2.6 servers.
    pub struct NodeInfo {
        1: status: NodeStatus,
        2: node: RpcAddress,
        3: hp_node: Option<HostPort>,
    }
}

thrift_struct! {
    /// `configuration_list_nodes_response`.
    pub struct ListNodesResponse {
        1: err: ErrorCode,
        2: infos: Vec<NodeInfo>,
    }
}
has_err!(ListNodesResponse);
rpc!(
    /// Lists replica servers.
    ListNodes, "RPC_CM_LIST_NODES", ListNodesRequest, ListNodesResponse
);

thrift_struct! {
    /// `configuration_cluster_info_request` (no fields).
    pub struct ClusterInfoRequest {}
}

thrift_struct! {
    /// `configuration_cluster_info_response`: parallel key and value lists.
    pub struct ClusterInfoResponse {
        1: err: ErrorCode,
        2: keys: Vec<String>,
        3: values: Vec<String>,
    }
}
has_err!(ClusterInfoResponse);
rpc!(
    /// Reads cluster facts such as `cluster_name` and `meta_servers`.
    ClusterInfo, "RPC_CM_CLUSTER_INFO", ClusterInfoRequest, ClusterInfoResponse
);

impl ClusterInfoResponse {
    /// The value of `key`, if the server sent it.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .position(|k| k == key)
            .and_then(|i| self.values.get(i))
            .map(String::as_str)
    }
}
