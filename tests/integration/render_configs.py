"""Render the Envoy configs that `make integration` checks with `envoy --mode validate`.

- envoy/envoy.yaml (the reference config a seller copies), with its wasm path pointed at the
  built filter (validation loads the wasm and runs the plugin's on_configure) and its placeholder
  payTo set to a seller's wallet, as a seller does (tests/deploy/test_reference_configs.py checks
  that the file as shipped fails until then);
- the loopback test template with the default test plugin config.

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


if __name__ == "__main__":
    main()
