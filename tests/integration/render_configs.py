"""Render the Envoy configs that `make integration` checks with `envoy --mode validate`.

- envoy/envoy.yaml (the reference config a seller copies), with its wasm path pointed at the
  built filter (validation loads the wasm and runs the plugin's on_configure) and its placeholder
  payTo set to a seller's wallet, as a seller does (tests/deploy/test_reference_configs.py checks
  that the file as shipped fails until then);
- the loopback test template with the default test plugin config;
- envoy/envoy-fastpath.yaml (the native fast path, docs/fastpath.md) the same way as envoy.yaml, its
  JWKS written by tools/fastpath.py from the plugin configuration in it, and the loopback fast-path
  config of tests/integration/test_fastpath.py.

Usage: python render_configs.py OUT_DIR   (prints the rendered paths, one a line)
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import PAY_TO_PLACEHOLDER, REPO, SELLER_WALLET, WASM, default_plugin_config, render_loopback_config  # noqa: E402

SHIPPED_WASM_PATH = "/etc/envoy/x402_access_pass.wasm"


def main() -> None:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/integration/out/validate")
    out.mkdir(parents=True, exist_ok=True)
    shipped = (REPO / "envoy/envoy.yaml").read_text()
    if SHIPPED_WASM_PATH not in shipped:
        sys.exit(f"envoy/envoy.yaml no longer names {SHIPPED_WASM_PATH}: update render_configs.py")
    reference = out / "envoy-reference.yaml"
    if PAY_TO_PLACEHOLDER not in shipped:
        sys.exit(f"envoy/envoy.yaml no longer has the payTo placeholder {PAY_TO_PLACEHOLDER}: update render_configs.py")
    reference.write_text(shipped.replace(SHIPPED_WASM_PATH, str(WASM)).replace(PAY_TO_PLACEHOLDER, SELLER_WALLET))
    loopback = out / "envoy-loopback.yaml"
    loopback.write_text(render_loopback_config(default_plugin_config("127.0.0.1:9"), WASM, 9, 9))
    print(reference)
    print(loopback)
    for path in render_fastpath(out):
        print(path)


SHIPPED_JWKS_PATH = "/etc/envoy/x402-pass-jwks.json"


def render_fastpath(out: pathlib.Path) -> list[pathlib.Path]:
    import json
    import os

    from fastpath_harness import fastpath, render_fastpath_config
    shipped = (REPO / "envoy/envoy-fastpath.yaml").read_text()
    for needle in (SHIPPED_WASM_PATH, SHIPPED_JWKS_PATH, PAY_TO_PLACEHOLDER):
        if needle not in shipped:
            sys.exit(f"envoy/envoy-fastpath.yaml no longer has {needle}: update render_configs.py")
    lines = shipped[shipped.index("value: |\n") + len("value: |\n"):].splitlines()
    indent = lines[0][:len(lines[0]) - len(lines[0].lstrip())]
    plugin = json.loads("\n".join(line for line in lines[:next(
        (i for i, line in enumerate(lines) if not line.startswith(indent)), len(lines))]))
    (out / "envoy-fastpath-plugin.json").write_text(json.dumps(plugin))
    jwks = out / "envoy-fastpath-jwks.json"
    # The JWKS of the secret `make validate` gives Envoy (X402_PASS_SECRET), or any valid one.
    secret = os.environ.get("X402_PASS_SECRET") or "validate-only-secret-0123456789abcdef0123"
    if fastpath.main(["jwks", str(out / "envoy-fastpath-plugin.json"), "-o", str(jwks),
                      f"--env=X402_PASS_SECRET={secret}"]) != 0:
        sys.exit("tools/fastpath.py jwks refused the plugin configuration of envoy/envoy-fastpath.yaml")
    reference = out / "envoy-fastpath-reference.yaml"
    reference.write_text(shipped.replace(SHIPPED_WASM_PATH, str(WASM)).replace(SHIPPED_JWKS_PATH, str(jwks))
                         .replace(PAY_TO_PLACEHOLDER, SELLER_WALLET))
    loopback = out / "envoy-fastpath-loopback.yaml"
    loopback.write_text(render_fastpath_config(default_plugin_config("127.0.0.1:9"), WASM, 9, 9,
                                               out / "envoy-fastpath-loopback-jwks.json"))
    return [reference, loopback]


if __name__ == "__main__":
    main()
