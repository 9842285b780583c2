"""Every zoo family through the FP32 target's OpenVINO engine (`paddle-inference-mkldnn` with
`Export.cpu_engine: openvino`, `ppipe.export.cpu_engine`): the legacy program runs in Paddle Inference's OpenVINO
engine and its logits pass the target's check (within rtol, or float64-arbitrated), or the target fails with the
engine's stated reason, and nothing is left behind; docs/export.md records the outcome per family.

Same architectures, inputs and selection as the converter sweep (`tests/test_export_zoo.py`): the smallest of each
family at a small input it supports, every family with `-m slow`, MobileNetV3, DeiT and ResNet by default.
"""

from __future__ import annotations

import dataclasses
import os
import re

import pytest

from ppipe import inference
from ppipe.config.schema import ExportSection
from ppipe.export import openvino_diagnosis
from ppipe.export.logits_check import ExportError, record_passes
from ppipe.export.paddle_inference import PREDICTOR
from ppipe.export.targets import TARGETS, TargetResult
from tests.export_context import make_context
from tests.test_export_zoo import SMALLEST_PER_FAMILY, _family_params, docs_cell, zoo_input_size

# the OpenVINO candidate alone, checked and not timed (timing is what `auto` chooses by, not what this sweep asks)
OPENVINO_ONLY = ExportSection(cpu_engine="openvino", measure_seconds=0)
NO_ENGINE = "no CPU engine passed: openvino: "


def export_with_openvino(name: str, tmp_path) -> TargetResult:
    """`name` (10 classes) through `paddle-inference-mkldnn` with the OpenVINO engine alone; a target that raises
    ("no CPU engine passed: openvino: REASON") is returned as failed with the whole message as its reason."""
    ctx = make_context(tmp_path, name, zoo_input_size(name), 10, calibration_batches=None)
    try:
        return TARGETS.get(PREDICTOR)(dataclasses.replace(ctx, settings=OPENVINO_ONLY))
    except ExportError as e:
        return TargetResult(PREDICTOR, "failed", reason=str(e))


def openvino_docs_cell(result: TargetResult) -> str:
    """`result` as docs/export.md's OpenVINO table writes it: the check, or the engine's reason on one line, less
    the candidate's temporary folder, Paddle's source location and the float64 arbitration's numbers."""
    if result.status == "built":
        return docs_cell(result)
    reason = re.sub(r"cannot create a predictor for \S+: ", "", result.reason.removeprefix(NO_ENGINE))
    reason = re.split(r"\s*\[Hint:|; against a float64", " ".join(reason.split()))[0]
    return f"{result.status}: {reason}".replace("|", "\\|")


@pytest.mark.skipif(not inference.openvino_available(), reason="this Paddle build has no OpenVINO engine")
@pytest.mark.parametrize("family", _family_params())
def test_family_runs_in_the_openvino_engine_or_says_why_not(family, tmp_path):
    name = SMALLEST_PER_FAMILY[family]
    result = export_with_openvino(name, tmp_path)
    folder = os.path.join(tmp_path, "export", PREDICTOR)
    print(f"| {family} | {zoo_input_size(name)} | {openvino_docs_cell(result)} |")
    if result.status == "failed":
        assert result.reason.startswith(NO_ENGINE) and result.reason != NO_ENGINE, result.reason
        if openvino_diagnosis.CONVERSION_FAILURE in result.reason:  # Paddle's message, which names no operator
            pytest.fail(f"{name}: the reason names no unconverted operator: {result.reason}")
        assert not os.path.exists(folder), f"{name}: the failed target left {folder}"
        return
    assert result.status == "built", result
    assert record_passes(result.check), f"{name}: {result.check}"
    assert result.check["engine"] == "openvino" and result.check["engines"] == {
        "openvino": {"status": "built", "latency_ms_b1": None, "throughput_b32": None}}
    assert result.files == [f"{PREDICTOR}/{f}" for f in ("model.pdiparams", "model.pdmodel", "predictor.json")]
    assert sorted(os.listdir(folder)) == ["model.pdiparams", "model.pdmodel", "predictor.json"]
    assert inference.load_settings(folder).engine == "openvino"
