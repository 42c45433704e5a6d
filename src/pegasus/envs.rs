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

/// Whether table envs `envs` mark a duplication follower of the table on cluster `from`: the
/// master markers name it by cluster name, or (master's `dup_cluster_name` may differ from the
/// plan's name) by one of its metas.
#[must_use]
pub fn follows(
    envs: &std::collections::BTreeMap<String, String>,
    from: &str,
    source_metas: &[std::net::SocketAddr],
) -> bool {
    if envs.get(MASTER_CLUSTER_ENV).map(String::as_str) == Some(from) {
        return true;
    }
    envs.get(MASTER_METAS_ENV).is_some_and(|m| {
        m.split(',')
            .any(|x| source_metas.iter().any(|y| y.to_string() == x.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_names_its_source_by_cluster_or_by_a_meta() {
        let metas: Vec<std::net::SocketAddr> = vec!["10.0.0.1:34601".parse().unwrap()];
        let envs = |k: &str, v: &str| [(k.to_string(), v.to_string())].into();
        assert!(follows(&envs(MASTER_CLUSTER_ENV, "src"), "src", &metas));
        assert!(!follows(&envs(MASTER_CLUSTER_ENV, "other"), "src", &metas));
        assert!(follows(
            &envs(MASTER_METAS_ENV, "10.0.0.9:34601, 10.0.0.1:34601"),
            "c1",
            &metas
        ));
        assert!(!follows(
            &envs(MASTER_METAS_ENV, "10.0.0.9:34601"),
            "c1",
            &metas
        ));
        assert!(!follows(&Default::default(), "src", &metas));
    }
}
