#!/usr/bin/env python3
"""Mixed-load generator for the access-pass filter (used by tests/integration/test_soak.py).

Threads with keep-alive HTTP/1.1 connections (http.client) send a weighted mix of requests to one
Envoy listener, or to several replicas as a load balancer would (`targets`: each request goes to a
replica in rotation picked at random, so a payment's retry or replay usually lands on another one;
`take_out`/`put_back` change the rotation), bounded in time and in count:

  pass         GET with a valid pass (pre-minted with the secret, or bought during the run)  -> 200
  challenge    GET without a pass, priced for various tiers and durations                    -> 402
  bad_token    GET with an expired, forged or garbled pass                                   -> 402
  bad_payment  POST with a PAYMENT-SIGNATURE that is garbage or pays the wrong amount        -> 402
  preflight    CORS preflight                                                                -> 204
  public       GET on a bypassed path                                                        -> 200
  purchase     GET the 402, sign a real payment for it (x402pay), POST it                    -> 200
               (502/503 while a facilitator fault is injected: the same payment is retried
               later until it gets its pass; a retry may also meet 409. A 402 with a
               facilitator's refusal before broadcast, REFUSALS, charged nothing and kept
               nothing: the same payment is sent again later too, and must then get its pass)
  replay       the same payment again: the same pass within replayWindowSeconds, then 402
               duplicate_payment

Every purchase is checked on the spot: the pass lasts exactly what its price buys. Everything else
is counted: a status histogram per action, latencies, 5xx answers and refusals with their time (to
match them against fault windows), transport errors, and every payment with every answer it got and
its final outcome.

Standalone, against a running Envoy (e.g. `make run`, no faults):
  .venv/bin/python tools/soak.py --port 10000 --seconds 30 --secret "$ACCESS_PASS_SECRET"
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import hmac
import http.client
import itertools
import json
import pathlib
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import x402pay as xp  # noqa: E402

PRICES = {"5m": 50_000, "1h": 500_000, "24h": 2_000_000}
TIER_SECONDS = {"5m": 300, "1h": 3600, "24h": 86400}
RATE_ATOMIC = 500_000

WEIGHTS = {"pass": 50, "challenge": 16, "bad_token": 8, "bad_payment": 6, "preflight": 4, "public": 4,
           "purchase": 8, "replay": 4}
EXPECTED = {"pass": {200}, "challenge": {402}, "bad_token": {402}, "bad_payment": {402}, "preflight": {204},
            "public": {200}, "purchase": {200}, "retry": {200, 409}, "replay": {200, 402}}
CHALLENGE_PATHS = ["/api/data", "/api/data?tier=1h", "/api/data?tier=24h", "/api/data?duration=7200",
                   "/api/data?tier=24h&tier=5m", "/api/data?duration=59", "/api/data?tier=nope"]
# Reasons of a facilitator's refusal before broadcast (docs/behaviour.md §17.2): a 402, nothing settled
# and the purchase record dropped, so the same payment may be sent again. Only a fault window makes
# the test facilitator refuse (refused_400, settle_failure).
REFUSALS = {"insufficient_funds", "transaction_failed"}
PURCHASE_PATHS = [("/api/data", "5m"), ("/api/data?tier=1h", "1h"), ("/api/data?tier=24h", "24h"),
                  ("/api/data?duration=5400", "custom")]


def custom_price(seconds: int) -> int:
    numerator, denominator = RATE_ATOMIC * seconds, 3600 * 100
    return (numerator // denominator + (1 if 2 * (numerator % denominator) >= denominator else 0)) * 100


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims: dict, secret: str) -> str:
    head = b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    return head + "." + b64url(hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest())


def claims_of(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


@dataclass
class Payment:
    header: str
    path: str
    amount: int
    message_hash: str
    outcome: str = "pending"   # pending -> ok (a pass was issued) | lost (never got one) | refused (a 402 not in REFUSALS)
    token: str = ""
    settled_at: float = 0.0
    attempts: int = 1
    next_try: float = 0.0
    answers: list[tuple[int, str | None]] = field(default_factory=list)  # (status, reason) of every attempt

    def recovered(self) -> bool:
        """Got its pass after a 503 settlement_unknown: the same payment sent again settled or recovered."""
        return self.outcome == "ok" and (503, "settlement_unknown") in self.answers

    def paid_after_refusal(self) -> bool:
        return self.outcome == "ok" and any(status == 402 and reason in REFUSALS for status, reason in self.answers)


@dataclass
class Result:
    seconds: float = 0.0
    requests: int = 0
    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    reasons: collections.Counter = field(default_factory=collections.Counter)
    server_errors: list[dict] = field(default_factory=list)      # every 5xx: action, status, reason, t0, t1
    refusals: list[dict] = field(default_factory=list)           # every 402 with a reason in REFUSALS, the same
    payment_posts: list[dict] = field(default_factory=list)      # every POST of a payment: action, status, reason, t0, t1
    unexpected: list[dict] = field(default_factory=list)         # wrong status for the action (5xx aside)
    violations: list[str] = field(default_factory=list)          # a pass not matching its price, a replay mismatch
    transport_errors: list[str] = field(default_factory=list)
    transport_log: list[dict] = field(default_factory=list)     # every transport error: target, t
    by_target: collections.Counter = field(default_factory=collections.Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    payments: list[Payment] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], p: float) -> float:
            if not values:
                return 0.0
            s = sorted(values)
            return round(1000 * s[min(len(s) - 1, int(p * len(s)))], 2)

        total = collections.Counter()
        for counts in self.statuses.values():
            total.update(counts)
        return {
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "statuses": {str(k): v for k, v in sorted(total.items())},
            "by_action": {a: {str(k): v for k, v in sorted(c.items())} for a, c in sorted(self.statuses.items())},
            "latency_ms": {a: {"p50": pct(v, 0.5), "p99": pct(v, 0.99), "max": pct(v, 1.0)}
                           for a, v in sorted(self.latencies.items())},
            "payments": collections.Counter(p.outcome for p in self.payments),
            "server_errors": len(self.server_errors),
            "refusals": len(self.refusals),
            "unexpected": len(self.unexpected),
            "violations": len(self.violations),
            "transport_errors": len(self.transport_errors),
            "by_target": {str(k): v for k, v in sorted(self.by_target.items())},
        }


class LoadGenerator:
    def __init__(self, host: str, port: int, *, seconds: float, threads: int = 6, secret: str | None = None,
                 max_requests: int | None = None, replay_window: int = 600, max_purchases_per_second: float = 8.0,
                 label: str = "soak", seed: int = 402, targets: list[tuple[str, int]] | None = None):
        self.host, self.port = host, port
        self.targets = list(targets or [(host, port)])
        self.rotation = set(range(len(self.targets)))  # the targets a load balancer sends to now
        self.generation = [0] * len(self.targets)      # bumped by put_back: older connections are dropped
        self.seconds = seconds
        self.threads = threads
        self.max_requests = max_requests or int(seconds * 4000)
        self.replay_window = replay_window
        self.purchase_interval = 1.0 / max_purchases_per_second
        self.label = label
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.result = Result()
        self.stop_at = 0.0
        self.next_purchase = 0.0
        self.count = itertools.count()
        self.retry_queue: collections.deque[Payment] = collections.deque()
        now = int(time.time())
        self.pool: collections.deque[str] = collections.deque(maxlen=256)
        self.bad_tokens = ["x.y.z", "Bearer", "a" * 5000]
        if secret:
            for i in range(64):
                payer = xp.derived_keypair(f"{label}-pool-{i}").address
                claims = {"sub": "x402-access-pass", "tier": "1h", "duration": 3600, "iat": now, "exp": now + 3600,
                          "payer": payer, "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
                          "iss": "x402-access-pass"}
                self.pool.append(hs256(claims, secret))
            expired = dict(claims, iat=now - 7200, exp=now - 3600)
            self.bad_tokens += [hs256(expired, secret), hs256(claims, "forged-secret-0123456789abcdef0123456789")]
        actions, weights = zip(*WEIGHTS.items())
        self.actions, self.weights = list(actions), list(weights)

    # ----------------------------------------------------------------- recording

    def _record(self, action: str, status: int, t0: float, t1: float, reason: str | None = None,
                expected: set[int] | None = None) -> None:
        with self.lock:
            self.result.requests += 1
            self.result.statuses[action][status] += 1
            lat = self.result.latencies[action]
            if len(lat) < 200_000:
                lat.append(t1 - t0)
            if reason:
                self.result.reasons[f"{action}:{status}:{reason}"] += 1
            if status >= 500:
                self.result.server_errors.append({"action": action, "status": status, "reason": reason,
                                                  "t0": t0, "t1": t1})
            elif status not in (expected if expected is not None else EXPECTED[action]):
                if len(self.result.unexpected) < 1000:
                    self.result.unexpected.append({"action": action, "status": status, "reason": reason,
                                                   "t": t1})

    def _violation(self, text: str) -> None:
        with self.lock:
            if len(self.result.violations) < 1000:
                self.result.violations.append(text)

    # ----------------------------------------------------------------- HTTP

    def take_out(self, target: int) -> None:
        """Stop sending to `target` (a replica about to restart); requests in flight finish."""
        with self.lock:
            self.rotation.discard(target)

    def put_back(self, target: int) -> None:
        """Send to `target` again, on new connections only (a restarted replica)."""
        with self.lock:
            self.generation[target] += 1
            self.rotation.add(target)

    def _connections(self) -> "Connections":
        return Connections(self)

    def _send(self, conns: "Connections", method: str, path: str, headers: dict[str, str]) -> tuple[int, dict, bytes, float, float]:
        target = conns.pick()
        for attempt in range(2):
            conn = conns.get(target)
            t0 = time.monotonic()
            try:
                conn.request(method, path, headers=headers, body=b"" if method == "POST" else None)
                resp = conn.getresponse()
                body = resp.read()
                t1 = time.monotonic()
                with self.lock:
                    self.result.by_target[target] += 1
                if resp.getheader("connection", "").lower() == "close":
                    conns.drop(target)
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, t0, t1
            except (http.client.HTTPException, OSError) as exc:
                conns.drop(target)
                with self.lock:
                    self.result.transport_errors.append(f"{method} {path} (target {target}): {exc!r}")
                    self.result.transport_log.append({"target": target, "t0": t0, "t1": time.monotonic()})
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _reason(body: bytes) -> str | None:
        try:
            return json.loads(body).get("reason")
        except (ValueError, AttributeError):
            return None

    # ----------------------------------------------------------------- actions

    def _purchase(self, conn_box: "Connections", buyer) -> None:
        path, tier = self.rng.choice(PURCHASE_PATHS)
        status, headers, body, t0, t1 = self._send(conn_box, "GET", path, {})
        self._record("challenge", status, t0, t1, self._reason(body) if status != 402 else None)
        if status != 402:
            return
        required = json.loads(base64.b64decode(headers["payment-required"]))
        header, tx = buyer.pay(required)
        amount = int(required["accepts"][0]["amount"])
        payment = Payment(header, path, amount, tx.message_hash)
        with self.lock:
            self.result.payments.append(payment)
        self._post_payment(conn_box, payment, "purchase")

    def _post_payment(self, conn_box: "Connections", payment: Payment, action: str) -> None:
        status, headers, body, t0, t1 = self._send(conn_box, "POST", payment.path, {"PAYMENT-SIGNATURE": payment.header})
        reason = self._reason(body) if status != 200 else None
        with self.lock:
            payment.answers.append((status, reason))
            self.result.payment_posts.append({"action": action, "status": status, "reason": reason, "t0": t0, "t1": t1})
        if status == 200:
            self._record(action, status, t0, t1)
            token = headers.get("access-pass", "")
            self._check_pass(payment, token)
            with self.lock:
                if payment.outcome != "ok":
                    payment.outcome, payment.token, payment.settled_at = "ok", token, time.monotonic()
                self.pool.append(token)
        elif status in (502, 503, 409):
            self._record(action, status, t0, t1, reason, expected={200, 409} if action == "retry" else {200})
            with self.lock:
                payment.next_try = time.monotonic() + 1.0
                self.retry_queue.append(payment)
        elif status == 402 and reason in REFUSALS:
            # Refused before broadcast: nothing charged, nothing kept. Whether a fault window
            # explains it is the caller's to judge (Result.refusals); the payment is sent again.
            self._record(action, status, t0, t1, reason, expected={402})
            with self.lock:
                self.result.refusals.append({"action": action, "status": status, "reason": reason, "t0": t0,
                                             "t1": t1, "payment": payment.message_hash})
                payment.next_try = time.monotonic() + 1.0
                self.retry_queue.append(payment)
        else:
            self._record(action, status, t0, t1, reason)
            with self.lock:
                payment.outcome = "refused"

    def _check_pass(self, payment: Payment, token: str) -> None:
        try:
            claims = claims_of(token)
        except (ValueError, IndexError) as exc:
            self._violation(f"unreadable pass for {payment.message_hash[:12]}: {exc!r}")
            return
        if payment.token and token != payment.token:
            self._violation(f"payment {payment.message_hash[:12]} got a second, different pass")
        price = custom_price(claims["duration"]) if claims["tier"] == "custom" else PRICES.get(claims["tier"])
        if claims["exp"] - claims["iat"] != claims["duration"] or price != payment.amount:
            self._violation(f"pass {claims} does not match the {payment.amount} paid")

    def _retry_due(self, conn_box: "Connections") -> bool:
        now = time.monotonic()
        with self.lock:
            if not self.retry_queue or self.retry_queue[0].next_try > now:
                return False
            due = self.retry_queue.popleft()
            due.attempts += 1
        self._post_payment(conn_box, due, "retry")
        return True

    def _replay(self, conn_box: "Connections") -> None:
        with self.lock:
            done = [p for p in self.result.payments[-500:] if p.outcome == "ok"]
        if not done:
            return
        p = self.rng.choice(done)
        age = time.monotonic() - p.settled_at
        status, headers, body, t0, t1 = self._send(conn_box, "POST", p.path, {"PAYMENT-SIGNATURE": p.header})
        reason = self._reason(body) if status != 200 else None
        self._record("replay", status, t0, t1, reason)
        if status == 200 and headers.get("access-pass") != p.token:
            self._violation(f"replay of {p.message_hash[:12]} served another pass")
        if status == 200 and age > self.replay_window + 3:
            self._violation(f"replay of {p.message_hash[:12]} served {age:.0f}s after settling "
                            f"(window {self.replay_window}s)")
        if status == 402 and (reason != "duplicate_payment" or age < self.replay_window - 1):
            self._violation(f"replay of {p.message_hash[:12]} after {age:.1f}s refused: {reason}")

    def _one(self, conn_box: "Connections", buyer, thread_rng: random.Random) -> None:
        if self._retry_due(conn_box):
            return
        action = thread_rng.choices(self.actions, self.weights)[0]
        if action == "purchase":
            with self.lock:
                now = time.monotonic()
                allowed = now >= self.next_purchase
                if allowed:
                    self.next_purchase = now + self.purchase_interval
            if not allowed:
                action = "pass"
        if action == "purchase":
            self._purchase(conn_box, buyer)
        elif action == "replay":
            self._replay(conn_box)
        elif action == "pass":
            with self.lock:
                token = thread_rng.choice(self.pool) if self.pool else None
            if token is None:
                return
            status, _, body, t0, t1 = self._send(conn_box, "GET", "/api/data", {"Authorization": f"Bearer {token}"})
            self._record("pass", status, t0, t1, self._reason(body) if status != 200 else None)
        elif action == "challenge":
            status, _, body, t0, t1 = self._send(conn_box, "GET", thread_rng.choice(CHALLENGE_PATHS), {})
            self._record("challenge", status, t0, t1, self._reason(body) if status != 402 else None)
        elif action == "bad_token":
            token = thread_rng.choice(self.bad_tokens)
            status, _, body, t0, t1 = self._send(conn_box, "GET", "/api/data", {"Authorization": f"Bearer {token}"})
            self._record("bad_token", status, t0, t1, self._reason(body))
        elif action == "bad_payment":
            header = thread_rng.choice(["garbage", "eyJ4NDAyVmVyc2lvbiI6Mn0=", base64.b64encode(b"[1]").decode()])
            status, _, body, t0, t1 = self._send(conn_box, "POST", "/api/data?tier=1h", {"PAYMENT-SIGNATURE": header})
            self._record("bad_payment", status, t0, t1, self._reason(body))
        elif action == "preflight":
            status, _, _, t0, t1 = self._send(conn_box, "OPTIONS", "/api/data", {
                "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
            self._record("preflight", status, t0, t1)
        elif action == "public":
            status, _, _, t0, t1 = self._send(conn_box, "GET", "/api/public/info", {})
            self._record("public", status, t0, t1)

    def _worker(self, index: int) -> None:
        conn_box = self._connections()
        thread_rng = random.Random(self.rng.random() + index)
        buyer = _Buyer(f"{self.label}-{index}")
        try:
            while time.monotonic() < self.stop_at and next(self.count) < self.max_requests:
                try:
                    self._one(conn_box, buyer, thread_rng)
                except (http.client.HTTPException, OSError):
                    time.sleep(0.05)
        finally:
            conn_box.close()

    # ----------------------------------------------------------------- run

    def run(self, on_tick: Callable[[float], None] | None = None, tick: float = 1.0) -> Result:
        started = time.monotonic()
        self.stop_at = started + self.seconds
        threads = [threading.Thread(target=self._worker, args=(i,), name=f"soak-{i}", daemon=True)
                   for i in range(self.threads)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if on_tick:
                on_tick(time.monotonic() - started)
            for t in threads:
                t.join(timeout=tick / len(threads))
            if time.monotonic() > self.stop_at + 60:
                raise RuntimeError("load threads did not stop within 60 s of the deadline")
        self.result.seconds = time.monotonic() - started
        return self.result

    def drain(self, deadline_seconds: float = 30.0) -> None:
        """Send every payment still waiting for its pass again until it gets it (bounded)."""
        conn_box = self._connections()
        deadline = time.monotonic() + deadline_seconds
        try:
            while time.monotonic() < deadline:
                with self.lock:
                    pending = [p for p in self.result.payments if p.outcome == "pending"]
                if not pending:
                    return
                self.retry_queue.clear()
                for p in pending:
                    try:
                        self._post_payment(conn_box, p, "retry")
                    except (http.client.HTTPException, OSError):
                        pass  # counted as a transport error; sent again on the next round
                time.sleep(0.5)
            with self.lock:
                for p in self.result.payments:
                    if p.outcome == "pending":
                        p.outcome = "lost"
        finally:
            conn_box.close()


def fill_pass_caches(host: str, port: int, secret: str, count: int, threads: int = 6, label: str = "fill",
                     deadline_seconds: float = 120.0) -> dict[str, int]:
    """Present `count` distinct valid passes (pre-minted with the secret), so that the filter's
    per-worker caches of verified passes are full before memory is measured. Returns a status
    histogram."""
    now = int(time.time())
    payer = xp.derived_keypair(label).address
    base = {"sub": "x402-access-pass", "tier": "1h", "duration": 3600, "payer": payer,
            "network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "iss": "x402-access-pass"}
    statuses: collections.Counter = collections.Counter()
    lock = threading.Lock()
    next_index = itertools.count()
    stop_at = time.monotonic() + deadline_seconds

    def work() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=15)
        try:
            while time.monotonic() < stop_at:
                i = next(next_index)
                if i >= count:
                    return
                if i % 200 == 0:  # new connections, so that every worker gets its share
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=15)
                iat = now - (i % 600)  # distinct tokens: iat (and so exp) and payer differ
                token = hs256(dict(base, payer=f"{payer}{i}", iat=iat, exp=iat + 3600), secret)
                try:
                    conn.request("GET", "/api/data", headers={"Authorization": f"Bearer {token}"})
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                except (http.client.HTTPException, OSError):
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=15)
                    status = 0
                with lock:
                    statuses[status] += 1
        finally:
            conn.close()

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=deadline_seconds + 30)
    return dict(statuses)


class Connections:
    """One worker's keep-alive connections, one per target, opened when first needed."""

    def __init__(self, gen: LoadGenerator):
        self.gen = gen
        self.open: dict[int, tuple[http.client.HTTPConnection, int]] = {}
        self.rng = random.Random(gen.rng.random())

    def pick(self) -> int:
        with self.gen.lock:
            live = sorted(self.gen.rotation) or list(range(len(self.gen.targets)))
        return live[0] if len(live) == 1 else self.rng.choice(live)

    def get(self, target: int) -> http.client.HTTPConnection:
        with self.gen.lock:
            generation = self.gen.generation[target]
        if target in self.open and self.open[target][1] != generation:
            self.drop(target)
        if target not in self.open:
            host, port = self.gen.targets[target]
            self.open[target] = (http.client.HTTPConnection(host, port, timeout=15), generation)
        return self.open[target][0]

    def drop(self, target: int) -> None:
        conn = self.open.pop(target, None)
        if conn is not None:
            conn[0].close()

    def close(self) -> None:
        for target in list(self.open):
            self.drop(target)


class _Buyer:
    """A buyer key per thread; every payment gets a fresh blockhash (a new payment)."""

    def __init__(self, label: str):
        self.label = label
        self.keypair = xp.derived_keypair(label)
        self.counter = itertools.count()

    def pay(self, required: dict):
        blockhash = hashlib.sha256(f"blockhash:{self.label}:{next(self.counter)}:{time.time_ns()}".encode()).digest()
        return xp.payment_header(required, self.keypair, blockhash=blockhash)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--secret", help="the filter's HS256 secret, to pre-mint valid passes")
    args = parser.parse_args()
    gen = LoadGenerator(args.host, args.port, seconds=args.seconds, threads=args.threads, secret=args.secret)
    result = gen.run()
    gen.drain()
    print(json.dumps(result.summary(), indent=2, default=dict))


if __name__ == "__main__":
    main()
