"""Classifier heads and the model contract that goes with them.

`new_classifier` is the one way a family builds (and, in `reset_classifier`, rebuilds) its classifier.
`PooledClassifierNet` is the base of the convolutional networks whose head is global pool -> [1x1 `last_conv`
(no bias, `class_expand` channels) -> act -> dropout] -> flatten -> `fc`, the bracket being PaddleClas's last-conv
head of MobileNetV3 and PP-LCNet. The head's keys (`last_conv.weight`, `fc.weight`, `fc.bias`) sit at the top of
PaddleClas's state dicts, so the head is a base class providing the contract rather than a sub-layer, which would
add a prefix.
"""

from __future__ import annotations

import math
from typing import Callable

import paddle.nn as nn
from paddle import ParamAttr
from paddle.nn.initializer import Uniform

from ppipe.models.layers.activations import create_act
from ppipe.models.layers.checkpoint_keys import Rule, rename_keys

ClassifierLayer = Callable[[int, int], nn.Layer]


def uniform_linear(in_features: int, out_features: int) -> nn.Linear:
    """A Linear initialised U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the init PaddleClas trains most CNN classifiers
    (and the fully connected SE gates) with."""
    bound = 1.0 / math.sqrt(in_features)
    return nn.Linear(in_features, out_features, weight_attr=ParamAttr(initializer=Uniform(-bound, bound)))


def new_classifier(in_features: int, num_classes: int, layer: ClassifierLayer = nn.Linear) -> nn.Layer:
    """A freshly initialised `layer(in_features, num_classes)`, or the identity when `num_classes` is 0 (the model
    then returns the features the classifier would see)."""
    return layer(in_features, num_classes) if num_classes > 0 else nn.Identity()


class ClassifierHeads:
    """Mixin: the classifier half of the model contract, for a model whose class-count-wide heads are the sub-layers
    named by `classifier_name` (one name, or a tuple for models with several heads: DeiT's `head_dist`, LeViT's
    distillation head, GoogLeNet's auxiliary heads, whose dotted names `aux1.out` are rebuilt as their top-level
    `aux1`).

    `new_head(name, num_classes)` builds one head, by default `classifier_layer(head_hidden_size, num_classes)` (the
    identity for 0 classes); `remap_checkpoint` renames PaddleClas's keys by `paddleclas_key_rules`; `forward` is
    `forward_head(forward_features(x))`.
    """

    classifier_name: str | tuple[str, ...] = "fc"
    classifier_layer: ClassifierLayer = nn.Linear
    paddleclas_key_rules: tuple[Rule, ...] = ()

    @property
    def head_names(self) -> tuple[str, ...]:
        """The sub-layers `reset_classifier` rebuilds, in order."""
        names = (self.classifier_name,) if isinstance(self.classifier_name, str) else self.classifier_name
        return tuple(dict.fromkeys(name.split(".")[0] for name in names))

    def new_head(self, name: str, num_classes: int) -> nn.Layer | None:
        """A freshly initialised head `name` with `num_classes` outputs."""
        return new_classifier(self.head_hidden_size, num_classes, self.classifier_layer)

    def get_classifier(self) -> nn.Layer:
        return getattr(self, self.head_names[0])

    def reset_classifier(self, num_classes: int) -> None:
        """Replace every head by a freshly initialised one with `num_classes` outputs (0: identity)."""
        self.num_classes = num_classes
        for name in self.head_names:
            setattr(self, name, self.new_head(name, num_classes))

    def remap_checkpoint(self, state: dict) -> dict:
        """PaddleClas's keys -> ours, by `paddleclas_key_rules`; keys already ours pass unchanged."""
        return rename_keys(state, self.paddleclas_key_rules)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


class PooledClassifierNet(ClassifierHeads, nn.Layer):
    """Base of a network classifying its globally pooled feature map; subclasses define `forward_features` only.

    Contract: `forward_features(x)` -> pre-pooling map with `num_features` channels; `forward_head(x, pre_logits)`
    -> logits, or with `pre_logits=True` the `head_hidden_size`-wide vector the classifier sees;
    `reset_classifier(num_classes)` (0 removes it); `forward(x) = forward_head(forward_features(x))`.
    Subclasses set `classifier_layer` (how PaddleClas initialises their `fc`) and `paddleclas_key_rules` (how
    PaddleClas's keys rename to theirs, applied by `remap_checkpoint`).
    """

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
