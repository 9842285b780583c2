"""DenseNet: PaddleClas's `dropout` option behaves as there, and its layer names map onto ppipe's."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model


def test_densenet_dropout_option_gives_paddleclas_logits_at_inference():
    backbone = pytest.importorskip("paddleclas.ppcls.arch.backbone", reason="paddleclas (the oracle) is absent")
    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        oracle = backbone.DenseNet121(dropout=0.5)
    oracle.eval()
    model = create_model("DenseNet121", dropout=0.5)
    model.set_state_dict(model.remap_checkpoint(oracle.state_dict()))
    model.eval()
    x = paddle.randn([1, 3, 64, 64])
    want, got = oracle(x).numpy(), model(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
    plain = create_model("DenseNet121")  # no dropout: the (1 - p) inference scaling is gone
    plain.set_state_dict(model.state_dict())
    plain.eval()
    assert np.linalg.norm(plain(x).numpy() - want) / np.linalg.norm(want) > 1e-3


def test_paddleclas_densenet_keys_map_onto_ppipe_keys_and_ppipe_keys_pass_unchanged():
    model = create_model("DenseNet121")
    mapping = {"conv1_func._conv.weight": "stem.conv.weight",
               "db_conv_2.conv2_1.bn_ac_func1._batch_norm.weight": "blocks.0.0.conv1.bn.weight",
               "db_conv_4.conv4_24.bn_ac_func2._conv.weight": "blocks.2.23.conv2.conv.weight",
               "tr_conv3_blk.conv_ac_func._batch_norm._mean": "transitions.1.bn._mean",
               "batch_norm._variance": "final_bn._variance", "out.bias": "fc.bias"}
    assert model.remap_checkpoint(dict.fromkeys(mapping)) == dict.fromkeys(mapping.values())
    keys = list(model.state_dict())
    assert set(mapping.values()) <= set(keys)
    assert list(model.remap_checkpoint(dict.fromkeys(keys))) == keys
