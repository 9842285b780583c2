"""Learning-rate schedules, optimizers and losses built from PaddleClas's recipe sections."""

import math
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppipe.config import load_config
from ppipe.config.schema import LRSection, OptimizerSection, RegularizerSection
from ppipe.config.typed import ConfigError
from ppipe.losses import CELoss, CombinedLoss, GoogLeNetLoss
from ppipe.metrics import METRICS, TopkAcc, build_metrics, top1_counts, topk_correct
from ppipe.optim import build_lr, build_optimizer

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
RECIPES = Path(__file__).resolve().parents[1] / "configs" / "ImageNet"


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


def _ce(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross entropy, by hand."""
    logits = logits.astype(np.float64)
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def test_googlenet_loss_is_main_plus_0_3_of_each_auxiliary_cross_entropy():
    rng = np.random.default_rng(0)
    heads = [rng.normal(0, 2, (6, 5)).astype("float32") for _ in range(3)]
    labels = rng.integers(0, 5, 6)
    expected = _ce(heads[0], labels) + 0.3 * _ce(heads[1], labels) + 0.3 * _ce(heads[2], labels)
    got = GoogLeNetLoss()([paddle.to_tensor(h) for h in heads], paddle.to_tensor(labels))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # eval mode: the main logits alone
    assert float(GoogLeNetLoss()(paddle.to_tensor(heads[0]), paddle.to_tensor(labels))) == pytest.approx(
        _ce(heads[0], labels), rel=1e-5)
    weighted = CombinedLoss([{"GoogLeNetLoss": {"weight": 2.0}}], "Loss.Train")
    assert float(weighted([paddle.to_tensor(h) for h in heads], paddle.to_tensor(labels))) == pytest.approx(
        2 * expected, rel=1e-5)


def test_googlenet_loss_refuses_label_smoothing_like_paddleclas():
    with pytest.raises(ConfigError, match=r"Loss\.Train\[0\]\.GoogLeNetLoss\.epsilon"):
        CombinedLoss([{"GoogLeNetLoss": {"weight": 1.0, "epsilon": 0.1}}], "Loss.Train")
    CombinedLoss([{"GoogLeNetLoss": {"weight": 1.0, "epsilon": None}}], "Loss.Train")  # PaddleClas's null


def test_celoss_on_several_outputs_points_to_the_model_loss():
    with pytest.raises(ValueError, match="GoogLeNetLoss"):
        CELoss()([paddle.zeros([1, 3])] * 3, paddle.to_tensor([0]))


def _googlenet_overrides(*extra):
    return ["Arch.name=GoogLeNet", "Loss.Train=[{GoogLeNetLoss: {weight: 1.0}}]",
            "Loss.Eval=[{GoogLeNetLoss: {weight: 1.0}}]", "Metric.Train=[{GoogLeNetTopkAcc: {topk: [1, 5]}}]", *extra]


def test_googlenet_recipe_loads_with_its_loss_and_refuses_celoss():
    cfg = load_config(QUICKSTART, _googlenet_overrides())
    assert cfg.Loss.Train == [{"GoogLeNetLoss": {"weight": 1.0}}]
    with pytest.raises(ConfigError, match=r"Loss\.Train\[0\]\.CELoss: takes one logits tensor, but GoogLeNet in "
                                          r"training gives a list of heads.*; use GoogLeNetLoss$"):
        load_config(QUICKSTART, ["Arch.name=GoogLeNet"])  # the quickstart's CELoss
    with pytest.raises(ConfigError, match=r"Metric\.Train\[0\]\.TopkAcc: .*; use GoogLeNetTopkAcc$"):
        load_config(QUICKSTART, _googlenet_overrides("Metric.Train=[{TopkAcc: {topk: [1, 5]}}]"))
    with pytest.raises(ConfigError, match=r"Loss\.Train\[0\]\.GoogLeNetLoss\.epsilon"):
        load_config(QUICKSTART, _googlenet_overrides("Loss.Train=[{GoogLeNetLoss: {epsilon: 0.1}}]"))


def test_top1_of_a_multi_head_output_is_the_main_heads():
    main = paddle.to_tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    wrong = paddle.to_tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = np.array([1, 0, -1])  # the unlabeled row does not count
    assert top1_counts([main, wrong, wrong], labels) == (2, 2)
    assert top1_counts(main, labels) == (2, 2)
    assert top1_counts({"Student": main}, labels) == (0, 0)  # named outputs have no main head
    assert top1_counts(main, np.full((3, 2), 0.5)) == (0, 0)  # soft targets (Mixup) are not counted


def test_googlenet_topk_acc_scores_the_main_head_of_a_list_output_and_a_single_output_as_it_is():
    main = paddle.to_tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5], [0.2, 0.3, 0.1]])
    wrong = paddle.to_tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [1.0, 0.3, 0.0]])
    labels = np.array([1, 2, 2])

    def counts(metric, outputs):
        metric.reset()
        metric.update(outputs, labels)
        return metric.counts()

    googlenet_topk = METRICS.build("GoogLeNetTopkAcc", {"topk": [1, 2]})
    assert counts(googlenet_topk, [main, wrong, wrong]) == {"labeled": 3, "correct@1": 1, "correct@2": 2}
    assert counts(googlenet_topk, [wrong, main, main]) == {"labeled": 3, "correct@1": 0, "correct@2": 1}
    assert counts(googlenet_topk, main) == counts(METRICS.build("TopkAcc", {"topk": [1, 2]}), main)
    with pytest.raises(ValueError, match="no main head"):
        googlenet_topk.update({"Student": main}, labels)
    with pytest.raises(ValueError, match="use GoogLeNetTopkAcc"):
        METRICS.build("TopkAcc").update([main, wrong, wrong], labels)


def test_topk_counts_sum_over_ranks_to_the_accuracy_of_the_whole_split():
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(23, 7)).astype("float32"), rng.integers(0, 7, 23)
    labels[[4, 9]] = -1  # unlabeled rows are not scored
    shards = [slice(0, 5), slice(5, 6), slice(6, 23)]  # unequal ranks: averaging accuracies would be biased
    per_rank = []
    for part in shards:
        metric = TopkAcc([1, 5])
        metric.update(paddle.to_tensor(logits[part]), labels[part])
        per_rank.append(metric.counts())
    summed = {k: sum(c[k] for c in per_rank) for k in per_rank[0]}
    keep = labels >= 0
    expected = topk_correct(logits[keep], labels[keep], (1, 5))
    assert summed == {"labeled": 21, "correct@1": expected[1], "correct@5": expected[5]}
    assert TopkAcc([1, 5]).values(summed) == {"top1": expected[1] / 21, "top5": expected[5] / 21}


def test_metric_list_is_checked_like_paddleclas_names_it():
    with pytest.raises(ConfigError, match=r"Metric\.Eval\[0\]\.TopkAcc\.topk: expected a positive integer"):
        build_metrics([{"TopkAcc": {"topk": [0, 5]}}], "Metric.Eval")
    with pytest.raises(ConfigError, match=r"Metric\.Eval\[0\]\.TopkAcc: unknown parameter 'top_k' \(did you mean topk"):
        build_metrics([{"TopkAcc": {"top_k": 5}}], "Metric.Eval")
    with pytest.raises(ConfigError, match=r"Metric\.Eval: top1 is reported by both TopkAcc and GoogLeNetTopkAcc"):
        build_metrics([{"TopkAcc": {"topk": [1, 5]}}, {"GoogLeNetTopkAcc": {"topk": 1}}], "Metric.Eval")
    assert [m.topk for m in build_metrics([{"TopkAcc": {"topk": 5}}], "Metric.Eval")] == [(5,)]


def test_googlenet_trains_through_the_loop_with_its_weighted_auxiliary_loss(digits_prepared):
    """The loop's own setup and step (`build_worker_run`, `forward_backward`) on GoogLeNet at 192 px (about the
    smallest input whose auxiliary heads see the 3x3 maps they are sized for): the loss is CE(main) + 0.3 CE(aux1)
    + 0.3 CE(aux2) of the three training outputs, the step updates main and auxiliary weights, and two steps on
    one batch lower the main head's eval loss."""
    from ppipe.data import iter_batches
    from ppipe.evaluate import decode_first
    from ppipe.train.loop import build_worker_run, forward_backward

    cfg = load_config(QUICKSTART, _googlenet_overrides(
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=192", "DataLoader.Train.sampler.batch_size=4",
        "Optimizer.lr.name=Constant", "Optimizer.lr.learning_rate=0.001", "Optimizer.lr.warmup_epoch=0"))
    paddle.seed(0)
    run = build_worker_run(cfg, digits_prepared, rank=0, world=1)
    train_ops = decode_first(cfg.DataLoader.Train.dataset.transform_ops)
    images, labels = next(iter_batches(digits_prepared, "train", train_ops, 4, seed=0))
    # GoogLeNet has no BatchNorm: at init its logits spread over ~100 on these images. Paddle's softmax clips
    # logits more than 64 below the row's max (its ValueClip), which a by-hand CE does not; scaled inputs keep the
    # logits inside that range so the comparison is exact.
    images, labels_t = paddle.to_tensor(images * 0.1), paddle.to_tensor(labels)
    model = run.model

    def eval_loss() -> float:
        model.eval()
        with paddle.no_grad():
            value = float(run.eval_loss(model(images), labels_t))
        model.train()
        return value

    before = eval_loss()
    aux_before = model.aux1.out.weight.numpy().copy()
    model.train()
    for _ in range(2):
        loss, outputs = forward_backward(model, run.criterion, run.precision, images, labels_t)
        assert isinstance(outputs, list) and [o.shape for o in outputs] == [[4, 10]] * 3
        main, aux1, aux2 = (o.numpy() for o in outputs)
        assert all(np.ptp(h, axis=1).max() < 64 for h in (main, aux1, aux2))
        assert float(loss) == pytest.approx(_ce(main, labels) + 0.3 * _ce(aux1, labels) + 0.3 * _ce(aux2, labels),
                                            rel=1e-5)
        correct, counted = top1_counts(outputs, labels)
        assert counted == 4 and correct == int((main.argmax(1) == labels).sum())
        run.precision.step(run.optimizer)
        run.optimizer.clear_grad()
    assert not np.allclose(model.aux1.out.weight.numpy(), aux_before)  # the auxiliary heads train too
    assert eval_loss() < before


# ------------------------------------------------------------------------------------------- gradient clipping

def _recipe(family: str, name: str, *overrides: str):
    return load_config(RECIPES / family / f"{name}.yaml", list(overrides))


def _one_step_update(cfg: OptimizerSection, scale: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(gradients, weight updates) of one step of `cfg`'s optimizer on a linear model whose loss is `scale` times
    larger than natural, so its gradient is large."""
    paddle.seed(0)
    model = paddle.nn.Linear(4, 3)
    opt = build_optimizer(cfg, model, build_lr(cfg.lr, 1, 1))
    before = [p.numpy().copy() for p in model.parameters()]
    x, y = paddle.randn([8, 4]), paddle.randint(0, 3, [8])
    (paddle.nn.functional.cross_entropy(model(x), y) * scale).backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    opt.step()
    return grads, [b - p.numpy() for b, p in zip(before, model.parameters())]


def _global_norm(arrays) -> float:
    return float(np.sqrt(sum((a.astype(np.float64) ** 2).sum() for a in arrays)))


@pytest.mark.parametrize("name", ["SGD", "Momentum"])
def test_clip_grad_scales_the_gradients_to_that_global_norm_before_the_step(name):
    # SGD and Momentum's first step move the weights by lr x (clipped) gradient: with lr 1 the update is the gradient
    # the optimizer applied.
    lr = LRSection(name="Constant", learning_rate=1.0)
    grads, update = _one_step_update(OptimizerSection(name=name, lr=lr), scale=100.0)
    assert _global_norm(grads) > 10
    assert _global_norm(update) == pytest.approx(_global_norm(grads), rel=1e-5)  # no clipping by default

    grads, update = _one_step_update(OptimizerSection(name=name, lr=lr, clip_grad=1.0), scale=100.0)
    assert _global_norm(update) == pytest.approx(1.0, rel=1e-5)
    factor = 1.0 / _global_norm(grads)  # every gradient shrinks by the same factor: the direction is kept
    for g, u in zip(grads, update):
        np.testing.assert_allclose(u, g * factor, rtol=1e-4, atol=1e-7)

    # below the limit nothing changes
    grads, update = _one_step_update(OptimizerSection(name=name, lr=lr, clip_grad=1e6), scale=100.0)
    assert _global_norm(update) == pytest.approx(_global_norm(grads), rel=1e-5)


def test_clip_norm_clips_each_parameters_gradient_separately():
    lr = LRSection(name="Constant", learning_rate=1.0)
    grads, update = _one_step_update(OptimizerSection(name="SGD", lr=lr, clip_norm=1.0), scale=100.0)
    assert all(np.linalg.norm(g) > 1 for g in grads)
    assert [float(np.linalg.norm(u)) for u in update] == pytest.approx([1.0] * len(update), rel=1e-5)


@pytest.mark.parametrize("name", ["Momentum", "SGD", "AdamW", "RMSProp"])
def test_every_optimizer_gets_the_recipes_gradient_clipping(name):
    cfg = OptimizerSection(name=name, clip_grad=1.0, lr=LRSection(name="Constant", learning_rate=0.1))
    opt = build_optimizer(cfg, paddle.nn.Linear(2, 2), build_lr(cfg.lr, 1, 1))
    assert isinstance(opt._grad_clip, paddle.nn.ClipGradByGlobalNorm) and opt._grad_clip.clip_norm == 1.0
    cfg = OptimizerSection(name=name, lr=LRSection(name="Constant", learning_rate=0.1))
    assert build_optimizer(cfg, paddle.nn.Linear(2, 2), build_lr(cfg.lr, 1, 1))._grad_clip is None


def test_pvt_v2_b3_recipe_clips_at_1_as_published():
    cfg = _recipe("PVTV2", "PVT_V2_B3")
    assert cfg.Optimizer.clip_grad == 1.0
    opt = build_optimizer(cfg.Optimizer, paddle.nn.Linear(2, 2), build_lr(cfg.Optimizer.lr, 1, 1))
    assert isinstance(opt._grad_clip, paddle.nn.ClipGradByGlobalNorm)


# ----------------------------------------------------------------------------------- linear learning-rate scaling

def test_piecewise_schedule_scales_its_values_and_says_so():
    from ppipe.train.loop import scaled_learning_rate, scaled_schedule

    cfg = _recipe("ResNet", "ResNet50")  # Piecewise [0.1, 0.01, 0.001, 0.0001] at epochs 30/60/90, for 8 GPUs
    rate, note = scaled_learning_rate(cfg, 2)
    assert rate == pytest.approx([0.025, 0.0025, 0.00025, 0.000025])
    assert note == ("learning rate scaled linearly for 2 workers (recipe tuned for 8 workers; global batch 128): "
                    "Piecewise values [0.1, 0.01, 0.001, 0.0001] -> [0.025, 0.0025, 0.00025, 2.5e-05]")
    lr, _ = scaled_schedule(cfg, 2)
    trace = _trace(build_lr(lr, cfg.Global.epochs, steps_per_epoch=1), 120)
    assert trace[0] == trace[29] == pytest.approx(0.025)      # the rate actually trained at, not only logged
    assert trace[30] == pytest.approx(0.0025) and trace[60] == pytest.approx(0.00025)
    assert trace[119] == pytest.approx(0.000025)
    assert scaled_learning_rate(cfg, 8) == ([0.1, 0.01, 0.001, 0.0001], None)


def test_cosine_schedule_scales_its_rate_floor_and_warmup_start_alike():
    from ppipe.train.loop import scaled_learning_rate, scaled_schedule

    cfg = _recipe("PVTV2", "PVT_V2_B0", "Global.epochs=40")  # Cosine 1e-3 -> eta_min 1e-5, warm-up 20 epochs from 1e-6
    rate, note = scaled_learning_rate(cfg, 4)
    assert rate == pytest.approx(5e-4)
    assert note.endswith("Cosine learning_rate 0.001 -> 0.0005, eta_min 1e-05 -> 5e-06, "
                         "warmup_start_lr 1e-06 -> 5e-07")
    steps = 10
    original = _trace(build_lr(cfg.Optimizer.lr, 40, steps), 40 * steps)
    scaled = _trace(build_lr(scaled_schedule(cfg, 4)[0], 40, steps), 40 * steps)
    assert scaled[0] == pytest.approx(5e-7)                    # the warm-up starts at the scaled start
    assert scaled[20 * steps] == pytest.approx(5e-4)           # and reaches the scaled rate
    assert min(scaled) == pytest.approx(5e-7) and scaled[-1] == pytest.approx(5e-6, rel=0.01)  # floor: eta_min / 2
    assert scaled == pytest.approx([v / 2 for v in original])  # the whole schedule, step by step


@pytest.mark.parametrize("name", ["Cosine", "Piecewise", "Step", "MultiStepDecay", "Constant", "Linear"])
def test_scaling_multiplies_every_step_of_every_schedule(name):
    from ppipe.optim import scale_lr

    cfg = LRSection(name=name, learning_rate=0.4, warmup_epoch=1, warmup_start_lr=0.04, eta_min=0.02, end_lr=0.01,
                    step_size=1, milestones=[2], decay_epochs=[2], values=[0.4, 0.04])
    scaled, changes = scale_lr(cfg, 0.25)
    assert changes  # each schedule reports what changed
    assert _trace(build_lr(scaled, 4, 3), 12) == pytest.approx([v * 0.25 for v in _trace(build_lr(cfg, 4, 3), 12)])


def test_a_recipe_without_learning_rate_is_not_reported_with_a_default_it_does_not_use():
    from ppipe.train.loop import scaled_learning_rate

    cfg = _recipe("AlexNet", "AlexNet")  # Piecewise values only, no learning_rate key
    rate, note = scaled_learning_rate(cfg, 2)
    assert rate == pytest.approx([0.0025, 0.00025, 0.000025, 0.0000025])
    assert "learning_rate" not in note and "0.1" not in note
    assert "values [0.01, 0.001, 0.0001, 1e-05] -> [0.0025, 0.00025, 2.5e-05, 2.5e-06]" in note
