"""Helpers of the adversarial and soak suites (test_adversarial.py, test_soak.py): what was charged,
what was issued, and whether the two agree; raw requests; races; Envoy's stats and memory.

Builds on harness.py and helpers.py (nothing here duplicates them)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Sequence

from harness import Envoy, Facilitator, Headers, parse_raw_response
from upstream import BackgroundServer
from helpers import PRICES, decode_jwt

# The default test configuration (harness.default_plugin_config): tiers and ratePerHour.
TIER_SECONDS = {"5m": 300, "1h": 3600, "24h": 86400}
RATE_ATOMIC = 500_000      # ratePerHour "0.50"
MIN_DURATION, MAX_DURATION = 60, 2_592_000
LONGEST_PASS = MAX_DURATION
# A Pending purchase is abandoned after 2 × facilitatorTimeoutMs + settleDeadlineMs + 5 s
# (Worker::replay_policy), with the default test configuration's 2 s and 1 s.
STALE_AFTER_SECONDS = (2 * 2000 + 1000 + 999) // 1000 + 5


def custom_price(seconds: int, rate_atomic: int = RATE_ATOMIC, decimals: int = 6) -> int:
    """docs/behaviour.md §5: rate × seconds / 3600, rounded half up to 10^(decimals-4) atomic (exact integers)."""
    unit = 10 ** (decimals - 4 if decimals > 4 else max(decimals - 2, 0))
    numerator, denominator = rate_atomic * seconds, 3600 * unit
    units = numerator // denominator + (1 if 2 * (numerator % denominator) >= denominator else 0)
    return units * unit


def price_of_pass(claims: dict) -> int:
    """What a pass with these claims costs under the default test configuration."""
    if claims["tier"] == "custom":
        return custom_price(claims["duration"])
    return PRICES[claims["tier"]]


def assert_pass_is_what_was_paid(token: str, amount: int | str) -> dict:
    """The pass lasts exactly what `amount` (atomic, as settled) buys: its tier's price or its
    duration's price at ratePerHour equals the amount, exp - iat = duration, and it is no longer
    than the longest pass sold."""
    _, claims, _ = decode_jwt(token)
    assert claims["exp"] - claims["iat"] == claims["duration"], claims
    assert claims["duration"] <= LONGEST_PASS, claims
    if claims["tier"] != "custom":
        assert TIER_SECONDS[claims["tier"]] == claims["duration"], claims
    assert price_of_pass(claims) == int(amount), (claims, amount)
    return claims


@dataclass
class Ledger:
    """The facilitator's settlements and counters at one moment; compare later states with it."""

    facilitator: Facilitator
    before: dict = field(init=False)

    def __post_init__(self) -> None:
        self.before = self.facilitator.state()

    def _known(self) -> set[str]:
        return {s["messageHash"] for s in self.before["settlements"]}

    def new_settlements(self) -> list[dict]:
        known = self._known()
        return [s for s in self.facilitator.state()["settlements"] if s["messageHash"] not in known]

    def counts_delta(self) -> dict[str, int]:
        after = self.facilitator.counts()
        return {k: after.get(k, 0) - self.before["counts"].get(k, 0) for k in after}

    def assert_nothing_charged(self, *, no_callout: bool = False) -> None:
        new = self.new_settlements()
        assert new == [], f"settled although nothing should have been: {new}"
        if no_callout:
            delta = self.counts_delta()
            assert delta.get("verify", 0) == 0 and delta.get("settle", 0) == 0, \
                f"the facilitator was called: {delta}"

    def assert_charged(self, expected: dict[str, int]) -> list[dict]:
        """Exactly these new settlements: {message hash: atomic amount}."""
        new = self.new_settlements()
        got: dict[str, list[int]] = {}
        for s in new:
            got.setdefault(s["messageHash"].lower(), []).append(int(s["amount"]))
        want = {k.lower(): [v] for k, v in expected.items()}
        assert got == want, f"settlements {got} != expected {want}"
        return new


# --------------------------------------------------------------------------- Envoy side


def filter_counter(stats: dict[str, int], name: str) -> int:
    """`wasmcustom.x402_access_pass.<name>` (0 when not defined yet)."""
    return stats.get(f"wasmcustom.x402_access_pass.{name}", 0)


class Counters:
    """Deltas of the filter's counters between two moments (counters are per process, summed
    over workers by Envoy)."""

    def __init__(self, envoy: Envoy):
        self.envoy = envoy
        self.before = envoy.stats()

    def delta(self, name: str) -> int:
        return filter_counter(self.envoy.stats(), name) - filter_counter(self.before, name)


def worker_connections(envoy: Envoy) -> dict[str, int]:
    """Downstream connections accepted per worker (`listener.<addr>_<port>.worker_N.downstream_cx_total`;
    the address is 127.0.0.1 here, 0.0.0.0 in the compose Envoy)."""
    out: dict[str, int] = {}
    for name, value in envoy.stats().items():
        m = re.match(r"listener\.[^ ]+_\d+\.(worker_\d+)\.downstream_cx_total$", name)
        if m:
            out[m.group(1)] = value
    return out


def wasm_vm_stats(envoy: Envoy) -> dict[str, int]:
    """Envoy's own wasm runtime stats (`wasm.*`, not the filter's `wasmcustom.*`)."""
    return {k: v for k, v in envoy.stats().items() if k.startswith("wasm.")}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def envoy_heap(envoy: Envoy) -> dict[str, int]:
    """Envoy's allocator view (admin /memory): allocated and heap_size bytes."""
    data = envoy.admin_get("/memory").json()
    return {k: int(v) for k, v in data.items() if str(v).isdigit()}


BAD_LOG = re.compile(r"panic|wasm trap|unexpected status|Failed to|Wasm VM failed|unreachable|"
                     r"out of bounds|stack overflow|RuntimeError", re.I)


def bad_log_lines(text: str) -> list[str]:
    """Lines of an Envoy log that betray a trapped or failed VM."""
    return [line for line in text.splitlines() if BAD_LOG.search(line)]


# --------------------------------------------------------------------------- raw HTTP


def raw_exchange(envoy: Envoy, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]],
                 body: bytes = b"", timeout: float = 15.0) -> tuple[int, Headers, bytes]:
    """One HTTP/1.1 request with byte-exact header lines (duplicates, non-UTF-8, huge values);
    returns (status, headers, body). Connection: close."""
    lines = [method + b" " + target + b" HTTP/1.1", f"Host: {envoy.host}:{envoy.port}".encode()]
    lines += [k + b": " + v for k, v in headers]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection((envoy.host, envoy.port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # Envoy may answer (e.g. 431) and close before reading everything
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if _complete(b"".join(chunks)):
                break  # do not wait for Envoy's delayed close
    raw = b"".join(chunks)
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return parse_raw_response(raw)


def _complete(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return bool(m) and len(body) >= int(m.group(1))


def upstream_header_values(echo: dict, name: str) -> list[str]:
    """Every value of one header as the demo upstream saw it."""
    return [v for k, v in echo["headers"] if k == name.lower()]


# --------------------------------------------------------------------------- concurrency


def race(n: int, fn: Callable[[int], Any], timeout: float = 60.0) -> list[Any]:
    """Run fn(0..n-1) on n threads released together; re-raise the first error."""
    barrier = threading.Barrier(n, timeout=timeout)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a racing request never finished"
    if errors:
        raise errors[0]
    return results


def tokens_of(responses: Iterable[Any]) -> set[str]:
    return {r.headers["access-pass"] for r in responses if r is not None and r.status == 200}


def json_reason(resp: Any) -> str | None:
    try:
        return json.loads(resp.body).get("reason")
    except (ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------- a fast upstream for load


class _FastHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The demo upstream writes headers and body in two sends: with Nagle's algorithm and delayed
    # ACKs that costs ~40 ms a response under keep-alive. Load tests need the upstream out of the way.
    disable_nagle_algorithm = True
    server: "_FastServer"

    def log_message(self, fmt: str, *args) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        claims = {k: v for k, v in self.headers.items() if k.lower().startswith("x-access-pass-")}
        data = json.dumps({"upstream": "fast", "path": self.path, "claims": claims,
                           "authorization": "authorization" in (k.lower() for k in self.headers)}).encode()
        with self.server.lock:
            self.server.count += 1
            if "authorization" in (k.lower() for k in self.headers):
                self.server.saw_authorization += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_HEAD = do_OPTIONS = _answer


class _FastServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FastHandler)
        self.lock = threading.Lock()
        self.count = 0
        self.saw_authorization = 0


class FastUpstream(BackgroundServer):
    """A 200-JSON upstream on 127.0.0.1:<ephemeral> that keeps counts, not requests."""

    def __init__(self) -> None:
        super().__init__(_FastServer(), "fast-upstream")
