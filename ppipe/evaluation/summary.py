"""An evaluation for a person (`ppipe evaluate` without ``--json``): the headline numbers, the per-class and
calibration figures, and one line per deployment target (its top-1 on the same images and speed, or why it was not
scored). ``--json`` prints the eval.json document itself.
"""

from __future__ import annotations

from typing import Any

__all__ = ["summary_lines"]

# Keys with a place of their own below; any other number in the document (a recipe's extra metric) is listed as is.
_PLACED = {"top1", "top5", "loss", "ece", "mean_class_accuracy", "worst_class_accuracy", "num_images", "num_classes"}


def summary_lines(document: dict[str, Any]) -> list[str]:
    """Lines for `document` (what `ppipe.stages.evaluate` returns)."""
    headline = ", ".join(f"{label} {_number(document.get(key))}" for key, label in
                         (("top1", "top-1"), ("top5", "top-5"), ("loss", "loss")) if key in document)
    lines = [f"{document.get('model')} on {document.get('num_images')} {document.get('split')} images "
             f"({document.get('num_classes')} classes): {headline}",
             f"  weights: {document.get('weights')}"]
    if "mean_class_accuracy" in document:
        lines.append(f"  class accuracy: mean {_number(document['mean_class_accuracy'])}, worst "
                     f"{_number(document.get('worst_class_accuracy'))}; calibration error (ECE) "
                     f"{_number(document.get('ece'))}")
    extra = {k: v for k, v in document.items() if k not in _PLACED and "/" not in k and _is_number(v)}
    if extra:
        lines.append("  " + ", ".join(f"{k} {_number(v)}" for k, v in extra.items()))
    targets = document.get("targets") or {}
    if targets:
        lines.append("deployment targets, scored on the same images:")
        width = max(len(n) for n in targets)
        lines += [f"  {name:<{width}}  {_target_line(row)}" for name, row in targets.items()]
    return lines


def _target_line(row: dict[str, Any]) -> str:
    if row.get("top1") is None or not row.get("deployable"):
        return f"{row.get('status')}: {row.get('reason') or 'not scored'}"
    parts = [f"top-1 {_number(row['top1'])}"]
    if row.get("latency_ms_b1") is not None:
        parts.append(f"{row['latency_ms_b1']:.3g} ms at batch 1")
    if row.get("throughput_b32") is not None:
        parts.append(f"{row['throughput_b32']:.0f} img/s at batch 32")
    return ", ".join(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
