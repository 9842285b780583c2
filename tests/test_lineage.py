"""Lineage: every manifest the publish stage writes says which code, data, config, parents and run made the
model, and which class names and preprocessing it expects; `show` prints it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import paddle
import pytest

from ppipe import stages
from ppipe.artifacts import ArtifactStore
from ppipe.config import load_config
from ppipe.fingerprint import dvc_hash
from ppipe.lineage import code_version, collect_lineage
from ppipe.models import create_model

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def untrained_run(tmp_path: Path, prepared: str, *overrides: str):
    """A run folder as training leaves it (weights, train.json, eval.json), without training: a fresh model."""
    cfg = load_config(QUICKSTART, [
        f"Global.output_dir={tmp_path}/out", "Global.image_shape=[3, 16, 16]", "Export.input_shape=[3, 16, 16]",
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16",
        f"Data.prepared={prepared}", f"Publish.store={tmp_path}/store", *overrides])
    rdir = stages.run_dir(cfg)
    os.makedirs(rdir.root, exist_ok=True)
    paddle.seed(0)
    paddle.save(create_model("PPLCNet_x0_25", num_classes=10).state_dict(), rdir.model)
    Path(rdir.summary).write_text(json.dumps({"model": "PPLCNet_x0_25", "top1": 0.5, "run_name": "ray-run-1"}))
    Path(rdir.eval).write_text(json.dumps({"top1": 0.55, "top5": 0.9, "num_images": 360}))
    return cfg, rdir


@pytest.fixture(scope="module")
def published(tmp_path_factory, digits_prepared):
    """A run exported (FP32 Paddle Inference only) and published with a Prefect flow-run id in the environment."""
    tmp = tmp_path_factory.mktemp("lineage")
    cfg, rdir = untrained_run(tmp, digits_prepared, "Export.targets=[paddle-inference-mkldnn]")
    stages.export(cfg)
    os.environ["PREFECT__FLOW_RUN_ID"] = "flow-run-1234"
    try:
        manifest = stages.publish(cfg)
    finally:
        del os.environ["PREFECT__FLOW_RUN_ID"]
    return cfg, rdir, manifest, tmp


def test_the_manifest_records_code_data_config_run_classes_and_preprocessing(published, digits_prepared):
    cfg, _, manifest, _ = published
    lineage = manifest["lineage"]
    assert lineage["code"] == code_version()
    assert lineage["code"]["commit"] == "unknown" or len(lineage["code"]["commit"]) == 40
    with open(os.path.join(digits_prepared, "manifest.json")) as f:
        data_manifest = json.load(f)
    import hashlib

    assert lineage["data"]["manifest_sha256"] == hashlib.sha256(
        json.dumps(data_manifest, sort_keys=True).encode()).hexdigest()
    assert lineage["data"]["url"] == digits_prepared and lineage["data"]["num_classes"] == 10
    assert lineage["config"]["Arch"]["name"] == "PPLCNet_x0_25"
    assert lineage["config"]["Global"]["image_shape"] == [3, 16, 16]
    assert lineage["run_name"] == "ray-run-1" and lineage["flow_run_id"] == "flow-run-1234"
    assert lineage["class_names"] == data_manifest["classes"]
    assert lineage["preprocessing"][0] == {"DecodeImage": {"to_rgb": True, "channel_first": False}}
    assert {"ResizeImage": {"size": 16}} in lineage["preprocessing"]
    assert manifest["metrics"]["top1"] == 0.55 and manifest["metrics"]["top5"] == 0.9  # evaluation wins


def test_the_published_weights_are_a_paddle_pickle(published, tmp_path):
    _, _, _, tmp = published
    dest = tmp_path / "pulled"
    ArtifactStore(str(tmp / "store")).pull("quickstart-pplcnet", str(dest))
    state = paddle.load(str(dest / "model.pdparams"))  # what a PaddleClas user does
    assert "fc.weight" in state or any(k.endswith("weight") for k in state)


def test_show_prints_the_lineage(published):
    _, _, manifest, tmp = published
    out = subprocess.run([sys.executable, "-m", "ppipe", "artifacts", "show", "quickstart-pplcnet",
                          "--store", str(tmp / "store")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert manifest["lineage"]["code"]["commit"] in out.stdout
    assert manifest["lineage"]["data"]["manifest_sha256"] in out.stdout
    assert "flow run: flow-run-1234" in out.stdout and "classes:  10" in out.stdout


def test_parents_name_the_distillation_teacher_and_the_fine_tuning_start(tmp_path, digits_prepared):
    teacher = tmp_path / "teacher" / "model.pdparams"
    teacher.parent.mkdir()
    paddle.save(create_model("PPLCNet_x0_25", num_classes=10).state_dict(), str(teacher))
    (teacher.parent / "manifest.json").write_text(json.dumps({"name": "teacher-zoo", "version": "v3"}))
    cfg, rdir = untrained_run(tmp_path, digits_prepared, f"Global.pretrained_model={teacher}")
    lineage = collect_lineage(cfg, rdir)
    assert [(p["role"], p.get("ref")) for p in lineage["parents"]] == [("pretrained", "teacher-zoo:v3")]
    assert len(lineage["parents"][0]["sha256"]) == 64

    import yaml

    data = yaml.safe_load(QUICKSTART.read_text())
    data["Arch"] = {"name": "DistillationModel", "class_num": 10, "infer_model_name": "Student",
                    "models": [{"Teacher": {"name": "PPLCNet_x0_25", "pretrained": str(teacher)}},
                               {"Student": {"name": "PPLCNet_x0_25"}}]}
    data["Loss"]["Train"] = [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}}]
    data["Metric"] = {s: [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}] for s in ("Train", "Eval")}
    distilled = load_config(data=data, overrides=[f"Global.output_dir={tmp_path}/d"])
    parents = collect_lineage(distilled, stages.run_dir(distilled), data=digits_prepared)["parents"]
    assert [(p["role"], p["key"], p["ref"]) for p in parents] == [("teacher", "Teacher", "teacher-zoo:v3")]


def test_int8_targets_name_their_fp32_source(tmp_path, digits_prepared):
    cfg, rdir = untrained_run(tmp_path, digits_prepared)
    Path(rdir.export_report).write_text(json.dumps({"targets": {
        "paddle-inference-mkldnn": {"status": "built"}, "paddle-inference-mkldnn-int8": {"status": "built"}}}))
    (fp32,) = [p for p in collect_lineage(cfg, rdir)["parents"] if p["role"] == "fp32-source"]
    assert fp32["file"] == "model.pdparams" and fp32["targets"] == ["paddle-inference-mkldnn-int8"]


def test_outside_a_git_checkout_the_commit_is_unknown(tmp_path):
    assert code_version(str(tmp_path)) == {"commit": "unknown", "dirty": None}


def test_a_checkout_with_changes_is_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("commit", "-qm", "x")
    clean = code_version(str(tmp_path))
    assert clean["dirty"] is False and len(clean["commit"]) == 40
    (tmp_path / "f").write_text("2")
    assert code_version(str(tmp_path)) == {"commit": clean["commit"], "dirty": True}


def test_dvc_lock_hash_of_the_prepared_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    cmd: ppipe prepare\n    outs:\n    - path: data/prepared\n"
        "      md5: abc123.dir\n")
    assert dvc_hash(str(tmp_path / "data" / "prepared")) == "abc123.dir"
    assert dvc_hash(str(tmp_path / "elsewhere")) is None
