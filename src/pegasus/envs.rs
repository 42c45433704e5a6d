//! Defines the table env keys and values that steer replicas during a migration, shared by the
//! tool and the simulator.

/// Env key that blocks client requests on replicas (`<timeout|reconfig>*<all|write|read>`).
pub const DENY_ENV: &str = "replica.deny_client_request";
/// The value a finished cut-over leaves on the source: every client re-resolves.
pub const DENY_ALL_RECONFIG: &str = "reconfig*all";
/// Env keys the source meta puts on a duplication follower.
pub const MASTER_CLUSTER_ENV: &str = "duplication.master_cluster";
pub const MASTER_METAS_ENV: &str = "duplication.master_metas";
pub const MASTER_APP_NAME_ENV: &str = "duplication.master_app_name";
pub const FOLLOWER_STATUS_ENV: &str = "duplication.follower_app_status";
