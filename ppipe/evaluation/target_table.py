"""The evaluation's table of deployment targets: one row for EVERY target the run's export recorded (built,
skipped, failed, or refused by its accuracy gate), with its status and why, its speed, its top-1 and what that
top-1 was measured on, so a reviewer sees what did not ship as well as what did.

- A built target's top-1 is scored on the same val split as the model (`ppipe.evaluation.targets`); where
  that is a stand-in for the target's own runtime (TensorRT's Q/DQ model in ONNX Runtime), `measured_on` says so.
- An INT8 target its accuracy gate refused is gone from the run (the export deletes whatever a failed target
  left), so its row carries the gate's own measurement instead: top-1/top-5 of the INT8 and the FP32 predictor
  on the first `Export.int8_eval_images` val images. It is marked refused and not deployable: publish ships only
  built targets (`RunDir.export_record().built()`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ppipe.evaluation.targets import SCORED_AS

REFUSED = "refused"
REASON_CHARS = 300  # a converter's whole traceback stays in export.json; the table gives its first line
_NUMPY_SCALAR = re.compile(r"np\.\w+\(([^()]*)\)")  # numpy 2 writes np.float64(0.5) in a dict's repr


@dataclass(frozen=True)
class GateMeasurement:
    """What an INT8 target's accuracy gate measured (`ppipe.export.int8`): the INT8 and the FP32 predictor on
    the same first `num_images` val images, and the top-1 drop it allows."""

    top1: float
    top5: float | None
    num_images: int
    fp32_top1: float | None
    max_top1_drop: float | None


@dataclass(frozen=True)
class TargetRow:
    """One target in the evaluation's table and the model card. `top1`/`top5` are measured on `measured_on`
    (`num_images` val images); `reference_top1` is the FP32 model's top-1 on those same images."""

    name: str
    status: str            # built | skipped | failed (as export.json says) | refused (its accuracy gate)
    deployable: bool       # built, checked, and published with the model
    reason: str | None     # why not built or not scored; for a built target a note (the CPU engine it ships)
    latency_ms_b1: float | None = None
    throughput_b32: float | None = None
    top1: float | None = None
    top5: float | None = None
    num_images: int | None = None
    measured_on: str | None = None
    reference_top1: float | None = None


def _gate_record(entry: Mapping[str, Any]) -> dict | None:
    """The gate's record: in `check` where the target was built; a refused target's is in its reason, after the
    message (`ExportError: INT8 loses 0.84 top-1 (> 0.01): {...}`)."""
    check = entry.get("check")
    if isinstance(check, Mapping) and isinstance(check.get("int8"), Mapping):
        return dict(check)
    reason = str(entry.get("reason") or "")
    start = reason.find("{")
    if start < 0:
        return None
    try:
        record = ast.literal_eval(_NUMPY_SCALAR.sub(r"\1", reason[start:].strip()))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("int8"), Mapping) else None


def gate_measurement(entry: Mapping[str, Any]) -> GateMeasurement | None:
    """The accuracy gate's measurement recorded in a target's export.json entry; None when it records none."""
    record = _gate_record(entry)
    if record is None:
        return None
    int8, fp32 = record["int8"], record.get("fp32") or {}
    try:
        return GateMeasurement(top1=float(int8["top1"]), top5=_float(int8.get("top5")),
                               num_images=int(int8["num_images"]), fp32_top1=_float(fp32.get("top1")),
                               max_top1_drop=_float(record.get("max_top1_drop")))
    except (KeyError, TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _first_line(text: Any) -> str | None:
    lines = str(text or "").strip().splitlines()
    return lines[0][:REASON_CHARS] if lines else None


def _refused_reason(gate: GateMeasurement) -> str:
    against = "" if gate.fp32_top1 is None else (
        f" against FP32 {gate.fp32_top1:.4f} (a drop of {gate.fp32_top1 - gate.top1:.4f}"
        + ("" if gate.max_top1_drop is None else f"; at most {gate.max_top1_drop} allowed") + ")")
    return (f"refused by the export's INT8 accuracy gate: top-1 {gate.top1:.4f}{against} on the first "
            f"{gate.num_images} val images; not deployable, not published")


def target_row(name: str, entry: Mapping[str, Any], *, scored_top1: float | None, not_scored: str | None,
               num_images: int, split: str = "val") -> TargetRow:
    """The row of target `name` from its export.json `entry` and the evaluation's outcome: `scored_top1` on
    `num_images` images of `split`, or `not_scored` (why it was not)."""
    measured = entry.get("measurements") or {}
    speed = {k: measured.get(k) for k in ("latency_ms_b1", "throughput_b32")}
    status = str(entry.get("status") or "unknown")
    if status == "built":
        notes = [_engine_note(entry.get("check")), _speed_note(measured)]
        if scored_top1 is not None:
            measured_on = f"the {split} split ({num_images} images)" + (
                f": {SCORED_AS[name]}" if name in SCORED_AS else "")
            return TargetRow(name, status, True, "; ".join(filter(None, notes)) or None, **speed, top1=scored_top1,
                             num_images=num_images, measured_on=measured_on)
        unscored = f"not scored: {not_scored or 'no evaluation of it was recorded'}"
        return TargetRow(name, status, True, "; ".join(filter(None, (unscored, *notes))), **speed)
    gate = gate_measurement(entry)
    if gate is None:
        return TargetRow(name, status, False, _first_line(entry.get("reason")), **speed)
    return TargetRow(name, REFUSED, False, _refused_reason(gate), **speed, top1=gate.top1, top5=gate.top5,
                     num_images=gate.num_images, reference_top1=gate.fp32_top1,
                     measured_on=f"the INT8 accuracy gate: the first {gate.num_images} {split} images")


def _speed_note(measured: Mapping[str, Any]) -> str | None:
    """Why the export measured no speed on its machine (export.json's `measurements.note`: an ARM or GPU target),
    when it did not."""
    if measured.get("latency_ms_b1") is not None or not measured.get("note"):
        return None
    return f"speed {_first_line(measured['note'])}"


def _engine_note(check: Any) -> str | None:
    """Which CPU engine a target timed its candidates for and shipped (`ppipe.export.cpu_engine`: check's
    `engine` and `engines`), in a few words; None for a target without that choice."""
    if not isinstance(check, Mapping) or not isinstance(check.get("engines"), Mapping) or not check.get("engine"):
        return None
    chosen, engines = str(check["engine"]), check["engines"]
    timed = [e for e, r in engines.items() if e != chosen and isinstance(r, Mapping) and r.get("status") == "built"]
    failed = [e for e, r in engines.items() if e != chosen and e not in timed]
    why = ([f"timed faster than {', '.join(timed)} on the exporting machine"] if timed else []) + \
        [f"{e} failed: {_first_line(engines[e].get('reason') if isinstance(engines[e], Mapping) else None)}"
         for e in failed]
    return f"engine: {chosen}" + (f" ({'; '.join(why)})" if why else "")


def target_table(targets: Mapping[str, Mapping[str, Any]], scored_top1: Mapping[str, float],
                 not_scored: Mapping[str, str], num_images: int, split: str = "val") -> dict[str, dict[str, Any]]:
    """{target: its row's fields but the name} of every target in `targets` (`RunDir.export_record().targets`),
    in name order: eval.json's `targets` and the model card's rows."""
    rows = (target_row(name, targets[name], scored_top1=scored_top1.get(name), not_scored=not_scored.get(name),
                       num_images=num_images, split=split) for name in sorted(targets))
    return {row.name: {k: v for k, v in asdict(row).items() if k != "name"} for row in rows}
