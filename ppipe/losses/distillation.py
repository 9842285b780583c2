"""PaddleClas's distillation losses, over the {model name: logits} outputs of a `DistillationModel`.

* `DistillationCELoss`: cross entropy of the first model of each pair against the softmax of the second
  (soft targets; `epsilon` smooths them).
* `DistillationDMLLoss`: SSLD's symmetric divergence (deep mutual learning, Zhang et al. 2018):
  (KL(p2 || p1) + KL(p1 || p2)) / 2 with p = softmax (or sigmoid) of the logits, batch-mean reduced.
* `DistillationGTCELoss`: cross entropy of the named models against the ground truth (unlabeled rows skipped).
* `DistillationDKDLoss`: decoupled knowledge distillation (Zhao et al. 2022, arXiv:2203.08679): target-class
  and non-target-class KL terms weighted by `alpha` and `beta`, at `temperature`. The target class is the
  label when `use_target_as_gt` (and the row is labeled), else the second model's top prediction.

Losses over teacher outputs need no labels, which is how unlabeled images train the student.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ppipe.errors import ConfigError
from ppipe.losses.classification import LOSSES, Loss, cross_entropy
from ppipe.model_outputs import LOGITS, NAMED


class _PairLoss(Loss):
    """Base for losses over pairs of named outputs; `key` picks a field when outputs are dicts themselves."""

    params = ("weight", "model_name_pairs", "key", "name")
    accepts = frozenset({NAMED})

    def __init__(self, weight: float = 1.0, model_name_pairs=None, key=None, name=None):
        super().__init__(weight)
        pairs = model_name_pairs or [["Student", "Teacher"]]
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            raise ConfigError(f"{type(self).__name__}.model_name_pairs: expected [[model, model], ...], got {pairs!r}")
        self.pairs = [tuple(p) for p in pairs]
        self.key = key

    def _out(self, outputs, name):
        if not isinstance(outputs, dict):
            raise ValueError(f"{type(self).__name__} needs a DistillationModel (named outputs)")
        if name not in outputs:
            raise ValueError(f"{type(self).__name__}: no model named {name!r}; the models are {sorted(outputs)}")
        out = outputs[name]
        return out[self.key] if self.key is not None else out

    def __call__(self, outputs, labels):
        total = None
        for a, b in self.pairs:
            value = self.pair_loss(self._out(outputs, a), self._out(outputs, b), labels)
            total = value if total is None else total + value
        return total

    def pair_loss(self, out1, out2, labels):  # pragma: no cover - abstract
        raise NotImplementedError


class DistillationCELoss(_PairLoss):
    params = _PairLoss.params + ("epsilon",)

    def __init__(self, weight=1.0, model_name_pairs=None, epsilon=None, key=None, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        self.epsilon = float(epsilon or 0.0)

    def pair_loss(self, out1, out2, labels):
        return cross_entropy(out1, F.softmax(out2, axis=-1), self.epsilon)


class DistillationDMLLoss(_PairLoss):
    params = _PairLoss.params + ("act",)

    def __init__(self, weight=1.0, model_name_pairs=None, act="softmax", key=None, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        if act not in ("softmax", "sigmoid", None):
            raise ConfigError(f"DistillationDMLLoss.act: expected softmax, sigmoid or null, got {act!r}")
        self.act = act

    def _probs(self, x):
        if self.act == "softmax":
            return F.softmax(x, axis=-1)
        if self.act == "sigmoid":
            return F.sigmoid(x)
        return x

    def pair_loss(self, out1, out2, labels):
        p1, p2 = self._probs(out1), self._probs(out2)
        eps = 1e-12  # log(0) guard: a saturated softmax must not turn the loss into inf
        log1, log2 = paddle.log(p1 + eps), paddle.log(p2 + eps)
        n = out1.shape[0]
        kl_21 = (p2 * (log2 - log1)).sum() / n  # KL(p2 || p1)
        kl_12 = (p1 * (log1 - log2)).sum() / n  # KL(p1 || p2)
        return (kl_21 + kl_12) / 2.0


class DistillationGTCELoss(Loss):
    """Also takes a single model's logits (PaddleClas's recipes use it in `Loss.Eval`, which scores the student)."""

    params = ("weight", "model_names", "epsilon", "key", "name")
    accepts = frozenset({NAMED, LOGITS})

    def __init__(self, weight=1.0, model_names=None, epsilon=None, key=None, name=None):
        super().__init__(weight)
        self.model_names = list(model_names or ["Student"])
        self.epsilon = float(epsilon or 0.0)
        self.key = key

    def __call__(self, outputs, labels):
        if not isinstance(outputs, dict):
            return cross_entropy(outputs, labels, self.epsilon)
        total = None
        for name in self.model_names:
            if name not in outputs:
                raise ValueError(f"DistillationGTCELoss: no model named {name!r}; the models are {sorted(outputs)}")
            out = outputs[name] if self.key is None else outputs[name][self.key]
            value = cross_entropy(out, labels, self.epsilon)
            total = value if total is None else total + value
        return total


class DistillationDKDLoss(_PairLoss):
    params = _PairLoss.params + ("temperature", "alpha", "beta", "use_target_as_gt")

    def __init__(self, weight=1.0, model_name_pairs=None, key=None, temperature=1.0, alpha=1.0, beta=1.0,
                 use_target_as_gt=False, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        self.t, self.alpha, self.beta = float(temperature), float(alpha), float(beta)
        self.use_target_as_gt = bool(use_target_as_gt)

    def pair_loss(self, student, teacher, labels):
        teacher_top = teacher.argmax(axis=-1)
        if self.use_target_as_gt and labels is not None and labels.ndim == 1:
            ids = labels.astype("int64")
            target = paddle.where(ids >= 0, ids, teacher_top)
        else:
            target = teacher_top
        gt = F.one_hot(target, student.shape[-1]).astype(student.dtype)
        t = self.t
        p_s, p_t = F.softmax(student / t, axis=-1), F.softmax(teacher / t, axis=-1)
        # target-class KD: binary (target, rest) distributions
        b_s = paddle.stack([(p_s * gt).sum(-1), (p_s * (1 - gt)).sum(-1)], axis=-1)
        b_t = paddle.stack([(p_t * gt).sum(-1), (p_t * (1 - gt)).sum(-1)], axis=-1)
        n = student.shape[0]
        eps = 1e-12
        tckd = (b_t * (paddle.log(b_t + eps) - paddle.log(b_s + eps))).sum() * t * t / n
        # non-target-class KD: distributions over the other classes only
        q_t = F.softmax(teacher / t - 1000.0 * gt, axis=-1)
        log_q_s = F.log_softmax(student / t - 1000.0 * gt, axis=-1)
        nckd = (q_t * (paddle.log(q_t + eps) - log_q_s)).sum() * t * t / n
        return self.alpha * tckd + self.beta * nckd


for _cls in (DistillationCELoss, DistillationDMLLoss, DistillationGTCELoss, DistillationDKDLoss):
    LOSSES.register(_cls)
