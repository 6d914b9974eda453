"""The shared ledger's operations (src/etcd) against a real 3-member etcd cluster, run by the
executor over HTTP with exactly the bodies the filter will send (docs/fleet.md).

Each test uses payments, payers and ids of its own; the executor runs with the default policy
(replay window 600 s, a pending is stale after 25 s) unless a test says otherwise."""

from __future__ import annotations

import json
import secrets
import time

WINDOW, SPENT_RETENTION, UNKNOWN_RETENTION, STALE = 600, 3_600, 86_400, 25
NETWORK = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"


def payment() -> str:
    return secrets.token_hex(32)


def payer() -> str:
    return "Payer" + secrets.token_hex(16)


def issued_pass(now: int) -> dict:
    claims = {"sub": "x402-access-pass", "tier": "1h", "duration": 3600, "iat": now, "exp": now + 3600,
              "payer": "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse", "network": NETWORK, "iss": "x402-access-pass"}
    return {"token": "eyJhbGciOiJIUzI1NiJ9.e30.sig-" + secrets.token_hex(4), "claims": claims}


def lives(granted_ttl: str, life: int, late: int = 0) -> bool:
    """A record's lease, granted `late` seconds after `now` here, is right for a record living `life`
    seconds from then: never shorter, and longer by less than its slack (src/etcd/memory.rs:
    shared leases end at the end of a span as long as the record's life, at most a minute)."""
    ttl = int(granted_ttl)
    return life - late - 1 <= ttl < life + min(max(life, 1), 60)


def wait_until(check, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def test_concurrent_claims_of_a_fresh_payment_make_exactly_one_fresh(cluster):
    for _ in range(8):
        # Three replicas at once, each through a different member.
        results = cluster.ledger("race-claim", payment(), "3")["results"]
        outcomes = sorted(r["result"] for r in results)
        assert outcomes == ["fresh", "in_progress", "in_progress"], results


def test_states_and_leases_round_trip(cluster):
    key = payment()
    assert cluster.ledger("claim", key)["result"] == "fresh"
    record = cluster.ledger("record", key)
    now = int(time.time())
    assert list(record["result"]) == ["pending"] and record["result"]["pending"]["pass"] is None
    assert abs(record["result"]["pending"]["since"] - now) <= 2
    assert lives(record["granted_ttl"], STALE), record
    assert cluster.ledger("claim", key, first=1)["result"] == "in_progress"

    # The settlement is left unknown: the next claim, on another member, recovers its pass.
    left = issued_pass(now)
    assert cluster.ledger("put", key, json.dumps({"unknown": {"since": now - 60, "pass": left}}))["result"] == "done"
    record = cluster.ledger("record", key, first=2)
    assert record["result"] == {"unknown": {"since": now - 60, "pass": left}}
    assert lives(record["granted_ttl"], UNKNOWN_RETENTION - 60), record  # `now` here and there may be a second apart
    recovered = cluster.ledger("claim", key, first=2)
    assert (recovered["result"], recovered["token"]) == ("recover", left["token"])
    record = cluster.ledger("record", key)
    assert record["result"]["pending"]["pass"] == left
    assert lives(record["granted_ttl"], UNKNOWN_RETENTION), record

    receipt = {"token": left["token"], "payment_response": "eyJzdWNjZXNzIjp0cnVlfQ==", "body": "{}"}
    settled = {"settled": {"at": now, "receipt": receipt}}
    assert cluster.ledger("put", key, json.dumps(settled))["result"] == "done"
    record = cluster.ledger("record", key, first=1)
    assert record["result"] == settled
    assert lives(record["granted_ttl"], WINDOW + SPENT_RETENTION), record
    replay = cluster.ledger("claim", key, first=1)
    assert (replay["result"], replay["token"]) == ("replay", receipt["token"])

    assert cluster.ledger("forget", key)["result"] == "done"
    assert cluster.ledger("record", key)["result"] is None
    assert cluster.ledger("claim", key, first=2)["result"] == "fresh"


def test_a_settlement_past_its_window_is_a_duplicate_and_a_stale_pending_is_taken_over(cluster):
    key = payment()
    now = int(time.time())
    settled = {"settled": {"at": now - WINDOW - 5, "receipt": {"token": "t", "payment_response": "p", "body": "{}"}}}
    cluster.ledger("put", key, json.dumps(settled))
    lease = cluster.ledger("record", key)["lease"]
    assert cluster.ledger("claim", key)["result"] == "duplicate"
    record = cluster.ledger("record", key)
    assert record["result"] == {"spent": {"at": now - WINDOW - 5}}
    assert record["lease"] == lease, "turning spent does not change its life: the same lease"

    stale = payment()
    cluster.ledger("put", stale, json.dumps({"pending": {"since": now - STALE, "pass": None}}))
    assert cluster.ledger("claim", stale, first=1)["result"] == "fresh"
    assert cluster.ledger("claim", stale, first=2)["result"] == "in_progress"


def test_a_record_expires_with_its_lease(cluster):
    key = payment()
    # Spent 3 s before the end of its retention: its lease has 3 s to run, and less than 3 s more.
    at = int(time.time()) - WINDOW - SPENT_RETENTION + 3
    cluster.ledger("put", key, json.dumps({"spent": {"at": at}}))
    assert int(cluster.ledger("record", key)["granted_ttl"]) <= 5
    assert cluster.ledger("claim", key)["result"] == "duplicate"
    gone = wait_until(lambda: cluster.ledger("record", key)["result"] is None, timeout=10)
    assert gone, "the record outlived its lease"
    assert cluster.ledger("claim", key)["result"] == "fresh"


def test_entitlement_latest_exp_wins_under_concurrent_puts(cluster):
    now = int(time.time())
    for _ in range(4):
        who = payer()
        exps = [now + s for s in (3_600, 86_400, 600, 7_200, 1_800, 43_200)]
        secrets.SystemRandom().shuffle(exps)
        results = cluster.ledger("race-entitle", who, NETWORK, ",".join(map(str, exps)))["results"]
        assert all(r.get("result") in ("stored", "kept") for r in results), results
        held = cluster.ledger("entitlement", who, first=2)["result"]
        # The executor issues them at its own clock.
        assert abs(held.pop("iat") - now) <= 2
        assert held == {"tier": "1h", "exp": max(exps), "network": NETWORK}
    assert cluster.ledger("entitlement", payer())["result"] is None
    # Its lease ends with it (plus the leeway given).
    who = payer()
    assert cluster.ledger("entitle", who, "1h", str(now), str(now + 2), NETWORK, "1")["result"] == "stored"
    assert cluster.ledger("entitlement", who)["result"]["exp"] == now + 2
    assert wait_until(lambda: cluster.ledger("entitlement", who)["result"] is None, timeout=10)


def race_settle_payment(who: str, i: int) -> str:
    """The payment hash the executor's `race-settle` uses for its i-th settlement to `who`."""
    import hashlib
    return f"{i:02x}" + hashlib.sha256(who.encode()).hexdigest()[2:]


def test_a_settlement_and_its_entitlement_commit_together_and_the_latest_expiring_wins(cluster):
    """The settlement and the payer's entitlement in one transaction over two keys (src/etcd/settle.rs),
    as etcd 3.4 answers it: both written under leases as long as each lives, and concurrent settlements
    to one payer through three members each written, the latest-expiring entitlement kept."""
    now = int(time.time())
    key, who = payment(), payer()
    assert cluster.ledger("claim", key)["result"] == "fresh"
    receipt = {"token": "t", "payment_response": "eyJzdWNjZXNzIjp0cnVlfQ==", "body": "{}"}
    settled = {"settled": {"at": now, "receipt": receipt}}
    assert cluster.ledger("settle", key, json.dumps(settled), who, "1h", str(now), str(now + 3_600), NETWORK,
                          first=1)["result"] == "done"
    record = cluster.ledger("record", key, first=2)
    assert record["result"] == settled
    assert lives(record["granted_ttl"], WINDOW + SPENT_RETENTION), record
    held = cluster.ledger("entitlement", who)["result"]
    assert held == {"tier": "1h", "iat": now, "exp": now + 3_600, "network": NETWORK}
    # An earlier pass with another settlement: the settlement is written, the entitlement kept.
    other = payment()
    assert cluster.ledger("settle", other, json.dumps(settled), who, "1h", str(now), str(now + 600), NETWORK,
                          first=2)["result"] == "done"
    assert cluster.ledger("record", other)["result"] == settled
    assert cluster.ledger("entitlement", who, first=1)["result"]["exp"] == now + 3_600
    for _ in range(3):
        who = payer()
        exps = [now + s for s in (3_600, 86_400, 600, 7_200, 1_800, 43_200)]
        secrets.SystemRandom().shuffle(exps)
        results = cluster.ledger("race-settle", who, NETWORK, ",".join(map(str, exps)))["results"]
        assert all(r.get("result") == "done" for r in results), results
        held = cluster.ledger("entitlement", who, first=2)["result"]
        assert (held["exp"], held["network"]) == (max(exps), NETWORK), held
        for i in range(len(exps)):
            assert list(cluster.ledger("record", race_settle_payment(who, i))["result"]) == ["settled"]


def test_a_payment_id_is_bound_once_and_let_go_only_by_its_payment(cluster):
    ident = "pay_" + secrets.token_hex(12)
    first, second, request = payment(), payment(), payment()
    assert cluster.ledger("bind", ident, first, request)["result"] == "bound"
    assert cluster.ledger("bind", ident, first, request, first=1)["result"] == "bound"
    assert cluster.ledger("bind", ident, second, request, first=2)["result"] == {"taken": first, "stale": False}
    assert cluster.ledger("bind", ident, second, payment())["result"] == "conflict"
    assert cluster.ledger("release", ident, second)["result"] == "done"
    assert cluster.ledger("bind", ident, second, request)["result"] == {"taken": first, "stale": False}
    assert cluster.ledger("release", ident, first, first=1)["result"] == "done"
    assert cluster.ledger("bind", ident, second, request, first=2)["result"] == "bound"


def test_one_member_down_everything_still_works(cluster):
    down = cluster.members[0]
    down.stop()
    try:
        # When the member was the leader, the others elect a new one first (the ledger is
        # unavailable for that long: an election timeout and a round of votes).
        cluster.wait_healthy(cluster.members[1:])
        key = payment()
        # The executor starts at the dead member and moves on, as a health-checked cluster does.
        assert cluster.ledger("claim", key, first=0)["result"] == "fresh"
        assert cluster.ledger("claim", key, first=1)["result"] == "in_progress"
        results = cluster.ledger("race-claim", payment(), "3")["results"]
        assert sorted(r["result"] for r in results) == ["fresh", "in_progress", "in_progress"]
        who = payer()
        now = int(time.time())
        assert cluster.ledger("entitle", who, "1h", str(now), str(now + 60), NETWORK)["result"] == "stored"
        assert cluster.ledger("entitlement", who, first=2)["result"]["exp"] == now + 60
        assert cluster.ledger("forget", key)["result"] == "done"
    finally:
        down.start()
        cluster.wait_healthy(cluster.members)


def test_quorum_lost_is_unavailable_within_the_timeout_then_back(cluster):
    key, who = payment(), payer()
    assert cluster.ledger("claim", key)["result"] == "fresh"
    down = cluster.members[1:]
    for m in down:
        m.stop()
    try:
        now = int(time.time())
        for args in (("claim", payment()), ("claim", key), ("entitlement", who), ("forget", key),
                     ("put", key, json.dumps({"spent": {"at": now}})),
                     ("entitle", who, "1h", str(now), str(now + 60), NETWORK)):
            started = time.monotonic()
            answer = cluster.ledger(*args, timeout_ms=1000)
            took = time.monotonic() - started
            assert "unavailable" in answer, (args, answer)
            # The per-call timeout ends it; the margin is process start and scheduling on a busy machine.
            assert answer["ms"] <= 1_300 and took < 3, (args, answer, took)
    finally:
        for m in down:
            m.start()
        cluster.wait_healthy(cluster.members)
    # Quorum is back: the pending survived, new work goes through.
    assert cluster.ledger("claim", key, first=2)["result"] == "in_progress"
    assert cluster.ledger("claim", payment(), first=1)["result"] == "fresh"
