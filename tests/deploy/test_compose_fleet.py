"""envoy/docker-compose.fleet.yaml and envoy/docker/envoy-fleet.yaml (two Envoy replicas sharing one
etcd ledger, docs/fleet.md), checked without a Docker engine:

- the compose file against the Compose Specification schema (as test_compose.py checks the
  single-Envoy one), its references (extended services, health conditions, bind sources), the two
  replicas alike apart from their published ports, the Envoy and etcd releases the tests run;
- the replicas' Envoy config: the compose Envoy's (envoy/docker/envoy.yaml) plus the ledger and
  nothing else, its ledger parts exactly those the fleet suite (tests/fleet/envoy.template.yaml)
  runs, `envoy --mode validate`;
- on loopback, that config with only its addresses changed, twice, in front of a real etcd, the
  test facilitator and the demo upstream: a payment sent to one replica and again to the other is
  settled once and answered with the same pass by both.
"""

from __future__ import annotations

import copy
import json
import pathlib
import re
import shutil
import string
import subprocess
import sys
import tempfile

import pytest
import yaml

from compose_live import COMPOSE_WASM_PATH, compose_envoy_yaml
from deploylib import OUT, REPO, WASM, envoy_validate, harness
from test_compose import schema_errors

sys.path.insert(0, str(REPO / "tests" / "ledger"))
from cluster import ETCD, Cluster  # noqa: E402  (tests/ledger/cluster.py)

COMPOSE = REPO / "envoy/docker-compose.fleet.yaml"
COMPOSE_DIR = COMPOSE.parent
FLEET_ENVOY = REPO / "envoy/docker/envoy-fleet.yaml"
FLEET_TEMPLATE = REPO / "tests/fleet/envoy.template.yaml"
LEDGER = {"kind": "etcd", "cluster": "x402_ledger", "authority": "etcd", "prefix": "/x402-access-pass/",
          "timeoutMs": 1000}
LEDGER_CLUSTERS = ("x402_ledger", "x402_etcd")
LEDGER_LISTENER = "x402_ledger_retry"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def fleet_envoy_yaml() -> str:
    """envoy-fleet.yaml as a replica runs it: X402_PAY_TO written over the placeholder payTo."""
    text = FLEET_ENVOY.read_text()
    assert text.count(harness.PAY_TO_PLACEHOLDER) == 1
    return text.replace(harness.PAY_TO_PLACEHOLDER, harness.MERCHANT)


def plugin_config(cfg: dict) -> dict:
    (hcm,) = [f for f in cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]]
    (wasm,) = [f for f in hcm["typed_config"]["http_filters"] if f["name"] == "envoy.filters.http.wasm"]
    return json.loads(wasm["typed_config"]["config"]["configuration"]["value"])


def by_name(items: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in items}


# --------------------------------------------------------------------------- compose file


def test_fleet_compose_file_matches_the_compose_spec_schema(compose):
    assert schema_errors(compose) == []


def test_the_schema_check_catches_mistakes_in_the_fleet_file(compose):
    bad = copy.deepcopy(compose)
    bad["services"]["etcd"]["healthcheck"]["interval"] = 2
    assert schema_errors(bad)
    bad = copy.deepcopy(compose)
    bad["services"]["envoy-a"]["depends_on"]["etcd"]["condition"] = "service_ready"
    assert schema_errors(bad)


def test_fleet_compose_references_resolve(compose):
    services = compose["services"]
    assert set(services) == {"facilitator", "upstream", "etcd", "envoy-a", "envoy-b"}
    base = yaml.safe_load((COMPOSE_DIR / "docker-compose.yaml").read_text())["services"]
    for name in ("facilitator", "upstream"):
        extends = services[name]["extends"]
        assert (COMPOSE_DIR / extends["file"]).resolve() == COMPOSE_DIR / "docker-compose.yaml"
        assert extends["service"] == name and "healthcheck" in base[name]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            if cond.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep] or "healthcheck" in base.get(dep, {}), (name, dep)
        for vol in svc.get("volumes", []):
            if vol["type"] == "bind":
                assert (COMPOSE_DIR / vol["source"]).exists(), f"{name}: bind source {vol['source']} is missing"
            else:
                assert vol["type"] == "volume" and vol["source"] in compose["volumes"], vol
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_the_two_replicas_are_one_envoy_apart_from_their_ports(compose):
    a, b = (dict(compose["services"][n]) for n in ("envoy-a", "envoy-b"))
    assert a.pop("ports") != b.pop("ports")
    assert a == b
    assert a["depends_on"]["etcd"] == {"condition": "service_healthy"}
    assert [v["source"] for v in a["volumes"]] == ["./docker/envoy-fleet.yaml",
                                                    "../target/wasm32-wasip1/release/x402_access_pass.wasm"]
    single = yaml.safe_load((COMPOSE_DIR / "docker-compose.yaml").read_text())["services"]["envoy"]
    assert a["image"] == single["image"] and a["command"] == single["command"], \
        "the replicas run the single compose Envoy's image and command"


def test_etcd_is_the_release_the_tests_run():
    compose = yaml.safe_load(COMPOSE.read_text())
    tag = compose["services"]["etcd"]["image"].rsplit(":v", 1)[1]
    if not pathlib.Path(ETCD).exists():
        pytest.skip("etcd is not installed here (make etcd)")
    version = subprocess.run([ETCD, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert re.search(rf"^etcd Version: {re.escape(tag)}$", version, re.M), (tag, version)


# --------------------------------------------------------------------------- the replicas' Envoy config


def test_the_replica_config_is_the_compose_envoy_plus_the_ledger():
    fleet = yaml.safe_load(fleet_envoy_yaml())
    single = yaml.safe_load(compose_envoy_yaml())
    assert plugin_config(fleet) == {**plugin_config(single), "ledger": LEDGER}
    stripped = copy.deepcopy(fleet)
    assert [e["name"] for e in stripped.pop("bootstrap_extensions")] == ["envoy.bootstrap.internal_listener"]
    resources = stripped["static_resources"]
    resources["listeners"] = [l for l in resources["listeners"] if l["name"] != LEDGER_LISTENER]
    resources["clusters"] = [c for c in resources["clusters"] if c["name"] not in LEDGER_CLUSTERS]
    for cfg in (stripped, single):
        wasm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "http_filters"][0]["typed_config"]["config"]
        wasm["configuration"]["value"] = None
    assert stripped == single


def test_the_replica_ledger_parts_are_the_ones_the_fleet_suite_runs():
    """The internal listener that retries a connect failure on another member, and both clusters,
    as tests/fleet runs them (three replicas, three members); only the members' addresses differ."""
    fleet = yaml.safe_load(fleet_envoy_yaml())
    member = "        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 2379 } } }"
    template = yaml.safe_load(string.Template(FLEET_TEMPLATE.read_text()).substitute(
        listener_port=0, admin_port=0, wasm_path="x.wasm", plugin_json='"{}"', facilitator_port=1,
        upstream_port=2, etcd_endpoints=member))
    for key in ("listeners", "clusters"):
        ours, theirs = by_name(fleet["static_resources"][key]), by_name(template["static_resources"][key])
        for name in (LEDGER_LISTENER,) if key == "listeners" else LEDGER_CLUSTERS:
            mine, suite = copy.deepcopy(ours[name]), copy.deepcopy(theirs[name])
            if name == "x402_etcd":
                assert mine.pop("type") == "STRICT_DNS" and mine.pop("dns_lookup_family") == "V4_ONLY"
                assert suite.pop("type") == "STATIC"
                assert [lb["endpoint"]["address"]["socket_address"]
                        for lb in mine["load_assignment"]["endpoints"][0]["lb_endpoints"]] == \
                    [{"address": "etcd", "port_value": 2379}]
                mine.pop("load_assignment"), suite.pop("load_assignment")
            assert mine == suite, name
    assert fleet["bootstrap_extensions"] == template["bootstrap_extensions"]


def test_the_replica_config_passes_envoy_validate():
    text = fleet_envoy_yaml()
    assert text.count(COMPOSE_WASM_PATH) == 1
    out = OUT / "compose-fleet"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "envoy-fleet-validate.yaml"
    path.write_text(text.replace(COMPOSE_WASM_PATH, str(WASM)))
    proc = envoy_validate(path)
    (out / "envoy-fleet-validate.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


# --------------------------------------------------------------------------- on loopback


class _Replica(harness.Envoy):
    def __init__(self, name: str, config: dict, out_dir: pathlib.Path):
        super().__init__(name, {}, 0, 0, out_dir)
        self.config = config

    def render(self) -> pathlib.Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=1))
        return self.config_path


def loopback_replica_config(ports: dict[str, int]) -> dict:
    """envoy-fleet.yaml as a replica runs it, with loopback addresses and ephemeral ports for its
    listener and admin; the service names of its clusters -> 127.0.0.1 and `ports`."""
    cfg = yaml.safe_load(fleet_envoy_yaml())
    cfg["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    main = cfg["static_resources"]["listeners"][0]
    main["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    for cluster in cfg["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for lb in group["lb_endpoints"]:
                sock = lb["endpoint"]["address"].get("socket_address")
                if sock:
                    sock["port_value"] = ports[sock["address"]]
                    sock["address"] = "127.0.0.1"
    text = json.dumps(cfg)
    return json.loads(text.replace(COMPOSE_WASM_PATH, str(WASM)))


def test_two_replicas_of_the_fleet_config_sell_one_payment_once(tmp_path):
    if not pathlib.Path(ETCD).exists():
        pytest.fail("etcd is missing: `make etcd` installs Debian's etcd-server")
    from attacks import Ledger  # tests/integration
    from helpers import Buyer, assert_purchase_ok, get_challenge, purchase
    from upstream import DemoUpstream

    out = OUT / "compose-fleet"
    root = pathlib.Path(tempfile.mkdtemp(prefix="x402-compose-fleet-"))
    etcd = Cluster(root, size=1)
    fac = harness.Facilitator(out)
    up = DemoUpstream().start()
    replicas: list[_Replica] = []
    try:
        etcd.start()
        fac.start()
        ports = {"facilitator": fac.port, "upstream": up.port, "etcd": etcd.members[0].client}
        for name in ("a", "b"):
            replicas.append(_Replica(f"compose-fleet-{name}", loopback_replica_config(ports), out).start())
        a, b = replicas
        buyer = Buyer("compose-fleet")
        header, tx = buyer.pay(get_challenge(a, "/api/data?tier=1h"))
        ledger = Ledger(fac)
        on_a = purchase(a, "/api/data?tier=1h", header)
        token, _ = assert_purchase_ok(on_a, buyer, "1h", 3600, "1 hour")
        on_b = purchase(b, "/api/data?tier=1h", header)
        assert on_b.status == 200 and on_b.headers["access-pass"] == token, on_b
        ledger.assert_charged({tx.message_hash: 500000})
        assert b.get("/api/data", {"Authorization": f"Bearer {token}"}).status == 200
    finally:
        for replica in replicas:
            replica.stop()
        up.stop()
        fac.stop()
        etcd.stop()
        shutil.rmtree(root, ignore_errors=True)
