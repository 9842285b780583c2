"""ResNeXt (Xie et al., 2017, arXiv:1611.05431) and ResNeXt-D. Weight-compatible with PaddleClas's ResNeXt.

A ResNet whose bottleneck 3x3 conv is grouped: "CxWd" is C groups of W channels in the first stage, doubling
per stage, with the stage outputs of ResNet-50. `vd` adds ResNet-D's deep stem and pooled shortcut. PaddleClas's
files (`model_zoo/resnext.py`, `resnext_vd.py`) use the older key layout that `PADDLECLAS_V1_KEYS` maps.
"""

from __future__ import annotations

from ppipe.models.registry import register_model
from ppipe.models.resnet import DEPTHS, PADDLECLAS_V1_KEYS, RESNEXT_OUT_CHS, VERSIONS, ResNet
from ppipe.models.spec import spec


def resnext_widths(cardinality: int, group_width: int) -> tuple[int, ...]:
    """The grouped 3x3 conv's channels per stage: `cardinality` groups of `group_width`, doubling per stage."""
    return tuple(cardinality * group_width * 2 ** s for s in range(4))


def create_resnext(depth: int, cardinality: int, group_width: int = 4, version: str = "vb", **kw) -> ResNet:
    return ResNet(DEPTHS[depth], resnext_widths(cardinality, group_width), RESNEXT_OUT_CHS, groups=cardinality,
                  checkpoint_keys=PADDLECLAS_V1_KEYS, **{**VERSIONS[version], **kw})


_FAMILY = "ResNeXt"


@register_model(spec(family=_FAMILY, params_m=25.1, flops_g=4.26, top1=0.7775, input_size=224))
def ResNeXt50_32x4d(**kw):
    return create_resnext(50, 32, **kw)


@register_model(spec(family=_FAMILY, params_m=25.12, flops_g=4.5, top1=0.7956, input_size=224))
def ResNeXt50_vd_32x4d(**kw):
    return create_resnext(50, 32, version="vd", **kw)


@register_model(spec(family=_FAMILY, params_m=45.29, flops_g=8.02, top1=0.7843, input_size=224))
def ResNeXt50_64x4d(**kw):
    return create_resnext(50, 64, **kw)


@register_model(spec(family=_FAMILY, params_m=45.31, flops_g=8.26, top1=0.8012, input_size=224))
def ResNeXt50_vd_64x4d(**kw):
    return create_resnext(50, 64, version="vd", **kw)


@register_model(spec(family=_FAMILY, params_m=44.32, flops_g=8.01, top1=0.7865, input_size=224))
def ResNeXt101_32x4d(**kw):
    return create_resnext(101, 32, **kw)


@register_model(spec(family=_FAMILY, params_m=44.33, flops_g=8.25, top1=0.8033, input_size=224))
def ResNeXt101_vd_32x4d(**kw):
    return create_resnext(101, 32, version="vd", **kw)


@register_model(spec(family=_FAMILY, params_m=83.66, flops_g=15.52, top1=0.7835, input_size=224))
def ResNeXt101_64x4d(**kw):
    return create_resnext(101, 64, **kw)


@register_model(spec(family=_FAMILY, params_m=83.68, flops_g=15.76, top1=0.8078, input_size=224))
def ResNeXt101_vd_64x4d(**kw):
    return create_resnext(101, 64, version="vd", **kw)


@register_model(spec(family=_FAMILY, params_m=60.15, flops_g=11.76, top1=0.7898, input_size=224))
def ResNeXt152_32x4d(**kw):
    return create_resnext(152, 32, **kw)


@register_model(spec(family=_FAMILY, params_m=60.17, flops_g=12.01, top1=0.8072, input_size=224))
def ResNeXt152_vd_32x4d(**kw):
    return create_resnext(152, 32, version="vd", **kw)


@register_model(spec(family=_FAMILY, params_m=115.27, flops_g=23.03, top1=0.7951, input_size=224))
def ResNeXt152_64x4d(**kw):
    return create_resnext(152, 64, **kw)


@register_model(spec(family=_FAMILY, params_m=115.29, flops_g=23.27, top1=0.8108, input_size=224))
def ResNeXt152_vd_64x4d(**kw):
    return create_resnext(152, 64, version="vd", **kw)
