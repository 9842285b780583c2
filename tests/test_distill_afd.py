"""AFD (attention-based feature distillation), PaddleClas's resnet34_distill_resnet18_afd recipe: the
AttentionModel's linear transforms and AFDLoss against NumPy, the recipe's checks, and its training: the
transforms' and the loss's parameters train with the student, the published weights are the student's alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from ppipe.config import ConfigError, load_config
from ppipe.losses import CombinedLoss
from ppipe.losses.afd import AFDLoss
from ppipe.losses.logit_distillation import DistillationKLDivLoss
from ppipe.models.afd_attention import LinearTransformStudent, LinearTransformTeacher
from ppipe.models.distillation import build_distillation_model

AFD_RECIPE = Path(__file__).resolve().parent / "data" / "paddleclas_configs" / "Distillation" / \
    "resnet34_distill_resnet18_afd.yaml"
BN_SCALE = 1.0 / np.sqrt(1.0 + 1e-5)  # a fresh BatchNorm in eval mode: mean 0, variance 1, epsilon 1e-5


def _map_shapes(name: str, patterns: list[str], size: int) -> list[list[int]]:
    """[C, H, W] of zoo model `name`'s feature maps `patterns` for a size x size image."""
    from ppipe.models import create_model
    from ppipe.models.feature_taps import FeatureTaps

    model = create_model(name, num_classes=10)
    model.eval()
    out = FeatureTaps(patterns)(model, paddle.zeros([1, 3, size, size]))
    return [list(out[p].shape[1:]) for p in patterns]


def afd_shape_overrides(size: int) -> list[str]:
    """The AFD recipe's feature-map shapes (given for 224) at `size`, as -o overrides of its four shape lists."""
    teacher, student = (entry[key]["models"] for entry, key in zip(
        yaml.safe_load(AFD_RECIPE.read_text())["Arch"]["models"], ("Teacher", "Student")))
    t = json.dumps(_map_shapes("ResNet34", teacher[0]["ResNet34"]["return_patterns"], size))
    s = json.dumps(_map_shapes("ResNet18", student[0]["ResNet18"]["return_patterns"], size))
    return [f"Arch.models.0.Teacher.models.1.LinearTransformTeacher.t_shapes={t}",
            f"Arch.models.1.Student.models.1.LinearTransformStudent.s_shapes={s}",
            f"Arch.models.1.Student.models.1.LinearTransformStudent.t_shapes={t}",
            f"Loss.Train.2.AFDLoss.s_shapes={s}", f"Loss.Train.2.AFDLoss.t_shapes={t}"]


def _normalize(x, axis):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_afd_loss_weighs_each_student_maps_distance_by_the_teachers_attention():
    rng = np.random.default_rng(0)
    t_shapes, s_shapes, qk = [[4, 2, 2], [4, 2, 2], [8, 1, 1]], [[3, 4, 4], [5, 2, 2]], 4
    groups = [0, 0, 1]  # the two [4, 2, 2] teacher maps share the student's values pooled to 2x2
    loss = AFDLoss(s_shapes=s_shapes, t_shapes=t_shapes, qk_dim=qk, weight=50.0)
    bilinear_key, query = rng.normal(size=(2, 2, 3, qk)), rng.normal(size=(2, 3, qk))
    s_values = [rng.random((2, 2, 4)), rng.random((2, 2, 1))]
    t_values = [rng.random((2, 4)), rng.random((2, 4)), rng.random((2, 1))]
    as_tensors = lambda arrays: [paddle.to_tensor(a.astype("float32")) for a in arrays]  # noqa: E731
    outputs = {"Student": {"bilinear_key": paddle.to_tensor(bilinear_key.astype("float32")),
                           "value": as_tensors(s_values)},
               "Teacher": {"query": paddle.to_tensor(query.astype("float32")), "value": as_tensors(t_values)}}
    p_t, p_s = loss.attention.p_t.numpy(), loss.attention.p_s.numpy()
    att = _softmax((np.einsum("bstq,btq->bts", bilinear_key, query) + p_t @ p_s.T) / np.sqrt(qk), axis=2)
    expected = sum((((s_values[g] - t_values[t][:, None]) ** 2).mean(2) * att[:, t]).sum(1).mean()
                   for t, g in enumerate(groups))
    assert float(loss(outputs, None)) == pytest.approx(expected, rel=1e-5)
    assert float(CombinedLoss([{"AFDLoss": {"weight": 50.0, "s_shapes": s_shapes, "t_shapes": t_shapes,
                                            "qk_dim": qk}}], "Loss.Train").terms[0].weight) == 50.0


def test_kldiv_loss_is_t_squared_kl_of_teacher_and_student_at_temperature():
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    p_s, p_t = _softmax(s / 4, 1), _softmax(t / 4, 1)
    expected = (p_t * (np.log(p_t) - np.log(p_s))).sum() * 16 / 3
    outputs = {"Student": paddle.to_tensor(s.astype("float32")), "Teacher": paddle.to_tensor(t.astype("float32"))}
    assert float(DistillationKLDivLoss(temperature=4)(outputs, None)) == pytest.approx(expected, rel=1e-5)


def _linear(layer, x, relu):
    """NumPy LinearBNReLU in eval mode, its BatchNorm fresh."""
    y = (x @ layer.linear.weight.numpy() + layer.linear.bias.numpy()) * BN_SCALE
    return np.maximum(y, 0) if relu else y


def test_teacher_transform_gives_queries_of_channel_means_and_normalised_spatial_values():
    rng = np.random.default_rng(2)
    maps = {"a": rng.normal(size=(2, 3, 2, 2)), "b": rng.normal(size=(2, 5, 1, 1))}
    teacher = LinearTransformTeacher(qk_dim=4, t_shapes=[[3, 2, 2], [5, 1, 1]], keys=["a", "b"])
    teacher.eval()
    out = teacher({k: paddle.to_tensor(v.astype("float32")) for k, v in maps.items()})
    query = np.stack([_linear(layer, maps[k].mean((2, 3)), relu=False)
                      for k, layer in zip("ab", teacher.query_layer)], axis=1)
    np.testing.assert_allclose(out["query"].numpy(), query, rtol=1e-4, atol=1e-5)
    for got, k in zip(out["value"], "ab"):
        np.testing.assert_allclose(got.numpy(), _normalize((maps[k] ** 2).mean(1).reshape(2, -1), 1), rtol=1e-5)


def test_student_transform_gives_bilinear_keys_and_values_pooled_to_each_teacher_map_size():
    rng = np.random.default_rng(3)
    maps = {"a": rng.normal(size=(2, 3, 4, 4)), "b": rng.normal(size=(2, 5, 2, 2))}
    student = LinearTransformStudent(qk_dim=4, t_shapes=[[3, 2, 2], [3, 2, 2], [5, 1, 1]],
                                     s_shapes=[[3, 4, 4], [5, 2, 2]], keys=["a", "b"])
    student.eval()
    out = student({k: paddle.to_tensor(v.astype("float32")) for k, v in maps.items()})
    keys = np.stack([_linear(layer, maps[k].mean((2, 3)), relu=True) for k, layer in zip("ab", student.key_layer)],
                    axis=1)
    bilinear = _linear(student.bilinear, keys.reshape(-1, 4), relu=False).reshape(2, 2, 3, 4)
    np.testing.assert_allclose(out["bilinear_key"].numpy(), bilinear, rtol=1e-4, atol=1e-5)
    energy = {k: (v ** 2).mean(1) for k, v in maps.items()}  # [N, H, W]
    to_2x2 = np.stack([energy["a"].reshape(2, 2, 2, 2, 2).mean((2, 4)).reshape(2, 4), energy["b"].reshape(2, 4)], 1)
    to_1x1 = np.stack([energy["a"].mean((1, 2)), energy["b"].mean((1, 2))], 1)[..., None]
    assert len(out["value"]) == 2  # one per distinct teacher map size
    np.testing.assert_allclose(out["value"][0].numpy(), _normalize(to_2x2, 2), rtol=1e-5)
    np.testing.assert_allclose(out["value"][1].numpy(), _normalize(to_1x1, 2), rtol=1e-5)


def _recipe(*overrides):
    """The AFD recipe at 32x32 for 10 classes, with no downloaded teacher weights."""
    return load_config(AFD_RECIPE, ["Global.device=cpu", "Arch.class_num=10", "Global.image_shape=[3, 32, 32]",
                                    "Arch.models.0.Teacher.models.0.ResNet34.pretrained=False",
                                    *afd_shape_overrides(32), *overrides])


def test_afd_recipe_publishes_the_plain_student():
    from ppipe.build import infer_arch

    arch = infer_arch(_recipe())
    assert (arch.name, arch.num_classes) == ("ResNet18", 10)


def _grad_sum(param) -> float:
    return 0.0 if param.grad is None else float(param.grad.abs().sum())


def test_afd_trains_its_transforms_and_attention_with_the_student_and_publishes_the_student_alone(tmp_path):
    from ppipe import weights_io
    from ppipe.build import build_model
    from ppipe.losses.trainable import ModelWithLossLayers, trained_layer
    from ppipe.train.checkpoint import save_checkpoint
    from ppipe.train.run_dir import CheckpointDir
    from ppipe.train.state import TrainState

    paddle.seed(0)
    cfg = _recipe()
    model = build_model(cfg)
    criterion = CombinedLoss(cfg.Loss.Train, "Loss.Train")
    trained = trained_layer(model, criterion)
    assert isinstance(trained, ModelWithLossLayers) and trained.infer_model is model.Student.ResNet18
    lr = paddle.optimizer.lr.PiecewiseDecay([10], [0.1, 0.01])
    optimizer = paddle.optimizer.Momentum(lr, momentum=0.9, parameters=trained.parameters())
    watched = {"teacher transform": model.Teacher.LinearTransformTeacher.query_layer[0].linear.weight,
               "student transform": model.Student.LinearTransformStudent.bilinear.linear.weight,
               "attention p_t": trained.loss_func["2"].attention.p_t,
               "attention p_s": trained.loss_func["2"].attention.p_s,
               "student": model.Student.ResNet18.parameters()[0]}
    teacher_weight = model.Teacher.ResNet34.parameters()[0]
    before = {k: p.numpy().copy() for k, p in {**watched, "teacher": teacher_weight}.items()}
    trained.train()
    outputs = trained(paddle.randn([4, 3, 32, 32]))
    assert not model.Teacher.ResNet34.training and model.Teacher.LinearTransformTeacher.training
    assert {"logits", "query", "value"} <= set(outputs["Teacher"])
    criterion(outputs, paddle.to_tensor([1, 2, 3, 4])).backward()
    assert {k: _grad_sum(p) > 0 for k, p in watched.items()} == dict.fromkeys(watched, True)
    assert teacher_weight.grad is None
    optimizer.step()
    assert not any(np.allclose(p.numpy(), before[k]) for k, p in watched.items())
    np.testing.assert_array_equal(teacher_weight.numpy(), before["teacher"])
    names = [p.name for p in trained.parameters()]
    assert len(names) == len(set(names))  # optimizer state is kept per name

    save_checkpoint(str(tmp_path), trained, optimizer, lr, TrainState(global_step=1))
    files = CheckpointDir(str(tmp_path))
    saved = set(weights_io.load_state(files.model))
    assert {"Student.LinearTransformStudent.bilinear.linear.weight", "loss_func.2.attention.p_t",
            "Teacher.LinearTransformTeacher.query_layer.0.bn._mean"} <= saved  # PaddleClas's checkpoint keys
    assert set(weights_io.load_state(files.published_weights())) == set(model.Student.ResNet18.state_dict())


def _attention_arch(part: str, change: dict):
    """A DistillationModel whose student is an AttentionModel, with `change` made to its `part` (backbone or
    transform); a None value removes the key."""
    parts = {"transform": {"name": "LinearTransformStudent", "qk_dim": 8, "keys": ["blocks[0]"],
                           "s_shapes": [[64, 8, 8]], "t_shapes": [[64, 8, 8]]},
             "backbone": {"name": "ResNet18", "return_patterns": ["blocks[0]"]}}
    parts[part].update(change)
    parts = {name: {k: v for k, v in spec.items() if v is not None} for name, spec in parts.items()}
    student = {"name": "AttentionModel", "models": [{"ResNet18": parts["backbone"]},
                                                    {"LinearTransformStudent": parts["transform"]}]}
    return {"models": [{"Teacher": {"name": "ResNet18"}}, {"Student": student}], "infer_model_name": "Student"}


@pytest.mark.parametrize("part, change, message", [
    ("transform", {"name": "LinearTransformStudnt"}, r"Arch.models\[1\].Student.models\[1\].LinearTransformStudent: "
                                                     r"unknown AttentionModel transform 'LinearTransformStudnt' "
                                                     r"\(did you mean LinearTransformStudent"),
    ("transform", {"keys": ["blocks[1]"]}, r"LinearTransformStudent.keys: 'blocks\[1\]' is not among the "
                                           r"backbone's return_patterns \['blocks\[0\]'\]"),
    ("backbone", {"return_patterns": None}, r"ResNet18.return_patterns: the backbone must return the feature maps"),
    ("transform", {"s_shapes": [[64, 8]]}, r"s_shapes: expected a list of feature-map shapes \[channels, height, "
                                           r"width\]"),
    ("transform", {"s_shapes": [[64, 8, 8], [64, 8, 8]]}, r"1 keys but 2 s_shapes"),
])
def test_attention_model_mistakes_fail_at_load_naming_the_key(part, change, message):
    with pytest.raises(ConfigError, match=message):
        build_distillation_model(_attention_arch(part, change), class_num=10)


def test_teacher_map_sizes_that_do_not_fit_the_image_size_are_named():
    from ppipe.build import build_model

    cfg = _recipe()  # the shapes are those at 32
    with pytest.raises(ValueError, match=r"LinearTransformTeacher.t_shapes\[0\]: \[64, 8, 8\], but 'blocks\[0\]' "
                                         r"is \[64, 16, 16\] at this image size"):
        build_model(cfg)(paddle.randn([2, 3, 64, 64]))
