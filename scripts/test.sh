#!/usr/bin/env bash
# The project's test command (the README cites it; CI runs it through .ci/run).
# Starts a throwaway ZooKeeper, because the routing tests use a real one, then runs the format
# check, clippy and every test target. ZooKeeper is stopped on any exit, even Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

zk_dir=$(mktemp -d)
cleanup() {
  scripts/zk-stop.sh "$zk_dir" || true
  rm -rf "$zk_dir"
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap runs.
trap 'exit 130' INT
trap 'exit 143' TERM

# Toolchains installed with a minimal rustup profile lack these components.
if command -v rustup >/dev/null; then
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi

# The example CI workflow's test runs its jq annotation step.
if ! command -v jq >/dev/null; then
  echo "test.sh: installing jq" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >&2
fi

MIGRATOR_TEST_ZK=$(scripts/zk-start.sh "$zk_dir")
export MIGRATOR_TEST_ZK
echo "test.sh: ZooKeeper at $MIGRATOR_TEST_ZK" >&2

# The official Python client (pypegasus3) proves the simulator speaks real Pegasus.
MIGRATOR_OFFICIAL_PY=$(scripts/official-client-setup.sh)
export MIGRATOR_OFFICIAL_PY

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets --no-fail-fast
