#!/usr/bin/env bash
# Benchmark: acknowledged puts per second the simulator sustains from the sandbox's client
# load (through meta-proxy routing, real TCP, every write verified readable afterwards).
# Usage: scripts/bench-sim.sh [SECONDS] [WRITERS_PER_TABLE]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
writers=${2:-16}
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target/release/migrator sandbox --dir "$dir" --tables 4 --partitions 8 --rows 0 \
  --write-rate 0 --writers "$writers" --duration "$seconds" >/dev/null
python3 - "$dir/client.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"acked puts: {c['acked_writes']} in {c['seconds']:.1f} s = {c['acked_per_second']:.0f}/s; "
      f"failed {c['failed_writes']}, lost {c['lost_writes']}")
PY
