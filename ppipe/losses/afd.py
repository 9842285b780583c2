"""AFD, attention-based feature distillation (Ji et al., "Show, Attend and Distill", AAAI 2021, arXiv:2102.02973),
as PaddleClas's `AFDLoss` computes it (ppcls/loss/afdloss.py).

Every teacher map t attends over the student's maps s: with the student's `bilinear_key` [N, S, T, q] and the
teacher's `query` [N, T, q] (`ppipe.models.afd_attention`), and two trained position embeddings p_t [T, q] and
p_s [S, q],

    att[n, t, :] = softmax_s((bilinear_key[n, s, t] . query[n, t] + p_t[t] . p_s[s]) / sqrt(q))
    loss = sum_t mean_n sum_s att[n, t, s] * mean_hw (value_s[group(t)][n, s] - value_t[t][n])^2

where the values are the L2-normalised spatial maps of the two models, the student's pooled to the size of each
distinct teacher map (`group`). p_t and p_s are this loss's own parameters: they train with the model
(`ppipe.losses.trainable`), under PaddleClas's checkpoint keys `loss_func.<term>.attention.p_t`/`p_s`.
"""

from __future__ import annotations

import math
from typing import Any

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.errors import ConfigError
from ppipe.losses.classification import LOSSES
from ppipe.losses.distillation import PairLoss, model_output
from ppipe.models.afd_attention import check_shapes, shape_groups


class _Attention(nn.Layer):
    """PaddleClas's `Attention`: the position embeddings of the teacher's and the student's maps."""

    def __init__(self, qk_dim: int, num_teacher: int, num_student: int):
        super().__init__()
        init = nn.initializer.XavierNormal()
        self.p_t = self.create_parameter([num_teacher, qk_dim], default_initializer=init)
        self.p_s = self.create_parameter([num_student, qk_dim], default_initializer=init)


def _two_keys(value, where: str) -> None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(k, str) for k in value)):
        raise ConfigError(f"{where}: expected two names, got {value!r}")


class AFDLoss(PairLoss, nn.Layer):
    """The attention-weighted distance between the student's and the teacher's normalised spatial maps (above),
    over the pair `model_name_pair`, reading `student_keys` (bilinear key, values) of the first model and
    `teacher_keys` (query, values) of the second."""

    params = ("weight", "model_name_pair", "student_keys", "teacher_keys", "s_shapes", "t_shapes", "qk_dim", "name")

    @classmethod
    def check_values(cls, params: dict[str, Any], where: str) -> None:
        for key in ("model_name_pair", "student_keys", "teacher_keys"):
            if key in params:
                _two_keys(params[key], f"{where}.{key}")
        for key in ("s_shapes", "t_shapes"):
            check_shapes(params.get(key), f"{where}.{key}")
        qk_dim = params.get("qk_dim", 128)
        if not isinstance(qk_dim, int) or qk_dim <= 0:
            raise ConfigError(f"{where}.qk_dim: expected a positive int, got {qk_dim!r}")

    def __init__(self, s_shapes, t_shapes, weight: float = 1.0, model_name_pair=("Student", "Teacher"),
                 student_keys=("bilinear_key", "value"), teacher_keys=("query", "value"), qk_dim: int = 128,
                 name=None):
        nn.Layer.__init__(self)  # first: the attributes below go through Layer's __setattr__
        self.check_values({"model_name_pair": model_name_pair, "student_keys": student_keys,
                           "teacher_keys": teacher_keys, "s_shapes": s_shapes, "t_shapes": t_shapes,
                           "qk_dim": qk_dim}, "AFDLoss")
        PairLoss.__init__(self, weight, [list(model_name_pair)], None, name)
        self.student_keys, self.teacher_keys = list(student_keys), list(teacher_keys)
        self.t_shapes, self.qk_dim = [list(s) for s in t_shapes], int(qk_dim)
        self.num_student = len(s_shapes)
        self.groups, _ = shape_groups(self.t_shapes)
        self.attention = _Attention(self.qk_dim, len(self.t_shapes), self.num_student)

    def pair_outputs(self, outputs, first: str, second: str):
        return ([model_output(outputs, first, k, "AFDLoss") for k in self.student_keys],
                [model_output(outputs, second, k, "AFDLoss") for k in self.teacher_keys])

    def _check(self, bilinear_key, student_values, teacher_values) -> None:
        expected = [self.num_student, len(self.t_shapes), self.qk_dim]
        if list(bilinear_key.shape[1:]) != expected:
            raise ValueError(f"AFDLoss: the student's bilinear key is {list(bilinear_key.shape[1:])} (student maps, "
                             f"teacher maps, qk_dim); s_shapes, t_shapes and qk_dim give {expected}")
        distinct = max(self.groups) + 1
        if len(student_values) != distinct or len(teacher_values) != len(self.t_shapes):
            raise ValueError(f"AFDLoss: {len(student_values)} student and {len(teacher_values)} teacher value lists; "
                             f"t_shapes gives {distinct} distinct teacher map sizes and {len(self.t_shapes)} maps")
        for i, value in enumerate(teacher_values):
            _, h, w = self.t_shapes[i]
            if value.shape[-1] != h * w:
                raise ValueError(f"AFDLoss.t_shapes[{i}]: {self.t_shapes[i]}, but the teacher's map {i} has "
                                 f"{value.shape[-1]} positions; give the maps' sizes at this image size")

    def pair_loss(self, student, teacher, labels):
        (bilinear_key, student_values), (query, teacher_values) = student, teacher
        self._check(bilinear_key, student_values, teacher_values)
        position = paddle.matmul(self.attention.p_t, self.attention.p_s, transpose_y=True)  # [T, S]
        logit = (paddle.einsum("bstq,btq->bts", bilinear_key, query) + position) / math.sqrt(self.qk_dim)
        att = F.softmax(logit, axis=2)  # [N, T, S]: each teacher map's attention over the student's maps
        terms = []
        for t, (group, value_t) in enumerate(zip(self.groups, teacher_values)):
            distance = (student_values[group] - value_t.unsqueeze(1)).pow(2).mean(axis=2)  # [N, S]
            terms.append((distance * att[:, t]).sum(axis=1).mean())
        return paddle.add_n(terms)


LOSSES.register(AFDLoss)
