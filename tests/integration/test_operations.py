"""Operations (SPEC §10): input that must not trap the VM, and the counters in Envoy's stats."""

import re
import threading
import time

from harness import SECRET, parse_raw_response
from helpers import assert_challenge, assert_purchase_ok, buy, get_challenge, hs256, pass_claims


def _parallel(n, fn):
    results = [None] * n
    errors = []

    def run(i):
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return results


def test_non_utf8_header_values_get_a_402_and_both_workers_keep_serving(envoy, buyer):
    host = f"{envoy.host}:{envoy.port}".encode()
    raws = [
        b"GET /api/data HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
        b"POST /api/data HTTP/1.1\r\nHost: " + host + b"\r\nPAYMENT-SIGNATURE: \xff\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n",
        b"GET /api/data?tier=1h HTTP/1.1\r\nHost: " + host + b"\r\nX-Forwarded-Proto: \xc3\x28\r\n"
        b"Accept: \xfftext/html\r\nConnection: close\r\n\r\n",
        b"POST /api/data HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer a.\xff.b\r\n"
        b"PAYMENT-SIGNATURE: eyJ4\xff\xfe\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ]
    # Several times each, on parallel connections, so both workers see them.
    statuses = _parallel(len(raws) * 4, lambda i: parse_raw_response(envoy.raw(raws[i % len(raws)]))[0])
    assert set(statuses) == {402}, statuses
    # Every worker still answers normally.
    token = hs256(pass_claims(buyer.address), SECRET)
    results = _parallel(16, lambda i: envoy.get("/api/data") if i % 2 else
                        envoy.get("/api/data", {"Authorization": f"Bearer {token}"}))
    for i, r in enumerate(results):
        if i % 2:
            assert_challenge(r)
        else:
            assert r.status == 200, r
    resp, _, _ = buy(envoy, buyer, "/api/data?tier=5m")
    assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")


def _filter_stats(envoy) -> dict:
    # Envoy's own per-plugin stats are "wasm.<plugin name>.*"; the filter's start with x402_access_pass.
    return {k: v for k, v in envoy.stats().items() if "x402_access_pass." in k and not k.startswith("wasm.")}


def _one(stats: dict, *words: str) -> list[str]:
    return [k for k in stats if all(re.search(w, k, re.I) for w in words)]


def test_counters_count_challenges_passes_purchases_and_the_amount_settled(envoy, buyer):
    before = _filter_stats(envoy)
    assert_challenge(envoy.get("/api/data"))
    resp, _, _ = buy(envoy, buyer, "/api/data?tier=1h")
    token, _ = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    assert envoy.get("/api/data", {"Authorization": f"Bearer {token}"}).status == 200
    assert envoy.get("/api/data", {"Authorization": "Bearer x.y.z"}).status == 402
    mismatch = buyer.pay(get_challenge(envoy, "/api/data?tier=1h"))[0]  # 1h price posted to ?tier=24h
    assert envoy.post("/api/data?tier=24h", {"PAYMENT-SIGNATURE": mismatch}).status == 402

    def grown():
        after = _filter_stats(envoy)
        delta = {k: v - before.get(k, 0) for k, v in after.items()}
        checks = {
            "challenges": [k for k in _one(after, "challenge") if delta[k] >= 2],
            "passes accepted": [k for k in _one(after, r"pass\w*[._]accept|accept\w*[._]pass") if delta[k] >= 1],
            "purchases succeeded": [k for k in _one(after, "purchase", "succe") if delta[k] >= 1],
            "purchases failed": [k for k in _one(after, "purchase", "fail") if delta[k] >= 1],
            "amount settled": [k for k in _one(after, "settle", "amount|atomic") if delta[k] == 500000],
            "tokens rejected": [k for k in _one(after, "token", "reject|invalid") if delta[k] >= 1],
        }
        missing = [name for name, keys in checks.items() if not keys]
        return (not missing, missing, after)

    deadline = time.monotonic() + 5
    ok, missing, after = grown()
    while not ok and time.monotonic() < deadline:
        time.sleep(0.2)
        ok, missing, after = grown()
    assert ok, f"no counter for {missing}; filter stats: {sorted(after)}"
    prom = [line for line in envoy.admin_get("/stats/prometheus").text.splitlines() if not line.startswith("#")]
    assert any(re.search(r"x402_access_pass_\w*challenge", line) for line in prom), \
        [line for line in prom if "x402_access_pass" in line]
