"""Envoy's own instructions per request under callgrind: the repeatable measure of a configuration
or a build (bench/envoy_instructions.py prints it row by row; `make bench` uses it for its
no-regression target beside requests per second).

Envoy (`--concurrency 1`) runs under `valgrind --tool=callgrind` with instrumentation off; warm-up
requests go first, then instrumentation is turned on (`callgrind_control --instr=on`), the
measured requests are sent one at a time on one keep-alive connection, and what callgrind counted
is divided by their number. User space only: the kernel's share of a request is not in the count,
nor is the client's. The same module counted twice differs by less than 0.1 %."""

from __future__ import annotations

import http.client
import json
import pathlib
import re
import shutil
import subprocess
import time

import harness  # tests/integration/harness.py (its folder is on sys.path: bench/run.py puts it there)


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


class CallgrindEnvoy(harness.Envoy):
    """Envoy with a bootstrap of ours (JSON is YAML), run under callgrind, instrumentation off."""

    def __init__(self, name: str, bootstrap: dict, out_dir: pathlib.Path):
        super().__init__(name, "", 0, 0, out_dir, concurrency=1)
        self.bootstrap = bootstrap
        self.config_path = out_dir / f"{name}.json"
        self.callgrind_out = out_dir / f"{name}.callgrind"

    def start(self, timeout: float = 600.0) -> "CallgrindEnvoy":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.bootstrap, indent=1))
        self.admin_file = self.out_dir / f"{self.name}.admin"
        self.admin_file.unlink(missing_ok=True)
        for old in self.out_dir.glob(self.callgrind_out.name + "*"):
            old.unlink()
        self.proc = harness.Process(f"envoy-{self.name}", [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.callgrind_out}",
            harness.ENVOY_BIN, "-c", self.config_path, "--concurrency", "1", "--use-dynamic-base-id",
            "--admin-address-path", self.admin_file, "-l", "warning",
            "--drain-time-s", "1", "--parent-shutdown-time-s", "2",
        ], self.out_dir / f"envoy-{self.name}.log")
        self.wait_ready(timeout)
        return self

    def control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)], check=True, capture_output=True,
                       timeout=120)

    def dumped(self, reason: str, timeout: float = 60.0) -> int:
        """The instructions of the dump asked for with `--dump=<reason>` (callgrind writes one file
        per dump, `<out>.<n>`, whose header names the trigger)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for f in self.out_dir.glob(self.callgrind_out.name + ".*"):
                text = f.read_text(errors="replace")
                if re.search(rf"^desc: Trigger: .*\b{re.escape(reason)}$", text, re.M):
                    # `summary:` can be 0 in a dump asked for by callgrind_control; `totals:` is the sum.
                    counts = [int(n) for n in re.findall(r"^(?:summary|totals): (\d+)", text, re.M)]
                    if counts:
                        return max(counts)
            time.sleep(0.2)
        raise RuntimeError(f"no callgrind dump {reason!r} next to {self.callgrind_out}")


def send(port: int, path: str, headers: dict[str, str], count: int, expect: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status != expect:
                raise RuntimeError(f"{path}: expected {expect}, got {answer.status}")
    finally:
        conn.close()


def instructions_per_request(name: str, bootstrap: dict, out_dir: pathlib.Path, path: str, headers: dict[str, str],
                             expect: int, warmup: int = 200, requests: int = 300) -> int:
    """Envoy's instructions per request for `requests` GETs of `path` with `headers` (each answered
    `expect`), after `warmup` uncounted ones. The Envoy is stopped by its PID before this returns."""
    envoy = CallgrindEnvoy(name, bootstrap, out_dir)
    try:
        envoy.start()
        send(envoy.port, path, headers, warmup, expect)
        envoy.control("--zero")
        envoy.control("--instr=on")
        send(envoy.port, path, headers, requests, expect)
        envoy.control("--instr=off")
        envoy.control("--dump=measured")
        return envoy.dumped("measured") // requests
    finally:
        envoy.stop()
