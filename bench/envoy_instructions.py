#!/usr/bin/env python3
"""Envoy's own instructions per request, row by row, counted by callgrind (bench/envoy_callgrind.py).

`make bench` measures requests per second, which a busy machine moves by 10 % between two runs of
the same module; instructions do not move: the same module counted twice differs by less than
0.1 %, so two builds or two configurations compare in one run of each, on a busy machine too.

    .venv/bin/python bench/envoy_instructions.py [--rows no_filter,floor,ours_hs256,...] [--requests 300]
    .venv/bin/python bench/envoy_instructions.py --rows ours_hs256 --compare before=/tmp/before.wasm
    .venv/bin/python bench/envoy_instructions.py --fast-path-parts   (the fast path's parts, priced)
    make envoy-instructions                 (EI_ARGS='...' passes the options)

Rows are bench/run.py's (`--list` prints them); the Sign-In-With-X rows, which need a facilitator
and a fresh signature per request, are not offered."""

from __future__ import annotations

import argparse
import copy
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (bench/run.py: the configurations and rows of `make bench`)
import envoy_callgrind  # noqa: E402  (bench/envoy_callgrind.py: Envoy under callgrind)

DEFAULT_ROWS = ("no_filter", "floor", "floor_pass_hostcalls", "jwt_authn_cache", "ours_hs256", "ours_eddsa",
                "floor_challenge_hostcalls", "ours_challenge", "ours_bypass", "fast_eddsa", "fast_hs256_sole",
                "fast_hs256", "fast_challenge")


def measure(row: "bench.Row", config: dict, out: pathlib.Path, warmup: int, requests: int) -> int:
    return envoy_callgrind.instructions_per_request(f"ei-{row.key.replace(':', '-')}", config, out, row.path,
                                                    row.headers, row.expect, warmup, requests)


def fast_path_parts(config: dict) -> dict[str, dict]:
    """The fast path's configuration (tools/fastpath.py) taken apart, to price each part: as built;
    without the RBAC counter in its chain; the counter alone; the composite filter with nothing to
    run on the fast path (its matcher inverted: the wasm filter for the rest, nothing for a pass);
    `jwt_authn` alone, as the fast path configures it, with no composite filter after it."""
    def http_filters(c: dict) -> list[dict]:
        return c["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]

    def composite(c: dict) -> dict:
        return next(f for f in http_filters(c) if f["name"] == "x402_fast_path")["typed_config"]["xds_matcher"]

    def chain(c: dict) -> list[dict]:
        action = composite(c)["matcher_list"]["matchers"][0]["on_match"]["action"]["typed_config"]
        return action["filter_chain"]["typed_config"]

    def is_rbac(f: dict) -> bool:
        return f["typed_config"]["@type"].endswith("rbac.v3.RBAC")

    parts = {"as built": copy.deepcopy(config)}
    parts["without the RBAC counter"] = copy.deepcopy(config)
    chain(parts["without the RBAC counter"])[:] = [f for f in chain(config) if not is_rbac(f)]
    parts["the RBAC counter alone in its chain"] = copy.deepcopy(config)
    chain(parts["the RBAC counter alone in its chain"])[:] = [f for f in chain(config) if is_rbac(f)]
    nothing = copy.deepcopy(config)
    matcher = composite(nothing)
    first = matcher["matcher_list"]["matchers"][0]
    first["predicate"] = {"not_matcher": first["predicate"]}
    first["on_match"] = matcher.pop("on_no_match")
    parts["the composite filter, nothing run for a pass"] = nothing
    alone = copy.deepcopy(config)
    http_filters(alone)[:] = [f for f in http_filters(alone) if f["name"] != "x402_fast_path"]
    parts["jwt_authn alone, as the fast path configures it"] = alone
    return parts


def main(argv: list[str] | None = None) -> int:
    if not envoy_callgrind.available():
        raise SystemExit("valgrind (callgrind_control) is missing: apt-get install valgrind")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="bench/run.py row keys, comma-separated")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per row")
    parser.add_argument("--warmup", type=int, default=200, help="requests before counting starts")
    parser.add_argument("--compare", default="", help="NAME=MODULE.wasm,...: each row of this filter again with "
                        "that module (row NAME:<key>), as bench/run.py --compare does")
    parser.add_argument("--list", action="store_true", help="print the rows this can measure and exit")
    parser.add_argument("--fast-path-parts", action="store_true",
                        help="price each part of the fast path (fast_eddsa's configuration taken apart) and exit")
    args = parser.parse_args(argv)

    b = bench.Bench(bench.argument_parser().parse_args(["--quick", "--compare", args.compare]))
    variants, rows = b.targets()
    # The floor filter replaying the filter's own 402 (target `challenge_hostcalls`) needs that 402
    # first: taken, when that row is wanted, from the filter in an Envoy run as make bench runs it,
    # then stopped. Sign-In-With-X rows need a facilitator and a fresh signature per request: not
    # offered.
    measurable = {r.key: r for r in rows if r.target in variants and r.target != "express"
                  and (not callable(variants[r.target]) or r.target == "challenge_hostcalls")}
    if args.list:
        for key, r in measurable.items():
            print(f"{key:24s} {r.label}")
        return 0
    out = bench.OUT / "instructions"
    out.mkdir(parents=True, exist_ok=True)
    if args.fast_path_parts:
        row = measurable["fast_eddsa"]
        print(f"The fast path's parts, valid EdDSA pass ({args.requests} requests after {args.warmup})")
        for name, config in fast_path_parts(variants[row.target]).items():
            print(f"{measure(row, config, out, args.warmup, args.requests):>10,}  {name}", flush=True)
        return 0
    # Each row of this filter again with every compared module, right after it.
    names = [item.partition("=")[0] for item in args.compare.split(",") if item]
    wanted = [k for key in args.rows.split(",") if key for k in [key, *(f"{n}:{key}" for n in names)]
              if k in measurable or k == key]
    unknown = [k for k in wanted if k not in measurable]
    if unknown:
        parser.error(f"not a measurable row: {', '.join(unknown)} (--list)")
    if any(callable(variants[measurable[k].target]) for k in wanted):
        source = bench.BenchEnvoy("ei-challenge-source", variants["ours_hs256"], out)
        bench.STOPPABLE.append(source)
        try:
            variants["challenge_hostcalls"] = variants["challenge_hostcalls"]({"ours_hs256": source.start()})
        finally:
            source.stop()
            bench.STOPPABLE.remove(source)
    print(f"Envoy's instructions per request under callgrind ({args.requests} requests after {args.warmup}; "
          "--concurrency 1; user space)")
    for key in wanted:
        r = measurable[key]
        count = measure(r, variants[r.target], out, args.warmup, args.requests)
        print(f"{key:24s} {count:>10,}  {r.label}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        bench.stop_all()
