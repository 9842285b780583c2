"""The distillation losses over logits (DKD, DIST, SKD, WSL) and over feature maps (DistillationDistanceLoss), each
against the paper's formula written here in NumPy, and, where a PaddleClas source tree is given (PADDLECLAS_SRC),
against PaddleClas's own implementation on the same inputs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppipe.config import ConfigError
from ppipe.losses import LOSSES
from ppipe.losses.feature_distillation import DistillationDistanceLoss
from ppipe.losses.logit_distillation import (DistillationDISTLoss, DistillationDKDLoss, DistillationSKDLoss,
                                             DistillationWSLLoss)

PAIR = [["Student", "Teacher"]]


def _logits(seed: int, rows: int = 6, classes: int = 7):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, classes)) * 2).astype("float32"), (rng.normal(size=(rows, classes)) * 2).astype(
        "float32")


def _named(student, teacher):
    return {"Student": paddle.to_tensor(student), "Teacher": paddle.to_tensor(teacher)}


def _log_softmax(x, t=1.0):
    z = x.astype(np.float64) / t
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _softmax(x, t=1.0):
    return np.exp(_log_softmax(x, t))


def test_dist_loss_is_one_minus_the_row_and_column_pearson_correlations_of_the_probabilities():
    s, t = _logits(0)
    ys, yt = _softmax(s), _softmax(t)
    rows = np.mean([np.corrcoef(ys[i], yt[i])[0, 1] for i in range(len(ys))])
    cols = np.mean([np.corrcoef(ys[:, j], yt[:, j])[0, 1] for j in range(ys.shape[1])])
    got = float(DistillationDISTLoss(model_name_pairs=PAIR, beta=2.0, gamma=0.5)(_named(s, t), None))
    assert got == pytest.approx(2.0 * (1 - rows) + 0.5 * (1 - cols), rel=1e-4)
    assert float(DistillationDISTLoss(model_name_pairs=PAIR)(_named(t, t), None)) == pytest.approx(0.0, abs=1e-5)


def _standardised(x, multiplier):
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True) * multiplier


def test_skd_loss_is_kd_and_cross_entropy_on_layer_normalised_logits():
    s, t = _logits(1)
    labels = np.array([0, 3, 6, 2, 1, 5])
    temperature, multiplier, alpha = 2.0, 2.0, 0.9
    zs, zt = _standardised(s, multiplier), _standardised(t, multiplier)
    kd = -(_softmax(zt, temperature) * _log_softmax(zs, temperature)).sum(axis=1).mean() * temperature ** 2
    ce = -_log_softmax(zs)[np.arange(6), labels].mean()
    loss = DistillationSKDLoss(model_name_pairs=PAIR, temperature=temperature, multiplier=multiplier, alpha=alpha)
    assert float(loss(_named(s, t), paddle.to_tensor(labels))) == pytest.approx(alpha * kd + (1 - alpha) * ce,
                                                                                rel=1e-4)


def test_wsl_loss_weighs_each_rows_kd_by_how_much_worse_the_student_fits_the_label_than_the_teacher():
    s, t = _logits(2)
    labels = np.array([1, 1, 4, 0, 6, 2])
    temperature = 2.0
    ce_s, ce_t = -_log_softmax(s)[np.arange(6), labels], -_log_softmax(t)[np.arange(6), labels]
    weight = 1 - np.exp(-np.maximum(ce_s / (ce_t + 1e-7), 0))
    kd = -(_softmax(t, temperature) * _log_softmax(s, temperature)).sum(axis=1)
    loss = DistillationWSLLoss(model_name_pairs=PAIR, temperature=temperature)
    assert float(loss(_named(s, t), paddle.to_tensor(labels))) == pytest.approx(
        temperature ** 2 * (kd * weight).mean(), rel=1e-4)


def test_target_class_losses_use_the_label_unless_told_to_use_the_teachers_top_class():
    """As in PaddleClas: the batch's labels are the target; `use_target_as_gt` (or no labels) takes the teacher's
    prediction instead; ppipe's unlabeled rows (-1) take the teacher's prediction too."""
    s, t = _logits(3)
    named = _named(s, t)
    labels = (t.argmax(axis=1) + 1) % t.shape[1]  # never the teacher's top class
    teacher_top = paddle.to_tensor(t.argmax(axis=1))
    for cls in (DistillationDKDLoss, DistillationSKDLoss, DistillationWSLLoss):
        plain = cls(model_name_pairs=PAIR)
        by_label = float(plain(named, paddle.to_tensor(labels)))
        assert by_label != pytest.approx(float(plain(named, teacher_top)), rel=1e-3), cls.__name__
        assert float(plain(named, None)) == pytest.approx(float(plain(named, teacher_top)), rel=1e-6)
        unlabeled = paddle.to_tensor(np.full(len(labels), -1))
        assert float(plain(named, unlabeled)) == pytest.approx(float(plain(named, teacher_top)), rel=1e-6)
        if "use_target_as_gt" in cls.params:
            teacher_as_gt = cls(model_name_pairs=PAIR, use_target_as_gt=True)
            assert float(teacher_as_gt(named, paddle.to_tensor(labels))) == pytest.approx(
                float(plain(named, teacher_top)), rel=1e-6)


def test_distance_loss_compares_the_named_feature_maps_of_the_pair():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, 3, 4, 4)).astype("float32"), rng.normal(size=(2, 3, 4, 4)).astype("float32")
    outputs = {"Student": {"logits": paddle.zeros([2, 5]), "blocks5": paddle.to_tensor(a)},
               "Teacher": {"logits": paddle.zeros([2, 5]), "blocks5": paddle.to_tensor(b)}}
    l2 = DistillationDistanceLoss(model_name_pairs=PAIR, key="blocks5")
    assert float(l2(outputs, None)) == pytest.approx(((a - b) ** 2).mean(), rel=1e-5)
    l1 = DistillationDistanceLoss(model_name_pairs=PAIR, key="blocks5", mode="l1", reduction="sum")
    assert float(l1(outputs, None)) == pytest.approx(np.abs(a - b).sum(), rel=1e-5)
    with pytest.raises(ValueError, match=r"the output of 'Student' has no field 'blocks4'; it has \['blocks5', "
                                         r"'logits'\]"):
        DistillationDistanceLoss(model_name_pairs=PAIR, key="blocks4")(outputs, None)
    with pytest.raises(ValueError, match=r"key 'blocks5', but model 'Student' returns its logits alone; give it "
                                         r"return_patterns"):
        l2({"Student": paddle.zeros([2, 5]), "Teacher": paddle.zeros([2, 5])}, None)
    with pytest.raises(ConfigError, match=r"DistillationDistanceLoss\.mode: expected one of l1, l2, smooth_l1"):
        LOSSES.build("DistillationDistanceLoss", {"mode": "cosine"})


PADDLECLAS_SRC = os.environ.get("PADDLECLAS_SRC")


def _paddleclas_loss(module: str, cls: str):
    """A loss class from a PaddleClas source tree's ppcls/loss/ (these modules import paddle alone)."""
    spec = importlib.util.spec_from_file_location(f"_paddleclas_{module}",
                                                  Path(PADDLECLAS_SRC) / "ppcls" / "loss" / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return getattr(loaded, cls)


@pytest.mark.skipif(not PADDLECLAS_SRC, reason="set PADDLECLAS_SRC to a PaddleClas source tree")
@pytest.mark.parametrize("ours, module, theirs, params", [
    (DistillationDKDLoss, "dkdloss", "DKDLoss", {"temperature": 4.0, "alpha": 1.0, "beta": 8.0}),
    (DistillationDISTLoss, "dist_loss", "DISTLoss", {"beta": 2.0, "gamma": 0.5}),
    (DistillationSKDLoss, "skdloss", "SKDLoss", {"temperature": 2.0, "multiplier": 2.0, "alpha": 0.9}),
    (DistillationWSLLoss, "wslloss", "WSLLoss", {"temperature": 2.0}),
])
def test_logit_losses_match_paddleclas_on_the_same_inputs(ours, module, theirs, params):
    s, t = _logits(5, rows=8, classes=10)
    labels = paddle.to_tensor(np.array([0, 9, 3, 3, 5, 1, 7, 2]))
    reference = _paddleclas_loss(module, theirs)(**params)
    args = (paddle.to_tensor(s), paddle.to_tensor(t)) + (() if theirs == "DISTLoss" else (labels,))
    want = reference(*args)
    want = float(next(iter(want.values())) if isinstance(want, dict) else want)
    got = float(ours(model_name_pairs=PAIR, **params)(_named(s, t), labels))
    assert got == pytest.approx(want, rel=1e-5)
