//! Owns what the listed meta-proxy instances serve: per table, the cluster each one sends its
//! clients to; per proxy, whether it can relay a master (2.6) meta's answers — known from a
//! table it already serves from a master cluster, or by asking it about a table of the
//! target that routing already sends there. A proxy built from the 2021 code answers nothing
//! at all for such a table.

use std::collections::BTreeMap;

use super::Shared;
use crate::plan::observed::{ProxyObs, ProxyServes, Relays, TableObs};
use crate::probe::proxies::{self, ProxyAnswer};
use crate::routing::{node_path, Route};
use crate::spec::Spec;

/// Tables of a target asked about, at most, to learn a proxy's build.
const RELAY_CANDIDATES: usize = 3;

impl Shared {
    /// What every listed proxy answers for `table`.
    pub(super) async fn proxy_answers(&self, table: &str, from: &str, to: &str) -> Vec<ProxyObs> {
        let mut out = Vec::new();
        for proxy in &self.proxies {
            let answer = proxies::ask(&self.proxy_pool, *proxy, table, self.proxy_timeout).await;
            out.push(ProxyObs {
                addr: proxy.to_string(),
                serves: self.classify(&answer, &[from, to]),
            });
        }
        out
    }

    fn classify(&self, answer: &ProxyAnswer, names: &[&str]) -> ProxyServes {
        match answer {
            ProxyAnswer::Served(servers) => {
                let sets: Vec<(&str, std::collections::BTreeSet<std::net::SocketAddr>)> = names
                    .iter()
                    .filter_map(|n| {
                        let view = self.clusters.get(*n)?;
                        Some((*n, view.replicas.iter().copied().collect()))
                    })
                    .collect();
                let refs: Vec<(&str, &std::collections::BTreeSet<_>)> =
                    sets.iter().map(|(n, s)| (*n, s)).collect();
                proxies::cluster_of(servers, &refs).map_or(ProxyServes::Elsewhere, |c| {
                    ProxyServes::Cluster(c.to_string())
                })
            }
            ProxyAnswer::Error(e) => ProxyServes::Error(e.clone()),
            ProxyAnswer::NoAnswer => ProxyServes::NoAnswer,
            ProxyAnswer::Unreachable(e) => ProxyServes::Unreachable(e.clone()),
        }
    }

    /// Per proxy, whether it relays a master meta, when some target of the plan is master.
    pub(super) async fn proxy_relays(
        &self,
        spec: &Spec,
        tables: &BTreeMap<String, TableObs>,
    ) -> BTreeMap<String, Relays> {
        let mut out = BTreeMap::new();
        let master_targets: Vec<&str> = spec
            .migrations
            .iter()
            .map(|m| m.to.as_str())
            .filter(|t| self.clusters.get(*t).is_some_and(|v| v.master))
            .collect();
        if master_targets.is_empty() {
            return out;
        }
        for proxy in &self.proxies {
            let addr = proxy.to_string();
            let relays = match self.seen_relaying(&addr, tables) {
                Some(r) => r,
                None => self.ask_about_target(*proxy, &master_targets, spec).await,
            };
            out.insert(addr, relays);
        }
        out
    }

    /// A table this proxy already serves from a master cluster proves it relays one.
    fn seen_relaying(&self, proxy: &str, tables: &BTreeMap<String, TableObs>) -> Option<Relays> {
        tables.iter().find_map(|(table, obs)| {
            obs.proxies.iter().find_map(|p| match &p.serves {
                ProxyServes::Cluster(c)
                    if p.addr == proxy && self.clusters.get(c).is_some_and(|v| v.master) =>
                {
                    Some(Relays::Yes {
                        evidence: format!("it serves {table} from {c}"),
                    })
                }
                _ => None,
            })
        })
    }

    /// Asks the proxy about tables of a master target that routing already sends there.
    async fn ask_about_target(
        &self,
        proxy: std::net::SocketAddr,
        targets: &[&str],
        spec: &Spec,
    ) -> Relays {
        let (Some(zk), Some(root)) = (&self.zk, &self.root) else {
            return Relays::Unknown;
        };
        let planned: Vec<&str> = spec.migrations.iter().map(|m| m.table.as_str()).collect();
        for target in targets {
            let Some(view) = self.clusters.get(*target) else {
                continue;
            };
            let candidates = view
                .apps
                .iter()
                .filter(|a| a.status == crate::pegasus::messages::apps::AppStatus::AS_AVAILABLE)
                .filter(|a| !planned.contains(&a.app_name.as_str()));
            let mut asked = 0;
            for app in candidates {
                let routed = zk
                    .read(&node_path(root, &app.app_name))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|(d, _)| Route::parse(&d).ok());
                if routed.is_none_or(|r| r.cluster_name != *target) {
                    continue;
                }
                asked += 1;
                let answer =
                    proxies::ask(&self.proxy_pool, proxy, &app.app_name, self.proxy_timeout).await;
                match self.classify(&answer, &[target]) {
                    ProxyServes::Cluster(_) => {
                        return Relays::Yes {
                            evidence: format!("it serves {} from {target}", app.app_name),
                        }
                    }
                    ProxyServes::NoAnswer => {
                        return Relays::No {
                            evidence: format!(
                                "it did not answer for {}, which it routes to {target}",
                                app.app_name
                            ),
                        }
                    }
                    _ => {}
                }
                if asked >= RELAY_CANDIDATES {
                    break;
                }
            }
        }
        Relays::Unknown
    }
}
