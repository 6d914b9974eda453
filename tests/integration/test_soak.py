"""Soak: mixed load against the real Envoy with 2 workers, with facilitator faults injected in short
windows, then the books are checked. Runs only with SOAK_SECONDS set:

  make soak          SOAK_SECONDS=600 (10 minutes)
  make soak-smoke    SOAK_SECONDS=30  (part of make test)

The load (tools/soak.py) mixes valid passes, challenges, bad passes and payments, preflights,
bypassed paths, real purchases and replays, on keep-alive connections from several threads. Asserted:

- every answer is the one its request calls for; the only 5xx are 502/503 of purchases in flight
  while a facilitator fault was injected, and every such payment later got its pass (sent again after
  a 503 settlement_unknown, it settles or is recovered);
- the faults include every settlement outcome the test facilitator can give (docs/behaviour.md §17):
  pending, a confirmation timeout, already processed, a refusal with HTTP 400 or before broadcast,
  successes with a forged transaction id, another network or another payer. Each runs in its own
  window; the only refusals (402 insufficient_funds / transaction_failed) are of purchases in flight
  during a refusing window, and those payments, sent again, got their pass;
- nothing lost, nothing charged twice: the facilitator's settlements during the soak are exactly the
  payments that got a pass (passes recovered after a 503 included), at the price of that pass; the
  filter's purchases_succeeded and settled_atomic counters agree with them;
- no VM trapped or reloaded: no panic / wasm trap / unexpected status / failed VM line in Envoy's
  log, Envoy's wasm.* stats show no VM created, reloaded or failed during the run;
- Envoy's RSS (/proc/<pid>/status VmRSS) grows less than 5 % after the warm-up (runs of 2 minutes
  or more first fill the filter's bounded caches of verified passes, see PASS_CACHE_CAPACITY);
- settled purchases older than replayWindowSeconds answer duplicate_payment (their records were
  kept in the small "spent" form). The purchase store itself (64 shared-data buckets) cannot be
  read from outside Envoy: its size is bounded by construction (replay.rs) and covered by the RSS bound.

A one-line summary is printed and the figures are written to tests/integration/out/soak/.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import sys
import threading
import time

import pytest

from attacks import (STALE_AFTER_SECONDS, Counters, FastUpstream, Ledger, bad_log_lines, envoy_heap, filter_counter,
                     rss_kib, wasm_vm_stats)
from harness import EXTERNAL, EXTERNAL_SKIP, OUT, SECRET, Envoy, default_plugin_config

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
from soak import LoadGenerator, fill_pass_caches  # noqa: E402

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS") or 0)
pytestmark = pytest.mark.skipif(SOAK_SECONDS <= 0, reason="the soak runs with SOAK_SECONDS set (make soak, "
                                                          "make soak-smoke)")

REPLAY_WINDOW = 5          # seconds: settled purchases turn into spent records during the soak
TIMEOUT_S = 2.0            # facilitatorTimeoutMs of the test configuration
FAULTS = [("verify", "status", {"status": 500}), ("settle", "settle_pending", {}), ("verify", "garbage", {}),
          ("settle", "confirmation_timeout", {}), ("verify", "reset", {}), ("settle", "refused_400", {}),
          ("settle", "reset", {}), ("settle", "bad_transaction", {}), ("settle", "truncated", {}),
          ("settle", "bad_network", {}), ("settle", "status", {"status": 502}), ("settle", "bad_payer", {}),
          ("verify", "slow", {"delay_ms": 2500}), ("settle", "settle_failure", {}),
          ("settle", "slow", {"delay_ms": 2500}), ("settle", "already_processed", {})]
# The 402 reason each refusing settle mode gives (tests/facilitator/src/facilitator.rs, SettleAs).
REFUSES_WITH = {"refused_400": "insufficient_funds", "settle_failure": "transaction_failed"}
FAULT_LENGTH = 1.0
FAULT_PERIOD = 4.0
# A short run (the smoke) shortens the period so that every fault kind gets its window.
MIN_FAULT_PERIOD, MIN_FAULT_LENGTH = 1.25, 0.75
RSS_GROWTH_LIMIT = 0.05
# The filter keeps up to 8192 verified passes per worker (PASS_CACHE_CAPACITY, src/filter/worker.rs),
# a few hundred bytes each. A long soak fills those caches first (distinct pre-minted passes on
# every worker), so that the RSS bound measures leaks rather than a bounded cache filling up.
PASS_CACHE_CAPACITY = 8_192
FILL_CACHES = SOAK_SECONDS >= 120


class FaultInjector(threading.Thread):
    """Facilitator faults in short windows, one after the other, until stopped."""

    def __init__(self, facilitator, start_after: float, stop_after: float, seed: int = 7):
        super().__init__(name="soak-faults", daemon=True)
        self.facilitator = facilitator
        self.start_after, self.stop_after = start_after, stop_after
        self.rng = random.Random(seed)
        self.windows: list[dict] = []
        self.halt = threading.Event()
        self.t0 = time.monotonic()
        span = max(0.0, stop_after - start_after)
        self.period = max(MIN_FAULT_PERIOD, min(FAULT_PERIOD, span / (len(FAULTS) + 1)))
        self.length = max(MIN_FAULT_LENGTH, min(FAULT_LENGTH, self.period - 0.5))

    def run(self) -> None:
        if self.halt.wait(self.start_after):
            return
        i = 0
        while time.monotonic() - self.t0 < self.stop_after and not self.halt.is_set():
            endpoint, mode, options = FAULTS[i % len(FAULTS)]
            i += 1
            start = time.monotonic()
            self.facilitator.fault(endpoint, mode, **options)
            self.halt.wait(self.length)
            self.facilitator.clear_faults()
            end = time.monotonic()
            self.windows.append({"endpoint": endpoint, "mode": mode, "start": start, "end": end,
                                 "delay": options.get("delay_ms", 0) / 1000})
            self.halt.wait(max(0.0, self.period - (end - start)))

    def kinds(self) -> list[str]:
        return sorted({f"{w['endpoint']}:{w['mode']}" for w in self.windows})

    def explains_refusal(self, refusal: dict) -> bool:
        """A refusal is expected when its purchase was in flight during a window of the settle mode
        that refuses with that reason."""
        return any(REFUSES_WITH.get(w["mode"]) == refusal["reason"] and refusal["t0"] <= w["end"] + 0.2
                   and refusal["t1"] >= w["start"] for w in self.windows)

    def explains(self, error: dict) -> bool:
        """A 5xx is expected when its purchase was in flight during a fault window (a callout
        started in the window may be answered up to the callout timeout, or the slow delay, later)."""
        if error["action"] not in ("purchase", "retry") or error["status"] not in (502, 503):
            return False
        reason = error.get("reason") or ""
        if not (reason.startswith("facilitator_") or reason == "settlement_unknown"):
            return False
        return any(error["t0"] <= w["end"] + 0.2 and error["t1"] >= w["start"] for w in self.windows)


@pytest.fixture
def soak_envoy(facilitator):
    """Envoy (2 workers) with the default test configuration and a short replay window, in front of
    an upstream that answers at once (the demo upstream's 40 ms Nagle stall would cap the load)."""
    if EXTERNAL:
        pytest.skip(EXTERNAL_SKIP)  # and it reads the Envoy's log and /proc/<pid>
    upstream = FastUpstream().start()
    envoy = Envoy("soak", default_plugin_config(facilitator.addr, replayWindowSeconds=REPLAY_WINDOW),
                  facilitator.port, upstream.port, OUT / "soak")
    try:
        envoy.start()
        yield envoy, upstream
    finally:
        envoy.stop()
        upstream.stop()


def test_soak_mixed_load_with_faults_loses_nothing_and_keeps_envoy_steady(facilitator, soak_envoy):
    envoy, upstream = soak_envoy
    pid = envoy.proc.pid
    log_start = len(envoy.log_text())
    warmup = min(max(5.0, SOAK_SECONDS * 0.1), 60.0)
    ledger = Ledger(facilitator)
    counters = Counters(envoy)
    samples: list[dict] = []
    marks: dict[str, dict] = {}

    def sample(elapsed: float) -> None:
        if samples and elapsed - samples[-1]["t"] < 5 and not (elapsed >= warmup and "warm" not in marks):
            return
        s = {"t": round(elapsed, 1), "rss_kib": rss_kib(pid)}
        samples.append(s)
        if elapsed >= warmup and "warm" not in marks:
            marks["warm"] = {**s, "vm": wasm_vm_stats(envoy), "heap": envoy_heap(envoy)}

    gen = LoadGenerator("127.0.0.1", envoy.port, seconds=SOAK_SECONDS, threads=6, secret=SECRET,
                        replay_window=REPLAY_WINDOW, label=f"soak-{int(time.time())}")
    faults = FaultInjector(facilitator, start_after=warmup, stop_after=SOAK_SECONDS - 3)
    before = {"rss_kib": rss_kib(pid), "heap": envoy_heap(envoy), "vm": wasm_vm_stats(envoy)}
    fill: dict = {}
    if FILL_CACHES:
        started = time.monotonic()
        fill = fill_pass_caches("127.0.0.1", envoy.port, SECRET, 3 * envoy.concurrency * PASS_CACHE_CAPACITY // 2)
        fill = {"statuses": fill, "seconds": round(time.monotonic() - started, 1), "rss_kib": rss_kib(pid)}
        assert set(fill["statuses"]) == {200}, fill
    faults.t0 = time.monotonic()
    faults.start()
    try:
        result = gen.run(on_tick=sample)
    finally:
        faults.halt.set()
        faults.join(timeout=10)
        facilitator.clear_faults()
    end = {"rss_kib": rss_kib(pid), "heap": envoy_heap(envoy), "vm": wasm_vm_stats(envoy)}
    gen.drain(deadline_seconds=STALE_AFTER_SECONDS + 20)

    # Records of settled purchases older than the replay window: now spent, refused as duplicates.
    time.sleep(1)
    old = [p for p in result.payments if p.outcome == "ok" and time.monotonic() - p.settled_at > REPLAY_WINDOW + 2]
    spent_checks = []
    for p in old[:10]:
        r = envoy.post(p.path, {"PAYMENT-SIGNATURE": p.header})
        spent_checks.append((r.status, json.loads(r.body).get("reason") if r.body else None))

    # ---------------------------------------------------------------- the books
    summary = result.summary()
    ok = {p.message_hash: p.amount for p in result.payments if p.outcome == "ok"}
    settled = ledger.new_settlements()
    settled_map = {s["messageHash"]: int(s["amount"]) for s in settled}
    unexplained = [e for e in result.server_errors if not faults.explains(e)]
    unexplained_refusals = [r for r in result.refusals if not faults.explains_refusal(r)]
    refused_payments = {r["payment"] for r in result.refusals}
    log_lines = bad_log_lines(envoy.log_text()[log_start:])
    warm = marks.get("warm", {"rss_kib": before["rss_kib"], "vm": before["vm"], "heap": before["heap"]})
    growth = (end["rss_kib"] - warm["rss_kib"]) / warm["rss_kib"]
    vm_keys = ("wasm.envoy.wasm.runtime.v8.created", "wasm.x402_access_pass.vm_reload",
               "wasm.x402_access_pass.vm_reload_failure", "wasm.x402_access_pass.vm_reload_success")
    vm_changes = {k: (before["vm"].get(k, 0), end["vm"].get(k, 0)) for k in vm_keys
                  if before["vm"].get(k, 0) != end["vm"].get(k, 0)}
    succeeded = counters.delta("purchases_succeeded")
    settled_atomic = counters.delta("settled_atomic")

    report = {
        **summary,
        "envoy": {"pid": pid, "workers": envoy.concurrency, "rss_kib_start": before["rss_kib"],
                  "rss_kib_warm": warm["rss_kib"], "rss_kib_end": end["rss_kib"],
                  "rss_growth_after_warmup_pct": round(100 * growth, 2),
                  "heap_allocated_warm": warm["heap"].get("allocated"), "heap_allocated_end": end["heap"].get("allocated"),
                  "rss_samples": samples, "wasm_stats_end": end["vm"]},
        "warmup_seconds": warmup,
        "cache_fill": fill,
        "faults": {"windows": len(faults.windows), "period_s": round(faults.period, 2),
                   "length_s": round(faults.length, 2),
                   "expected_5xx": len(result.server_errors) - len(unexplained),
                   "unexplained_5xx": unexplained[:50],
                   "refusals": len(result.refusals), "unexplained_refusals": unexplained_refusals[:50],
                   "kinds": faults.kinds(),
                   "payments_in_windows": {k: 0 for k in faults.kinds()}},
        "ledger": {"passes_issued": len(ok), "settlements": len(settled),
                   "settled_atomic_facilitator": sum(settled_map.values()),
                   "purchases_succeeded_counter": succeeded, "settled_atomic_counter": settled_atomic,
                   "lost": sum(1 for p in result.payments if p.outcome == "lost"),
                   "refused": sum(1 for p in result.payments if p.outcome == "refused"),
                   "retried": sum(1 for p in result.payments if p.attempts > 1),
                   "recovered_after_503": sum(1 for p in result.payments if p.recovered()),
                   "paid_after_refusal": sum(1 for p in result.payments if p.paid_after_refusal())},
        "spent_checks": spent_checks,
        "unexpected_statuses": result.unexpected[:50],
        "violations": result.violations[:50],
        "transport_errors": result.transport_errors[:50],
        "bad_log_lines": log_lines[:50],
        "reasons": dict(result.reasons.most_common(40)),
    }
    # Payments posted while each kind of fault was in force: how much each one was exercised.
    for w in faults.windows:
        report["faults"]["payments_in_windows"][f"{w['endpoint']}:{w['mode']}"] += sum(
            1 for post in result.payment_posts if post["t0"] <= w["end"] and post["t1"] >= w["start"])
    out = OUT / "soak"
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    (out / f"soak-{int(SOAK_SECONDS)}s.json").write_text(text)
    (out / "latest.json").write_text(text)
    print(f"\nsoak: {summary['seconds']}s, {summary['requests']} requests, {summary['rps']} req/s over 2 workers, "
          f"statuses {summary['statuses']}, purchases {len(ok)} ok / {report['ledger']['lost']} lost "
          f"({report['ledger']['retried']} retried, {report['ledger']['recovered_after_503']} recovered after a 503, "
          f"{report['ledger']['paid_after_refusal']} paid after a refusal), {len(faults.windows)} fault windows "
          f"of {len(faults.kinds())} kinds ({report['faults']['expected_5xx']} expected 5xx, {len(unexplained)} "
          f"unexplained; {len(result.refusals)} refusals, {len(unexplained_refusals)} unexplained), "
          f"RSS {before['rss_kib'] / 1024:.1f} -> {'cache fill ' + format(fill['rss_kib'] / 1024, '.1f') + ' -> ' if fill else ''}warm {warm['rss_kib'] / 1024:.1f} -> end {end['rss_kib'] / 1024:.1f} MiB "
          f"({100 * growth:+.2f} % after warm-up), VM changes {vm_changes or 'none'}; report {out / 'latest.json'}")

    assert result.requests > 0, "no load was sent"
    assert not result.transport_errors, result.transport_errors[:10]
    assert not result.unexpected, result.unexpected[:10]
    assert not unexplained, unexplained[:10]
    assert faults.kinds() == sorted(f"{e}:{m}" for e, m, _ in FAULTS), faults.kinds()
    assert not unexplained_refusals, unexplained_refusals[:10]
    assert all(p.outcome == "ok" for p in result.payments if p.message_hash in refused_payments), \
        "a payment refused before broadcast did not get its pass when sent again"
    assert not result.violations, result.violations[:10]
    assert report["ledger"]["lost"] == 0 and report["ledger"]["refused"] == 0, report["ledger"]
    assert len(settled) == len(settled_map), "a payment was settled twice"
    assert settled_map == ok, {"settled_without_pass": sorted(set(settled_map) - set(ok))[:5],
                               "pass_without_settlement": sorted(set(ok) - set(settled_map))[:5],
                               "amount_differs": [h for h in ok if h in settled_map and ok[h] != settled_map[h]][:5]}
    assert succeeded == len(ok) and settled_atomic == sum(ok.values()), (succeeded, settled_atomic, len(ok))
    assert not log_lines, log_lines[:10]
    assert not vm_changes, vm_changes
    assert filter_counter(envoy.stats(), "purchases_failed.ledger_unavailable") == 0
    assert upstream.server.saw_authorization == 0, "a pass reached the upstream"
    assert all(s == (402, "duplicate_payment") for s in spent_checks), spent_checks
    assert growth < RSS_GROWTH_LIMIT, f"Envoy RSS grew {100 * growth:.2f} % after the warm-up: {samples}"

