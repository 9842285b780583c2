"""Export to Paddle Inference (PIR model.json + model.pdiparams) checked against the dygraph logits."""

from __future__ import annotations

import os

import numpy as np
import paddle
import pytest
from paddle import nn

from ppipe import inference
from ppipe.export import ExportError, export_inference_model, max_relative_error
from ppipe.inference import InferenceError, create_predictor, predict


class TinyNet(nn.Layer):
    """conv-bn-relu-pool-linear."""

    def __init__(self, num_classes: int = 7):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2D(8)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = nn.functional.relu(self.bn(self.conv(x)))
        return self.fc(paddle.flatten(self.pool(x), 1))


class RepBlock(nn.Layer):
    """A RepVGG-style block: 3x3 + 1x1 branches in training, one 3x3 conv after `re_parameterize()`."""

    def __init__(self, broken: bool = False):
        super().__init__()
        self.c3 = nn.Conv2D(3, 4, 3, padding=1)
        self.c1 = nn.Conv2D(3, 4, 1)
        self.is_repped = False
        self.broken = broken

    def forward(self, x):
        if self.is_repped:
            return self.fused(x)
        return self.c3(x) + self.c1(x)

    def re_parameterize(self):
        w = self.c3.weight.numpy().copy()
        w[:, :, 1:2, 1:2] += self.c1.weight.numpy()
        b = self.c3.bias.numpy() + self.c1.bias.numpy()
        if self.broken:
            w *= 1.5
        self.fused = nn.Conv2D(3, 4, 3, padding=1)
        self.fused.weight.set_value(w)
        self.fused.bias.set_value(b)
        self.is_repped = True


class RepNet(nn.Layer):
    def __init__(self, broken: bool = False):
        super().__init__()
        self.block = RepBlock(broken)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(paddle.mean(nn.functional.relu(self.block(x)), axis=[2, 3]))


def _tiny(seed: int = 1) -> TinyNet:
    paddle.seed(seed)
    m = TinyNet()
    rng = np.random.default_rng(seed)  # non-trivial BN statistics so eval mode matters
    m.bn._mean.set_value(rng.normal(0, 0.5, 8).astype("float32"))
    m.bn._variance.set_value(rng.uniform(0.5, 2.0, 8).astype("float32"))
    return m


def test_export_matches_dygraph(tmp_path):
    model = _tiny()
    model.train()
    out = tmp_path / "export" / "inference"
    info = export_inference_model(model, str(out), (3, 16, 20))
    assert info["predictor"] == "paddle-inference-mkldnn"
    assert info["input_shape"] == [3, 16, 20]
    assert info["model_file"] == str(out / "model.json") and info["params_file"] == str(out / "model.pdiparams")
    assert 0 <= info["max_rel_err"] <= 1e-4
    assert sorted(os.listdir(out)) == ["model.json", "model.pdiparams"]
    assert os.listdir(tmp_path / "export") == ["inference"]  # no temp folder left
    assert model.training  # the caller's model is left as it was

    # the exported model runs any batch size and agrees with the eval-mode dygraph model
    model.eval()
    x = np.random.default_rng(5).standard_normal((3, 3, 16, 20)).astype("float32")
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    for kw in ({}, {"mkldnn": False, "threads": 2}):
        got = predict(create_predictor(str(out), **kw), x)
        assert got.shape == (3, 7)
        assert max_relative_error(got, ref) <= 1e-4


def test_export_reparameterizes_and_checks_it(tmp_path):
    paddle.seed(3)
    model = RepNet()
    info = export_inference_model(model, str(tmp_path / "rep"), (3, 8, 8))
    assert info["max_rel_err"] <= 1e-4
    assert not model.block.is_repped  # done on a copy

    # a reparameterization that changes the function is caught: the reference is taken before it
    paddle.seed(3)
    with pytest.raises(ExportError, match=r"max_rel_err = max\|a-b\|/max\|b\| = .* > rtol"):
        export_inference_model(RepNet(broken=True), str(tmp_path / "bad"), (3, 8, 8))
    assert not (tmp_path / "bad").exists()


def test_export_check_failure_leaves_nothing(tmp_path, monkeypatch):
    real = inference.predict

    def off_by_a_bit(predictor, batch):
        y = real(predictor, batch)
        return y + 1e-2 * np.abs(y).max()

    monkeypatch.setattr(inference, "predict", off_by_a_bit)
    out = tmp_path / "inference"
    with pytest.raises(ExportError) as ei:
        export_inference_model(_tiny(), str(out), (3, 16, 16))
    msg = str(ei.value)
    assert "1.000e-02 > rtol 1.0e-04" in msg and "max|a-b|" in msg
    assert not out.exists() and os.listdir(tmp_path) == []

    # a looser rtol accepts the same difference
    info = export_inference_model(_tiny(), str(out), (3, 16, 16), rtol=0.05)
    assert 0.009 < info["max_rel_err"] < 0.011
    # an earlier export is replaced only by a verified one
    before = (out / "model.pdiparams").read_bytes()
    with pytest.raises(ExportError):
        export_inference_model(_tiny(seed=2), str(out), (3, 16, 16))
    assert (out / "model.pdiparams").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["inference"]


def test_export_nan_output_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "predict", lambda p, b: np.full((b.shape[0], 7), np.nan, np.float32))
    with pytest.raises(ExportError, match="inf > rtol"):
        export_inference_model(_tiny(), str(tmp_path / "o"), (3, 8, 8), check_batch=2)
    assert not (tmp_path / "o").exists()


class Upsampler(nn.Layer):
    """A strided conv upsampled back by `interpolate(scale_factor=2)` plus a skip connection, then a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1, stride=2)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        y = nn.functional.interpolate(self.conv(x), scale_factor=2, mode="nearest") + x[:, :1]
        return self.fc(y.mean(axis=[2, 3]))


def test_export_deletes_a_broken_onednn_pass_and_ships_it(tmp_path):
    """Paddle 3.3.1's oneDNN runtime cannot run an interpolation placed on it ("ConvertPirAttribute2Runtime
    Attribute not support ArrayAttribute<Double>", HRNet, MobileViT); the export runs it without
    onednn_placement_pass and records that in predictor.json, which create_predictor applies."""
    paddle.seed(0)
    out = tmp_path / "up"
    info = export_inference_model(Upsampler(), str(out), (3, 8, 8), check_batch=2)
    assert info["deleted_passes"] == ["onednn_placement_pass"] and info["max_rel_err"] <= 1e-4
    assert sorted(os.listdir(out)) == ["model.json", "model.pdiparams", "predictor.json"]
    assert inference.load_settings(str(out)).deleted_passes == ("onednn_placement_pass",)
    x = np.random.default_rng(5).standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert predict(create_predictor(str(out)), x).shape == (3, 5)
    with pytest.raises(InferenceError, match="ArrayAttribute"):  # the shipped setting is what makes it run
        predict(create_predictor(str(out), settings=inference.PredictorSettings()), x)


def test_export_bad_input(tmp_path):
    with pytest.raises(ExportError, match="input_shape"):
        export_inference_model(_tiny(), str(tmp_path / "o"), (16, 16))
    with pytest.raises(ExportError, match=r"fails on a \[4, 4, 8, 8\]"):  # 4 channels into a 3-channel conv
        export_inference_model(_tiny(), str(tmp_path / "o"), (4, 8, 8))
    assert os.listdir(tmp_path) == []
    with pytest.raises(InferenceError, match="model.json"):
        create_predictor(str(tmp_path))
    with pytest.raises(InferenceError, match="not found"):
        create_predictor(str(tmp_path / "missing"))


def test_export_zoo_model(tmp_path):
    models = pytest.importorskip("ppipe.models")
    if not hasattr(models, "create_model"):
        pytest.skip("ppipe.models.create_model is not available")
    paddle.seed(0)
    model = models.create_model("PPLCNet_x0_25", num_classes=10)
    info = export_inference_model(model, str(tmp_path / "lcnet"), (3, 32, 32), check_batch=2)
    assert info["max_rel_err"] <= 1e-4
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype("float32")
    assert predict(create_predictor(str(tmp_path / "lcnet")), x).shape == (2, 10)


def test_jit_save_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(paddle.jit, "save", boom)
    with pytest.raises(ExportError, match="jit.save failed.*disk full"):
        export_inference_model(_tiny(), str(tmp_path / "o"), (3, 8, 8))
    assert os.listdir(tmp_path) == []


def test_export_publish_pull_predict(tmp_path):
    """The chain users run: export -> publish -> pull -> create_predictor/predict."""
    from ppipe.artifacts import publish, pull

    model = _tiny()
    info = export_inference_model(model, str(tmp_path / "inference"), (3, 16, 16))
    store = str(tmp_path / "store")
    publish(store, "tiny", {"inference/model.json": info["model_file"],
                            "inference/model.pdiparams": info["params_file"]},
            metrics={"max_rel_err": info["max_rel_err"]}, targets=[info["predictor"], "paddle-inference-cpu"])
    pull(store, "tiny", str(tmp_path / "pulled"))
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype("float32")
    model.eval()
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    got = predict(create_predictor(str(tmp_path / "pulled" / "inference")), x)
    assert max_relative_error(got, ref) <= 1e-4
