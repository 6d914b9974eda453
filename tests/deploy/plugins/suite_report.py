"""A pytest plugin for test_external_suite.py: loaded into the integration suite's run
(`-p suite_report`), it writes every test's outcome, skip reason, duration and fixture closure to
the JSON file named by X402_SUITE_REPORT, so the outer test can check which tests ran and why
the others were skipped."""

from __future__ import annotations

import json
import os
import pathlib

_RESULTS: dict[str, dict] = {}


def pytest_collection_modifyitems(items):
    for item in items:
        _RESULTS[item.nodeid] = {"outcome": None, "reason": None, "duration": 0.0,
                                 "fixtures": sorted(getattr(item, "fixturenames", []))}


def pytest_runtest_logreport(report):
    entry = _RESULTS.setdefault(report.nodeid, {"outcome": None, "reason": None, "duration": 0.0, "fixtures": []})
    entry["duration"] += report.duration
    if report.skipped:
        entry["outcome"] = "skipped"
        if isinstance(report.longrepr, tuple):
            entry["reason"] = report.longrepr[2].removeprefix("Skipped: ")
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
    elif report.when == "call" and entry["outcome"] is None:
        entry["outcome"] = "passed"


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("X402_SUITE_REPORT")
    if path:
        pathlib.Path(path).write_text(json.dumps({"exitstatus": int(exitstatus), "tests": _RESULTS}, indent=1))
