#!/usr/bin/env bash
# Benchmark: `migrator plan` end to end against the sandbox with 1000 tables and with 10, in
# the same run; reports wall time, the ratio, and the peak memory of the 1000-table plan; then
# `migrator show` of that plan in each format (reading the saved plan plus rendering it).
# The sandbox runs a light load (10 writes/s) and no per-partition probes: with 4 partitions
# a table, the default probe of every partition every 20 ms asks 1000 tables for 200,000
# writes a second, each read back, and keeps a core busy: a load test, not a planning one.
# Usage: scripts/bench-plan.sh [TABLES]
set -euo pipefail
cd "$(dirname "$0")/.."
tables=${1:-1000}
cargo build --release --quiet
dir=$(mktemp -d)
target/release/migrator sandbox --dir "$dir" --tables "$tables" --rows 0 --write-rate 10 \
  --writers 1 --partition-write-ms 0 >"$dir/sandbox.log" 2>&1 &
sandbox=$!
trap 'kill $sandbox 2>/dev/null; wait $sandbox 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do [[ -f $dir/migrations.yaml ]] && break; sleep 0.1; done
[[ -f $dir/migrations.yaml ]] || { echo "sandbox did not start; see $dir/sandbox.log" >&2; exit 1; }
# The same file cut down to its first 10 migrations.
awk '/^migrations:/{print; n=0; next} n<10 && /^  - /{print; n++; next} !/^  - /{print}' \
  "$dir/migrations.yaml" >"$dir/ten.yaml"
python3 - "$dir" <<'PY'
import resource, statistics, subprocess, sys, time
d = sys.argv[1]
def run(spec):
    start = time.monotonic()
    subprocess.run(["target/release/migrator", "plan", spec, "-o", f"{d}/plan.json", "--json"],
                   check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start
small = statistics.median(run(f"{d}/ten.yaml") for _ in range(5))
before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
big = statistics.median(run(f"{d}/migrations.yaml") for _ in range(3))
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
tables = sum(1 for l in open(f"{d}/migrations.yaml") if l.startswith("  - "))
print(f"plan({tables} tables) = {big:.3f} s, plan(10 tables) = {small:.3f} s, "
      f"ratio = {big / small:.1f}, peak RSS of a plan run = {peak_mb:.1f} MB")
# Rendering the saved plan of every table, per format (show = read the file + render).
def show(*flags):
    start = time.monotonic()
    subprocess.run(["target/release/migrator", "show", f"{d}/plan.json", *flags],
                   check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start
base = statistics.median(show("--format", "json") for _ in range(5))
for flags in (["--format", "text"], ["--format", "text", "--detailed"], ["--format", "markdown"]):
    t = statistics.median(show(*flags) for _ in range(5))
    print(f"show {' '.join(flags)} ({tables} tables) = {t * 1000:.0f} ms, "
          f"json = {base * 1000:.0f} ms, ratio = {t / base:.2f}")
PY
