"""ResNeSt: split attention matches PaddleClas's for each radix/cardinality layout; its layer names map onto
ppipe's."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model
from ppipe.models.layers.split_attention import SplitAttn


@pytest.mark.parametrize("radix, groups", [(1, 1), (2, 1), (2, 2), (4, 2)])
def test_split_attention_matches_paddleclas_splat_conv(radix, groups):
    resnest = pytest.importorskip("paddleclas.ppcls.arch.backbone.model_zoo.resnest",
                                  reason="paddleclas (the oracle) is absent")
    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        oracle = resnest.SplatConv(16, 16, 3, groups=groups, radix=radix, name="splat")
    oracle.eval()
    layer = SplitAttn(16, 16, 3, groups=groups, radix=radix)
    rename = {"conv1.": "radix_conv.", "conv2.": "attn_reduce.", "conv3.": "attn_expand."}
    state = {}
    for k, v in oracle.state_dict().items():
        head, _, rest = k.partition(".")
        state[rename[head + "."] + rest.replace("_conv.", "conv.").replace("_batch_norm.", "bn.")] = v
    assert sorted(state) == sorted(layer.state_dict())
    layer.set_state_dict(state)
    layer.eval()
    x = paddle.randn([2, 16, 8, 8])
    np.testing.assert_allclose(layer(x).numpy(), oracle(x).numpy(), rtol=1e-5, atol=1e-6)


def test_paddleclas_resnest_keys_map_onto_ppipe_keys_and_ppipe_keys_pass_unchanged():
    model = create_model("ResNeSt50")
    mapping = {"stem.conv3._batch_norm.weight": "stem.2.bn.weight",
               "layer2.layer2_bottleneck_0.conv2.conv1._conv.weight": "stages.1.0.conv2.radix_conv.conv.weight",
               "layer3.layer3_bottleneck_5.conv2.conv2._batch_norm._mean": "stages.2.5.conv2.attn_reduce.bn._mean",
               "layer4.layer4_bottleneck_2.conv2.conv3.bias": "stages.3.2.conv2.attn_expand.bias",
               "layer1.layer1_bottleneck_0.conv4.weight": "stages.0.0.shortcut.conv.weight",
               "layer1.layer1_bottleneck_0._batch_norm._variance": "stages.0.0.shortcut.bn._variance",
               "layer1.layer1_bottleneck_2.conv3._conv.weight": "stages.0.2.conv3.conv.weight",
               "out.weight": "fc.weight"}
    assert model.remap_checkpoint(dict.fromkeys(mapping)) == dict.fromkeys(mapping.values())
    keys = list(model.state_dict())
    assert set(mapping.values()) <= set(keys)
    assert list(model.remap_checkpoint(dict.fromkeys(keys))) == keys


def test_resnest_runs_at_sizes_that_are_not_multiples_of_32():
    # PaddleClas floors the shortcut's pool, so its shortcut and residual maps disagree here (an error at 50 px)
    model = create_model("ResNeSt50_fast_1s1x64d")
    model.eval()
    assert model.forward_features(paddle.randn([1, 3, 50, 80])).shape == [1, 2048, 2, 3]
