"""Shared helpers of the deployment tests (tests/deploy).

The process harness of the integration suite (tests/integration/harness.py) is imported, not
copied: its Facilitator, Envoy, wait_until, http_request and default plugin configuration.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.parse
from typing import Any, Callable, Iterator

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import harness  # noqa: E402  (tests/integration/harness.py)

WASM = harness.WASM
ENVOY_BIN = harness.ENVOY_BIN
OUT = REPO / "target" / "deploy-test"      # git-ignored (target/)
SCHEMAS = HERE / "schemas"


def load_yaml_docs(path: pathlib.Path) -> list[dict]:
    import yaml
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def envoy_validate(config_path: pathlib.Path, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`envoy --mode validate`: loads the wasm and runs the plugin's on_configure."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("X402_PASS")}
    return subprocess.run([str(ENVOY_BIN), "--mode", "validate", "-c", str(config_path), "-l", "warning",
                           "--use-dynamic-base-id"],
                          capture_output=True, text=True, timeout=timeout, env={**clean, **(env or {})})


# --------------------------------------------------------------------------- Kubernetes CRD schemas


def crd_version_schema(crd: dict, version: str) -> dict:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


def structural_to_jsonschema(node: Any) -> Any:
    """A Kubernetes structural schema (openAPIV3Schema) as a JSON Schema with the API server's
    semantics: `nullable`, `x-kubernetes-int-or-string`, and unknown fields rejected (what
    `kubectl apply --validate=strict`, the default, does) except under
    `x-kubernetes-preserve-unknown-fields`."""
    if isinstance(node, list):
        return [structural_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: structural_to_jsonschema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k not in ("nullable", "description", "format")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    is_object = node.get("type") == "object"
    if is_object and "properties" in node and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def walk_schema(schema: dict, value: Any, path: str = "") -> Iterator[tuple[str, dict, Any]]:
    """(path, schema node, value) for every value present in the document, following
    properties, additionalProperties and items."""
    yield path, schema, value
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                yield from walk_schema(props[k], v, f"{path}.{k}")
            elif isinstance(extra, dict):
                yield from walk_schema(extra, v, f"{path}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            yield from walk_schema(schema["items"], v, f"{path}[{i}]")


def _url_scheme_ok(s: str) -> bool:
    allowed = {"", "http", "https", "oci", "file"}
    scheme = urllib.parse.urlsplit(s).scheme if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", s) else ""
    return scheme in allowed


# The CEL rules (x-kubernetes-validations) of the vendored CRDs, emulated in Python. A rule
# that is not listed here fails the check: a schema update cannot silently skip a rule.
CEL_RULES: dict[str, Callable[[Any], bool]] = {
    '!self.contains("*")': lambda s: "*" not in s,
    'self.all(key, !key.contains("*"))': lambda m: all("*" not in k for k in m),
    "self.all(key, key.size() != 0)": lambda m: all(len(k) != 0 for k in m),
    "self.size() == 0": lambda s: len(s) == 0,
    'isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) && '
    'url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])': _url_scheme_ok,
    '(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)':
        lambda e: e.get("valueFrom", "") != "HOST" or "value" not in e,
    "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1":
        lambda s: sum(k in s for k in ("selector", "targetRef", "targetRefs")) <= 1,
}


def k8s_extension_errors(structural: dict, doc: dict) -> list[str]:
    """Errors from the parts of a structural schema JSON Schema cannot express: CEL rules and
    list-type=map key uniqueness."""
    errors = []
    for path, node, value in walk_schema(structural, doc):
        for rule in node.get("x-kubernetes-validations", []):
            text = " ".join(rule["rule"].split())
            check = CEL_RULES.get(text)
            if check is None:
                errors.append(f"{path or '.'}: no emulation for CEL rule {text!r}")
            elif not check(value):
                errors.append(f"{path or '.'}: {rule.get('message', text)}")
        if node.get("x-kubernetes-list-type") == "map" and isinstance(value, list):
            keys = node.get("x-kubernetes-list-map-keys", [])
            seen = set()
            for item in value:
                key = tuple(item.get(k) for k in keys)
                if key in seen:
                    errors.append(f"{path}: duplicate entry for {dict(zip(keys, key))}")
                seen.add(key)
    return errors


DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def validate_against_crd(crd: dict, doc: dict) -> list[str]:
    """Every error the API server would report for `doc` against `crd` (apiVersion, kind,
    metadata names, the version's openAPIV3Schema, its CEL rules)."""
    import jsonschema
    group = crd["spec"]["group"]
    errors = []
    api_group, _, version = doc.get("apiVersion", "").rpartition("/")
    if api_group != group:
        return [f"apiVersion {doc.get('apiVersion')!r} is not in group {group}"]
    if doc.get("kind") != crd["spec"]["names"]["kind"]:
        return [f"kind {doc.get('kind')!r} is not {crd['spec']['names']['kind']}"]
    served = {v["name"] for v in crd["spec"]["versions"] if v.get("served")}
    if version not in served:
        return [f"version {version} is not served (served: {sorted(served)})"]
    meta = doc.get("metadata") or {}
    name = meta.get("name", "")
    if not (DNS1123_SUBDOMAIN.match(name) and len(name) <= 253):
        errors.append(f"metadata.name {name!r} is not a DNS-1123 subdomain")
    if "namespace" in meta and not DNS1123_LABEL.match(meta["namespace"]):
        errors.append(f"metadata.namespace {meta['namespace']!r} is not a DNS-1123 label")
    structural = crd_version_schema(crd, version)
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    schema = structural_to_jsonschema(copy.deepcopy(structural))
    validator = jsonschema.Draft7Validator(schema)
    for err in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "."
        errors.append(f"{where}: {err.message}")
    errors += k8s_extension_errors(structural, body)
    return errors


# --------------------------------------------------------------------------- npm validators


NODE_DIR = HERE


def npm_validate(manifests: list[dict]) -> list[dict]:
    """tests/deploy/istio_validate.mjs: @kubernetes-models/istio validators + TypeScript types."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"manifests-{os.getpid()}.json"
    path.write_text(json.dumps(manifests))
    proc = subprocess.run(["node", str(NODE_DIR / "istio_validate.mjs"), str(path)], capture_output=True,
                          text=True, timeout=120, cwd=NODE_DIR)
    if proc.returncode != 0:
        raise RuntimeError(f"istio_validate.mjs failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)
