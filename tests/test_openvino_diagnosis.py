"""`ppipe.export.openvino_diagnosis`: a program OpenVINO's Paddle front end cannot convert fails the OpenVINO
candidate with the operators it left unconverted (read from the engine's verbose log in a child process), not
with Paddle's message that names none; a program it converts is reported as such."""

from __future__ import annotations

import subprocess

import pytest

from ppipe import inference
from ppipe.export import openvino_diagnosis as diagnosis
from ppipe.export.legacy import export_legacy_model
from ppipe.models import create_model

needs_openvino = pytest.mark.skipif(not inference.openvino_available(), reason="this Paddle build has no OpenVINO")


def _legacy_program(name: str, size: int, folder) -> str:
    import paddle

    paddle.seed(0)
    model = create_model(name, num_classes=10)
    model.eval()
    export_legacy_model(model, str(folder), (3, size, size))
    return str(folder)


def test_the_log_lines_give_operator_types_in_graph_order(monkeypatch):
    stderr = ("I1206 08:48:49.298107  6835 engine.cc:95] Can't convert op:unfold_0.tmp_0 to openvino op.\n"
              "some other line\n"
              "I1206 08:48:49.298146  6835 engine.cc:95] Can't convert op:unbind_3.tmp_1 to openvino op.\n"
              "I1206 08:48:49.298154  6835 engine.cc:95] Can't convert op:unfold_1.tmp_0 to openvino op.\n"
              "I1206 08:48:49.298158  6835 engine.cc:95] Can't convert op:custom_name to openvino op.\n")
    seen = {}

    def fake_run(cmd, env, **kwargs):
        seen.update(cmd=cmd, env=env)
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(diagnosis.subprocess, "run", fake_run)
    counts = diagnosis.unconverted_operators("/some/folder")
    assert counts == {"unfold": 2, "unbind": 1, "custom_name": 1}
    assert list(counts) == ["unfold", "unbind", "custom_name"]
    assert seen["cmd"][-1] == "/some/folder" and seen["env"]["GLOG_vmodule"] == "engine=3"
    assert seen["env"]["GLOG_minloglevel"] == "0"  # whatever a ppipe console set for its processes
    text = diagnosis.describe_unconverted(counts)
    assert "unfold (2 nodes), unbind (1 node), custom_name (1 node)" in text
    assert "the first is where conversion stops" in text


def test_a_child_that_says_nothing_tells_nothing(monkeypatch):
    monkeypatch.setattr(diagnosis.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "Segmentation fault\n"))
    assert diagnosis.unconverted_operators("/x") is None
    assert diagnosis.describe_unconverted(None) == "" and diagnosis.describe_unconverted({}) == ""

    def timeout(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, 1)

    monkeypatch.setattr(diagnosis.subprocess, "run", timeout)
    assert diagnosis.unconverted_operators("/x") is None


@needs_openvino
def test_rednet_s_involution_is_named_as_what_openvino_cannot_convert(tmp_path):
    # RedNet's involution as trained (not re-parameterized: the export's form has no unfold) unfolds its input
    # (`paddle.nn.functional.unfold`), which the front end lacks
    counts = diagnosis.unconverted_operators(_legacy_program("RedNet26", 32, tmp_path / "rednet"))
    assert counts and next(iter(counts)) == "unfold", counts


@needs_openvino
def test_a_program_openvino_converts_has_nothing_unconverted(tmp_path):
    assert diagnosis.unconverted_operators(_legacy_program("MobileNetV3_small_x0_35", 32, tmp_path / "mnv3")) == {}
