"""PaddleClas's `DistillationPairLoss` (ppcls/loss/distillationloss.py): a base loss, named by `base_loss_name` and
built with the term's other keys, over a student feature (`s_key`) and a teacher feature (`t_key`) of each pair.

Its base losses train layers of their own, with the model (`ppipe.losses.trainable`):

* `MGDLoss`: masked generative distillation (Yang et al. 2022, arXiv:2205.01529, ppcls/loss/mgd_loss.py): drop
  each channel of the student's feature map with probability `lambda_mgd`, regenerate the teacher's map from
  what is left with two 3x3 convolutions, and take `alpha_mgd` times the mean squared error.
* `PEFDLoss`: projector-ensemble feature distillation (Chen et al. 2022, arXiv:2210.15274, ppcls/loss/pefdloss.py):
  the mean of `num_projectors` linear+ReLU projections of the student's feature against the teacher's,
  1 - cosine similarity, averaged over the batch.

Layer and key names follow PaddleClas's (`generation.0.weight`, `projectors.0.conv.weight`), so a checkpoint's
`loss_func.*` keys are those of PaddleClas's.
"""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.errors import ConfigError
from ppipe.losses.classification import LOSSES
from ppipe.losses.distillation import PairLoss, model_output
from ppipe.registry import Registry


def _kaiming_conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2D:
    """A convolution initialised as PaddleClas's MGDLoss does (Kaiming normal over fan-out, ReLU gain)."""
    init = nn.initializer.KaimingNormal(nonlinearity="relu", mode="fan_out")
    return nn.Conv2D(in_channels, out_channels, kernel, padding=kernel // 2, weight_attr=paddle.ParamAttr(
        initializer=init))


class MGDLoss(nn.Layer):
    """`alpha_mgd` * MSE(generation(student * channel mask), teacher); a 1x1 convolution first aligns the student's
    channels to the teacher's where they differ. The maps must have the same height and width."""

    def __init__(self, student_channels: int, teacher_channels: int, alpha_mgd: float = 1.756,
                 lambda_mgd: float = 0.15):
        super().__init__()
        self.alpha_mgd, self.lambda_mgd = float(alpha_mgd), float(lambda_mgd)
        self.align = (_kaiming_conv(student_channels, teacher_channels, 1)
                      if student_channels != teacher_channels else None)
        self.generation = nn.Sequential(_kaiming_conv(teacher_channels, teacher_channels, 3), nn.ReLU(),
                                        _kaiming_conv(teacher_channels, teacher_channels, 3))

    def forward(self, student, teacher):
        if student.shape[-2:] != teacher.shape[-2:]:
            raise ValueError(f"MGDLoss: the student's feature map is {list(student.shape[-2:])} (height, width) and "
                             f"the teacher's {list(teacher.shape[-2:])}; pick layers (s_key, t_key) of the same size")
        if self.align is not None:
            student = self.align(student)
        n, c = teacher.shape[:2]
        keep = (paddle.rand([n, c, 1, 1]) >= self.lambda_mgd).astype(student.dtype)  # one draw per channel
        return F.mse_loss(self.generation(student * keep), teacher) * self.alpha_mgd


class _Projector(nn.Layer):
    """PaddleClas's PEFD `Regressor`: linear, then ReLU (its linear layer is named `conv` there, and here)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.conv = nn.Linear(dim_in, dim_out)

    def forward(self, x):
        return F.relu(self.conv(x))


class PEFDLoss(nn.Layer):
    """mean(1 - cos(mean of the projectors(student), teacher)) over flattened features (`mode: gap`: globally
    average-pooled first)."""

    def __init__(self, student_channel: int, teacher_channel: int, num_projectors: int = 3, mode: str = "flatten"):
        super().__init__()
        if int(num_projectors) <= 0:
            raise ConfigError(f"PEFDLoss.num_projectors: expected at least 1, got {num_projectors}")
        if mode not in ("flatten", "gap"):
            raise ConfigError(f"PEFDLoss.mode: expected flatten or gap, got {mode!r}")
        self.mode = mode
        self.projectors = nn.LayerList([_Projector(student_channel, teacher_channel)
                                        for _ in range(int(num_projectors))])

    def forward(self, student, teacher):
        if self.mode == "gap":
            student, teacher = F.adaptive_avg_pool2d(student, 1), F.adaptive_avg_pool2d(teacher, 1)
        student, teacher = student.flatten(1), teacher.flatten(1)
        projected = paddle.add_n([projector(student) for projector in self.projectors]) / len(self.projectors)
        # F.normalize's 1e-12 floor: PaddleClas divides by the bare norm, which is NaN for an all-zero projection
        cos = (F.normalize(projected, axis=1) * F.normalize(teacher, axis=1)).sum(axis=1)
        return (1.0 - cos).mean()


BASE_LOSSES: Registry[type[nn.Layer]] = Registry("DistillationPairLoss base loss")
BASE_LOSSES.register(MGDLoss)
BASE_LOSSES.register(PEFDLoss)


def _keys(value, where: str) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(k, str) for k in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected the name of a model output (a return_patterns entry or 'logits') or a "
                      f"list of them, got {value!r}")


class DistillationPairLoss(PairLoss, nn.Layer):
    """`base_loss_name`'s loss between output `s_key` of each pair's first model and `t_key` of its second (lists
    of keys: lists of outputs), summed over the pairs; one base loss, and so one set of its layers, serves every
    pair, as in PaddleClas. Every key besides this loss's own goes to the base loss."""

    own_params = ("weight", "base_loss_name", "model_name_pairs", "s_key", "t_key", "name")
    params = None  # the base loss's keys too: `check_values` checks all of them

    @classmethod
    def check_values(cls, params: dict[str, Any], where: str) -> None:
        base = params.get("base_loss_name")
        if base is None:
            raise ConfigError(f"{where}.base_loss_name: name the base loss, one of {', '.join(BASE_LOSSES.names())}")
        s_key, t_key = (_keys(params.get(k), f"{where}.{k}") for k in ("s_key", "t_key"))
        if isinstance(s_key, str) != isinstance(t_key, str) or (not isinstance(s_key, str)
                                                               and len(s_key) != len(t_key)):
            raise ConfigError(f"{where}: s_key and t_key must both be one key or lists of the same length, got "
                              f"{s_key!r} and {t_key!r}")
        BASE_LOSSES.check_params(base, _base_params(params), where)

    def __init__(self, base_loss_name: str, weight: float = 1.0, model_name_pairs=None, s_key=None, t_key=None,
                 name=None, **kwargs):
        nn.Layer.__init__(self)  # first: the attributes below go through Layer's __setattr__
        PairLoss.__init__(self, weight, model_name_pairs, None, name)
        where = "DistillationPairLoss"
        self.check_values({"base_loss_name": base_loss_name, "s_key": s_key, "t_key": t_key, **kwargs}, where)
        self.s_key, self.t_key = s_key, t_key
        self.loss_func = BASE_LOSSES.build(base_loss_name, kwargs, where)

    def pair_outputs(self, outputs, first: str, second: str):
        return _pick(outputs, first, self.s_key), _pick(outputs, second, self.t_key)

    def pair_loss(self, student, teacher, labels):
        return self.loss_func(student, teacher)


def _base_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in DistillationPairLoss.own_params}


def _pick(outputs, name: str, key):
    if isinstance(key, str):
        return model_output(outputs, name, key, "DistillationPairLoss")
    return [model_output(outputs, name, k, "DistillationPairLoss") for k in key]


LOSSES.register(DistillationPairLoss)
