"""ResNeXt-101 32xWd pretrained weakly supervised on Instagram hashtags (Mahajan et al., 2018, arXiv:1805.00932).

Plain ResNeXt-101 networks with wide groups (W = 8-48 channels per group); only the weights are special.
Weight-compatible with PaddleClas's `model_zoo/resnext101_wsl.py`, a port of the torch hub models whose key layout
(`_conv_stem`, `_conv<stage>_<i>`, `_short._conv`, `_bn`, `_out`) `WSL_KEYS` maps.
"""

from __future__ import annotations

from ppipe.models.registry import register_model
from ppipe.models.resnet import DEPTHS, RESNEXT_OUT_CHS, CheckpointKeys, ResNet
from ppipe.models.resnext import resnext_widths
from ppipe.models.spec import spec

WSL_KEYS = CheckpointKeys(
    block=r"_conv(\d)_(\d+)\.", first_stage=1,
    renames=((r"^_conv_stem\.", "stem.0."), (r"\._conv(\d)\.", r".conv\1."), (r"\._short\._conv\.", ".short."),
             (r"\._conv\.", ".conv."), (r"\._bn\.", ".bn."), (r"^_out\.", "fc.")))
CARDINALITY = 32


def _create(group_width: int, **kw) -> ResNet:
    return ResNet(DEPTHS[101], resnext_widths(CARDINALITY, group_width), RESNEXT_OUT_CHS, groups=CARDINALITY,
                  checkpoint_keys=WSL_KEYS, **kw)


_FAMILY = "ResNeXt101_wsl"


@register_model(spec(family=_FAMILY, params_m=88.99, flops_g=16.48, top1=0.8255, input_size=224))
def ResNeXt101_32x8d_wsl(**kw):
    return _create(8, **kw)


@register_model(spec(family=_FAMILY, params_m=194.36, flops_g=36.26, top1=0.8424, input_size=224))
def ResNeXt101_32x16d_wsl(**kw):
    return _create(16, **kw)


@register_model(spec(family=_FAMILY, params_m=469.12, flops_g=87.28, top1=0.8497, input_size=224))
def ResNeXt101_32x32d_wsl(**kw):
    return _create(32, **kw)


@register_model(spec(family=_FAMILY, params_m=829.26, flops_g=153.57, top1=0.8537, input_size=224,
                     weights=("in1k", "fix")))
def ResNeXt101_32x48d_wsl(**kw):
    return _create(48, **kw)
