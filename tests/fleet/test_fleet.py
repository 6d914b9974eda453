"""Many Envoys, one ledger (docs/behaviour.md §19, docs/fleet.md): three replicas a, b, c with the
same configuration and `ledger.kind = etcd`, a 3-member etcd cluster, one test facilitator.

Each scenario is what a buyer meets when a load balancer sends their next try to another replica,
or a replica or an etcd member dies under them. Every test checks money against the facilitator's
own ledger: each payment settled at most once, a pass for every settlement, and each buyer charged
exactly what they should pay."""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import siwx
import x402pay as xp
from attacks import STALE_AFTER_SECONDS, Counters, Ledger, json_reason, race
from fleet import HERE_HEADERS, LEDGER_PREFIX
from harness import wait_until
from helpers import PRICES, assert_purchase_ok, decode_jwt, get_challenge, purchase

HERE = list(HERE_HEADERS.items())
TIMEOUT_MS = 2000  # facilitatorTimeoutMs of the suite's configuration (harness.default_plugin_config)


# --------------------------------------------------------------------------- helpers


def pay(replica, buyer, path, headers=()):
    """The buyer's payment for the 402 `replica` gives for `path`."""
    return buyer.pay(get_challenge(replica, path, list(headers)))


def charged(facilitator, payer: str) -> int:
    """Atomic units the facilitator has settled for `payer`, in all."""
    return sum(int(s["amount"]) for s in facilitator.state()["settlements"] if s.get("payer") == payer)


def assert_settled_once(facilitator, tx) -> dict:
    settled = facilitator.settlements_for(tx.message_hash)
    assert len(settled) == 1, f"payment {tx.message_hash[:16]} settled {len(settled)} times: {settled}"
    return settled[0]


def purchase_key(tx) -> str:
    return f"{LEDGER_PREFIX}purchase/{tx.message_hash.lower()}"


def assert_ledger_holds(fleet, tx) -> str:
    """The purchase record is in etcd (not only in one replica's memory); its value."""
    records = fleet.ledger_keys("purchase")
    assert purchase_key(tx) in records, f"no etcd record for {tx.message_hash[:16]}: {sorted(records)[:5]}"
    return records[purchase_key(tx)]


def assert_ledger_unavailable(resp) -> None:
    assert resp.status == 503 and json_reason(resp) == "ledger_unavailable", resp
    assert resp.headers.get("retry-after", "").isdigit(), resp


def send_until_served(replica, path, header, deadline_s: float, headers=(), method="POST"):
    """Send the same payment again while the answer is 409 payment_in_progress, honouring its
    Retry-After, until another answer or the deadline; returns (last answer, 409s seen)."""
    deadline = time.monotonic() + deadline_s
    in_progress = 0
    while True:
        resp = replica.request(method, path, [("PAYMENT-SIGNATURE", header), *headers])
        if resp.status != 409 or time.monotonic() > deadline:
            return resp, in_progress
        assert json_reason(resp) == "payment_in_progress", resp
        in_progress += 1
        time.sleep(min(float(resp.headers.get("retry-after") or 1), 1.0))


def siwx_get(replica, buyer, path):
    """A request signed in with the buyer's wallet, answering the 402 `replica` gives for `path`."""
    required = get_challenge(replica, path, HERE)
    return replica.get(path, HERE + [("SIGN-IN-WITH-X", siwx.sign_in(required, buyer.keypair))])


def payment_id(label: str) -> str:
    return "pay_" + hashlib.sha256(label.encode()).hexdigest()[:32]


def pay_with_id(replica, buyer, path, pid):
    required = get_challenge(replica, path)
    payload, tx = buyer.pay_payload(required)
    extensions = dict(required["extensions"])
    extensions["payment-identifier"] = {**extensions["payment-identifier"], "info": {"required": False, "id": pid}}
    payload["extensions"] = extensions
    return xp.b64_json(payload), tx


# --------------------------------------------------------------------------- scenarios


def test_a_settle_that_times_out_on_a_is_re_sent_to_b_and_c_and_settled_once(fleet, a, b, c, facilitator, buyer):
    path = "/api/data?tier=1h"
    header, tx = pay(a, buyer, path)
    ledger = Ledger(facilitator)
    # A's /settle outlives A's callout timeout, and A's settle deadline (1 s) with it: 503.
    facilitator.fault("settle", "slow", delay_ms=TIMEOUT_MS + 600, count=1)
    first = purchase(a, path, header)
    assert first.status == 503 and json_reason(first) == "settlement_unknown", first
    assert first.headers.get("retry-after"), first
    # The slow settle did land; the buyer, told to come back, lands on b.
    wait_until(lambda: facilitator.settlements_for(tx.message_hash), 5, what="the slow settlement")
    on_b = purchase(b, path, header)
    token, claims = assert_purchase_ok(on_b, buyer, "1h", 3600, "1 hour", transaction_known=False)
    on_c = purchase(c, path, header)
    assert on_c.status == 200 and on_c.headers["access-pass"] == token, on_c
    on_a = purchase(a, path, header)
    assert on_a.status == 200 and on_a.headers["access-pass"] == token, on_a
    assert b.get("/api/data", {"Authorization": f"Bearer {token}"}).status == 200
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert charged(facilitator, buyer.address) == PRICES["1h"]
    assert_ledger_holds(fleet, tx)


def test_the_same_fresh_payment_on_a_b_and_c_at_once_settles_once_and_all_three_get_the_pass(
        fleet, facilitator, new_buyer):
    """20 trials: purchases (tier=5m) and paid requests alternately. The replica whose claim wins
    verifies and settles; the others answer 409 payment_in_progress while it is pending, or the
    same pass once it is settled. Only the winner ever calls the facilitator."""
    replicas = fleet.replicas
    ledger = Ledger(facilitator)
    counts = facilitator.counts()
    expected: dict[str, int] = {}
    buyers = []
    for trial in range(20):
        buyer = new_buyer()
        buyers.append(buyer)
        paid_request = trial % 2 == 1
        path = f"/api/data?trial={trial}" if paid_request else "/api/data?tier=5m"
        method = "GET" if paid_request else "POST"
        header, tx = pay(replicas[trial % 3], buyer, path)
        answers = race(3, lambda i: replicas[i].request(method, path, [("PAYMENT-SIGNATURE", header)]))
        for i, resp in enumerate(answers):
            if resp.status == 409:
                assert json_reason(resp) == "payment_in_progress" and resp.headers.get("retry-after"), resp
                answers[i], _ = send_until_served(replicas[i], path, header, 10, method=method)
        assert [r.status for r in answers] == [200, 200, 200], (trial, answers)
        tokens = {r.headers["access-pass"] for r in answers}
        assert len(tokens) == 1, (trial, tokens)
        _, claims, _ = decode_jwt(tokens.pop())
        assert claims["payer"] == buyer.address and claims["tier"] == "5m", claims
        expected[tx.message_hash] = PRICES["5m"]
    ledger.assert_charged(expected)
    after = facilitator.counts()
    assert after["verify"] - counts["verify"] == 20 and after["settle"] - counts["settle"] == 20, (counts, after)
    assert all(charged(facilitator, b.address) == PRICES["5m"] for b in buyers)


def test_a_200_lost_on_a_is_re_sent_to_b_and_gets_the_same_pass(fleet, a, b, facilitator, buyer):
    path = "/api/data?tier=1h"
    header, tx = pay(a, buyer, path)
    ledger = Ledger(facilitator)
    lost = purchase(a, path, header)  # the answer that never reached the buyer
    assert lost.status == 200, lost
    again = purchase(b, path, header)
    token, _ = assert_purchase_ok(again, buyer, "1h", 3600, "1 hour")
    assert token == lost.headers["access-pass"] and again.json() == lost.json()
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})


def test_a_buyer_who_hangs_up_on_a_while_it_settles_gets_the_pass_from_b(fleet, a, b, facilitator, buyer):
    """The connection to a drops while a's /settle is in flight (the settlement lands, a's stream is
    gone). The same payment on b: in progress while a's record is pending, then b takes it over,
    hears the settlement is already there, and hands out the pass. Settled once."""
    path = "/api/data?tier=1h"
    header, tx = pay(a, buyer, path)
    ledger = Ledger(facilitator)
    settles = facilitator.counts()["settle"]
    facilitator.fault("settle", "slow", delay_ms=1200, count=1)
    request = (f"POST {path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\nPAYMENT-SIGNATURE: {header}\r\n"
               "Content-Length: 0\r\n\r\n").encode()
    with socket.create_connection((a.host, a.port), timeout=5) as sock:
        sock.sendall(request)
        wait_until(lambda: facilitator.counts()["settle"] > settles, 5, what="a's /settle")
    wait_until(lambda: facilitator.settlements_for(tx.message_hash), 5, what="the settlement")
    resp, in_progress = send_until_served(b, path, header, STALE_AFTER_SECONDS + 10)
    token, _ = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour", transaction_known=False)
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert purchase(a, path, header).headers.get("access-pass") == token


def test_a_killed_between_verify_and_settle_b_takes_the_payment_over_and_a_restarted_replays_it(
        fleet, a, b, facilitator, buyer):
    path = "/api/data?tier=1h"
    header, tx = pay(a, buyer, path)
    ledger = Ledger(facilitator)
    verifies = facilitator.counts()["verify"]
    facilitator.fault("verify", "slow", delay_ms=1500, count=1)
    outcome: list = []
    sender = threading.Thread(target=lambda: outcome.append(_attempt(a, path, header)), daemon=True)
    sender.start()
    wait_until(lambda: facilitator.counts()["verify"] > verifies, 5, what="a's /verify")
    a.kill()  # /verify asked, /settle never sent
    sender.join(timeout=10)
    assert outcome and outcome[0] is None, f"a answered although it was killed: {outcome}"
    ledger.assert_nothing_charged()
    # a's claim is pending in etcd: b says so until it is stale, then takes it over.
    resp, in_progress = send_until_served(b, path, header, STALE_AFTER_SECONDS + 10)
    token, _ = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    assert in_progress >= 1, "b never saw a's pending claim"
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    a.restart()
    replay = purchase(a, path, header)
    assert replay.status == 200 and replay.headers["access-pass"] == token, replay
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})


def test_a_killed_while_its_settle_is_in_flight_the_money_moved_and_b_hands_out_the_pass(
        fleet, a, b, facilitator, buyer):
    """The crash that matters most: /settle sent, the settlement lands, a dies before hearing it.
    Its claim is pending in etcd; b says so until it is stale, then takes the payment over, hears
    the settlement is already there and hands out the pass. Settled once."""
    path = "/api/data?tier=1h"
    header, tx = pay(a, buyer, path)
    ledger = Ledger(facilitator)
    settles = facilitator.counts()["settle"]
    facilitator.fault("settle", "slow", delay_ms=1200, count=1)
    outcome: list = []
    sender = threading.Thread(target=lambda: outcome.append(_attempt(a, path, header)), daemon=True)
    sender.start()
    wait_until(lambda: facilitator.counts()["settle"] > settles, 5, what="a's /settle")
    a.kill()
    sender.join(timeout=10)
    assert outcome and outcome[0] is None, f"a answered although it was killed: {outcome}"
    wait_until(lambda: facilitator.settlements_for(tx.message_hash), 5, what="the settlement")
    resp, in_progress = send_until_served(b, path, header, STALE_AFTER_SECONDS + 10)
    token, _ = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour", transaction_known=False)
    assert in_progress >= 1, "b never saw a's pending claim"
    a.restart()
    replay = purchase(a, path, header)
    assert replay.status == 200 and replay.headers["access-pass"] == token, replay
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert charged(facilitator, buyer.address) == PRICES["1h"]


def _attempt(replica, path, header):
    try:
        return purchase(replica, path, header)
    except OSError:
        return None


def test_a_killed_between_its_503_and_the_re_send_b_recovers_the_pass_and_a_restarted_replays_it(
        fleet, a, b, facilitator, buyer):
    path = "/api/data?tier=1h"
    header, tx = pay(a, buyer, path)
    ledger = Ledger(facilitator)
    facilitator.fault("settle", "truncated")  # settled, every answer cut, until cleared
    try:
        first = purchase(a, path, header)
    finally:
        facilitator.clear_faults()
    assert first.status == 503 and json_reason(first) == "settlement_unknown", first
    assert_settled_once(facilitator, tx)
    a.kill()
    on_b = purchase(b, path, header)
    token, _ = assert_purchase_ok(on_b, buyer, "1h", 3600, "1 hour", transaction_known=False)
    a.restart()
    on_a = purchase(a, path, header)
    assert on_a.status == 200 and on_a.headers["access-pass"] == token, on_a
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    assert charged(facilitator, buyer.address) == PRICES["1h"]


def test_a_buyer_who_paid_on_a_signs_in_on_b_and_c_and_on_b_after_its_restart_without_paying_again(
        fleet, a, b, c, facilitator, upstream, buyer):
    path = "/api/report"
    header, tx = pay(a, buyer, path, HERE)
    ledger = Ledger(facilitator)
    paid = a.get(path, HERE + [("PAYMENT-SIGNATURE", header)])
    assert paid.status == 200 and paid.headers.get("access-pass"), paid
    _, claims, _ = decode_jwt(paid.headers["access-pass"])
    assert fleet.ledger_keys("entitlement").get(f"{LEDGER_PREFIX}entitlement/{buyer.address}"), \
        "no entitlement in etcd"
    counters = {r.name: Counters(r) for r in (b, c)}
    for replica, page in ((b, 1), (c, 2), (b, 3)):
        if page == 3:
            replica.restart()  # nothing of the buyer in its memory now
            counters[replica.name] = Counters(replica)
        resp = siwx_get(replica, buyer, f"{path}?page={page}")
        assert resp.status == 200, (replica.name, resp)
        echo = resp.json()
        assert echo["upstream"] == "demo" and echo["path"] == f"{path}?page={page}", echo
        seen = dict((k, v) for k, v in echo["headers"])
        assert seen.get("x-access-pass-payer") == buyer.address and seen.get("x-access-pass-tier") == "5m", echo
        assert seen.get("x-access-pass-expires") == str(claims["exp"]), echo
        assert counters[replica.name].delta("siwx_accepted") >= 1
    ledger.assert_charged({tx.message_hash: PRICES["5m"]})
    assert charged(facilitator, buyer.address) == PRICES["5m"]


def test_a_payment_id_is_answered_once_across_replicas(fleet, a, b, c, facilitator, upstream, buyer):
    path = "/api/data?report=weekly"
    pid = payment_id(buyer.label)
    first_header, first_tx = pay_with_id(a, buyer, path, pid)
    second_header, second_tx = pay_with_id(b, buyer, path, pid)
    ledger = Ledger(facilitator)
    ids_before = set(fleet.ledger_keys("payment-id"))
    first = a.get(path, [("PAYMENT-SIGNATURE", first_header)])
    assert first.status == 200, first
    # The id is bound in etcd (under a key derived from it), where b and c look it up.
    assert len(set(fleet.ledger_keys("payment-id")) - ids_before) == 1, "no payment id in etcd"
    # Another payment with the same id for the same request, on b: the first one's outcome, never settled.
    second = b.get(path, [("PAYMENT-SIGNATURE", second_header)])
    assert second.status == 200, second
    assert second.headers["access-pass"] == first.headers["access-pass"]
    assert second.headers["payment-response"] == first.headers["payment-response"]
    # The same id for another request, on c: a conflict.
    third_header, _ = pay_with_id(c, buyer, "/api/data?report=daily", pid)
    third = c.get("/api/data?report=daily", [("PAYMENT-SIGNATURE", third_header)])
    assert third.status == 409 and json_reason(third) == "payment_identifier_conflict", third
    ledger.assert_charged({first_tx.message_hash: PRICES["5m"]})
    assert facilitator.settlements_for(second_tx.message_hash) == []


def test_two_payments_with_one_id_on_a_and_b_at_once_settle_once(fleet, a, b, facilitator, new_buyer):
    ledger = Ledger(facilitator)
    expected = {}
    for trial in range(5):
        buyer = new_buyer()
        path = "/api/data?tier=1h"
        pid = payment_id(f"{buyer.label}#{trial}")
        headers = [pay_with_id(r, buyer, path, pid) for r in (a, b)]
        facilitator.fault("verify", "slow", delay_ms=300, count=1)
        answers = race(2, lambda i: purchase((a, b)[i], path, headers[i][0]))
        facilitator.clear_faults()
        for i, resp in enumerate(answers):
            if resp.status == 409:
                assert json_reason(resp) == "payment_in_progress", resp
                answers[i], _ = send_until_served((a, b)[i], path, headers[i][0], 10)
        assert [r.status for r in answers] == [200, 200], answers
        assert answers[0].headers["access-pass"] == answers[1].headers["access-pass"]
        settled = [tx for _, tx in headers if facilitator.settlements_for(tx.message_hash)]
        assert len(settled) == 1, f"trial {trial}: {len(settled)} of the two payments settled"
        expected[settled[0].message_hash] = PRICES["1h"]
        assert charged(facilitator, buyer.address) == PRICES["1h"]
    ledger.assert_charged(expected)


def test_a_payment_id_whose_first_payment_died_with_its_replica_is_served_by_the_next_one_once(
        fleet, a, b, facilitator, buyer):
    """a is killed after /verify of the first payment carrying an id; the buyer's client sends a
    new payment with the same id to b: in progress while the first one's claim is pending, then b
    sells it. The first payment, sent again, gets the same pass and is never settled."""
    path = "/api/data?tier=1h"
    pid = payment_id(buyer.label)
    first_header, first_tx = pay_with_id(a, buyer, path, pid)
    second_header, second_tx = pay_with_id(b, buyer, path, pid)
    ledger = Ledger(facilitator)
    verifies = facilitator.counts()["verify"]
    facilitator.fault("verify", "slow", delay_ms=1500, count=1)
    outcome: list = []
    sender = threading.Thread(target=lambda: outcome.append(_attempt(a, path, first_header)), daemon=True)
    sender.start()
    wait_until(lambda: facilitator.counts()["verify"] > verifies, 5, what="a's /verify")
    a.kill()
    sender.join(timeout=10)
    assert outcome and outcome[0] is None, outcome
    resp, in_progress = send_until_served(b, path, second_header, STALE_AFTER_SECONDS + 10)
    token, _ = assert_purchase_ok(resp, buyer, "1h", 3600, "1 hour")
    assert in_progress >= 1, "b never saw the first payment's pending claim"
    again = purchase(b, path, first_header)
    assert again.status == 200 and again.headers["access-pass"] == token, again
    ledger.assert_charged({second_tx.message_hash: PRICES["1h"]})
    assert facilitator.settlements_for(first_tx.message_hash) == []


def test_one_etcd_member_killed_mid_run_changes_nothing_for_buyers(fleet, facilitator, new_buyer):
    """Purchases, paid requests and sign-ins go round the replicas while an etcd member (not the
    leader: see test_the_leader_killed_... for that one) is killed: every answer is what it would
    have been with all three members."""
    replicas = fleet.replicas
    ledger = Ledger(facilitator)
    expected = {}
    victim = fleet.follower()
    answers = []
    for i in range(18):
        if i == 6:
            fleet.kill_member(victim)
        replica = replicas[i % 3]
        buyer = new_buyer()
        path = f"/api/data?n={i}"
        header, tx = pay(replica, buyer, path, HERE)
        resp = replica.get(path, HERE + [("PAYMENT-SIGNATURE", header)])
        answers.append((i, replica.name, resp.status, json_reason(resp)))
        expected[tx.message_hash] = PRICES["5m"]
        back = siwx_get(replicas[(i + 1) % 3], buyer, path)
        answers.append((i, replicas[(i + 1) % 3].name, back.status, json_reason(back)))
    assert all(status == 200 for _, _, status, _ in answers), [x for x in answers if x[2] != 200]
    ledger.assert_charged(expected)


def test_the_leader_killed_costs_at_most_a_refusal_before_verify_and_nothing_is_charged_twice(
        fleet, facilitator, new_buyer):
    """The leader's death needs an election (about a second here): calls in that window run out of
    time, so a purchase then is refused before /verify (503 ledger_unavailable), never charged;
    sent again, it gets its pass."""
    replicas = fleet.replicas
    ledger = Ledger(facilitator)
    expected, refused = {}, []
    leader = fleet.leader()
    for i in range(12):
        if i == 3:
            fleet.kill_member(leader)
        replica = replicas[i % 3]
        buyer = new_buyer()
        header, tx = pay(replica, buyer, "/api/data?tier=5m")
        verifies = facilitator.counts()["verify"]
        resp = purchase(replica, "/api/data?tier=5m", header)
        if resp.status == 503:
            assert_ledger_unavailable(resp)
            assert facilitator.counts()["verify"] == verifies, "refused after /verify"
            refused.append((buyer, header, tx))
        else:
            assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")
        expected[tx.message_hash] = PRICES["5m"]
    for buyer, header, tx in refused:
        resp, _ = send_until_served(replicas[0], "/api/data?tier=5m", header, 10)
        assert_purchase_ok(resp, buyer, "5m", 300, "5 minutes")
    ledger.assert_charged(expected)


def test_quorum_lost_while_a_settles_the_buyer_gets_the_pass_and_b_and_c_know_it_once_quorum_is_back(
        fleet, a, b, c, facilitator, buyer):
    """Lose nothing: the money moved while etcd lost its quorum. a still hands out the pass (kept
    locally, counted in ledger_errors) and writes the record and the entitlement to etcd once it
    is back; then b replays the same pass and c honours a sign-in."""
    path = "/api/data?tier=1h"
    header, tx = pay(a, buyer, path, HERE)
    ledger = Ledger(facilitator)
    counters = Counters(a)
    settles = facilitator.counts()["settle"]
    facilitator.fault("settle", "slow", delay_ms=1500, count=1)
    outcome: list = []
    sender = threading.Thread(target=lambda: outcome.append(purchase(a, path, header, HERE)), daemon=True)
    sender.start()
    wait_until(lambda: facilitator.counts()["settle"] > settles, 5, what="a's /settle")
    survivor = fleet.leader()
    for i in range(3):
        if i != survivor:
            fleet.kill_member(i)
    sender.join(timeout=20)
    assert outcome, "a never answered"
    token, _ = assert_purchase_ok(outcome[0], buyer, "1h", 3600, "1 hour")
    assert counters.delta("ledger_errors") >= 1
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})
    fleet.start_all_members()
    # Until a's retry (once a second) has written the settlement, etcd holds a's pending claim:
    # b answers 409 payment_in_progress meanwhile, then the pass a sold.
    replay, _ = send_until_served(b, path, header, 15)
    assert replay.status == 200 and replay.headers["access-pass"] == token, replay
    wait_until(lambda: siwx_get(c, buyer, "/api/data?back=1").status == 200, 15,
               what="c to honour the entitlement a wrote later")
    ledger.assert_charged({tx.message_hash: PRICES["1h"]})


def test_quorum_lost_refuses_purchases_before_verify_keeps_passes_and_quorum_back_loses_nothing(
        fleet, a, b, c, facilitator, new_buyer):
    # Before: a pass bought on a, an entitlement for its payer.
    holder = new_buyer()
    header0, tx0 = pay(a, holder, "/api/data?tier=1h", HERE)
    first = purchase(a, "/api/data?tier=1h", header0, HERE)
    token, _ = assert_purchase_ok(first, holder, "1h", 3600, "1 hour")

    survivor = fleet.leader()
    for i in range(3):
        if i != survivor:
            fleet.kill_member(i)
    ledger = Ledger(facilitator)
    refused = []
    for replica in fleet.replicas:
        buyer = new_buyer()
        for path, method in (("/api/data?tier=5m", "POST"), ("/api/data?paid=1", "GET")):
            header, tx = pay(replica, buyer, path)
            started = time.monotonic()
            resp = replica.request(method, path, [("PAYMENT-SIGNATURE", header)])
            assert_ledger_unavailable(resp)
            assert time.monotonic() - started < 5, "a refusal should come within the ledger's timeout"
            refused.append((replica, buyer, path, method, header, tx))
        # The pass bought before keeps working on every replica: valid passes never touch the ledger.
        assert replica.get("/api/data", {"Authorization": f"Bearer {token}"}).status == 200
    # A sign-in no replica has cached cannot be judged: 503, never a 402 (that would charge again).
    signin = siwx_get(c, holder, "/api/data?signin=1")
    assert_ledger_unavailable(signin)
    ledger.assert_nothing_charged(no_callout=True)

    fleet.start_all_members()
    # Quorum back: the refused payments, sent again, are sold; the old pass is still known everywhere.
    expected = {}
    for replica, buyer, path, method, header, tx in refused:
        resp = replica.request(method, path, [("PAYMENT-SIGNATURE", header)])
        assert resp.status == 200 and resp.headers.get("access-pass"), resp
        expected[tx.message_hash] = PRICES["5m"]
    ledger.assert_charged(expected)
    replay = purchase(c, "/api/data?tier=1h", header0)
    assert replay.status == 200 and replay.headers["access-pass"] == token, replay
    assert siwx_get(c, holder, "/api/data?signin=2").status == 200
    assert_settled_once(facilitator, tx0)
    assert charged(facilitator, holder.address) == PRICES["1h"]
