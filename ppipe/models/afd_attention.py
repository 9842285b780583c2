"""AFD's `AttentionModel` and its linear transforms (Ji et al., "Show, Attend and Distill: Knowledge Distillation
via Attention-based Feature Matching", AAAI 2021, arXiv:2102.02973), as PaddleClas implements them
(ppcls/arch/distill/afd_attention.py; `AttentionModel` in ppcls/arch/__init__.py).

A `DistillationModel` member may be an `AttentionModel`: a zoo architecture with `return_patterns` (its
backbone), then a transform of those feature maps, run one after the other; the member's output is the backbone's
`{"logits", pattern: map, ...}` updated with the transform's, which `AFDLoss` (`ppipe.losses.afd`) reads:

* `LinearTransformTeacher` -> `query` [N, T, qk_dim] (a Linear+BatchNorm of each map's channel means) and `value`:
  per map, its channel-mean of squares, flattened and L2-normalised ([N, H*W]);
* `LinearTransformStudent` -> `bilinear_key` [N, S, T, qk_dim] (a Linear+BatchNorm+ReLU of each map's channel
  means, then one Linear+BatchNorm to T keys each) and `value`: per distinct teacher map shape, every student map's
  channel-mean of squares average-pooled to that size and L2-normalised ([N, S, H*W]).

`t_shapes`/`s_shapes` are the [C, H, W] of the maps at the recipe's image size (224 in PaddleClas's recipe). The
backbone alone is evaluated, exported and published (`infer_model`); the transforms train beside it and are saved
in the checkpoint under PaddleClas's keys (`Student.LinearTransformStudent.key_layer.0.linear.weight`, ...).
"""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.errors import ConfigError
from ppipe.models.composite import ModelMembers
from ppipe.registry import Registry

ATTENTION = "AttentionModel"  # the name a DistillationModel member gives to take this form


def check_shapes(shapes, where: str) -> list[list[int]]:
    """`shapes` as [[C, H, W], ...] of positive ints; ConfigError naming `where` otherwise."""
    if not isinstance(shapes, (list, tuple)) or not shapes or not all(
            isinstance(s, (list, tuple)) and len(s) == 3 and all(isinstance(d, int) and d > 0 for d in s)
            for s in shapes):
        raise ConfigError(f"{where}: expected a list of feature-map shapes [channels, height, width], got {shapes!r}")
    return [list(s) for s in shapes]


def shape_groups(t_shapes) -> tuple[list[int], list[list[int]]]:
    """(for each teacher map, the index of its [C, H, W] among the distinct ones; the distinct ones in order):
    the student pools its maps once per distinct teacher shape (PaddleClas's `unique_shape`, channels included)."""
    distinct: list[list[int]] = []
    groups = []
    for shape in t_shapes:
        if list(shape) not in distinct:
            distinct.append(list(shape))
        groups.append(distinct.index(list(shape)))
    return groups, distinct


def _check_transform(params: dict[str, Any], where: str, shape_keys: tuple[str, ...]) -> None:
    keys = params.get("keys")
    if not isinstance(keys, (list, tuple)) or not keys or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{where}.keys: expected the backbone's return_patterns to read, got {keys!r}")
    for name in shape_keys:
        check_shapes(params.get(name), f"{where}.{name}")
    own = shape_keys[-1]  # the shapes of the maps `keys` names: the transform's own side
    if len(params[own]) != len(keys):
        raise ConfigError(f"{where}: {len(keys)} keys but {len(params[own])} {own}; give one shape per key")
    qk_dim = params.get("qk_dim")
    if not isinstance(qk_dim, int) or qk_dim <= 0:
        raise ConfigError(f"{where}.qk_dim: expected a positive int, got {qk_dim!r}")


def _maps(features: dict, keys: list[str], who: str) -> list:
    missing = [k for k in keys if k not in features]
    if missing:
        raise ValueError(f"{who}: the backbone returns no {missing[0]!r}; it returns {sorted(features)}")
    return [features[k] for k in keys]


class LinearBNReLU(nn.Layer):
    """Linear, BatchNorm1D and (unless `relu=False`) ReLU: PaddleClas's `LinearBNReLU`, with its sublayer names."""

    def __init__(self, nin: int, nout: int):
        super().__init__()
        self.linear = nn.Linear(nin, nout)
        self.bn = nn.BatchNorm1D(nout)

    def forward(self, x, relu: bool = True):
        x = self.bn(self.linear(x))
        return F.relu(x) if relu else x


class LinearTransformTeacher(nn.Layer):
    @classmethod
    def check_values(cls, params: dict[str, Any], where: str) -> None:
        _check_transform(params, where, ("t_shapes",))

    def __init__(self, qk_dim: int, t_shapes, keys):
        super().__init__()
        self.keys, self.t_shapes = list(keys), check_shapes(t_shapes, "LinearTransformTeacher.t_shapes")
        self.query_layer = nn.LayerList([LinearBNReLU(c, qk_dim) for c, _, _ in self.t_shapes])

    def forward(self, features: dict):
        maps = _maps(features, self.keys, "LinearTransformTeacher")
        for i, (key, f) in enumerate(zip(self.keys, maps)):
            if list(f.shape[1:]) != self.t_shapes[i]:
                raise ValueError(f"LinearTransformTeacher.t_shapes[{i}]: {self.t_shapes[i]}, but {key!r} is "
                                 f"{list(f.shape[1:])} at this image size; give the teacher's maps' [C, H, W] (in "
                                 f"the student's LinearTransformStudent and AFDLoss t_shapes too)")
        n = maps[0].shape[0]
        query = paddle.stack([layer(f.mean(axis=[2, 3]), relu=False) for f, layer in zip(maps, self.query_layer)],
                             axis=1)
        value = [F.normalize(f.pow(2).mean(axis=1).reshape([n, -1]), axis=1) for f in maps]
        return {"query": query, "value": value}


class _Sample(nn.Layer):
    """Each student map's channel-mean of squares, average-pooled to one teacher map size: [N, S, H*W]."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.sample = nn.AdaptiveAvgPool2D((height, width))

    def forward(self, maps: list):
        n = maps[0].shape[0]
        return paddle.stack([self.sample(f.pow(2).mean(axis=1, keepdim=True)).reshape([n, -1]) for f in maps],
                            axis=1)


class LinearTransformStudent(nn.Layer):
    @classmethod
    def check_values(cls, params: dict[str, Any], where: str) -> None:
        _check_transform(params, where, ("t_shapes", "s_shapes"))

    def __init__(self, qk_dim: int, t_shapes, s_shapes, keys):
        super().__init__()
        self.keys, self.qk_dim = list(keys), int(qk_dim)
        self.s_shapes = check_shapes(s_shapes, "LinearTransformStudent.s_shapes")
        self.num_teacher_maps = len(check_shapes(t_shapes, "LinearTransformStudent.t_shapes"))
        _, distinct = shape_groups(t_shapes)
        self.samplers = nn.LayerList([_Sample(h, w) for _, h, w in distinct])
        self.key_layer = nn.LayerList([LinearBNReLU(c, qk_dim) for c, _, _ in self.s_shapes])
        self.bilinear = LinearBNReLU(qk_dim, qk_dim * self.num_teacher_maps)

    def forward(self, features: dict):
        maps = _maps(features, self.keys, "LinearTransformStudent")
        for i, (key, f) in enumerate(zip(self.keys, maps)):
            if f.shape[1] != self.s_shapes[i][0]:
                raise ValueError(f"LinearTransformStudent.s_shapes[{i}]: {self.s_shapes[i][0]} channels, but "
                                 f"{key!r} has {f.shape[1]}")
        n = maps[0].shape[0]
        key = paddle.stack([layer(f.mean(axis=[2, 3])) for f, layer in zip(maps, self.key_layer)], axis=1)
        bilinear_key = self.bilinear(key.reshape([-1, self.qk_dim]), relu=False).reshape(
            [n, len(maps), self.num_teacher_maps, self.qk_dim])
        value = [F.normalize(sampler(maps), axis=2) for sampler in self.samplers]
        return {"bilinear_key": bilinear_key, "value": value}


TRANSFORMS: Registry[type[nn.Layer]] = Registry("AttentionModel transform")
TRANSFORMS.register(LinearTransformTeacher)
TRANSFORMS.register(LinearTransformStudent)


def build_transform(name: str, params: dict[str, Any], where: str) -> nn.Layer:
    """Transform `name`, its parameters named from zero (`linear_0.w_0`, ...) as a zoo model's are; the
    AttentionModel prefixes them with the member's key."""
    with paddle.utils.unique_name.guard():
        return TRANSFORMS.build(name, params, where)


class AttentionModel(ModelMembers):
    """The backbone (first member, with feature taps), then each transform on the previous member's output; returns
    every member's outputs merged into one mapping, as PaddleClas's AttentionModel."""

    @property
    def infer_model(self) -> nn.Layer:
        return getattr(self, self.names[0])

    def forward(self, x):
        out: dict = {}
        for key in self.names:
            x = self.run_member(key, x)
            out.update(x)
        return out
