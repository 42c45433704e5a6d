#!/usr/bin/env bash
# Benchmark: the write-unavailable window each partition's client sees during a cut-over (the
# sandbox load writes one fixed key per partition in a loop and reads it back; the window is
# the longest gap between two acknowledged writes of one partition), 8 partitions at 1,000
# writes/s through meta-proxy, client timeout 1 s like the Java client.
#
# Scenarios (source version, config sync, speed-up, group check), each in both block modes:
#   master  30 s  speed-up 1 s  (not applied: master's /updateConfig does not re-arm the timer)
#   master   1 s  -
#   2.5     30 s  speed-up 1 s  group check 10 s
#   2.5     30 s  -             group check 10 s   (for comparison: no speed-up)
# Usage: scripts/bench-cutover.sh [SCENARIO ...]   scenarios: m30s m1 v25s v25
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/migrator
scenarios=("$@")
[[ $# -gt 0 ]] || scenarios=(m30s m1 v25s v25)

run() { # name versions sync_ms speed_up mode
  local name=$1 versions=$2 sync=$3 speed=$4 mode=$5
  local dir
  dir=$(mktemp -d)
  "$bin" sandbox --dir "$dir" --tables 1 --target-tables 1 --partitions 8 --write-rate 1000 \
    --writers 8 --partition-write-ms 20 --config-sync-ms "$sync" --group-check-ms 10000 \
    --versions "$versions" --client-timeout-ms 1000 >"$dir/sandbox.log" 2>&1 &
  local sandbox=$!
  for _ in $(seq 600); do [[ -f $dir/migrations.yaml ]] && break; sleep 0.1; done
  # The sandbox's plan has the default block mode and the least budget for it; timeout mode
  # needs more, so both modes get a budget no scenario reaches.
  sed -i "s/block_mode: [a-z]*/block_mode: $mode/; s/max_write_block: [0-9]*s/max_write_block: 150s/" \
    "$dir/migrations.yaml"
  if [[ $speed != - ]]; then
    sed -i "s/^  sandbox-a: { meta: \(.*\) }$/  sandbox-a: { meta: \1, config_sync_during_cutover: $speed }/" \
      "$dir/migrations.yaml"
  fi
  sleep 2
  (cd "$dir" && "$bin" apply migrations.yaml --auto-approve --journal "$dir/journal.jsonl" \
    >"$dir/apply.log" 2>&1) || { echo "apply failed ($name $mode):"; tail -20 "$dir/apply.log"; }
  sleep 2
  kill -TERM "$sandbox"; wait "$sandbox" || true
  python3 - "$dir" "$name" "$mode" <<'PY'
import json, sys
d, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
block = None
for line in open(f"{d}/journal.jsonl"):
    r = json.loads(line)
    if r["step"] == "switch" and r["event"] == "reconfigured":
        block = r["detail"].get("write_block_ms")
client = json.load(open(f"{d}/client.json"))
parts = [ms for t in client["partition_unavailable_ms"].values() for ms in t]
print(f"{name:<34} {mode:<8}: per-partition window max {max(parts):>6} ms, "
      f"median {sorted(parts)[len(parts)//2]:>6} ms; table-wide {client['write_unavailable_ms']:>6} ms; "
      f"block until every primary told clients to move {block} ms; "
      f"acked {client['acked_writes']}, lost {client['lost_writes']}")
PY
  rm -rf "$dir"
}

for s in "${scenarios[@]}"; do
  for mode in timeout reconfig; do
    case $s in
      m30s) run "master, 30 s sync, speed-up 1 s" 2.6,2.6 30000 1s "$mode" ;;
      m1) run "master, 1 s sync" 2.6,2.6 1000 - "$mode" ;;
      v25s) run "2.5, 30 s sync, speed-up 1 s, gc 10 s" 2.5,2.6 30000 1s "$mode" ;;
      v25) run "2.5, 30 s sync, gc 10 s" 2.5,2.6 30000 - "$mode" ;;
      *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
  done
done
