"""GoogLeNet / Inception-v1 (Szegedy et al., 2014, arXiv:1409.4842). Weight-compatible with PaddleClas's GoogLeNet.

As in PaddleClas: no BatchNorm, and the convolutions are linear except that each inception module applies one
ReLU to its concatenated output. Two auxiliary classifiers read inception 4a and 4d. PaddleClas's network returns
`[logits, aux1, aux2]` in every mode, and its training loss (GoogLeNetLoss) weighs all three while its inference
and export take the first; here `forward` returns the three in training mode and the main logits in eval mode, and
the contract methods (`forward_features`, `forward_head`) are the main head's. The auxiliary heads read 13x13
maps, so the network runs at 224 px.

PaddleClas's keys (`_conv._conv.weight`, `_ince4a._conv3r._conv.weight`, `_fc_out.bias`, `_conv_o1._conv.weight`,
`_fc_o2.weight`, `_out1.bias`) are mapped by `remap_checkpoint` onto `conv1.weight`, `ince4a.conv3_reduce.weight`,
`fc.bias`, `aux1.conv.weight`, `aux2.fc.weight`, `aux1.out.bias`.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Uniform

from ppipe.models.layers import PooledClassifierNet, new_classifier
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


def _conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> nn.Conv2D:
    return nn.Conv2D(in_chs, out_chs, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias_attr=False)


def _uniform_linear(in_features: int, out_features: int, fan_in: int) -> nn.Linear:
    """PaddleClas's init of GoogLeNet's linear layers: weight uniform in +-sqrt(3 / fan_in), default bias."""
    bound = (3.0 / fan_in) ** 0.5
    return nn.Linear(in_features, out_features, weight_attr=ParamAttr(initializer=Uniform(-bound, bound)))


def _classifier_linear(in_features: int, num_classes: int) -> nn.Linear:
    return _uniform_linear(in_features, num_classes, fan_in=1024)


class Inception(nn.Layer):
    """ReLU(concat(1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | max-pool -> 1x1)), all convolutions linear."""

    def __init__(self, in_chs: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, proj: int):
        super().__init__()
        self.conv1 = _conv(in_chs, c1, 1)
        self.conv3_reduce = _conv(in_chs, c3_reduce, 1)
        self.conv3 = _conv(c3_reduce, c3, 3)
        self.conv5_reduce = _conv(in_chs, c5_reduce, 1)
        self.conv5 = _conv(c5_reduce, c5, 5)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=1, padding=1)
        self.pool_proj = _conv(in_chs, proj, 1)

    def forward(self, x):
        return F.relu(paddle.concat([
            self.conv1(x),
            self.conv3(self.conv3_reduce(x)),
            self.conv5(self.conv5_reduce(x)),
            self.pool_proj(self.pool(x)),
        ], axis=1))


class AuxHead(nn.Layer):
    """5x5/3 avg-pool -> 1x1 conv (128) -> flatten (128 x 3 x 3) -> `fc` (1024) [-> ReLU] -> dropout -> `out`.

    PaddleClas applies the ReLU in the first auxiliary head only; kept, since its weights were trained so.
    """

    def __init__(self, in_chs: int, num_classes: int, relu: bool, dropout_prob: float = 0.7):
        super().__init__()
        self.pool = nn.AvgPool2D(kernel_size=5, stride=3)
        self.conv = _conv(in_chs, 128, 1)
        self.flatten = nn.Flatten()
        self.fc = _uniform_linear(128 * 3 * 3, 1024, fan_in=2048)
        self.act = nn.ReLU() if relu else nn.Identity()
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")
        self.out = _classifier_linear(1024, num_classes)

    def forward(self, x):
        return self.out(self.dropout(self.act(self.fc(self.flatten(self.conv(self.pool(x)))))))


# the auxiliary heads: their input channels and whether they apply ReLU
AUX_HEADS = {"aux1": (512, True), "aux2": (528, False)}
_TOP_KEYS = {"_conv": "conv1", "_conv_1": "conv2_1x1", "_conv_2": "conv2_3x3", "_fc_out": "fc",
             "_conv_o1": "aux1.conv", "_fc_o1": "aux1.fc", "_out1": "aux1.out",
             "_conv_o2": "aux2.conv", "_fc_o2": "aux2.fc", "_out2": "aux2.out"}
_INCEPTION_KEYS = {"_conv1": "conv1", "_conv3r": "conv3_reduce", "_conv3": "conv3", "_conv5r": "conv5_reduce",
                   "_conv5": "conv5", "_convprj": "pool_proj"}
PADDLECLAS_KEYS = (
    (r"^_ince(\w+?)\.(\w+)\._conv\.weight$", lambda m: f"ince{m[1]}.{_INCEPTION_KEYS.get(m[2], m[2])}.weight"),
    (r"^(_\w+?)(?:\._conv)?\.(weight|bias)$", lambda m: f"{_TOP_KEYS.get(m[1], m[1])}.{m[2]}"),
)


class GoogLeNet(PooledClassifierNet):
    """conv1 (7x7/2) -> max-pool -> conv2 (1x1, 3x3) -> max-pool -> inception 3a-3b -> max-pool -> 4a-4e ->
    max-pool -> 5a-5b (features, [N, 1024, 7, 7]) -> global average pool -> dropout -> `fc`; auxiliary heads
    `aux1` on 4a and `aux2` on 4d in training mode."""

    # The class-count-wide layers a fine-tuning checkpoint load skips; the auxiliary heads' conv and fc load.
    classifier_name = ("fc", "aux1.out", "aux2.out")
    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, num_classes: int = 1000, dropout_prob: float = 0.4):
        super().__init__()
        self.conv1 = _conv(3, 64, 7, stride=2)
        self.conv2_1x1 = _conv(64, 64, 1)
        self.conv2_3x3 = _conv(64, 192, 3)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2)
        for name, cfg in INCEPTIONS.items():
            setattr(self, name, Inception(*cfg))
        self._init_head(1024, num_classes, use_last_conv=False)
        # dropout on the pooled features; "downscale_in_infer" scales by (1 - p) at inference, as PaddleClas does
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")

    def new_head(self, name: str, num_classes: int) -> nn.Layer | None:
        """`fc`, or the auxiliary head `name`; without classes (0) `fc` is the identity and the auxiliary heads
        go."""
        if name == "fc":
            return new_classifier(1024, num_classes, _classifier_linear)
        in_chs, relu = AUX_HEADS[name]
        return AuxHead(in_chs, num_classes, relu=relu) if num_classes > 0 else None

    def forward_features(self, x):
        return self._forward(x)[0]

    def _forward(self, x):
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv2_3x3(self.conv2_1x1(x)))
        x = self.pool(self.ince3b(self.ince3a(x)))
        ince4a = self.ince4a(x)
        ince4d = self.ince4d(self.ince4c(self.ince4b(ince4a)))
        x = self.pool(self.ince4e(ince4d))
        return self.ince5b(self.ince5a(x)), ince4a, ince4d

    def forward(self, x):
        x, ince4a, ince4d = self._forward(x)
        logits = self.forward_head(x)
        if self.training and self.aux1 is not None:
            return [logits, self.aux1(ince4a), self.aux2(ince4d)]
        return logits


# in_chs, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection
INCEPTIONS = {
    "ince3a": (192, 64, 96, 128, 16, 32, 32),
    "ince3b": (256, 128, 128, 192, 32, 96, 64),
    "ince4a": (480, 192, 96, 208, 16, 48, 64),
    "ince4b": (512, 160, 112, 224, 24, 64, 64),
    "ince4c": (512, 128, 128, 256, 24, 64, 64),
    "ince4d": (512, 112, 144, 288, 32, 64, 64),
    "ince4e": (528, 256, 160, 320, 32, 128, 128),
    "ince5a": (832, 256, 160, 320, 32, 128, 128),
    "ince5b": (832, 384, 192, 384, 48, 128, 128),
}


@register_model(spec(family="Inception", params_m=11.54, flops_g=1.44, top1=0.707, input_size=224, fixed_input=True,
                     name="GoogLeNet", train_outputs="heads"))
def googlenet(**kw):
    return GoogLeNet(**kw)
