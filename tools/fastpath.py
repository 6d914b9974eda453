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

`filters`: the `http_filters` list (JSON, or block YAML with --yaml) of the fast path, in order:
`jwt_authn` on protected paths (it removes the client's copies of every header it may set, sets the
claim headers of a pass it verified, and never refuses a request); when another minter may hold a
key, a marker from native matchers on the verified pass and a short CEL expression; a composite
filter whose matcher creates, per request, either the fast path's chain (remove `Authorization`,
add the CORS headers, count it: `rbac.x402_fast_path.allowed`) or the wasm filter; remove the fast
path's own headers; the router. With only the filter minting (an EdDSA-only ring, or
--sole-minter) the marker is left out (docs/fastpath.md, "Who can mint a pass").

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
INTERNAL_HEADER_PREFIX = "x-x402-pass-"  # claims the marker reads, when no claim header carries them
# A claim no verified pass can have: jwt_authn refuses a pass whose `sub` is not a string, so `sub`
# never has members. Mapped to the marker header, it makes jwt_authn remove the client's copy of the
# marker on every protected request (it removes every claim_to_headers name) and never set it.
NEVER_A_CLAIM = "sub.x402-never-a-claim"


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


def only_the_filter_mints(keys: list[dict], declared: bool = False) -> bool:
    """True when every pass that verifies was minted by an x402-access-pass filter: every key of the
    ring is an EdDSA key (its private half is only ever held by the filter: the Express reference
    signs HS256 only), or the seller declares (`--sole-minter`) that no one but the filter holds its
    HS256 secrets. Such a pass always meets the structural rules (integer `iat`/`exp`/`duration`,
    `exp - iat == duration` no longer than the longest pass sold when it was sold, `iat` not in the
    future, string claims, no `crit`, never a reserved kid), so the fast path does not check them
    (docs/fastpath.md, "Who can mint a pass"). An HS256 secret shared with another minter keeps them."""
    return declared or all(k["alg"] == "EdDSA" for k in keys)


def reserved_kids(keys: list[dict]) -> list[str]:
    """The kids `jwks` gives the ring's keys that have none (x402-unnamed-<n>)."""
    configured = set(configured_kids(keys))
    return [j["kid"] for j in jwks(keys)["keys"] if j["kid"] not in configured]


def _claim_header(config: Mapping[str, Any], claim: str) -> str | None:
    return next((name for name, c in claim_headers(config) if c == claim), None)


def time_headers(config: Mapping[str, Any], sole: bool) -> dict[str, str]:
    """claim -> request header jwt_authn writes it to, for the claims the marker's CEL expression
    reads (none when only the filter mints). A configured claim header is reused; otherwise an
    internal `x-x402-pass-<claim>`, which x402_fast_path_unmark removes before the upstream.

    jwt_authn writes a number as an unsigned integer when it is one and with a decimal point
    otherwise (negative, fractional, or 2^64 and beyond), so CEL's int() of the header fails, and
    the marker is not set, for any value but a non-negative integer."""
    if sole:
        return {}
    return {c: _claim_header(config, c) or f"{INTERNAL_HEADER_PREFIX}{c}" for c in ("iat", "exp", "duration")}


def signal_header(config: Mapping[str, Any], sole: bool) -> str:
    """The request header whose presence (on a protected path, where jwt_authn first removes every
    header it may set) says the fast path serves the request: the marker when a CEL expression
    decides; with only the filter minting, the header jwt_authn writes `exp` to (every pass it
    verifies has one), or else the marker, written by jwt_authn from `sub` (always the subject)."""
    if sole:
        return _claim_header(config, "exp") or MARKER
    return MARKER


def internal_headers(config: Mapping[str, Any], sole: bool) -> list[str]:
    """Headers of the fast path's own, removed before the upstream (x402_fast_path_unmark)."""
    configured = {name for name, _ in claim_headers(config)}
    out = {h for h in time_headers(config, sole).values() if h not in configured}
    if signal_header(config, sole) == MARKER:
        out.add(MARKER)
    return sorted(out)


def clock_skew(config: Mapping[str, Any]) -> int:
    """jwt_authn's clock_skew_seconds: leewaySeconds, but at least 1 (jwt_authn reads 0 as its
    default, 60 s)."""
    return max(_int_field(config, "leewaySeconds", 0), 1)


def expression(config: Mapping[str, Any], sole: bool) -> str | None:
    """The marker's CEL expression: the rules of docs/behaviour.md §7 that need the request's time
    or arithmetic between claims, over the claim headers jwt_authn wrote (a header read costs far
    less than a walk of the dynamic metadata). None when only the filter mints: jwt_authn's own
    checks then decide (with leewaySeconds 0 its expiry check allows 1 s: docs/fastpath.md)."""
    if sole:
        return None
    leeway = _int_field(config, "leewaySeconds", 0)
    h = {claim: f"int(request.headers[{cel_string(name)}])" for claim, name in time_headers(config, sole).items()}
    now = "int(request.time)"
    plus = f" + {leeway}" if leeway else ""
    parts = [f"{h['iat']} <= {now}{plus}", f"{h['exp']} - {h['iat']} == {h['duration']}"]
    if leeway < clock_skew(config):  # jwt_authn's own expiry check is that much looser
        parts.insert(0, f"{now} <= {h['exp']}{plus}")
    return " && ".join(parts)


def _metadata_input(*path: str) -> dict:
    return {"name": "dynamic-metadata", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DynamicMetadataInput",
        "filter": JWT_AUTHN, "path": [{"key": k} for k in path]}}


def _metadata_is(path: tuple[str, ...], value: dict, invert: bool = False) -> dict:
    matcher: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.matching.input_matchers.metadata.v3.Metadata", "value": value}
    if invert:
        matcher["invert"] = True
    return {"single_predicate": {"input": _metadata_input(*path), "custom_match": {
        "name": "metadata", "typed_config": matcher}}}


ANY_STRING = {"string_match": {"safe_regex": {"regex": "(?s).*"}}}


def predicates(config: Mapping[str, Any], keys: list[dict]) -> list[dict]:
    """Native matchers on the verified pass jwt_authn put in the dynamic metadata (payload and JWS
    header), for a ring whose passes may be minted by someone else: all must hold for the marker to
    be evaluated at all. jwt_authn itself checks the signature (each JWK pins its kid and alg), `iss`
    (`issuer`), `sub` (`subjects`), `aud` (`audiences`), `exp` present, and `iat`/`exp` non-negative
    numbers when present."""
    out = [
        # §7 claims jwt_authn does not read: strings, and a duration no longer than any pass sold.
        _metadata_is((PAYLOAD_KEY, "tier"), ANY_STRING),
        _metadata_is((PAYLOAD_KEY, "payer"), ANY_STRING),
        _metadata_is((PAYLOAD_KEY, "network"), ANY_STRING),
        _metadata_is((PAYLOAD_KEY, "duration"),
                     {"double_match": {"range": {"start": 0, "end": longest_pass(config) + 1}}}),
        # No critical header extension (the filter implements none); a null crit is refused here
        # and left to the filter, which reads it as none.
        _metadata_is((HEADER_KEY, "crit"), {"present_match": True}, invert=True),
    ]
    reserved = reserved_kids(keys)
    if reserved:
        # A token naming a kid is checked against that kid's key only: never a reserved one.
        kid = ({"or_match": {"value_matchers": [{"string_match": {"exact": k}} for k in reserved]}}
               if len(reserved) > 1 else {"string_match": {"exact": reserved[0]}})
        out.append(_metadata_is((HEADER_KEY, "kid"), kid, invert=True))
    return out


def _present(header: str) -> dict:
    return {"single_predicate": {"input": _header_input(header),
                                 "value_match": {"safe_regex": {"google_re2": {}, "regex": "(?s).*"}}}}


def not_a_preflight() -> dict:
    """§3: a CORS preflight is the filter's 204 whatever the token."""
    return {"not_matcher": {"and_matcher": {"predicate": [
        {"single_predicate": {"input": _header_input(":method"), "value_match": {"exact": "OPTIONS"}}},
        _present("access-control-request-method")]}}}


def _path_predicate(kind: str, value: str) -> dict:
    if kind == "prefix":
        match = {"prefix": value}
    else:  # the path without its query, exactly
        match = {"safe_regex": {"google_re2": {}, "regex": "^" + re.escape(value) + r"(\?.*)?$"}}
    return {"single_predicate": {"input": _header_input(":path"), "value_match": match}}


def _any_of(preds: list[dict]) -> dict:
    return preds[0] if len(preds) == 1 else {"or_matcher": {"predicate": preds}}


def protected_path(config: Mapping[str, Any]) -> list[dict]:
    """The filter's protect/bypass rules (bypass wins), as predicates on :path: where jwt_authn runs."""
    out = [_any_of([_path_predicate(k, v) for k, v in path_rules(config, "protect") or [("prefix", "/")]])]
    bypassed = [_path_predicate(k, v) for k, v in path_rules(config, "bypass")]
    if bypassed:
        out.append({"not_matcher": _any_of(bypassed)})
    return out


def served_natively(config: Mapping[str, Any], sole: bool) -> dict:
    """The request the fast path serves: on a protected path (there jwt_authn first removes any
    client copy of the signal header), the signal header is set, and it is not a preflight."""
    signal = signal_header(config, sole)
    is_set = _marker_is_true() if signal == MARKER and not sole else _present(signal)
    return {"and_matcher": {"predicate": [is_set, *protected_path(config), not_a_preflight()]}}


def jwt_authn_filter(config: Mapping[str, Any], keys: list[dict], jwks_source: dict, sole: bool = False) -> dict:
    audience = config.get("audience")
    claims = [{"header_name": name, "claim_name": claim} for name, claim in claim_headers(config)]
    internal = internal_headers(config, sole)
    claims += [{"header_name": name, "claim_name": claim} for claim, name in time_headers(config, sole).items()
               if name in internal]
    if MARKER in internal:
        # jwt_authn removes every claim_to_headers name from a protected request before it verifies:
        # the client's copy of the marker never gets past it. With only the filter minting it is
        # the signal, from `sub` (always the subject); otherwise the marker sets it, and `sub.…`,
        # a claim no verified pass has (jwt_authn refuses a non-string `sub`), keeps jwt_authn from
        # setting it.
        claims.append({"header_name": MARKER, "claim_name": "sub" if sole else NEVER_A_CLAIM})
    provider: dict[str, Any] = {
        "issuer": config.get("issuer", DEFAULT_ISSUER),
        "subjects": {"exact": SUBJECT},
        "require_expiration": True,
        "clock_skew_seconds": clock_skew(config),
        "local_jwks": jwks_source,
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        # With only the filter minting, a pass jwt_authn verifies is served (bar a preflight, which
        # the filter answers whatever the token): jwt_authn removes the token itself. Otherwise the
        # token stays for the wasm filter, which judges (and counts) a pass the marker refuses as
        # if jwt_authn were not there; x402_fast_path_forward removes it on the fast path.
        "forward": bool(config.get("forwardAuthorization", False)) if sole else True,
        # On every protected request (where its rules require the provider) jwt_authn first removes
        # every header named here, then sets those of a pass it verified.
        "claim_to_headers": claims,
        "jwt_cache_config": {"jwt_cache_size": JWT_CACHE_SIZE, "jwt_max_token_size": MAX_TOKEN_LEN},
    }
    if not sole:
        provider["payload_in_metadata"] = PAYLOAD_KEY
        provider["header_in_metadata"] = HEADER_KEY
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


def _execute(name: str, filters: list[dict]) -> dict:
    action: dict[str, Any] = {"@type": "type.googleapis.com/envoy.extensions.filters.http.composite.v3.ExecuteFilterAction"}
    if len(filters) == 1:
        action["typed_config"] = filters[0]
    else:
        action["filter_chain"] = {"typed_config": filters}
    return {"action": {"name": name, "typed_config": action}}


def http_filters(config: Mapping[str, Any], keys: list[dict], jwks_source: dict, wasm_filter: dict,
                 sole_minter: bool = False) -> list[dict]:
    """The fast path's http_filters, the wasm filter (`{"name": ..., "typed_config": ...}`) inside.
    `sole_minter`: the seller declares that only x402-access-pass filters hold its HS256 secrets."""
    sole = only_the_filter_mints(keys, sole_minter)
    removals = [] if config.get("forwardAuthorization", False) or sole else [{"remove": "authorization"}]
    forward = _header_mutation("x402_fast_path_forward", request=removals, response=cors_mutations(config))
    # The count of passes served natively (the filter's passes_accepted never sees them): an RBAC
    # filter that allows everything, run on the fast path only; its `allowed` counter is the count.
    counter = {"name": "x402_fast_path_served", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules_stat_prefix": COUNTER_PREFIX,
        "rules": {"action": "ALLOW", "policies": {"pass_served_natively": {
            "permissions": [{"any": True}], "principals": [{"any": True}]}}}}}
    # One matcher decides, per request, which of two filter chains Envoy creates: the fast path's,
    # or the wasm filter. A filter wrapped in a SkipFilter matcher is still created (a wasm filter's
    # per-request context costs about as much as jwt_authn's cached check); one the composite filter
    # does not choose is never created.
    choose = {"name": "x402_fast_path", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher",
        "extension_config": {"name": "x402_fast_path", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.composite.v3.Composite"}},
        "xds_matcher": {
            "matcher_list": {"matchers": [{"predicate": served_natively(config, sole),
                                           "on_match": _execute("fast_path", [forward, counter])}]},
            "on_no_match": _execute("wasm_filter", [wasm_filter])}}}
    on_protected_path = protected_path(config)
    out = [
        # jwt_authn removes its claim_to_headers names from every request it sees, even where its
        # rules require nothing: skipped off the protected paths, it leaves them untouched there,
        # as the filter does (docs/behaviour.md §3 step 1).
        _with_matcher(jwt_authn_filter(config, keys, jwks_source, sole),
                      {"not_matcher": on_protected_path[0] if len(on_protected_path) == 1
                       else {"and_matcher": {"predicate": on_protected_path}}}),
    ]
    expr = expression(config, sole)
    if expr is not None:
        mark = _header_mutation("x402_fast_path_marker", request=[{"append": {
            "header": {"key": MARKER, "value": f"%CEL({expr})%"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}])
        # Evaluated only for a pass jwt_authn verified that the native predicates accept.
        candidate = {"and_matcher": {"predicate": predicates(config, keys)}}
        out.append(_with_matcher(mark, {"not_matcher": candidate}))
    out.append(choose)
    internal = internal_headers(config, sole)
    if internal:
        out.append(_header_mutation("x402_fast_path_unmark", request=[{"remove": h} for h in internal]))
    out.append({"name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    return out


class Literal(str):
    """A string `to_yaml` writes as a block literal (`|`), e.g. a plugin configuration."""


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for the JSON-like values this tool builds (keys are plain names; every string is
    double-quoted as JSON quotes it, which YAML reads the same; a `Literal` is a `|` block)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = []
        for k, v in value.items():
            key = json.dumps(k) if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) else k
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
            elif isinstance(v, Literal):
                body = "\n".join(f"{pad}  {line}" if line else "" for line in v.rstrip("\n").split("\n"))
                lines.append(f"{pad}{key}: |\n{body}")
            else:
                lines.append(f"{pad}{key}: {to_yaml(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        out = []
        for item in value:
            text = to_yaml(item, indent + 2) if isinstance(item, (dict, list)) and item else f"{pad}  {to_yaml(item)}"
            out.append(f"{pad}- {text[indent + 2:]}")
        return "\n".join(out)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value)


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
    for p in (f, e):
        p.add_argument("--sole-minter", action="store_true",
                       help="declare that only x402-access-pass filters hold the ring's HS256 secrets (no other "
                            "minter, e.g. no Express reference): the structural rules are then not re-checked "
                            "(docs/fastpath.md, \"Who can mint a pass\")")
    src = f.add_mutually_exclusive_group(required=True)
    src.add_argument("--jwks-filename", help="local_jwks from this file (written by `jwks`)")
    src.add_argument("--jwks-env", help="local_jwks from this environment variable of Envoy")
    f.add_argument("--wasm-typed-config", help="JSON file: the typed_config of your envoy.filters.http.wasm filter")
    f.add_argument("--yaml", action="store_true", help="block YAML instead of JSON")
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
            expr = expression(config, only_the_filter_mints(keys, args.sole_minter))
            out("(none: only the filter mints, jwt_authn's own checks decide)" if expr is None else expr)
        else:
            source = {"filename": args.jwks_filename} if args.jwks_filename else {"environment_variable": args.jwks_env}
            typed = (json.loads(pathlib.Path(args.wasm_typed_config).read_text()) if args.wasm_typed_config
                     else "REPLACE with the typed_config of your envoy.filters.http.wasm filter")
            wasm = {"name": "envoy.filters.http.wasm", "typed_config": typed}
            filters = http_filters(config, keys, source, wasm, args.sole_minter)
            out(to_yaml(filters) if args.yaml else json.dumps(filters, indent=2))
    except ConfigProblem as exc:
        print(f"fastpath: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
