"""RedNet (Li et al., 2021, arXiv:2103.06255). Weight-compatible with PaddleClas's RedNet.

A ResNet whose bottleneck 3x3 convolutions are 7x7 involutions, with a stem that has a 3x3 involution between two
3x3 convs. Depths 26-152; parameter names follow paddle.vision's ResNet (`layer1.0.conv1.weight`, `downsample.0`),
which PaddleClas's RedNet extends.
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers import ClassifierHeads, ConvBNAct
from ppipe.models.layers.involution import Involution
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

STEM_CHS = 64
STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
INVOLUTION_KERNEL = 7


class InvolutionBottleneck(nn.Layer):
    """1x1 conv-BN-ReLU -> 7x7 involution (stride)-BN-ReLU -> 1x1 conv-BN (x4) + shortcut, ReLU."""

    def __init__(self, in_chs: int, width: int, stride: int = 1):
        super().__init__()
        out_chs = width * EXPANSION
        self.conv1 = nn.Conv2D(in_chs, width, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(width)
        self.conv2 = Involution(width, INVOLUTION_KERNEL, stride)
        self.bn2 = nn.BatchNorm2D(width)
        self.conv3 = nn.Conv2D(width, out_chs, 1, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(out_chs)
        self.relu = nn.ReLU()
        self.downsample = (nn.Sequential(nn.Conv2D(in_chs, out_chs, 1, stride=stride, bias_attr=False),
                                         nn.BatchNorm2D(out_chs))
                           if stride != 1 or in_chs != out_chs else nn.Identity())

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


class RedNet(ClassifierHeads, nn.Layer):
    """Stem (stride 2) -> max pool -> four stages of involution bottlenecks (`depths` blocks; stride 2 from the
    second stage on) (features) -> pool -> `fc`."""

    def __init__(self, depths, num_classes: int = 1000):
        super().__init__()
        half = STEM_CHS // 2
        self.stem = nn.Sequential(ConvBNAct(3, half, 3, stride=2, act="relu"), Involution(half, 3, 1),
                                  nn.BatchNorm2D(half), nn.ReLU(), ConvBNAct(half, STEM_CHS, 3, act="relu"))
        self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        in_chs = STEM_CHS
        for idx, (depth, width) in enumerate(zip(depths, STAGE_WIDTHS)):
            blocks = []
            for i in range(depth):
                blocks.append(InvolutionBottleneck(in_chs, width, stride=2 if i == 0 and idx > 0 else 1))
                in_chs = width * EXPANSION
            setattr(self, f"layer{idx + 1}", nn.Sequential(*blocks))
        self.num_features = self.head_hidden_size = in_chs
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        x = self.maxpool(self.stem(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.avgpool(x).flatten(1)
        return x if pre_logits else self.fc(x)



def _create(depths, **kw) -> RedNet:
    return RedNet(depths, **kw)


_FAMILY = "RedNet"


@register_model(spec(family=_FAMILY, params_m=9.26, flops_g=1.69, top1=0.7595))
def RedNet26(**kw):
    return _create((1, 2, 4, 1), **kw)


@register_model(spec(family=_FAMILY, params_m=12.43, flops_g=2.14, top1=0.7747))
def RedNet38(**kw):
    return _create((2, 3, 5, 2), **kw)


@register_model(spec(family=_FAMILY, params_m=15.6, flops_g=2.61, top1=0.7833))
def RedNet50(**kw):
    return _create((3, 4, 6, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=25.76, flops_g=4.59, top1=0.7894))
def RedNet101(**kw):
    return _create((3, 4, 23, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=34.14, flops_g=6.57, top1=0.7917))
def RedNet152(**kw):
    return _create((3, 8, 36, 3), **kw)
