"""The registry for real use: references and file names validated, tampered and corrupt manifests contained,
promotion behind metric gates with its history, show, diff, gc, and no credential ever in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ppipe.artifacts import ArtifactError, ArtifactStore, CorruptManifest, parse_gate, parse_ref


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    (d / "inference").mkdir(parents=True)
    (d / "model.pdparams").write_bytes(os.urandom(1024))
    (d / "inference" / "model.json").write_text('{"program": 1}')
    (d / "config.yaml").write_text("Arch:\n  name: ResNet50_vd\n")
    return {"model.pdparams": str(d / "model.pdparams"), "inference/model.json": str(d / "inference" / "model.json"),
            "config.yaml": str(d / "config.yaml")}


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(str(tmp_path / "store"))


def _rewrite_manifest(store, name, version, edit):
    path = os.path.join(store.root, name, version, "manifest.json")
    with open(path) as f:
        doc = json.load(f)
    edit(doc)
    with open(path, "w") as f:
        json.dump(doc, f)


# ---- references and names ------------------------------------------------------------------------------------

def test_refs_parse_into_name_and_version_or_alias():
    assert parse_ref("resnet50") == ("resnet50", "alias", "latest")
    assert parse_ref("resnet50:v3") == ("resnet50", "version", "v3")
    assert parse_ref("resnet50:3") == ("resnet50", "version", "v3")
    assert parse_ref("resnet50@production") == ("resnet50", "alias", "production")


@pytest.mark.parametrize("ref", ["../x", "a/b", "a\\b", ".hidden", "-rf", "x" * 200, "a@../b", "a@", ":v1",
                                 "a:v0", "a:../1", "é", "a b", ""])
def test_bad_refs_are_refused_naming_them(ref):
    with pytest.raises(ArtifactError, match="invalid"):
        parse_ref(ref)


@pytest.mark.parametrize("rel", ["../escape", "/abs", "a\\..\\b", "a\\b", "C:/x", "a/../b", "./a", "a//b", ".env",
                                 "a/.hidden", "x" * 600, "sp ace", "manifest.json", ".publish.json"])
def test_bad_file_names_are_refused_at_publish(store, src, rel):
    with pytest.raises(ArtifactError, match="file name"):
        store.publish("m", {rel: src["config.yaml"]})
    assert store.list() == []


# ---- tampered and corrupt manifests ---------------------------------------------------------------------------

@pytest.mark.parametrize("evil", ["../../../outside.txt", "/tmp/abs.txt", "a\\..\\..\\x", "sub/../../x"])
def test_a_tampered_manifest_cannot_make_pull_write_outside_dest(store, src, tmp_path, evil):
    store.publish("m", src)
    info = {"sha256": "0" * 64, "size": 1}
    _rewrite_manifest(store, "m", "v1", lambda doc: doc["files"].update({evil: info}))
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(CorruptManifest, match=r"m/v1/manifest\.json"):
        store.pull("m:v1", str(dest))
    assert not dest.exists() and not (tmp_path / "outside.txt").exists() and not os.path.exists("/tmp/abs.txt")
    assert not (tmp_path / "deep").exists()  # refused before anything was written, staging folder included


@pytest.mark.parametrize("field, value", [("name", "../../.."), ("name", "other"), ("version", "v9"),
                                          ("version", "../v1")])
def test_a_manifest_naming_another_artifact_or_a_path_is_refused(store, src, tmp_path, field, value):
    store.publish("m", src)
    store.publish("other", src)
    _rewrite_manifest(store, "m", "v1", lambda doc: doc.update({field: value}))
    with pytest.raises(CorruptManifest, match=r"points elsewhere"):
        store.pull("m:v1", str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("damage", [b"", b"{\"name\": \"m\", \"vers", b"\xff\xfe", b"[1, 2]", b"null"])
def test_a_corrupt_manifest_fails_its_version_alone(store, src, tmp_path, damage, caplog):
    store.publish("m", src, metrics={"top1": 0.5})
    store.publish("m", src, metrics={"top1": 0.6})
    store.publish("n", src)
    with open(os.path.join(store.root, "m", "v2", "manifest.json"), "wb") as f:
        f.write(damage)
    # the version itself: an error naming the file
    with pytest.raises(CorruptManifest, match=r"m/v2/manifest\.json"):
        store.resolve("m:v2")
    # list: the rest, with a warning naming it (on stderr from the CLI: test_cli_...)
    assert [(r["name"], r["version"]) for r in store.list()] == [("m", "v1"), ("n", "v1")]
    assert "m/v2/manifest.json" in caplog.text
    # latest skips it; the next publish takes a fresh number
    assert store.resolve("m")["version"] == "v1"
    assert store.publish("m", src)["version"] == "v3"
    assert store.resolve("m")["version"] == "v3"


def test_pull_verifies_every_file_and_leaves_nothing_on_a_mismatch(store, src, tmp_path):
    store.publish("m", src)
    with open(os.path.join(store.root, "m", "v1", "inference", "model.json"), "w") as f:
        f.write('{"program": 2}')  # same size, other bytes
    with pytest.raises(ArtifactError, match=r"inference/model\.json \(sha256"):
        store.pull("m", str(tmp_path / "d"))
    assert sorted(os.listdir(tmp_path)) == ["src", "store"]


# ---- promote, show, diff ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, gate", [("top1>=0.76", ("top1", ">=", 0.76)),
                                        (" latency_ms <= 12 ", ("latency_ms", "<=", 12.0))])
def test_metric_gates_parse(text, gate):
    g = parse_gate(text)
    assert (g.metric, g.op, g.value) == gate


@pytest.mark.parametrize("text", ["top1>0.7", "top1=0.7", "top1>=abc", ">=0.7", "top1"])
def test_bad_metric_gates_are_refused_naming_them(text):
    with pytest.raises(ArtifactError, match=r"invalid --require"):
        parse_gate(text)


def test_promote_checks_every_gate_and_records_who_when_and_from_which_version(store, src, monkeypatch):
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    store.publish("m", src, metrics={"top1": 0.70, "latency_ms": 9.0})
    store.publish("m", src, metrics={"top1": 0.78, "latency_ms": 15.0})
    with pytest.raises(ArtifactError, match=r"top1>=0.76: top1 is 0.7.*no numeric metric 'top5'"):
        store.promote("m:v1", "production", ["top1>=0.76", "latency_ms<=12", "top5>=0.9"])
    assert "production" not in store.aliases("m")
    store.promote("m:v1", "production")
    with pytest.raises(ArtifactError, match=r"latency_ms<=12: latency_ms is 15"):
        store.promote("m:v2", "production", ["top1>=0.76", "latency_ms<=12"])
    assert store.resolve("m@production")["version"] == "v1"
    doc = store.promote("m:v2", "production", ["top1>=0.76", "latency_ms<=20"])
    assert doc["version"] == "v2"
    last = doc["history"][-1]
    assert (last["version"], last["from"], last["by"], last["gates"]) == ("v2", "v1", "alice",
                                                                          ["top1>=0.76", "latency_ms<=20"])
    assert time.strftime("%Y-%m-%d", time.gmtime()) in last["at"]
    shown = store.show("m:v2")
    assert shown["aliases"] == ["latest", "production"]
    assert [(e["alias"], e["version"], e["from"]) for e in shown["alias_history"]] == [("production", "v2", "v1")]
    assert [(e["version"], e["from"]) for e in store.show("m:v1")["alias_history"]] == [("v1", None), ("v2", "v1")]


def test_diff_names_what_changed(store, src, tmp_path):
    store.publish("m", src, metrics={"top1": 0.70}, targets=["a"], lineage={"config": {"Global": {"epochs": 2}}})
    changed = tmp_path / "src" / "config.yaml"
    changed.write_text("Arch:\n  name: ResNet50_vd\n# v2\n")
    files = {**src, "extra.txt": src["config.yaml"]}
    files.pop("inference/model.json")
    store.publish("m", files, metrics={"top1": 0.75}, targets=["a", "b"],
                  lineage={"config": {"Global": {"epochs": 4}}})
    d = store.diff("m:v1", "m:v2")
    assert d["a"] == "m:v1" and d["b"] == "m:v2"
    assert d["metrics"]["top1"]["delta"] == pytest.approx(0.05)
    assert d["files"] == {"added": ["extra.txt"], "removed": ["inference/model.json"], "changed": ["config.yaml"],
                          "unchanged": 1}
    assert d["targets"] == {"added": ["b"], "removed": []}
    assert d["lineage"] == {"config.Global.epochs": {"a": 2, "b": 4}}


# ---- gc --------------------------------------------------------------------------------------------------------

def test_gc_removes_old_incomplete_versions_and_unlisted_files_never_a_published_version(store, src):
    store.publish("m", src)
    store.publish("m", src)
    root = store.root
    stale = os.path.join(root, "m", "v3")
    os.makedirs(stale)
    with open(os.path.join(stale, ".publish.json"), "w") as f:
        json.dump({"token": "x", "started_unix": time.time() - 3 * 86400}, f)
    with open(os.path.join(stale, "model.pdparams"), "wb") as f:
        f.write(b"partial")
    fresh = os.path.join(root, "m", "v4")
    os.makedirs(fresh)
    with open(os.path.join(fresh, ".publish.json"), "w") as f:
        json.dump({"token": "y", "started_unix": time.time()}, f)
    stray = os.path.join(root, "m", "v1", "stray.bin")
    with open(stray, "wb") as f:
        f.write(b"x")

    dry = store.gc(dry_run=True)
    assert dry["incomplete"] == [stale] and dry["unreferenced"] == [stray] and dry["kept_recent"] == [fresh]
    assert os.path.exists(stale) and os.path.exists(stray)  # a dry run removes nothing
    store.gc()
    assert not os.path.exists(stale) and not os.path.exists(stray) and os.path.exists(fresh)
    for v in ("v1", "v2"):
        store.pull(f"m:{v}", os.path.join(os.path.dirname(root), f"pulled-{v}"))  # still complete, still verify


# ---- credentials -------------------------------------------------------------------------------------------------

def test_no_credential_from_the_environment_reaches_the_store(tmp_path, src, monkeypatch):
    secret, token = "FAKEsecretKEY0123456789abcdef", "wandb-FAKE-api-key-0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("WANDB_API_KEY", token)
    store = ArtifactStore(str(tmp_path / "store"))
    store.publish("m", src, metrics={"top1": 0.5}, metadata={"model": "x"}, lineage={"run": "r"})
    found = subprocess.run(["grep", "-rl", "-e", secret, "-e", token, str(tmp_path / "store")],
                           capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == ""  # grep: 1 = nothing found
    # a file or a manifest field that would carry one is refused, naming the variable but not the value
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text(f"Tracking:\n  key: {token}\n")
    with pytest.raises(ArtifactError, match=r"leaky\.yaml \(\$WANDB_API_KEY\)") as e:
        store.publish("m", {"leaky.yaml": str(leaky)})
    assert token not in str(e.value)
    with pytest.raises(ArtifactError, match=r"the manifest \(\$AWS_SECRET_ACCESS_KEY\)"):
        store.publish("m", src, metadata={"oops": secret})
    assert [r["version"] for r in store.list()] == ["v1"]


# ---- CLI -------------------------------------------------------------------------------------------------------

def _ppipe(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ppipe", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_cli_artifacts_commands_print_one_json_document(store, src, tmp_path):
    store.publish("m", src, metrics={"top1": 0.8})
    store.publish("m", src, metrics={"top1": 0.7})
    url = store.url
    listed = _ppipe("artifacts", "list", "--store", url, "--json")
    assert [r["version"] for r in json.loads(listed.stdout)] == ["v1", "v2"]
    shown = json.loads(_ppipe("artifacts", "show", "m:v1", "--store", url, "--json").stdout)
    assert shown["version"] == "v1" and "files" in shown
    refused = _ppipe("artifacts", "promote", "m", "production", "--require", "top1>=0.75", "--store", url, "--json")
    assert refused.returncode == 2 and "top1>=0.75: top1 is 0.7" in refused.stderr and refused.stdout == ""
    promoted = json.loads(_ppipe("artifacts", "promote", "m:v1", "production", "--require", "top1>=0.75",
                                 "--store", url, "--json").stdout)
    assert promoted["version"] == "v1"
    diffed = json.loads(_ppipe("artifacts", "diff", "m:v1", "m:v2", "--store", url, "--json").stdout)
    assert diffed["metrics"]["top1"]["a"] == 0.8
    gc = json.loads(_ppipe("artifacts", "gc", "--dry-run", "--store", url, "--json").stdout)
    assert gc["dry_run"] is True and gc["incomplete"] == []
    pulled = json.loads(_ppipe("artifacts", "pull", "m@production", str(tmp_path / "d"), "--store", url,
                               "--json").stdout)
    assert pulled["version"] == "v1" and (tmp_path / "d" / "model.pdparams").is_file()
    text = _ppipe("artifacts", "show", "m:v1", "--store", url)
    assert "production" in text.stdout and "v1" in text.stdout

    with open(os.path.join(store.root, "m", "v2", "manifest.json"), "w") as f:
        f.write("{truncated")
    listed = _ppipe("artifacts", "list", "--store", url, "--json")
    assert [r["version"] for r in json.loads(listed.stdout)] == ["v1"] and "m/v2/manifest.json" in listed.stderr
    broken = _ppipe("artifacts", "show", "m:v2", "--store", url, "--json")
    assert broken.returncode == 2 and "m/v2/manifest.json" in broken.stderr and broken.stdout == ""
