#!/usr/bin/env bash
# Benchmark: the write-unavailable window a steady client load sees during a cut-over, against
# its floor, at 1 s and 30 s config sync, in both block modes. The floor is read from apply's
# journal: from the moment the first primary applied the block until every partition was
# drained, plus — in timeout mode — until every primary applied reconfig*all (clients get no
# reply before that); reconfig mode needs nothing more once routing switches.
# Usage: scripts/bench-cutover.sh [SYNC_MS ...]   (default: 1000 30000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
syncs=("${@:-1000 30000}")
[[ $# -gt 0 ]] || syncs=(1000 30000)
for sync in "${syncs[@]}"; do
  for mode in timeout reconfig; do
    dir=$(mktemp -d)
    target/release/migrator sandbox --dir "$dir" --tables 1 --partitions 8 --write-rate 1000 \
      --writers 8 --config-sync-ms "$sync" --client-timeout-ms 1000 >"$dir/sandbox.log" 2>&1 &
    sandbox=$!
    for _ in $(seq 600); do [[ -f $dir/migrations.yaml ]] && break; sleep 0.1; done
    sed -i "s/block_mode: timeout/block_mode: $mode/" "$dir/migrations.yaml"
    sleep 2
    (cd "$dir" && "$OLDPWD/target/release/migrator" apply migrations.yaml --auto-approve \
      --journal "$dir/journal.jsonl" >"$dir/apply.log" 2>&1) || { echo "apply failed:"; cat "$dir/apply.log"; }
    sleep 2
    kill -TERM "$sandbox"; wait "$sandbox" || true
    python3 - "$dir" "$sync" "$mode" <<'PY'
import json, sys
d, sync, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rec = {}
for line in open(f"{d}/journal.jsonl"):
    r = json.loads(line)
    rec[(r["step"], r["event"])] = r
block = rec[("block_writes", "outcome")]["detail"]
drained = rec[("drain", "outcome")]["ts_ms"]
switched = rec[("switch", "outcome")]["ts_ms"]
applied = rec[("finish", "reconfig_applied")]["ts_ms"]
floor = drained - block["first_applied_ms"] + (applied - switched if mode == "timeout" else 0)
client = json.load(open(f"{d}/client.json"))
window = client["write_unavailable_ms"]
print(f"config sync {sync/1000:>4.0f}s, block mode {mode:<8}: client write-unavailable window "
      f"{window:>6} ms, floor {floor:>6} ms, ratio {window/max(floor,1):.2f}; "
      f"acked {client['acked_writes']}, lost {client['lost_writes']}")
PY
    rm -rf "$dir"
  done
done
