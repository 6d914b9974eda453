#!/usr/bin/env python3
"""Where an etcd call's time goes (docs/fleet.md, "Where an etcd call's time goes").

The etcd ledger talks to etcd through its JSON gateway (`/v3/kv/range`, `/v3/kv/txn`,
`/v3/lease/grant`). This starts the same 3-member cluster on loopback the ledger suite and the
bench use (tests/ledger/cluster.py, Debian's etcd), with `--metrics extensive`, and sends each kind
of call the ledger makes, one at a time on one keep-alive connection, first to the leader and then
to a follower. For each it prints the round trip this client saw beside etcd's own gRPC handling
time of the same calls (`grpc_server_handling_seconds`, from every member's /metrics before and
after) and every member's WAL fsync: the difference is the gateway (JSON to protobuf and back, and
its loopback gRPC hop inside etcd), which a client speaking etcd's gRPC API would not pay.

    .venv/bin/python bench/etcd_calls.py [--calls 400]      (make etcd-calls)

It measures calls, not the filter: the purchase's own figures are `make bench`'s."""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests/ledger"))

import cluster as ledger_cluster  # noqa: E402  (tests/ledger/cluster.py: a 3-member etcd cluster on loopback)

# The gateway's paths for the calls a purchase makes, and etcd's gRPC method for each.
KINDS = (("read", "/v3/kv/range", "Range"), ("transaction", "/v3/kv/txn", "Txn"),
         ("lease grant", "/v3/lease/grant", "LeaseGrant"))
FSYNC = "etcd_disk_wal_fsync_duration_seconds"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def body(kind: str, i: int) -> dict:
    """What the ledger sends for each kind: a read of one key, a create-if-absent with a ~200 byte
    record (a claim's size), a 60 s lease."""
    key = b64(f"/etcd-calls/{time.time_ns()}/{i}")
    if kind == "read":
        return {"key": key}
    if kind == "transaction":
        return {"compare": [{"key": key, "target": "CREATE", "create_revision": "0"}],
                "success": [{"request_put": {"key": key, "value": b64("x" * 200)}}],
                "failure": [{"request_range": {"key": key}}]}
    return {"TTL": 60}


def post(conn: http.client.HTTPConnection, path: str, payload: dict) -> dict:
    conn.request("POST", path, json.dumps(payload), {"content-type": "application/json"})
    answer = conn.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"{path}: HTTP {answer.status} {data[:200]!r}")
    return json.loads(data)


def metrics(member: ledger_cluster.Member) -> dict[str, float]:
    """The sums and counts of the histograms this reads, from one member's /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", member.client, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        for _, _, method in KINDS:
            for part in ("sum", "count"):
                if name.startswith(f"grpc_server_handling_seconds_{part}") and f'grpc_method="{method}"' in name:
                    out[f"{method}_{part}"] = float(value)
        for part in ("sum", "count"):
            if name == f"{FSYNC}_{part}":
                out[f"fsync_{part}"] = float(value)
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def leader_of(members: list[ledger_cluster.Member]) -> ledger_cluster.Member:
    for m in members:
        conn = http.client.HTTPConnection("127.0.0.1", m.client, timeout=5)
        status = post(conn, "/v3/maintenance/status", {})
        conn.close()
        if status.get("leader") == status.get("header", {}).get("member_id"):
            return m
    raise RuntimeError("no member says it leads")


def measure(target: ledger_cluster.Member, members: list[ledger_cluster.Member], calls: int) -> list[str]:
    lines = []
    conn = http.client.HTTPConnection("127.0.0.1", target.client, timeout=5)
    for kind, path, method in KINDS:
        before = {m.name: metrics(m) for m in members}
        times = []
        for i in range(calls):
            payload = body(kind, i)
            started = time.perf_counter()
            post(conn, path, payload)
            times.append((time.perf_counter() - started) * 1e3)
        after = {m.name: metrics(m) for m in members}
        handled = after[target.name].get(f"{method}_sum", 0) - before[target.name].get(f"{method}_sum", 0)
        count = after[target.name].get(f"{method}_count", 0) - before[target.name].get(f"{method}_count", 0)
        inside = 1e3 * handled / count if count else float("nan")
        mean = sum(times) / len(times)
        fsyncs = []
        for m in members:
            n = after[m.name].get("fsync_count", 0) - before[m.name].get("fsync_count", 0)
            s = after[m.name].get("fsync_sum", 0) - before[m.name].get("fsync_sum", 0)
            if n:
                fsyncs.append(f"{m.name} {n:.0f}× {1e3 * s / n:.2f} ms")
        lines.append(f"  {kind:12s} at the client p50 {percentile(times, .5):5.2f} ms  p99 {percentile(times, .99):5.2f} ms"
                     f"  mean {mean:5.2f} ms | inside etcd (gRPC) mean {inside:5.2f} ms | the gateway ~{mean - inside:4.2f} ms"
                     + (f" | WAL fsync {', '.join(fsyncs)}" if fsyncs else ""))
    conn.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="calls of each kind to each member measured")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="etcd-calls-") as root:
        cluster = ledger_cluster.Cluster(pathlib.Path(root), extra_args=("--metrics", "extensive"))
        try:
            cluster.start()
            time.sleep(1)  # let the first election's traffic settle
            leader = leader_of(cluster.members)
            follower = next(m for m in cluster.members if m is not leader)
            print(f"etcd {ledger_cluster.ETCD}, 3 members on loopback, {args.calls} calls of each kind, one at a time")
            for label, target in (("the leader", leader), ("a follower", follower)):
                print(f"to {label} ({target.name}):")
                for line in measure(target, cluster.members, args.calls):
                    print(line)
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
