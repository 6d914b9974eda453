"""Where the bytes of a wasm module go: sections, and code bytes by crate.

    python3 bench/wasm_size.py STRIPPED.wasm [WITH_SYMBOLS.wasm]

`make wasm` runs wasm-opt over rustc's output (tools/wasm-opt.sh), so for the attribution by crate
pass rustc's own output, cargo's target/wasm32-wasip1/release/deps/x402_access_pass.wasm, as
STRIPPED; the shipped module (target/wasm32-wasip1/release/) is the one whose size counts.

The release build strips symbols, so the attribution reads a second build of the same code
without stripping (`CARGO_PROFILE_RELEASE_STRIP=false`, see mk/bench.mk); its code section must
be the same size as the stripped one's, which is checked. Attribution is by each function's
(demangled) path: the first crate named in it. With LTO, inlined code counts for the function
it was inlined into, so the figures are approximate, but large differences are real.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
from collections import defaultdict

SECTION_NAMES = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
                 7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount"}

# Crates grouped by why they are in the module.
GROUPS = [
    ("RSA / ECDSA / big integers (jsonwebtoken's rust_crypto provider: none since src/jwt_crypto.rs)",
     {"rsa", "num_bigint_dig", "num_bigint", "num_integer", "num_traits", "num_iter", "p256", "p384", "p521",
      "ecdsa", "elliptic_curve", "crypto_bigint", "primeorder", "pkcs1", "pkcs8", "spki", "der", "sec1",
      "rfc6979", "ff", "group", "hmac_drbg", "signature", "base16ct", "crypto_common", "rand_core", "rand",
      "rand_chacha", "getrandom", "zeroize", "subtle", "sha1", "const_oid", "smallvec", "spin", "libm"}),
    ("Ed25519 (curve25519-dalek, ed25519-dalek: EdDSA passes, Solana signatures)",
     {"ed25519_dalek", "curve25519_dalek", "ed25519", "ed25519_compact"}),
    ("SHA-2 / HMAC", {"sha2", "hmac", "digest", "block_buffer", "generic_array", "cpufeatures"}),
    ("jsonwebtoken (own code)", {"jsonwebtoken"}),
    ("serde / serde_json", {"serde", "serde_json", "serde_core", "itoa", "ryu", "memchr"}),
    ("base64 / bs58", {"base64", "bs58"}),
    ("x402-access-pass (this filter)", {"x402_access_pass"}),
    ("proxy-wasm SDK", {"proxy_wasm", "hashbrown", "log"}),
    ("Rust std / core / alloc", {"std", "core", "alloc", "compiler_builtins", "dlmalloc", "panic_abort", "wasi",
                                 "rustc_demangle", "addr2line", "gimli", "miniz_oxide", "adler2", "object"}),
]


def leb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def name_at(data: bytes, pos: int) -> tuple[str, int]:
    n, pos = leb(data, pos)
    return data[pos:pos + n].decode("utf-8", "replace"), pos + n


def sections(data: bytes) -> list[tuple[int, str, int, int]]:
    """(id, name, start, end) of each section's content."""
    if data[:4] != b"\0asm":
        raise ValueError("not a wasm module")
    pos, out = 8, []
    while pos < len(data):
        sid = data[pos]
        size, pos = leb(data, pos + 1)
        name = SECTION_NAMES.get(sid, f"id{sid}")
        if sid == 0:
            name = "custom:" + name_at(data, pos)[0]
        out.append((sid, name, pos, pos + size))
        pos += size
    return out


def imported_functions(data: bytes, start: int) -> int:
    count, pos = leb(data, start)
    functions = 0
    for _ in range(count):
        _, pos = name_at(data, pos)
        _, pos = name_at(data, pos)
        kind = data[pos]
        pos += 1
        if kind == 0:  # function: type index
            _, pos = leb(data, pos)
            functions += 1
        elif kind == 1:  # table: reftype + limits
            pos += 1
            flags, pos = leb(data, pos + 0)
            _, pos = leb(data, pos)
            if flags & 1:
                _, pos = leb(data, pos)
        elif kind == 2:  # memory: limits
            flags, pos = leb(data, pos)
            _, pos = leb(data, pos)
            if flags & 1:
                _, pos = leb(data, pos)
        elif kind == 3:  # global: valtype + mut
            pos += 2
        else:
            raise ValueError(f"unknown import kind {kind}")
    return functions


def code_bodies(data: bytes, start: int) -> list[int]:
    count, pos = leb(data, start)
    sizes = []
    for _ in range(count):
        size, pos = leb(data, pos)
        sizes.append(size)
        pos += size
    return sizes


def function_names(data: bytes, start: int, end: int) -> dict[int, str]:
    _, pos = name_at(data, start)  # "name"
    names: dict[int, str] = {}
    while pos < end:
        sub = data[pos]
        size, pos = leb(data, pos + 1)
        if sub == 1:
            count, p = leb(data, pos)
            for _ in range(count):
                idx, p = leb(data, p)
                name, p = name_at(data, p)
                names[idx] = name
        pos += size
    return names


_LEGACY = re.compile(r"^_?_ZN(.*)E$")


def legacy_components(mangled: str) -> list[str] | None:
    m = _LEGACY.match(mangled)
    if not m:
        return None
    body, out, pos = m.group(1), [], 0
    while pos < len(body) and body[pos].isdigit():
        n = 0
        while pos < len(body) and body[pos].isdigit():
            n = n * 10 + int(body[pos])
            pos += 1
        out.append(body[pos:pos + n])
        pos += n
    return out


_ESCAPES = {"$u20$": " ", "$RF$": "&", "$BP$": "*", "$LT$": "<", "$GT$": ">", "$C$": ",", "$u5b$": "[",
            "$u5d$": "]", "$u7b$": "{", "$u7d$": "}", "$u3b$": ";", "$u27$": "'", "$u22$": '"', "$LP$": "(",
            "$RP$": ")", "$SP$": "@", "$u7e$": "~", "$u21$": "!", "$u2b$": "+"}


def _unescape(component: str) -> str:
    for k, v in _ESCAPES.items():
        component = component.replace(k, v)
    return component.replace("..", "::")


def _first_crate(path: str) -> str | None:
    path = re.sub(r"^(?:&|\*const |\*mut |mut |dyn |\[|\()+", "", path.strip())
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", path)
    return m.group(1) if m else None


def crate_of(name: str) -> str:
    comps = legacy_components(name)
    if comps:
        first = _unescape(comps[0])
        if first.startswith(("_<", "<")):  # <Type as Trait>::method: the type's crate, else the trait's
            inner = first.lstrip("_")[1:]
            ty, _, trait = inner.partition(" as ")
            return _first_crate(ty) or _first_crate(trait) or "core"
        return first
    if name.startswith("_R"):  # v0 mangling: the first crate root `C[s<disambiguator>_]<len><name>`
        m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)([A-Za-z_][A-Za-z0-9_]*)", name)
        if m:
            return m.group(2)[: int(m.group(1))]
    if name.startswith(("proxy_on_", "proxy_abi_", "_start", "_initialize")):
        return "proxy_wasm"
    if name.startswith(("__rust", "rust_")):
        return "std"
    return "(unmangled: libc, compiler-rt, glue)"


def analyse(stripped: pathlib.Path, with_symbols: pathlib.Path | None = None) -> dict:
    data = stripped.read_bytes()
    secs = sections(data)
    result: dict = {
        "file": str(stripped),
        "bytes": len(data),
        "sections": [{"name": n, "bytes": e - s} for _, n, s, e in secs],
    }
    code = next(((s, e) for sid, _, s, e in secs if sid == 10), None)
    result["code_bytes"] = code[1] - code[0] if code else 0
    result["data_bytes"] = sum(e - s for sid, _, s, e in secs if sid == 11)
    if with_symbols is None:
        return result
    sym = with_symbols.read_bytes()
    ssecs = sections(sym)
    scode = next(((s, e) for sid, _, s, e in ssecs if sid == 10), None)
    if not scode or scode[1] - scode[0] != result["code_bytes"]:
        result["attribution_error"] = (f"the code section of {with_symbols} ({scode[1] - scode[0] if scode else 0} bytes) "
                                       f"differs from the stripped build's ({result['code_bytes']}): not the same code")
        return result
    imports = next((s for sid, _, s, _ in ssecs if sid == 2), None)
    n_imported = imported_functions(sym, imports) if imports is not None else 0
    name_sec = next(((s, e) for _, n, s, e in ssecs if n == "custom:name"), None)
    names = function_names(sym, *name_sec) if name_sec else {}
    bodies = code_bodies(sym, scode[0])
    by_crate: dict[str, int] = defaultdict(int)
    biggest: list[tuple[int, str]] = []
    for i, size in enumerate(bodies):
        name = names.get(n_imported + i, f"(function {n_imported + i})")
        by_crate[crate_of(name)] += size
        biggest.append((size, name))
    group_of = {crate: title for title, crates in GROUPS for crate in crates}
    groups: dict[str, int] = defaultdict(int)
    for crate, size in by_crate.items():
        groups[group_of.get(crate, "other")] += size
    biggest.sort(reverse=True)
    result["functions"] = len(bodies)
    result["by_crate"] = dict(sorted(by_crate.items(), key=lambda kv: -kv[1]))
    result["by_group"] = dict(sorted(groups.items(), key=lambda kv: -kv[1]))
    result["largest_functions"] = [{"bytes": s, "name": n} for s, n in biggest[:15]]
    return result


def main(argv: list[str]) -> int:
    if not 2 <= len(argv) <= 3:
        print(__doc__)
        return 2
    res = analyse(pathlib.Path(argv[1]), pathlib.Path(argv[2]) if len(argv) == 3 else None)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
