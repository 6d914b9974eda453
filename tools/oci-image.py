#!/usr/bin/env python3
"""Package the filter as an OCI image for Istio's WasmPlugin, without a container engine.

    python3 tools/oci-image.py [--wasm target/wasm32-wasip1/release/x402_access_pass.wasm]
                               [--output target/oci/x402-access-pass.tar] [--tag 0.1.0]

Writes an OCI image-layout tarball (`oci-layout`, `index.json`, `blobs/sha256/...`) holding one
image of the Wasm Image Specification's *compat* variant, the format Istio's agent pulls for
`url: oci://...` (istio pkg/wasm/imagefetcher.go, extractOCIStandardImage):

- one layer, `application/vnd.oci.image.layer.v1.tar+gzip`, a tar with one file: `plugin.wasm`
  (the filter's exact bytes) at the root, i.e. what `docker build` makes of
  `FROM scratch` + `COPY x402_access_pass.wasm ./plugin.wasm`;
- an ordinary image config (`application/vnd.oci.image.config.v1+json`) whose `rootfs.diff_ids`
  is the SHA-256 of the uncompressed layer;
- the manifest annotated `module.wasm.image/variant: compat` (as the compat spec asks for OCI
  layer media types).

Deterministic: fixed timestamps (SOURCE_DATE_EPOCH, default 0), owner 0:0, fixed modes, sorted
entries, gzip without a name or time, compact JSON: the same wasm gives byte-identical tarballs
and so the same manifest digest (the digest Istio compares with WasmPlugin `sha256`).

Push it with any registry client that reads OCI layouts (see docs/istio.md), e.g.
`skopeo copy oci-archive:target/oci/x402-access-pass.tar docker://REGISTRY/x402-access-pass:TAG`,
or unpack it (`tar -xf ... -C layout`) for `oras cp --from-oci-layout layout:TAG ...` or
`crane push layout REGISTRY/x402-access-pass:TAG`.

Prints a JSON summary (paths and digests) on stdout. Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pathlib
import sys
import tarfile
import time
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_WASM = REPO / "target/wasm32-wasip1/release/x402_access_pass.wasm"
DEFAULT_OUTPUT = REPO / "target/oci/x402-access-pass.tar"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE = "plugin.wasm"
IMAGE_NAME = "x402-access-pass"


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, annotations: dict | None = None, platform: dict | None = None) -> dict:
    desc = {"mediaType": media_type, "digest": sha256(data), "size": len(data)}
    if platform:
        desc["platform"] = platform
    if annotations:
        desc["annotations"] = annotations
    return desc


def _tar_info(name: str, size: int, mode: int, mtime: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = mtime
    info.type = kind
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def make_tar(entries: list[tuple[str, bytes | None]], mtime: int) -> bytes:
    """A ustar archive of (name, data) in sorted order; data None is a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(entries, key=lambda e: e[0]):
            if data is None:
                tar.addfile(_tar_info(name, 0, 0o755, mtime, tarfile.DIRTYPE))
            else:
                tar.addfile(_tar_info(name, len(data), 0o644, mtime), io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def build_layout(wasm: bytes, tag: str, epoch: int = 0) -> tuple[dict[str, bytes], dict]:
    """The files of the OCI layout ({path: bytes}) and a summary of the digests."""
    layer_tar = make_tar([(PLUGIN_FILE, wasm)], epoch)
    # What `docker build` writes for FROM scratch on the usual builder; Istio's agent ignores it
    # (it reads the last layer), and registry clients that pick an image from an index by
    # platform find the default one.
    platform = {"architecture": "amd64", "os": "linux"}
    layer = gzip_bytes(layer_tar)
    created = rfc3339(epoch)
    config = compact({
        "created": created,
        **platform,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created": created, "created_by": f"COPY x402_access_pass.wasm ./{PLUGIN_FILE}"}],
    })
    manifest = compact({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": descriptor(MEDIA_CONFIG, config),
        "layers": [descriptor(MEDIA_LAYER, layer)],
        "annotations": {
            "module.wasm.image/variant": "compat",
            "org.opencontainers.image.title": IMAGE_NAME,
            "org.opencontainers.image.version": tag,
            "org.opencontainers.image.created": created,
        },
    })
    index = compact({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [descriptor(MEDIA_MANIFEST, manifest, {
            "org.opencontainers.image.ref.name": tag,
            "io.containerd.image.name": f"localhost/{IMAGE_NAME}:{tag}",
        }, platform)],
    })
    files: dict[str, bytes] = {
        "oci-layout": compact({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
    }
    for blob in (layer, config, manifest):
        files["blobs/sha256/" + sha256(blob).split(":", 1)[1]] = blob
    summary = {
        "tag": tag,
        "manifestDigest": sha256(manifest),
        "configDigest": sha256(config),
        "layerDigest": sha256(layer),
        "layerDiffId": sha256(layer_tar),
        "wasmSha256": hashlib.sha256(wasm).hexdigest(),
        "wasmSize": len(wasm),
    }
    return files, summary


def layout_tarball(files: dict[str, bytes], epoch: int = 0) -> bytes:
    entries: list[tuple[str, bytes | None]] = [("blobs/", None), ("blobs/sha256/", None)]
    entries += list(files.items())
    return make_tar(entries, epoch)


def cargo_version() -> str:
    with open(REPO / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm", type=pathlib.Path, default=DEFAULT_WASM)
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--tag", default=None, help="image tag (default: the crate version)")
    args = parser.parse_args(argv)
    if not args.wasm.is_file():
        print(f"oci-image: {args.wasm} is missing: run `make build` first", file=sys.stderr)
        return 1
    wasm = args.wasm.read_bytes()
    if wasm[:4] != b"\0asm":
        print(f"oci-image: {args.wasm} is not a WebAssembly module", file=sys.stderr)
        return 1
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    tag = args.tag or cargo_version()
    files, summary = build_layout(wasm, tag, epoch)
    data = layout_tarball(files, epoch)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + f".tmp.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, args.output)
    summary["tarball"] = str(args.output)
    summary["tarballSha256"] = hashlib.sha256(data).hexdigest()
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
