"""What PaddleClas's hierarchical transformers (Swin, CSWin, PVTv2, Twins) share at the top: average the
final tokens, then one Linear `head`, initialised as PaddleClas initialises transformers."""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers.classifier import ClassifierHeads

trunc_normal_ = nn.initializer.TruncatedNormal(std=0.02)
zeros_ = nn.initializer.Constant(0.0)
ones_ = nn.initializer.Constant(1.0)


def init_transformer_weights(layer: nn.Layer) -> None:
    """PaddleClas's transformer init (`model.apply(...)`): truncated-normal(0.02) Linear weights, zero biases,
    unit LayerNorms; convolutions keep Paddle's default."""
    if isinstance(layer, nn.Linear):
        trunc_normal_(layer.weight)
        if layer.bias is not None:
            zeros_(layer.bias)
    elif isinstance(layer, nn.LayerNorm):
        ones_(layer.weight)
        zeros_(layer.bias)


def transformer_linear(in_features: int, out_features: int) -> nn.Linear:
    """A Linear initialised as PaddleClas initialises its transformers' classifiers (`init_transformer_weights`)."""
    layer = nn.Linear(in_features, out_features)
    init_transformer_weights(layer)
    return layer


class TokenMeanHead(ClassifierHeads):
    """Mixin: `forward_head` averages the tokens of `forward_features` ([N, tokens, C]) and applies `head`."""

    classifier_name = "head"
    classifier_layer = staticmethod(transformer_linear)

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(axis=1)
        return x if pre_logits else self.head(x)
