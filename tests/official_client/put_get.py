#!/usr/bin/env python3
"""Put and get through Pegasus with the official, unmodified Python client (PyPI `pypegasus3`).

Usage: put_get.py META1,META2,... TABLE N

Writes N records (hash key `hk{i}`, sort key `sk`, value `v{i}`), reads each back, writes one
more with a one-hour TTL and reads its TTL and sort-key count, writes three sort keys of hash
key `multi` at once, reads them with a count limit (incomplete) and a prefix filter, removes two
(`a` and a missing one), counts what is left and reads it with a hash-key scanner, then scans the whole table with the client's
unordered scanners (small batches), and prints one JSON line
`{"put": N, "get_ok": M, "ttl_ok": T, "multi_ok": U, "scanned": S}`. Exits 0 only if every step matched;
otherwise it prints the reason to stderr and exits 1. The whole run is bounded by TOTAL_TIMEOUT_S.
Install the client with scripts/official-client-setup.sh.
"""

import json
import os
import shutil
import sys
import tempfile
import warnings

TOTAL_TIMEOUT_S = 60
OP_TIMEOUT_MS = 5000

# The client configures a file logger ("pegasus.log" in the working directory) at import time:
# keep that file out of the caller's tree. It is deleted on success and named on failure.
LOG_DIR = tempfile.mkdtemp(prefix="pegasus-official-")
os.chdir(LOG_DIR)
# Twisted warns about the optional service_identity module (TLS only, unused here).
warnings.filterwarnings("ignore", message=".*service_identity.*")

from twisted.internet import defer, reactor  # noqa: E402
from pypegasus.pgclient import Pegasus  # noqa: E402
from pypegasus.base.ttypes import error_types  # noqa: E402
from pypegasus.rrdb.ttypes import filter_type  # noqa: E402
from pypegasus.utils.tools import MultiGetOptions, ScanOptions  # noqa: E402

ERR_OK = error_types.ERR_OK.value
# code: exit status; counts: the summary line; error: why it failed.
outcome = {"code": 1, "counts": {"put": 0, "get_ok": 0, "ttl_ok": 0, "multi_ok": 0, "scanned": 0},
           "error": "did not finish"}


@defer.inlineCallbacks
def run(metas, table, n):
    counts, client = outcome["counts"], None
    try:
        client = Pegasus(metas, table, OP_TIMEOUT_MS)
        # init() asks every meta for the table's partition configuration, keeps the first reply
        # with is_stateful == true, connects to the primaries and yields True; None otherwise.
        ready = yield client.init()
        if ready is not True:
            outcome["error"] = "init: no meta returned a readable configuration of table %r (got %r)" % (table, ready)
            return
        for i in range(n):
            # set() yields (error code, None); RPC-level failures yield a bare error_types member.
            ret = yield client.set("hk%d" % i, "sk", ("v%d" % i).encode())
            if not isinstance(ret, tuple) or ret[0] != ERR_OK:
                outcome["error"] = "put hk%d: %r" % (i, ret)
                return
            counts["put"] += 1
        for i in range(n):
            ret = yield client.get("hk%d" % i, "sk")  # (error code, value bytes)
            if isinstance(ret, tuple) and ret[0] == ERR_OK and ret[1] == ("v%d" % i).encode():
                counts["get_ok"] += 1
            else:
                print("get hk%d: unexpected reply %r" % (i, ret), file=sys.stderr)
        if counts["get_ok"] != n:
            outcome["error"] = "only %d of %d records read back" % (counts["get_ok"], n)
            return
        ret = yield client.set("ttl", "sk", b"expires", 3600)
        ttl = yield client.ttl("ttl", "sk")  # (error code, seconds left; -1 = forever)
        forever = yield client.ttl("hk0", "sk")
        count = yield client.sort_key_count("ttl")  # (error code, count)
        if ttl[0] == ERR_OK and 3590 <= ttl[1] <= 3600 and forever == (ERR_OK, -1) and count == (ERR_OK, 1):
            counts["ttl_ok"] = 1
        else:
            outcome["error"] = "ttl %r, ttl of a record without one %r, sort key count %r" % (ttl, forever, count)
            return
        failed = yield multi_ops(client)
        if failed:
            outcome["error"] = failed
            return
        counts["multi_ok"] = 1
        options = ScanOptions()
        options.batch_size = 7
        seen = {}
        for scanner in client.get_unordered_scanners(3, options):
            while True:
                item = yield scanner.get_next()  # ((hash_key, sort_key), value) or None
                if item is None:
                    break
                # restore_key decodes keys to str; values stay bytes.
                seen[tuple(k.decode() if isinstance(k, bytes) else k for k in item[0])] = item[1]
            scanner.close()
        counts["scanned"] = len(seen)
        # n records, the one with a TTL, and sort keys b and c of `multi`.
        if len(seen) == n + 3 and all(seen.get(("hk%d" % i, "sk")) == ("v%d" % i).encode() for i in range(n)):
            outcome["code"], outcome["error"] = 0, None
        else:
            outcome["error"] = "the scan saw %d records: %r" % (len(seen), sorted(seen)[:5])
    except Exception as e:  # e.g. a reply the client cannot parse
        outcome["error"] = "client raised %s: %s" % (type(e).__name__, e)
    finally:
        if client is not None:
            client.close()


@defer.inlineCallbacks
def multi_ops(client):
    """multi_set / multi_get / multi_del on hash key `multi`; yields why it failed, or None."""
    ret = yield client.multi_set("multi", {"a": "1", "b": "2", "c": "3"})
    if not isinstance(ret, tuple) or ret[0] != ERR_OK:
        return "multi_set: %r" % (ret,)
    # The whole row, at most two records: the first two, and "incomplete" since c follows.
    limited = yield client.multi_get("multi", None, max_kv_count=2)
    options = MultiGetOptions()
    options.sortkey_filter_type = filter_type.FT_MATCH_PREFIX
    options.sortkey_filter_pattern = "b"
    prefixed = yield client.multi_get_opt("multi", "", "", options)
    removed = yield client.multi_del("multi", {"a", "missing"})  # counts what it was asked
    left = yield client.sort_key_count("multi")
    gone = yield client.exist("multi", "a")
    # A hash-key scanner over sort keys [b, d), one record per batch. (An empty stop sort key
    # raises TypeError inside pypegasus3 on Python 3: its generate_next_bytes mixes str and int.)
    options = ScanOptions()
    options.batch_size = 1
    scanner, row = client.get_scanner("multi", "b", "d", options), []
    while True:
        item = yield scanner.get_next()  # ((hash_key, sort_key), value) or None
        if item is None:
            break
        row.append((item[0][1], item[1]))
    scanner.close()
    want = ((error_types.ERR_INCOMPLETE_DATA.value, {b"a": b"1", b"b": b"2"}),
            (ERR_OK, {b"b": b"2"}), (ERR_OK, 2), (ERR_OK, 2),
            error_types.ERR_OBJECT_NOT_FOUND.value, [("b", b"2"), ("c", b"3")])
    got = (limited, prefixed, removed, left, gone[0], row)
    if got != want:
        return "multi ops: got %r, expected %r" % (got, want)
    return None


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: put_get.py META1,META2,... TABLE N")
    metas = [m for m in sys.argv[1].split(",") if m]
    table, n = sys.argv[2], int(sys.argv[3])

    def on_timeout():
        outcome["error"] = "timed out after %d s" % TOTAL_TIMEOUT_S
        reactor.stop()

    watchdog = reactor.callLater(TOTAL_TIMEOUT_S, on_timeout)

    def finish(_):
        if watchdog.active():
            watchdog.cancel()
            reactor.stop()

    reactor.callWhenRunning(lambda: run(metas, table, n).addBoth(finish))
    reactor.run()

    print(json.dumps(outcome["counts"]))
    if outcome["code"] == 0:
        shutil.rmtree(LOG_DIR, ignore_errors=True)
    else:
        print("official client FAILED: %s (client log: %s/pegasus.log)" % (outcome["error"], LOG_DIR), file=sys.stderr)
    sys.exit(outcome["code"])


if __name__ == "__main__":
    main()
