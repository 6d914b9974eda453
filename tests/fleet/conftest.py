"""Fixtures: one fleet for the session (fleet.py: 3 etcd members, the facilitator, 3 replicas), the
demo upstream, buyers, and logs per test. After each test every replica and every etcd member is
up again and no facilitator fault is left, so tests that kill things leave nothing behind."""

from __future__ import annotations

import pathlib
import re
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from fleet import OUT, Fleet  # noqa: E402  (first: it sets X402_OUT and the import path)
from cluster import ETCD  # noqa: E402
from harness import FACILITATOR_BIN, LOGS, WASM  # noqa: E402
from helpers import Buyer  # noqa: E402
from upstream import DemoUpstream  # noqa: E402


def _safe(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("/")[-1].replace("::", "__"))[:180]


def pytest_sessionstart(session):
    if OUT.exists():
        shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def upstream():
    up = DemoUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def fleet(upstream):
    for path, how in ((pathlib.Path(ETCD), "make etcd"), (WASM, "make build"), (FACILITATOR_BIN, "make build")):
        if not path.exists():
            pytest.fail(f"{path} is missing: {how}")
    root = pathlib.Path(tempfile.mkdtemp(prefix="x402-fleet-"))
    f = Fleet(root, upstream.port)
    try:
        f.start()
        yield f
    finally:
        f.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def facilitator(fleet):
    return fleet.facilitator


@pytest.fixture
def a(fleet):
    return fleet["a"]


@pytest.fixture
def b(fleet):
    return fleet["b"]


@pytest.fixture
def c(fleet):
    return fleet["c"]


@pytest.fixture
def buyer(request) -> Buyer:
    return Buyer(request.node.nodeid)


@pytest.fixture
def new_buyer(request):
    n = iter(range(1_000_000))
    return lambda: Buyer(f"{request.node.nodeid}#{next(n)}")


@pytest.fixture(autouse=True)
def _per_test_logs(request):
    mark = LOGS.mark()
    yield
    LOGS.dump_since(mark, OUT / _safe(request.node.nodeid))


@pytest.fixture(autouse=True)
def _whole_fleet_after(request):
    """Put back whatever a test killed: etcd members, replicas; clear facilitator faults."""
    yield
    if "fleet" not in request.fixturenames:
        return
    fleet = request.getfixturevalue("fleet")
    if fleet.facilitator.alive():
        fleet.facilitator.clear_faults()
    if any(m.proc is None for m in fleet.etcd.members):
        fleet.start_all_members()
    for replica in fleet.replicas:
        if not replica.alive():
            replica.restart()
    fleet.wait_ledger_healthy()
