#!/usr/bin/env bash
# Starts a standalone ZooKeeper (Debian package, no systemd) for tests and the sandbox.
# Usage: scripts/zk-start.sh DIR [PORT]
# Writes DIR/zoo.cfg, DIR/zk.pid, DIR/zk.port and DIR/zookeeper.log; prints 127.0.0.1:PORT.
set -euo pipefail

dir=${1:?usage: zk-start.sh DIR [PORT]}
port=${2:-}
jars=/usr/share/java

# A fresh machine has no ZooKeeper; the Debian package brings Java and every jar we need.
if [[ ! -f $jars/zookeeper.jar || ! -f $jars/slf4j-simple.jar ]] || ! command -v java >/dev/null; then
  echo "zk-start: installing the Debian zookeeper package" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper >&2
fi

# A port nobody listens on, below Linux's ephemeral range so outgoing sockets never hold it.
if [[ -z $port ]]; then
  for _ in $(seq 100); do
    candidate=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      port=$candidate
      break
    fi
  done
  [[ -n $port ]] || { echo "zk-start: no free port found" >&2; exit 1; }
elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  # Otherwise the server already there would answer ruok for ours, which cannot bind.
  echo "zk-start: port $port is already in use" >&2
  exit 1
fi

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
# Short ticks make session expiry fast in tests; forceSync=no because test data is disposable;
# maxClientCnxns=0 because many test clients share 127.0.0.1.
cat >"$dir/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=no
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
CFG

# zookeeper.jar's manifest Class-Path pulls in jute, netty, metrics etc.; slf4j-simple is the
# only logging binding we add (its absence makes ZooKeeper log nothing at all).
classpath=$jars/zookeeper.jar:$jars/zookeeper-jute.jar:$jars/slf4j-api.jar:$jars/slf4j-simple.jar
java -Xmx256m -XX:+UseSerialGC -cp "$classpath" \
  org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
  >"$dir/zookeeper.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$dir/zk.pid"
echo "$port" >"$dir/zk.port"

# Ready means the server answers the ruok four-letter word with imok.
deadline=$((SECONDS + 20))
while ((SECONDS < deadline)); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "zk-start: ZooKeeper exited during start-up; $dir/zookeeper.log ends with:" >&2
    tail -n 20 "$dir/zookeeper.log" >&2
    exit 1
  fi
  # A connection made while the server is still starting can stay unanswered: bound the read.
  reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf ruok >&3 && timeout 1 cat <&3) 2>/dev/null || true)
  if [[ $reply == imok ]]; then
    echo "127.0.0.1:$port"
    exit 0
  fi
  sleep 0.1
done
echo "zk-start: ZooKeeper on 127.0.0.1:$port did not answer ruok within 20 s; see $dir/zookeeper.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
