"""Replay and concurrency of purchases (SPEC §6.5) and passes expiring on time (§7)."""

import threading
import time

import pytest

from helpers import assert_challenge, assert_cors, assert_purchase_ok, get_challenge, purchase


def test_the_same_payment_twice_gets_the_same_pass_and_settles_once(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    before = facilitator.counts()
    first = purchase(envoy, "/api/data?tier=1h", header)
    token, _ = assert_purchase_ok(first, buyer, "1h", 3600, "1 hour")
    second = purchase(envoy, "/api/data?tier=1h", header)
    assert second.status == 200, second
    assert second.headers["access-pass"] == token
    assert second.json() == first.json()
    after = facilitator.counts()
    assert after["settleSuccess"] == before["settleSuccess"] + 1, after
    assert len(facilitator.settlements_for(tx.message_hash)) == 1


def test_the_same_payment_on_8_parallel_connections_settles_exactly_once(envoy, facilitator, buyer):
    required = get_challenge(envoy, "/api/data?tier=1h")
    header, tx = buyer.pay(required)
    # A slow verify keeps the first purchase in flight while the others arrive.
    facilitator.fault("verify", "slow", delay_ms=800, count=1)
    before = facilitator.counts()
    barrier = threading.Barrier(8, timeout=10)
    results = [None] * 8

    def worker(i):
        barrier.wait()
        results[i] = purchase(envoy, "/api/data?tier=1h", header)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(r is not None for r in results), results
    ok = [r for r in results if r.status == 200]
    busy = [r for r in results if r.status == 409]
    assert len(ok) + len(busy) == 8, [r for r in results if r.status not in (200, 409)]
    assert ok, "no purchase succeeded"
    assert busy, "no request overlapped the one in flight (the verify was slowed down to 800 ms)"
    tokens = {r.headers["access-pass"] for r in ok}
    assert len(tokens) == 1, tokens
    for r in busy:
        assert r.headers.get("retry-after") == "1", r
        assert r.json() == {"error": "Payment in progress", "reason": "payment_in_progress"}, r
        assert_cors(r)
    retry = purchase(envoy, "/api/data?tier=1h", header)
    assert retry.status == 200 and retry.headers["access-pass"] in tokens, retry
    after = facilitator.counts()
    assert after["settleSuccess"] == before["settleSuccess"] + 1, after
    assert after["verify"] == before["verify"] + 1, after
    assert len(facilitator.settlements_for(tx.message_hash)) == 1


# --------------------------------------------------------------------------- short windows

SHORT = dict(tiers={"1m": "0.01"}, ratePerHour="0.50", minDurationSeconds=2, replayWindowSeconds=2)


@pytest.fixture(scope="module")
def short_envoy(module_envoys):
    """tiers {1m}, custom durations from 2 s, a 2 s replay window."""
    return module_envoys.start("short", **SHORT)


def test_after_the_replay_window_the_same_payment_is_a_duplicate(short_envoy, facilitator, buyer):
    required = get_challenge(short_envoy, "/api/data")
    assert required["accepts"][0]["amount"] == "10000"
    header, _ = buyer.pay(required)
    first = purchase(short_envoy, "/api/data?tier=1m", header)
    assert_purchase_ok(first, buyer, "1m", 60, "1 minute")
    again = purchase(short_envoy, "/api/data?tier=1m", header)
    assert again.status == 200 and again.headers["access-pass"] == first.headers["access-pass"], again
    # As a paid request (naming no pass), the same payment is forwarded with the same pass.
    served = purchase(short_envoy, "/api/data", header)
    assert served.status == 200 and served.json()["upstream"] == "demo", served
    assert served.headers["access-pass"] == first.headers["access-pass"], served
    time.sleep(3.2)
    before = facilitator.counts()
    for path in ("/api/data?tier=1m", "/api/data"):
        late = purchase(short_envoy, path, header)
        assert late.status == 402, late
        assert_challenge(late)
        assert late.json().get("reason") == "duplicate_payment", late
    assert facilitator.counts()["settleSuccess"] == before["settleSuccess"]


def test_a_3_second_pass_works_then_expires_on_time(short_envoy, buyer):
    required = get_challenge(short_envoy, "/api/data?duration=3")
    # 0.50/h for 3 s = 416.67 atomic, rounded to a multiple of 100 (4 USD decimals): 400.
    assert required["accepts"][0]["amount"] == "400"
    assert required["resource"]["description"] == "Access pass: 3 seconds"
    header, _ = buyer.pay(required)
    token, claims = assert_purchase_ok(purchase(short_envoy, "/api/data?duration=3", header),
                                       buyer, "custom", 3, "3 seconds")
    used = short_envoy.get("/api/data", {"Authorization": f"Bearer {token}"})
    assert used.status == 200, used
    # Valid while now <= exp (whole seconds); then the challenge, cache or not.
    deadline = claims["exp"] + 1.2
    while time.time() < deadline:
        time.sleep(min(0.25, max(0.0, deadline - time.time())))
    expired = short_envoy.get("/api/data", {"Authorization": f"Bearer {token}"})
    assert expired.status == 402, expired
    assert_challenge(expired)
