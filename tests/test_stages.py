"""The chain train -> evaluate -> export -> publish -> pull on real components, and the pulled artifact
running in a Paddle Inference predictor with the trained model's logits."""

import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppipe import stages
from ppipe.artifacts import ArtifactError, list_artifacts, pull
from ppipe.config import load_config
from ppipe.inference import create_predictor, predict
from ppipe.models import create_model

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_prepared, local_ray):
    tmp = tmp_path_factory.mktemp("run")
    cfg = load_config(QUICKSTART, [
        f"Global.output_dir={tmp}/out", "Global.image_shape=[3, 16, 16]", "Global.epochs=2",
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16",
        f"Data.prepared={digits_prepared}", f"Publish.store={tmp}/store", "DataLoader.Train.sampler.batch_size=64"])
    summary = stages.train(cfg)
    return cfg, summary, tmp


def test_evaluate_stage_matches_the_in_training_evaluation(trained):
    cfg, summary, _ = trained
    metrics = stages.evaluate(cfg)
    assert metrics["num_images"] == 360
    # BatchNorm statistics are averaged over workers, so the saved model is the one evaluated in training
    assert metrics["top1"] == pytest.approx(summary["top1"], abs=1e-9)
    assert json.loads((Path(stages.run_dir(cfg)) / "eval.json").read_text())["top1"] == metrics["top1"]


def test_exported_artifact_pulls_verified_and_runs_in_a_predictor(trained, tmp_path):
    cfg, summary, tmp = trained
    info = stages.export(cfg)
    assert info["max_rel_err"] <= 1e-4
    entry = stages.publish(cfg)
    listed = list_artifacts(str(tmp / "store"))
    assert [(r["name"], r["version"]) for r in listed] == [("quickstart-pplcnet", entry["version"])]
    assert "candidate" in listed[0]["aliases"] and "latest" in listed[0]["aliases"]
    assert listed[0]["metrics"]["top1"] == pytest.approx(stages.evaluate(cfg)["top1"])

    dest = tmp_path / "pulled"
    pull(str(tmp / "store"), "quickstart-pplcnet@candidate", str(dest))
    x = np.random.RandomState(0).rand(4, 3, 16, 16).astype("float32")
    logits = predict(create_predictor(str(dest / "inference")), x)
    model = create_model("PPLCNet_x0_25", num_classes=10, pretrained=str(dest / "model.pdparams"))
    model.eval()
    ref = model(paddle.to_tensor(x)).numpy()
    assert np.abs(logits - ref).max() <= 1e-4 * np.abs(ref).max()

    # a corrupted file in the store is caught by the next pull, and nothing is left at the destination
    weights = Path(listed[0]["uri"]) / "model.pdparams"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ArtifactError, match="model.pdparams"):
        pull(str(tmp / "store"), "quickstart-pplcnet", str(tmp_path / "again"))
    assert not (tmp_path / "again").exists()


def test_publish_without_export_is_refused(tmp_path, trained):
    cfg, _, _ = trained
    other = load_config(QUICKSTART, [f"Global.output_dir={tmp_path}/empty", f"Publish.store={tmp_path}/s"])
    with pytest.raises(FileNotFoundError, match="train the run first"):
        stages.publish(other)
