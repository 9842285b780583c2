"""Distillation losses that train layers of their own (DistillationPairLoss with MGD and PEFD): their math against
NumPy, their recipe checks, and the one Layer that trains the model and the loss's layers together (optimizer,
checkpoint and resume; exported weights the model's alone)."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.config import ConfigError
from ppipe.losses import LOSSES, CombinedLoss
from ppipe.losses.pair_loss import DistillationPairLoss
from ppipe.losses.trainable import ModelWithLossLayers, trained_layer
from ppipe.models.distillation import build_distillation_model

PAIR = [["Student", "Teacher"]]


def _features(seed: int, shape):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype("float32"), rng.normal(size=shape).astype("float32")


def _named(key, student, teacher):
    return {"Student": {"logits": paddle.zeros([student.shape[0], 3]), key: paddle.to_tensor(student)},
            "Teacher": {"logits": paddle.zeros([teacher.shape[0], 3]), key: paddle.to_tensor(teacher)}}


def _conv3x3(x, weight, bias):
    """NumPy 3x3 convolution, padding 1: x [N, C, H, W], weight [O, C, 3, 3]."""
    h, w = x.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = sum(np.einsum("nchw,oc->nohw", padded[:, :, i:i + h, j:j + w], weight[:, :, i, j])
              for i in range(3) for j in range(3))
    return out + bias[None, :, None, None]


def _mgd_outputs(student, teacher):
    return {"Student": {"blocks[7]": paddle.to_tensor(student)}, "Teacher": {"blocks[15]": paddle.to_tensor(teacher)}}


def _mgd(**extra):
    return DistillationPairLoss(base_loss_name="MGDLoss", model_name_pairs=PAIR, s_key="blocks[7]",
                                t_key="blocks[15]", student_channels=4, teacher_channels=4, **extra)


def _numpy_generation(loss, x):
    conv1, conv2 = loss.loss_func.generation[0], loss.loss_func.generation[2]
    hidden = np.maximum(_conv3x3(x, conv1.weight.numpy(), conv1.bias.numpy()), 0)
    return _conv3x3(hidden, conv2.weight.numpy(), conv2.bias.numpy())


def test_mgd_loss_regenerates_the_teachers_map_from_the_students_with_channels_dropped():
    s, t = _features(0, (2, 4, 3, 3))
    keep_all = _mgd(lambda_mgd=0.0, alpha_mgd=2.0)
    got = float(keep_all(_mgd_outputs(s, t), None))
    assert got == pytest.approx(2.0 * ((_numpy_generation(keep_all, s) - t) ** 2).mean(), rel=1e-4)
    drop_all = _mgd(lambda_mgd=1.0, alpha_mgd=1.0)  # every channel dropped: the generator sees zeros
    got = float(drop_all(_mgd_outputs(s, t), None))
    assert got == pytest.approx(((_numpy_generation(drop_all, np.zeros_like(s)) - t) ** 2).mean(), rel=1e-4)


def test_mgd_loss_drops_each_channel_of_each_image_with_probability_lambda():
    s, t = _features(1, (2, 4, 3, 3))
    loss = _mgd(lambda_mgd=0.5, alpha_mgd=1.0)
    outputs = _mgd_outputs(s, t)
    paddle.seed(7)
    got = float(loss(outputs, None))
    paddle.seed(7)
    keep = (paddle.rand([2, 4, 1, 1]).numpy() >= 0.5).astype("float32")  # the same draw as the loss's
    assert 0 < keep.sum() < keep.size
    assert got == pytest.approx(((_numpy_generation(loss, s * keep) - t) ** 2).mean(), rel=1e-4)


def test_mgd_loss_aligns_the_students_channels_with_a_1x1_convolution_where_they_differ():
    loss = DistillationPairLoss(base_loss_name="MGDLoss", s_key="a", t_key="b", student_channels=2,
                                teacher_channels=4)
    assert loss.loss_func.align.weight.shape == [4, 2, 1, 1]
    assert _mgd().loss_func.align is None
    with pytest.raises(ValueError, match=r"MGDLoss: the student's feature map is \[3, 3\].*teacher's \[2, 2\]"):
        _mgd()(_mgd_outputs(np.zeros([1, 4, 3, 3], "float32"), np.zeros([1, 4, 2, 2], "float32")), None)


@pytest.mark.parametrize("mode", ["flatten", "gap"])
def test_pefd_loss_is_one_minus_the_cosine_of_the_projector_ensemble_and_the_teacher(mode):
    s, t = _features(2, (3, 4, 2, 2))
    loss = DistillationPairLoss(base_loss_name="PEFDLoss", model_name_pairs=PAIR, s_key="avg_pool",
                                t_key="avg_pool", student_channel=16 if mode == "flatten" else 4,
                                teacher_channel=16 if mode == "flatten" else 4, num_projectors=2, mode=mode)
    fs, ft = (s.reshape(3, -1), t.reshape(3, -1)) if mode == "flatten" else (s.mean((2, 3)), t.mean((2, 3)))
    projected = np.mean([np.maximum(fs @ p.conv.weight.numpy() + p.conv.bias.numpy(), 0)
                         for p in loss.loss_func.projectors], axis=0)
    cos = (projected * ft).sum(1) / np.linalg.norm(projected, axis=1) / np.linalg.norm(ft, axis=1)
    assert float(loss(_named("avg_pool", s, t), None)) == pytest.approx((1 - cos).mean(), rel=1e-4)


def test_pair_loss_recipe_mistakes_fail_at_load_naming_the_key():
    build = LOSSES.build
    with pytest.raises(ConfigError, match=r"unknown DistillationPairLoss base loss 'MGDLos' \(did you mean MGDLoss"):
        build("DistillationPairLoss", {"base_loss_name": "MGDLos", "s_key": "a", "t_key": "b"}, "Loss.Train[1]")
    with pytest.raises(ConfigError, match=r"PEFDLoss: unknown parameter 'student_channels' \(did you mean "
                                          r"student_channel"):
        build("DistillationPairLoss", {"base_loss_name": "PEFDLoss", "s_key": "a", "t_key": "b",
                                       "student_channels": 8, "teacher_channel": 8})
    with pytest.raises(ConfigError, match=r"s_key and t_key must both be one key or lists of the same length"):
        build("DistillationPairLoss", {"base_loss_name": "PEFDLoss", "s_key": "a", "t_key": ["b", "c"],
                                       "student_channel": 8, "teacher_channel": 8})
    with pytest.raises(ConfigError, match=r"PEFDLoss.mode: expected flatten or gap, got 'max'"):
        build("DistillationPairLoss", {"base_loss_name": "PEFDLoss", "s_key": "a", "t_key": "a", "mode": "max",
                                       "student_channel": 8, "teacher_channel": 8})


def _student_teacher():
    return build_distillation_model({"freeze_params_list": [True, False], "models": [
        {"Teacher": {"name": "PPLCNet_x0_25", "return_patterns": ["blocks5"]}},
        {"Student": {"name": "PPLCNet_x0_25", "return_patterns": ["blocks5"]}}]}, class_num=10)


_MGD_TERMS = [{"DistillationGTCELoss": {"weight": 1.0}},
              {"DistillationPairLoss": {"weight": 1.0, "base_loss_name": "MGDLoss", "s_key": "blocks5",
                                        "t_key": "blocks5", "student_channels": 64, "teacher_channels": 64}}]


def test_a_loss_without_parameters_trains_the_model_itself():
    model = _student_teacher()
    assert trained_layer(model, CombinedLoss([{"DistillationGTCELoss": {"weight": 1.0}}], "Loss.Train")) is model


def test_loss_layers_are_trained_with_the_model_and_survive_a_checkpoint_resume(tmp_path):
    from ppipe.train.checkpoint import load_checkpoint, save_checkpoint
    from ppipe.train.state import TrainState

    def build(seed):
        paddle.seed(seed)
        criterion = CombinedLoss(_MGD_TERMS, "Loss.Train")
        trained = trained_layer(_student_teacher(), criterion)
        lr = paddle.optimizer.lr.PiecewiseDecay([10], [0.1, 0.01])
        return trained, criterion, paddle.optimizer.Momentum(lr, momentum=0.9, parameters=trained.parameters()), lr

    trained, criterion, optimizer, lr = build(0)
    assert isinstance(trained, ModelWithLossLayers) and trained.infer_model is trained.model.Student
    generator = trained.loss_func["1"].loss_func.generation[0].weight
    before = generator.numpy().copy()
    assert trained.loss_func["1"] is criterion.terms[1]  # the loss the run computes with is the one it trains
    trained.train()
    assert trained.model.Teacher.training  # Layer.train sets every sublayer; the forward puts a frozen model back
    criterion(trained(paddle.randn([2, 3, 32, 32])), paddle.to_tensor([1, 2])).backward()
    assert not trained.model.Teacher.training
    assert generator.grad is not None and float(generator.grad.abs().sum()) > 0
    optimizer.step()
    assert not np.allclose(generator.numpy(), before)
    names = [p.name for p in trained.parameters()]
    assert len(names) == len(set(names))  # optimizer state is kept per name: no two parameters share one
    keys = list(trained.state_dict())
    assert set(trained.model.state_dict()) < set(keys)  # the model's own keys, unchanged
    assert "loss_func.1.loss_func.generation.0.weight" in keys  # PaddleClas's checkpoint key
    assert not any(k.startswith("model.") for k in keys)

    save_checkpoint(str(tmp_path), trained, optimizer, lr, TrainState(global_step=1))
    from ppipe import weights_io
    from ppipe.train.run_dir import CheckpointDir

    published = weights_io.load_state(CheckpointDir(str(tmp_path)).published_weights())
    assert set(published) == set(trained.model.Student.state_dict())  # the student's own weights alone
    resumed, _, resumed_optimizer, resumed_lr = build(1)
    assert not np.allclose(resumed.loss_func["1"].loss_func.generation[0].weight.numpy(), generator.numpy())
    load_checkpoint(str(tmp_path), resumed, resumed_optimizer, resumed_lr)
    np.testing.assert_array_equal(resumed.loss_func["1"].loss_func.generation[0].weight.numpy(), generator.numpy())
    velocity = {k: v for k, v in resumed_optimizer.state_dict().items() if k.startswith("loss_func.")}
    assert velocity and all(float(paddle.to_tensor(v).abs().sum()) > 0 for v in velocity.values())
