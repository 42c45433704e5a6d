#!/usr/bin/env bash
# Benchmark: `migrator verify` of a table and its identical copy in the sandbox (8 + 8
# partitions, 32-byte values, written straight into the simulator), full and sample mode, with
# no injected latency and with every data RPC answered 30 ms late (`sandbox --rpc-latency-ms`);
# reports records compared per second against the targets (1,000,000/s without latency,
# 100,000/s at 30 ms) and the peak memory of the verify process (getrusage of the child, so the
# simulator's own memory is not counted) against the 100 MB bound.
# Usage: scripts/bench-verify.sh [RECORDS] [LATENCIES_MS]   (default 1000000 "0 30")
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
latencies=${2:-"0 30"}
cargo build --release --quiet
for latency in $latencies; do
  dir=$(mktemp -d)
  target/release/migrator sandbox --dir "$dir" --tables 1 --rows 0 --write-rate 1 --writers 1 \
    --partitions 8 --partition-write-ms 0 --copy-rows "$records" --rpc-latency-ms "$latency" \
    >"$dir/sandbox.log" 2>&1 &
  sandbox=$!
  trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 1200); do [[ -f $dir/migrations.yaml ]] && break; sleep 0.1; done
  [[ -f $dir/migrations.yaml ]] || { echo "sandbox did not start; see $dir/sandbox.log" >&2; exit 1; }
  # The plan file with the copy as its only table.
  sed '/^migrations:/,$d' "$dir/migrations.yaml" >"$dir/copy.yaml"
  printf 'migrations:\n  - { table: copy, from: sandbox-a, to: sandbox-b }\n' >>"$dir/copy.yaml"
  python3 - "$dir" "$records" "$latency" <<'PY'
import json, os, resource, subprocess, sys, time
d, records, latency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
binary = os.path.abspath("target/release/migrator")
target = 1_000_000 if latency == 0 else 100_000
def run(*flags):
    start = time.monotonic()
    # In the sandbox's directory: a run's checkpoint goes to its .migrator, not the repository's.
    out = subprocess.run([binary, "verify", f"{d}/copy.yaml", "--json", *flags],
                         check=False, capture_output=True, text=True, cwd=d)
    took = time.monotonic() - start
    if out.returncode != 0:
        sys.exit(f"verify exited {out.returncode}: {out.stderr}")
    scanned = json.loads(out.stdout)["tables"][0]["outcome"]["scanned"]["scanned"]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return scanned, took, peak
for mode in (["--mode", "full"], ["--mode", "sample"]):
    n, took, peak = run(*mode)
    print(f"{latency} ms: verify {' '.join(mode)}: {n} records in {took:.2f} s = {n / took:,.0f} records/s "
          f"({n / took / target:.2f} x the {target:,}/s target), peak RSS of the verify processes so far "
          f"{peak:.1f} MB ({peak / 100:.2f} of the 100 MB bound)")
# Point reads of listed keys on both clusters, as the exact check at the switch makes them
# inside the write block: 10,000 of the copy's keys, one round (after the CLI's 0.5 s pause).
import base64
keys = min(10_000, records)
with open(f"{d}/keys.ndjson", "w") as f:
    for i in range(keys):
        hk = f"seed{i}".encode()
        key = len(hk).to_bytes(2, "big") + hk + b"s"
        f.write(json.dumps({"table": "copy", "key_b64": base64.b64encode(key).decode()}) + "\n")
out = subprocess.run([binary, "verify", f"{d}/copy.yaml", "--json", "--keys", f"{d}/keys.ndjson",
                      "--settle-rounds", "1"], check=False, capture_output=True, text=True, cwd=d)
if out.returncode != 0:
    sys.exit(f"verify --keys exited {out.returncode}: {out.stderr}")
outcome = json.loads(out.stdout)["tables"][0]["outcome"]
read_s = (outcome["elapsed_ms"] - 500) / 1000
rate = keys / read_s
fit = int(rate * 1.2)
print(f"{latency} ms: exact check reads: {keys} keys compared in {read_s:.2f} s = {rate:,.0f} keys/s; "
      f"the 3 s reserve (two rounds, 0.6 s of pauses) holds up to ~{fit:,} keys")
PY
  kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null || true; rm -rf "$dir"
  trap - EXIT
done
