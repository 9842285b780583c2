"""SE-ResNet, SE-ResNeXt and SENet154 (Hu et al., 2018, arXiv:1709.01507), as PaddleClas publishes them.

ResNet(-D) and ResNeXt(-D) networks with squeeze-and-excitation (reduction 16) on every block's residual branch.
The `_vd` SE-ResNeXts and SENet154 use a deep stem twice as wide as ResNet-D's (64, 64, 128 channels).
Weight-compatible with PaddleClas's `model_zoo/se_resnet_vd.py`, `se_resnext.py` and `se_resnext_vd.py`, whose
older key layout `PADDLECLAS_V1_KEYS` maps.
"""

from __future__ import annotations

from ppipe.models.layers.resnet_blocks import STEM_DEEP_WIDE
from ppipe.models.registry import register_model
from ppipe.models.resnet import PADDLECLAS_V1_KEYS, create_resnet
from ppipe.models.resnext import create_resnext
from ppipe.models.spec import spec

SE_REDUCTION = 16
_FAMILY = "SENet"


def _se_resnet(depth: int, **kw):
    return create_resnet(depth, "vd", se_reduction=SE_REDUCTION, checkpoint_keys=PADDLECLAS_V1_KEYS, **kw)


@register_model(spec(family=_FAMILY, params_m=11.81, flops_g=2.07, top1=0.7333, input_size=224))
def SE_ResNet18_vd(**kw):
    return _se_resnet(18, **kw)


@register_model(spec(family=_FAMILY, params_m=22.0, flops_g=3.93, top1=0.7651, input_size=224))
def SE_ResNet34_vd(**kw):
    return _se_resnet(34, **kw)


@register_model(spec(family=_FAMILY, params_m=28.16, flops_g=4.36, top1=0.7952, input_size=224))
def SE_ResNet50_vd(**kw):
    return _se_resnet(50, **kw)


@register_model(spec(family=_FAMILY, params_m=27.63, flops_g=4.27, top1=0.7844, input_size=224))
def SE_ResNeXt50_32x4d(**kw):
    return create_resnext(50, 32, se_reduction=SE_REDUCTION, **kw)


@register_model(spec(family=_FAMILY, params_m=27.76, flops_g=5.64, top1=0.8024, input_size=224))
def SE_ResNeXt50_vd_32x4d(**kw):
    return create_resnext(50, 32, version="vd", stem=STEM_DEEP_WIDE, se_reduction=SE_REDUCTION, **kw)


@register_model(spec(family=_FAMILY, params_m=49.09, flops_g=8.03, top1=0.7939, input_size=224))
def SE_ResNeXt101_32x4d(**kw):
    return create_resnext(101, 32, se_reduction=SE_REDUCTION, **kw)


@register_model(spec(family=_FAMILY, params_m=122.03, flops_g=24.45, top1=0.814, input_size=224))
def SENet154_vd(**kw):
    return create_resnext(152, 64, version="vd", stem=STEM_DEEP_WIDE, se_reduction=SE_REDUCTION, **kw)
