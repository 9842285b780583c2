"""Distillation losses over intermediate feature maps: a model given `return_patterns` (`ppipe.models.feature_taps`)
returns `{"logits": ..., pattern: feature map}`, and the loss's `key` names the pattern both models of a pair
return (PaddleClas's ppcls/loss/distanceloss.py and its `DistillationDistanceLoss`; UDML's recipe distils
`blocks5` this way).
"""

from __future__ import annotations

import paddle.nn.functional as F

from ppipe.errors import ConfigError
from ppipe.losses.classification import LOSSES
from ppipe.losses.distillation import PairLoss

_DISTANCES = {"l1": F.l1_loss, "l2": F.mse_loss, "smooth_l1": F.smooth_l1_loss}
_ACTIVATIONS = {None: lambda x: x, "sigmoid": F.sigmoid, "softmax": lambda x: F.softmax(x, axis=-1)}


class DistillationDistanceLoss(PairLoss):
    """The `mode` distance (l1, l2: mean squared error, smooth_l1 with `delta`) between the pair's outputs after
    `act` (none, sigmoid or softmax), reduced by `reduction` (mean or sum)."""

    params = PairLoss.params + ("mode", "act", "reduction", "delta")

    def __init__(self, weight=1.0, model_name_pairs=None, key=None, mode="l2", act=None, reduction="mean",
                 delta=1.0, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        if mode not in _DISTANCES:
            raise ConfigError(f"DistillationDistanceLoss.mode: expected one of {', '.join(_DISTANCES)}, got {mode!r}")
        if act not in _ACTIVATIONS:
            raise ConfigError(f"DistillationDistanceLoss.act: expected sigmoid, softmax or null, got {act!r}")
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"DistillationDistanceLoss.reduction: expected mean or sum, got {reduction!r}")
        if delta != 1.0 and mode != "smooth_l1":
            raise ConfigError(f"DistillationDistanceLoss.delta: only mode smooth_l1 takes it, got mode {mode!r}")
        self.distance, self.act = _DISTANCES[mode], _ACTIVATIONS[act]
        self.options = {"reduction": reduction, **({"delta": float(delta)} if mode == "smooth_l1" else {})}

    def pair_loss(self, out1, out2, labels):
        return self.distance(self.act(out1), self.act(out2), **self.options)


LOSSES.register(DistillationDistanceLoss)
