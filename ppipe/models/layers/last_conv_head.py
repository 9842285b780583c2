"""The classifier head of MobileNetV3 and PP-LCNet, and the model contract that goes with it.

pool -> 1x1 `last_conv` (no bias, `class_expand` channels) -> act -> dropout -> flatten -> `fc`. The head's keys
(`last_conv.weight`, `fc.weight`, `fc.bias`) sit at the top of PaddleClas's state dicts, so the head is a base
class providing the contract rather than a sub-layer, which would add a prefix.
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers.activations import create_act


class LastConvHead(nn.Layer):
    """Base of a network ending in PaddleClas's last-conv head; subclasses define `forward_features` only.

    Contract: `forward_features(x)` -> pre-pooling map with `num_features` channels; `forward_head(x, pre_logits)`
    -> logits, or with `pre_logits=True` the `head_hidden_size`-wide vector the classifier sees;
    `reset_classifier(num_classes)` (0 removes it); `forward(x) = forward_head(forward_features(x))`.
    """

    classifier_name = "fc"

    def _init_head(self, in_chs: int, num_classes: int, *, class_expand: int = 1280, act: str = "hardswish",
                   dropout_prob: float | None = 0.2, use_last_conv: bool = True) -> None:
        self.num_features = in_chs
        self.head_hidden_size = class_expand if use_last_conv else in_chs
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        if use_last_conv:
            self.last_conv = nn.Conv2D(in_chs, class_expand, 1, bias_attr=False)
            self.head_act = create_act(act)
            # "downscale_in_infer" scales by (1 - p) at inference, as PaddleClas does: its weights expect it.
            self.dropout = (nn.Dropout(p=dropout_prob, mode="downscale_in_infer") if dropout_prob is not None
                            else nn.Identity())
        else:
            self.last_conv, self.head_act, self.dropout = nn.Identity(), nn.Identity(), nn.Identity()
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        raise NotImplementedError

    def forward_head(self, x, pre_logits: bool = False):
        x = self.flatten(self.dropout(self.head_act(self.last_conv(self.avg_pool(x)))))
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Layer:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with `num_classes` outputs (0: identity)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        return self.forward_head(self.forward_features(x))
