"""The native fast path's topology for the integration tests (docs/fastpath.md): the same loopback
Envoy as harness.Envoy, with the http_filters that tools/fastpath.py builds from the plugin
configuration (strip, jwt_authn, marker, CORS, the wasm filter behind a skip matcher) and the JWKS
it writes, in envoy-fastpath.template.yaml."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import string
from typing import Any

from harness import ENV_SECRET, HERE, REPO, WASM, Envoy

_spec = importlib.util.spec_from_file_location("fastpath_tool", REPO / "tools/fastpath.py")
assert _spec and _spec.loader
fastpath = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fastpath)

# The VM environment of the wasm filter (envoy.template.yaml's), so secretEnv works the same way.
VM_ENV = {"X402_TEST_SECRET": ENV_SECRET}


def wasm_filter(plugin_json: str, wasm: pathlib.Path) -> dict:
    """The wasm filter exactly as envoy.template.yaml configures it."""
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "x402_access_pass",
            "root_id": "",
            "vm_config": {
                "vm_id": "x402_access_pass",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": str(wasm)}},
                "environment_variables": {"key_values": VM_ENV},
            },
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": plugin_json},
        },
    }}


def render_fastpath_config(plugin_config: dict, wasm: pathlib.Path, facilitator_port: int, upstream_port: int,
                           jwks_path: pathlib.Path, listener_port: int = 0, admin_port: int = 0,
                           sole_minter: bool = False) -> str:
    """Writes the JWKS (tools/fastpath.py's `jwks`) to jwks_path and returns the Envoy config."""
    env: dict[str, Any] = dict(VM_ENV)
    plugin_path = jwks_path.with_suffix(".plugin.json")
    plugin_path.parent.mkdir(parents=True, exist_ok=True)
    plugin_path.write_text(json.dumps(plugin_config))
    rc = fastpath.main(["jwks", str(plugin_path), "-o", str(jwks_path), *(f"--env={k}={v}" for k, v in env.items())])
    if rc != 0:
        raise RuntimeError(f"tools/fastpath.py jwks refused the plugin configuration (exit {rc})")
    keys = fastpath.ring(plugin_config, env)
    filters = fastpath.http_filters(plugin_config, keys, {"filename": str(jwks_path)},
                                    wasm_filter(json.dumps(plugin_config), wasm), sole_minter)
    return string.Template((HERE / "envoy-fastpath.template.yaml").read_text()).substitute(
        listener_port=listener_port, admin_port=admin_port, http_filters=json.dumps(filters),
        facilitator_port=facilitator_port, upstream_port=upstream_port)


class FastPathEnvoy(Envoy):
    """harness.Envoy with the fast path's configuration (same start/stop/requests/stats)."""

    sole_minter = False  # tools/fastpath.py filters --sole-minter

    def render(self) -> pathlib.Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        assert isinstance(self.plugin_config, dict), "the fast path is built from a plugin configuration object"
        self.config_path.write_text(render_fastpath_config(
            self.plugin_config, self.wasm, self.facilitator_port, self.upstream_port,
            self.out_dir / f"{self.name}.jwks.json", self.listener_port, self.admin_port, self.sole_minter))
        return self.config_path


__all__ = ["FastPathEnvoy", "fastpath", "render_fastpath_config", "wasm_filter", "WASM"]


SHIPPED = REPO / "envoy/envoy-fastpath.yaml"
SHIPPED_JWKS = "/etc/envoy/x402-pass-jwks.json"
SHIPPED_WASM = "/etc/envoy/x402_access_pass.wasm"


def shipped_plugin_text(text: str) -> str:
    """The plugin configuration in envoy/envoy-fastpath.yaml (its `value: |` block)."""
    lines = text[text.index("value: |\n") + len("value: |\n"):].splitlines()
    indent = lines[0][:len(lines[0]) - len(lines[0].lstrip())]
    block = next(iter([lines[:i] for i, line in enumerate(lines) if not line.startswith(indent)]), lines)
    return "\n".join(line[len(indent):] for line in block) + "\n"


def shipped_http_filters_yaml(text: str) -> str:
    """What envoy/envoy-fastpath.yaml's http_filters must say: tools/fastpath.py's filters for the
    plugin configuration in it, as block YAML, around the wasm filter of envoy/envoy.yaml (the
    seller's secret from Envoy's environment). Regenerate the file's block from this."""
    plugin = shipped_plugin_text(text)
    config = json.loads(plugin)
    keys = fastpath.ring(config, {"X402_PASS_SECRET": "x" * 32})
    wasm = {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "x402_access_pass", "root_id": "", "fail_open": False,
            "vm_config": {"vm_id": "x402_access_pass", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": SHIPPED_WASM}},
                          "environment_variables": {"host_env_keys": ["X402_PASS_SECRET"]}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": fastpath.Literal(plugin)},
        }}}
    return fastpath.to_yaml(fastpath.http_filters(config, keys, {"filename": SHIPPED_JWKS}, wasm), 10)
