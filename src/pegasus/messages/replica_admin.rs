//! Defines the replica-server admin RPC `RPC_QUERY_REPLICA_INFO`: every replica a node hosts,
//! with its status, ballot and decrees (`idl/replica_admin.thrift`, `idl/metadata.thrift`).

use super::{has_err, rpc};
use crate::pegasus::base::{ErrorCode, Gpid, HostPort, RpcAddress};
use crate::{thrift_enum, thrift_struct};

thrift_enum! {
    /// Role of one replica of a partition (`partition_status`).
    pub enum PartitionStatus {
        PS_INVALID = 0, PS_INACTIVE = 1, PS_ERROR = 2, PS_PRIMARY = 3, PS_SECONDARY = 4,
        PS_POTENTIAL_SECONDARY = 5, PS_PARTITION_SPLIT = 6,
    }
}

thrift_enum! {
    /// Progress of a manual compaction (`manual_compaction_status`).
    pub enum ManualCompactionStatus { IDLE = 0, QUEUING = 1, RUNNING = 2, FINISHED = 3 }
}

thrift_struct! {
    /// One replica on a replica server (`replica_info`; servers always set field 9).
    pub struct ReplicaInfo {
        1: pid: Gpid,
        2: ballot: i64,
        3: status: PartitionStatus,
        4: last_committed_decree: i64,
        5: last_prepared_decree: i64,
        6: last_durable_decree: i64,
        7: app_type: String,
        8: disk_tag: String,
        9: manual_compact_status: Option<ManualCompactionStatus>,
    }
}

thrift_struct! {
    /// `query_replica_info_request`; the server does not look at `node`.
    pub struct QueryReplicaInfoRequest {
        1: node: RpcAddress,
        2: hp_node: Option<HostPort>,
    }
}

thrift_struct! {
    /// `query_replica_info_response`.
    pub struct QueryReplicaInfoResponse {
        1: err: ErrorCode,
        2: replicas: Vec<ReplicaInfo>,
    }
}
has_err!(QueryReplicaInfoResponse);
rpc!(
    /// Asks a replica server for every replica it hosts and its decrees.
    QueryReplicaInfo, "RPC_QUERY_REPLICA_INFO", QueryReplicaInfoRequest, QueryReplicaInfoResponse
);
