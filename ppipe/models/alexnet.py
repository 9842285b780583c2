"""AlexNet (Krizhevsky et al., 2012, NeurIPS). Weight-compatible with PaddleClas's AlexNet.

Five convolutions (no BatchNorm) and three fully connected layers; PaddleClas's single-tower version with
64-192-384-256-256 channels. PaddleClas names its layers `_conv1`..`_fc8` with an extra `_conv` level inside
the conv-pool units; `remap_checkpoint` maps those keys onto the plain names used here.
"""

from __future__ import annotations

import math

import paddle.nn as nn
from paddle import ParamAttr
from paddle.nn.initializer import Uniform

from ppipe.models.layers import ClassifierHeads
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

_DROPOUT = 0.5


def _fan_in_uniform(fan_in: int) -> dict:
    """PaddleClas's AlexNet init: weight and bias uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    return dict(weight_attr=ParamAttr(initializer=Uniform(-bound, bound)),
                bias_attr=ParamAttr(initializer=Uniform(-bound, bound)))


def _fc_layer(in_features: int, out_features: int) -> nn.Linear:
    # PaddleClas initialises all three fully connected layers with the bound of fc6's fan-in.
    return nn.Linear(in_features, out_features, **_fan_in_uniform(256 * 6 * 6))


class AlexNet(ClassifierHeads, nn.Layer):
    """conv1-conv5 (ReLU, max-pool after 1, 2 and 5) -> features [N, 256, 6, 6] -> fc6, fc7 -> `fc8`.

    fc6 flattens the 6x6 map of a 224 px input, so the network runs at 224 px only, as PaddleClas's does.
    """

    classifier_name = "fc8"
    classifier_layer = staticmethod(_fc_layer)
    # PaddleClas's `_conv1._conv.weight`, `_fc8.bias` -> `conv1.weight`, `fc8.bias`
    paddleclas_key_rules = ((r"^_(\w+?)\.(_conv\.)?", r"\1."),)

    def __init__(self, num_classes: int = 1000, dropout_prob: float = _DROPOUT):
        super().__init__()
        self.conv1 = nn.Conv2D(3, 64, 11, stride=4, padding=2, **_fan_in_uniform(3 * 11 * 11))
        self.conv2 = nn.Conv2D(64, 192, 5, padding=2, **_fan_in_uniform(64 * 5 * 5))
        self.conv3 = nn.Conv2D(192, 384, 3, padding=1, **_fan_in_uniform(192 * 3 * 3))
        self.conv4 = nn.Conv2D(384, 256, 3, padding=1, **_fan_in_uniform(384 * 3 * 3))
        self.conv5 = nn.Conv2D(256, 256, 3, padding=1, **_fan_in_uniform(256 * 3 * 3))
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2)
        self.relu = nn.ReLU()
        self.num_features = 256
        self.head_hidden_size = 4096
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        # "downscale_in_infer" scales by (1 - p) at inference, as PaddleClas does: its weights expect it.
        self.drop6 = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")
        self.drop7 = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")
        self.fc6 = _fc_layer(256 * 6 * 6, 4096)
        self.fc7 = _fc_layer(4096, 4096)
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.relu(self.conv4(self.relu(self.conv3(x))))
        return self.pool(self.relu(self.conv5(x)))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.flatten(x)
        x = self.relu(self.fc6(self.drop6(x)))
        x = self.relu(self.fc7(self.drop7(x)))
        return x if pre_logits else self.fc8(x)



@register_model(spec(family="AlexNet", params_m=61.1, flops_g=0.71, top1=0.567, input_size=224, fixed_input=True,
                     name="AlexNet"))
def alexnet(**kw):
    return AlexNet(**kw)
