#!/usr/bin/env bash
# Stops the ZooKeeper started by scripts/zk-start.sh DIR and waits until its process is gone,
# so the port can be reused at once. Usage: scripts/zk-stop.sh DIR
set -euo pipefail

dir=${1:?usage: zk-stop.sh DIR}
[[ -f $dir/zk.pid ]] || exit 0
pid=$(<"$dir/zk.pid")

# Gone also covers a zombie: its parent (zk-start.sh) has exited and init may reap it late.
gone() {
  ! kill -0 "$pid" 2>/dev/null || [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]]
}

kill "$pid" 2>/dev/null || true
for _ in $(seq 100); do
  gone && { rm -f "$dir/zk.pid"; exit 0; }
  sleep 0.1
done
# Ten seconds after SIGTERM it is stuck; SIGKILL cannot be ignored.
kill -KILL "$pid" 2>/dev/null || true
for _ in $(seq 50); do
  gone && { rm -f "$dir/zk.pid"; exit 0; }
  sleep 0.1
done
echo "zk-stop: ZooKeeper (pid $pid) is still running" >&2
exit 1
