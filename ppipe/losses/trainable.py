"""Losses with parameters of their own, and the one Layer a run trains when its loss has them.

PaddleClas's MGD, PEFD and AFD losses carry layers (a generator, projectors, attention embeddings) that its
optimizer trains together with the model (ppcls/engine/engine.py builds it over `[model, train_loss_func]`,
wraps the loss in DataParallel too, and saves the loss's state in the model's checkpoint file). Here those layers
become sublayers of `ModelWithLossLayers`, so that everything the loop does to "the model" (optimizer, gradient
clipping, DataParallel's gradient all-reduce, checkpoint save and resume) reaches them without knowing about
losses. What is evaluated, averaged (EMA), exported and published stays the model's own: `infer_model`.

A run whose loss has no parameters trains its model itself, as before (`trained_layer`).
"""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn as nn

# Where a loss term's state sits in a checkpoint: PaddleClas's key for it (its CombinedLoss keeps the terms in
# `loss_func`, a LayerList), so a ppipe checkpoint of an MGD run has the keys of PaddleClas's.
LOSS_PREFIX = "loss_func."


def build_loss_layers(build):
    """`build()` with the parameters it creates named `loss_func.*`: the models' parameters are named `conv2d_0.w_0`
    and so on from zero (`create_model`), and the optimizer keeps its state per parameter name, so a loss layer
    named like a model's parameter would share that parameter's momentum."""
    with paddle.utils.unique_name.guard(LOSS_PREFIX):
        return build()


class ModelWithLossLayers(nn.Layer):
    """The model and the trainable layers of its loss terms (`{term index: layer}`) as one Layer.

    `forward` is the model's. Its state dict is the model's own keys, unchanged, plus `loss_func.<index>.*` for the
    loss layers, as PaddleClas saves them: the checkpoint's model file stays the model's file with the loss's
    layers beside it, and a resume restores both. `infer_model` is the model's infer model (a DistillationModel's
    student) or the model itself, never the loss.
    """

    def __init__(self, model: nn.Layer, loss_layers: dict[str, nn.Layer]):
        super().__init__()
        self.model = model
        self.loss_func = nn.LayerDict(loss_layers)

    @property
    def infer_model(self) -> nn.Layer:
        return getattr(self.model, "infer_model", self.model)

    def forward(self, x):
        return self.model(x)

    def _state_dict_impl(self, destination=None, include_sublayers: bool = True, structured_name_prefix: str = "",
                         include_non_persistable_buffer: bool = False, use_hook: bool = True,
                         keep_vars: bool = True) -> dict[str, Any]:
        # Paddle's state_dict and set_state_dict both go through this: the model's keys without a "model." prefix
        state = self.model._state_dict_impl(destination, include_sublayers, structured_name_prefix,
                                            include_non_persistable_buffer, use_hook, keep_vars)
        return self.loss_func._state_dict_impl(state, include_sublayers, structured_name_prefix + LOSS_PREFIX,
                                               include_non_persistable_buffer, use_hook, keep_vars)


def trained_layer(model: nn.Layer, criterion) -> nn.Layer:
    """What a run trains: `model` itself, or with `criterion`'s (a `CombinedLoss`) trainable layers beside it."""
    layers = criterion.trainable_layers()
    return ModelWithLossLayers(model, layers) if layers else model
