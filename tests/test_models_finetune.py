"""Fine-tuning models with more than one class-count-wide head: a 1000-class checkpoint loads into a 10-class
model with every head skipped (and named), the backbone loaded, and `reset_classifier` replacing every head."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import CheckpointMismatchError, create_model

# (model, constructor kwargs, the heads whose width is the class count)
MULTI_HEAD = [
    ("DeiT_tiny_distilled_patch16_224", {}, ("head", "head_dist")),
    ("GoogLeNet", {}, ("fc", "aux1.out", "aux2.out")),
    ("LeViT_128S", {"distillation": True}, ("head", "head_dist")),
]
IDS = [case[0] for case in MULTI_HEAD]


def _sublayer(model, dotted: str):
    for part in dotted.split("."):
        model = getattr(model, part)
    return model


def _width(model, head: str) -> int:
    """Output width of a head: its last Linear (a plain Linear, LeViT's BN+Linear, GoogLeNet's aux `out`)."""
    linears = [layer for layer in _sublayer(model, head).sublayers(include_self=True)
               if isinstance(layer, paddle.nn.Linear)]
    return linears[-1].weight.shape[1]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A saved 1000-class state dict of each model (built once: these are 6-12M-parameter networks)."""
    out = {}
    for name, kw, _ in MULTI_HEAD:
        paddle.seed(0)
        path = tmp_path_factory.mktemp("ckpt") / f"{name}.pdparams"
        paddle.save(create_model(name, **kw).state_dict(), str(path))
        out[name] = path
    return out


@pytest.mark.parametrize("name,kw,heads", MULTI_HEAD, ids=IDS)
def test_1000_class_checkpoint_loads_into_10_classes_skipping_every_head(name, kw, heads, checkpoints):
    source = {k: v.numpy() for k, v in paddle.load(str(checkpoints[name])).items()}
    with pytest.warns(UserWarning, match="classifier not loaded") as caught:
        model = create_model(name, num_classes=10, pretrained=str(checkpoints[name]), **kw)
    message = " ".join(str(w.message) for w in caught if "classifier not loaded" in str(w.message))
    prefixes = tuple(f"{h}." for h in heads)
    for head in heads:
        assert _width(model, head) == 10
        # the warning names the skipped checkpoint keys of every head, with their 1000-class shapes
        assert f"{head}.weight" in message or f"{head}.l.weight" in message
    skipped = [k for k in source if k.startswith(prefixes)]
    assert skipped and all(k in message for k in skipped)
    for key, value in model.state_dict().items():
        if not key.startswith(prefixes):
            np.testing.assert_array_equal(value.numpy(), source[key], err_msg=key)


def test_googlenet_aux_heads_keep_their_pretrained_conv_and_fc_when_fine_tuned(checkpoints):
    source = paddle.load(str(checkpoints["GoogLeNet"]))
    with pytest.warns(UserWarning, match="aux1.out.weight"):
        model = create_model("GoogLeNet", num_classes=10, pretrained=str(checkpoints["GoogLeNet"]))
    np.testing.assert_array_equal(model.aux1.fc.weight.numpy(), source["aux1.fc.weight"].numpy())
    np.testing.assert_array_equal(model.aux2.conv.weight.numpy(), source["aux2.conv.weight"].numpy())
    with pytest.raises(CheckpointMismatchError, match=r"aux1\.out\.weight.*aux2\.out\.weight|fc\.weight"):
        create_model("GoogLeNet", num_classes=10, pretrained=str(checkpoints["GoogLeNet"]), drop_classifier=False)


@pytest.mark.parametrize("name,kw,heads", MULTI_HEAD, ids=IDS)
def test_reset_classifier_replaces_every_head(name, kw, heads):
    model = create_model(name, **kw)
    model.reset_classifier(7)
    assert model.num_classes == 7
    assert [_width(model, head) for head in heads] == [7] * len(heads)
    model.train()  # training mode runs every head (GoogLeNet's aux heads, LeViT's distillation head)
    out = model(paddle.randn([2, 3, 224, 224]))
    outs = out if isinstance(out, (list, tuple)) else [out]
    assert [o.shape for o in outs] == [[2, 7]] * len(outs)


def test_single_head_models_still_declare_one_classifier_name():
    assert create_model("DeiT_tiny_patch16_224", num_classes=10).classifier_name == "head"
    assert create_model("LeViT_128S", num_classes=10).classifier_name == "head"
