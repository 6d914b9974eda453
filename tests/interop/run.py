#!/usr/bin/env python3
"""Interop suite: real buyers against the real Envoy + the x402-access-pass filter: the published
@dexterai/x402 client, React hook and Express middleware, and the official x402 v2 buyers
(@x402/fetch + @x402/svm + @x402/extensions on npm, x402 on PyPI through python/buyer.py).

Starts, on loopback with ephemeral ports, the project's test facilitator (with its Solana RPC
stand-in) and a second one for the SIWX Envoy, the demo upstream (plus /api/metrics for the
dashboard), the Envoys with the filter (`tests/integration/harness.py`), and a static server for
the built dashboard (`examples/dashboard/dist`, a different origin than the API); then runs
`node --test` on `tests/interop/*.test.mjs` with the URLs in environment variables (the files of
BESIDE in a second node process at the same time), and tears everything down.

    .venv/bin/python tests/interop/run.py                   # every test file
    .venv/bin/python tests/interop/run.py client.test.mjs   # some of them
    .venv/bin/python tests/interop/run.py --serve           # only the topology, until Ctrl-C

`make interop` builds what this needs first (filter, facilitator, .venv, npm ci, the dashboard,
Chromium). Output (logs, screenshots): tests/interop/out/.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = pathlib.Path(os.environ.get("X402_INTEROP_OUT", HERE / "out"))
DASHBOARD_DIST = pathlib.Path(os.environ.get("X402_DASHBOARD_DIST", REPO / "examples/dashboard/dist"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(HERE))

from harness import (ASSET, EVM_MERCHANT, EVM_NETWORK, FEE_PAYER, MERCHANT, NETWORK, SECRET, Envoy,  # noqa: E402
                     EnvoyExited, Facilitator, default_plugin_config)
from data_upstream import DataUpstream  # noqa: E402
from upstream import BackgroundServer  # noqa: E402

TAP_COUNTS = {"tests", "suites", "pass", "fail", "cancelled", "skipped", "todo"}
NODE_TEST_TIMEOUT_S = int(os.environ.get("X402_INTEROP_TIMEOUT", "600"))
# The official Python buyer (`x402` 2.25.0), in its own virtualenv (make python-buyers).
PYTHON_BUYERS = pathlib.Path(os.environ.get("X402_PYTHON", HERE / "python" / ".venv" / "bin" / "python"))
# The faults Envoy works settlement outcomes out inside the buyer's request for this long
# (docs/behaviour.md §17), as tests/integration/test_settle_outcomes.py does.
FAULTS_SETTLE_DEADLINE_MS = 8000
# The SIWX Envoy sells a 1-minute default pass, so a test can see it run out.
SIWX_TIERS = {"1m": "0.01", "1h": "0.50"}
# Test files that run in a node process of their own, beside the others, against their own
# facilitator (so the faults that faults.test.mjs sets never reach them): siwx.test.mjs mostly
# waits for a one-minute pass to run out.
BESIDE = ("siwx.test.mjs",)


class _StaticHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, fmt: str, *args) -> None:
        log = getattr(self.server, "log", None)
        if log:
            log.write(("%s %s\n" % (self.log_date_time_string(), fmt % args)).encode())
            log.flush()


class StaticSite(BackgroundServer):
    """The built dashboard on its own origin (http://127.0.0.1:<port>)."""

    def __init__(self, root: pathlib.Path, log_path: pathlib.Path):
        handler = functools.partial(_StaticHandler, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.log = open(log_path, "ab")
        super().__init__(server, "dashboard-static")
        self.origin = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        super().stop()
        self.server.log.close()


def free_port() -> int:
    """A loopback port free now, for an Envoy whose configuration must name its own origin."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_siwx_envoy(facilitator: Facilitator, upstream_port: int, parts: list, name: str = "siwx",
                     **overrides) -> Envoy:
    """Envoy "siwx": a 1-minute default pass and its own origin in siwx.origins, so its port is chosen before it starts (again, should another process take that
    port first). Returned ready. `overrides`: more plugin settings (the EVM Envoy's `networks`)."""
    for attempt in range(3):
        port = free_port()
        siwx = {"origins": [f"http://127.0.0.1:{port}"]}
        config = default_plugin_config(facilitator.addr, tiers=SIWX_TIERS, siwx=siwx, **overrides)
        envoy = Envoy(name, config, facilitator.port, upstream_port, OUT, listener_port=port)
        parts.append(envoy.start(wait_ready=False))
        try:
            envoy.wait_ready()
            return envoy
        except EnvoyExited:
            if attempt == 2:
                raise
            print(f"Envoy {name} could not start on port {port}; another port", file=sys.stderr)
    raise AssertionError("unreachable")


def tap_summary(path: pathlib.Path) -> dict[str, int]:
    """The closing counts of node's TAP reporter (`# pass 9`, `# fail 0`, `# todo 1`...)."""
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "#" and parts[1] in TAP_COUNTS and parts[2].isdigit():
                counts[parts[1]] = int(parts[2])
    return counts


def prepare_out() -> None:
    if OUT.exists():
        shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="test files under tests/interop (default: *.test.mjs)")
    parser.add_argument("--serve", action="store_true", help="start the topology and wait for Ctrl-C")
    args = parser.parse_args()

    node_modules = HERE / "node_modules" / "@dexterai" / "x402"
    if not args.serve and not node_modules.exists():
        print("tests/interop/node_modules is missing: run `npm ci` in tests/interop (make interop does)",
              file=sys.stderr)
        return 2
    if not args.serve and not PYTHON_BUYERS.exists():
        print(f"{PYTHON_BUYERS} is missing: run `make python-buyers` (make interop does)", file=sys.stderr)
        return 2
    files = args.files or sorted(p.name for p in HERE.glob("*.test.mjs"))
    if not (DASHBOARD_DIST / "index.html").exists():
        print(f"{DASHBOARD_DIST}/index.html is missing: build examples/dashboard (make interop does)",
              file=sys.stderr)
        return 2

    prepare_out()
    stopping = threading.Event()

    def on_signal(signum, _frame):
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    parts: list = []
    summary: dict[str, int] = {}
    started = time.monotonic()
    try:
        facilitator = Facilitator(OUT, "facilitator").start()
        parts.append(facilitator)
        # The SIWX Envoy's own facilitator (BESIDE).
        siwx_facilitator = Facilitator(OUT, "facilitator-siwx").start()
        parts.append(siwx_facilitator)
        # The EVM Envoy's own facilitator: Solana devnet and Base Sepolia (docs/behaviour.md §21).
        evm_facilitator = Facilitator(OUT, "facilitator-evm", evm_networks=[EVM_NETWORK]).start()
        parts.append(evm_facilitator)
        upstream = DataUpstream().start()
        parts.append(upstream)
        site = StaticSite(DASHBOARD_DIST, OUT / "dashboard-static.log").start()
        parts.append(site)
        # The harness's plugin config (tiers 5m/1h/24h at 0.05/0.50/2.00, ratePerHour 0.50, devnet,
        # CORS for any origin), and the same with only the dashboard's origin allowed.
        config = default_plugin_config(facilitator.addr)
        origin_config = default_plugin_config(facilitator.addr, cors={"allowOrigins": [site.origin]})
        # Settle faults: the same, with a settle deadline long enough to work every outcome out.
        faults_config = default_plugin_config(facilitator.addr, settleDeadlineMs=FAULTS_SETTLE_DEADLINE_MS)
        envoy = Envoy("interop", config, facilitator.port, upstream.port, OUT)
        origin_envoy = Envoy("origin-only", origin_config, facilitator.port, upstream.port, OUT)
        faults_envoy = Envoy("faults", faults_config, facilitator.port, upstream.port, OUT)
        # Started together, then waited for: each takes a second or two to come up.
        for part in (envoy, origin_envoy, faults_envoy):
            parts.append(part.start(wait_ready=False))
        siwx_envoy = start_siwx_envoy(siwx_facilitator, upstream.port, parts)
        # Envoy "evm": the same passes on Solana devnet and Base Sepolia, SIWX on its own origin.
        evm_networks = [{"network": NETWORK, "payTo": MERCHANT}, {"network": EVM_NETWORK, "payTo": EVM_MERCHANT}]
        evm_envoy = start_siwx_envoy(evm_facilitator, upstream.port, parts, "evm", payTo=None, network=None,
                                     networks=evm_networks)
        envoys = (envoy, origin_envoy, faults_envoy, siwx_envoy, evm_envoy)
        for part in envoys:
            part.wait_ready()
        siwx_origin = f"http://127.0.0.1:{siwx_envoy.port}"
        env = {
            "X402_API": f"http://127.0.0.1:{envoy.port}",
            "X402_ENVOY_ADMIN": f"http://{envoy.admin[0]}:{envoy.admin[1]}",
            "X402_API_ORIGIN_ONLY": f"http://127.0.0.1:{origin_envoy.port}",
            "X402_API_FAULTS": f"http://127.0.0.1:{faults_envoy.port}",
            "X402_API_SIWX": siwx_origin,
            "X402_API_EVM": f"http://127.0.0.1:{evm_envoy.port}",
            "X402_CONTROL_URL_EVM": f"http://{evm_facilitator.control}",
            "X402_RPC_URL_EVM": f"http://{evm_facilitator.rpc}",
            "X402_UPSTREAM": f"http://127.0.0.1:{upstream.port}",
            "X402_PYTHON": str(PYTHON_BUYERS),
            "X402_FACILITATOR_URL": f"http://{facilitator.addr}",
            "X402_CONTROL_URL": f"http://{facilitator.control}",
            "X402_RPC_URL": f"http://{facilitator.rpc}",
            "X402_DASHBOARD_URL": site.origin,
            "X402_SECRET": SECRET,
            "X402_NETWORK": NETWORK,
            "X402_ASSET": ASSET,
            "X402_PAY_TO": MERCHANT,
            "X402_FEE_PAYER": FEE_PAYER,
            "X402_PLUGIN_CONFIG": json.dumps(config),
            "X402_INTEROP_OUT": str(OUT),
            "X402_INTEROP_RUN": os.urandom(6).hex(),
        }
        (OUT / "topology.json").write_text(json.dumps(env, indent=2) + "\n")
        print(f"topology up in {time.monotonic() - started:.1f}s: API {env['X402_API']}, "
              f"dashboard {site.origin}, facilitator {facilitator.addr}, RPC {facilitator.rpc}", flush=True)

        if args.serve:
            print(f"\nDashboard: {site.origin}/?api={env['X402_API']}&rpc={env['X402_RPC_URL']}\n"
                  f"Paywall:   {env['X402_API']}/api/data\nCtrl-C stops everything.", flush=True)
            while not stopping.is_set():
                for part in (facilitator, siwx_facilitator, evm_facilitator, *envoys):
                    if not part.proc.alive():
                        print(f"{part.name} exited; see {OUT}", file=sys.stderr)
                        return 1
                time.sleep(0.5)
            return 0

        beside = [f for f in files if f in BESIDE]
        runs = [("main", [f for f in files if f not in BESIDE], env)]
        if beside:
            runs.append(("beside", beside, {
                **env,
                "X402_FACILITATOR_URL": f"http://{siwx_facilitator.addr}",
                "X402_CONTROL_URL": f"http://{siwx_facilitator.control}",
                "X402_RPC_URL": f"http://{siwx_facilitator.rpc}",
            }))
        procs = []
        for name, run_files, run_env in runs:
            if not run_files:
                continue
            tap = OUT / ("results.tap" if name == "main" else f"results-{name}.tap")
            # The main run's spec report goes to the terminal as it runs, the other's once it is done.
            spec = "stdout" if name == "main" else str(OUT / f"results-{name}.txt")
            cmd = ["node", "--test", "--test-concurrency=1", "--test-timeout=150000",
                   "--test-reporter=spec", f"--test-reporter-destination={spec}",
                   "--test-reporter=tap", f"--test-reporter-destination={tap}", *run_files]
            print("$ " + " ".join(cmd), flush=True)
            # Its own process group, so a timeout also ends the browsers it started.
            procs.append((name, tap, spec, subprocess.Popen(
                cmd, cwd=HERE, env={**os.environ, **run_env}, stdin=subprocess.DEVNULL, start_new_session=True)))
        deadline = time.monotonic() + NODE_TEST_TIMEOUT_S
        code = 0
        for name, tap, spec, proc in procs:
            try:
                rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
                if isinstance(exc, subprocess.TimeoutExpired):
                    print(f"node --test ({name}) did not finish within {NODE_TEST_TIMEOUT_S}s", file=sys.stderr)
                for _, _, _, other in procs:
                    if other.poll() is None:
                        os.killpg(other.pid, signal.SIGKILL)
                        other.wait(timeout=10)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                rc = 1
            if spec != "stdout" and pathlib.Path(spec).exists():
                print(f"--- {' '.join(f for f in files if f in BESIDE)} (beside the others) ---")
                print(pathlib.Path(spec).read_text(errors="replace"), end="", flush=True)
            for key, value in tap_summary(tap).items():
                summary[key] = summary.get(key, 0) + value
            code = code or rc
        if code == 0 and (not summary or summary.get("pass", 0) == 0):
            print("interop: no test ran", file=sys.stderr)
            code = 1
        if code != 0:
            for part in (facilitator, siwx_facilitator, evm_facilitator, *envoys):
                if part.proc and not part.proc.alive():
                    print(f"{part.name} had exited: see {part.proc.log_path}", file=sys.stderr)
            print(f"logs: {OUT}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 0 if args.serve else 130
    finally:
        for part in reversed(parts):
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                print(f"error stopping {part}: {exc}", file=sys.stderr)
        print(f"interop: {time.monotonic() - started:.1f}s, output in {OUT.relative_to(REPO) if OUT.is_relative_to(REPO) else OUT}",
              flush=True)
        if summary:
            # todo tests (known bugs, see their reason) count as skipped here
            print(f"interop: {summary.get('pass', 0)} passed, "
                  f"{summary.get('fail', 0) + summary.get('cancelled', 0)} failed, "
                  f"{summary.get('skipped', 0) + summary.get('todo', 0)} skipped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
