"""The demo upstream (tests/integration/upstream.py) as a network service for docker compose.

upstream.py binds 127.0.0.1 (right for the in-process tests, unreachable from another
container), so this wrapper serves the same handler on --host (0.0.0.0 in compose) and adds
one endpoint for a test runner in another container:

    GET /__x402_upstream/requests   the request log (what reached the upstream), as JSON
    DELETE /__x402_upstream/requests   clears it

Usage: python upstream_server.py [--host 0.0.0.0] [--port 18080]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

for candidate in (pathlib.Path(__file__).resolve().parent, pathlib.Path(__file__).resolve().parents[2] / "tests/integration"):
    if (candidate / "upstream.py").exists():
        sys.path.insert(0, str(candidate))
        break

import upstream  # noqa: E402  (tests/integration/upstream.py)

LOG_PATH = "/__x402_upstream/requests"


class Handler(upstream._Handler):  # noqa: SLF001 - the demo upstream's own handler
    def _log_endpoint(self) -> bool:
        if self.path.split("?", 1)[0] != LOG_PATH:
            return False
        if self.command == "DELETE":
            with self.server.lock:
                self.server.requests.clear()
            data = b"[]"
        else:
            with self.server.lock:
                data = json.dumps(self.server.requests).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return True

    def _serve(self) -> None:
        if not self._log_endpoint():
            self._answer()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


def make_server(host: str, port: int, verbose: bool = False) -> "upstream._Server":
    server = upstream._Server((host, port), verbose)  # noqa: SLF001
    server.RequestHandlerClass = Handler
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    server = make_server(args.host, args.port, verbose=True)
    print(f"demo upstream on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
