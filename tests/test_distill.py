"""SSLD-style distillation: the DistillationModel (and its models' `return_patterns`), the SSLD losses, config
checks, and a run whose published weights are the student's alone."""

import math
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from ppipe.config import ConfigError, load_config
from ppipe.losses.distillation import DistillationCELoss, DistillationDMLLoss, DistillationGTCELoss
from ppipe.losses.logit_distillation import DistillationDKDLoss
from ppipe.models.distillation import build_distillation_model
from ppipe.build import build_model, infer_arch
from ppipe.losses import CombinedLoss, cross_entropy
from ppipe.metrics import METRICS, DistillationTopkAcc, TopkAcc

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def _arch(teacher_weights=None, **extra):
    teacher = {"name": "PPLCNet_x0_5"}
    if teacher_weights:
        teacher["pretrained"] = str(teacher_weights)
    return {"name": "DistillationModel", "class_num": 10, "freeze_params_list": [True, False],
            "models": [{"Teacher": teacher}, {"Student": {"name": "PPLCNet_x0_25"}}],
            "infer_model_name": "Student", **extra}


def _kwargs(arch):
    return {k: v for k, v in arch.items() if k not in ("name", "class_num")}


def _cfg(arch, *overrides):
    data = yaml.safe_load(QUICKSTART.read_text())
    data["Arch"] = arch
    data["Loss"]["Train"] = [{"DistillationDMLLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}},
                             {"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}}]
    data["Metric"] = {split: [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}]
                      for split in ("Train", "Eval")}
    return load_config(data=data, overrides=overrides)


def test_distillation_model_freezes_the_teacher_and_names_outputs():
    model = build_distillation_model(_kwargs(_arch()), class_num=10)
    model.train()
    assert model.Teacher.training is False and model.Student.training is True
    out = model(paddle.randn([2, 3, 32, 32]))
    assert set(out) == {"Teacher", "Student"} and out["Student"].shape == [2, 10]
    loss = DistillationDMLLoss(model_name_pairs=[["Student", "Teacher"]])(out, None)
    loss.backward()
    assert all(p.grad is None for p in model.Teacher.parameters())
    assert any(p.grad is not None for p in model.Student.parameters())
    keys = list(model.state_dict())
    assert any(k.startswith("Teacher.") for k in keys) and any(k.startswith("Student.") for k in keys)
    assert model.infer_model is model.Student


def test_teacher_weights_load_from_a_pdparams_file(tmp_path):
    from ppipe.models import create_model

    teacher = create_model("PPLCNet_x0_5", num_classes=10)
    paddle.save(teacher.state_dict(), str(tmp_path / "t.pdparams"))
    model = build_distillation_model(_kwargs(_arch(tmp_path / "t.pdparams")), class_num=10)
    for (k, a), b in zip(teacher.state_dict().items(), model.Teacher.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_dml_loss_is_symmetric_and_zero_for_equal_outputs():
    rng = np.random.default_rng(0)
    a, b = paddle.to_tensor(rng.normal(size=(4, 5)).astype("float32")), paddle.to_tensor(
        rng.normal(size=(4, 5)).astype("float32"))
    loss = DistillationDMLLoss(model_name_pairs=[["A", "B"]])
    ab, ba = float(loss({"A": a, "B": b}, None)), float(loss({"A": b, "B": a}, None))
    assert ab == pytest.approx(ba, rel=1e-6) and ab > 0
    assert float(loss({"A": a, "B": a}, None)) == pytest.approx(0.0, abs=1e-6)
    p, q = np.exp(a.numpy()) / np.exp(a.numpy()).sum(1, keepdims=True), \
        np.exp(b.numpy()) / np.exp(b.numpy()).sum(1, keepdims=True)
    want = ((q * np.log(q / p)).sum() + (p * np.log(p / q)).sum()) / 2 / 4
    assert ab == pytest.approx(want, rel=1e-4)


def test_distillation_ce_uses_the_teachers_softmax_as_soft_targets():
    s, t = paddle.to_tensor([[1.0, 0.0, -1.0]]), paddle.to_tensor([[0.0, 2.0, 0.0]])
    got = float(DistillationCELoss(model_name_pairs=[["S", "T"]])({"S": s, "T": t}, None))
    q = np.exp([0.0, 2.0, 0.0]) / np.exp([0.0, 2.0, 0.0]).sum()
    logp = np.array([1.0, 0.0, -1.0]) - math.log(np.exp([1.0, 0.0, -1.0]).sum())
    assert got == pytest.approx(-(q * logp).sum(), rel=1e-5)


def test_ground_truth_losses_skip_unlabeled_images():
    logits = paddle.to_tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    labels = paddle.to_tensor([0, 1, -1])  # the third image is unlabeled
    assert float(cross_entropy(logits, labels)) == pytest.approx(float(cross_entropy(logits[:2], labels[:2])))
    gt = DistillationGTCELoss(model_names=["Student"])
    assert float(gt({"Student": logits}, labels)) == pytest.approx(float(cross_entropy(logits[:2], labels[:2])))
    assert float(cross_entropy(logits, paddle.to_tensor([-1, -1, -1]))) == 0.0


def test_dkd_loss_vanishes_when_student_matches_teacher_and_grows_otherwise():
    rng = np.random.default_rng(1)
    t = paddle.to_tensor(rng.normal(size=(6, 10)).astype("float32"))
    s = paddle.to_tensor(rng.normal(size=(6, 10)).astype("float32"))
    dkd = DistillationDKDLoss(model_name_pairs=[["S", "T"]], temperature=4.0, alpha=1.0, beta=8.0)
    assert float(dkd({"S": t, "T": t}, None)) == pytest.approx(0.0, abs=1e-4)
    assert float(dkd({"S": s, "T": t}, None)) > 0.1
    labels = paddle.to_tensor([0, 1, 2, -1, 4, 5])  # the fourth image is unlabeled
    assert np.isfinite(float(dkd({"S": s, "T": t}, labels)))


def test_distillation_recipe_is_checked_at_load():
    cfg = _cfg(_arch())
    assert infer_arch(cfg).name == "PPLCNet_x0_25" and infer_arch(cfg).num_classes == 10
    loss = CombinedLoss(cfg.Loss.Train, "Loss.Train")
    out = build_model(cfg)(paddle.randn([2, 3, 32, 32]))
    assert np.isfinite(float(loss(out, paddle.to_tensor([1, -1]))))
    with pytest.raises(ConfigError, match="infer_model_name"):
        _cfg(_arch(infer_model_name="Pupil"))
    with pytest.raises(ConfigError, match=r"unknown key Arch\.teacher"):
        _cfg(_arch(teacher="x"))
    with pytest.raises(ConfigError, match="never downloaded"):
        bad = _arch()
        bad["models"][0]["Teacher"]["pretrained"] = True
        _cfg(bad)
    with pytest.raises(ConfigError, match=r"models\[1\]\.Student\.name"):
        bad = _arch()
        bad["models"][1]["Student"]["name"] = "PPLCNet_x0_2"
        _cfg(bad)
    with pytest.raises(ConfigError, match=r"Loss\.Train\[0\]\.CELoss: takes one logits tensor, but DistillationModel "
                                          r"in training gives the named outputs of several models; use "
                                          r".*DistillationCELoss or .*DistillationGTCELoss"):
        _cfg(_arch(), "Loss.Train=[{CELoss: {weight: 1.0}}]")
    with pytest.raises(ConfigError, match=r"Loss\.Train\[0\]\.DistillationDMLLoss: unknown parameter 'bogus'"):
        _cfg(_arch(), "Loss.Train=[{DistillationDMLLoss: {weight: 1.0, bogus: 1}}]")
    with pytest.raises(ConfigError, match=r"Metric\.Train\[0\]\.TopkAcc: .*; use DistillationTopkAcc$"):
        _cfg(_arch(), "Metric.Train=[{TopkAcc: {topk: [1, 5]}}]")
    with pytest.raises(ConfigError, match=r"Loss\.Eval\[0\]\.DistillationDMLLoss: takes the named outputs of "
                                          r"several models, but the evaluated model gives one logits tensor"):
        _cfg(_arch(), "Loss.Eval=[{DistillationDMLLoss: {weight: 1.0}}]")


@pytest.mark.slow  # ~75 s; CI's slow step runs it (the distillation losses and recipes have fast tests too)
def test_distillation_run_publishes_the_student_alone(tmp_path, digits_prepared, local_ray):
    from ppipe import stages
    from ppipe.models import create_model

    cfg = _cfg(_arch(), f"Global.output_dir={tmp_path}/out", "Global.image_shape=[3, 16, 16]", "Global.epochs=1",
               "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
               "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", f"Data.prepared={digits_prepared}",
               "Export.input_shape=[3, 16, 16]", "Ray.num_workers=2", "Ray.run_name=distill")
    summary = stages.train(cfg)
    assert summary["model"] == "PPLCNet_x0_25" and summary["epochs_completed"] == 1
    weights = Path(stages.run_dir(cfg)) / "model.pdparams"
    student = create_model("PPLCNet_x0_25", num_classes=10, pretrained=str(weights))  # strict: student keys only
    assert student(paddle.randn([1, 3, 16, 16])).shape == [1, 10]
    assert stages.evaluate(cfg)["top1"] == pytest.approx(summary["top1"], abs=1e-9)
    assert stages.export(cfg)["max_rel_err"] <= 1e-4


def test_distillation_topk_acc_scores_the_named_model_and_passes_a_single_output_through():
    paddle.seed(0)
    model = build_distillation_model(_kwargs(_arch()), class_num=10)
    model.eval()
    images, labels = paddle.randn([6, 3, 32, 32]), np.array([0, 3, 9, 1, -1, 5])
    outputs = model(images)

    def counts(metric, out):
        metric.reset()
        metric.update(out, labels)
        return metric.counts()

    student = METRICS.build("DistillationTopkAcc", {"model_key": "Student", "topk": [1, 5]})
    assert counts(student, outputs) == counts(TopkAcc([1, 5]), outputs["Student"])
    assert counts(student, outputs) != counts(TopkAcc([1, 5]), outputs["Teacher"])
    # ppipe evaluates the exported student alone: its single output is scored as it is (as in PaddleClas)
    assert counts(student, outputs["Student"]) == counts(student, outputs)
    by_field = DistillationTopkAcc("Student", feature_key="logits", topk=[1, 5])
    assert counts(by_field, {"Student": {"logits": outputs["Student"]}}) == counts(student, outputs)
    with pytest.raises(ValueError, match=r"no model named 'Pupil'; the models are \['Student', 'Teacher'\]"):
        DistillationTopkAcc("Pupil").update(outputs, labels)
    with pytest.raises(ConfigError, match=r"DistillationTopkAcc: .*model_key"):
        METRICS.build("DistillationTopkAcc", {"topk": [1, 5]})


def test_evaluation_scores_with_the_recipes_metric(digits_prepared):
    """`score` with the recipe's Metric.Eval (DistillationTopkAcc on a DistillationModel) counts what TopkAcc counts
    on the student alone; the reported names stay top1/top5/loss."""
    from ppipe.evaluate import eval_metrics, eval_transform_ops, score, summarize

    cfg = _cfg(_arch(), "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16")
    paddle.seed(0)
    model = build_distillation_model(_kwargs(_arch()), class_num=10)
    metrics = eval_metrics(cfg)
    assert [type(m).__name__ for m in metrics] == ["DistillationTopkAcc"]
    ops = eval_transform_ops(cfg)
    counts = score(model, digits_prepared, "val", ops, 64, metrics=metrics)
    alone = score(model.Student, digits_prepared, "val", ops, 64)
    assert counts == alone and counts["labeled"] == counts["num_images"] > 0
    reported = summarize(counts, metrics)
    assert set(reported) == {"top1", "top5", "loss", "num_images"}
    assert reported["top1"] == counts["correct@1"] / counts["num_images"]
    assert summarize(alone) == reported  # without the metrics: every top-k counted


def test_a_paddleclas_distillation_recipe_with_distillation_topk_acc_loads(tmp_path, paddleclas_recipe):
    from ppipe.evaluate import eval_metrics

    cfg = load_config(paddleclas_recipe("Distillation/PPLCNet_x2_5_ssld.yaml"),
                      [f"Arch.models.0.Teacher.pretrained={tmp_path / 'teacher.pdparams'}"])
    assert cfg.Metric.Train == cfg.Metric.Eval == [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}]
    (metric,) = eval_metrics(cfg)
    assert (metric.model_key, metric.feature_key, metric.topk) == ("Student", None, (1, 5))


def _tapped_arch(student_patterns, teacher_patterns=("blocks[1]",)):
    return {"name": "DistillationModel", "class_num": 10, "freeze_params_list": [True, False],
            "models": [{"Teacher": {"name": "ResNet18", "return_patterns": list(teacher_patterns)}},
                       {"Student": {"name": "ResNet18", "return_patterns": list(student_patterns)}}],
            "infer_model_name": "Student"}


def test_return_patterns_add_the_named_sublayer_outputs_beside_the_logits():
    paddle.seed(0)
    model = build_distillation_model(_kwargs(_tapped_arch(["blocks[1]", "avg_pool"])), class_num=10)
    model.train()
    x = paddle.randn([2, 3, 32, 32])
    out = model(x)
    assert set(out["Student"]) == {"logits", "blocks[1]", "avg_pool"} and set(out["Teacher"]) == {"logits",
                                                                                                 "blocks[1]"}
    student = model.Student
    assert out["Student"]["blocks[1]"].shape == [2, 64, 8, 8] and out["Student"]["logits"].shape == [2, 10]
    student.eval()
    pooled = student.avg_pool(student.forward_features(x))
    np.testing.assert_allclose(model(x)["Student"]["avg_pool"].numpy(), pooled.numpy(), rtol=1e-5, atol=1e-6)
    # the taps live for one forward pass: the student alone (what is exported) returns its logits tensor
    assert isinstance(student(x), paddle.Tensor)
    assert not any(layer._forward_post_hooks for layer in student.sublayers(include_self=True))
    # the frozen teacher's features carry no gradient; the student's do
    model.train()
    out = model(x)
    assert out["Teacher"]["blocks[1]"].stop_gradient and not out["Student"]["blocks[1]"].stop_gradient


def test_return_patterns_that_name_no_sublayer_fail_at_load_naming_what_is_there():
    def cfg(arch):
        data = yaml.safe_load(QUICKSTART.read_text())
        data["Arch"] = arch
        data["Loss"]["Train"] = [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}}]
        data["Metric"] = {split: [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}]
                          for split in ("Train", "Eval")}
        return load_config(data=data)

    assert cfg(_tapped_arch(["blocks[7]"])).Arch.name == "DistillationModel"
    with pytest.raises(ConfigError, match=r"Arch\.models\[1\]\.Student\.return_patterns: 'blocks\[8\]': "
                                          r"ResNet\.blocks has 8 sublayers, no \[8\]"):
        cfg(_tapped_arch(["blocks[8]"]))
    with pytest.raises(ConfigError, match=r"Arch\.models\[0\]\.Teacher\.return_patterns: 'stages': ResNet has no "
                                          r"sublayer 'stages'; its sublayers are stem, max_pool, blocks, avg_pool"):
        cfg(_tapped_arch(["avg_pool"], teacher_patterns=["stages"]))
    with pytest.raises(ConfigError, match=r"Arch\.models\[1\]\.Student\.return_patterns: expected a list of "
                                          r"sublayer paths"):
        cfg(_tapped_arch([3]))
