"""pytest configuration of the deployment tests: tests/deploy and tests/integration on sys.path
(the integration harness, helpers and payment builder are imported, not copied)."""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
for p in (HERE, HERE.parents[1] / "tests" / "integration"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
