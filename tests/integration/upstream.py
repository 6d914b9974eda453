"""Demo upstream: answers every path with 200 JSON echoing the method, path and request headers
(`/health`: {"status": "ok"}; `X-Upstream-Status: <code>` answers that status instead of 200),
and keeps a log of the requests it answered (with their bodies). Its own API, under
/__x402_upstream/, is never logged:

    GET    /__x402_upstream/requests   the request log, as JSON
    DELETE /__x402_upstream/requests   clears it
    GET    /__x402_upstream/health     {"status": "ok"}: for health checks, which must not show in
                                       the log while tests count what reached the upstream

Used by the integration tests (in-process: DemoUpstream, whose log tests read directly; or, in
external mode, RemoteUpstream, which reads the log of one running elsewhere over HTTP), by
`make run`, and as the docker compose upstream (envoy/docker/upstream.Dockerfile):

    python upstream.py [--host 127.0.0.1] [--port 18080]
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_PREFIX = "/__x402_upstream/"
LOG_PATH = API_PREFIX + "requests"
HEALTH_PATH = API_PREFIX + "health"


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

    def _own_api(self, path: str) -> None:
        """/__x402_upstream/*: the request log and a health check, never logged themselves."""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        if path == HEALTH_PATH and self.command in ("GET", "HEAD"):
            self._send(200, b'{"status":"ok"}')
        elif path == LOG_PATH and self.command in ("GET", "DELETE"):
            with self.server.lock:
                if self.command == "DELETE":
                    self.server.requests.clear()
                data = json.dumps(self.server.requests).encode()
            self._send(200, data)
        else:
            self._send(404, b'{"error":"not found"}')

    def _send(self, status: int, data: bytes, vary: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if vary:
            self.send_header("Vary", vary)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith(API_PREFIX):
            self._own_api(path)
            return
        headers = self.record_request()
        # `X-Upstream-Status: <code>` makes it answer with that status (tests of an upstream that fails).
        status = self.headers.get("X-Upstream-Status", "200")
        # `X-Upstream-Vary: <value>` makes it answer with its own `Vary` (tests that the filter adds to it).
        self._send(int(status) if status.isdigit() and 200 <= int(status) <= 599 else 200,
                   json.dumps(self.payload(headers)).encode(), self.headers.get("X-Upstream-Vary"))

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
    """An HTTP server (on 127.0.0.1:<ephemeral> unless told otherwise) served by a daemon thread,
    stopped within 5 s."""

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

    def __init__(self, port: int = 0, verbose: bool = False, host: str = "127.0.0.1"):
        server = _Server((host, port), verbose)
        server.timeout = 1
        super().__init__(server, "demo-upstream")

    @property
    def requests(self) -> list[dict]:
        with self.server.lock:
            return list(self.server.requests)

    def count(self) -> int:
        with self.server.lock:
            return len(self.server.requests)

    def clear(self) -> None:
        with self.server.lock:
            self.server.requests.clear()


class RemoteUpstream:
    """A demo upstream running elsewhere (external mode: X402_UPSTREAM_URL), read through its
    request log endpoint; the same `requests` / `count()` / `clear()` as DemoUpstream."""

    def __init__(self, url: str, timeout: float = 10.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain http://host:port URL: {url!r}")
        self.url = url
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout

    def _log(self, method: str) -> list[dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, LOG_PATH)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"{method} {self.url}{LOG_PATH} -> {resp.status} {data[:200]!r}")
        return json.loads(data)

    def start(self) -> "RemoteUpstream":
        self._log("GET")  # reachable, and the right program
        return self

    def stop(self) -> None:
        pass  # left running

    @property
    def requests(self) -> list[dict]:
        return self._log("GET")

    def count(self) -> int:
        return len(self._log("GET"))

    def clear(self) -> None:
        self._log("DELETE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    up = DemoUpstream(args.port, verbose=True, host=args.host)
    print(f"demo upstream on {args.host}:{up.port}", flush=True)
    try:
        up.server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        up.server.server_close()


if __name__ == "__main__":
    main()
