"""Fixtures: one test facilitator and one demo upstream for the session, one Envoy per plugin
configuration (the default one for the session, special ones per module), logs per test."""

from __future__ import annotations

import pathlib
import re
import shutil
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import (LOGS, OUT, Envoy, Facilitator, default_plugin_config)  # noqa: E402
from helpers import Buyer  # noqa: E402
from upstream import DemoUpstream  # noqa: E402


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
    fac = Facilitator(OUT / "_session").start()
    yield fac
    fac.stop()


@pytest.fixture(scope="session")
def upstream():
    up = DemoUpstream().start()
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
    """Envoy with the default test configuration (tiers 5m/1h/24h, ratePerHour 0.50)."""
    factory = EnvoyFactory(facilitator, upstream, OUT / "_session")
    yield factory.start("default")
    factory.stop_all()


@pytest.fixture(scope="module")
def module_envoys(request, facilitator, upstream):
    factory = EnvoyFactory(facilitator, upstream, OUT / _safe(request.module.__name__))
    yield factory
    factory.stop_all()


@pytest.fixture
def envoys(request, facilitator, upstream):
    factory = EnvoyFactory(facilitator, upstream, OUT / _safe(request.node.nodeid))
    yield factory
    factory.stop_all()


@pytest.fixture
def buyer(request) -> Buyer:
    return Buyer(request.node.nodeid)


@pytest.fixture
def new_buyer(request):
    n = iter(range(1_000_000))
    return lambda: Buyer(f"{request.node.nodeid}#{next(n)}")


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
        if fac.proc and fac.proc.alive():
            fac.clear_faults()
