"""The legacy program export (the functions Paddle 3.3.1 sank into PIR-only `_C_ops`) and the paddle-lite target."""

from __future__ import annotations

import dataclasses
import os
import stat

import numpy as np
import paddle
import pytest

from ppipe.export import lite_env
from ppipe.export.legacy import LegacyExportError, export_legacy_model
from ppipe.export.legacy_check import check_legacy_model
from ppipe.export.paddle_lite import optimize_for_lite, paddle_lite_target
from ppipe.export.target_outcome import NotApplicable
from tests.export_context import make_context


class SunkOps(paddle.nn.Layer):
    """Every kind of sunk function the zoo calls: binary (multiply), matmul with a transpose, a reduction (sum),
    unary (sigmoid, sqrt), nn.functional (gelu), a Tensor method (x.matmul) and roll."""

    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(8, 8)

    def forward(self, x):
        h = self.fc(x.reshape([x.shape[0], 2, 8]))
        attn = paddle.nn.functional.softmax(paddle.matmul(h, h, transpose_y=True), axis=-1)
        h = paddle.multiply(attn.matmul(h), paddle.nn.functional.sigmoid(h))
        h = paddle.nn.functional.gelu(h) + paddle.sqrt(paddle.abs(h) + 1.0) + paddle.roll(h, 1, axis=1)
        return paddle.sum(h, axis=1)


def test_legacy_export_traces_the_functions_paddle_sank_to_pir_only_ops(tmp_path):
    model = SunkOps()
    model.eval()
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4)).astype(np.float32)
    files = export_legacy_model(model, str(tmp_path), (1, 4, 4))
    assert files["model_file"].endswith("model.pdmodel") and os.path.isfile(files["params_file"])
    check = check_legacy_model(str(tmp_path), x, model(paddle.to_tensor(x)).numpy())  # raises above its rtol
    assert check["max_rel_err"] <= 1e-5


class Untraceable(paddle.nn.Layer):
    def forward(self, x):
        raise RuntimeError("this layer cannot be traced")


def test_legacy_export_failure_carries_paddles_error_line(tmp_path):
    with pytest.raises(LegacyExportError, match="this layer cannot be traced"):
        export_legacy_model(Untraceable(), str(tmp_path), (3, 8, 8))


def test_a_model_the_subprocess_cannot_receive_is_a_legacy_export_error(tmp_path):
    class Local(paddle.nn.Layer):  # a class defined in a function cannot be pickled
        def forward(self, x):
            return x

    with pytest.raises(LegacyExportError, match="cannot be handed"):
        export_legacy_model(Local(), str(tmp_path), (3, 8, 8))


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    return make_context(tmp_path_factory.mktemp("lite"), calibration_batches=None)


def test_quickstart_becomes_an_arm_nb_from_a_checked_legacy_program(quickstart):
    if lite_env.find_python310() is None:
        pytest.skip("no Python 3.10 here (tested by the no-python test)")
    result = paddle_lite_target(quickstart)
    assert result.status == "built", result.reason
    assert result.files == ["paddle-lite/model.nb"]
    assert os.path.getsize(os.path.join(quickstart.out_root, "paddle-lite", "model.nb")) > 10_000
    assert result.check["max_rel_err"] <= result.check["rtol"] and result.check["valid_targets"] == "arm"


def test_without_python_3_10_the_target_is_skipped_with_that_reason(quickstart, tmp_path, monkeypatch):
    monkeypatch.setenv("PPIPE_CACHE_DIR", str(tmp_path / "cache"))  # no environment built yet
    monkeypatch.setattr(lite_env, "find_python310", lambda: None)
    result = paddle_lite_target(dataclasses.replace(quickstart, out_root=str(tmp_path / "out")))
    assert result.status == "skipped" and "no Python 3.10" in result.reason
    assert not os.path.exists(tmp_path / "out" / "paddle-lite")


def test_an_operator_opt_lacks_is_not_applicable_with_its_name(tmp_path):
    fake_opt = tmp_path / "paddle_lite_opt"
    fake_opt.write_text("#!/bin/sh\necho \"Error: This model is not supported, because 1 ops are not supported on "
                        "'arm'. These unsupported ops are: 'fancy_op'.\"\nexit 1\n")
    fake_opt.chmod(fake_opt.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(NotApplicable, match="fancy_op"):
        optimize_for_lite(str(fake_opt), str(tmp_path), str(tmp_path / "model"))
