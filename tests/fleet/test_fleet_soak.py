"""The fleet soak: the soak's mixed load (tools/soak.py) spread over the three replicas as a load
balancer would (a payment's retry or replay usually lands on another replica), the soak's
facilitator faults (tests/integration/test_soak.py), and meanwhile an etcd member restarted (the
leader: the harder case) and a replica SIGKILLed and restarted. Runs only with FLEET_SOAK_SECONDS set:

  make fleet-soak          SOAK_SECONDS=600 (10 minutes; also `make soak SOAK_MODE=fleet`)
  make fleet-test          FLEET_SOAK_SECONDS=30 (the smoke, part of make test)

Asserted at the end, against the facilitator's own ledger: the settlements made during the soak are
exactly the payments that got a pass, each once, at that pass's price (nothing lost, nothing charged
twice, nothing charged without a pass); every 5xx is explained by a fault window (a facilitator
fault, or 503 ledger_unavailable while etcd elected a new leader) and its payment got its pass when
sent again; every transport error is a request in flight on the replica when it was killed; no VM
trapped. Figures go to tests/fleet/out/soak/latest.json and one summary line.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from attacks import STALE_AFTER_SECONDS, Ledger, bad_log_lines, filter_counter
from fleet import OUT
from harness import SECRET
from soak import LoadGenerator
from test_soak import FAULTS, FaultInjector

SOAK_SECONDS = float(os.environ.get("FLEET_SOAK_SECONDS") or 0)
pytestmark = pytest.mark.skipif(SOAK_SECONDS <= 0, reason="the fleet soak runs with FLEET_SOAK_SECONDS set "
                                                          "(make fleet-soak, make fleet-test)")
REPLAY_WINDOW = 600  # the fleet's replayWindowSeconds (the default)
RESTARTED = "b"      # the replica killed and restarted during the run


class Events:
    """The etcd leader killed at 30 % of the run and started again a few seconds later; replica b
    taken out of the load balancer's rotation at 60 %, SIGKILLed, restarted, put back. Each as a
    window [start, end] that explains what it causes.

    Run on the main thread while the load runs on others: an Envoy started from a thread gets
    SIGTERM as soon as that thread ends (seen here with Envoy 1.40: a parent-death signal follows
    the thread that forked, not the process), so replicas are only ever started from this one."""

    def __init__(self, fleet, gen: LoadGenerator, seconds: float):
        self.fleet, self.gen, self.seconds = fleet, gen, seconds
        self.etcd: dict = {}
        self.envoy: dict = {}
        self.t0 = time.monotonic()

    def _at(self, fraction: float, load: threading.Thread) -> bool:
        """Sleep until `fraction` of the run; False when the load ended first."""
        while time.monotonic() < self.t0 + self.seconds * fraction:
            if not load.is_alive():
                return False
            time.sleep(0.05)
        return True

    def run(self, load: threading.Thread) -> None:
        down = min(10.0, max(3.0, self.seconds * 0.02))
        if not self._at(0.3, load):
            return
        leader = self.fleet.leader()
        self.etcd = {"member": leader, "start": time.monotonic()}
        self.fleet.kill_member(leader)
        time.sleep(down)
        self.fleet.start_member(leader)
        self.fleet.wait_ledger_healthy()
        self.etcd["end"] = time.monotonic()
        if not self._at(0.6, load):
            return
        index = self.fleet.replicas.index(self.fleet[RESTARTED])
        self.envoy = {"replica": RESTARTED, "start": time.monotonic()}
        self.gen.take_out(index)
        time.sleep(1.0)
        self.fleet[RESTARTED].restart()
        self.gen.put_back(index)
        self.envoy["end"] = time.monotonic()

    def explains(self, error: dict, faults: FaultInjector) -> bool:
        if faults.explains(error):
            return True
        # A purchase, its retry or a replay needs the ledger: while etcd elects a leader, 503.
        if error["action"] not in ("purchase", "retry", "replay") or error["status"] != 503:
            return False
        window = self.etcd
        return (error.get("reason") == "ledger_unavailable" and "end" in window
                and error["t0"] <= window["end"] + 1.0 and error["t1"] >= window["start"])

    def explains_transport(self, entry: dict, index: int) -> bool:
        window = self.envoy
        return entry["target"] == index and "end" in window and window["start"] <= entry["t1"] <= window["end"] + 1.0


def test_fleet_soak_mixed_load_faults_and_restarts_lose_nothing_and_charge_once(fleet, facilitator):
    replicas = fleet.replicas
    log_start = {r.name: len(r.log_text()) for r in replicas}
    ledger = Ledger(facilitator)
    warmup = min(max(3.0, SOAK_SECONDS * 0.1), 60.0)
    targets = [(r.host, r.port) for r in replicas]
    gen = LoadGenerator(targets[0][0], targets[0][1], seconds=SOAK_SECONDS, threads=6, secret=SECRET,
                        replay_window=REPLAY_WINDOW, label=f"fleet-soak-{int(time.time())}", targets=targets,
                        max_purchases_per_second=6.0)
    faults = FaultInjector(facilitator, start_after=warmup, stop_after=SOAK_SECONDS - 3)
    events = Events(fleet, gen, SOAK_SECONDS)
    outcome: dict = {}
    load = threading.Thread(target=lambda: outcome.update(result=gen.run()), name="fleet-soak-load", daemon=True)
    faults.t0 = events.t0 = time.monotonic()
    faults.start()
    load.start()
    try:
        events.run(load)
        load.join(timeout=SOAK_SECONDS + 120)
    finally:
        if load.is_alive():
            gen.stop_at = 0.0  # an early failure stops the load at once
        load.join(timeout=60)
        faults.halt.set()
        faults.join(timeout=10)
        facilitator.clear_faults()
    result = outcome["result"]
    gen.drain(deadline_seconds=STALE_AFTER_SECONDS + 20)

    summary = result.summary()
    ok = {p.message_hash: p.amount for p in result.payments if p.outcome == "ok"}
    settled = ledger.new_settlements()
    settled_map = {s["messageHash"]: int(s["amount"]) for s in settled}
    restarted = replicas.index(fleet[RESTARTED])
    unexplained = [e for e in result.server_errors if not events.explains(e, faults)]
    unexplained_refusals = [r for r in result.refusals if not faults.explains_refusal(r)]
    unexplained_transport = [t for t in result.transport_log if not events.explains_transport(t, restarted)]
    refused_payments = {r["payment"] for r in result.refusals}
    log_lines = [f"{r.name}: {line}" for r in replicas for line in bad_log_lines(r.log_text()[log_start[r.name]:])]
    stats = {r.name: r.stats() for r in replicas}
    ledger_errors = {name: filter_counter(s, "ledger_errors") for name, s in stats.items()}
    ledger_503 = sum(1 for e in result.server_errors if e.get("reason") == "ledger_unavailable")

    report = {
        **summary,
        "replicas": {r.name: {"port": r.port, "pid": r.proc.pid} for r in replicas},
        "events": {"etcd_leader_restart": {k: (round(v - events.t0, 2) if k != "member" else v)
                                           for k, v in events.etcd.items()},
                   "replica_restart": {k: (round(v - events.t0, 2) if k != "replica" else v)
                                       for k, v in events.envoy.items()}},
        "faults": {"windows": len(faults.windows), "kinds": faults.kinds(),
                   "expected_5xx": len(result.server_errors) - len(unexplained), "unexplained_5xx": unexplained[:50],
                   "ledger_unavailable_503": ledger_503,
                   "refusals": len(result.refusals), "unexplained_refusals": unexplained_refusals[:50],
                   "transport_errors": len(result.transport_log), "unexplained_transport": unexplained_transport[:50]},
        "ledger": {"passes_issued": len(ok), "settlements": len(settled),
                   "settled_atomic_facilitator": sum(settled_map.values()),
                   "lost": sum(1 for p in result.payments if p.outcome == "lost"),
                   "refused": sum(1 for p in result.payments if p.outcome == "refused"),
                   "retried": sum(1 for p in result.payments if p.attempts > 1),
                   "recovered_after_503": sum(1 for p in result.payments if p.recovered()),
                   "ledger_errors_counter": ledger_errors},
        "unexpected_statuses": result.unexpected[:50],
        "violations": result.violations[:50],
        "bad_log_lines": log_lines[:50],
        "reasons": dict(result.reasons.most_common(40)),
    }
    out = OUT / "soak"
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    (out / f"fleet-soak-{int(SOAK_SECONDS)}s.json").write_text(text)
    (out / "latest.json").write_text(text)
    print(f"\nfleet soak: {summary['seconds']}s, {summary['requests']} requests, {summary['rps']} req/s over "
          f"3 replicas {summary['by_target']}, statuses {summary['statuses']}, purchases {len(ok)} ok / "
          f"{report['ledger']['lost']} lost ({report['ledger']['retried']} retried, "
          f"{report['ledger']['recovered_after_503']} recovered after a 503), {len(faults.windows)} fault windows, "
          f"{len(result.server_errors)} 5xx ({ledger_503} ledger_unavailable, {len(unexplained)} unexplained), "
          f"{len(result.transport_log)} transport errors ({len(unexplained_transport)} unexplained), "
          f"etcd leader restart {report['events']['etcd_leader_restart']}, replica restart "
          f"{report['events']['replica_restart']}, ledger_errors {ledger_errors}; report {out / 'latest.json'}")

    assert result.requests > 0, "no load was sent"
    assert "end" in events.etcd and "end" in events.envoy, report["events"]
    assert not result.unexpected, result.unexpected[:10]
    assert not unexplained, unexplained[:10]
    assert not unexplained_transport, unexplained_transport[:10]
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
    assert not log_lines, log_lines[:10]
