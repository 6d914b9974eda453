"""`make run`: the filter in Envoy on 127.0.0.1:10000 with the offline test facilitator and a demo
upstream, on Solana devnet with the demo keys. Stays in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import MERCHANT, Envoy, Facilitator, default_plugin_config  # noqa: E402
from upstream import DemoUpstream  # noqa: E402

LISTENER_PORT = int(os.environ.get("X402_DEMO_PORT", "10000"))
ADMIN_PORT = int(os.environ.get("X402_DEMO_ADMIN_PORT", "9901"))
RUN_DIR = ROOT / ".run"


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    facilitator = upstream = envoy = None
    try:
        facilitator = Facilitator(RUN_DIR).start()
        upstream = DemoUpstream().start()
        config = default_plugin_config(facilitator.addr, secret="demo-secret-do-not-use-in-production-0123")
        envoy = Envoy("demo", config, facilitator.port, upstream.port, RUN_DIR,
                      listener_port=LISTENER_PORT, admin_port=ADMIN_PORT).start()
        base = f"http://127.0.0.1:{envoy.port}"
        pay = os.path.relpath(ROOT / "tools" / "x402-pay")
        print(f"""
x402 access pass demo (Solana devnet, offline test facilitator: nothing reaches a chain)
  Envoy      {base}   admin http://127.0.0.1:{envoy.admin[1]}/stats?filter=x402
  upstream   127.0.0.1:{upstream.port} (echoes the headers it gets)
  facilitator {facilitator.addr} (fee payer 9hSR6S7W..., payTo {MERCHANT})
  logs       {os.path.relpath(RUN_DIR)}/

1. No pass: a 402 challenge (PAYMENT-REQUIRED and X-ACCESS-PASS-TIERS are base64 JSON)
   curl -i {base}/api/data

2. Buy a 1-hour pass: sign a payment for the price of the 402 of ?tier=1h, then POST it
   SIG=$({pay} '{base}/api/data?tier=1h')
   curl -si -X POST -H "PAYMENT-SIGNATURE: $SIG" '{base}/api/data?tier=1h' | tee /tmp/x402-purchase.txt
   TOKEN=$(sed -n 's/^access-pass: //Ip' /tmp/x402-purchase.txt | tr -d '\\r')
   (or in one step: TOKEN=$({pay} --buy '{base}/api/data?tier=1h'))

3. Use the pass: the upstream gets x-access-pass-* headers, not the token
   curl -i -H "Authorization: Bearer $TOKEN" {base}/api/data

   Other passes: ?tier=5m, ?tier=24h, ?duration=5400 (90 minutes at 0.50/h). Unprotected: {base}/health

Ctrl-C stops everything.
""", flush=True)
        while not stopping:
            for name, proc in (("facilitator", facilitator.proc), ("envoy", envoy.proc)):
                if not proc.alive():
                    print(f"{name} exited with {proc.proc.returncode}; see {proc.log_path}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        print("stopping...", flush=True)
        return 0
    finally:
        for part in (envoy, facilitator, upstream):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # noqa: BLE001 - keep stopping the others
                    print(f"error stopping {part}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
