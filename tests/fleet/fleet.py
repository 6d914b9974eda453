"""The fleet: three Envoy replicas with the filter and the same plugin configuration, sharing one
ledger in a 3-member etcd cluster, in front of one test facilitator and one upstream
(docs/fleet.md, tests/fleet/README.md).

Built from the other suites' parts: the facilitator, Envoy and HTTP client of
tests/integration/harness.py, the etcd cluster of tests/ledger/cluster.py, the load of tools/soak.py. Everything on loopback,
ephemeral ports, every process started and stopped by its PID, every wait bounded."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import signal
import string
import sys
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Logs and rendered configs go to tests/fleet/out (harness.OUT reads X402_OUT when imported).
os.environ.setdefault("X402_OUT", str(HERE / "out"))
for path in (ROOT / "tests" / "integration", ROOT / "tests" / "ledger", ROOT / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from cluster import Cluster  # noqa: E402  (tests/ledger)
from harness import (LOGS, OUT, Envoy, Facilitator, default_plugin_config, http_request,  # noqa: E402
                     wait_until)

LEDGER_PREFIX = "/x402-access-pass/"
LEDGER = {"kind": "etcd", "cluster": "x402_ledger", "authority": "etcd", "prefix": LEDGER_PREFIX, "timeoutMs": 1000}
# The origin Sign-In-With-X is honoured for, and the request headers that make a request come from it.
ORIGIN = "https://api.fleet.test"
HERE_HEADERS = {"Host": "api.fleet.test", "X-Forwarded-Proto": "https"}
REPLICAS = ("a", "b", "c")


def fleet_plugin_config(facilitator_addr: str, **overrides) -> dict:
    """The integration suite's default configuration with the etcd ledger and Sign-In-With-X on."""
    base = {"ledger": LEDGER, "siwx": {"origins": [ORIGIN], "maxAgeSeconds": 300}}
    return default_plugin_config(facilitator_addr, **{**base, **overrides})


class Replica(Envoy):
    """One Envoy of the fleet: the loopback Envoy of the integration harness, rendered from
    tests/fleet/envoy.template.yaml with the etcd members as the ledger's endpoints."""

    def __init__(self, name: str, plugin_config: dict, facilitator_port: int, upstream_port: int,
                 etcd_ports: list[int], out_dir: pathlib.Path, concurrency: int = 2):
        super().__init__(name, plugin_config, facilitator_port, upstream_port, out_dir, concurrency=concurrency)
        self.etcd_ports = etcd_ports

    def render(self) -> pathlib.Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        endpoints = "\n".join(
            f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"
            for port in self.etcd_ports)
        self.config_path.write_text(string.Template((HERE / "envoy.template.yaml").read_text()).substitute(
            listener_port=self.listener_port, admin_port=self.admin_port, wasm_path=str(self.wasm),
            plugin_json=json.dumps(json.dumps(self.plugin_config)), facilitator_port=self.facilitator_port,
            upstream_port=self.upstream_port, etcd_endpoints=endpoints))
        return self.config_path

    def kill(self) -> None:
        """SIGKILL, as a crash would: no drain, callouts in flight lost."""
        if self.proc is None or not self.alive():
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.proc.wait(timeout=10)
        self.proc.stop()  # nothing left to signal: closes the log

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def restart(self) -> "Replica":
        """Start again on the same listener port (a restarted replica behind the same address).
        Call it from a thread that outlives the replica (the main one): an Envoy started from a
        thread gets SIGTERM when that thread ends (seen with Envoy 1.40 here)."""
        self.kill()
        self.listener_port = self.port
        self.start()
        return self

    def ledger_hosts(self) -> dict[str, str]:
        """{"127.0.0.1:port": health flags} of the x402_etcd cluster, as this Envoy sees it."""
        out: dict[str, str] = {}
        for line in self.admin_get("/clusters").text.splitlines():
            parts = line.split("::")
            if len(parts) >= 4 and parts[0] == "x402_etcd" and parts[2] == "health_flags":
                out[parts[1]] = parts[3]
        return out


class Fleet:
    """etcd (3 members), the facilitator, and three replicas a, b, c; the upstream is the caller's."""

    def __init__(self, root: pathlib.Path, upstream_port: int, concurrency: int = 2, **plugin_overrides):
        self.root = root
        self.out = OUT / "_fleet"
        self.etcd = Cluster(root / "etcd")
        self.facilitator = Facilitator(self.out)
        self.upstream_port = upstream_port
        self.concurrency = concurrency
        self.plugin_overrides = plugin_overrides
        self.replicas: list[Replica] = []

    def start(self) -> "Fleet":
        (self.root / "etcd").mkdir(parents=True, exist_ok=True)
        for m in self.etcd.members:
            LOGS.add(f"etcd-{m.name}", m.log)
        self.etcd.start()
        self.facilitator.start()
        self.plugin_config = fleet_plugin_config(self.facilitator.addr, **self.plugin_overrides)
        ports = [m.client for m in self.etcd.members]
        for name in REPLICAS:
            replica = Replica(name, self.plugin_config, self.facilitator.port, self.upstream_port, ports, self.out,
                              self.concurrency)
            self.replicas.append(replica)
            replica.start(wait_ready=False)
        for replica in self.replicas:
            replica.wait_ready()
        self.wait_ledger_healthy()
        return self

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.facilitator.stop()
        self.etcd.stop()

    def __getitem__(self, name: str) -> Replica:
        return self.replicas[REPLICAS.index(name)]

    # ----------------------------------------------------------------- etcd

    def leader(self) -> int:
        """The index of etcd's leader (asked of a live member: /v3/maintenance/status)."""
        for m in self.etcd.members:
            if m.proc is None:
                continue
            req = urllib.request.Request(f"http://{m.endpoint}/v3/maintenance/status", data=b"{}", method="POST")
            try:
                with urllib.request.urlopen(req, timeout=2) as answer:
                    status = json.load(answer)
            except (OSError, ValueError):
                continue
            leader = int(status["leader"])
            member = int(status["header"]["member_id"])
            if leader == member:
                return self.etcd.members.index(m)
            # Ask the leader itself (member ids are only known to the cluster).
            for i, other in enumerate(self.etcd.members):
                if other.proc is None:
                    continue
                req = urllib.request.Request(f"http://{other.endpoint}/v3/maintenance/status", data=b"{}",
                                             method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=2) as answer:
                        if int(json.load(answer)["header"]["member_id"]) == leader:
                            return i
                except (OSError, ValueError):
                    continue
        raise RuntimeError("no etcd member knows a leader")

    def follower(self) -> int:
        leader = self.leader()
        return next(i for i, m in enumerate(self.etcd.members) if i != leader and m.proc is not None)

    def kill_member(self, i: int) -> None:
        self.etcd.members[i].stop()

    def start_member(self, i: int) -> None:
        member = self.etcd.members[i]
        if member.proc is None:
            member.start()
        self.etcd.wait_healthy([m for m in self.etcd.members if m.proc is not None])

    def start_all_members(self) -> None:
        for m in self.etcd.members:
            if m.proc is None:
                m.start()
        self.etcd.wait_healthy(self.etcd.members)
        self.wait_ledger_healthy()

    def wait_ledger_healthy(self, timeout: float = 20.0) -> None:
        """Every replica sees every live etcd member healthy (its health checks passed)."""
        live = {m.endpoint for m in self.etcd.members if m.proc is not None}

        def healthy() -> bool:
            for replica in self.replicas:
                if not replica.alive():
                    continue
                hosts = replica.ledger_hosts()
                if any(hosts.get(endpoint) != "healthy" for endpoint in live):
                    return False
            return True

        wait_until(healthy, timeout, interval=0.1, what="every replica to see the live etcd members healthy")

    def ledger_keys(self, kind: str) -> dict[str, str]:
        """{key: value} of one kind of record (`purchase`, `entitlement`, `payment-id`) held in etcd."""
        prefix = f"{LEDGER_PREFIX}{kind}/".encode()
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = json.dumps({"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(end).decode()})
        for m in self.etcd.members:
            if m.proc is None:
                continue
            host, port = m.endpoint.rsplit(":", 1)
            resp = http_request(host, int(port), "POST", "/v3/kv/range", {"Content-Type": "application/json"},
                                body, timeout=5)
            if resp.status == 200:
                kvs = resp.json().get("kvs", [])
                return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
                        for kv in kvs}
        raise RuntimeError("no etcd member answered a range read")

