"""What PaddleClas's hierarchical transformers (Swin, CSWin, PVTv2, Twins) share at the top: average the
final tokens, then one Linear `head`, initialised as PaddleClas initialises transformers."""

from __future__ import annotations

import paddle.nn as nn

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


class TokenMeanHead:
    """Mixin: `forward_head` averages the tokens of `forward_features` ([N, tokens, C]) and applies `head`."""

    classifier_name = "head"

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(axis=1)
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Layer:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with `num_classes` outputs (0: identity)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        init_transformer_weights(self.head)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))
