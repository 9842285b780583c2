"""`ppipe predict`: top-k labels and scores from a published artifact (by reference) or a local folder, with the
artifact's own preprocessing and class names; a corrupt image is reported by name and the rest go on; a pulled
artifact whose weights are a crafted pickle is refused before the payload runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

from ppipe import stages
from ppipe.artifacts import ArtifactStore
from ppipe.data import create_operators
from ppipe.evaluate import eval_transform_ops
from ppipe.models import create_model
from ppipe.predict import predict_images
from ppipe.weights_io import UnsafeWeightsError
from tests.test_lineage import untrained_run
from tests.test_weights_entrypoints import write_malicious_weights


@pytest.fixture(scope="module")
def published(tmp_path_factory, digits_prepared):
    tmp = tmp_path_factory.mktemp("predict")
    cfg, rdir = untrained_run(tmp, digits_prepared, "Export.targets=[paddle-inference-mkldnn]")
    stages.export(cfg)
    manifest = stages.publish(cfg)
    return cfg, rdir, manifest, str(tmp / "store")


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.RandomState(0)
    for i in range(2):
        Image.fromarray(rng.randint(0, 255, (20, 24, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    buf = io.BytesIO()
    Image.fromarray(rng.randint(0, 255, (20, 24, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (d / "broken.jpg").write_bytes(buf.getvalue()[:40])  # truncated
    (d / "notes.txt").write_text("not an image, not listed")
    return d


def _expected_scores(cfg, weights: str, image: str) -> np.ndarray:
    """What the dygraph model gives for the image through the config's eval preprocessing (softmax)."""
    model = create_model("PPLCNet_x0_25", num_classes=10, pretrained=weights)
    model.eval()
    with open(image, "rb") as f:
        chw = create_operators(eval_transform_ops(cfg))(f.read())
    logits = model(paddle.to_tensor(np.asarray(chw, "float32")[None])).numpy()[0].astype("float64")
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_predict_from_a_reference_gives_topk_labels_and_scores_of_the_model(published, images):
    cfg, rdir, manifest, store = published
    results = predict_images("quickstart-pplcnet@candidate", [str(images)], topk=3, store=store)
    assert [os.path.basename(r["image"]) for r in results] == ["broken.jpg", "img0.png", "img1.png"]
    assert "error" in results[0] and "broken.jpg" in results[0]["error"]
    classes = manifest["lineage"]["class_names"]
    for r in results[1:]:
        expected = _expected_scores(cfg, rdir.model, r["image"])
        assert [t["class_id"] for t in r["topk"]] == list(np.argsort(-expected, kind="stable")[:3])
        for t in r["topk"]:
            assert t["label"] == classes[t["class_id"]]
            assert t["score"] == pytest.approx(expected[t["class_id"]], abs=1e-4)


def test_predict_from_a_local_run_or_export_folder(published, images):
    cfg, rdir, _, _ = published
    image = str(images / "img0.png")
    expected = _expected_scores(cfg, rdir.model, image)
    for folder in (rdir.root, rdir.inference):
        (result,) = predict_images(folder, [image], topk=1)
        assert result["topk"][0]["class_id"] == int(np.argmax(expected))
        assert result["topk"][0]["score"] == pytest.approx(expected.max(), abs=1e-4)


def test_cli_predict_json_lists_every_image_and_exits_1_when_one_failed(published, images):
    _, _, _, store = published
    out = subprocess.run([sys.executable, "-m", "ppipe", "predict", "quickstart-pplcnet", str(images / "img0.png"),
                          str(images / "broken.jpg"), "--topk", "2", "--store", store, "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert [sorted(r) for r in doc] == [["image", "topk"], ["error", "image"]]
    assert [sorted(t) for t in doc[0]["topk"]] == [["class_id", "label", "score"]] * 2
    ok = subprocess.run([sys.executable, "-m", "ppipe", "predict", "quickstart-pplcnet", str(images / "img1.png"),
                         "--store", store], capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0 and "img1.png:" in ok.stdout


def test_predict_refuses_bad_input_naming_it(published, tmp_path):
    _, _, _, store = published
    with pytest.raises(Exception, match="nope.png"):
        predict_images("quickstart-pplcnet", [str(tmp_path / "nope.png")], store=store)
    with pytest.raises(Exception, match="model folder not found"):
        predict_images(str(tmp_path / "no" / "such"), [__file__], store=store)


def test_a_pulled_artifact_with_crafted_weights_is_refused_and_its_payload_never_runs(published, tmp_path, images):
    """An artifact holding only weights (no inference model) is run from its model.pdparams: the safe loader
    refuses a crafted one."""
    _, rdir, _, _ = published
    store = ArtifactStore(str(tmp_path / "store"))
    marker = tmp_path / "PAYLOAD_RAN"
    evil = write_malicious_weights(tmp_path / "model.pdparams", marker,
                                   like=paddle.load(rdir.model, return_numpy=True))
    store.publish("evil", {"model.pdparams": str(evil), "config.yaml": rdir.config},
                  metadata={"model": "PPLCNet_x0_25", "num_classes": 10})
    with pytest.raises(UnsafeWeightsError, match="posix.system"):
        predict_images("evil", [str(images / "img0.png")], store=store.url)
    assert not marker.exists()
