#!/usr/bin/env bash
# The whole story on the built-in sandbox: simulated source and target clusters, meta-proxy
# over a real ZooKeeper and a client load; then plan, apply with the load running, the
# write-unavailable window the client saw, and a second plan that shows no changes.
# Installs what it needs on a fresh Debian machine with Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/java/zookeeper.jar ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper
fi
cargo build --release --quiet
bin=$PWD/target/release/migrator
dir=${DEMO_DIR:-/tmp/migrator-demo}
rm -rf "$dir" && mkdir -p "$dir"
"$bin" sandbox --dir "$dir" --write-rate 500 --config-sync-ms 1000 "$@" >"$dir/sandbox.log" 2>&1 &
sandbox=$!
trap 'kill -TERM $sandbox 2>/dev/null || true' EXIT
for _ in $(seq 300); do [[ -f $dir/migrations.yaml ]] && break; sleep 0.1; done
cd "$dir"
echo "== the sandbox: $dir/sandbox.json"; cat sandbox.json; echo
echo "== migrator plan migrations.yaml"
"$bin" plan migrations.yaml || true
echo; echo "== migrator apply migrations.yaml --auto-approve (client load running)"
"$bin" apply migrations.yaml --auto-approve
echo; echo "== migrator plan migrations.yaml (again)"
"$bin" plan migrations.yaml
sleep 1
kill -TERM "$sandbox"; wait "$sandbox" || true
trap - EXIT
echo; echo "== what the client saw ($dir/client.json)"; cat client.json; echo
