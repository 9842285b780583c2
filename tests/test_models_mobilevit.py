"""MobileViT: PaddleClas's checkpoint keys map onto ours, and odd-sized maps are resized like PaddleClas does."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model, load_pretrained
from ppipe.models.layers.checkpoint_keys import rename_key
from ppipe.models.mobilevit import PADDLECLAS_KEYS

pytest.importorskip("paddleclas", reason="paddleclas (the test oracle) is not installed")


def _oracle():
    from paddleclas.ppcls.arch.backbone import MobileViT_XXS

    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        model = MobileViT_XXS()
    model.eval()
    return model


def paddleclas_key_to_ppipe(key: str) -> str:
    return rename_key(key, PADDLECLAS_KEYS)


def test_paddleclas_keys_map_one_to_one_onto_ours_and_ours_map_to_themselves():
    theirs = _oracle().state_dict()
    ours = create_model("MobileViT_XXS").state_dict()
    assert sorted(paddleclas_key_to_ppipe(k) for k in theirs) == sorted(ours)
    assert paddleclas_key_to_ppipe("mv2_block_3.conv.3._variance") == "mv2_block_3.linear_conv.bn._variance"
    assert paddleclas_key_to_ppipe("mvit_block_2.conv4.norm.weight") == "mvit_block_2.conv4.bn.weight"
    assert paddleclas_key_to_ppipe("mvit_block_2.transformer.norm.weight") == "mvit_block_2.transformer.norm.weight"
    assert all(paddleclas_key_to_ppipe(k) == k for k in ours)  # our own checkpoints load as they are
    model = create_model("MobileViT_XXS")
    load_pretrained(model, ours)


@pytest.mark.parametrize("size", [(64, 48), (50, 70)])
def test_maps_not_divisible_into_2x2_patches_give_paddleclas_logits(size):
    oracle = _oracle()
    model = create_model("MobileViT_XXS")
    load_pretrained(model, oracle.state_dict())
    model.eval()
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 3, *size)).astype("float32"))
    want = oracle(x).numpy()
    assert np.linalg.norm(model(x).numpy() - want) / np.linalg.norm(want) < 1e-4
