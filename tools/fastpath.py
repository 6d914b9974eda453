#!/usr/bin/env python3
"""The native fast path for passes (docs/fastpath.md): from the filter's own plugin configuration,
the JWKS Envoy's `jwt_authn` verifies passes with, and the native HTTP filters that let a request
whose pass verified skip the wasm filter.

    tools/fastpath.py jwks CONFIG.json [--env NAME=VALUE ...] [-o jwks.json]
    tools/fastpath.py filters CONFIG.json (--jwks-filename PATH | --jwks-env NAME) [--wasm-typed-config FILE.json]
    tools/fastpath.py expression CONFIG.json

`jwks`: one JWK per key of the ring, every one with a `kid` and an `alg`: `oct` for HS256 secrets
(`secret`, `secretEnv`, `keys[].secret`, `keys[].secretEnv`), `OKP`/`Ed25519` for EdDSA keys (the
public half of `privateKey`/`privateKeyEnv`, or `publicKey`). A key without a kid gets a reserved
one (`x402-unnamed-<n>`) so that a token naming a kid is only ever checked against the key of that
kid, as the filter does; the marker expression refuses tokens that name a reserved kid. `*Env`
values are read from this process's environment, or from `--env NAME=VALUE`. The output holds
secrets (HS256 keys are symmetric): write it where only Envoy can read it.

`filters`: the `http_filters` list (JSON, which is YAML) of the fast path, in order: strip the
client's claim headers on protected paths, `jwt_authn` on protected paths (claims to headers; it
never refuses a request), set the internal marker header from a CEL expression over the verified pass, on the fast
path only remove `Authorization` and add the CORS headers to the answer and count the request
(an allow-all RBAC filter: `rbac.x402_fast_path.allowed`), the wasm filter wrapped in an
ExtensionWithMatcher that skips it when the marker says so, remove the marker, the router.

`expression`: the marker's CEL expression alone (envoy/envoy-fastpath.yaml quotes it; the tests
check that the shipped file says what this prints for its own plugin configuration).

Python standard library, plus `cryptography` (the project .venv) only to derive the public key of
an EdDSA `privateKey`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import re
import sys
from typing import Any, Callable, Mapping

# --- what the filter does (src/config.rs, src/token/, docs/behaviour.md §2, §3, §7, §8)
SUBJECT = "x402-access-pass"
DEFAULT_ISSUER = "x402-access-pass"
DEFAULT_CLAIM_HEADERS = {
    "x-access-pass-tier": "tier",
    "x-access-pass-payer": "payer",
    "x-access-pass-expires": "exp",
    "x-access-pass-network": "network",
}
CLAIMS = ("tier", "payer", "exp", "iat", "duration", "network", "iss", "sub")
# The filter's own list (src/response.rs), v1's X-PAYMENT-RESPONSE included (docs/behaviour.md §20).
EXPOSE_HEADERS = "PAYMENT-REQUIRED, X-ACCESS-PASS-TIERS, ACCESS-PASS, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_HS256_SECRET = 32
MAX_KID_LEN = 256
ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")

# --- names of the fast path
PROVIDER = "x402_pass"
PAYLOAD_KEY = "x402_pass"           # jwt_authn payload_in_metadata
HEADER_KEY = "x402_pass_header"     # jwt_authn header_in_metadata
JWT_AUTHN = "envoy.filters.http.jwt_authn"
MARKER = "x-x402-fast-path"         # internal: set from CEL after jwt_authn, removed before the upstream
RESERVED_KID_PREFIX = "x402-unnamed-"
JWT_CACHE_SIZE = 4096
MAX_TOKEN_LEN = 4096                # src/token/claims.rs MAX_TOKEN_LEN (the filter's bound)
COUNTER_PREFIX = "x402_fast_path"   # RBAC rules_stat_prefix: http.<hcm prefix>.rbac.x402_fast_path.allowed


class ConfigProblem(ValueError):
    """A plugin configuration the fast path cannot be built from (the field, then the problem)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode_base64_any(text: str) -> bytes | None:
    compact = "".join(text.split())
    for alt in (None, b"-_"):
        try:
            return base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=alt, validate=True)
        except ValueError:
            continue
    return None


def _ed25519_bytes(text: str, der_prefix: bytes) -> bytes | None:
    """32 key bytes from base64 (any alphabet, padded or not) or a PEM whose DER is prefix + 32 bytes
    (src/config.rs decode_ed25519)."""
    text = text.strip()
    pem = text.startswith("-----BEGIN")
    body = "".join(line for line in text.splitlines() if not line.startswith("-----")) if pem else text
    raw = _decode_base64_any(body)
    if raw is None:
        return None
    if pem:
        if not raw.startswith(der_prefix):
            return None
        raw = raw[len(der_prefix):]
    return raw if len(raw) == 32 else None


def _ed25519_public_of(seed: bytes) -> bytes:
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    except ImportError as exc:  # pragma: no cover - the project .venv has it
        raise ConfigProblem("keys: an EdDSA privateKey needs the `cryptography` package (run with .venv/bin/python) "
                            "to derive its public key; or give the publicKey") from exc
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _tier_seconds(tier: str) -> int | None:
    m = re.fullmatch(r"([1-9][0-9]*)([mhdw])", tier)
    return int(m.group(1)) * UNIT_SECONDS[m.group(2)] if m else None


def _read_env(name: Any, field: str, env: Mapping[str, str]) -> str:
    if not isinstance(name, str) or not env.get(name):
        raise ConfigProblem(f"{field}: environment variable {name} is not set (export it, or pass --env {name}=...)")
    return env[name]


def ring(config: Mapping[str, Any], env: Mapping[str, str]) -> list[dict]:
    """The key ring in the filter's order: `keys[]`, then the top-level secret (a kid-less HS256 key).
    Each entry: {"kid": str|None, "alg": "HS256"|"EdDSA", "key": bytes} (HS256: the secret; EdDSA: the
    public key)."""
    keys: list[dict] = []
    raw_keys = config.get("keys")
    if raw_keys is not None:
        if not isinstance(raw_keys, list):
            raise ConfigProblem("keys: must be a list of {kid, alg, secret|secretEnv|privateKey|privateKeyEnv|publicKey}")
        for i, item in enumerate(raw_keys):
            field = f"keys[{i}]"
            if not isinstance(item, dict):
                raise ConfigProblem(f"{field}: must be an object")
            kid = item.get("kid")
            if kid is not None and (not isinstance(kid, str) or not kid or len(kid.encode()) > MAX_KID_LEN):
                raise ConfigProblem(f"{field}.kid: must be a non-empty string of at most {MAX_KID_LEN} bytes")
            alg = item.get("alg", "HS256")
            sources = [k for k in ("secret", "secretEnv", "privateKey", "privateKeyEnv", "publicKey") if k in item]
            if len(sources) != 1:
                raise ConfigProblem(f"{field}: needs exactly one of secret, secretEnv, privateKey, privateKeyEnv, publicKey")
            source = sources[0]
            value = item[source]
            if source.endswith("Env"):
                value = _read_env(value, f"{field}.{source}", env)
            if not isinstance(value, str):
                raise ConfigProblem(f"{field}.{source}: must be a string")
            if alg == "HS256" and source in ("secret", "secretEnv"):
                key = value.encode()
                if len(key) < MIN_HS256_SECRET:
                    raise ConfigProblem(f"{field}.{source}: HS256 secret must be at least {MIN_HS256_SECRET} bytes")
            elif alg == "EdDSA" and source in ("privateKey", "privateKeyEnv"):
                seed = _ed25519_bytes(value, ED25519_PKCS8_PREFIX)
                if seed is None:
                    raise ConfigProblem(f"{field}.{source}: must be a base64 32-byte Ed25519 seed or a PKCS#8 PEM private key")
                key = _ed25519_public_of(seed)
            elif alg == "EdDSA" and source == "publicKey":
                key = _ed25519_bytes(value, ED25519_SPKI_PREFIX)
                if key is None:
                    raise ConfigProblem(f"{field}.{source}: must be a base64 32-byte Ed25519 public key or an SPKI PEM public key")
            elif alg in ("HS256", "EdDSA"):
                raise ConfigProblem(f"{field}.{source}: does not fit alg {alg}")
            else:
                raise ConfigProblem(f"{field}.alg: must be HS256 or EdDSA")
            keys.append({"kid": kid, "alg": alg, "key": key})
    secret, secret_env = config.get("secret"), config.get("secretEnv")
    if secret is not None and secret_env is not None:
        raise ConfigProblem("secret: give either secret or secretEnv, not both")
    if secret_env is not None:
        secret = _read_env(secret_env, "secretEnv", env)
    if secret is not None:
        if not isinstance(secret, str) or len(secret.encode()) < MIN_HS256_SECRET:
            raise ConfigProblem(f"secret: HS256 secret must be at least {MIN_HS256_SECRET} bytes")
        keys.append({"kid": None, "alg": "HS256", "key": secret.encode()})
    if not keys:
        raise ConfigProblem("secret: a key is required: set secret, secretEnv or keys")
    kids = [k["kid"] for k in keys if k["kid"] is not None]
    if len(set(kids)) != len(kids):
        raise ConfigProblem("keys: duplicate kid")
    return keys


def configured_kids(keys: list[dict]) -> list[str]:
    return [k["kid"] for k in keys if k["kid"] is not None]


def jwks(keys: list[dict]) -> dict:
    """The JWKS of the ring. Every JWK names its alg (jwt_verify_lib then never tries a key with
    another alg: no HS/EdDSA confusion) and a kid (kid-less keys get a reserved one)."""
    taken = set(configured_kids(keys))
    out, unnamed = [], 0
    for k in keys:
        kid = k["kid"]
        if kid is None:
            while f"{RESERVED_KID_PREFIX}{unnamed}" in taken:
                unnamed += 1
            kid = f"{RESERVED_KID_PREFIX}{unnamed}"
            taken.add(kid)
            unnamed += 1
        if k["alg"] == "HS256":
            out.append({"kty": "oct", "alg": "HS256", "use": "sig", "kid": kid, "k": _b64url(k["key"])})
        else:
            out.append({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                        "x": _b64url(k["key"])})
    return {"keys": out}


def _int_field(config: Mapping[str, Any], name: str, default: int) -> int:
    value = config.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigProblem(f"{name}: must be a non-negative integer")
    return value


def longest_pass(config: Mapping[str, Any]) -> int:
    """The longest pass this configuration sells (src/config.rs verify_policy.max_duration_seconds)."""
    tiers = config.get("tiers") or {}
    if not isinstance(tiers, dict):
        raise ConfigProblem("tiers: must be an object of tier id to price")
    seconds = []
    for tier in tiers:
        s = _tier_seconds(tier)
        if s is None:
            raise ConfigProblem(f"tiers.{tier}: invalid tier id")
        seconds.append(s)
    longest_tier = max(seconds, default=0)
    max_custom = _int_field(config, "maxDurationSeconds", 2_592_000)
    if config.get("ratePerHour") is None:
        longest_custom = 0
    elif not tiers:
        longest_custom = max(max_custom, 3600)
    else:
        longest_custom = max_custom
    return max(longest_tier, longest_custom)


def claim_headers(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw = config.get("claimHeaders")
    if raw is None:
        return sorted(DEFAULT_CLAIM_HEADERS.items())
    if not isinstance(raw, dict):
        raise ConfigProblem("claimHeaders: must be an object of header name to claim")
    out = {}
    for name, claim in raw.items():
        if claim not in CLAIMS:
            raise ConfigProblem(f"claimHeaders.{name}: must name a claim: {', '.join(CLAIMS)}")
        out[name.lower()] = claim
    return sorted(out.items())


def path_rules(config: Mapping[str, Any], field: str) -> list[tuple[str, str]]:
    rules = config.get(field) or []
    out = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or len(rule) != 1 or not set(rule) <= {"prefix", "path"}:
            raise ConfigProblem(f"{field}[{i}]: must be {{\"prefix\": \"/...\"}} or {{\"path\": \"/...\"}}")
        (kind, value), = rule.items()
        if not isinstance(value, str) or not value.startswith("/"):
            raise ConfigProblem(f"{field}[{i}]: must start with /")
        if "?" in value:
            # The filter matches the path without its query; Envoy's prefix match sees the query too.
            raise ConfigProblem(f"{field}[{i}]: a '?' in a path rule cannot be matched the same way natively")
        out.append((kind, value))
    return out


def cel_string(text: str) -> str:
    """A CEL string literal; every byte outside [A-Za-z0-9 ._:/-] escaped, so nothing in it can end the
    literal or the %CEL(...)% command around it."""
    out = []
    for ch in text:
        if re.fullmatch(r"[A-Za-z0-9 ._:/-]", ch):
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "'" + "".join(out) + "'"


def expression(config: Mapping[str, Any], keys: list[dict]) -> str:
    """The CEL expression that is `true` only for a request whose pass jwt_authn verified AND that
    meets every rule of docs/behaviour.md §3 and §7 jwt_authn itself does not check. Anything else
    (false, or an evaluation error) leaves the request to the wasm filter."""
    issuer = config.get("issuer", DEFAULT_ISSUER)
    leeway = _int_field(config, "leewaySeconds", 0)
    longest = longest_pass(config)
    m = f"metadata.filter_metadata['{JWT_AUTHN}']"
    p = f"{m}.{PAYLOAD_KEY}"
    h = f"{m}.{HEADER_KEY}"
    kids = configured_kids(keys)
    # A kid of null is no kid (src/token/verify.rs reads it as an Option).
    kid_rule = (f"(!has({h}.kid) || {h}.kid == null || {h}.kid in [{', '.join(cel_string(k) for k in kids)}])"
                if kids else f"(!has({h}.kid) || {h}.kid == null)")
    now = "int(request.time)"
    parts = [
        f"'{JWT_AUTHN}' in metadata.filter_metadata",
        f"has({p}.exp)",  # the payload is in the metadata: jwt_authn verified the signature
        # §3: a CORS preflight is answered by the filter, whatever the token.
        "!(request.method == 'OPTIONS' && 'access-control-request-method' in request.headers)",
        # §7 header: kid names a configured key (never a reserved one); no critical extension.
        kid_rule,
        f"!has({h}.crit)",
        # §7 claims jwt_authn does not check: types, sub, iss, exp - iat == duration, the longest pass, iat.
        f"type({p}.tier) == string && type({p}.payer) == string && type({p}.network) == string",
        f"{p}.sub == {cel_string(SUBJECT)} && {p}.iss == {cel_string(issuer)}",
        f"type({p}.exp) == double && type({p}.iat) == double && type({p}.duration) == double",
        f"{p}.iat >= 0.0 && {p}.duration >= 0.0",
        f"{p}.iat == double(int({p}.iat)) && {p}.exp == double(int({p}.exp))"
        f" && {p}.duration == double(int({p}.duration))",
        f"{p}.exp - {p}.iat == {p}.duration && {p}.duration <= {longest}.0",
        f"int({p}.iat) <= {now} + {leeway} && {now} <= int({p}.exp) + {leeway}",
    ]
    return " && ".join(parts)


def jwt_authn_filter(config: Mapping[str, Any], jwks_source: dict) -> dict:
    audience = config.get("audience")
    leeway = _int_field(config, "leewaySeconds", 0)
    provider: dict[str, Any] = {
        "issuer": config.get("issuer", DEFAULT_ISSUER),
        "subjects": {"exact": SUBJECT},
        "require_expiration": True,
        "clock_skew_seconds": leeway,
        "local_jwks": jwks_source,
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        # The token stays for the wasm filter: a pass jwt_authn verifies but the marker refuses is
        # judged (and counted) by the filter as if jwt_authn were not there. On the fast path the
        # x402_fast_path_forward mutation removes it (unless forwardAuthorization).
        "forward": True,
        "payload_in_metadata": PAYLOAD_KEY,
        "header_in_metadata": HEADER_KEY,
        "claim_to_headers": [{"header_name": name, "claim_name": claim} for name, claim in claim_headers(config)],
        "jwt_cache_config": {"jwt_cache_size": JWT_CACHE_SIZE, "jwt_max_token_size": MAX_TOKEN_LEN},
    }
    if audience is not None:
        provider["audiences"] = [audience]
    requires = {"requires_any": {"requirements": [{"provider_name": PROVIDER}, {"allow_missing_or_failed": {}}]}}
    rules: list[dict] = []
    for kind, value in path_rules(config, "bypass"):  # bypass wins: first, with no requirement
        rules.append({"match": {kind: value}})
    for kind, value in path_rules(config, "protect") or [("prefix", "/")]:
        rules.append({"match": {kind: value}, "requires": requires})
    return {
        "name": JWT_AUTHN,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {PROVIDER: provider},
            "rules": rules,
        },
    }


def _header_input(name: str) -> dict:
    return {"name": "request-header", "typed_config": {
        "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput", "header_name": name}}


def _skip_action() -> dict:
    return {"action": {"name": "skip", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"}}}


def _marker_is_true() -> dict:
    return {"single_predicate": {"input": _header_input(MARKER), "value_match": {"exact": "true"}}}


def _path_predicate(kind: str, value: str) -> dict:
    if kind == "prefix":
        match = {"prefix": value}
    else:  # the path without its query, exactly
        match = {"safe_regex": {"google_re2": {}, "regex": "^" + re.escape(value) + r"(\?.*)?$"}}
    return {"single_predicate": {"input": _header_input(":path"), "value_match": match}}


def _any_of(predicates: list[dict]) -> dict:
    return predicates[0] if len(predicates) == 1 else {"or_matcher": {"predicate": predicates}}


def _header_mutation(name: str, request: list[dict] | None = None, response: list[dict] | None = None) -> dict:
    mutations: dict[str, Any] = {}
    if request:
        mutations["request_mutations"] = request
    if response:
        mutations["response_mutations"] = response
    return {"name": name, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        "mutations": mutations}}


def _with_matcher(inner: dict, skip_when: dict) -> dict:
    return {"name": inner["name"], "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher",
        "extension_config": inner,
        "xds_matcher": {"matcher_list": {"matchers": [{"predicate": skip_when, "on_match": _skip_action()}]}}}}


def cors_mutations(config: Mapping[str, Any]) -> list[dict]:
    """The CORS headers the filter adds to a forwarded answer (src/response.rs cors_headers)."""
    origins = ((config.get("cors") or {}).get("allowOrigins")) or ["*"]
    add = lambda k, v: {"append": {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
    out = []
    if "*" in origins:
        out.append(add("access-control-allow-origin", "*"))
    else:
        listed = ", ".join(cel_string(o) for o in origins)
        # Only a listed origin is echoed, with Vary: Origin, as the filter does (an empty value, or
        # an error when there is no Origin, adds nothing).
        listed_origin = f"request.headers['origin'] in [{listed}]"
        out.append(add("vary", f"%CEL({listed_origin} ? 'Origin' : '')%"))
        out.append(add("access-control-allow-origin", f"%CEL({listed_origin} ? request.headers['origin'] : '')%"))
    out.append(add("access-control-expose-headers", EXPOSE_HEADERS))
    return out


def http_filters(config: Mapping[str, Any], keys: list[dict], jwks_source: dict, wasm_filter: dict) -> list[dict]:
    """The fast path's http_filters, the wasm filter (`{"name": ..., "typed_config": ...}`) inside."""
    claim_names = [name for name, _ in claim_headers(config)]
    protected = _any_of([_path_predicate(k, v) for k, v in path_rules(config, "protect") or [("prefix", "/")]])
    bypassed = [_path_predicate(k, v) for k, v in path_rules(config, "bypass")]
    not_protected = {"not_matcher": protected}
    skip_strip = _any_of([not_protected, *bypassed])
    strip = _header_mutation("x402_strip_claim_headers", request=[{"remove": n} for n in claim_names])
    mark = _header_mutation("x402_fast_path_marker", request=[
        {"remove": MARKER},
        {"append": {"header": {"key": MARKER, "value": f"%CEL({expression(config, keys)})%"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}},
    ])
    removals = [] if config.get("forwardAuthorization", False) else [{"remove": "authorization"}]
    forward = _header_mutation("x402_fast_path_forward", request=removals, response=cors_mutations(config))
    unmark = _header_mutation("x402_fast_path_unmark", request=[{"remove": MARKER}])
    # A counter of passes served natively (the filter's passes_accepted never sees them): an RBAC
    # filter that allows everything, run on the fast path only; its `allowed` counter is the count.
    counter = {"name": "x402_fast_path_served", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules_stat_prefix": COUNTER_PREFIX,
        "rules": {"action": "ALLOW", "policies": {"pass_served_natively": {
            "permissions": [{"any": True}], "principals": [{"any": True}]}}}}}
    return [
        _with_matcher(strip, skip_strip),
        # jwt_authn removes its claim_to_headers names from every request it sees, even where its
        # rules require nothing: skipped off the protected paths, it leaves them untouched there, as
        # the filter does (docs/behaviour.md §3 step 1).
        _with_matcher(jwt_authn_filter(config, jwks_source), skip_strip),
        mark,
        _with_matcher(forward, {"not_matcher": _marker_is_true()}),
        _with_matcher(counter, {"not_matcher": _marker_is_true()}),
        _with_matcher(wasm_filter, _marker_is_true()),
        unmark,
        {"name": "envoy.filters.http.router",
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
    ]


def _load(path: str) -> dict:
    try:
        config = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigProblem(f"{path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigProblem(f"{path}: the plugin configuration must be a JSON object")
    return config


def _env(pairs: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigProblem(f"--env {pair}: must be NAME=VALUE")
        env[name] = value
    return env


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    j = sub.add_parser("jwks", help="the JWKS of the key ring (holds secrets)")
    f = sub.add_parser("filters", help="the fast path's http_filters (JSON)")
    e = sub.add_parser("expression", help="the marker's CEL expression")
    for p in (j, f, e):
        p.add_argument("config", help="the plugin configuration (JSON)")
        p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                       help="a value for secretEnv / keys[].secretEnv / keys[].privateKeyEnv")
    j.add_argument("-o", "--output", help="write here (mode 0600) instead of stdout")
    src = f.add_mutually_exclusive_group(required=True)
    src.add_argument("--jwks-filename", help="local_jwks from this file (written by `jwks`)")
    src.add_argument("--jwks-env", help="local_jwks from this environment variable of Envoy")
    f.add_argument("--wasm-typed-config", help="JSON file: the typed_config of your envoy.filters.http.wasm filter")
    args = parser.parse_args(argv)
    try:
        config = _load(args.config)
        keys = ring(config, _env(args.env))
        if args.command == "jwks":
            text = json.dumps(jwks(keys), indent=2)
            if args.output:
                fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(text + "\n")
            else:
                out(text)
        elif args.command == "expression":
            out(expression(config, keys))
        else:
            source = {"filename": args.jwks_filename} if args.jwks_filename else {"environment_variable": args.jwks_env}
            typed = (json.loads(pathlib.Path(args.wasm_typed_config).read_text()) if args.wasm_typed_config
                     else "REPLACE with the typed_config of your envoy.filters.http.wasm filter")
            out(json.dumps(http_filters(config, keys, source, {"name": "envoy.filters.http.wasm", "typed_config": typed}),
                           indent=2))
    except ConfigProblem as exc:
        print(f"fastpath: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
