"""Twins: SVT's attention alternates local windows and global sub-sampling; PCPVT runs at any size."""

from __future__ import annotations

import paddle

from ppipe.models import create_model
from ppipe.models.layers.spatial_reduction_attention import SpatialReductionAttention
from ppipe.models.twins import LocallyGroupedAttention


def test_svt_alternates_locally_grouped_and_global_attention_in_every_stage():
    model = create_model("alt_gvt_small")
    for stage in model.blocks:
        kinds = [type(block.attn) for block in stage]
        assert kinds == [LocallyGroupedAttention if j % 2 == 0 else SpatialReductionAttention
                         for j in range(len(stage))]
    assert all(isinstance(b.attn, SpatialReductionAttention) for s in create_model("pcpvt_small").blocks for b in s)


def test_locally_grouped_attention_mixes_tokens_only_within_their_window():
    paddle.seed(0)
    attn = LocallyGroupedAttention(16, num_heads=2, window=7)
    attn.eval()
    H = W = 14
    x = paddle.randn([1, H * W, 16])
    changed = x.clone()
    changed[:, 0] = changed[:, 0] + 5.0  # a token of the top-left window
    diff = (attn(changed, H, W) - attn(x, H, W)).abs().sum(axis=-1).reshape([H, W]).numpy()
    assert (diff[:7, :7] > 1e-4).all()
    assert diff[7:, :].max() < 1e-5 and diff[:, 7:].max() < 1e-5


def test_pcpvt_runs_at_sizes_that_are_not_224_nor_square():
    model = create_model("pcpvt_small", num_classes=5)
    model.eval()
    feats = model.forward_features(paddle.randn([1, 3, 64, 48]))
    assert feats.shape == [1, 2 * 1, 512]  # stride 32: 2 x 1 tokens (48 / 32 rounds down)
    assert model.forward_head(feats).shape == [1, 5]
