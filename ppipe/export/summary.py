"""An export's outcome for a person (`ppipe export` without ``--json``): one line per target with its status, its
check (the logits' max_rel_err, or the INT8 top-1 change), its speed or why it was not measured, and the CPU
engine shipped; then where the whole record is (export.json). ``--json`` prints the record itself.
"""

from __future__ import annotations

from typing import Any

__all__ = ["summary_lines"]


def summary_lines(result: dict[str, Any]) -> list[str]:
    """Lines for `result` (what `ppipe.stages.export` returns)."""
    targets = result.get("targets", {})
    built = sum(1 for t in targets.values() if t.get("status") == "built")
    shape = "x".join(str(d) for d in result.get("input_shape", []))
    where = f" into {result['out']}" if result.get("out") else ""
    lines = [f"exported at input {shape}{where}: {built} of {len(targets)} target(s) built"]
    width = max((len(n) for n in targets), default=0)
    for name, target in targets.items():
        lines.append(f"  {name:<{width}}  {_target_line(target)}")
    if result.get("report"):
        lines.append(f"the record (checks, engines, measurements): {result['report']}")
    return lines


def _target_line(target: dict[str, Any]) -> str:
    status = target.get("status", "?")
    if status != "built":
        return f"{status}: {target.get('reason', '')}"
    check = target.get("check") or {}
    parts = [status, _check(check)]
    measured = target.get("measurements") or {}
    if "latency_ms_b1" in measured:
        parts.append(f"{measured['latency_ms_b1']:.3g} ms at batch 1, {measured.get('throughput_b32', 0):.0f} img/s "
                     "at batch 32")
    elif measured.get("note"):
        parts.append(measured["note"])
    if check.get("engine"):  # the CPU engine the FP32 target ships
        parts.append(f"engine {check['engine']}")
    return "  ".join(p for p in parts if p)


def _check(check: dict[str, Any]) -> str:
    if "top1_change" in check:
        fp32, int8 = (check.get(k, {}).get("top1") for k in ("fp32", "int8"))
        change = f"top-1 {100 * check['top1_change']:+.1f} pt"
        return f"{change} ({100 * fp32:.1f}% -> {100 * int8:.1f}%)" if None not in (fp32, int8) else change
    if "max_rel_err" in check:
        return f"max_rel_err {check['max_rel_err']:.1e}"
    return ""
