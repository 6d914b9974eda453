"""The upstream of the interop topology: the integration suite's demo upstream (every path answers
200 JSON echoing the method, path and request headers), plus `/api/metrics`, a small time series
for the dashboard example that also says which pass the request was served for.

Nothing here knows about passes: the `x-access-pass-*` headers it reports are the ones Envoy's
filter set from the verified pass.
"""

from __future__ import annotations

import math
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))

import upstream as demo  # noqa: E402  (tests/integration/upstream.py)


def metrics_payload(path: str, headers: list[list[str]], now: float | None = None) -> dict:
    """A deterministic function of the clock: 30 points, one per second, of two smooth series."""
    now = time.time() if now is None else now
    end = int(now)
    points = []
    for t in range(end - 29, end + 1):
        points.append({
            "t": t,
            "requests": round(120 + 40 * math.sin(t / 7) + 15 * math.sin(t / 2.3), 1),
            "latencyMs": round(18 + 6 * math.cos(t / 5) + 2 * math.sin(t / 1.7), 2),
        })
    got = {k: v for k, v in headers}
    return {
        "upstream": "demo",
        "path": path,
        "generatedAt": now,
        "series": points,
        "servedFor": {
            "tier": got.get("x-access-pass-tier"),
            "payer": got.get("x-access-pass-payer"),
            "expires": got.get("x-access-pass-expires"),
            "network": got.get("x-access-pass-network"),
            "authorizationForwarded": "authorization" in got,
        },
        "headers": headers,
    }


class _Handler(demo._Handler):  # noqa: SLF001 - the demo upstream, with one more route
    def payload(self, headers: list[list[str]]) -> dict:
        if self.path.split("?", 1)[0].startswith("/api/metrics"):
            return metrics_payload(self.path, headers)
        return super().payload(headers)


class DataUpstream(demo.DemoUpstream):
    def __init__(self, port: int = 0, verbose: bool = False):
        super().__init__(port, verbose)
        self.server.RequestHandlerClass = _Handler
