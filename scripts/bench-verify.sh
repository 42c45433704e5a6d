#!/usr/bin/env bash
# Benchmark: `migrator verify` of a table and its identical copy in the sandbox (4 partitions,
# 32-byte values, written straight into the simulator), full and sample mode; reports records
# compared per second and its ratio to the 100,000/s target, and the peak memory of the verify
# process (getrusage of the child, so the simulator's own memory is not counted) and its ratio
# to the 100 MB bound.
# Usage: scripts/bench-verify.sh [RECORDS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
cargo build --release --quiet
dir=$(mktemp -d)
target/release/migrator sandbox --dir "$dir" --tables 1 --rows 0 --write-rate 1 --writers 1 \
  --partition-write-ms 0 --copy-rows "$records" >"$dir/sandbox.log" 2>&1 &
sandbox=$!
trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1200); do [[ -f $dir/migrations.yaml ]] && break; sleep 0.1; done
[[ -f $dir/migrations.yaml ]] || { echo "sandbox did not start; see $dir/sandbox.log" >&2; exit 1; }
# The plan file with the copy as its only table.
sed '/^migrations:/,$d' "$dir/migrations.yaml" >"$dir/copy.yaml"
printf 'migrations:\n  - { table: copy, from: sandbox-a, to: sandbox-b }\n' >>"$dir/copy.yaml"
python3 - "$dir" "$records" <<'PY'
import json, resource, subprocess, sys, time
d, records = sys.argv[1], int(sys.argv[2])
def run(*flags):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    out = subprocess.run(["target/release/migrator", "verify", f"{d}/copy.yaml", "--json", *flags],
                         check=False, capture_output=True, text=True)
    took = time.monotonic() - start
    if out.returncode != 0:
        sys.exit(f"verify exited {out.returncode}: {out.stderr}")
    scanned = json.loads(out.stdout)["tables"][0]["outcome"]["scanned"]["scanned"]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return scanned, took, peak
for mode in (["--mode", "full"], ["--mode", "sample"]):
    n, took, peak = run(*mode)
    print(f"verify {' '.join(mode)}: {n} records in {took:.2f} s = {n / took:,.0f} records/s "
          f"({n / took / 100000:.1f} x the 100,000/s target), peak RSS of the verify process so far "
          f"{peak:.1f} MB ({peak / 100:.2f} of the 100 MB bound)")
PY
