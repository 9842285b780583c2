"""Artifact store: publish / list / pull round trips on a local folder and on S3 (moto over HTTP)."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from ppipe import storage
from ppipe.artifacts import ArtifactError, default_store, list_artifacts, publish, pull, resolve, set_alias
from ppipe.artifacts import ArtifactStore


@pytest.fixture
def src(tmp_path):
    """A few local files shaped like a published model."""
    d = tmp_path / "src"
    (d / "inference").mkdir(parents=True)
    (d / "model.pdparams").write_bytes(os.urandom(4096))
    (d / "inference" / "model.json").write_text('{"program": 1}')
    (d / "inference" / "model.pdiparams").write_bytes(os.urandom(2048))
    (d / "config.yaml").write_text("Arch:\n  name: ResNet50_vd\n")
    return {
        "model.pdparams": str(d / "model.pdparams"),
        "inference/model.json": str(d / "inference" / "model.json"),
        "inference/model.pdiparams": str(d / "inference" / "model.pdiparams"),
        "config.yaml": str(d / "config.yaml"),
    }


TARGETS = ["paddle-inference-mkldnn", "paddle-inference-cpu", "tensorrt"]


def _round_trip(store, src, tmp_path):
    m1 = publish(store, "resnet50_vd", src, metrics={"top1": 0.71}, targets=TARGETS, metadata={"epochs": 2})
    assert m1["version"] == "v1" and m1["name"] == "resnet50_vd"
    assert set(m1["files"]) == set(src)
    assert m1["files"]["model.pdparams"] == {"sha256": storage.sha256_file(src["model.pdparams"]),
                                             "size": os.path.getsize(src["model.pdparams"])}
    m2 = publish(store, "resnet50_vd", src, metrics={"top1": 0.75}, targets=TARGETS, aliases=["candidate", "latest"])
    assert m2["version"] == "v2"
    publish(store, "lcnet", {"model.pdparams": src["model.pdparams"]})

    rows = list_artifacts(store)
    assert [(r["name"], r["version"]) for r in rows] == [("lcnet", "v1"), ("resnet50_vd", "v1"), ("resnet50_vd", "v2")]
    for r in rows:
        assert {"name", "version", "aliases", "uri", "targets", "metrics"} <= set(r)
    r1, r2 = rows[1], rows[2]
    assert r1["aliases"] == [] and r2["aliases"] == ["latest", "candidate"]
    assert r1["metrics"] == {"top1": 0.71} and r2["targets"] == TARGETS
    assert r2["uri"] == storage.join(store if "://" in store else os.path.abspath(store), "resnet50_vd", "v2")
    assert storage.exists(storage.join(r2["uri"], "manifest.json"))
    json.dumps(rows)  # the CLI prints it as JSON

    dest = tmp_path / "pulled"
    man = pull(store, "resnet50_vd", str(dest))
    assert man["version"] == "v2"
    for rel, local in src.items():
        assert (dest / rel).read_bytes() == open(local, "rb").read()
    assert json.loads((dest / "manifest.json").read_text())["version"] == "v2"

    assert pull(store, "resnet50_vd:v1", str(tmp_path / "p1"))["metrics"] == {"top1": 0.71}
    assert pull(store, "resnet50_vd:1", str(tmp_path / "p1b"))["version"] == "v1"
    assert pull(store, "resnet50_vd@candidate", str(tmp_path / "p2"))["version"] == "v2"
    assert pull(store, "resnet50_vd@latest", str(tmp_path / "p3"))["version"] == "v2"

    set_alias(store, "resnet50_vd", "production", "v1")
    assert resolve(store, "resnet50_vd@production")["version"] == "v1"
    rows = {(r["name"], r["version"]): r for r in list_artifacts(store)}
    assert rows[("resnet50_vd", "v1")]["aliases"] == ["production"]
    # moving an alias
    set_alias(store, "resnet50_vd", "production", 2)
    assert resolve(store, "resnet50_vd@production")["version"] == "v2"
    rows = {(r["name"], r["version"]): r for r in list_artifacts(store)}
    assert rows[("resnet50_vd", "v1")]["aliases"] == []
    assert rows[("resnet50_vd", "v2")]["aliases"] == ["latest", "candidate", "production"]

    # latest follows new versions; the latest.json file is kept for file-only readers
    assert publish(store, "resnet50_vd", src)["version"] == "v3"
    assert resolve(store, "resnet50_vd")["version"] == "v3"
    latest = json.loads(storage.read_bytes(storage.join(store, "resnet50_vd", "aliases", "latest.json")))
    assert latest["version"] == "v3"


def test_round_trip_local(tmp_path, src):
    _round_trip(str(tmp_path / "store"), src, tmp_path)


def test_round_trip_s3(s3_bucket, src, tmp_path):
    _round_trip(f"{s3_bucket}/zoo", src, tmp_path)


def test_default_store(tmp_path, monkeypatch, src):
    monkeypatch.delenv("PPIPE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_store() == os.path.join(str(tmp_path), "artifacts")
    publish(None, "m", {"a.bin": src["model.pdparams"]})
    assert (tmp_path / "artifacts" / "m" / "v1" / "manifest.json").is_file()
    monkeypatch.setenv("PPIPE_STORE", str(tmp_path / "elsewhere"))
    assert default_store() == str(tmp_path / "elsewhere")
    assert list_artifacts() == []
    publish(None, "m", {"a.bin": src["model.pdparams"]})
    assert [r["uri"] for r in list_artifacts()] == [os.path.join(str(tmp_path / "elsewhere"), "m", "v1")]


def _tamper(store, rel_url, data):
    fs, path = storage.filesystem(storage.join(store, *rel_url.split("/")))
    fs.pipe_file(path, data)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_pull_detects_tampering(where, request, tmp_path, src):
    store = str(tmp_path / "store") if where == "local" else request.getfixturevalue("s3_bucket") + "/p"
    publish(store, "m", src)
    original = open(src["inference/model.pdiparams"], "rb").read()
    # same size, different bytes
    _tamper(store, "m/v1/inference/model.pdiparams", bytes([original[0] ^ 0xFF]) + original[1:])
    dest = tmp_path / "out"
    with pytest.raises(ArtifactError, match=r"inference/model\.pdiparams \(sha256") as ei:
        pull(store, "m", str(dest))
    assert "model.pdparams" not in str(ei.value).replace("model.pdiparams", "")  # only the bad file is named
    assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == (["src", "store"] if where == "local" else ["src"])  # no temp dirs left

    # a truncated file and a deleted file are both named
    _tamper(store, "m/v1/config.yaml", b"x")
    fs, path = storage.filesystem(storage.join(store, "m", "v1", "model.pdparams"))
    fs.rm(path)
    with pytest.raises(ArtifactError) as ei:
        pull(store, "m:v1", str(dest))
    msg = str(ei.value)
    assert "config.yaml (size 1" in msg and "model.pdparams (missing" in msg and "inference/model.pdiparams" in msg
    assert not dest.exists()


def test_crashed_publish_is_invisible(tmp_path, src):
    store = str(tmp_path / "store")
    publish(store, "m", src, metrics={"top1": 0.5})
    # a publish that died before its manifest: files but no manifest.json, no claim marker
    crashed = tmp_path / "store" / "m" / "v2"
    crashed.mkdir()
    (crashed / "model.pdparams").write_bytes(b"partial")
    assert [r["version"] for r in list_artifacts(store)] == ["v1"]
    assert resolve(store, "m")["version"] == "v1"
    with pytest.raises(ArtifactError, match=r"no version v2 .*versions: v1"):
        pull(store, "m:v2", str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()
    with pytest.raises(ArtifactError, match="v2"):
        set_alias(store, "m", "production", "v2")

    # the next publish reuses the number and leaves none of the leftovers behind
    m = publish(store, "m", {"model.pdparams": src["model.pdparams"]})
    assert m["version"] == "v2"
    assert sorted(p.name for p in crashed.iterdir()) == [".publish.json", "manifest.json", "model.pdparams"]
    assert pull(store, "m", str(tmp_path / "d"))["version"] == "v2"
    assert (tmp_path / "d" / "model.pdparams").read_bytes() == open(src["model.pdparams"], "rb").read()


def test_publish_in_progress_is_skipped(tmp_path, src):
    store = str(tmp_path / "store")
    publish(store, "m", src)
    # another publisher has claimed v2 just now: the next publish must not touch it
    busy = tmp_path / "store" / "m" / "v2"
    busy.mkdir()
    (busy / ".publish.json").write_text(json.dumps({"token": "other", "started_unix": time.time()}))
    (busy / "model.pdparams").write_bytes(b"half")
    assert publish(store, "m", src)["version"] == "v3"
    assert (busy / "model.pdparams").read_bytes() == b"half"
    assert [r["version"] for r in list_artifacts(store)] == ["v1", "v3"]
    # a claim is never taken over: the number stays taken, and gc removes the folder once past its grace period
    assert publish(store, "m", src)["version"] == "v4"
    assert ArtifactStore(store).gc(dry_run=True)["kept_recent"] == [str(busy)]
    report = ArtifactStore(store).gc(grace_s=0.0)
    assert report["incomplete"] == [str(busy)] and not busy.exists()
    assert [r["version"] for r in list_artifacts(store)] == ["v1", "v3", "v4"]


def test_crashed_publish_s3(s3_bucket, src, tmp_path):
    store = f"{s3_bucket}/crash"
    publish(store, "m", src)
    storage.write_bytes_atomic(storage.join(store, "m", "v2", "model.pdparams"), b"partial")
    assert [r["version"] for r in list_artifacts(store)] == ["v1"]
    with pytest.raises(ArtifactError, match="no version v2"):
        pull(store, "m:2", str(tmp_path / "d"))
    assert publish(store, "m", {"w.pdparams": src["model.pdparams"]})["version"] == "v2"
    man = pull(store, "m", str(tmp_path / "d"))
    assert set(man["files"]) == {"w.pdparams"}
    assert sorted(os.listdir(tmp_path / "d")) == ["manifest.json", "w.pdparams"]


def test_unknown_refs(tmp_path, src):
    store = str(tmp_path / "store")
    with pytest.raises(ArtifactError, match=r"no artifact named 'm'.*artifacts: none"):
        pull(store, "m", str(tmp_path / "d"))
    publish(store, "m", src)
    publish(store, "m", src, aliases=["production"])
    publish(store, "other", src)
    with pytest.raises(ArtifactError, match=r"no artifact named 'nope'.*artifacts: m, other"):
        pull(store, "nope", str(tmp_path / "d"))
    with pytest.raises(ArtifactError, match=r"no version v9 .*versions: v1, v2"):
        pull(store, "m:v9", str(tmp_path / "d"))
    with pytest.raises(ArtifactError, match=r"no alias 'staging'.*aliases: latest, production"):
        pull(store, "m@staging", str(tmp_path / "d"))
    with pytest.raises(ArtifactError, match="invalid version"):
        pull(store, "m:latest", str(tmp_path / "d"))
    with pytest.raises(ArtifactError, match="no version v5"):
        set_alias(store, "m", "production", 5)
    with pytest.raises(ArtifactError, match="reserved"):
        set_alias(store, "m", "latest", 1)
    assert not (tmp_path / "d").exists()


def test_bad_input(tmp_path, src):
    store = str(tmp_path / "store")
    with pytest.raises(ArtifactError, match=r"not found: weights.pdparams -> .*nope.pdparams"):
        publish(store, "m", {"weights.pdparams": str(tmp_path / "nope.pdparams"), "config.yaml": src["config.yaml"]})
    for bad in ["bad name", "a/b", "", "x:y", "..", "é"]:
        with pytest.raises(ArtifactError, match="invalid artifact name"):
            publish(store, bad, src)
    for rel in ["../escape", "/abs", "a//b", "manifest.json"]:
        with pytest.raises(ArtifactError, match=re.escape(repr(rel))):
            publish(store, "m", {rel: src["config.yaml"]})
    with pytest.raises(ArtifactError, match="invalid alias"):
        publish(store, "m", src, aliases=["prod uction"])
    with pytest.raises(ArtifactError, match="JSON"):
        publish(store, "m", src, metrics={"x": object()})
    assert list_artifacts(store) == []  # nothing was published by the failures


def test_pull_into_existing_dest(tmp_path, src):
    store = str(tmp_path / "store")
    publish(store, "m", src)
    publish(store, "m", {"only.bin": src["model.pdparams"]})
    dest = tmp_path / "dest"
    dest.mkdir()
    pull(store, "m:1", str(dest))  # an empty folder is fine
    with pytest.raises(ArtifactError, match="not empty"):
        pull(store, "m", str(dest))
    assert (dest / "config.yaml").exists()
    pull(store, "m", str(dest), overwrite=True)
    assert sorted(os.listdir(dest)) == ["manifest.json", "only.bin"]
    assert sorted(os.listdir(tmp_path)) == ["dest", "src", "store"]



def test_failed_publish_cleans_up(tmp_path, src, monkeypatch):
    store = str(tmp_path / "store")
    publish(store, "m", src)
    real = storage.upload_file_atomic
    calls = []

    def flaky(local, url):
        calls.append(url)
        if len(calls) == 2:
            raise OSError("connection reset")
        real(local, url)

    monkeypatch.setattr(storage, "upload_file_atomic", flaky)
    with pytest.raises(OSError, match="connection reset"):
        publish(store, "m", src)
    assert not (tmp_path / "store" / "m" / "v2").exists()
    assert [r["version"] for r in list_artifacts(store)] == ["v1"]
    monkeypatch.setattr(storage, "upload_file_atomic", real)
    assert publish(store, "m", src)["version"] == "v2"


def test_one_store_object_serves_every_operation_as_the_module_functions_do(tmp_path, src):
    from ppipe.artifacts import ArtifactStore

    store = ArtifactStore(str(tmp_path / "store"))
    assert store.url == str(tmp_path / "store") and "store" in repr(store)
    first = store.publish("m", src, metrics={"top1": 0.5})
    store.publish("m", {"model.pdparams": src["model.pdparams"]}, aliases=["candidate"])
    store.set_alias("m", "production", first["version"])
    assert store.list() == list_artifacts(str(tmp_path / "store"))
    assert [(r["version"], r["aliases"]) for r in store.versions("m")] == [("v1", ["production"]),
                                                                          ("v2", ["latest", "candidate"])]
    assert store.resolve("m@production")["metrics"] == {"top1": 0.5}
    assert store.pull("m@candidate", str(tmp_path / "d"))["version"] == "v2"
