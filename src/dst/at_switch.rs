//! Owns invariant (g): at the moment a table's routing switches to the target, the target
//! holds exactly the source's records of that table (the block froze the source, the drain
//! shipped everything, the verify gate passed on what it compared) — but for keys a stalled
//! primary changed with a write it had admitted before the block and committed under it:
//! no server reply shows such a write while it waits, so nothing can wait for it before the
//! switch. The duplication ships it later; invariants (a) and (b) judge it if it was
//! acknowledged, and unacknowledged it counts as a write whose outcome its client never learnt.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::routing::Route;
use crate::sim::state::Partition;
use crate::sim::zk_model::{Change, ChangeHook};
use crate::sim::Cluster;

/// How many differing keys a violation names.
const SHOWN: usize = 3;

/// What each routing switch found, filled in as the ensemble applies changes.
pub type Found = Arc<Mutex<Vec<String>>>;

/// A change hook comparing the table's records on `source` and `target` whenever a routing
/// node under `root` comes to name `target_name`; what differed goes to the returned list.
pub fn hook(
    root: &str,
    target_name: &str,
    source: Arc<Cluster>,
    target: Arc<Cluster>,
) -> (ChangeHook, Found) {
    let found: Found = Arc::default();
    let out = found.clone();
    let prefix = format!("{}/", root.trim_end_matches('/'));
    let target_name = target_name.to_string();
    let named_target: Mutex<BTreeMap<String, bool>> = Mutex::default();
    let hook = Box::new(move |change: &Change| {
        let Some(table) = change.path.strip_prefix(&prefix) else {
            return;
        };
        let now_target = change
            .data
            .as_deref()
            .and_then(|d| Route::parse(d).ok())
            .is_some_and(|r| r.cluster_name == target_name);
        let mut named = named_target.lock().expect("routing seen");
        let before = named.insert(table.to_string(), now_target).unwrap_or(false);
        if now_target && !before {
            if let Some(diff) = differences(&source, &target, table) {
                out.lock().expect("found").push(format!(
                    "(g) when {table}'s routing switched at {} ms, the target did not hold the source's records: {diff}",
                    change.at_ms
                ));
            }
        }
    });
    (hook, found)
}

/// What `take` yields from each partition of `table` on `cluster`, gathered.
fn gather<C, I>(cluster: &Cluster, table: &str, take: impl Fn(&Partition) -> Vec<I>) -> C
where
    C: FromIterator<I> + Default,
{
    let state = cluster.lock();
    state
        .app_by_name(table)
        .map(|app| app.partitions.iter().flat_map(&take).collect())
        .unwrap_or_default()
}

/// Every record of `table` by key: value and expiry.
fn records(cluster: &Cluster, table: &str) -> BTreeMap<Vec<u8>, (Vec<u8>, u32)> {
    gather(cluster, table, |p| {
        p.data
            .iter()
            .map(|(k, r)| (k.clone(), (r.value.clone(), r.expire_ts)))
            .collect()
    })
}

/// Keys of `table` that a stalled source primary changed under the block.
fn landed_under_block(cluster: &Cluster, table: &str) -> BTreeSet<Vec<u8>> {
    gather(cluster, table, |p| {
        p.landed_under_block.iter().cloned().collect()
    })
}

/// What differs between the two clusters' records of `table`, if anything.
fn differences(source: &Cluster, target: &Cluster, table: &str) -> Option<String> {
    let (mut s, mut t) = (records(source, table), records(target, table));
    for key in landed_under_block(source, table) {
        s.remove(&key);
        t.remove(&key);
    }
    let mut said = Vec::new();
    let mut count = 0usize;
    for (key, rec) in &s {
        let why = match t.get(key) {
            None => "missing".to_string(),
            Some(other) if other != rec => format!(
                "different ({} on the source, {} on the target)",
                String::from_utf8_lossy(&rec.0),
                String::from_utf8_lossy(&other.0)
            ),
            Some(_) => continue,
        };
        count += 1;
        if said.len() < SHOWN {
            said.push(format!("{} {why}", String::from_utf8_lossy(key)));
        }
    }
    for key in t.keys().filter(|k| !s.contains_key(*k)) {
        count += 1;
        if said.len() < SHOWN {
            said.push(format!("extra {}", String::from_utf8_lossy(key)));
        }
    }
    (count > 0).then(|| {
        format!(
            "{count} keys, e.g. {}; source partitions (last committed, then per duplication: shipped, confirmed): {}",
            said.join(", "),
            progress(source, table)
        )
    })
}

/// Each source partition's last committed decree and duplication progress.
fn progress(source: &Cluster, table: &str) -> String {
    let state = source.lock();
    let Some(app) = state.app_by_name(table) else {
        return "table gone".into();
    };
    let parts = app.partitions.iter().enumerate().map(|(i, p)| {
        let dups: Vec<String> = app
            .dups
            .values()
            .filter_map(|d| d.parts.get(i))
            .map(|d| format!("{}/{}", d.last_decree, d.confirmed))
            .collect();
        format!("{i}: {} [{}]", p.last_committed, dups.join(" "))
    });
    parts.collect::<Vec<_>>().join(", ")
}
