"""Res2Net: PaddleClas's old-style layer names map onto ppipe's, for the plain and the ResNet-D stem."""

from __future__ import annotations

import functools

import pytest

from ppipe.models import create_model

_model = functools.lru_cache(create_model)  # one build per architecture for the whole module


@pytest.mark.parametrize("name, paddleclas_key, ppipe_key", [
    ("Res2Net50_14w_8s", "conv1._conv.weight", "stem.0.conv.weight"),
    ("Res2Net50_vd_26w_4s", "conv1_3._batch_norm._mean", "stem.2.bn._mean"),
    ("Res2Net50_vd_26w_4s", "bb_2_5.res4f_branch2b_3._batch_norm._variance", "stages.2.5.scale_convs.2.bn._variance"),
    ("Res2Net101_vd_26w_4s", "bb_2_12.res4b12_branch2b_1._conv.weight", "stages.2.12.scale_convs.0.conv.weight"),
    ("Res2Net50_vd_26w_4s", "bb_1_0.conv0._conv.weight", "stages.1.0.conv1.conv.weight"),
    ("Res2Net50_vd_26w_4s", "bb_1_0.conv2._batch_norm.bias", "stages.1.0.conv3.bn.bias"),
    ("Res2Net50_vd_26w_4s", "bb_1_0.short._conv.weight", "stages.1.0.shortcut.conv.weight"),
    ("Res2Net50_vd_26w_4s", "out.weight", "fc.weight"),
])
def test_paddleclas_res2net_key_maps_onto_the_ppipe_key(name, paddleclas_key, ppipe_key):
    model = _model(name)
    assert list(model.remap_checkpoint({paddleclas_key: 0})) == [ppipe_key]
    assert ppipe_key in model.state_dict()


def test_res2net_remap_leaves_ppipe_keys_unchanged_so_ppipe_checkpoints_reload():
    for name in ("Res2Net50_14w_8s", "Res2Net50_vd_26w_4s"):
        keys = list(_model(name).state_dict())
        assert list(_model(name).remap_checkpoint(dict.fromkeys(keys))) == keys
