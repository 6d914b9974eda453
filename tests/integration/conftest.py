"""Fixtures: one test facilitator and one demo upstream for the session, one Envoy per plugin
configuration (the default one for the session, special ones per module), logs per test.

External mode (X402_EXTERNAL=1): the session facilitator, upstream and Envoy are the ones the
X402_*_URL variables name (harness.EXTERNAL); fixtures that would start an Envoy with another
configuration skip their tests with harness.EXTERNAL_SKIP."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import (EXTERNAL, EXTERNAL_SKIP, LOGS, OUT, Envoy, Facilitator, default_plugin_config,  # noqa: E402
                     external_url, host_port)
from helpers import Buyer  # noqa: E402
from upstream import DemoUpstream, RemoteUpstream  # noqa: E402

# External services outlive a run, and buyers' keys and blockhashes derive from test ids: a per-run
# suffix keeps payments of a second run against the same Envoy and facilitator from being replays.
RUN_ID = f"@{int(time.time() * 1000):x}.{os.getpid()}" if EXTERNAL else ""


def _safe(nodeid: str) -> str:
    nodeid = nodeid.split("/")[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.replace("::", "__"))[:180]


def pytest_sessionstart(session):
    """Start from an empty out/ (but keep validate/, written by `make validate` just before)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for child in OUT.iterdir():
        if child.name != "validate":
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()


@pytest.fixture(scope="session")
def facilitator():
    if EXTERNAL:
        fac = Facilitator.attach(external_url("X402_FACILITATOR_URL"), external_url("X402_FACILITATOR_CONTROL_URL"),
                                 external_url("X402_FACILITATOR_RPC_URL"))
        fac.clear_faults()  # a run that was killed may have left one
    else:
        fac = Facilitator(OUT / "_session").start()
    yield fac
    fac.stop()


@pytest.fixture(scope="session")
def upstream():
    up = RemoteUpstream(external_url("X402_UPSTREAM_URL")) if EXTERNAL else DemoUpstream()
    up.start()
    yield up
    up.stop()


class EnvoyFactory:
    """Starts Envoys with a given plugin config; stops them all at teardown."""

    def __init__(self, facilitator: Facilitator, upstream: DemoUpstream, out_dir: pathlib.Path):
        self.facilitator = facilitator
        self.upstream = upstream
        self.out_dir = out_dir
        self.started: list[Envoy] = []

    def config(self, **overrides) -> dict:
        return default_plugin_config(self.facilitator.addr, **overrides)

    def start(self, name: str, plugin_config: dict | str | None = None, wait_ready: bool = True, **overrides) -> Envoy:
        cfg = plugin_config if plugin_config is not None else self.config(**overrides)
        envoy = Envoy(name, cfg, self.facilitator.port, self.upstream.port, self.out_dir)
        self.started.append(envoy)
        envoy.start(wait_ready=wait_ready)
        return envoy

    def stop_all(self) -> None:
        for envoy in self.started:
            envoy.stop()
        self.started.clear()


@pytest.fixture(scope="session")
def envoy(facilitator, upstream):
    """Envoy with the default test configuration (tiers 5m/1h/24h, ratePerHour 0.50). External
    mode: the one at X402_ENVOY_URL, which must run that configuration (envoy/docker/envoy.yaml)."""
    if EXTERNAL:
        host, port = host_port(external_url("X402_ENVOY_URL"))
        admin_host, admin_port = host_port(external_url("X402_ENVOY_ADMIN_URL"))
        yield Envoy.attach(host, port, admin_port, admin_host)
        return
    factory = EnvoyFactory(facilitator, upstream, OUT / "_session")
    yield factory.start("default")
    factory.stop_all()


def _envoy_factory(facilitator, upstream, name: str):
    """Envoys with special configurations, stopped at the end of the fixture's scope."""
    if EXTERNAL:
        pytest.skip(EXTERNAL_SKIP)
    factory = EnvoyFactory(facilitator, upstream, OUT / _safe(name))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_envoys(request, facilitator, upstream):
    yield from _envoy_factory(facilitator, upstream, request.module.__name__)


@pytest.fixture
def envoys(request, facilitator, upstream):
    yield from _envoy_factory(facilitator, upstream, request.node.nodeid)


@pytest.fixture
def buyer(request) -> Buyer:
    return Buyer(request.node.nodeid + RUN_ID)


@pytest.fixture
def new_buyer(request):
    n = iter(range(1_000_000))
    return lambda: Buyer(f"{request.node.nodeid}{RUN_ID}#{next(n)}")


@pytest.fixture(autouse=True)
def _per_test_logs(request):
    """Keep the slice of every process log written during the test under out/<test>/."""
    mark = LOGS.mark()
    yield
    LOGS.dump_since(mark, OUT / _safe(request.node.nodeid))


@pytest.fixture(autouse=True)
def _clear_faults_after(request):
    yield
    if "facilitator" in request.fixturenames:
        fac = request.getfixturevalue("facilitator")
        if fac.alive():
            fac.clear_faults()
