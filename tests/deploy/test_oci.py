"""tools/oci-image.py: the plugin as an OCI image layout tarball (Wasm Image Spec, compat variant).

Checks every descriptor (digest and size) from index.json down to the layer, the media types
Istio's agent looks for, that the single layer holds the exact wasm bytes as `plugin.wasm`, and
that two builds are byte-identical.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile

import pytest

from deploylib import REPO, WASM

TOOL = REPO / "tools/oci-image.py"


def build(out, *extra, env=None):
    proc = subprocess.run([sys.executable, str(TOOL), "--wasm", str(WASM), "--output", str(out), *extra],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("oci")
    summary = build(d / "a.tar")
    data = (d / "a.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        files = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}
    return {"dir": d, "summary": summary, "data": data, "members": members, "files": files}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(image, desc: dict) -> bytes:
    """The blob a descriptor points at, checked against the descriptor's digest and size."""
    algo, hexdigest = desc["digest"].split(":")
    assert algo == "sha256"
    data = image["files"][f"blobs/sha256/{hexdigest}"]
    assert sha(data) == desc["digest"]
    assert len(data) == desc["size"], desc
    return data


def test_layout_entries_are_sorted_with_fixed_metadata(image):
    names = [m.name for m in image["members"]]
    assert names == sorted(names)
    assert names[:2] == ["blobs", "blobs/sha256"]  # directories (stored as "blobs/", "blobs/sha256/")
    assert all(m.isdir() for m in image["members"][:2])
    assert names[-2:] == ["index.json", "oci-layout"]
    assert len([n for n in names if n.startswith("blobs/sha256/")]) == 3
    for m in image["members"]:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", ""), m.name
        assert m.mode == (0o755 if m.isdir() else 0o644), m.name
    assert json.loads(image["files"]["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in image["files"].items():  # every blob is named by its own digest
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]


def test_index_manifest_config_and_layer(image):
    index = json.loads(image["files"]["index.json"])
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert len(index["manifests"]) == 1
    mdesc = index["manifests"][0]
    assert mdesc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert mdesc["annotations"]["org.opencontainers.image.ref.name"] == image["summary"]["tag"]
    assert mdesc["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = json.loads(blob(image, mdesc))
    assert mdesc["digest"] == image["summary"]["manifestDigest"]

    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert len(manifest["layers"]) == 1
    layer_desc = manifest["layers"][0]
    assert layer_desc["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"

    layer = blob(image, layer_desc)
    config = json.loads(blob(image, manifest["config"]))
    assert layer[:3] == b"\x1f\x8b\x08"           # gzip, deflate
    assert layer[3] & 0x08 == 0                    # no file name in the gzip header
    assert layer[4:8] == b"\0\0\0\0"               # no time in the gzip header
    layer_tar = gzip.decompress(layer)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha(layer_tar)]}
    assert (config["os"], config["architecture"]) == ("linux", "amd64")   # as index.json says
    assert len(config["history"]) == 1

    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        m = members[0]
        assert m.isfile() and m.mode == 0o644 and (m.uid, m.gid, m.mtime) == (0, 0, 0)
        plugin = tar.extractfile(m).read()
    assert plugin == WASM.read_bytes()
    assert image["summary"]["wasmSha256"] == hashlib.sha256(plugin).hexdigest()
    # every blob in the layout is referenced
    referenced = {mdesc["digest"], manifest["config"]["digest"], layer_desc["digest"]}
    blobs = {"sha256:" + n.rsplit("/", 1)[1] for n in image["files"] if n.startswith("blobs/sha256/")}
    assert blobs == referenced


def test_what_istio_agent_extracts(image):
    """The steps of istio pkg/wasm/imagefetcher.go for an OCI manifest: the last layer must be
    application/vnd.oci.image.layer.v1.tar+gzip, and the file whose base name is plugin.wasm
    in that tar.gz is the module."""
    index = json.loads(image["files"]["index.json"])
    manifest = json.loads(blob(image, index["manifests"][0]))
    last = manifest["layers"][-1]
    assert last["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    with tarfile.open(fileobj=gzip.GzipFile(fileobj=io.BytesIO(blob(image, last)))) as tar:
        found = [m for m in tar if m.name.rsplit("/", 1)[-1] == "plugin.wasm"]
        assert found
        assert tar.extractfile(found[0]).read() == WASM.read_bytes()


def test_two_builds_are_byte_identical(image, tmp_path):
    again = build(tmp_path / "b.tar")
    assert (tmp_path / "b.tar").read_bytes() == image["data"]
    assert again["manifestDigest"] == image["summary"]["manifestDigest"]
    assert again["tarballSha256"] == hashlib.sha256(image["data"]).hexdigest()


def test_tag_and_source_date_epoch(tmp_path):
    import os
    one = build(tmp_path / "t.tar", "--tag", "9.9.9-test", env={**os.environ, "SOURCE_DATE_EPOCH": "1767225600"})
    with tarfile.open(tmp_path / "t.tar") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1767225600}
        index = json.loads(tar.extractfile("index.json").read())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "9.9.9-test"
    assert one["tag"] == "9.9.9-test"


def test_refuses_a_file_that_is_not_wasm(tmp_path):
    bogus = tmp_path / "not.wasm"
    bogus.write_bytes(b"#!/bin/sh\n")
    proc = subprocess.run([sys.executable, str(TOOL), "--wasm", str(bogus), "--output", str(tmp_path / "x.tar")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "not a WebAssembly module" in proc.stderr
    assert not (tmp_path / "x.tar").exists()
