"""PaddleClas's distillation losses over the named outputs of a `DistillationModel`, and what they share.

A `DistillationModel` returns `{model key: output}`; a model given `return_patterns` outputs a mapping itself,
`{"logits": ..., pattern: feature map, ...}` (`ppipe.models.feature_taps`), whose field a loss picks with `key`
(its logits when `key` is unset, as PaddleClas's CELoss does). The SSLD losses live here:

* `DistillationCELoss`: cross entropy of the first model of each pair against the softmax of the second
  (soft targets; `epsilon` smooths them).
* `DistillationDMLLoss`: SSLD's symmetric divergence (deep mutual learning, Zhang et al. 2018):
  (KL(p2 || p1) + KL(p1 || p2)) / 2 with p = softmax (or sigmoid) of the logits, batch-mean reduced.
* `DistillationGTCELoss`: cross entropy of the named models against the ground truth (unlabeled rows skipped).

The losses of later papers over logits are in `ppipe.losses.logit_distillation`, those over feature maps in
`ppipe.losses.feature_distillation`. Losses over teacher outputs need no labels, which is how unlabeled images
train the student.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ppipe.errors import ConfigError
from ppipe.losses.classification import LOSSES, Loss, cross_entropy
from ppipe.model_outputs import LOGITS, NAMED


def model_output(outputs, name: str, key: str | None, who: str):
    """The output of model `name` among a DistillationModel's `outputs`, and its field `key` where the model returns
    several (`return_patterns`); with no `key`, its logits. `who` names the loss in errors."""
    if not isinstance(outputs, dict):
        raise ValueError(f"{who} needs a DistillationModel (named outputs)")
    if name not in outputs:
        raise ValueError(f"{who}: no model named {name!r}; the models are {sorted(outputs)}")
    out = outputs[name]
    field = key or "logits"
    if isinstance(out, dict):
        if field not in out:
            raise ValueError(f"{who}: the output of {name!r} has no field {field!r}; it has {sorted(out)} (the "
                             f"model's return_patterns name its fields)")
        return out[field]
    if field != "logits":
        raise ValueError(f"{who}: key {field!r}, but model {name!r} returns its logits alone; give it "
                         f"return_patterns: [{field!r}] to return that sublayer's output")
    return out


def target_classes(labels, teacher_logits, use_teacher: bool = False):
    """The class each row is distilled towards, as PaddleClas's DKD/SKD/WSL losses choose it: the label, or the
    teacher's top class when `use_teacher` (PaddleClas's `use_target_as_gt`) or there are no labels.

    ppipe also trains on unlabeled rows (label -1), which take the teacher's top class; soft targets (Mixup/Cutmix)
    take their largest share.
    """
    top = teacher_logits.argmax(axis=-1)
    if use_teacher or labels is None:
        return top
    if labels.ndim == teacher_logits.ndim and labels.shape[-1] == teacher_logits.shape[-1]:
        return labels.argmax(axis=-1)
    ids = labels.reshape([-1]).astype("int64")
    return paddle.where(ids >= 0, ids, top)


class PairLoss(Loss):
    """Base for losses over pairs of named outputs (`model_name_pairs`, first model distilled towards the second);
    `key` picks a field when outputs are mappings themselves. The pairs' losses add up."""

    params = ("weight", "model_name_pairs", "key", "name")
    accepts = frozenset({NAMED})

    def __init__(self, weight: float = 1.0, model_name_pairs=None, key=None, name=None):
        super().__init__(weight)
        pairs = model_name_pairs or [["Student", "Teacher"]]
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            raise ConfigError(f"{type(self).__name__}.model_name_pairs: expected [[model, model], ...], got {pairs!r}")
        self.pairs = [tuple(p) for p in pairs]
        self.key = key

    def __call__(self, outputs, labels):
        total = None
        for a, b in self.pairs:
            value = self.pair_loss(*self.pair_outputs(outputs, a, b), labels)
            total = value if total is None else total + value
        return total

    def pair_outputs(self, outputs, first: str, second: str):
        """The outputs of the pair's two models that the loss compares: field `key` of each."""
        who = type(self).__name__
        return model_output(outputs, first, self.key, who), model_output(outputs, second, self.key, who)

    def pair_loss(self, out1, out2, labels):  # pragma: no cover - abstract
        raise NotImplementedError


class DistillationCELoss(PairLoss):
    params = PairLoss.params + ("epsilon",)

    def __init__(self, weight=1.0, model_name_pairs=None, epsilon=None, key=None, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        self.epsilon = float(epsilon or 0.0)

    def pair_loss(self, out1, out2, labels):
        return cross_entropy(out1, F.softmax(out2, axis=-1), self.epsilon)


class DistillationDMLLoss(PairLoss):
    params = PairLoss.params + ("act",)

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
            value = cross_entropy(model_output(outputs, name, self.key, "DistillationGTCELoss"), labels, self.epsilon)
            total = value if total is None else total + value
        return total


for _cls in (DistillationCELoss, DistillationDMLLoss, DistillationGTCELoss):
    LOSSES.register(_cls)
