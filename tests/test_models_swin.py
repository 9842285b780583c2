"""Swin: PaddleClas's stored relative-position index, its masks and its shift in one-window stages."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models.layers.relative_position import relative_position_index
from ppipe.models.swin_transformer import SwinTransformer, shifted_window_mask

# 56 px: 14x14 tokens then 7x7, so the second stage is a single 7x7 window, as the last stage of every 224 px Swin
SMALL = dict(img_size=56, embed_dim=8, depths=(2, 2), num_heads=(1, 2), window_size=7)


def _oracle_module():
    pytest.importorskip("paddleclas")
    from paddleclas.ppcls.arch.backbone.legendary_models import swin_transformer

    return swin_transformer


def _pair(num_classes: int = 5):
    swin = _oracle_module()
    paddle.seed(0)
    oracle = swin.SwinTransformer(**SMALL, class_num=num_classes)
    model = SwinTransformer(**SMALL, num_classes=num_classes)
    oracle.eval(), model.eval()
    return oracle, model


def test_swin_state_dict_matches_paddleclas_including_relative_position_index_and_no_masks():
    oracle, model = _pair()
    want = {k: (tuple(v.shape), str(v.dtype)) for k, v in oracle.state_dict().items()}
    got = {k: (tuple(v.shape), str(v.dtype)) for k, v in model.state_dict().items()}
    assert got == want
    assert got["layers.1.blocks.1.attn.relative_position_index"] == ((49, 49), "paddle.int64")
    assert not any("attn_mask" in k for k in got)


def test_swin_with_a_one_window_stage_still_shifts_it_and_matches_paddleclas():
    oracle, model = _pair()
    last = model.layers[1].blocks[1]
    assert last.shift == 3 and last.attn_mask is not None
    model.set_state_dict(oracle.state_dict())
    x = paddle.randn([2, 3, 56, 56])
    want, got = oracle(x).numpy(), model(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
    assert model.forward_features(x).shape == [2, 49, 16]


def test_swin_relative_position_index_is_loaded_from_the_checkpoint():
    oracle, model = _pair()
    state = oracle.state_dict()
    key = "layers.0.blocks.0.attn.relative_position_index"
    state[key] = paddle.zeros_like(state[key])
    model.set_state_dict(state)
    assert int(model.layers[0].blocks[0].attn.relative_position_index.abs().sum()) == 0


@pytest.mark.parametrize("window_h, window_w", [(7, 7), (12, 12), (3, 5)])
def test_relative_position_index_matches_paddleclas(window_h, window_w):
    swin = _oracle_module()
    attn = swin.WindowAttention(8, (window_h, window_w), 2)
    np.testing.assert_array_equal(relative_position_index(window_h, window_w), attn.relative_position_index.numpy())


@pytest.mark.parametrize("resolution, window", [(14, 7), (7, 7), (24, 12)])
def test_shifted_window_mask_matches_paddleclas(resolution, window):
    swin = _oracle_module()
    block = swin.SwinTransformerBlock(8, (resolution, resolution), 1, window_size=window, shift_size=window // 2)
    want = block.get_attn_mask(resolution, resolution, "float32").numpy()
    np.testing.assert_array_equal(shifted_window_mask(resolution, resolution, window, window // 2).numpy(), want)
