#!/usr/bin/env bash
# The main job on the built-in sandbox: simulated clusters, meta-proxy over a real ZooKeeper
# and a client load. Installs what it needs on a fresh Debian machine with Rust.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/java/zookeeper.jar ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper
fi
cargo build --release --quiet
dir=${DEMO_DIR:-/tmp/migrator-demo}
rm -rf "$dir"
target/release/migrator sandbox --dir "$dir" --duration "${DEMO_SECONDS:-10}" "$@"
echo
echo "== $dir/sandbox.json"; cat "$dir/sandbox.json"
echo "== $dir/migrations.yaml"; cat "$dir/migrations.yaml"
echo "== $dir/client.json"; cat "$dir/client.json"
