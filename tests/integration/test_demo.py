"""`make run` (tools/demo.py) sells from a configuration file, and its walk-through works as printed.

Each test writes a plugin configuration (or takes envoy/demo/plugin.json), starts the demo on free
ports (X402_DEMO_PORT=0, X402_DEMO_ADMIN_PORT=0) with its own run directory, reads the banner,
runs the shell commands it prints (the lines indented by four spaces) with bash, in order, and
checks what each answered; then stops the demo by its PID (SIGINT, then SIGTERM, then SIGKILL,
each bounded) and checks that the demo stopped the processes it started.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

import x402pay as xp
from harness import EXTERNAL, EXTERNAL_SKIP, NETWORK, OUT, REPO, http_request, wait_until

pytestmark = [
    pytest.mark.skipif(EXTERNAL, reason=EXTERNAL_SKIP),  # the demo starts an Envoy of its own
    pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through's commands use curl"),
]

DEMO = REPO / "tools" / "demo.py"
DEFAULT_CONFIG = REPO / "envoy" / "demo" / "plugin.json"
BANNER_END = "Ctrl-C stops everything."
START_TIMEOUT = 90.0
SECRET = "demo-test-secret-0123456789abcdef0123456789"


class Demo:
    """tools/demo.py as `make run` starts it, with stdout and stderr in files."""

    def __init__(self, config: pathlib.Path, out: pathlib.Path):
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.stdout_path, self.stderr_path = out / "demo.stdout", out / "demo.stderr"
        env = {**os.environ, "X402_DEMO_PORT": "0", "X402_DEMO_ADMIN_PORT": "0", "X402_DEMO_RUN_DIR": str(out / "run")}
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen([sys.executable, str(DEMO), "--config", str(config)], cwd=REPO, env=env,
                                         stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        self.children: list[int] = []

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def banner(self) -> str:
        def ready():
            if BANNER_END in self.stdout():
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"the demo exited with {self.proc.returncode}:\n{self.stdout()}\n{self.stderr()}")
            return False

        wait_until(ready, START_TIMEOUT, interval=0.2, what="the demo's banner")
        self.children = _children(self.proc.pid)
        text = self.stdout()
        return text[:text.index(BANNER_END) + len(BANNER_END)]

    def stop(self) -> int | None:
        """SIGINT (Ctrl-C), then SIGTERM, then SIGKILL of the demo and whatever it left."""
        if not self.children and self.proc.poll() is None:
            self.children = _children(self.proc.pid)
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        left = [pid for pid in self.children if _alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"the demo left processes running: {left}"
        return self.proc.returncode


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def out_dir(request) -> pathlib.Path:
    path = OUT / "test_demo" / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def demos(out_dir):
    started: list[Demo] = []

    def start(config: pathlib.Path | dict) -> Demo:
        if isinstance(config, dict):
            path = out_dir / f"config-{len(started)}.json"
            path.write_text(json.dumps(config, indent=2))
            config = path
        demo = Demo(config, out_dir / f"demo-{len(started)}")
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.stop()


# --------------------------------------------------------------------------- reading what it printed


def commands(banner: str) -> list[str]:
    """The walk-through's shell commands, exactly as printed."""
    walk = banner[banner.index("Walk-through"):]
    return [line[4:] for line in walk.splitlines() if re.match(r"^    \S", line)]


def run_commands(cmds: list[str], out: pathlib.Path) -> list[tuple[str, int, str]]:
    """Runs `cmds` in one bash, in order, from the repository root; (command, status, stdout) each."""
    marker = "@@x402-demo-test@@"
    script = "".join(f"{cmd}\necho; echo '{marker}' $?\n" for cmd in cmds)
    (out / "walk-through.sh").write_text(script)
    result = subprocess.run(["bash", "--norc", "--noprofile", "-u"], input=script, cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    (out / "walk-through.out").write_text(result.stdout + "\n--- stderr\n" + result.stderr)
    parts = result.stdout.split(marker)
    assert len(parts) == len(cmds) + 1, f"not every command ran:\n{result.stdout}\n{result.stderr}"
    outputs = []
    for i, cmd in enumerate(cmds):
        status_line, _, _ = parts[i + 1].lstrip(" ").partition("\n")
        text = parts[i] if i == 0 else parts[i].split("\n", 1)[1]
        outputs.append((cmd, int(status_line.strip()), text))
    return outputs


def http_of(text: str) -> tuple[int, dict[str, str], str]:
    """Status, headers (lowercase names) and body of `curl -i` output."""
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.strip("\n").splitlines()
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body.strip()


def one(outputs, predicate, what):
    found = [o for o in outputs if predicate(o[0])]
    assert len(found) == 1, f"expected one command that {what}: {[o[0] for o in outputs]}"
    return found[0]


def banner_tiers(banner: str) -> list[tuple[str, str, str]]:
    section = banner[banner.index("Passes for sale"):banner.index("Walk-through")]
    return re.findall(r"^  (\d+[mhdw]) +(\d+ \w+?) +(\S+) USD$", section, re.M)


# --------------------------------------------------------------------------- the test


def walk_through(demo: Demo, config: dict, expect_tier: str, expect_free: str | None) -> dict:
    banner = demo.banner()
    assert config["payTo"] in banner and NETWORK in banner and "devnet" in banner
    run_dir = os.path.relpath(demo.out / "run", REPO)  # as typed from the repository root, where the demo runs
    assert f"  logs         {run_dir}/\n" in banner and f"tee {run_dir}/purchase.txt\n" in banner, banner
    # The RPC stand-in a standard client signs against (README: every kind of buyer) answers.
    rpc = re.search(r"^  solana rpc   (http://127\.0\.0\.1:\d+) ", banner, re.M)
    assert rpc, banner
    host, port = rpc.group(1)[len("http://"):].split(":")
    ask = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getLatestBlockhash", "params": []}).encode()
    answer = http_request(host, int(port), "POST", "/", [("content-type", "application/json")], ask)
    assert answer.status == 200 and answer.json()["result"]["value"]["blockhash"], answer

    tiers = sorted((config.get("tiers") or {}).items(), key=lambda kv: xp_seconds(kv[0]))
    assert [(t, p) for t, _, p in banner_tiers(banner)] == tiers, banner

    cmds = commands(banner)
    outputs = run_commands(cmds, demo.out)
    for cmd, status, text in outputs:
        assert status == 0, f"{cmd!r} exited with {status}:\n{text}"
    base = re.search(r"^  listener +(http://127\.0\.0\.1:\d+)$", banner, re.M).group(1)
    admin = re.search(r"^  admin +(http://127\.0\.0\.1:\d+)$", banner, re.M).group(1)

    # 1. the challenge
    _, _, text = one(outputs, lambda c: c.startswith("curl -i ") and "Bearer" not in c and "/health" not in c
                     and (expect_free is None or expect_free not in c), "asks for the challenge")
    status, headers, _ = http_of(text)
    assert status == 402 and "payment-required" in headers and "x-access-pass-tiers" in headers, text
    offer = json.loads(base64.b64decode(headers["payment-required"]))["accepts"][0]
    assert offer["payTo"] == config["payTo"] and offer["network"] == NETWORK

    # 2. the purchase, of the tier the banner says
    cmd, _, text = one(outputs, lambda c: "PAYMENT-SIGNATURE: $SIG" in c, "posts the payment")
    # (without tiers the default pass: one hour at ratePerHour, tier "custom", named as ?duration=3600:
    # a payment naming no pass would be a paid request, answered by the upstream)
    assert f"tier={expect_tier}" in cmd if tiers else "?duration=3600" in cmd, cmd
    status, headers, body = http_of(text)
    assert status == 200 and headers.get("access-pass"), text
    assert json.loads(body)["accessPass"]["tier"] == expect_tier

    # 3. the pass at work: the upstream's answer, with the claim headers and without the token
    _, _, text = one(outputs, lambda c: "Authorization: Bearer $TOKEN" in c, "uses the pass")
    status, headers, body = http_of(text)
    assert status == 200, text
    seen = json.loads(body)
    assert seen["upstream"] == "demo"
    got = dict((k, v) for k, v in seen["headers"])
    assert got["x-access-pass-tier"] == expect_tier and "authorization" not in got, got

    # 4. one-step purchases: tokens; the custom duration at exactly the printed price
    buys = [o for o in outputs if "--buy" in o[0]]
    durations = [o for o in buys if "duration=" in o[0]]
    if config.get("ratePerHour"):
        assert len(durations) == 1, cmds
        cmd = durations[0][0]
        printed = re.search(r": (\d+\.\d+) USD$", cmd).group(1)
        url = re.search(r"'(http://[^']+)'", cmd).group(1)
        path = url[len(base):]
        challenge = http_request("127.0.0.1", int(base.rsplit(":", 1)[1]), "GET", path, timeout=10)
        atomic = int(json.loads(base64.b64decode(challenge.headers["payment-required"]))["accepts"][0]["amount"])
        whole, _, frac = printed.partition(".")
        assert atomic == int(whole + frac.ljust(6, "0")), (printed, atomic)
    else:
        assert not durations and "duration" not in banner, banner

    # the unprotected example goes straight through
    free = [o for o in outputs if expect_free and o[0] == f"curl -i {base}{expect_free}"]
    if expect_free:
        assert len(free) == 1, cmds
        status, _, body = http_of(free[0][2])
        assert status == 200 and ("upstream" in json.loads(body) or json.loads(body) == {"status": "ok"})

    # the counters: every purchase printed was made
    _, _, text = one(outputs, lambda c: c.startswith("curl -s ") and "/stats" in c and admin in c, "reads counters")
    assert f"wasmcustom.x402_access_pass.purchases_succeeded: {1 + len(buys)}" in text, text
    return {"banner": banner, "commands": cmds}


def xp_seconds(tier: str) -> int:
    return int(tier[:-1]) * {"m": 60, "h": 3600, "d": 86400, "w": 604800}[tier[-1]]


def seller_config(**overrides) -> dict:
    config = {
        "payTo": xp.derived_keypair("demo-test-seller").address,
        "network": NETWORK,
        "tiers": {"2h": "1.00", "10m": "0.10"},
        "secret": SECRET,
        "protect": [{"prefix": "/v1/"}],
        "bypass": [{"prefix": "/v1/open/"}],
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def test_the_default_plugin_json_loads_and_its_walk_through_works(demos):
    config = json.loads(DEFAULT_CONFIG.read_text())
    demo = demos(DEFAULT_CONFIG)
    shown = walk_through(demo, config, expect_tier="1h", expect_free="/api/public/data")
    assert "curl -i http://127.0.0.1:" in shown["banner"] and "/api/data" in shown["banner"]
    assert demo.stop() == 0 and "stopping..." in demo.stdout()


def test_a_sellers_config_with_a_rate_sells_as_printed(demos):
    # 0.37/hour for at most 4000 s: the example is 4000 s, 0.41111... USD, rounded to 0.4111.
    config = seller_config(ratePerHour="0.37", maxDurationSeconds=4000)
    shown = walk_through(demos(config), config, expect_tier="2h", expect_free="/v1/open/data")
    assert "/v1/data" in shown["banner"] and "0.4111 USD" in shown["banner"]


def test_a_sellers_config_without_a_rate_or_bypass_sells_as_printed(demos):
    config = seller_config(payTo=xp.derived_keypair("demo-test-seller-2").address, bypass=None,
                           tiers={"10m": "0.10", "2h": "1.00", "1d": "5.00"}, protect=[{"path": "/reports/today"}])
    shown = walk_through(demos(config), config, expect_tier="2h", expect_free="/health")
    assert "/reports/today" in shown["banner"]


def test_a_rate_only_config_sells_its_default_hour_as_printed(demos):
    config = seller_config(tiers=None, ratePerHour="0.25", bypass=None, protect=None)
    shown = walk_through(demos(config), config, expect_tier="custom", expect_free=None)
    assert "Buy the default pass (1 hour) for 0.25 USD" in shown["banner"] and "every path" in shown["banner"]
    assert "without ?duration= buys the default pass: 1 hour at ratePerHour" in shown["banner"]


@pytest.mark.parametrize("config,needle", [
    (seller_config(bogus=1), "invalid x402-access-pass configuration: bogus: unknown field"),
    (seller_config(tiers={"90s": "0.10"}), "invalid x402-access-pass configuration: tiers.90s: invalid tier id"),
    (seller_config(network=None), "the demo runs only on Solana devnet"),
], ids=["unknown-field", "bad-tier", "mainnet"])
def test_a_broken_config_is_one_line_and_a_non_zero_exit(demos, config, needle):
    demo = demos(config)
    status = demo.proc.wait(timeout=START_TIMEOUT)
    assert status == 2, (demo.stdout(), demo.stderr())
    lines = demo.stderr().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("make run: "), lines
    assert BANNER_END not in demo.stdout()


def test_a_config_that_is_not_json_is_one_line(demos, out_dir):
    path = out_dir / "broken.json"
    path.write_text('{"payTo": ')
    demo = demos(path)
    assert demo.proc.wait(timeout=30) == 2
    lines = demo.stderr().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"make run: {path}: not a JSON plugin configuration: "), lines
    assert "line 1 column 11" in lines[0]
