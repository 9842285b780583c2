"""SqueezeNet (Iandola et al., 2016, arXiv:1602.07360). Weight-compatible with PaddleClas's SqueezeNet.

Fire modules (1x1 squeeze, then parallel 1x1 and 3x3 expands, concatenated) and a 1x1-conv classifier; versions
1.0 and 1.1 differ in the stem and in where the max-pools sit. PaddleClas names the layers `_conv`, `_conv1`..
`_conv9`; `remap_checkpoint` maps them onto the paper's names (`stem`, `fire2`..`fire9`, `conv10`).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.models.layers import ClassifierHeads
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class Fire(nn.Layer):
    """1x1 squeeze -> ReLU -> concat(1x1 expand -> ReLU, 3x3 expand -> ReLU)."""

    def __init__(self, in_chs: int, squeeze_chs: int, expand_chs: int):
        super().__init__()
        self.squeeze = nn.Conv2D(in_chs, squeeze_chs, 1)
        self.expand1x1 = nn.Conv2D(squeeze_chs, expand_chs, 1)
        self.expand3x3 = nn.Conv2D(squeeze_chs, expand_chs, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return paddle.concat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], axis=1)


# PaddleClas's `_conv.weight`, `_conv3._conv_path2._conv.bias`, `_conv9.weight` -> our `stem.weight`,
# `fire4.expand3x3.bias`, `conv10.weight`
PADDLECLAS_KEYS = ((r"^_conv\.(weight|bias)$", r"stem.\1"), (r"^_conv9\.", "conv10."),
                   (r"^_conv(\d)\.", lambda m: f"fire{int(m[1]) + 1}."), (r"\._conv\._conv\.", ".squeeze."),
                   (r"\._conv_path1\._conv\.", ".expand1x1."), (r"\._conv_path2\._conv\.", ".expand3x3."))


def _conv_classifier(in_chs: int, num_classes: int) -> nn.Conv2D:
    return nn.Conv2D(in_chs, num_classes, 1)


class SqueezeNet(ClassifierHeads, nn.Layer):
    """stem conv -> max-pool -> fire2..fire9 with max-pools after `pool_after` -> features [N, 512, h, w] ->
    dropout -> 1x1 `conv10` classifier -> ReLU -> global average pool.

    Without a classifier (`num_classes=0`) the head returns the pooled features.
    """

    classifier_name = "conv10"
    classifier_layer = staticmethod(_conv_classifier)
    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, stem: tuple[int, int, int], pool_after: tuple[int, ...], num_classes: int = 1000,
                 dropout_prob: float = 0.5):
        super().__init__()
        stem_chs, stem_kernel, stem_padding = stem
        self.stem = nn.Conv2D(3, stem_chs, stem_kernel, stride=2, padding=stem_padding)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2)
        in_chs = stem_chs
        self.fire_names, self.pool_after_fire = [], []
        for idx, (squeeze_chs, expand_chs) in enumerate(FIRES, start=2):
            self.fire_names.append(f"fire{idx}")
            self.pool_after_fire.append(idx in pool_after)
            setattr(self, self.fire_names[-1], Fire(in_chs, squeeze_chs, expand_chs))
            in_chs = 2 * expand_chs
        self.num_features = self.head_hidden_size = in_chs
        # "downscale_in_infer" scales by (1 - p) at inference, as PaddleClas does: its weights expect it.
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        x = self.pool(F.relu(self.stem(x)))
        for name, pool in zip(self.fire_names, self.pool_after_fire):
            x = getattr(self, name)(x)
            if pool:
                x = self.pool(x)
        return x

    def forward_head(self, x, pre_logits: bool = False):
        if not pre_logits and self.num_classes > 0:
            x = F.relu(self.conv10(self.dropout(x)))
        return self.flatten(self.avg_pool(x))



# (squeeze, expand) channels of fire2..fire9; each fire outputs 2 x expand
FIRES = ((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256))
_FAMILY = "SqueezeNet"


# 1.0's unpadded 7x7 stem and later pools need 35 px for the last max-pool's 3x3 window.
@register_model(spec(family=_FAMILY, params_m=1.25, flops_g=0.78, top1=0.596, input_size=224, min_input_size=35))
def SqueezeNet1_0(**kw):
    return SqueezeNet(stem=(96, 7, 0), pool_after=(4, 8), **kw)


@register_model(spec(family=_FAMILY, params_m=1.24, flops_g=0.35, top1=0.601, input_size=224))
def SqueezeNet1_1(**kw):
    return SqueezeNet(stem=(64, 3, 1), pool_after=(3, 5), **kw)
