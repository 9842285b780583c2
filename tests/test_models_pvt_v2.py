"""PVTv2: how spatial-reduction attention shrinks keys and values, strided or (Linear variant) pooled to 7 x 7."""

from __future__ import annotations

import paddle

from ppipe.models import create_model
from ppipe.models.layers.spatial_reduction_attention import SpatialReductionAttention


def test_strided_reduction_divides_the_key_tokens_by_the_square_of_the_ratio():
    attn = SpatialReductionAttention(32, num_heads=2, sr_ratio=4)
    assert attn._reduced_tokens(paddle.randn([2, 16 * 12, 32]), 16, 12).shape == [2, 4 * 3, 32]
    assert not SpatialReductionAttention(32, num_heads=2, sr_ratio=1).reduces


def test_linear_variant_pools_keys_and_values_to_7x7_whatever_the_grid():
    attn = SpatialReductionAttention(32, num_heads=2, sr_ratio=8, linear=True)
    for H, W in [(56, 56), (16, 12)]:
        assert attn._reduced_tokens(paddle.randn([1, H * W, 32]), H, W).shape == [1, 49, 32]
    model = create_model("PVT_V2_B2_Linear")
    assert model.block1[0].attn.sr.weight.shape == [64, 64, 1, 1]  # 1x1 conv, no striding
    assert model.block1[0].mlp.relu.__class__ is paddle.nn.ReLU


def test_attention_output_keeps_one_token_per_query():
    attn = SpatialReductionAttention(32, num_heads=4, sr_ratio=2)
    assert attn(paddle.randn([3, 10 * 6, 32]), 10, 6).shape == [3, 60, 32]
