"""A 3-member etcd cluster on loopback for the shared-ledger suite, and the executor that runs the
core's operations against it (examples/etcd_ledger.rs).

Ports are ephemeral (asked of the kernel, then handed to etcd), data dirs live in a temporary
directory, every member is started and stopped by its own PID, and every wait is bounded."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXECUTOR = ROOT / "target" / "debug" / "examples" / "etcd_ledger"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Member:
    def __init__(self, name: str, client: int, peer: int, data: pathlib.Path, initial_cluster: str, token: str,
                 extra_args: tuple[str, ...] = ()):
        self.name, self.client, self.peer, self.data = name, client, peer, data
        self.initial_cluster, self.token, self.extra_args = initial_cluster, token, extra_args
        self.proc: subprocess.Popen | None = None
        self.log = data.parent / f"{name}.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client}"

    def start(self) -> None:
        assert self.proc is None
        args = [
            ETCD, "--name", self.name, "--data-dir", str(self.data),
            "--listen-client-urls", f"http://127.0.0.1:{self.client}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.client}",
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
            "--initial-cluster", self.initial_cluster, "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
            # Quick elections: a lost member or quorum shows within a second.
            "--heartbeat-interval", "50", "--election-timeout", "500",
            *self.extra_args,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        """SIGKILL, as a crash would: etcd gets no chance to hand over."""
        if self.proc is None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as answer:
                return json.load(answer).get("health") == "true"
        except (OSError, ValueError):
            return False


class Cluster:
    def __init__(self, root: pathlib.Path, size: int = 3, extra_args: tuple[str, ...] = ()):
        ports = free_ports(2 * size)
        names = [f"m{i}" for i in range(size)]
        initial = ",".join(f"{n}=http://127.0.0.1:{ports[2 * i + 1]}" for i, n in enumerate(names))
        token = f"x402-ledger-{os.getpid()}-{time.time_ns()}"
        self.members = [Member(n, ports[2 * i], ports[2 * i + 1], root / n, initial, token, extra_args)
                        for i, n in enumerate(names)]

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    def start(self) -> None:
        for m in self.members:
            m.start()
        self.wait_healthy(self.members)

    def wait_healthy(self, members: list[Member], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(m.healthy() for m in members):
                return
            for m in members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited: {m.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"etcd members {[m.name for m in members]} not healthy within {timeout} s")

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    def ledger(self, *args: str, first: int = 0, timeout_ms: int = 1000, extra: tuple[str, ...] = ()) -> dict:
        """One operation of the core, run by the executor over HTTP; its JSON line."""
        command = [str(EXECUTOR), "--endpoints", self.endpoints, "--first", str(first),
                   "--timeout-ms", str(timeout_ms), "--prefix", "/x402-access-pass/", *extra, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        return Answer(answer)


class Answer(dict):
    """An executor's JSON line; a missing `result` says what the answer was instead."""

    def __getitem__(self, key):
        if key == "result" and key not in self:
            raise AssertionError(f"no result: {dict(self)}")
        return super().__getitem__(key)
