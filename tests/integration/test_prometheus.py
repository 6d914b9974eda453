"""Observability (docs/observability.md): a real Prometheus (Debian's `prometheus`, `make prometheus`)
scrapes a real Envoy's admin /stats/prometheus with the shipped envoy/observability/prometheus.yml
during purchases and reads back, through its HTTP query API, the values the purchases moved; every
PromQL expression of the shipped Grafana dashboard is evaluated by that Prometheus and must name
metrics it scraped; the dashboard is type-checked against Grafana's own @grafana/schema
(tests/observability/check_dashboard.mjs). Missing tools fail these tests, they never skip."""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import subprocess
import urllib.parse

import pytest

from harness import OUT, REPO, Process, http_request, wait_until
from helpers import assert_challenge, assert_payment_error, assert_purchase_ok, buy, get_challenge

SHIPPED = REPO / "envoy/observability"
PROMETHEUS_YML = SHIPPED / "prometheus.yml"
DASHBOARD = SHIPPED / "grafana-dashboard.json"
OBSERVABILITY = REPO / "tests/observability"
CHECK_DASHBOARD = OBSERVABILITY / "check_dashboard.mjs"
# What the shipped scrape config says, replaced for the test: the target and a 1 s interval.
SHIPPED_TARGET = '"127.0.0.1:9901"'
SHIPPED_INTERVAL = "scrape_interval: 15s"
# Grafana's variables, as the test evaluates the dashboard's expressions.
GRAFANA_VARIABLES = {"$instance": ".*", "$__rate_interval": "1m", "$__range": "5m"}
METRIC = re.compile(r"\bx402_access_pass_[a-z0-9_]+")


def tool(name: str, install: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` is not on the PATH: {install}", pytrace=False)
    return found


def promtool() -> str:
    return tool("promtool", "run `make prometheus` (Debian's prometheus package, which also ships promtool)")


def check_dashboard(path) -> subprocess.CompletedProcess:
    node = tool("node", "Node.js is needed to type-check the dashboard against @grafana/schema")
    if not (OBSERVABILITY / "node_modules/@grafana/schema").is_dir():
        pytest.fail("tests/observability/node_modules is missing: run `make observability-deps`", pytrace=False)
    return subprocess.run([node, str(CHECK_DASHBOARD), str(path)], capture_output=True, text=True, timeout=60)


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    return [(f"panel {p['title']!r} target {t['refId']}", t["expr"])
            for p in dashboard["panels"] for t in p.get("targets", [])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """Debian's prometheus on a loopback port, with its own data directory, stopped by its PID."""

    def __init__(self, binary: str, config: str, out_dir, data_dir):
        self.config_path = out_dir / "prometheus.yml"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config)
        self.port = free_port()
        self.proc = Process("prometheus", [
            binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
        ], out_dir / "prometheus.log")

    def get(self, path: str, **params) -> dict:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        resp = http_request("127.0.0.1", self.port, "GET", path + query, timeout=5)
        assert resp.status == 200, resp
        return resp.json()

    def wait_ready(self, timeout: float = 30) -> None:
        def ready():
            if not self.proc.alive():
                raise RuntimeError(f"prometheus exited:\n{self.proc.log_text()[-3000:]}")
            return http_request("127.0.0.1", self.port, "GET", "/-/ready", timeout=2).status == 200
        wait_until(ready, timeout, interval=0.2, what="Prometheus /-/ready")

    def query(self, promql: str) -> list[dict]:
        answer = self.get("/api/v1/query", query=promql)
        assert answer["status"] == "success", (promql, answer)
        return answer["data"]["result"]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        assert len(result) <= 1, (promql, result)
        return float(result[0]["value"][1]) if result else None

    def metric_names(self) -> set[str]:
        return set(self.get("/api/v1/label/__name__/values")["data"])

    def stop(self) -> None:
        self.proc.stop()


def test_promtool_accepts_the_shipped_prometheus_config():
    run = subprocess.run([promtool(), "check", "config", str(PROMETHEUS_YML)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    text = PROMETHEUS_YML.read_text()
    assert text.count(SHIPPED_TARGET) == 1 and text.count(SHIPPED_INTERVAL) == 1, \
        "the test replaces the shipped target and interval: keep exactly one of each"


def test_the_dashboard_checks_against_grafanas_schema():
    run = check_dashboard(DASHBOARD)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("breakage", ["unknown dashboard field", "schemaVersion a string", "stat colorMode not an enum value",
                                      "timeseries tooltip without mode", "panel without gridPos.w"])
def test_the_schema_check_rejects_a_broken_dashboard(tmp_path, breakage):
    broken = copy.deepcopy(json.loads(DASHBOARD.read_text()))
    stat = next(p for p in broken["panels"] if p["type"] == "stat")
    series = next(p for p in broken["panels"] if p["type"] == "timeseries")
    {
        "unknown dashboard field": lambda: broken.update(panelz=[]),
        "schemaVersion a string": lambda: broken.update(schemaVersion="39"),
        "stat colorMode not an enum value": lambda: stat["options"].update(colorMode="rainbow"),
        "timeseries tooltip without mode": lambda: series["options"]["tooltip"].pop("mode"),
        "panel without gridPos.w": lambda: stat["gridPos"].pop("w"),
    }[breakage]()
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    run = check_dashboard(path)
    assert run.returncode == 1 and "broken.json" in run.stderr, run.stdout + run.stderr


def test_a_real_prometheus_scrapes_the_counters_purchases_move_and_the_dashboards_queries(module_envoys, buyer, tmp_path):
    binary = tool("prometheus", "run `make prometheus` (installs Debian's prometheus package)")
    envoy = module_envoys.start("prometheus")  # its own Envoy: every counter starts at zero
    admin = "%s:%d" % envoy.admin
    shipped = PROMETHEUS_YML.read_text()
    config = shipped.replace(SHIPPED_TARGET, f'"{admin}"').replace(SHIPPED_INTERVAL, "scrape_interval: 1s")
    assert config.count(f'"{admin}"') == 1 and "scrape_interval: 1s" in config
    prometheus = Prometheus(binary, config, OUT / "prometheus", tmp_path / "tsdb")
    try:
        prometheus.wait_ready()
        # The per-tier counters exist at 0 from the start (the filter defines them for every tier it
        # sells): scraped at 0 before the first sale, so increase() and rate() see that sale.
        wait_until(lambda: prometheus.value('x402_access_pass_purchases_succeeded_by_tier{tier="1h"}') == 0, 20,
                   interval=0.2, what="Prometheus's first scrape of the per-tier counters at 0")

        # A challenge, a 1-hour pass, a custom duration (?duration=5400: 0.75 USDC), the pass used,
        # a malformed pass, and a payment of the 1h price for the 24h pass (amount_mismatch).
        assert_challenge(envoy.get("/api/data"))
        resp, _, _ = buy(envoy, buyer, "/api/data?tier=1h")
        token, _ = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
        resp, _, _ = buy(envoy, buyer, "/api/data?duration=5400")
        assert_purchase_ok(resp, buyer, "custom", 5400, "90 minutes")
        assert envoy.get("/api/data", {"Authorization": f"Bearer {token}"}).status == 200
        assert_challenge(envoy.get("/api/data", {"Authorization": "Bearer x.y.z"}))
        mismatch, _ = buyer.pay(get_challenge(envoy, "/api/data?tier=1h"))
        assert_payment_error(envoy.post("/api/data?tier=24h", {"PAYMENT-SIGNATURE": mismatch}), "amount_mismatch")

        # What Envoy itself exports (the names docs/observability.md gives).
        stats = envoy.stats()
        assert stats["wasmcustom.x402_access_pass.purchases_succeeded_by_tier.1h"] == 1, stats
        assert stats["wasmcustom.x402_access_pass.settled_atomic_by_tier.custom"] == 750000, stats
        exposition = envoy.admin_get("/stats/prometheus").text.splitlines()
        for line in ("x402_access_pass_purchases_succeeded{} 2", "x402_access_pass_purchases_succeeded_by_tier_1h{} 1",
                     "x402_access_pass_settled_atomic_by_tier_custom{} 750000", "x402_access_pass_tokens_rejected_malformed{} 1",
                     "x402_access_pass_purchases_failed_amount_mismatch{} 1"):
            assert line in exposition, (line, [x for x in exposition if "x402_access_pass" in x])

        # What Prometheus scraped, after the shipped relabelling.
        expected = {
            "x402_access_pass_purchases_succeeded": 2,
            "x402_access_pass_settled_atomic": 500000 + 750000,
            'x402_access_pass_purchases_succeeded_by_tier{tier="1h"}': 1,
            'x402_access_pass_purchases_succeeded_by_tier{tier="custom"}': 1,
            'x402_access_pass_settled_atomic_by_tier{tier="1h"}': 500000,
            'x402_access_pass_settled_atomic_by_tier{tier="custom"}': 750000,
            "x402_access_pass_passes_accepted": 1,
            'x402_access_pass_tokens_rejected{reason="malformed"}': 1,
            'x402_access_pass_purchases_failed{reason="amount_mismatch"}': 1,
            "x402_access_pass_replays_served": 0,
            "x402_access_pass_facilitator_errors": 0,
            "x402_access_pass_settlements_unknown": 0,
        }

        last: dict = {}

        def scraped() -> bool:
            last["seen"] = {q: prometheus.value(q) for q in expected}
            last["challenges_issued"] = prometheus.value("x402_access_pass_challenges_issued")
            return last["seen"] == expected and (last["challenges_issued"] or 0) >= 4

        try:
            wait_until(scraped, 30, interval=0.5, what="Prometheus to scrape the purchases' counters")
        except TimeoutError:
            pytest.fail(f"Prometheus did not scrape the expected values: {last} (expected {expected})", pytrace=False)
        labels = prometheus.query('x402_access_pass_settled_atomic_by_tier{tier="1h"}')[0]["metric"]
        assert labels["job"] == "x402-access-pass" and labels["instance"] == admin, labels
        names = prometheus.metric_names()
        unlabelled = sorted(n for n in names if re.search(r"_by_tier_|_(purchases_failed|tokens_rejected|siwx_rejected)_", n))
        assert not unlabelled, f"the shipped relabelling left these names: {unlabelled}"

        # Every expression of the dashboard: valid PromQL, metrics that exist, and data.
        dashboard = json.loads(DASHBOARD.read_text())
        queries = dashboard_queries(dashboard)
        used = {m for _, expr in queries for m in METRIC.findall(expr)}
        variables = [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
        used |= {m for q in variables for m in METRIC.findall(q)}
        ours = {n for n in names if n.startswith("x402_access_pass_")}
        assert used <= ours, f"the dashboard names metrics Prometheus never scraped: {sorted(used - ours)}"
        assert ours <= used, f"counters the filter exports that the dashboard does not show: {sorted(ours - used)}"

        def evaluate(expr: str) -> list[dict]:
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            return prometheus.query(expr)

        empty = lambda: [where for where, expr in queries if not evaluate(expr)]  # noqa: E731
        wait_until(lambda: not empty(), 20, interval=0.5, what="every dashboard query to return data")
        by_tier = {r["metric"]["tier"]: float(r["value"][1]) for r in evaluate(next(
            expr for where, expr in queries if "Revenue by tier (USDC)" in where))}
        assert set(by_tier) == {"5m", "1h", "24h", "custom"}, by_tier
        assert by_tier["custom"] > by_tier["1h"] > 0 and by_tier["5m"] == by_tier["24h"] == 0, by_tier
    finally:
        prometheus.stop()
    assert not prometheus.proc.alive()
