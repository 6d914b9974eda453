"""One 3-member etcd cluster for the module (tests/ledger/cluster.py)."""

from __future__ import annotations

import pathlib
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from cluster import ETCD, EXECUTOR, Cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    if not pathlib.Path(ETCD).exists():
        pytest.fail("etcd is missing: `make etcd` installs Debian's etcd-server")
    if not EXECUTOR.exists():
        pytest.fail("the executor is missing: cargo build --example etcd_ledger (make ledger-test does)")
    root = pathlib.Path(tempfile.mkdtemp(prefix="x402-ledger-"))
    c = Cluster(root)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
