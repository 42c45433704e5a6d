#!/usr/bin/env bash
# Benchmark: the write-unavailable window a steady client load sees during a cut-over (the
# longest time in which no write to the table was acknowledged), against its floor, at 1 s and
# 30 s config sync, in both block modes. The floor is read from apply's journal: from the moment
# the first primary applied the block (replicas apply envs on their own config-sync phases, and
# a client's writers soon all wait on blocked partitions) until routing switched — which needs
# everything pending shipped and the block in force on every primary — plus, in timeout mode,
# until the first primary applied reconfig*all (blocked writes get no reply, so clients learn
# nothing earlier). Reconfig mode needs nothing more once routing switches.
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
switched = rec[("switch", "outcome")]["ts_ms"]
reconfig = rec[("finish", "reconfig_applied")]["detail"]["first_applied_ms"]
tail = reconfig - switched if mode == "timeout" else 0
floor = switched - block["first_applied_ms"] + tail
# Lower bound: from the last primary applying the block (every write blocked from then on).
low = switched - block["confirmed_ms"] + tail
client = json.load(open(f"{d}/client.json"))
window = client["write_unavailable_ms"]
print(f"config sync {sync/1000:>4.0f}s, block mode {mode:<8}: client write-unavailable window "
      f"{window:>6} ms, floor {floor:>6} ms (all-blocked part {low:>6} ms), "
      f"window/floor {window/max(floor,1):.2f}; acked {client['acked_writes']}, lost {client['lost_writes']}")
PY
    rm -rf "$dir"
  done
done
