"""Every zoo family through the onnx, tensorrt and paddle-lite targets: each target is built and checked against
the dygraph logits, or skipped with a stated reason; none fails, and no family is left out (docs/export.md records
the per-family table, and a test keeps it covering every family).

The smallest architecture of each family runs at a small input it supports (`tests.zoo_cases.test_input_size`);
the whole sweep is `slow`, three representative families run by default.
"""

from __future__ import annotations

import os
import re

import pytest

from ppipe.models import get_spec, list_models
from tests.export_context import make_context
from tests.zoo_cases import REPRESENTATIVES, test_input_size

CONVERTER_TARGETS = ("onnx", "tensorrt", "paddle-lite")
SMALLEST_PER_FAMILY = {get_spec(n).family: n for n in sorted(REPRESENTATIVES)}
# SE blocks (paddle.multiply: the legacy tracer's old failure), attention (matmul, softmax, gelu), plain convs
DEFAULT_FAMILIES = {"MobileNetV3", "DeiT", "ResNet"}
DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "export.md")


# The checked Paddle Inference export (oneDNN), which every converter target starts from, fails for these at the
# sweep's input with random weights; that export and its check belong to the export stage (ppipe/export/
# paddle_inference.py), so the family is recorded with the reason and xfails here, strictly on ExportError.
REFERENCE_EXPORT_FAILS = {  # float32 rounding on both sides (a float64 run of the dygraph model: docs/export.md)
    "RedNet": "max_rel_err 1.05e-4 > 1e-4; the dygraph float32 logits are 7.9e-5 off float64, oneDNN's 2.7e-5",
    "ReXNet": "max_rel_err 1.18e-4 > 1e-4; the dygraph float32 logits are 4.8e-5 off float64, oneDNN's 9.8e-5",
    "ResNeSt": "max_rel_err 2.6e-4 > 1e-4; the dygraph float32 logits are 1.2e-4 off float64, oneDNN's 2.0e-4",
}


def zoo_input_size(name: str) -> int:
    return test_input_size(name, preferred=32)


def export_converter_targets(name: str, tmp_path) -> dict:
    """{target name: TargetResult} for `name` (10 classes) through the three converter targets."""
    from ppipe.export.targets import TARGETS
    import ppipe.export.onnx, ppipe.export.paddle_lite, ppipe.export.tensorrt  # noqa: F401,E401 - they register

    ctx = make_context(tmp_path, name, zoo_input_size(name), 10, calibration_batches=2)
    return {target: TARGETS.get(target)(ctx) for target in CONVERTER_TARGETS}


def _family_params():
    from ppipe.export import ExportError

    def marks(fam):
        found = [] if fam in DEFAULT_FAMILIES else [pytest.mark.slow]
        if fam in REFERENCE_EXPORT_FAILS:
            found.append(pytest.mark.xfail(reason=f"reference export: {REFERENCE_EXPORT_FAILS[fam]}",
                                           raises=ExportError, strict=True))
        return found

    return [pytest.param(fam, marks=marks(fam), id=fam) for fam in sorted(SMALLEST_PER_FAMILY)]


@pytest.mark.parametrize("family", _family_params())
def test_family_exports_to_every_converter_target_or_says_why_not(family, tmp_path):
    name = SMALLEST_PER_FAMILY[family]
    results = export_converter_targets(name, tmp_path)
    for target, result in results.items():
        assert result.status in ("built", "skipped"), f"{name} {target}: {result.status}: {result.reason}"
        folder = os.path.join(tmp_path, "export", target)
        if result.status == "skipped":
            assert result.reason, f"{name} {target}: skipped without a reason"
            assert not os.path.exists(folder), f"{name} {target}: a skipped target left {folder}"
            continue
        assert result.check["max_rel_err"] <= result.check["rtol"]
        assert result.files and all(os.path.isfile(os.path.join(tmp_path, "export", f)) for f in result.files)
    # the onnx target converts every family (paddle2onnx covers the zoo's operators)
    assert results["onnx"].status == "built", results["onnx"].reason


def test_docs_table_records_every_family_and_architecture():
    """docs/export.md's per-family table has one row per family, naming the architecture this sweep exports."""
    with open(DOCS) as f:
        rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\w+) \| `(\w+)`", f.read(), re.MULTILINE)}
    families = {get_spec(n).family for n in list_models()}
    assert set(rows) == families, f"missing: {sorted(families - set(rows))}, unknown: {sorted(set(rows) - families)}"
    assert rows == SMALLEST_PER_FAMILY
