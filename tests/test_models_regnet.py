"""RegNet: the quantized width rule gives PaddleClas's stages, and its layer names map onto ppipe's."""

from __future__ import annotations

from ppipe.models import create_model
from ppipe.models.regnet import regnet_stages


def test_regnetx_4gf_width_rule_gives_its_published_stages():
    # (blocks, width, group width): RegNetX-4.0GF of the RegNet paper (and timm's regnetx_040)
    assert regnet_stages(w_a=38.65, w_0=96, w_m=2.43, depth=23, group_w=40) == [
        (2, 80, 40), (5, 240, 40), (14, 560, 40), (2, 1360, 40)]


def test_paddleclas_regnet_keys_map_onto_ppipe_keys_and_ppipe_keys_pass_unchanged():
    model = create_model("RegNetX_4GF")
    mapping = {"conv._conv.weight": "stem.conv.weight", "s1_b1.short._batch_norm._mean": "stages.0.0.shortcut.bn._mean",
               "s3_b14.conv0._conv.weight": "stages.2.13.conv1.conv.weight",
               "s4_b2.conv1._batch_norm.weight": "stages.3.1.conv2.bn.weight",
               "s2_b5.conv2._batch_norm.bias": "stages.1.4.conv3.bn.bias", "out.bias": "fc.bias"}
    assert model.remap_checkpoint(dict.fromkeys(mapping)) == dict.fromkeys(mapping.values())
    keys = list(model.state_dict())
    assert set(mapping.values()) <= set(keys)
    assert list(model.remap_checkpoint(dict.fromkeys(keys))) == keys
