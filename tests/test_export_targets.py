"""The export orchestrator (`ppipe.export.run.export_targets`), the FP32 oneDNN target with its shipped
predictor configuration, calibration batches and speed measurements."""

from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest

from ppipe.config.schema import ExportSection
from ppipe.errors import ConfigError
from ppipe.export import TARGETS, TargetResult
from ppipe.export.calibration import calibration_batches
from ppipe.export.measure import measure_speed
from ppipe.export.run import export_targets, requested_targets
from ppipe.inference import InferenceError, create_predictor, load_settings, predict
from tests.test_export import _tiny

FAST = ExportSection(measure_seconds=0.05, threads=2)


def _only(monkeypatch, **targets):
    """TARGETS holding the FP32 target plus `targets` (name -> function) for one test."""
    keep = {"paddle-inference-mkldnn": TARGETS.get("paddle-inference-mkldnn"), **targets}
    monkeypatch.setattr(TARGETS, "_items", keep)


def test_a_failing_target_is_recorded_and_the_others_are_built(tmp_path, monkeypatch):
    def broken(ctx):
        os.makedirs(os.path.join(ctx.out_root, "broken"))
        open(os.path.join(ctx.out_root, "broken", "half.bin"), "wb").close()  # a partial build
        raise RuntimeError("converter crashed")

    def needs_gpu(ctx):
        return TargetResult("needs-gpu", "skipped", reason="no GPU on this machine")

    _only(monkeypatch, broken=broken, **{"needs-gpu": needs_gpu})
    out = tmp_path / "export"
    summary = export_targets(_tiny(), str(out), (3, 16, 16), settings=FAST)
    t = summary["targets"]
    assert t["broken"]["status"] == "failed" and t["broken"]["reason"] == "RuntimeError: converter crashed"
    assert t["needs-gpu"] == {"name": "needs-gpu", "status": "skipped", "reason": "no GPU on this machine",
                              "files": [], "check": {}, "measurements": {}}
    assert t["paddle-inference-mkldnn"]["status"] == "built"
    # only finished targets and the summary are visible: no partial folder, no reference, no staging folder
    assert sorted(os.listdir(out)) == ["export.json", "paddle-inference-mkldnn"]
    assert os.listdir(tmp_path) == ["export"]
    assert json.loads((out / "export.json").read_text()) == summary


def test_fp32_target_ships_the_predictor_configuration_it_was_checked_with(tmp_path, monkeypatch):
    _only(monkeypatch)
    model = _tiny()
    summary = export_targets(model, str(tmp_path / "e"), (3, 16, 16), settings=FAST)
    fp32 = summary["targets"]["paddle-inference-mkldnn"]
    assert fp32["files"] == ["paddle-inference-mkldnn/model.json", "paddle-inference-mkldnn/model.pdiparams",
                             "paddle-inference-mkldnn/predictor.json"]
    assert fp32["check"]["max_rel_err"] <= 1e-4 and fp32["check"]["rtol"] == 1e-4
    m = fp32["measurements"]
    assert m["latency_ms_b1"] > 0 and m["throughput_b32"] > 0 and m["cpu"]

    target = tmp_path / "e" / "paddle-inference-mkldnn"
    shipped = load_settings(str(target))
    assert shipped.threads == 2 and shipped.mkldnn and not shipped.int8
    x = np.random.default_rng(3).standard_normal((5, 3, 16, 16)).astype("float32")
    model.eval()
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    got = predict(create_predictor(str(target)), x)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_a_bad_predictor_json_is_named(tmp_path, monkeypatch):
    _only(monkeypatch)
    export_targets(_tiny(), str(tmp_path / "e"), (3, 8, 8), settings=ExportSection(measure_seconds=0))
    target = tmp_path / "e" / "paddle-inference-mkldnn"
    (target / "predictor.json").write_text(json.dumps({"threads": 2, "mkldnn_cach_capacity": 3}))
    with pytest.raises(InferenceError, match=r"predictor.json: unknown predictor setting\(s\) \['mkldnn_cach"):
        create_predictor(str(target))


def test_target_names_are_checked():
    assert requested_targets("paddle-inference-mkldnn-int8, paddle-inference-mkldnn") == [
        "paddle-inference-mkldnn", "paddle-inference-mkldnn-int8"]
    assert set(requested_targets(None)) >= {"paddle-inference-mkldnn", "paddle-inference-mkldnn-int8"}
    with pytest.raises(ConfigError, match="unknown export target 'paddle-inference-mkldn'.*did you mean"):
        requested_targets(["paddle-inference-mkldn"])


def test_the_reference_export_failing_leaves_nothing(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(paddle.jit, "save", disk_full)
    with pytest.raises(Exception, match="disk full"):
        export_targets(_tiny(), str(tmp_path / "e"), (3, 8, 8), settings=FAST)
    assert os.listdir(tmp_path) == []


def test_calibration_draws_n_train_images_with_the_eval_transforms(digits_prepared):
    cfg = _digits_config(digits_prepared)
    sizes = [b.shape for b in calibration_batches(digits_prepared, cfg, n=50, batch=16)]
    assert [s[0] for s in sizes] == [16, 16, 16, 2]
    assert all(s[1:] == (3, 16, 16) for s in sizes)
    again = np.concatenate(list(calibration_batches(digits_prepared, cfg, n=50, batch=16)))
    first = np.concatenate(list(calibration_batches(digits_prepared, cfg, n=50, batch=16)))
    assert np.array_equal(again, first)  # seeded: two exports calibrate alike
    with pytest.raises(ValueError, match="n >= 1"):
        next(calibration_batches(digits_prepared, cfg, n=0))


def _digits_config(prepared):
    """A config whose eval transforms resize the digits to 16x16."""
    from ppipe.config import load_config

    return load_config(data={"Arch": {"name": "MobileNetV1_x0_25", "class_num": 10},
                     "Global": {"image_shape": [3, 16, 16]},
                     "DataLoader": {"Eval": {"dataset": {"transform_ops": [
                         {"DecodeImage": {"to_rgb": True, "channel_first": False}},
                         {"ResizeImage": {"size": 16}},
                         {"NormalizeImage": {"scale": 1 / 255.0, "mean": [0.485, 0.456, 0.406],
                                             "std": [0.229, 0.224, 0.225], "order": ""}},
                         {"ToCHWImage": None}]}}}}, overrides=[f"Data.prepared={prepared}"])


def test_measure_speed_times_batch_1_and_batch_32():
    seen = []
    m = measure_speed(lambda b: seen.append(b.shape[0]), (3, 4, 4), min_seconds=0.01, warmup=1, min_runs=3)
    assert seen.count(1) >= 4 and seen.count(32) >= 4  # warm-up + timed runs of each
    assert m["runs"]["b1"] == seen.count(1) - 1 and m["latency_ms_b1"] >= 0 and m["throughput_b32"] > 0
    assert isinstance(m["cpu"], str) and m["cpu"]
