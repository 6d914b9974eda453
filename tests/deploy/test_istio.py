"""envoy/istio/: the WasmPlugin, the facilitator's ServiceEntry + DestinationRule, the Secret and
the Deployment patch.

Checked, offline, against
- the WasmPlugin CRD vendored from Istio (schemas/istio/wasmplugins.extensions.istio.io.yaml):
  openAPIV3Schema with jsonschema, unknown fields rejected as `kubectl --validate=strict` does,
  and its CEL rules emulated;
- @kubernetes-models/istio@3.0.1 (npm, pinned), compiled from Istio 1.29.2's crd-all.gen.yaml:
  the ajv validators and TypeScript types of WasmPlugin, ServiceEntry and DestinationRule;
- the filter itself: the pluginConfig rendered into an Envoy config the way Istio delivers it
  (configuration JSON, vmConfig.env HOST -> host_env_keys, the outbound|443||x402.dexter.cash
  cluster) passes `envoy --mode validate`, which runs the plugin's on_configure, with the secret
  in the environment, and fails without it.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from deploylib import OUT, REPO, SCHEMAS, WASM, envoy_validate, harness, load_yaml_docs, npm_validate, validate_against_crd

ISTIO = REPO / "envoy/istio"
SECRET_VALUE = "validate-only-secret-0123456789abcdef0123"


def docs_of(kind: str) -> list[dict]:
    return [d for f in sorted(ISTIO.glob("*.yaml")) for d in load_yaml_docs(f) if d.get("kind") == kind]


@pytest.fixture(scope="module")
def wasmplugin() -> dict:
    (wp,) = docs_of("WasmPlugin")
    return wp


@pytest.fixture(scope="module")
def seller_wasmplugin(wasmplugin) -> dict:
    """The WasmPlugin as a seller deploys it: payTo set to their wallet (the shipped one is a
    placeholder the filter refuses: test_reference_configs.py)."""
    wp = copy.deepcopy(wasmplugin)
    assert wp["spec"]["pluginConfig"]["payTo"] == harness.PAY_TO_PLACEHOLDER
    wp["spec"]["pluginConfig"]["payTo"] = harness.SELLER_WALLET
    return wp


def named(kind: str, name: str) -> dict:
    (doc,) = [d for d in docs_of(kind) if d["metadata"]["name"] == name]
    return doc


@pytest.fixture(scope="module")
def service_entry() -> dict:
    """The facilitator's (facilitator.yaml)."""
    return named("ServiceEntry", "x402-facilitator")


@pytest.fixture(scope="module")
def destination_rule() -> dict:
    return named("DestinationRule", "x402-facilitator")


def commented_ledger_block() -> dict:
    """The `ledger` block wasmplugin.yaml documents, commented out (the default is local), as a
    seller uncomments it."""
    lines = (ISTIO / "wasmplugin.yaml").read_text().splitlines()
    start = lines.index("    # ledger:")
    block = []
    for line in lines[start:]:
        if not line.startswith("    # "):
            break
        block.append(line.replace("    # ", "", 1))
    return yaml.safe_load("\n".join(block))["ledger"]


@pytest.fixture(scope="module")
def wasm_crd() -> dict:
    (crd,) = load_yaml_docs(SCHEMAS / "istio/wasmplugins.extensions.istio.io.yaml")
    assert crd["kind"] == "CustomResourceDefinition"
    return crd


def istio_manifests() -> list[dict]:
    return docs_of("WasmPlugin") + docs_of("ServiceEntry") + docs_of("DestinationRule")


# --------------------------------------------------------------------------- schemas


def test_wasmplugin_matches_the_vendored_crd(wasmplugin, wasm_crd):
    assert validate_against_crd(wasm_crd, wasmplugin) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda s: s.update(phase="BEFORE_AUTHN"), "is not one of"),
    (lambda s: s.update(failStrategy="FAIL_SOMETIMES"), "is not one of"),
    (lambda s: s.update(sha256="not-a-digest"), "does not match"),
    (lambda s: s.update(pluginConfg={}), "Additional properties are not allowed"),
    (lambda s: s["vmConfig"]["env"][0].update(value="inline-secret"), "value may only be set when valueFrom is INLINE"),
    (lambda s: s["vmConfig"]["env"].append({"name": "X402_PASS_SECRET"}), "duplicate entry"),
    (lambda s: s.update(targetRefs=[{"kind": "Gateway", "name": "gw"}]), "only one of targetRefs or selector"),
    (lambda s: s.update(url="ftp://example.com/plugin.wasm"), "url must have schema one of"),
    (lambda s: s["selector"]["matchLabels"].update(app="*"), "wildcard not allowed in label value"),
    (lambda s: s.pop("url"), "'url' is a required property"),
    (lambda s: s.update(priority="high"), "is not of type"),
])
def test_the_vendored_crd_check_rejects_what_the_api_server_rejects(wasmplugin, wasm_crd, mutate, expected):
    bad = copy.deepcopy(wasmplugin)
    mutate(bad["spec"])
    errors = validate_against_crd(wasm_crd, bad)
    assert any(expected in e for e in errors), errors


def test_npm_validators_accept_every_manifest():
    manifests = istio_manifests()
    assert {m["kind"] for m in manifests} == {"WasmPlugin", "ServiceEntry", "DestinationRule"}
    results = npm_validate(manifests)
    assert [(r["kind"], r["schemaErrors"], r["typeErrors"]) for r in results] == \
        [(m["kind"], [], []) for m in manifests]


def test_npm_validators_catch_broken_manifests(wasmplugin, service_entry, destination_rule):
    def broken(doc, mutate):
        doc = copy.deepcopy(doc)
        mutate(doc["spec"])
        return doc

    cases = [
        (broken(wasmplugin, lambda s: s.update(phase="BEFORE_AUTHN")), "schema"),
        (broken(wasmplugin, lambda s: s["vmConfig"]["env"][0].update(valueFrom="SECRET")), "schema"),
        (broken(wasmplugin, lambda s: s.update(imagePullPolicy="Sometimes")), "schema"),
        (broken(service_entry, lambda s: s.update(resolution="MAGIC")), "schema"),
        (broken(service_entry, lambda s: s["ports"][0].pop("name")), "schema"),
        (broken(service_entry, lambda s: s.pop("hosts")), "schema"),
        (broken(destination_rule, lambda s: s["trafficPolicy"]["portLevelSettings"][0]["tls"].update(mode="STRICT")), "schema"),
        (broken(destination_rule, lambda s: s["trafficPolicy"]["portLevelSettings"][0]["tls"].update(snii="x")), "type"),
        (broken(service_entry, lambda s: s.update(host="x402.dexter.cash")), "type"),
        (broken(wasmplugin, lambda s: s["vmConfig"].update(envs=[])), "type"),
    ]
    results = npm_validate([c for c, _ in cases])
    for (doc, where), result in zip(cases, results):
        errors = result["schemaErrors"] if where == "schema" else result["typeErrors"]
        assert errors, f"not caught: {json.dumps(doc['spec'])[:300]}"


# --------------------------------------------------------------------------- the deployment as a whole


def test_plugin_is_a_fail_closed_paywall_with_its_secret_from_the_proxy_env(wasmplugin):
    spec = wasmplugin["spec"]
    assert wasmplugin["apiVersion"] == "extensions.istio.io/v1alpha1"
    assert spec["phase"] == "AUTHN"
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert spec["url"].startswith("oci://")
    assert spec["imagePullPolicy"] in ("IfNotPresent", "Always")
    assert spec["selector"]["matchLabels"]
    config = spec["pluginConfig"]
    assert not {"secret", "privateKey"} & set(config), "a signing key in plaintext pluginConfig"
    for key in config.get("keys", []):
        assert not {"secret", "privateKey"} & set(key), "a signing key in plaintext pluginConfig"
    env = {e["name"]: e for e in spec["vmConfig"]["env"]}
    assert env[config["secretEnv"]] == {"name": config["secretEnv"], "valueFrom": "HOST"}


def test_facilitator_cluster_is_the_sidecar_cluster_of_the_service_entry(wasmplugin, service_entry, destination_rule):
    config = wasmplugin["spec"]["pluginConfig"]
    host = config["facilitatorUrl"].split("://", 1)[1].split("/", 1)[0]
    assert config["facilitatorUrl"].startswith("https://")
    assert host in service_entry["spec"]["hosts"]
    port = next(p for p in service_entry["spec"]["ports"] if p["number"] == 443)
    assert config["facilitatorCluster"] == f"outbound|{port['number']}||{host}"
    assert service_entry["spec"]["location"] == "MESH_EXTERNAL"
    assert service_entry["spec"]["resolution"] == "DNS"
    assert destination_rule["spec"]["host"] == host
    tls = [p["tls"] for p in destination_rule["spec"]["trafficPolicy"]["portLevelSettings"]
           if p["port"]["number"] == 443]
    assert tls == [{"mode": "SIMPLE", "sni": host, "subjectAltNames": [host]}]
    namespaces = {d["metadata"]["namespace"] for d in (wasmplugin, service_entry, destination_rule)}
    assert len(namespaces) == 1, "the ServiceEntry/DestinationRule must be visible to the plugin's workloads"


def test_secret_reaches_the_proxy_container(wasmplugin):
    (secret,) = docs_of("Secret")
    patch = load_yaml_docs(ISTIO / "deployment-patch.yaml")[0]
    (proxy,) = [c for c in patch["spec"]["template"]["spec"]["containers"] if c["name"] == "istio-proxy"]
    name = wasmplugin["spec"]["pluginConfig"]["secretEnv"]
    (env,) = [e for e in proxy["env"] if e["name"] == name]
    ref = env["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    assert secret["metadata"]["namespace"] == wasmplugin["metadata"]["namespace"]


# --------------------------------------------------------------------------- the filter accepts it


def render_like_istio(wasmplugin: dict, wasm_path, upstream_port: int = 8080, with_facilitator: bool = True) -> str:
    """An Envoy config carrying the WasmPlugin the way the sidecar gets it: the filter with
    pluginConfig as its JSON configuration, vmConfig.env HOST entries as host_env_keys (INLINE
    ones as key_values), fail_open from failStrategy, and the facilitator cluster under Istio's
    name with TLS origination per the DestinationRule."""
    spec = wasmplugin["spec"]
    env = spec.get("vmConfig", {}).get("env", [])
    host_keys = [e["name"] for e in env if e.get("valueFrom", "INLINE") == "HOST"]
    inline = {e["name"]: e.get("value", "") for e in env if e.get("valueFrom", "INLINE") == "INLINE"}
    cluster = spec["pluginConfig"]["facilitatorCluster"]
    config = {
        "static_resources": {
            "listeners": [{
                "name": "virtualInbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "inbound",
                        "route_config": {"name": "local", "virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "inbound|8080||"}}]}]},
                        "http_filters": [
                            {"name": f"{wasmplugin['metadata']['namespace']}.{wasmplugin['metadata']['name']}",
                             "typed_config": {
                                 "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                 "config": {
                                     "name": spec.get("pluginName", wasmplugin["metadata"]["name"]),
                                     "root_id": spec.get("pluginName", ""),
                                     "fail_open": spec.get("failStrategy") == "FAIL_OPEN",
                                     "vm_config": {
                                         "vm_id": "x402_access_pass",
                                         "runtime": "envoy.wasm.runtime.v8",
                                         "code": {"local": {"filename": str(wasm_path)}},
                                         "environment_variables": {"host_env_keys": host_keys, "key_values": inline},
                                     },
                                     "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                                       "value": json.dumps(spec["pluginConfig"])},
                                 }}},
                            {"name": "envoy.filters.http.router",
                             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                        ],
                    }}]}],
            }],
            "clusters": [
                {"name": cluster, "type": "STRICT_DNS", "connect_timeout": "5s",
                 "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {
                     "address": {"socket_address": {"address": "x402.dexter.cash", "port_value": 443}}}}]}]},
                 "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                     "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                     "sni": "x402.dexter.cash",
                     "common_tls_context": {"validation_context": {
                         "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
                         "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "x402.dexter.cash"}}]}}}}},
                {"name": "inbound|8080||", "type": "STATIC", "connect_timeout": "1s",
                 "load_assignment": {"cluster_name": "inbound|8080||", "endpoints": [{"lb_endpoints": [{"endpoint": {
                     "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]}},
            ],
        },
    }
    if not with_facilitator:
        config["static_resources"]["clusters"].pop(0)
    return yaml.safe_dump(config, sort_keys=False)


def test_plugin_config_passes_envoy_validate_with_the_secret_in_the_env(seller_wasmplugin):
    out = OUT / "istio"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "envoy-from-wasmplugin.yaml"
    path.write_text(render_like_istio(seller_wasmplugin, WASM))
    name = seller_wasmplugin["spec"]["pluginConfig"]["secretEnv"]
    ok = envoy_validate(path, {name: SECRET_VALUE})
    (out / "validate-with-secret.log").write_text(ok.stdout + ok.stderr)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert re.search(r"configuration '.*' OK", ok.stdout + ok.stderr), ok.stdout + ok.stderr

    missing = envoy_validate(path)
    log = missing.stdout + missing.stderr
    (out / "validate-without-secret.log").write_text(log)
    assert missing.returncode != 0
    assert "invalid x402-access-pass configuration: secretEnv" in log, log[-3000:]


def test_a_plaintext_short_secret_is_refused_by_the_filter(seller_wasmplugin):
    """The same render with a secret in pluginConfig that is too short: on_configure refuses it,
    so a fail-closed plugin never serves with it."""
    bad = copy.deepcopy(seller_wasmplugin)
    cfg = bad["spec"]["pluginConfig"]
    cfg.pop("secretEnv")
    cfg["secret"] = "too-short"
    path = OUT / "istio" / "envoy-short-secret.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_like_istio(bad, WASM))
    proc = envoy_validate(path)
    assert proc.returncode != 0
    assert "invalid x402-access-pass configuration: secret" in proc.stdout + proc.stderr


def test_without_the_facilitator_cluster_challenges_are_503_fee_payer_unknown(seller_wasmplugin, monkeypatch):
    """The ServiceEntry missing: the sidecar has no outbound|443||x402.dexter.cash cluster. A real
    Envoy runs the plugin: every request that needs the facilitator's fee payer answers 503
    fee_payer_unknown (never a 402 without a fee payer, never the API for free), while a valid
    pass still goes through (checking a pass needs no callout)."""
    from compose_live import _ConfigEnvoy
    from helpers import hs256, pass_claims
    from upstream import DemoUpstream

    name = seller_wasmplugin["spec"]["pluginConfig"]["secretEnv"]
    monkeypatch.setenv(name, SECRET_VALUE)
    up = DemoUpstream().start()
    envoy = None
    try:
        config = yaml.safe_load(render_like_istio(seller_wasmplugin, WASM, up.port, with_facilitator=False))
        config["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}
        envoy = _ConfigEnvoy("no-service-entry", config, OUT / "istio").start(timeout=30)
        resp = envoy.get("/api/data")
        assert resp.status == 503, resp
        assert resp.json()["reason"] == "fee_payer_unknown" and resp.headers.get("retry-after"), resp
        assert "is the cluster defined?" in envoy.log_text()
        network = seller_wasmplugin["spec"]["pluginConfig"]["network"]
        token = hs256(pass_claims(harness.MERCHANT, network=network), SECRET_VALUE)
        ok = envoy.get("/api/data", {"Authorization": f"Bearer {token}"})
        assert ok.status == 200 and ok.json()["upstream"] == "demo", ok
        assert envoy.stats()["wasmcustom.x402_access_pass.fee_payer_unavailable"] >= 1
    finally:
        if envoy:
            envoy.stop()
        up.stop()


# --------------------------------------------------------------------------- the shared ledger (ledger.yaml)


def test_the_ledger_block_names_the_cluster_of_the_ledger_service_entry(wasmplugin):
    ledger = commented_ledger_block()
    entry, rule = named("ServiceEntry", "x402-ledger"), named("DestinationRule", "x402-ledger")
    (host,) = entry["spec"]["hosts"]
    (port,) = entry["spec"]["ports"]
    assert ledger == {"kind": "etcd", "cluster": f"outbound|{port['number']}||{host}", "authority": host,
                      "prefix": "/x402-access-pass/", "timeoutMs": 1000}
    assert port["number"] == 2379 and port["protocol"] == "HTTP"
    assert entry["spec"]["location"] == "MESH_INTERNAL" and entry["spec"]["resolution"] == "DNS"
    assert len(entry["spec"]["endpoints"]) == 3, "three etcd members: one may die"
    assert rule["spec"]["host"] == host
    policy = rule["spec"]["trafficPolicy"]
    assert policy["connectionPool"]["http"]["h2UpgradePolicy"] == "DO_NOT_UPGRADE", "the JSON gateway is HTTP/1.1"
    assert int(policy["connectionPool"]["tcp"]["connectTimeout"].removesuffix("ms")) < ledger["timeoutMs"]
    outlier = policy["outlierDetection"]
    assert outlier["splitExternalLocalOriginErrors"] is True and outlier["consecutiveLocalOriginFailures"] == 1
    assert outlier["consecutive5xxErrors"] == 0 and outlier["maxEjectionPercent"] == 100
    namespaces = {d["metadata"]["namespace"] for d in (wasmplugin, entry, rule)}
    assert len(namespaces) == 1, "the ledger's ServiceEntry/DestinationRule must be visible to the plugin's workloads"


def test_the_shipped_plugin_keeps_the_local_ledger(wasmplugin):
    assert "ledger" not in wasmplugin["spec"]["pluginConfig"], "one pod needs no etcd: the default stays local"


def test_the_plugin_config_with_the_ledger_block_passes_envoy_validate(seller_wasmplugin):
    name = seller_wasmplugin["spec"]["pluginConfig"]["secretEnv"]
    out = OUT / "istio"
    out.mkdir(parents=True, exist_ok=True)
    for kind, ok in (("etcd", True), ("redis", False)):
        wp = copy.deepcopy(seller_wasmplugin)
        wp["spec"]["pluginConfig"]["ledger"] = {**commented_ledger_block(), "kind": kind}
        path = out / f"envoy-from-wasmplugin-ledger-{kind}.yaml"
        path.write_text(render_like_istio(wp, WASM))
        proc = envoy_validate(path, {name: SECRET_VALUE})
        log = proc.stdout + proc.stderr
        (out / f"validate-ledger-{kind}.log").write_text(log)
        if ok:
            assert proc.returncode == 0, log[-3000:]
        else:
            assert proc.returncode != 0 and "invalid x402-access-pass configuration: ledger" in log, log[-3000:]
