#!/usr/bin/env python3
"""`make help`: every target of Makefile and mk/*.mk, one line each, from the files' own header
comments. A help line is a comment `#   make <target>   <what it does>` (two spaces or more before
the text); more-indented comment lines under it are details and are not shown.

    tools/make-help.py            the list, grouped by file
    tools/make-help.py --check    every .PHONY target has a help line, and every help line names a
                                  target of its file (`make help-check`, part of `make test`)
"""

from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
HELP = re.compile(r"^#\s+make\s+([A-Za-z0-9][\w.-]*)\s{2,}(\S.*)$")
PHONY = re.compile(r"^\.PHONY\s*:(.*)$")
RULE = re.compile(r"^([A-Za-z0-9][\w.-]*(?:[ \t]+[A-Za-z0-9][\w.-]*)*)[ \t]*::?(?!=)")


def makefiles() -> list[pathlib.Path]:
    return [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]


def read(path: pathlib.Path) -> tuple[list[tuple[str, str]], set[str], set[str]]:
    """(target, help text) in file order, the .PHONY targets, and every rule's targets."""
    helps, phony, rules = [], set(), set()
    for line in path.read_text().splitlines():
        if m := HELP.match(line):
            helps.append((m.group(1), " ".join(m.group(2).split()).rstrip(":,")))  # details follow
        elif m := PHONY.match(line):
            phony.update(m.group(1).split())
        elif m := RULE.match(line):
            rules.update(m.group(1).split())
    return helps, phony, rules


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] and not check:
        print(__doc__, file=sys.stderr)
        return 2
    problems, groups = [], []
    for path in makefiles():
        helps, phony, rules = read(path)
        name = str(path.relative_to(ROOT))
        groups.append((name, helps))
        helped = {t for t, _ in helps}
        problems += [f"{name}: .PHONY target `{t}` has no help line (#   make {t}   <what it does>)"
                     for t in sorted(phony - helped)]
        problems += [f"{name}: help line for `{t}`, which is not a target of {name}" for t in sorted(helped - rules)]
        problems += [f"{name}: two help lines for `{t}`" for t in sorted(helped) if [x for x, _ in helps].count(t) > 1]
    if check:
        for problem in problems:
            print(f"help-check: {problem}", file=sys.stderr)
        if not problems:
            print(f"help-check: every .PHONY target of {len(groups)} makefiles has a help line")
        return 1 if problems else 0
    width = max(len(t) for _, helps in groups for t, _ in helps)
    print("make <target>  (plain `make` is `make build`; variables and details: the comments atop each file)")
    for name, helps in groups:
        print(f"\n{name}")
        for target, text in helps:
            print(f"  {target.ljust(width)}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
