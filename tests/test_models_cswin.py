"""CSWin: cross-shaped stripes and LePE give PaddleClas's outputs; features are the last stage's tokens."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models.cswin_transformer import CSwinTransformer

# 224 px keeps PaddleClas's stripe widths (1, 2, 7, 7) valid; the width is cut to stay cheap
TINY = dict(embed_dim=8, depths=(1, 1, 1, 1), splits=(1, 2, 7, 7), num_heads=(2, 2, 2, 2))


def test_cswin_matches_paddleclas_and_returns_last_stage_tokens_as_features():
    pytest.importorskip("paddleclas")
    from paddleclas.ppcls.arch.backbone.model_zoo.cswin_transformer import CSwinTransformer as Oracle

    paddle.seed(0)
    oracle = Oracle(image_size=224, class_num=5, **{k: list(v) for k, v in TINY.items() if k != "embed_dim"},
                    embed_dim=TINY["embed_dim"])
    model = CSwinTransformer(img_size=224, num_classes=5, **TINY)
    assert sorted(model.state_dict()) == sorted(oracle.state_dict())
    model.set_state_dict(oracle.state_dict())
    oracle.eval(), model.eval()
    x = paddle.randn([2, 3, 224, 224])
    want, got = oracle(x).numpy(), model(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
    feats = model.forward_features(x)
    assert feats.shape == [2, 7 * 7, 64] and model.num_features == 64


def test_cswin_splits_heads_between_vertical_and_horizontal_stripes_except_in_the_last_stage():
    model = CSwinTransformer(img_size=224, num_classes=5, **TINY)
    first, last = model.stages[0].blocks[0], model.stages[3].blocks[0]
    assert [a.stripe for a in first.attns] == [(56, 1), (1, 56)]
    assert [a.num_heads for a in first.attns] == [1, 1]
    assert [a.stripe for a in last.attns] == [(7, 7)] and last.attns[0].num_heads == 2
