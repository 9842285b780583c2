"""TNT: pixel tokens per patch feed the patch tokens; the class token alone feeds the classifier."""

from __future__ import annotations

import paddle

from ppipe.models import create_model


def test_features_are_class_plus_patch_tokens_and_the_head_reads_the_class_token():
    paddle.seed(0)
    model = create_model("TNT_small", num_classes=3)
    model.eval()
    feats = model.forward_features(paddle.randn([1, 3, 224, 224]))
    assert feats.shape == [1, 1 + 14 * 14, 384]
    other = paddle.concat([feats[:, :1], paddle.randn([1, 196, 384])], axis=1)
    assert paddle.allclose(model.forward_head(feats), model.forward_head(other)).item()


def test_pixel_embedding_gives_a_4x4_grid_of_pixel_tokens_per_16x16_patch():
    model = create_model("TNT_small")
    pixels = model.pixel_embed(paddle.randn([2, 3, 224, 224]), model.pixel_pos)
    assert pixels.shape == [2 * 196, 16, 24]
    assert model.pixel_pos.shape == [1, 16, 24] and model.patch_pos.shape == [1, 197, 384]


def test_pixel_embedding_cuts_the_patches_unfold_lists_without_unfold():
    # a reshape instead of F.unfold (which OpenVINO's Paddle front end lacks): the same patches in the same order
    import paddle.nn.functional as F

    model = create_model("TNT_small")
    x = paddle.randn([2, 3, 64, 48])
    p, embed = 16, model.pixel_embed
    by_unfold = F.unfold(x, p, p).transpose([0, 2, 1]).reshape([-1, 3, p, p])
    want = embed.proj(by_unfold).flatten(2).transpose([0, 2, 1]) + model.pixel_pos
    assert paddle.equal_all(embed(x, model.pixel_pos), want).item()
    try:
        embed(paddle.randn([1, 3, 40, 48]), model.pixel_pos)
    except ValueError as e:
        assert "multiples of its patch size 16, got 40x48" in str(e)
    else:
        raise AssertionError("a side that is no multiple of the patch size must be refused")
