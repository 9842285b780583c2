"""ViT: token features and class-token head, PaddleClas's ViT_small quirks, and the shared attention/patch layers."""

from __future__ import annotations

import numpy as np
import paddle

from ppipe.models import create_model
from ppipe.models.layers.attention import Attention
from ppipe.models.layers.patch_embed import PatchEmbed
from ppipe.models.vision_transformer import VisionTransformer


def _tiny_vit(**kw) -> VisionTransformer:
    paddle.seed(0)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=5, **kw)
    model.eval()
    return model


def test_vit_features_are_all_normalised_tokens_and_the_head_reads_the_class_token():
    model = _tiny_vit()
    x = paddle.randn([2, 3, 32, 32])
    feats = model.forward_features(x)
    assert feats.shape == [2, 1 + 16, 16]
    np.testing.assert_allclose(model.forward_head(feats, pre_logits=True).numpy(), feats[:, 0].numpy())
    np.testing.assert_allclose(model(x).numpy(), model.head(feats[:, 0]).numpy(), rtol=1e-6)
    # the class token is what the head sees: changing another token's features does not move the logits
    moved = paddle.concat([feats[:, :1], feats[:, 1:] + 1.0], axis=1)
    np.testing.assert_allclose(model.forward_head(moved).numpy(), model.forward_head(feats).numpy())


def test_vit_small_is_paddleclas_own_variant_scaled_by_model_width_without_qkv_bias():
    model = create_model("ViT_small_patch16_224")
    attn = model.blocks[0].attn
    assert (model.embed_dim, len(model.blocks), attn.num_heads) == (768, 8, 8)
    assert attn.scale == 768 ** -0.5 and attn.qkv.bias is None
    assert model.blocks[0].mlp.fc1.weight.shape == [768, 2304] and model.norm._epsilon == 1e-5
    base = create_model("ViT_base_patch16_224")
    assert base.blocks[0].attn.scale == 64 ** -0.5 and base.norm._epsilon == 1e-6


def test_attention_adds_its_bias_to_the_scaled_logits_of_every_head():
    paddle.seed(0)
    attn = Attention(8, num_heads=2, qkv_bias=True)
    x = paddle.randn([1, 3, 8])
    bias = paddle.to_tensor(np.array([[0.0, -1e9, 0.0], [0.0, 0.0, 0.5], [2.0, 0.0, 0.0]], "float32"))
    got = attn(x, attn_bias=bias).numpy()

    qkv = (x.numpy() @ attn.qkv.weight.numpy() + attn.qkv.bias.numpy()).reshape(1, 3, 3, 2, 4)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    logits = q @ k.transpose(0, 1, 3, 2) * 4 ** -0.5 + bias.numpy()
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(1, 3, 8)
    want = out @ attn.proj.weight.numpy() + attn.proj.bias.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_patch_embed_reports_its_token_grid_for_plain_and_overlapping_patches():
    plain = PatchEmbed(img_size=64, patch_size=16, embed_dim=8)
    assert plain.grid_size == (4, 4) and plain.num_patches == 16
    tokens, grid = plain.embed_with_grid(paddle.randn([2, 3, 64, 48]))
    assert tokens.shape == [2, 12, 8] and grid == (4, 3)
    overlapping = PatchEmbed(img_size=64, patch_size=4, embed_dim=8, kernel_size=7, padding=3, norm=True)
    assert overlapping.grid_size == (16, 16)
    assert overlapping(paddle.randn([1, 3, 64, 64])).shape == [1, 256, 8]
    assert sorted(overlapping.state_dict()) == ["norm.bias", "norm.weight", "proj.bias", "proj.weight"]
