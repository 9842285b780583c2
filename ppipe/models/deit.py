"""DeiT (Touvron et al., 2020, arXiv:2012.12877). Weight-compatible with PaddleClas's DeiT.

The plain DeiTs are ViTs (`ppipe.models.vision_transformer`) at DeiT's widths. The distilled ones add a
distillation token after the class token, with its own position and classifier (`head_dist`). Like PaddleClas,
they return the mean of both heads' logits in training as well as in evaluation (the original DeiT returns both
during training); the distillation loss therefore sees that mean.
"""

from __future__ import annotations

import paddle

from ppipe.models.registry import register_model
from ppipe.models.spec import spec
from ppipe.models.vision_transformer import VisionTransformer, trunc_normal_


class DistilledVisionTransformer(VisionTransformer):
    """A ViT whose tokens are [class, distillation, patches...]; `head` reads the class token, `head_dist` the
    distillation token, and the logits are their mean. `pre_logits` is the mean of the two tokens (width
    `embed_dim`), which is also what the model returns without classifiers (`num_classes=0`), as in PaddleClas."""

    num_prefix_tokens = 2
    classifier_name = ("head", "head_dist")  # both are class-count wide: fine-tuning replaces both

    def __init__(self, **kw):
        super().__init__(**kw)
        self.dist_token = self.create_parameter([1, 1, self.embed_dim], default_initializer=trunc_normal_)

    def _prefix_tokens(self, batch: int) -> list[paddle.Tensor]:
        return [self.cls_token.expand([batch, -1, -1]), self.dist_token.expand([batch, -1, -1])]

    def forward_head(self, x, pre_logits: bool = False):
        cls_token, dist_token = x[:, 0], x[:, 1]
        if pre_logits:
            return (cls_token + dist_token) / 2
        return (self.head(cls_token) + self.head_dist(dist_token)) / 2



def _create(distilled: bool, **kw) -> VisionTransformer:
    return (DistilledVisionTransformer if distilled else VisionTransformer)(qkv_bias=True, epsilon=1e-6, **kw)


TINY = dict(embed_dim=192, depth=12, num_heads=3)
SMALL = dict(embed_dim=384, depth=12, num_heads=6)
BASE = dict(embed_dim=768, depth=12, num_heads=12)
_FAMILY = "DeiT"


@register_model(spec(family=_FAMILY, params_m=5.68, flops_g=1.07, top1=0.7208, input_size=224, fixed_input=True))
def DeiT_tiny_patch16_224(**kw):
    return _create(False, **TINY, **kw)


@register_model(spec(family=_FAMILY, params_m=21.97, flops_g=4.24, top1=0.7982, input_size=224, fixed_input=True))
def DeiT_small_patch16_224(**kw):
    return _create(False, **SMALL, **kw)


@register_model(spec(family=_FAMILY, params_m=86.42, flops_g=16.85, top1=0.818, input_size=224, fixed_input=True))
def DeiT_base_patch16_224(**kw):
    return _create(False, **BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=86.42, flops_g=49.35, top1=0.8289, input_size=384, fixed_input=True))
def DeiT_base_patch16_384(**kw):
    return _create(False, img_size=384, **BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=5.87, flops_g=1.08, top1=0.7449, input_size=224, fixed_input=True))
def DeiT_tiny_distilled_patch16_224(**kw):
    return _create(True, **TINY, **kw)


@register_model(spec(family=_FAMILY, params_m=22.36, flops_g=4.26, top1=0.8117, input_size=224, fixed_input=True))
def DeiT_small_distilled_patch16_224(**kw):
    return _create(True, **SMALL, **kw)


@register_model(spec(family=_FAMILY, params_m=87.18, flops_g=16.93, top1=0.833, input_size=224, fixed_input=True))
def DeiT_base_distilled_patch16_224(**kw):
    return _create(True, **BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=87.18, flops_g=49.43, top1=0.852, input_size=384, fixed_input=True))
def DeiT_base_distilled_patch16_384(**kw):
    return _create(True, img_size=384, **BASE, **kw)
