"""A buyer written with the official Python x402 client (`x402` 2.25.0), unchanged, as its README
sets it up: `x402Client` (async, for httpx) or `x402ClientSync` (for requests), the exact SVM
scheme with a `KeypairSigner` registered for `solana:*`, and, with `--siwx`, the Sign-In-With-X
client extension. Only the Solana RPC points at the test facilitator's stand-in.

    buyer.py --client httpx|requests --seed-hex HEX --rpc URL [--siwx] URL [URL ...]

GETs each URL in turn and prints one JSON object: the buyer's address, one entry per call (status,
the ACCESS-PASS and PAYMENT-RESPONSE headers, the body, or the error the client raised) and every
request that went over the wire (recorded below the x402 client, in the HTTP library's own
transport), for tests/interop/python.test.mjs to check against the facilitator's ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx
import requests
from requests.adapters import HTTPAdapter
from solders.keypair import Keypair
from x402 import x402Client, x402ClientSync
from x402.extensions.sign_in_with_x import CreateSIWxClientExtensionOptions, create_siwx_client_extension
from x402.http.clients.httpx import x402_httpx_transport
from x402.http.clients.requests import x402HTTPAdapter
from x402.mechanisms.svm import KeypairSigner
from x402.mechanisms.svm.exact import ExactSvmScheme

TIMEOUT_S = 30


def wire_entry(method: str, url: str, headers, status: int, response_headers, text: str) -> dict:
    """One request as it went out, and what came back (the shape of lib.mjs's recordingFetch)."""
    sent = {name: headers.get(name) for name in ("payment-signature", "sign-in-with-x", "authorization")}
    return {
        "method": method,
        "url": url,
        "headers": {k: v for k, v in sent.items() if v is not None},
        "status": status,
        "accessPass": response_headers.get("access-pass"),
        "paymentResponse": response_headers.get("payment-response"),
        "text": text,
    }


def answer(status: int, headers, text: str) -> dict:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return {"status": status, "accessPass": headers.get("access-pass"),
            "paymentResponse": headers.get("payment-response"), "body": body, "text": text[:2000]}


class RecordingTransport(httpx.AsyncBaseTransport):
    """The real httpx transport, noting each request and its status."""

    def __init__(self, wire: list):
        self.inner = httpx.AsyncHTTPTransport()
        self.wire = wire

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()  # kept by the response: the client reads it again
        self.wire.append(wire_entry(request.method, str(request.url), request.headers, response.status_code,
                                    response.headers, body.decode("utf-8", "replace")))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingAdapter(HTTPAdapter):
    """requests' own adapter, noting each request and its status: placed under x402HTTPAdapter
    (whose `super().send` is the plain HTTP send), so the x402 adapter itself is unchanged."""

    wire: list

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        self.wire.append(wire_entry(request.method, request.url, request.headers, response.status_code,
                                    response.headers, response.text))  # .content is kept for the client
        return response


class PayingRecordingAdapter(x402HTTPAdapter, RecordingAdapter):
    pass


def setup(client, signer: KeypairSigner, rpc: str, siwx: bool):
    client.register("solana:*", ExactSvmScheme(signer, rpc_url=rpc))
    if siwx:
        client.register_extension(create_siwx_client_extension(CreateSIWxClientExtensionOptions(signers=[signer])))
    return client


async def run_httpx(signer, args, wire: list) -> list:
    client = setup(x402Client(), signer, args.rpc, args.siwx)
    calls = []
    transport = x402_httpx_transport(client, RecordingTransport(wire))
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT_S) as http:
        for url in args.urls:
            try:
                r = await http.get(url)
                calls.append(answer(r.status_code, r.headers, r.text))
            except Exception as exc:  # noqa: BLE001 - what the client raised is the result
                calls.append({"error": f"{type(exc).__name__}: {exc}"})
    return calls


def run_requests(signer, args, wire: list) -> list:
    client = setup(x402ClientSync(), signer, args.rpc, args.siwx)
    adapter = PayingRecordingAdapter(client)
    adapter.wire = wire
    calls = []
    with requests.Session() as session:
        session.mount("http://", adapter)
        for url in args.urls:
            try:
                r = session.get(url, timeout=TIMEOUT_S)
                calls.append(answer(r.status_code, r.headers, r.text))
            except Exception as exc:  # noqa: BLE001 - what the client raised is the result
                calls.append({"error": f"{type(exc).__name__}: {exc}"})
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", choices=("httpx", "requests"), required=True)
    parser.add_argument("--seed-hex", required=True, help="the buyer's 32-byte Ed25519 seed")
    parser.add_argument("--rpc", required=True, help="Solana JSON-RPC URL")
    parser.add_argument("--siwx", action="store_true", help="register the Sign-In-With-X client extension")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()

    signer = KeypairSigner(Keypair.from_seed(bytes.fromhex(args.seed_hex)))
    wire: list = []
    if args.client == "httpx":
        calls = asyncio.run(run_httpx(signer, args, wire))
    else:
        calls = run_requests(signer, args, wire)
    json.dump({"address": signer.address, "client": args.client, "calls": calls, "wire": wire}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
