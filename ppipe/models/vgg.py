"""VGG (Simonyan & Zisserman, 2014, arXiv:1409.1556). Weight-compatible with PaddleClas's VGG.

Five stages of 3x3 convolutions + ReLU, each closed by a 2x2 max-pool, then three fully connected layers.
PaddleClas's convolutions have no bias and there is no BatchNorm.
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers import ClassifierHeads
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class ConvBlock(nn.Layer):
    """`depth` 3x3 convolutions (`conv1`..`convN`, no bias), each followed by ReLU, then a 2x2 max-pool."""

    def __init__(self, in_chs: int, out_chs: int, depth: int):
        super().__init__()
        self.conv_names = [f"conv{i + 1}" for i in range(depth)]
        for i, name in enumerate(self.conv_names):
            setattr(self, name, nn.Conv2D(in_chs if i == 0 else out_chs, out_chs, 3, padding=1, bias_attr=False))
        self.relu = nn.ReLU()
        self.max_pool = nn.MaxPool2D(kernel_size=2, stride=2)

    def forward(self, x):
        for name in self.conv_names:
            x = self.relu(getattr(self, name)(x))
        return self.max_pool(x)


class VGG(ClassifierHeads, nn.Layer):
    """conv_block_1..conv_block_5 (64-128-256-512-512 channels) -> features [N, 512, 7, 7] -> fc1, fc2 (ReLU,
    dropout) -> `fc3`.

    fc1 flattens the 7x7 map of a 224 px input, so the network runs at 224 px only, as PaddleClas's does.
    """

    classifier_name = "fc3"

    def __init__(self, depths: tuple[int, ...], num_classes: int = 1000, dropout_prob: float = 0.5):
        super().__init__()
        self.block_names = []
        in_chs = 3
        for idx, (out_chs, depth) in enumerate(zip(STAGE_CHANNELS, depths), start=1):
            self.block_names.append(f"conv_block_{idx}")
            setattr(self, self.block_names[-1], ConvBlock(in_chs, out_chs, depth))
            in_chs = out_chs
        self.num_features, self.head_hidden_size = in_chs, 4096
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc1 = nn.Linear(in_chs * 7 * 7, 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.relu = nn.ReLU()
        # "downscale_in_infer" scales by (1 - p) at inference, as PaddleClas does: its weights expect it.
        self.drop = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        for name in self.block_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x, pre_logits: bool = False):
        x = self.flatten(x)
        x = self.drop(self.relu(self.fc1(x)))
        x = self.drop(self.relu(self.fc2(x)))
        return x if pre_logits else self.fc3(x)



STAGE_CHANNELS = (64, 128, 256, 512, 512)
_FAMILY = "VGG"


@register_model(spec(family=_FAMILY, params_m=132.86, flops_g=7.61, top1=0.693, input_size=224,
                     fixed_input=True))
def VGG11(**kw):
    return VGG(depths=(1, 1, 2, 2, 2), **kw)


@register_model(spec(family=_FAMILY, params_m=133.05, flops_g=11.31, top1=0.7, input_size=224,
                     fixed_input=True))
def VGG13(**kw):
    return VGG(depths=(2, 2, 2, 2, 2), **kw)


@register_model(spec(family=_FAMILY, params_m=138.35, flops_g=15.47, top1=0.72, input_size=224,
                     fixed_input=True))
def VGG16(**kw):
    return VGG(depths=(2, 2, 3, 3, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=143.66, flops_g=19.63, top1=0.726, input_size=224,
                     fixed_input=True))
def VGG19(**kw):
    return VGG(depths=(2, 2, 4, 4, 4), **kw)
