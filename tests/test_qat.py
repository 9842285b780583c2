"""Quantization-aware training (`Quantization.mode: qat`) through the real training path, its checkpoint, and the
INT8 export that uses the scales it learnt."""

from pathlib import Path

import numpy as np
import paddle
import pytest

from ppipe import weights_io
from ppipe.config import ConfigError, load_config
from ppipe.export.int8 import INT8_TARGET
from ppipe.quantization import is_quantized_for_training

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
QAT_16 = ["Quantization.mode=qat", "Global.image_shape=[3, 16, 16]", "Export.input_shape=[3, 16, 16]",
          "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
          "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", "Optimizer.lr.warmup_epoch=0",
          "DataLoader.Train.sampler.batch_size=64", "Ray.num_workers=0"]


def _cfg(tmp_path, prepared, *extra):
    return load_config(QUICKSTART, [f"Global.output_dir={tmp_path}/out", f"Data.prepared={prepared}", *QAT_16,
                                    *extra])


def test_build_model_fake_quantizes_after_the_pretrained_load(tmp_path, digits_prepared):
    from ppipe.build import build_model
    from ppipe.models import create_model

    paddle.seed(1)
    start = create_model("PPLCNet_x0_25", num_classes=10)
    paddle.save(start.state_dict(), str(tmp_path / "start.pdparams"))
    model = build_model(_cfg(tmp_path, digits_prepared), pretrained=str(tmp_path / "start.pdparams"))
    assert is_quantized_for_training(model)
    quanted = [type(m).__name__ for m in model.sublayers() if type(m).__name__.startswith("Quanted")]
    assert "QuantedConv2D" in quanted and "QuantedLinear" in quanted
    for key, value in start.state_dict().items():  # the pretrained weights under their own names
        np.testing.assert_array_equal(model.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    plain = build_model(load_config(QUICKSTART, [f"Data.prepared={digits_prepared}"]))
    assert not is_quantized_for_training(plain)


def test_qat_with_a_distillation_model_is_refused_at_load():
    with pytest.raises(ConfigError, match="Quantization.mode: qat with Arch.name: DistillationModel"):
        load_config(data={"Arch": {"name": "DistillationModel", "models": [
            {"Teacher": {"name": "MobileNetV1_x0_25", "class_num": 10}},
            {"Student": {"name": "MobileNetV1_x0_25", "class_num": 10}}]}, "Quantization": {"mode": "qat"}})


def test_evaluation_of_a_qat_run_scores_its_fake_quantized_model(tmp_path, digits_prepared):
    from ppipe.evaluation.model_scoring import ModelScorer
    from ppipe.models import create_model
    from ppipe.quantization import quantize_for_training

    paddle.seed(2)
    qat = quantize_for_training(create_model("PPLCNet_x0_25", num_classes=10))
    qat(paddle.randn([4, 3, 16, 16]))  # one training-mode pass: the quanters learn a scale
    weights = {k: v.numpy() for k, v in qat.state_dict().items()}
    counts = ModelScorer(_cfg(tmp_path, digits_prepared), digits_prepared, "val", weights)(0, 1)
    assert "report" in counts and len(counts) > 1  # the QAT weights loaded (a plain model refuses them)
    with pytest.raises(Exception, match="unexpected keys"):
        ModelScorer(load_config(QUICKSTART, [f"Data.prepared={digits_prepared}", *QAT_16[1:]]), digits_prepared,
                    "val", weights)(0, 1)


@pytest.mark.slow
def test_qat_run_trains_fake_quantized_resumes_and_exports_int8_with_its_learnt_scales(tmp_path, digits_prepared,
                                                                                       monkeypatch):
    import ppipe.export.int8 as int8
    from ppipe.export.run import export_run
    from ppipe.train.loop import build_worker_run
    from ppipe.train.trainer import train

    cfg = _cfg(tmp_path, digits_prepared, "Global.epochs=2", "Export.measure_seconds=0",
               "Export.int8_max_top1_drop=1.0", "Export.int8_eval_images=100")
    result = train(cfg, data=digits_prepared)
    assert result.epochs_completed == 2

    # the fake quanters ran in every training step: their moving-average state and abs-max scales moved
    weights = str(Path(result.run_dir, "model.pdparams"))
    state = weights_io.load_state(weights)
    learnt = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in state.items()
              if k.endswith("activation_quanter._scale")}
    assert len(learnt) > 10 and all(s > 0 for s in learnt.values())
    assert all(float(np.asarray(v).reshape(-1)[0]) > 1 for k, v in state.items()
               if k.endswith("activation_quanter._state"))

    # the checkpoint resumes into the fake-quantized model, scales and all
    run = build_worker_run(cfg, digits_prepared, rank=0, world=1, checkpoint_dir=result.checkpoint)
    assert is_quantized_for_training(run.model) and run.state.epochs_completed == 2
    resumed = run.model.state_dict()
    assert all(float(resumed[k].numpy().reshape(-1)[0]) == pytest.approx(v) for k, v in learnt.items())

    # the export converts the QAT model: no calibration, and the program carries the learnt activation scales
    saved = []
    real_save = int8.save_int8_program
    monkeypatch.setattr(int8, "calibrate", lambda *a, **k: pytest.fail("a QAT run must not be calibrated"))
    monkeypatch.setattr(int8, "save_int8_program", lambda q, *a: (saved.append(q), real_save(q, *a))[1])
    summary = export_run(cfg, weights, digits_prepared, str(tmp_path / "run"),
                         targets=f"paddle-inference-mkldnn,{INT8_TARGET}")
    record = summary["targets"][INT8_TARGET]
    assert record["status"] == "built", record["reason"]
    assert record["check"]["scales"] == "qat" and "calibration_images" not in record["check"]
    exported = {name.removesuffix("._quanter._scales"): float(p.numpy().reshape(-1)[0])
                for name, p in saved[0].named_parameters() if name.endswith("activation_quanter._quanter._scales")}
    assert exported == pytest.approx({k.removesuffix("._scale"): v for k, v in learnt.items()})
    assert summary["targets"]["paddle-inference-mkldnn"]["status"] == "built"
