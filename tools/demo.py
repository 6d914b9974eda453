"""`make run`: sell access passes from a plugin configuration file, in Envoy on loopback, with the
project's offline test facilitator and a demo upstream. Stays in the foreground until Ctrl-C.

    tools/demo.py [--config envoy/demo/plugin.json]

The configuration is the filter's own JSON (envoy/demo/README.md). The demo points it at its
facilitator (facilitatorUrl, facilitatorCluster; feePayer and facilitatorHeaders are dropped), and
everything it prints (URLs, paths, tiers, prices, the walk-through's commands) is derived from the
configuration it loaded. A configuration the filter refuses ends the demo with the filter's own
error line and status 2.

Environment: X402_DEMO_PORT (listener, default 10000) and X402_DEMO_ADMIN_PORT (admin, default
9901), 0 for any free port; X402_DEMO_RUN_DIR (logs and temp files, default .run/).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shlex
import signal
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Process management (harness.Envoy, harness.Facilitator), the demo upstream and the payment
# builder's constants are shared with the integration tests; the configuration is not.
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import FEE_PAYER, Envoy, EnvoyExited, Facilitator  # noqa: E402
from upstream import DemoUpstream  # noqa: E402
from x402pay import DEVNET, DEVNET_USDC, pubkey  # noqa: E402

DEFAULT_CONFIG = ROOT / "envoy" / "demo" / "plugin.json"
# The loopback Envoy config (tests/integration/envoy.template.yaml) names its facilitator cluster so.
FACILITATOR_CLUSTER = "x402_facilitator"
# Settings for the real facilitator that the demo's own does not take.
DROPPED = ("feePayer", "facilitatorHeaders")
CUSTOM_DURATION_EXAMPLE = 5400  # 90 minutes, when the configuration's bounds allow it
EXIT_CONFIG = 2


class DemoError(Exception):
    """One line for the user; the demo exits non-zero with it."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- the configuration


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"{key}: duplicate field")
        seen[key] = value
    return seen


def load_config(path: pathlib.Path) -> dict:
    """The seller's plugin configuration, as a dict. Only what the demo itself needs is checked
    here (JSON, an object, devnet); the filter checks the rest when Envoy loads it."""
    try:
        text = path.read_text()
    except OSError as err:
        raise DemoError(f"cannot read {path}: {err.strerror}", EXIT_CONFIG) from None
    try:
        config = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as err:
        raise DemoError(f"{path}: not a JSON plugin configuration: {err}", EXIT_CONFIG) from None
    if not isinstance(config, dict):
        raise DemoError(f"{path}: not a JSON object of settings", EXIT_CONFIG)
    network = config.get("network")
    if network != DEVNET:
        said = (f"network is {network!r}" if network is not None
                else "network is not set (the filter's default is mainnet)")
        raise DemoError(f"{path}: {said}: the demo runs only on Solana devnet ({DEVNET}), with public test keys "
                        "and an offline facilitator; set \"network\" to it", EXIT_CONFIG)
    return config


def demo_plugin_config(config: dict, facilitator_addr: str, listener_port: int = 0) -> dict:
    """What Envoy gets: the seller's configuration pointed at the demo's facilitator. With
    Sign-In-With-X on, the demo's own listener (X402_DEMO_PORT) is one of its origins."""
    loaded = {k: v for k, v in config.items() if k not in DROPPED}
    loaded["facilitatorUrl"] = f"http://{facilitator_addr}"
    loaded["facilitatorCluster"] = FACILITATOR_CLUSTER
    siwx = loaded.get("siwx")
    if listener_port and isinstance(siwx, dict) and isinstance(siwx.get("origins"), list):
        own = [f"http://{host}:{listener_port}" for host in ("127.0.0.1", "localhost")]
        loaded["siwx"] = {**siwx, "origins": siwx["origins"] + [o for o in own if o not in siwx["origins"]]}
    return loaded


def facilitator_settings(config: dict) -> dict:
    """harness.Facilitator options for this configuration: its asset, and the payTo's token
    account in the RPC stand-in (a payTo that is not an address is left to the filter to refuse)."""
    asset = config.get("asset") if isinstance(config.get("asset"), dict) else {}
    settings = {"network": DEVNET, "asset": asset.get("address", DEVNET_USDC), "decimals": asset.get("decimals", 6),
                "ata_owners": []}
    try:
        pubkey(config.get("payTo"))
        settings["ata_owners"] = [config["payTo"]]
    except (TypeError, ValueError):
        pass
    if not isinstance(settings["asset"], str) or not isinstance(settings["decimals"], int):
        settings.update(asset=DEVNET_USDC, decimals=6)  # the filter names the bad field
    return settings


# --------------------------------------------------------------------------- pricing (src/pricing.rs)

UNITS = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def tier_seconds(tier_id: str) -> int:
    return int(tier_id[:-1]) * UNITS[tier_id[-1]]


def label(seconds: int) -> str:
    """86400 -> "1 day", 5400 -> "90 minutes" (pricing::label)."""
    for name, size in (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count, unit = seconds // size, name
            break
    else:
        count, unit = seconds, "second"
    return f"1 {unit}" if count == 1 else f"{count} {unit}s"


def parse_price(text: str, decimals: int) -> int:
    """"0.50" with 6 decimals -> 500000 (pricing::parse_price, for prices the filter accepted)."""
    whole, _, fraction = text.partition(".")
    return int(whole + fraction.ljust(decimals, "0"))


def duration_price(rate_atomic: int, seconds: int, decimals: int) -> int | None:
    """rate x seconds / 3600, rounded half up to 4 USD places for 6 decimals (pricing::duration_price)."""
    exponent = decimals - 4 if decimals > 4 else max(decimals - 2, 0)
    unit = 10 ** exponent
    units = (rate_atomic * seconds * 2 + 3_600 * unit) // (3_600 * unit * 2)
    atomic = units * unit
    return atomic if 0 < atomic < 2 ** 64 else None


def usd(atomic: int, decimals: int) -> str:
    """500000 -> "0.50", 4500 -> "0.0045" (at least two places)."""
    whole, fraction = divmod(atomic, 10 ** decimals)
    digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
    digits = digits.ljust(min(2, decimals), "0")
    return f"{whole}.{digits}" if digits else str(whole)


# --------------------------------------------------------------------------- paths


def _matches(rule: dict, path: str) -> bool:
    return path.startswith(rule["prefix"]) if "prefix" in rule else path == rule["path"]


def protected(config: dict, path: str) -> bool:
    """Config::applies_to: protected (everything when `protect` is empty) and not bypassed."""
    protect, bypass = config.get("protect") or [], config.get("bypass") or []
    return (not protect or any(_matches(r, path) for r in protect)) and not any(_matches(r, path) for r in bypass)


def _examples(rules: list[dict]) -> list[str]:
    out = []
    for rule in rules:
        if "path" in rule:
            out.append(rule["path"])
        else:
            prefix = rule["prefix"]
            out += [prefix + "data" if prefix.endswith("/") else prefix + "/data", prefix]
    return out


def protected_path(config: dict) -> str:
    for path in _examples(config.get("protect") or [{"prefix": "/"}]):
        if protected(config, path):
            return path
    raise DemoError("no path of `protect` is outside `bypass`: this configuration sells nothing", EXIT_CONFIG)


def unprotected_path(config: dict) -> str | None:
    for path in [*_examples(config.get("bypass") or []), "/health", "/"]:
        if not protected(config, path):
            return path
    return None


# --------------------------------------------------------------------------- the banner


def _shown(path: pathlib.Path) -> str:
    """A path as the user should type it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _rules(rules: list[dict]) -> str:
    return ", ".join(f"prefix {r['prefix']}" if "prefix" in r else f"path {r['path']}" for r in rules)


def banner(config: dict, config_path: pathlib.Path, base: str, admin: str, upstream_port: int, facilitator_addr: str,
           run_dir: pathlib.Path, rpc_addr: str = "") -> str:
    """What `make run` prints, all of it derived from the loaded configuration. Shell commands are
    the lines indented by exactly four spaces (tests/integration/test_demo.py runs them)."""
    decimals = (config.get("asset") or {}).get("decimals", 6)
    asset = (config.get("asset") or {}).get("address", f"{DEVNET_USDC} (devnet USDC)")
    tiers = sorted(((tier_seconds(t), t, p) for t, p in (config.get("tiers") or {}).items()))
    rate = config.get("ratePerHour")
    rate_atomic = parse_price(rate, decimals) if rate else None
    low, high = config.get("minDurationSeconds", 60), config.get("maxDurationSeconds", 2_592_000)
    path, free = protected_path(config), unprotected_path(config)
    pay = shlex.quote(_shown(ROOT / "tools" / "x402-pay"))
    purchase = shlex.quote(_shown(run_dir / "purchase.txt"))

    def url(query: str = "", at: str = path) -> str:
        return shlex.quote(f"{base}{at}{query}")

    lines = [
        f"x402 access pass demo, selling from {_shown(config_path)}",
        f"  on Solana devnet ({DEVNET}) with the project's offline test facilitator: nothing reaches a chain",
        f"  payTo        {config['payTo']}",
        f"  asset        {asset}, {decimals} decimals",
        f"  listener     {base}",
        f"  admin        {admin}",
        f"  protect      {_rules(config.get('protect') or []) or 'every path'}"
        + (f"; bypass {_rules(config['bypass'])}" if config.get("bypass") else ""),
        f"  upstream     127.0.0.1:{upstream_port} (answers JSON echoing the headers it gets)",
        f"  facilitator  {facilitator_addr} (fee payer {FEE_PAYER})",
    ]
    if rpc_addr:  # what the official clients' Solana scheme signs against (README: every kind of buyer)
        lines.append(f"  solana rpc   http://{rpc_addr} (the RPC stand-in: a buyer client's rpcUrl)")
    lines += [
        f"  logs         {_shown(run_dir)}/",
        "",
        "Passes for sale (prices in USD, paid in the asset above):",
    ]
    width = max([len(t) for _, t, _ in tiers] + [3])
    lines += [f"  {t.ljust(width)}  {label(s).ljust(10)}  {p} USD" for s, t, p in tiers]
    if rate:
        lines.append(f"  ?duration=<seconds>: {rate} per hour, {low} to {high} seconds"
                     + ("" if tiers else "; no tiers: the default pass is 1 hour"))
    if tiers:  # the walk-through buys the second shortest tier: not the default pass, when there is a choice
        default = f"the shortest tier, {tiers[0][1]}"
        walk_seconds, walk_tier, walk_text = tiers[1] if len(tiers) > 1 else tiers[0]
        walk_price, walk_query = parse_price(walk_text, decimals), f"?tier={walk_tier}"
        walk_name = f"tier {walk_tier} ({label(walk_seconds)})"
    else:
        default = "1 hour at ratePerHour"
        # Named as a duration: a payment naming no pass is a paid request, answered by the upstream.
        walk_price, walk_query = duration_price(rate_atomic, 3_600, decimals), "?duration=3600"
        walk_name = "the default pass (1 hour)"
    asks = " or ".join((["?tier="] if tiers else []) + (["?duration="] if rate else []))
    lines.append(f"  a request without {asks} buys the default pass: {default}")

    lines += [
        "",
        "Walk-through (from this directory; the lines indented by four spaces are shell commands):",
        "",
        "1. No pass: a 402 challenge (PAYMENT-REQUIRED and X-ACCESS-PASS-TIERS are base64 JSON)",
        f"    curl -i {url()}",
        "",
        f"2. Buy {walk_name} for {usd(walk_price, decimals)} USD: x402-pay reads the 402 of",
        f"   {path}{walk_query}, signs a payment of its price with a demo buyer key and prints the",
        "   PAYMENT-SIGNATURE value; curl POSTs it and gets the pass (ACCESS-PASS header, JSON body)",
        f"    SIG=$({pay} {url(walk_query)})",
        f"    curl -si -X POST -H \"PAYMENT-SIGNATURE: $SIG\" {url(walk_query)} | tee {purchase}",
        f"    TOKEN=$(sed -n 's/^access-pass: //Ip' {purchase} | tr -d '\\r')",
        "",
        "3. Use the pass: forwarded to the upstream with x-access-pass-* headers, without the token",
        f"    curl -i -H \"Authorization: Bearer $TOKEN\" {url()}",
        "",
        "4. Other passes, bought in one step (x402-pay --buy pays and prints the token):",
    ]
    others = [t for _, t, _ in tiers if f"?tier={t}" != walk_query]
    if others:
        lines.append(f"    TOKEN=$({pay} --buy {url(f'?tier={others[-1]}')})")
    if rate:
        seconds = min(max(CUSTOM_DURATION_EXAMPLE, low), high)
        price = duration_price(rate_atomic, seconds, decimals)
        if price is not None:
            lines.append(f"    TOKEN=$({pay} --buy {url(f'?duration={seconds}')})"
                         f"  # {label(seconds)} at {rate}/hour: {usd(price, decimals)} USD")
    if not others and not rate:
        lines.append("   (none: this configuration sells one pass)")
    lines += [""]
    if free:
        lines += [f"Not protected (straight to the upstream): {free}", f"    curl -i {url(at=free)}", ""]
    lines += [
        "Counters:",
        f"    curl -s {shlex.quote(admin + '/stats?filter=x402_access_pass')}",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- running it


def envoy_failure(exc: EnvoyExited, log_path: pathlib.Path, config_path: pathlib.Path) -> DemoError:
    """One line for an Envoy that exited: the filter's on_configure error when there is one."""
    log = exc.log
    found = re.search(r"invalid x402-access-pass configuration: [^\r\n]*", log)
    if found:
        return DemoError(f"{_shown(config_path)}: {found.group(0)}", EXIT_CONFIG)
    if "Address already in use" in log:
        return DemoError(f"Envoy could not bind its ports (in use?): set X402_DEMO_PORT / X402_DEMO_ADMIN_PORT "
                         f"(0 = any free port); see {_shown(log_path)}")
    critical = [line for line in log.splitlines() if "[critical]" in line or "[error]" in line]
    detail = f": {critical[0].split('] ')[-1]}" if critical else ""
    return DemoError(f"Envoy exited with {exc.returncode}{detail}; see {_shown(log_path)}")


def port_from_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) > 65535:
        raise DemoError(f"{name}={value!r} is not a port number (0 = any free port)")
    return int(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=pathlib.Path, default=DEFAULT_CONFIG,
                        help="plugin configuration JSON (default envoy/demo/plugin.json)")
    args = parser.parse_args()
    stopping = False

    def on_signal(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    facilitator = upstream = envoy = None
    try:
        listener_port = port_from_env("X402_DEMO_PORT", 10000)
        admin_port = port_from_env("X402_DEMO_ADMIN_PORT", 9901)
        run_dir = pathlib.Path(os.environ.get("X402_DEMO_RUN_DIR") or ROOT / ".run")
        run_dir.mkdir(parents=True, exist_ok=True)
        config = load_config(args.config)
        for old_log in ("facilitator.log", "envoy-demo.log"):  # the processes append: start each run afresh
            (run_dir / old_log).unlink(missing_ok=True)
        print(f"make run: starting the test facilitator, the demo upstream and Envoy (logs in {_shown(run_dir)}/)",
              flush=True)
        try:
            facilitator = Facilitator(run_dir, **facilitator_settings(config)).start()
        except (RuntimeError, TimeoutError) as err:
            raise DemoError(f"the test facilitator did not start: {str(err).splitlines()[0]}") from None
        upstream = DemoUpstream().start()
        envoy = Envoy("demo", demo_plugin_config(config, facilitator.addr, listener_port), facilitator.port, upstream.port, run_dir,
                      listener_port=listener_port, admin_port=admin_port)
        try:
            envoy.start()
        except EnvoyExited as exc:
            raise envoy_failure(exc, envoy.proc.log_path, args.config) from None
        except (RuntimeError, TimeoutError) as err:
            raise DemoError(f"Envoy did not start: {str(err).splitlines()[0]}") from None
        print("\n" + banner(config, args.config, f"http://127.0.0.1:{envoy.port}",
                            f"http://127.0.0.1:{envoy.admin[1]}", upstream.port, facilitator.addr, run_dir,
                            facilitator.rpc),
              flush=True)
        while not stopping:
            for name, proc in (("facilitator", facilitator.proc), ("envoy", envoy.proc)):
                if not proc.alive():
                    raise DemoError(f"{name} exited with {proc.proc.returncode}; see {_shown(proc.log_path)}")
            time.sleep(0.5)
        print("stopping...", flush=True)
        return 0
    except DemoError as err:
        print(f"make run: {err}", file=sys.stderr, flush=True)
        return err.status
    finally:
        for part in (envoy, facilitator, upstream):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # noqa: BLE001 - keep stopping the others
                    print(f"error stopping {part}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
