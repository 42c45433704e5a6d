//! Scanning and the other reads as upstream serves them (`pegasus_server_impl.cpp`): the
//! client scans every partition whole, in key order, skipping expired records; batches,
//! context ids, empty ranges, counts, TTLs; a primary change mid-scan restarts after the last
//! key without losing or repeating a record.

use std::collections::BTreeSet;
use std::time::Duration;

use migrator::pegasus::base::{Blob, Gpid};
use migrator::pegasus::key;
use migrator::pegasus::messages::data::{
    rocksdb, scan_context, FilterType, GetScanner, GetScannerRequest, Scan, ScanRequest,
    ScanResponse,
};
use migrator::pegasus::replica::ReplicaClient;
use migrator::pegasus::scanner::{PartitionScanner, ScanOptions};
use migrator::pegasus::table::{TableClient, TableOptions};
use migrator::sim::state::Counted;
use migrator::sim::{SimCluster, Version};

use crate::support::{meta_client, start};

const PARTITIONS: i32 = 4;

async fn table_with(n: usize) -> (SimCluster, TableClient) {
    let sim = start("scan", 1, Version::V2_5).await;
    sim.create_table("t", PARTITIONS, 1).unwrap();
    let t = TableClient::new("t", meta_client(&sim), TableOptions::default());
    for i in 0..n {
        let hk = format!("hk{i:03}");
        t.put(hk.as_bytes(), b"sk", format!("v{i}").as_bytes())
            .await
            .unwrap();
    }
    (sim, t)
}

/// Every record of the table by scanning each partition; checks order and partition.
async fn scan_all(t: &TableClient, batch_size: i32) -> Vec<(Vec<u8>, Vec<u8>, i32)> {
    let mut all = Vec::new();
    for pidx in 0..PARTITIONS {
        let opts = ScanOptions {
            batch_size,
            ..ScanOptions::default()
        };
        let mut s = PartitionScanner::new(t.clone(), pidx, opts);
        let mut last: Option<Vec<u8>> = None;
        while let Some(batch) = s.next_batch().await.unwrap() {
            for kv in batch {
                assert!(last.as_ref().is_none_or(|l| *l < kv.key.0), "ascending");
                assert_eq!(
                    key::partition_index(key::key_hash(&kv.key.0), PARTITIONS),
                    pidx
                );
                last = Some(kv.key.0.clone());
                all.push((kv.key.0, kv.value.0, kv.expire_ts_seconds.unwrap_or(-7)));
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_returns_every_live_record_once_with_its_expiry() {
    let (_sim, t) = table_with(50).await;
    t.put_ttl(b"short", b"sk", b"gone", Some(0)).await.unwrap();
    t.put_ttl(b"long", b"sk", b"stays", Some(3600))
        .await
        .unwrap();
    for batch_size in [1, 7, 0, 1000] {
        let all = scan_all(&t, batch_size).await;
        assert_eq!(all.len(), 51, "batch size {batch_size}");
        let keys: BTreeSet<_> = all.iter().map(|(k, _, _)| k.clone()).collect();
        assert_eq!(keys.len(), 51, "no record twice");
        let long = key::composite_key(b"long", b"sk").unwrap();
        let (_, value, expire) = all.iter().find(|(k, _, _)| *k == long).unwrap();
        assert_eq!(value, b"stays");
        let left = i64::from(*expire) - i64::from(key::epoch_now());
        assert!(
            (3590..=3600).contains(&left),
            "expire_ts is absolute: {left}"
        );
        let other = key::composite_key(b"hk007", b"sk").unwrap();
        assert_eq!(
            all.iter().find(|(k, _, _)| *k == other).unwrap().2,
            0,
            "no TTL is 0"
        );
    }
    assert_eq!(
        t.get(b"short", b"sk").await.unwrap(),
        None,
        "expired is invisible"
    );
    assert_eq!(t.ttl(b"short", b"sk").await.unwrap(), None);
    assert_eq!(t.ttl(b"hk001", b"sk").await.unwrap(), Some(None), "no TTL");
    let ttl = t.ttl(b"long", b"sk").await.unwrap().flatten().unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
}

/// Sends one scanner RPC straight to partition `pidx`'s primary.
struct Raw {
    replica: ReplicaClient,
    addr: std::net::SocketAddr,
    gpid: Gpid,
}

impl Raw {
    async fn of(t: &TableClient, pidx: i32) -> Raw {
        let r = t.refresh().await.unwrap();
        Raw {
            replica: ReplicaClient::new(Duration::from_secs(2)),
            addr: r.primaries[usize::try_from(pidx).unwrap()].unwrap(),
            gpid: Gpid::new(r.app_id, pidx),
        }
    }

    async fn open(&self, req: &GetScannerRequest) -> ScanResponse {
        let hash = u64::try_from(self.gpid.partition_index).unwrap();
        self.replica
            .call::<GetScanner>(self.addr, self.gpid, hash, req)
            .await
            .unwrap()
    }

    async fn scan(&self, id: i64) -> ScanResponse {
        let hash = u64::try_from(self.gpid.partition_index).unwrap();
        let req = ScanRequest { context_id: id };
        self.replica
            .call::<Scan>(self.addr, self.gpid, hash, &req)
            .await
            .unwrap()
    }
}

fn whole(batch_size: i32) -> GetScannerRequest {
    GetScannerRequest {
        start_key: Blob(vec![0, 0]),
        stop_key: Blob(vec![0xff, 0xff]),
        start_inclusive: true,
        stop_inclusive: false,
        batch_size,
        no_value: false,
        hash_key_filter_type: FilterType::FT_NO_FILTER,
        hash_key_filter_pattern: Blob::default(),
        sort_key_filter_type: FilterType::FT_NO_FILTER,
        sort_key_filter_pattern: Blob::default(),
        validate_partition_hash: Some(true),
        return_expire_ts: None,
        full_scan: Some(true),
        only_return_count: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scanner_ids_batches_and_edge_cases_follow_the_server() {
    let (_sim, t) = table_with(40).await;
    let raw = Raw::of(&t, 0).await;
    let keys: Vec<Vec<u8>> = scan_all(&t, 1000)
        .await
        .into_iter()
        .map(|(k, _, _)| k)
        .filter(|k| key::partition_index(key::key_hash(k), PARTITIONS) == 0)
        .collect();
    let total = keys.len();
    assert!(total > 3, "partition 0 holds several records ({total})");

    // A full batch while a key follows — even one past the stop key — hands out a live
    // context: the next scan returns nothing and completes.
    let mut two = whole(2);
    two.stop_key = Blob(keys[2].clone());
    let first = raw.open(&two).await;
    assert_eq!(first.kvs.len(), 2);
    let first_id = first.context_id;
    assert!(first_id != scan_context::COMPLETED && first_id != scan_context::NOT_EXIST);
    let rest = raw.scan(first_id).await;
    assert_eq!(
        (rest.kvs.len(), rest.context_id),
        (0, scan_context::COMPLETED)
    );
    // The context is gone after its last batch: error 1.
    assert_eq!(raw.scan(first_id).await.error, rocksdb::NOT_FOUND);
    // Up to the partition's last key, a batch of its size completes at once.
    let exact = raw.open(&whole(i32::try_from(total).unwrap())).await;
    assert_eq!(
        (exact.kvs.len(), exact.context_id),
        (total, scan_context::COMPLETED)
    );

    // Each batch gets a new id; the old one is no longer valid.
    let a = raw.open(&whole(2)).await;
    let b = raw.scan(a.context_id).await;
    assert_ne!(a.context_id, b.context_id);
    assert_eq!(raw.scan(a.context_id).await.error, rocksdb::NOT_FOUND);

    // A batch larger than the partition completes at once.
    let all = raw.open(&whole(0)).await;
    assert_eq!(
        (all.kvs.len(), all.context_id),
        (total, scan_context::COMPLETED)
    );

    // An empty range: error 0, no records, and the id left at the thrift default 0.
    let mut empty = whole(10);
    empty.stop_key = Blob(vec![0, 0]);
    let e = raw.open(&empty).await;
    assert_eq!((e.error, e.kvs.len(), e.context_id), (rocksdb::OK, 0, 0));

    // Counting only: no records, kv_count says how many.
    let mut count = whole(1000);
    count.only_return_count = Some(true);
    let c = raw.open(&count).await;
    assert!(c.kvs.is_empty());
    assert_eq!(c.kv_count, Some(i32::try_from(total).unwrap()));

    // A hash-key prefix filter.
    let mut filtered = whole(1000);
    filtered.hash_key_filter_type = FilterType::FT_MATCH_PREFIX;
    filtered.hash_key_filter_pattern = Blob(b"hk00".to_vec());
    let f = raw.open(&filtered).await;
    assert!(f
        .kvs
        .iter()
        .all(|kv| key::split_key(&kv.key.0).unwrap().0.starts_with(b"hk00")));

    // A filter type the server does not know: error 4, no scanner.
    let mut unknown = whole(10);
    unknown.sort_key_filter_type = FilterType::Unknown(9);
    let u = raw.open(&unknown).await;
    assert_eq!((u.error, u.kvs.len()), (rocksdb::INVALID_ARGUMENT, 0));

    // Contexts belong to a replica: another partition's request cannot use this one's.
    let mine = raw.open(&whole(2)).await;
    let mut neighbour = None;
    for pidx in 1..PARTITIONS {
        let other = Raw::of(&t, pidx).await;
        if other.addr == raw.addr {
            neighbour = Some(other);
        }
    }
    let neighbour = neighbour.expect("4 partitions on 3 servers: one shares partition 0's");
    assert_eq!(
        neighbour.scan(mine.context_id).await.error,
        rocksdb::NOT_FOUND
    );
    assert_eq!(raw.scan(mine.context_id).await.error, rocksdb::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_change_mid_scan_restarts_after_the_last_key() {
    let (sim, t) = table_with(60).await;
    let expected = scan_all(&t, 1000).await;
    let opts = ScanOptions {
        batch_size: 3,
        ..ScanOptions::default()
    };
    let mut got = Vec::new();
    for pidx in 0..PARTITIONS {
        let mut s = PartitionScanner::new(t.clone(), pidx, opts);
        let first = s.next_batch().await.unwrap().unwrap();
        got.extend(first.into_iter().map(|kv| kv.key.0));
        // The primary moves: its scanners are gone with it.
        migrator::sim::liveness::failover(sim.cluster(), "t", usize::try_from(pidx).unwrap())
            .unwrap();
        while let Some(batch) = s.next_batch().await.unwrap() {
            got.extend(batch.into_iter().map(|kv| kv.key.0));
        }
    }
    let want: Vec<_> = expected.into_iter().map(|(k, _, _)| k).collect();
    let mut sorted = got.clone();
    sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "every record once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_cut_at_the_time_limit_goes_on_after_its_last_record() {
    let (sim, t) = table_with(60).await;
    let expected = scan_all(&t, 1000).await;
    let slow = |n| sim.cluster().faults.arm(Counted::ScanSlow, "t", n);

    // Upstream: error 7, the records read so far, and no scanner to go on with.
    slow(1);
    let raw = Raw::of(&t, 0).await;
    let r = raw.open(&whole(10)).await;
    assert_eq!(
        (r.error, r.kvs.len(), r.context_id),
        (rocksdb::INCOMPLETE, 5, 0)
    );

    // The client keeps those records and restarts after the last one.
    slow(7);
    let got: Vec<_> = scan_all(&t, 4).await;
    assert_eq!(got, expected, "every record once, in order");
    let left = sim.cluster().faults.left(Counted::ScanSlow, "t");
    assert_eq!(left, 0, "every cut batch was met");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_throttled_replica_is_waited_out() {
    let (sim, t) = table_with(40).await;
    let expected = scan_all(&t, 1000).await;
    let busy = |n| sim.cluster().faults.arm(Counted::ReadBusy, "t", n);
    // Upstream answers a throttled read with ERR_BUSY at the RPC level.
    busy(1);
    let raw = Raw::of(&t, 0).await;
    let refused = raw
        .replica
        .call::<GetScanner>(raw.addr, raw.gpid, 0, &whole(10))
        .await
        .unwrap_err();
    assert!(refused.is("ERR_BUSY"), "{refused}");

    busy(3);
    assert_eq!(
        scan_all(&t, 5).await,
        expected,
        "every record once, in order"
    );
    busy(2);
    let k = key::composite_key(b"hk007", b"sk").unwrap();
    let one = migrator::pegasus::scanner::read_one(&t, &k).await.unwrap();
    assert_eq!(one.map(|kv| kv.value.0), Some(b"v7".to_vec()));
    assert_eq!(sim.cluster().faults.left(Counted::ReadBusy, "t"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_too_large_for_a_frame_is_read_in_smaller_ones() {
    let sim = start("scan-big", 1, Version::V2_5).await;
    sim.create_table("big", 1, 1).unwrap();
    let t = TableClient::new("big", meta_client(&sim), TableOptions::default());
    // 660 values of 100 KB: one batch of 1,000 would be a 66 MB reply, over the 64 MB cap.
    let value = vec![b'v'; 100 << 10];
    for i in 0..660 {
        t.put(format!("k{i:03}").as_bytes(), b"s", &value)
            .await
            .unwrap();
    }
    let mut s = PartitionScanner::new(t.clone(), 0, ScanOptions::default());
    let mut seen = 0;
    while let Some(batch) = s.next_batch().await.unwrap() {
        assert!(batch.iter().all(|kv| kv.value.0.len() == value.len()));
        seen += batch.len();
    }
    assert_eq!(seen, 660);
}

/// Partition `pidx`'s records, scanned with `s` to the end; the batch sizes seen.
async fn drain(s: &mut PartitionScanner) -> (Vec<Vec<u8>>, Vec<usize>) {
    let (mut keys, mut sizes) = (Vec::new(), Vec::new());
    while let Some(batch) = s.next_batch().await.unwrap() {
        sizes.push(batch.len());
        keys.extend(batch.into_iter().map(|kv| kv.key.0));
    }
    (keys, sizes)
}

fn keys_of(all: &[(Vec<u8>, Vec<u8>, i32)], pidx: i32) -> Vec<Vec<u8>> {
    all.iter()
        .filter(|(k, _, _)| key::partition_index(key::key_hash(k), PARTITIONS) == pidx)
        .map(|(k, _, _)| k.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_cut_before_its_first_record_asks_for_less_and_restarts_count_from_progress() {
    let (sim, t) = table_with(80).await;
    let expected = keys_of(&scan_all(&t, 1000).await, 0);
    let stuck = |n| sim.cluster().faults.arm(Counted::ScanStuck, "t", n);

    // Upstream can run out of time before the first record: error 7, nothing, no scanner.
    stuck(1);
    let raw = Raw::of(&t, 0).await;
    let r = raw.open(&whole(10)).await;
    assert_eq!(
        (r.error, r.kvs.len(), r.context_id),
        (rocksdb::INCOMPLETE, 0, 0)
    );

    // Six cut batches in a row, twice: twelve restarts, more than one batch may take (8),
    // but they count from the last batch that made progress.
    let opts = ScanOptions {
        batch_size: 8,
        ..ScanOptions::default()
    };
    let mut s = PartitionScanner::new(t.clone(), 0, opts);
    stuck(6);
    let first = s.next_batch().await.unwrap().unwrap();
    assert_eq!(first.len(), 1, "halved six times: 8, 4, 2, 1, 1, 1 → 1");
    stuck(6);
    let second = s.next_batch().await.unwrap().unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(sim.cluster().faults.left(Counted::ScanStuck, "t"), 0);
    let (rest, sizes) = drain(&mut s).await;
    let got: Vec<_> = [first, second]
        .into_iter()
        .flatten()
        .map(|kv| kv.key.0)
        .chain(rest)
        .collect();
    assert_eq!(got, expected, "every record once, in order");
    assert!(
        sizes.contains(&8),
        "batches that come back whole grow back to the size asked: {sizes:?}"
    );

    // Past the restarts, the error is the server's.
    let mut s = PartitionScanner::new(t.clone(), 0, opts);
    stuck(9);
    let e = s.next_batch().await.unwrap_err();
    assert!(e.to_string().contains("rocksdb error 7"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_not_answered_in_time_asks_for_less_and_goes_on() {
    let (sim, t) = table_with(80).await;
    let expected = keys_of(&scan_all(&t, 1000).await, 1);
    let meta = sim.metas()[0];
    let latency = |ms: &'static str| set_latency(meta, ms);
    // Every answer comes 400 ms late, and the scan waits 150 ms, until the network recovers.
    latency("400").await;
    let opts = ScanOptions {
        batch_size: 8,
        timeout: Duration::from_millis(150),
        ..ScanOptions::default()
    };
    let mut s = PartitionScanner::new(t.clone(), 1, opts);
    let scan = tokio::spawn(async move {
        let (keys, sizes) = drain(&mut s).await;
        (keys, sizes, s)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    latency("0").await;
    let (keys, sizes, _) = scan.await.unwrap();
    assert_eq!(keys, expected, "every record once, in order");
    assert!(sizes[0] < 8, "the first batch asked for less: {sizes:?}");
}

/// Sets the simulated network latency of the cluster whose meta server is `meta`.
async fn set_latency(meta: std::net::SocketAddr, ms: &str) {
    let said = ReplicaClient::new(Duration::from_secs(2))
        .command(meta, "sim.fault", &["rpc_latency_ms", ms])
        .await
        .unwrap();
    assert_eq!(said, "OK");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scanner_dropped_midway_releases_the_servers_scanner() {
    let (sim, t) = table_with(40).await;
    let open = || -> usize {
        let state = sim.cluster().lock();
        state.nodes.iter().map(|n| n.scanners.open_count()).sum()
    };
    let opts = ScanOptions {
        batch_size: 2,
        ..ScanOptions::default()
    };
    let mut s = PartitionScanner::new(t.clone(), 0, opts);
    assert_eq!(s.next_batch().await.unwrap().map(|b| b.len()), Some(2));
    assert_eq!(open(), 1, "the server holds the scanner");
    drop(s);
    crate::support::eventually("the scanner released", || async { open() == 0 }).await;
}
