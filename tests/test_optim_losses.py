"""Learning-rate schedules, optimizers and losses built from PaddleClas's recipe sections."""

import math

import numpy as np
import paddle
import pytest

from ppipe.config.schema import LRSection, OptimizerSection, RegularizerSection
from ppipe.config.typed import ConfigError
from ppipe.train.losses import CELoss, CombinedLoss
from ppipe.train.metrics import topk_correct
from ppipe.train.optim import build_lr, build_optimizer


def _trace(sched, n):
    out = []
    for _ in range(n):
        out.append(sched.get_lr())
        sched.step()
    return out


def test_cosine_with_warmup_ramps_linearly_then_decays_to_zero():
    lrs = _trace(build_lr(LRSection(name="Cosine", learning_rate=0.4, warmup_epoch=1), epochs=3,
                          steps_per_epoch=4), 12)
    assert lrs[:4] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert lrs[4] == pytest.approx(0.4)
    # cosine over the remaining 8 steps
    assert lrs[8] == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert lrs[-1] < 0.02


def test_piecewise_boundaries_are_in_epochs():
    lrs = _trace(build_lr(LRSection(name="Piecewise", decay_epochs=[1, 2], values=[0.1, 0.01, 0.001]),
                          epochs=3, steps_per_epoch=2), 6)
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_schedule_missing_its_parameters_is_an_error():
    with pytest.raises(ConfigError, match="step_size"):
        build_lr(LRSection(name="Step"), epochs=2, steps_per_epoch=2)
    with pytest.raises(ConfigError, match="Piecewise"):
        build_lr(LRSection(name="Piecewise", decay_epochs=[1], values=[0.1]), epochs=2, steps_per_epoch=2)


@pytest.mark.parametrize("name", ["Momentum", "SGD", "AdamW", "RMSProp"])
def test_each_optimizer_takes_a_step_that_lowers_the_loss(name):
    paddle.seed(0)
    model = paddle.nn.Linear(4, 3)
    cfg = OptimizerSection(name=name, regularizer=RegularizerSection(coeff=1e-4),
                           lr=LRSection(name="Constant", learning_rate=0.05))
    opt = build_optimizer(cfg, model, build_lr(cfg.lr, 1, 10))
    x, y = paddle.randn([16, 4]), paddle.randint(0, 3, [16])
    losses = []
    for _ in range(5):
        loss = paddle.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_no_weight_decay_names_exclude_parameters_from_decay():
    model = paddle.nn.Sequential(paddle.nn.Linear(2, 2), paddle.nn.BatchNorm1D(2))
    cfg = OptimizerSection(name="AdamW", weight_decay=0.5, no_weight_decay_name="1.",
                           lr=LRSection(name="Constant", learning_rate=0.1))
    opt = build_optimizer(cfg, model, build_lr(cfg.lr, 1, 1))
    decayed = {p.name for p in model.parameters() if opt._apply_decay_param_fun(p.name)}
    assert decayed == {p.name for p in model[0].parameters()}


def test_label_smoothing_matches_the_formula():
    logits = paddle.to_tensor([[2.0, 0.0, -1.0]])
    labels = paddle.to_tensor([0])
    logp = np.log(np.exp([2.0, 0.0, -1.0]) / np.exp([2.0, 0.0, -1.0]).sum())
    target = np.array([1 - 0.3 + 0.1, 0.1, 0.1])
    assert float(CELoss(epsilon=0.3)(logits, labels)) == pytest.approx(-(target * logp).sum(), rel=1e-5)
    assert float(CELoss()(logits, labels)) == pytest.approx(-logp[0], rel=1e-5)


def test_soft_targets_are_accepted():
    logits = paddle.to_tensor([[1.0, 1.0]])
    assert float(CELoss()(logits, paddle.to_tensor([[0.5, 0.5]]))) == pytest.approx(math.log(2), rel=1e-5)


def test_combined_loss_sums_weighted_terms():
    loss = CombinedLoss([{"CELoss": {"weight": 0.5}}, {"CELoss": {"weight": 1.5, "epsilon": 0.0}}], "Loss.Train")
    logits, labels = paddle.to_tensor([[0.0, 1.0]]), paddle.to_tensor([1])
    assert float(loss(logits, labels)) == pytest.approx(2 * float(CELoss()(logits, labels)), rel=1e-6)


def test_topk_counts_with_k_capped_at_class_count():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    labels = np.array([1, 2, 0])
    assert topk_correct(logits, labels, (1, 2, 5)) == {1: 1, 2: 2, 5: 3}
