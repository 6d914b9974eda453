"""The whole integration suite in external mode against the compose topology, natively: what
`make integration-docker` runs in its runner container, without Docker.

The compose topology runs on loopback exactly as in test_compose_live.py (compose_live.loopback:
envoy/docker/envoy.yaml with the addresses rewritten to 127.0.0.1 and ephemeral ports, the
compose upstream's program, the facilitator binary); then `python -m pytest tests/integration`
runs in a subprocess with X402_EXTERNAL=1 and the X402_*_URL variables pointing at it, as
docker-compose.yaml sets them for the runner. Meanwhile the compose health checks run as Docker
runs them, every `interval` (they are requests to the same services the tests count requests
of). Asserted, test by test (plugins/suite_report.py records every outcome, skip reason and
fixture closure):

- every test that can run on one Envoy with the default configuration passed;
- the skipped ones are exactly the external-mode skips (harness.EXTERNAL_SKIP): the tests whose
  fixtures start their own Envoys (`envoys`, `module_envoys`) and OWN_PROCESSES; plus the soak,
  skipped as in every run without SOAK_SECONDS;
- nothing failed, nothing else was skipped, and the suite is not suddenly much smaller;
- no service would have turned unhealthy (`retries` failed health checks in a row).

Logs: target/deploy-test/external-suite/ (pytest.log, report.json, the suite's out/ as
integration-out/, the topology's processes under topology/).
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import compose_live
from deploylib import HERE, OUT, REPO, harness

DIR = OUT / "external-suite"
SUITE_TIMEOUT = 900          # seconds for the whole suite (about 1 minute on 2 idle cores)
# Tests that start processes of their own without the envoys/module_envoys fixtures.
OWN_PROCESSES = {
    "test_adversarial.py::test_a_duration_whose_price_does_not_fit_is_not_for_sale",  # an 18-decimal facilitator
    # `make run`'s demo, which starts its own facilitator and Envoy
    "test_demo.py::test_the_default_plugin_json_loads_and_its_walk_through_works",
    "test_demo.py::test_a_sellers_config_with_a_rate_sells_as_printed",
    "test_demo.py::test_a_sellers_config_without_a_rate_or_bypass_sells_as_printed",
    "test_demo.py::test_a_rate_only_config_sells_its_default_hour_as_printed",
    "test_demo.py::test_a_broken_config_is_one_line_and_a_non_zero_exit",
    "test_demo.py::test_a_config_that_is_not_json_is_one_line",
}
SOAK_SKIP = "the soak runs with SOAK_SECONDS set"
# Integration modules that declare `pytestmark = pytest.mark.skipif(EXTERNAL, ...)`.
SKIPPED_MODULES = {
    path.name for path in (REPO / "tests" / "integration").glob("test_*.py")
    if "pytestmark = pytest.mark.skipif(EXTERNAL, reason=EXTERNAL_SKIP)" in path.read_text()
}
MIN_PASSED = 200             # 284 tests pass in local mode, 223 of them in external mode (2026-11)


def _short(nodeid: str) -> str:
    """`tests/integration/test_x.py::test_y[...]` -> `test_x.py::test_y[...]` (a parameter may hold a `/`)."""
    path, _, test = nodeid.partition("::")
    return f"{path.rsplit('/', 1)[-1]}::{test}"


def expected_outcome(nodeid: str, fixtures: list[str]) -> tuple[str, str | None]:
    short = _short(nodeid)
    if short.startswith("test_soak.py::"):
        return "skipped", SOAK_SKIP
    # A module that skips itself in external mode (its tests need Envoys or faults of their own:
    # the native fast path, paid requests, payment ids, settle outcomes, v1 buyers).
    if short.split("::")[0] in SKIPPED_MODULES:
        return "skipped", harness.EXTERNAL_SKIP
    if {"envoys", "module_envoys"} & set(fixtures) or short.split("[")[0] in OWN_PROCESSES:
        return "skipped", harness.EXTERNAL_SKIP
    return "passed", None


def _seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert m, f"unsupported compose duration {duration!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


class ComposeHealthChecks(threading.Thread):
    """docker-compose.yaml's health checks against the loopback topology, each every `interval`,
    bounded by its `timeout`, until stopped."""

    def __init__(self, topology: compose_live.Topology):
        super().__init__(name="compose-healthchecks", daemon=True)
        services = compose_live.compose_services()
        self.checks = {}
        for name in compose_live.HEALTHCHECK_PORTS:
            hc = services[name]["healthcheck"]
            self.checks[name] = (compose_live.healthcheck_argv(topology, name, services), _seconds(hc["interval"]),
                                 _seconds(hc["timeout"]), int(hc["retries"]))
        self.halt = threading.Event()
        self.runs: collections.Counter = collections.Counter()
        self.failures: collections.Counter = collections.Counter()
        self.longest_failing_streak: collections.Counter = collections.Counter()

    def run(self) -> None:
        due = {name: 0.0 for name in self.checks}
        streak: collections.Counter = collections.Counter()
        while not self.halt.is_set():
            for name, (argv, interval, timeout, _) in self.checks.items():
                if time.monotonic() < due[name] or self.halt.is_set():
                    continue
                due[name] = time.monotonic() + interval
                try:
                    ok = subprocess.run(argv, capture_output=True, timeout=timeout).returncode == 0
                except subprocess.TimeoutExpired:
                    ok = False
                self.runs[name] += 1
                streak[name] = 0 if ok else streak[name] + 1
                self.failures[name] += 0 if ok else 1
                self.longest_failing_streak[name] = max(self.longest_failing_streak[name], streak[name])
            self.halt.wait(0.1)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=15)

    def unhealthy(self) -> dict[str, int]:
        return {name: self.longest_failing_streak[name] for name, (*_, retries) in self.checks.items()
                if self.longest_failing_streak[name] >= retries}


def suite_env(topology: compose_live.Topology) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("X402_") and k not in ("SOAK_SECONDS", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(topology.urls())
    env.update({
        "X402_EXTERNAL": "1",
        "X402_OUT": str(DIR / "integration-out"),        # tests/integration/out stays as `make integration` left it
        "X402_SUITE_REPORT": str(DIR / "report.json"),
        "PYTHONPATH": os.pathsep.join([str(HERE / "plugins"), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


@pytest.mark.timeout(SUITE_TIMEOUT + 120)
def test_the_integration_suite_passes_against_the_compose_topology():
    DIR.mkdir(parents=True, exist_ok=True)
    (DIR / "report.json").unlink(missing_ok=True)
    log_path = DIR / "pytest.log"
    with compose_live.loopback(DIR / "topology") as topology:
        argv = [sys.executable, "-m", "pytest", "tests/integration", "-p", "no:cacheprovider", "-p", "suite_report",
                "-q", "-rfEs", "--timeout", "180", "--durations", "5"]
        health = ComposeHealthChecks(topology)
        health.start()
        started = time.monotonic()
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.run(argv, cwd=REPO, env=suite_env(topology), stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=SUITE_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the suite did not finish within {SUITE_TIMEOUT}s; see {log_path}")
        finally:
            health.stop()
        elapsed = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    assert (DIR / "report.json").exists(), f"no report (exit {proc.returncode}):\n{output[-4000:]}"
    tests = json.loads((DIR / "report.json").read_text())["tests"]

    actual = {nodeid: (t["outcome"], t["reason"]) for nodeid, t in tests.items()}
    expected = {nodeid: expected_outcome(nodeid, t["fixtures"]) for nodeid, t in tests.items()}
    wrong = {}
    for nodeid, (outcome, reason) in actual.items():
        want, want_reason = expected[nodeid]
        if outcome != want or (want_reason is not None and not (reason or "").startswith(want_reason)):
            wrong[_short(nodeid)] = {"got": [outcome, reason], "expected": [want, want_reason]}
    counts = collections.Counter(outcome for outcome, _ in actual.values())
    summary = {"seconds": round(elapsed, 1), "exit": proc.returncode, "collected": len(tests), **counts,
               "skip_reasons": dict(collections.Counter(r for o, r in actual.values() if o == "skipped")),
               "healthchecks": dict(health.runs), "healthcheck_failures": dict(health.failures)}
    (DIR / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nexternal suite: {summary}")

    assert not wrong, f"{len(wrong)} tests did not end as expected ({summary}):\n" + \
        json.dumps(dict(list(wrong.items())[:30]), indent=1) + "\n" + output[-3000:]
    assert proc.returncode == 0, output[-4000:]
    assert counts["passed"] >= MIN_PASSED, summary
    assert counts["skipped"] >= 1 and counts["passed"] + counts["skipped"] == len(tests), summary
    assert all(health.runs[name] >= 2 for name in health.checks), summary
    assert not health.unhealthy(), f"services that would have turned unhealthy: {health.unhealthy()} ({summary})"
