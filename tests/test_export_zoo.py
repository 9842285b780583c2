"""Every zoo family through the onnx, tensorrt and paddle-lite targets: each target is built and checked against
the dygraph logits (within rtol, or float64-arbitrated where float32 rounding alone exceeds it:
ppipe/export/logits_check.py), or skipped with a stated reason; none fails, and no family is left out
(docs/export.md records the per-family table, and a test keeps it covering every family).

The smallest architecture of each family runs at a small input it supports (`tests.zoo_cases.test_input_size`);
the whole sweep is `slow`, three representative families run by default.
"""

from __future__ import annotations

import dataclasses
import os
import re

import pytest

from ppipe.config.schema import ExportSection
from ppipe.export.logits_check import record_passes
from ppipe.models import get_spec, list_models
from tests.export_context import make_context
from tests.zoo_cases import REPRESENTATIVES, test_input_size

CONVERTER_TARGETS = ("onnx", "tensorrt", "paddle-lite")
SMALLEST_PER_FAMILY = {get_spec(n).family: n for n in sorted(REPRESENTATIVES)}
# SE blocks (paddle.multiply: the legacy tracer's old failure), attention (matmul, softmax, gelu), plain convs
DEFAULT_FAMILIES = {"MobileNetV3", "DeiT", "ResNet"}
DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "export.md")


def zoo_input_size(name: str) -> int:
    return test_input_size(name, preferred=32)


def export_converter_targets(name: str, tmp_path) -> dict:
    """{target name: TargetResult} for `name` (10 classes) through the three converter targets."""
    from ppipe.export.targets import TARGETS
    import ppipe.export.onnx, ppipe.export.paddle_lite, ppipe.export.tensorrt  # noqa: F401,E401 - they register

    # no sensitive-layer search for the Q/DQ model (tests/test_export_tensorrt.py covers it): with random weights
    # most families' Q/DQ models fail their check, and the search would add up to a minute to each of those
    ctx = dataclasses.replace(make_context(tmp_path, name, zoo_input_size(name), 10, calibration_batches=2),
                              settings=ExportSection(qdq_search_seconds=0))
    return {target: TARGETS.get(target)(ctx) for target in CONVERTER_TARGETS}


def _family_params():
    return [pytest.param(fam, marks=() if fam in DEFAULT_FAMILIES else pytest.mark.slow, id=fam)
            for fam in sorted(SMALLEST_PER_FAMILY)]


def docs_cell(result) -> str:
    """`result` as docs/export.md's per-family table writes it (printed by the sweep, shown with `-rP`)."""
    if result.status != "built":
        return f"{result.status}: {result.reason}"
    f = result.check.get("float64")
    if f is None:
        return f"built ({result.check['max_rel_err']:.1e})"
    return (f"built ({result.check['max_rel_err']:.1e}; float64: {f['export_max_rel_err']:.1e}, dygraph "
            f"{f['dygraph_max_rel_err']:.1e})")


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
        assert record_passes(result.check), f"{name} {target}: {result.check}"
        assert result.files and all(os.path.isfile(os.path.join(tmp_path, "export", f)) for f in result.files)
    print(f"| {family} | `{name}` | {zoo_input_size(name)} | "
          + " | ".join(docs_cell(results[t]) for t in CONVERTER_TARGETS) + " |")
    # the onnx target converts every family (paddle2onnx covers the zoo's operators)
    assert results["onnx"].status == "built", results["onnx"].reason
    # and ONNX Runtime quantizes every family's Q/DQ model (shipped or, with random weights, refused by its check)
    explicit = results["tensorrt"].check.get("int8_explicit", {}) if results["tensorrt"].status == "built" else {}
    assert "could not be made" not in explicit.get("reason", ""), f"{name}: {explicit['reason']}"
    print(f"{family}: Q/DQ model {'shipped' if explicit.get('onnx') else explicit.get('reason')}")


def test_docs_table_records_every_family_and_architecture():
    """docs/export.md's per-family table has one row per family, naming the architecture this sweep exports."""
    with open(DOCS) as f:
        rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\w+) \| `(\w+)`", f.read(), re.MULTILINE)}
    families = {get_spec(n).family for n in list_models()}
    assert set(rows) == families, f"missing: {sorted(families - set(rows))}, unknown: {sorted(set(rows) - families)}"
    assert rows == SMALLEST_PER_FAMILY
