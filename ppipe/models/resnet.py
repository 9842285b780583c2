"""ResNet (He et al., 2016, arXiv:1512.03385) and its -C/-D forms (He et al., 2019, arXiv:1812.01187).

Weight-compatible with PaddleClas's ResNet (`legendary_models/resnet.py`, whose key names are ours) and
ResNet50_vc (`model_zoo/resnet_vc.py`, whose older key names `remap_checkpoint` maps). The `ResNet` network here is
also ResNeXt's, SE-ResNet(X)'s and ResNeXt-WSL's: those families are configurations of it (see their modules).

Versions: `vb` the 7x7 stem with the stride on the 3x3 conv; `vc` the deep 3x3 stem; `vd` the deep stem plus the
average-pool shortcut.

PaddleClas's ResNet options are arguments of every configuration here: `input_image_channel` and `data_format` (its
4-channel NHWC "ultra" configs for float16 GPU training) and `layer_type: DiverseBranchBlock` (ResNet18_dbb: Ding et
al., 2021, arXiv:2103.13425, whose branches `reparameterize()` folds into plain convs for export).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import paddle
import paddle.nn as nn

from ppipe.models.layers import PooledClassifierNet
from ppipe.models.layers.conv_bn_act import ConvBNAct
from ppipe.models.layers.diverse_branch_block import DiverseBranchBlock
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.layers.resnet_blocks import BLOCKS, STEM_7X7, STEM_DEEP, make_stem
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


@dataclass(frozen=True)
class CheckpointKeys:
    """How one of PaddleClas's older files names this network's keys, as regex substitutions giving ours.

    `block`: the pattern of its per-block prefix, capturing (stage, index within the stage), stages numbered from
    `first_stage`; it becomes `blocks.<flat index>.`. `renames`: (pattern, replacement) pairs applied in order
    afterwards. Keys already in ppipe's layout match none of the patterns, so they load too.
    """

    block: str
    renames: tuple[tuple[str, str], ...]
    first_stage: int = 0

    def rename(self, key: str, depths: Sequence[int]) -> str:
        m = re.match(self.block, key)
        if m:
            stage, index = int(m[1]) - self.first_stage, int(m[2])
            key = f"blocks.{sum(depths[:stage]) + index}.{key[m.end():]}"
        for pattern, replacement in self.renames:
            key = re.sub(pattern, replacement, key)
        return key


# resnet_vc, resnext(_vd), se_resnet_vd, se_resnext(_vd): `conv1_1` or `conv` stem, blocks `bb_<stage>_<i>`,
# ConvBN parts `_conv`/`_batch_norm`, SE `scale` (its `squeeze`, `excitation`), classifier `out`.
PADDLECLAS_V1_KEYS = CheckpointKeys(
    block=r"bb_(\d+)_(\d+)\.",
    renames=((r"^conv1_1\.", "stem.0."), (r"^conv1_2\.", "stem.1."), (r"^conv1_3\.", "stem.2."),
             (r"^conv\.", "stem.0."), (r"\._conv\.", ".conv."), (r"\._batch_norm\.", ".bn."),
             (r"\.scale\.", ".se."), (r"\.se\.squeeze\.", ".se.conv1."), (r"\.se\.excitation\.", ".se.conv2."),
             (r"^out\.", "fc.")))


class ResNet(PooledClassifierNet):
    """Stem -> 3x3/2 max pool -> four stages of residual `blocks` (features) -> global pool -> `fc`.

    Per stage s: `depths[s]` blocks whose 3x3 conv has `widths[s]` channels and output `out_chs[s]`; the first
    block of each stage projects its shortcut (stride 2 from stage 1 on). `block`: "basic" or "bottleneck";
    `groups`: the 3x3 conv's groups (ResNeXt's cardinality); `stem`: rows (out channels, kernel, stride);
    `avg_down`: ResNet-D's pooled shortcut in stages 1-3; `se_reduction`: SE on every block when set.
    `lr_mult_list` (stem, stages 1-4) and `stride_list` (stem conv, max pool, stages 2-4) as in PaddleClas's
    ResNet. `checkpoint_keys`: the older PaddleClas key layout this configuration's published weights use.
    `input_image_channel`: the image's channels (4: RGB plus PaddleClas's zero channel). `data_format` "NHWC":
    every layer computes channels-last; the model still takes NCHW images and `forward_features` still returns an
    NCHW map (one transpose at each end), so the contract and the parameters are those of the NCHW network.
    `layer_type`: the residual branches' conv unit, "ConvBNLayer" (conv + BN) or "DiverseBranchBlock".
    `use_first_short_conv`: false gives the first block an identity shortcut, as the original ResNet (PaddleClas
    projects it by default; the two are different networks, and ResNet18_dbb's recipe trains the original).
    """

    classifier_layer = staticmethod(uniform_linear)  # PaddleClas's init: uniform in +-1/sqrt(fan_in)

    def __init__(self, depths: Sequence[int], widths: Sequence[int], out_chs: Sequence[int],
                 block: str = "bottleneck", groups: int = 1, stem=STEM_7X7, avg_down: bool = False,
                 se_reduction: int | None = None, checkpoint_keys: CheckpointKeys | None = None,
                 num_classes: int = 1000, lr_mult_list: Sequence[float] = (1.0,) * 5,
                 stride_list: Sequence[int] = (2,) * 5, input_image_channel: int = 3, data_format: str = "NCHW",
                 layer_type: str = "ConvBNLayer", use_first_short_conv: bool = True):
        super().__init__()
        if data_format not in ("NCHW", "NHWC"):
            raise ValueError(f"data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
        if layer_type not in LAYER_TYPES:
            raise ValueError(f"layer_type must be one of {sorted(LAYER_TYPES)}, got {layer_type!r}")
        if layer_type == "DiverseBranchBlock" and data_format != "NCHW":
            raise ValueError("layer_type 'DiverseBranchBlock' computes in NCHW only (as PaddleClas's), got "
                             f"data_format {data_format!r}")
        if not len(depths) == len(widths) == len(out_chs) == 4:
            raise ValueError(f"a ResNet has 4 stages, got depths={depths}, widths={widths}, out_chs={out_chs}")
        if len(lr_mult_list) != 5 or len(stride_list) != 5:
            raise ValueError(f"lr_mult_list and stride_list need 5 values each, got {list(lr_mult_list)} and "
                             f"{list(stride_list)}")
        self.depths, self.checkpoint_keys, self.data_format = tuple(depths), checkpoint_keys, data_format
        self.stem = make_stem(stem, in_chs=input_image_channel, first_stride=stride_list[0], lr_mult=lr_mult_list[0],
                              data_format=data_format)
        self.max_pool = nn.MaxPool2D(kernel_size=3, stride=stride_list[1], padding=1, data_format=data_format)
        blocks, in_chs = [], stem[-1][0]
        for s, (depth, width, out) in enumerate(zip(depths, widths, out_chs)):
            for i in range(depth):
                # stage 0 is downsampled by the max pool; ResNet-D leaves its projection a plain 1x1 conv
                project = i == 0 and (s > 0 or use_first_short_conv)
                if i == 0 and not project and in_chs != out:
                    raise ValueError(f"use_first_short_conv=False needs the stem's {in_chs} channels to equal the "
                                     f"first stage's {out}")
                blocks.append(BLOCKS[block](in_chs, width, out, stride=stride_list[s + 1] if i == 0 and s else 1,
                                            groups=groups, project=project, avg_down=avg_down and s > 0,
                                            se_reduction=se_reduction, lr_mult=lr_mult_list[s + 1],
                                            conv_layer=LAYER_TYPES[layer_type], data_format=data_format))
                in_chs = out
        self.blocks = nn.Sequential(*blocks)
        self._init_head(in_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        if self.data_format == "NHWC":
            x = paddle.transpose(x, [0, 2, 3, 1])
            return paddle.transpose(self.blocks(self.max_pool(self.stem(x))), [0, 3, 1, 2])
        return self.blocks(self.max_pool(self.stem(x)))

    def reparameterize(self) -> None:
        """Fold every Diverse Branch Block into one conv (inference form; a no-op for plain conv units)."""
        for layer in self.sublayers():
            if isinstance(layer, DiverseBranchBlock):
                layer.reparameterize()

    def remap_checkpoint(self, state: dict) -> dict:
        """PaddleClas's keys for this configuration -> ours (the identity where they are the same)."""
        if self.checkpoint_keys is None:
            return state
        return {self.checkpoint_keys.rename(k, self.depths): v for k, v in state.items()}


# PaddleClas's `layer_type` names for the residual branches' conv unit.
LAYER_TYPES = {"ConvBNLayer": ConvBNAct, "DiverseBranchBlock": DiverseBranchBlock}

DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3),
          200: (3, 12, 48, 3)}
RESNET_WIDTHS = (64, 128, 256, 512)
RESNEXT_OUT_CHS = (256, 512, 1024, 2048)  # every bottleneck ResNet-family network ends its stages with these
VERSIONS = {"vb": dict(stem=STEM_7X7, avg_down=False), "vc": dict(stem=STEM_DEEP, avg_down=False),
            "vd": dict(stem=STEM_DEEP, avg_down=True)}


def create_resnet(depth: int, version: str = "vb", **kw) -> ResNet:
    """ResNet-`depth` in `version` (vb/vc/vd); basic blocks below 50 layers, bottlenecks of expansion 4 above."""
    basic = depth < 50
    return ResNet(DEPTHS[depth], RESNET_WIDTHS, RESNET_WIDTHS if basic else RESNEXT_OUT_CHS,
                  block="basic" if basic else "bottleneck", **{**VERSIONS[version], **kw})


_FAMILY = "ResNet"


@register_model(spec(family=_FAMILY, params_m=11.7, flops_g=1.83, top1=0.7098, input_size=224))
def ResNet18(**kw):
    return create_resnet(18, "vb", **kw)


@register_model(spec(family=_FAMILY, params_m=11.72, flops_g=2.07, top1=0.7226, input_size=224))
def ResNet18_vd(**kw):
    return create_resnet(18, "vd", **kw)


@register_model(spec(family=_FAMILY, params_m=21.81, flops_g=3.68, top1=0.7457, input_size=224))
def ResNet34(**kw):
    return create_resnet(34, "vb", **kw)


@register_model(spec(family=_FAMILY, params_m=21.84, flops_g=3.93, top1=0.7598, input_size=224,
                     weights=("in1k", "ssld")))
def ResNet34_vd(**kw):
    return create_resnet(34, "vd", **kw)


@register_model(spec(family=_FAMILY, params_m=25.61, flops_g=4.11, top1=0.765, input_size=224))
def ResNet50(**kw):
    return create_resnet(50, "vb", **kw)


@register_model(spec(family=_FAMILY, params_m=25.63, flops_g=4.35, top1=0.7835, input_size=224))
def ResNet50_vc(**kw):
    return create_resnet(50, "vc", checkpoint_keys=PADDLECLAS_V1_KEYS, **kw)


@register_model(spec(family=_FAMILY, params_m=25.63, flops_g=4.35, top1=0.7912, input_size=224,
                     weights=("in1k", "ssld")))
def ResNet50_vd(**kw):
    return create_resnet(50, "vd", **kw)


@register_model(spec(family=_FAMILY, params_m=44.65, flops_g=7.83, top1=0.7756, input_size=224))
def ResNet101(**kw):
    return create_resnet(101, "vb", **kw)


@register_model(spec(family=_FAMILY, params_m=44.67, flops_g=8.08, top1=0.8017, input_size=224,
                     weights=("in1k", "ssld")))
def ResNet101_vd(**kw):
    return create_resnet(101, "vd", **kw)


@register_model(spec(family=_FAMILY, params_m=60.34, flops_g=11.56, top1=0.7826, input_size=224))
def ResNet152(**kw):
    return create_resnet(152, "vb", **kw)


@register_model(spec(family=_FAMILY, params_m=60.36, flops_g=11.8, top1=0.8059, input_size=224))
def ResNet152_vd(**kw):
    return create_resnet(152, "vd", **kw)


@register_model(spec(family=_FAMILY, params_m=74.93, flops_g=15.3, top1=0.8093, input_size=224))
def ResNet200_vd(**kw):
    return create_resnet(200, "vd", **kw)
