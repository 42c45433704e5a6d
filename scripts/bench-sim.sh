#!/usr/bin/env bash
# Benchmark the simulator.
#   scripts/bench-sim.sh [SECONDS] [WRITERS_PER_TABLE]
#     acknowledged puts per second the simulator sustains from the sandbox's client load
#     (through meta-proxy routing, real TCP, every write verified readable afterwards).
#   scripts/bench-sim.sh idle [TABLES] [SECONDS]
#     the CPU the simulator uses with TABLES (default 1000) tables of 4 partitions and almost
#     nothing to do: no rows, the load's lowest rate (1 write/s over all tables) and no
#     per-partition probes; read from /proc over SECONDS (default 20) once it serves.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
dir=$(mktemp -d)
if [[ ${1:-} == idle ]]; then
  tables=${2:-1000}
  seconds=${3:-20}
  target/release/migrator sandbox --dir "$dir" --tables "$tables" --rows 0 --write-rate 1 \
    --writers 1 --partition-write-ms 0 >"$dir/sandbox.log" 2>&1 &
  sandbox=$!
  trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 1200); do [[ -f $dir/migrations.yaml ]] && break; sleep 0.1; done
  [[ -f $dir/migrations.yaml ]] || { echo "sandbox did not start; see $dir/sandbox.log" >&2; exit 1; }
  sleep 2 # past the start-up
  # utime + stime of the simulator's process (ZooKeeper runs in its own), in clock ticks.
  cpu() { awk '{print $14 + $15}' "/proc/$sandbox/stat"; }
  before=$(cpu)
  sleep "$seconds"
  after=$(cpu)
  python3 -c "
ticks, hz, s = $after - $before, $(getconf CLK_TCK), $seconds
print(f'idle simulator, $tables tables: {ticks / hz:.2f} s of CPU in {s} s = {100 * ticks / hz / s:.1f} % of one core')"
  exit 0
fi
trap 'rm -rf "$dir"' EXIT
seconds=${1:-10}
writers=${2:-16}
target/release/migrator sandbox --dir "$dir" --tables 4 --partitions 8 --rows 0 \
  --write-rate 0 --writers "$writers" --duration "$seconds" >/dev/null
python3 - "$dir/client.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"acked puts: {c['acked_writes']} in {c['seconds']:.1f} s = {c['acked_per_second']:.0f}/s; "
      f"failed {c['failed_writes']}, lost {c['lost_writes']}")
PY
