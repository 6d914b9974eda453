"""tools/x402-pay's failures: a server that is down, silent or answering something unexpected gets
one line on stderr (`x402-pay: ...`) and a non-zero exit, never a traceback. No Envoy: each test
runs its own loopback server (or none)."""

from __future__ import annotations

import base64
import json
import pathlib
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from upstream import BackgroundServer

X402_PAY = pathlib.Path(__file__).resolve().parents[2] / "tools" / "x402-pay"


def run_pay(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(X402_PAY), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_one_line_failure(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode != 0, result
    assert result.stdout == "", result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("x402-pay: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


class Canned(BackgroundServer):
    """Answers every request with one fixed status, headers and body (GET and POST)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b""):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        super().__init__(server, "canned")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/data"


def canned(status: int, headers: dict[str, str] | None = None, body: bytes = b""):
    server = Canned(status, headers or {}, body).start()
    return server


def b64(obj) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def test_a_server_that_is_down_is_one_line():
    with socket.socket() as sock:  # a port nobody listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_pay(f"http://127.0.0.1:{port}/api/data")
    assert_one_line_failure(result, "connection refused", f"127.0.0.1:{port}")


def test_a_server_that_never_answers_times_out_in_one_line():
    with socket.socket() as sock:  # accepts connections (backlog) and never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        result = run_pay("--timeout", "1", f"http://127.0.0.1:{port}/api/data")
    assert_one_line_failure(result, "no answer within 1 s")


def test_not_a_url_is_one_line():
    assert_one_line_failure(run_pay("not-a-url"), "not an http:// URL")


OFFER = {"scheme": "exact", "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "amount": "500000",
         "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
         "payTo": "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse",
         "maxTimeoutSeconds": 60, "extra": {"feePayer": "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu", "decimals": 6}}


@pytest.mark.parametrize("status,headers,body,needle", [
    (200, {"Content-Type": "application/json"}, b'{"upstream": "demo",\n "path": "/api/data"}', "got 200"),
    (402, {}, b"pay me\n", "a 402 without PAYMENT-REQUIRED"),
    (500, {}, b"", "got 500: (empty body)"),
    (402, {"PAYMENT-REQUIRED": "%%% not base64 %%%"}, b"", "not base64 JSON"),
    (402, {"PAYMENT-REQUIRED": base64.b64encode(b"{not json").decode()}, b"", "not base64 JSON"),
    (402, {"PAYMENT-REQUIRED": b64({"x402Version": 2, "accepts": []})}, b"", "has no offer"),
    (402, {"PAYMENT-REQUIRED": b64(["a", "list"])}, b"", "has no offer"),
    (402, {"PAYMENT-REQUIRED": b64({"accepts": [{k: v for k, v in OFFER.items() if k != "payTo"}]})}, b"",
     "cannot pay the offer"),
    (402, {"PAYMENT-REQUIRED": b64({"accepts": [{**OFFER, "payTo": "not-base58-0OIl"}]})}, b"", "cannot pay the offer"),
], ids=["200", "402-without-header", "500", "bad-base64", "bad-json", "no-accepts", "not-an-object",
        "offer-without-payTo", "offer-with-bad-payTo"])
def test_an_unexpected_answer_is_one_line(status, headers, body, needle):
    server = canned(status, headers, body)
    try:
        assert_one_line_failure(run_pay(server.url), needle)
    finally:
        server.stop()


def test_a_refused_purchase_is_one_line():
    # The 402 is fine (a payment is built), the POST answers 402 again with a multi-line body.
    server = canned(402, {"PAYMENT-REQUIRED": b64({"x402Version": 2, "resource": {"url": "x"}, "accepts": [OFFER]})},
                    b'{"error": "payment refused",\n "reason": "amount_mismatch"}')
    try:
        line = assert_one_line_failure(run_pay("--buy", server.url), "purchase failed: 402")
        assert "amount_mismatch" in line
        # Without --buy the same 402 gives the header value on stdout, exit 0.
        ok = run_pay(server.url)
        assert ok.returncode == 0 and ok.stderr == "" and json.loads(base64.b64decode(ok.stdout))["accepted"] == OFFER
    finally:
        server.stop()
