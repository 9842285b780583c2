"""The onnx export target: paddle2onnx's conversion of the PIR export, checked with ONNX Runtime."""

from __future__ import annotations

import dataclasses
import os
import subprocess

import numpy as np
import pytest

from ppipe.export import onnx as onnx_target_module
from ppipe.export.onnx import onnx_session, onnx_target, run_onnx
from tests.export_context import make_context


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    return make_context(tmp_path_factory.mktemp("onnx"))


def test_quickstart_onnx_has_opset_17_a_dynamic_batch_and_the_dygraph_logits(quickstart):
    import onnx

    result = onnx_target(quickstart)
    assert result.status == "built", result.reason
    assert result.files == ["onnx/model.onnx"]
    path = os.path.join(quickstart.out_root, "onnx", "model.onnx")
    model = onnx.load(path)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic: any batch size
    assert result.check["max_rel_err"] <= result.check["rtol"] == 1e-4
    session = onnx_session(path)
    for n in (1, 5):
        assert run_onnx(session, np.zeros((n, 3, 32, 32), np.float32)).shape == (n, 10)
    m = result.measurements
    assert m["latency_ms_b1"] > 0 and m["throughput_b32"] > 0 and m["cpu"]


def test_logits_that_disagree_fail_the_target_with_the_numbers_and_leave_no_folder(quickstart, tmp_path):
    ctx = dataclasses.replace(quickstart, out_root=str(tmp_path / "out"),
                              reference_logits=quickstart.reference_logits + 1.0)
    result = onnx_target(ctx)
    assert result.status == "failed"
    assert "max_rel_err" in result.reason and "rtol" in result.reason
    assert not os.path.exists(tmp_path / "out" / "onnx")


def test_an_operator_paddle2onnx_lacks_skips_the_target_with_the_converter_message(quickstart, tmp_path, monkeypatch):
    message = "[ERROR] Oops, there are some operators not supported yet, including fancy_op,"

    def converter_without_the_op(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr=message)

    monkeypatch.setattr(onnx_target_module.subprocess, "run", converter_without_the_op)
    result = onnx_target(dataclasses.replace(quickstart, out_root=str(tmp_path / "out")))
    assert result.status == "skipped"
    assert "fancy_op" in result.reason and "paddle2onnx" in result.reason
    assert not os.path.exists(tmp_path / "out" / "onnx")
