"""Demo upstream: answers every path with 200 JSON echoing the method, path and request headers.

Used by the integration tests (in-process, so tests read its request log) and by `make run`
(as a script: `python upstream.py --port 18080`).
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, fmt: str, *args) -> None:  # keep stderr quiet; the log is in memory
        if self.server.verbose:
            super().log_message(fmt, *args)

    def record_request(self) -> list[list[str]]:
        """Reads the body and logs the request; returns its headers as [name, value] pairs."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20)) if length else b""
        headers = [[k.lower(), v] for k, v in self.headers.items()]
        record = {"method": self.command, "path": self.path, "headers": headers,
                  "body": body.decode("utf-8", "replace")}
        with self.server.lock:
            self.server.requests.append(record)
        return headers

    def payload(self, headers: list[list[str]]) -> dict:
        if self.path == "/health":
            return {"status": "ok"}
        return {"upstream": "demo", "method": self.command, "path": self.path, "headers": headers}

    def _answer(self) -> None:
        data = json.dumps(self.payload(self.record_request())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, verbose: bool = False):
        super().__init__(addr, _Handler)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.verbose = verbose


class BackgroundServer:
    """An HTTP server on 127.0.0.1:<ephemeral> served by a daemon thread, stopped within 5 s."""

    def __init__(self, server: ThreadingHTTPServer, name: str):
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name=name, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class DemoUpstream(BackgroundServer):
    """The demo upstream, keeping every request it got."""

    def __init__(self, port: int = 0, verbose: bool = False):
        server = _Server(("127.0.0.1", port), verbose)
        server.timeout = 1
        super().__init__(server, "demo-upstream")

    @property
    def requests(self) -> list[dict]:
        with self.server.lock:
            return list(self.server.requests)

    def count(self) -> int:
        with self.server.lock:
            return len(self.server.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    up = DemoUpstream(args.port, verbose=True)
    print(f"demo upstream on 127.0.0.1:{up.port}", flush=True)
    try:
        up.server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        up.server.server_close()


if __name__ == "__main__":
    main()
