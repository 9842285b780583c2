"""PaddleClas checkpoints load into ppipe's models and give PaddleClas's logits; bad checkpoints are refused."""

from __future__ import annotations

import os
import warnings

import numpy as np
import paddle
import pytest

pytest.importorskip("paddleclas", reason="paddleclas (the test oracle) is not installed")

from ppipe.models import CheckpointMismatchError, create_model, load_pretrained  # noqa: E402
from tests.zoo_cases import build_oracle, test_input_size, zoo_params  # noqa: E402


def _oracle(name: str, seed: int = 0) -> paddle.nn.Layer:
    """PaddleClas's model, with random BatchNorm statistics so that misplaced ones would show in the logits."""
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():
        model = build_oracle(name)
    rng = np.random.default_rng(seed)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    for k, v in state.items():
        if k.endswith("_variance"):
            state[k] = rng.uniform(0.5, 1.5, v.shape).astype(v.dtype)
        elif k.endswith("_mean"):
            state[k] = (v + rng.normal(0.0, 0.1, v.shape)).astype(v.dtype)
    model.set_state_dict(state)
    model.eval()
    return model


def _save(state: dict, path) -> str:
    paddle.save(state, str(path))
    return str(path)


def _assert_same_logits(name: str, tmp_path) -> None:
    oracle = _oracle(name)
    path = _save(oracle.state_dict(), tmp_path / f"{name}_pretrained.pdparams")
    model = create_model(name, pretrained=path)
    os.remove(path)  # the whole zoo's checkpoints would take ~30 GB of disk by the end of the sweep
    model.eval()
    size = test_input_size(name)
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 3, size, size)).astype("float32"))
    # float64 norms: deep models with random BN statistics reach logits near 1e19, whose float32 norm is inf
    want, got = oracle(x).numpy().astype(np.float64), model(x).numpy().astype(np.float64)
    assert np.isfinite(want).all() and np.abs(want).max() > 0
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4


@pytest.mark.parametrize("name", zoo_params())
def test_paddleclas_checkpoint_gives_paddleclas_logits(name, tmp_path):
    _assert_same_logits(name, tmp_path)


@pytest.fixture(scope="module")
def good_state() -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in _oracle("PPLCNet_x0_25").state_dict().items()}


def test_checkpoint_missing_keys_is_refused_naming_all_of_them(good_state, tmp_path):
    state = dict(good_state)
    del state["blocks5.3.dw_conv.bn._mean"], state["conv1.conv.weight"]
    with pytest.raises(CheckpointMismatchError, match="missing keys") as info:
        create_model("PPLCNet_x0_25", pretrained=_save(state, tmp_path / "m.pdparams"))
    assert "blocks5.3.dw_conv.bn._mean" in str(info.value) and "conv1.conv.weight" in str(info.value)
    assert sorted(info.value.missing) == ["blocks5.3.dw_conv.bn._mean", "conv1.conv.weight"]


def test_checkpoint_with_an_unexpected_key_is_refused_naming_it(good_state, tmp_path):
    state = dict(good_state, **{"blocks6.1.se.conv3.weight": np.zeros([4, 4, 1, 1], "float32")})
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \(1\): blocks6\.1\.se\.conv3\.weight"):
        create_model("PPLCNet_x0_25", pretrained=_save(state, tmp_path / "u.pdparams"))


def test_checkpoint_with_a_wrong_shape_is_refused_naming_key_and_shapes(good_state, tmp_path):
    state = dict(good_state)
    state["blocks4.1.pw_conv.conv.weight"] = np.zeros([16, 32, 1, 1], "float32")
    with pytest.raises(CheckpointMismatchError, match=r"blocks4\.1\.pw_conv\.conv\.weight \(checkpoint \[16, 32, 1, "
                                                      r"1\], model \[32, 32, 1, 1\]\)"):
        create_model("PPLCNet_x0_25", pretrained=_save(state, tmp_path / "s.pdparams"))


def test_refused_checkpoint_leaves_the_model_untouched(good_state):
    model = create_model("PPLCNet_x0_25")
    before = model.conv1.conv.weight.numpy().copy()
    state = dict(good_state)
    del state["fc.bias"]
    with pytest.raises(CheckpointMismatchError, match="fc.bias"):
        load_pretrained(model, state, drop_classifier=False)
    np.testing.assert_array_equal(model.conv1.conv.weight.numpy(), before)


def test_fine_tuning_loads_all_but_a_differently_sized_classifier_and_warns(good_state, tmp_path):
    path = _save(good_state, tmp_path / "ft.pdparams")
    with pytest.warns(UserWarning, match=r"classifier not loaded.*fc\.weight \[1280, 1000\]"):
        model = create_model("PPLCNet_x0_25", num_classes=10, pretrained=path)
    assert model.fc.weight.shape == [1280, 10]
    np.testing.assert_array_equal(model.last_conv.weight.numpy(), good_state["last_conv.weight"])
    np.testing.assert_array_equal(model.blocks6[1].se.conv2.bias.numpy(), good_state["blocks6.1.se.conv2.bias"])
    with pytest.raises(CheckpointMismatchError, match="fc.weight"):
        create_model("PPLCNet_x0_25", num_classes=10, pretrained=path, drop_classifier=False)
    with pytest.warns(UserWarning, match="classifier not loaded"):
        headless = create_model("PPLCNet_x0_25", num_classes=0, pretrained=path)
    np.testing.assert_array_equal(headless.last_conv.weight.numpy(), good_state["last_conv.weight"])


def test_drop_classifier_true_keeps_fresh_classifier_even_when_shapes_fit(good_state):
    model = create_model("PPLCNet_x0_25")
    fresh = model.fc.weight.numpy().copy()
    with pytest.warns(UserWarning, match="classifier not loaded"):
        report = load_pretrained(model, good_state, drop_classifier=True)
    assert report.skipped_classifier == ["fc.bias", "fc.weight"]
    np.testing.assert_array_equal(model.fc.weight.numpy(), fresh)
    np.testing.assert_array_equal(model.conv1.conv.weight.numpy(), good_state["conv1.conv.weight"])


def test_matching_checkpoint_loads_without_warnings(good_state):
    model = create_model("PPLCNet_x0_25")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        report = load_pretrained(model, good_state)
    assert report.skipped_classifier == [] and len(report.loaded) == len(good_state)
    np.testing.assert_array_equal(model.fc.weight.numpy(), good_state["fc.weight"])


def test_checkpoint_path_may_omit_the_pdparams_suffix_like_paddleclas(good_state, tmp_path):
    _save(good_state, tmp_path / "best_model.pdparams")
    model = create_model("PPLCNet_x0_25", pretrained=tmp_path / "best_model")
    np.testing.assert_array_equal(model.fc.bias.numpy(), good_state["fc.bias"])
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        create_model("PPLCNet_x0_25", pretrained=str(tmp_path / "no_such_model"))


def test_family_key_map_is_applied_before_matching(good_state):
    model = create_model("PPLCNet_x0_25")
    renamed = {f"backbone.{k}": v for k, v in good_state.items()}
    model.remap_checkpoint = lambda state: {k.removeprefix("backbone."): v for k, v in state.items()}
    load_pretrained(model, renamed)
    np.testing.assert_array_equal(model.blocks2[0].pw_conv.bn._variance.numpy(),
                                  good_state["blocks2.0.pw_conv.bn._variance"])
