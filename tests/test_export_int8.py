"""INT8: post-training quantization to the oneDNN INT8 target, with its accuracy change recorded, and the
quantization-aware training functions."""

from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

from ppipe.config.schema import ExportSection
from ppipe.export import TARGETS
from ppipe.export.int8 import INT8_TARGET, calibrate, save_int8_program
from ppipe.export.run import export_targets, val_batches
from ppipe.inference import PredictorSettings, create_predictor, load_settings, predict
from ppipe.quantization import convert_after_training, is_quantized_for_training, quantize_for_training
from tests.test_export_targets import _digits_config


def _int8_only(monkeypatch):
    keep = {n: TARGETS.get(n) for n in ("paddle-inference-mkldnn", INT8_TARGET)}
    monkeypatch.setattr(TARGETS, "_items", keep)


def test_ptq_int8_target_records_its_accuracy_change(digits_prepared, tmp_path, monkeypatch):
    from ppipe.export.calibration import calibration_batches
    from ppipe.models import create_model

    _int8_only(monkeypatch)
    cfg = _digits_config(digits_prepared)
    paddle.seed(0)
    model = create_model("MobileNetV1_x0_25", num_classes=10)  # no SE block: legacy programs cannot hold one
    settings = ExportSection(measure_seconds=0.05, int8_max_top1_drop=1.0)
    summary = export_targets(model, str(tmp_path / "e"), (3, 16, 16),
                             calibration=lambda: calibration_batches(digits_prepared, cfg, n=40, batch=16),
                             evaluation=lambda: val_batches(digits_prepared, cfg, 100, batch=32), settings=settings)
    int8 = summary["targets"][INT8_TARGET]
    assert int8["status"] == "built", int8["reason"]
    assert int8["files"] == [f"{INT8_TARGET}/model.pdiparams", f"{INT8_TARGET}/model.pdmodel",
                             f"{INT8_TARGET}/predictor.json"]
    c = int8["check"]
    assert c["scales"] == "ptq" and c["calibration_images"] == 40
    assert c["fp32"]["num_images"] == c["int8"]["num_images"] == 100
    assert c["top1_change"] == pytest.approx(c["int8"]["top1"] - c["fp32"]["top1"])
    assert c["top5_change"] == pytest.approx(c["int8"]["top5"] - c["fp32"]["top5"])
    assert int8["measurements"]["throughput_b32"] > 0
    assert load_settings(str(tmp_path / "e" / INT8_TARGET)).int8


def test_int8_beyond_the_accepted_top1_drop_fails_and_leaves_nothing(digits_prepared, tmp_path, monkeypatch):
    import ppipe.export.int8 as int8

    _int8_only(monkeypatch)
    cfg = _digits_config(digits_prepared)
    # the scoring reports FP32 at 0.9 top-1 and INT8 at 0.5: a 0.4 drop, beyond the default 0.01
    monkeypatch.setattr(int8, "topk_of", _scored_as({"fp32": 0.9, "int8": 0.5}))
    summary = export_targets(_mbv1(), str(tmp_path / "e"), (3, 16, 16),
                             calibration=lambda: iter([np.zeros((4, 3, 16, 16), np.float32)]),
                             evaluation=lambda: val_batches(digits_prepared, cfg, 8),
                             settings=ExportSection(measure_seconds=0))
    r = summary["targets"][INT8_TARGET]
    assert r["status"] == "failed" and "INT8 loses 0.4000 top-1 (> 0.01)" in r["reason"]
    assert sorted(os.listdir(tmp_path / "e")) == ["export.json", "paddle-inference-mkldnn"]


def _scored_as(top1):
    calls = []

    def fake(run, batches, ks=(1, 5)):
        list(batches)
        which = "fp32" if not calls else "int8"
        calls.append(which)
        return {"top1": top1[which], "top5": 1.0, "num_images": 8}
    return fake


def _mbv1():
    from ppipe.models import create_model

    paddle.seed(0)
    return create_model("MobileNetV1_x0_25", num_classes=10)


def test_int8_without_calibration_images_is_skipped(tmp_path, monkeypatch):
    _int8_only(monkeypatch)
    summary = export_targets(_mbv1(), str(tmp_path / "e"), (3, 16, 16), settings=ExportSection(measure_seconds=0))
    r = summary["targets"][INT8_TARGET]
    assert r["status"] == "skipped" and "calibration" in r["reason"]


def test_qat_model_trains_with_fake_quantization_and_converts():
    model = _mbv1()
    qat = quantize_for_training(model)
    assert is_quantized_for_training(qat) and not is_quantized_for_training(model)
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype("float32"))
    y = paddle.to_tensor(np.array([0, 1, 2, 3]))
    opt = paddle.optimizer.SGD(learning_rate=0.1, parameters=qat.parameters())
    before = [p.numpy().copy() for p in qat.parameters() if not p.stop_gradient]
    loss = paddle.nn.functional.cross_entropy(qat(x), y)
    loss.backward()  # straight-through gradients reach the float weights
    opt.step()
    after = [p.numpy() for p in qat.parameters() if not p.stop_gradient]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    model.eval()
    with paddle.no_grad():
        fp32 = model(x).numpy()
    converted = convert_after_training(qat)
    assert not converted.training
    with paddle.no_grad():
        out = converted(x).numpy()
    assert out.shape == fp32.shape and np.isfinite(out).all()


def _trained_mbv1(prepared, cfg, epochs: int):
    """MobileNetV1_x0_25 trained on the 16x16 digits (eval transforms, SGD with momentum)."""
    from ppipe.data import iter_batches
    from ppipe.evaluate import eval_transform_ops

    model = _mbv1()
    opt = paddle.optimizer.Momentum(learning_rate=0.05, momentum=0.9, parameters=model.parameters())
    for epoch in range(epochs):
        for x, y in iter_batches(prepared, "train", eval_transform_ops(cfg), 32, epoch=epoch, shuffle=True):
            paddle.nn.functional.cross_entropy(model(paddle.to_tensor(x)), paddle.to_tensor(y)).backward()
            opt.step()
            opt.clear_grad()
    model.eval()
    return model


@pytest.mark.slow
def test_ptq_int8_of_a_trained_model_passes_the_default_top1_gate(digits_prepared, tmp_path, monkeypatch):
    """The oneDNN INT8 predictor keeps a trained model's top-1 within Export.int8_max_top1_drop (0.01): the
    quantize/dequantize form oneDNN's passes read correctly (float weights, activation pairs only)."""
    from ppipe.export.calibration import calibration_batches

    _int8_only(monkeypatch)
    cfg = _digits_config(digits_prepared)
    paddle.seed(0)
    model = _trained_mbv1(digits_prepared, cfg, epochs=12)
    summary = export_targets(model, str(tmp_path / "e"), (3, 16, 16),
                             calibration=lambda: calibration_batches(digits_prepared, cfg, n=256, batch=32),
                             evaluation=lambda: val_batches(digits_prepared, cfg, None),
                             settings=ExportSection(measure_seconds=0))
    int8 = summary["targets"][INT8_TARGET]
    assert int8["status"] == "built", int8["reason"]
    c = int8["check"]
    assert c["fp32"]["top1"] > 0.6 and c["fp32"]["num_images"] == 360  # a trained model, not chance
    assert c["top1_change"] >= -0.01


@pytest.fixture(scope="module")
def int8_program(tmp_path_factory):
    """A calibrated MobileNetV1_x0_25 saved as the INT8 target's legacy program."""
    out = str(tmp_path_factory.mktemp("int8") / "program")
    images = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    model = _mbv1()
    model.eval()
    save_int8_program(calibrate(model, [images])[0], out, (3, 16, 16))
    return out


def test_int8_predictor_creation_keeps_the_console_clean_unless_verbose(int8_program, capfd, monkeypatch):
    monkeypatch.setenv("PPIPE_VERBOSE", "0")
    x = np.zeros((2, 3, 16, 16), np.float32)
    predictor = create_predictor(int8_program, settings=PredictorSettings(int8=True))
    assert predict(predictor, x).shape == (2, 10)
    quiet = capfd.readouterr()
    assert "quantized" not in quiet.err + quiet.out and "---" not in quiet.err + quiet.out
    monkeypatch.setenv("PPIPE_VERBOSE", "1")
    create_predictor(int8_program, settings=PredictorSettings(int8=True))
    assert "quantized" in capfd.readouterr().err  # the passes did print it: --verbose shows it


def test_filtered_native_output_passes_on_all_but_the_noise(capfd):
    import os
    import re

    from ppipe.native_output import PADDLE_PASS_SUMMARY, filtered_native_output

    with filtered_native_output(PADDLE_PASS_SUMMARY, show_all=False):
        os.write(2, b"\x1b[37m---    quantized 3 fc ops\x1b[0m\nW1206 a real warning\n")
        os.write(1, b"---    squashed 2 pairs\nfrom stdout\n")
    out = capfd.readouterr()
    assert out.err == "W1206 a real warning\nfrom stdout\n" and out.out == ""
    with pytest.raises(RuntimeError):
        with filtered_native_output(re.compile("never"), show_all=False):
            os.write(2, b"said before failing\n")
            raise RuntimeError("boom")
    assert capfd.readouterr().err == "said before failing\n"


def test_mse_threshold_clips_a_heavy_tail_and_keeps_an_even_spread():
    from ppipe.quantization_observers import mse_threshold

    tail = np.random.default_rng(0).laplace(0, 1, 100_000)
    assert mse_threshold(tail) < 0.9 * np.abs(tail).max()  # the rare large values cost less clipped
    assert mse_threshold(np.linspace(-1, 1, 10_001)) > 0.95  # nothing to clip: about the abs-max
    assert mse_threshold(np.zeros(10)) == 0.0


def test_a_layer_too_sensitive_to_quantize_is_left_fp32():
    import ppipe.quantization as q

    model = _mbv1()
    model.eval()
    images = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    quantized, seen, _ = calibrate(model, [images])
    layers = [n for n, layer in quantized.named_sublayers() if getattr(layer, "activation_quanter", None)]
    assert seen == 8 and len(layers) == 28  # 27 convolutions and the classifier
    # a zero threshold keeps every layer FP32; the pairs of the others come back untouched
    assert q.keep_sensitive_layers_fp32(quantized, model, images, max_error=0.0) == layers
    assert not [n for n, layer in quantized.named_sublayers() if getattr(layer, "activation_quanter", None)]
    fresh, _, none = calibrate(model, [images], type("Q", (), {"max_layer_error": 1.0})())
    assert none == [] and len([1 for _, layer in fresh.named_sublayers()
                               if getattr(layer, "activation_quanter", None)]) == 28
