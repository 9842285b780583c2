"""The flows' own logic, without a Prefect server: which failures retry (and that Prefect's engine retries them
while a wrong input fails once), the lineage fingerprint and its record in the store, the promotion gate, recipe
resolution, and the report's table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flows import recipes, report
from flows.promotion import Gate, promote_if_passing
from flows.retry import is_infrastructure_failure
from ppipe import fingerprint
from ppipe.artifacts import publish, resolve
from ppipe.errors import ConfigError, UserError


def _published(store, name="m", metrics=None, tmp=None):
    f = Path(tmp) / "w.bin"
    f.write_bytes(b"weights")
    return publish(str(store), name, {"model.pdparams": str(f)}, metrics=metrics or {"top1": 0.8})


@pytest.mark.parametrize("exc", [TimeoutError("storage timed out"), ConnectionError("reset"), OSError(5, "EIO")])
def test_infrastructure_failures_are_retried(exc):
    assert is_infrastructure_failure(exc)


def test_lost_ray_workers_are_retried_and_wrapped_causes_are_seen():
    from ray.exceptions import RayActorError, WorkerCrashedError

    assert is_infrastructure_failure(WorkerCrashedError()) and is_infrastructure_failure(RayActorError())
    try:
        try:
            raise ConnectionError("gcs unreachable")
        except ConnectionError as inner:
            raise RuntimeError("training failed") from inner
    except RuntimeError as outer:
        assert is_infrastructure_failure(outer)


@pytest.mark.parametrize("exc", [ConfigError("Arch.name: unknown"), UserError("bad dataset"),
                                 FileNotFoundError("no such recipe"), ValueError("bug"), None])
def test_wrong_inputs_and_bugs_are_not_retried(exc):
    assert not is_infrastructure_failure(exc)


def test_a_wrong_input_anywhere_in_the_causes_wins_over_an_oserror():
    try:
        try:
            raise ConfigError("Global.epochs: expected >= 1")
        except ConfigError as inner:
            raise OSError("worker failed") from inner
    except OSError as outer:
        assert not is_infrastructure_failure(outer)


def test_fingerprint_changes_with_each_of_recipe_code_and_data():
    fp = fingerprint.fingerprint
    base = fp("a: 1\n", "abc", "d" * 64)
    assert base == fp("a: 1\n", "abc", "d" * 64)
    assert len({base, fp("a: 2\n", "abc", "d" * 64), fp("a: 1\n", "abd", "d" * 64), fp("a: 1\n", "abc", "e" * 64)}) == 4


def test_data_version_is_the_manifest_sha256_and_dvc_lock_md5(tmp_path):
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    (prepared / "manifest.json").write_text('{"format": "x"}')
    before = fingerprint.data_version(str(prepared), str(tmp_path))["content_sha256"]
    # prepared again from unchanged data: a new time and source file-time fingerprint, the same content
    (prepared / "manifest.json").write_text('{"format": "x", "created": "2027", "fingerprint": "f2"}')
    assert fingerprint.data_version(str(prepared), str(tmp_path))["content_sha256"] == before
    (prepared / "manifest.json").write_text('{"format": "x"}')
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"prepare": {
        "cmd": "ppipe prepare", "outs": [{"path": "data/prepared", "md5": "0123abcd.dir", "nfiles": 3}]}}}))
    import hashlib

    version = fingerprint.data_version(str(prepared), str(tmp_path))
    assert version["manifest_sha256"] == hashlib.sha256(b'{"format": "x"}').hexdigest()
    assert version["dvc_md5"] == "0123abcd.dir"
    assert fingerprint.data_version(str(prepared), str(tmp_path / "elsewhere"))["dvc_md5"] is None


def test_code_version_marks_local_edits(tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    (repo / "ppipe").mkdir(parents=True)
    (repo / "ppipe" / "a.py").write_text("x = 1\n")
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True)
    clean = fingerprint.code_revision(str(repo))
    assert len(clean) == 40
    (repo / "ppipe" / "a.py").write_text("x = 2\n")
    assert fingerprint.code_revision(str(repo)).startswith(clean + "+dirty.")


def test_lineage_record_describes_only_the_version_it_was_written_for(tmp_path):
    store = tmp_path / "store"
    first = _published(store, tmp=tmp_path)
    assert fingerprint.latest_lineage(str(store), "m") is None
    fingerprint.record_lineage(str(store), first, {"fingerprint": "f1", "parents": ["teacher:v2"]})
    meta = fingerprint.latest_lineage(str(store), "m")
    assert meta["fingerprint"] == "f1" and meta["model_version"] == "v1" and meta["parents"] == ["teacher:v2"]
    doc = json.loads((store / "m.lineage" / "v1" / "lineage.json").read_text())
    assert doc["model"] == "m:v1"
    _published(store, tmp=tmp_path)  # a newer version published without lineage
    assert fingerprint.latest_lineage(str(store), "m") is None


def test_gate_promotes_only_a_passing_version(tmp_path):
    store = tmp_path / "store"
    _published(store, metrics={"top1": 0.4}, tmp=tmp_path)
    _published(store, metrics={"top1": 0.9}, tmp=tmp_path)
    gate = Gate.from_params({"metric": "top1", "minimum": 0.5, "alias": "production"})
    failed = promote_if_passing(str(store), "m:v1", gate)
    assert not failed["promoted"] and "fails >= 0.5" in failed["reason"]
    with pytest.raises(Exception, match="no alias 'production'"):
        resolve(str(store), "m@production")
    assert promote_if_passing(str(store), "m:v2", gate)["promoted"]
    assert resolve(str(store), "m@production")["version"] == "v2"
    assert not promote_if_passing(str(store), "m:v2", Gate(metric="top5"))["promoted"]


def test_gate_parameters_are_checked():
    assert Gate.from_params(None) is None
    with pytest.raises(ConfigError, match="unknown key"):
        Gate.from_params({"metric": "top1", "threshold": 0.5})
    with pytest.raises(ConfigError, match="gate.mode"):
        Gate.from_params({"mode": "best"})


def test_recipes_resolve_zoo_names_paths_and_families():
    assert recipes.resolve_recipe("ResNet50_vd").endswith("configs/ImageNet/ResNet/ResNet50_vd.yaml")
    assert recipes.resolve_recipe("configs/quickstart.yaml").endswith("configs/quickstart.yaml")
    with pytest.raises(ConfigError, match="ResNet50_vd"):
        recipes.resolve_recipe("ResNet50_vdd")
    with pytest.raises(ConfigError, match="no recipe file"):
        recipes.resolve_recipe("configs/missing.yaml")
    models = recipes.zoo_models(["MobileNetV3"], "MobileNetV3_small_*")
    assert models and all(m.startswith("MobileNetV3_small_") for m in models)
    found, missing = recipes.zoo_recipes(models)
    assert sorted(found) == models and not missing
    with pytest.raises(ConfigError, match="MobileNetV3"):
        recipes.zoo_models(["MobileNetv3"])


def test_report_table_has_metrics_latencies_refs_and_reasons(tmp_path):
    run = tmp_path / "out" / "wandb" / "offline-run-20260101_000000-abc"
    run.mkdir(parents=True)
    rows = [{"model": "a", "status": "published", "ref": "a:v1", "metrics": {"top1": 0.9, "top5": 1.0},
             "export": {"targets": {"onnx": {"measurements": {"latency_ms_b1": 1.234}}}},
             "promotion": {"promoted": True, "alias": "production", "reason": "top1=0.9 >= 0.5"}},
            {"model": "b", "status": "skipped", "ref": "b:v3", "reason": "unchanged"},
            {"model": "c", "status": "failed", "reason": "train: ConfigError: x | y"}]
    table = report.table_rows(rows)
    assert table[0]["latency_ms"] == "onnx=1.23" and table[0]["top1"] == 0.9
    assert table[0]["promotion"].startswith("promoted to @production")
    md = report._markdown("t", rows, report.wandb_runs([str(tmp_path / "out")], since=0))
    assert "| b | skipped | b:v3 |" in md and "x \\| y" in md and "1 published, 1 skipped, 1 failed" in md
    assert f"(file://{run})" in md


def test_distill_finds_the_teachers_place_in_the_recipe(tmp_path):
    from flows.distill import teacher_index
    from flows.workspace import REPO

    assert teacher_index(str(REPO / "configs" / "flows" / "distill_quickstart.yaml"), "Teacher") == 0
    with pytest.raises(ConfigError, match="no 'Teacher' entry"):
        teacher_index(str(REPO / "configs" / "quickstart.yaml"), "Teacher")


def test_distill_with_a_teacher_recipe_and_the_deployments_default_teacher_says_to_pass_null():
    from flows.distill import _teacher_ref

    with pytest.raises(ConfigError, match=r"got teacher='quickstart-pplcnet@production', teacher_recipe='t.yaml'.*"
                                          r"pass \"teacher\": null"):
        _teacher_ref("quickstart-pplcnet@production", "t.yaml", (), "configs/ImageNet", since=0.0)
    with pytest.raises(ConfigError, match="give exactly one of"):
        _teacher_ref(None, None, (), "configs/ImageNet", since=0.0)


def test_shipped_flow_recipes_and_search_files_load():
    from flows.workspace import REPO
    from ppipe.config import load_config
    from ppipe.tune import load_search_space

    cfg = load_config(str(REPO / "configs" / "quickstart.yaml"))
    space = load_search_space(str(REPO / "configs" / "tune" / "quickstart_lr.yaml"), cfg)
    assert space.settings.scheduler == "asha"
    pbt = load_search_space(str(REPO / "configs" / "tune" / "quickstart_pbt.yaml"), cfg)
    assert pbt.settings.scheduler == "pbt" and pbt.settings.perturbation_interval == 1
    distill = load_config(str(REPO / "configs" / "flows" / "distill_quickstart.yaml"))
    assert distill.Arch.name == "DistillationModel" and distill.Publish.name == "quickstart-distilled"


def test_prefect_yaml_deploys_every_flow_with_documented_parameters():
    import inspect

    from flows.workspace import REPO

    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for dep in doc["deployments"]:
        path, name = dep["entrypoint"].split(":")
        module = __import__(path[:-3].replace("/", "."), fromlist=[name])
        fn = getattr(module, name).fn
        params = set(inspect.signature(fn).parameters)
        assert set(dep.get("parameters", {})) <= params, dep["name"]
        assert dep["description"] and dep["work_pool"]["name"] == "ppipe"
        for p in params:  # every parameter is documented in the flow's module docstring
            assert f"`{p}`" in (module.__doc__ or "") or dep["name"] == "quickstart", (dep["name"], p)
