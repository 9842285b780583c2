"""A finished training run for a person (`ppipe train` without ``--json``): what was trained, how far, how well and
how fast, and where the run's files are. ``--json`` prints the train.json document itself.
"""

from __future__ import annotations

from typing import Any

__all__ = ["summary_lines"]


def summary_lines(result: dict[str, Any]) -> list[str]:
    """Lines for `result` (what `ppipe.stages.train` returns)."""
    top1 = result.get("top1")
    scored = f"val top-1 {top1:.4f}" if isinstance(top1, float) else "not validated"
    restarts = result.get("restarts") or 0
    survived = f", after {restarts} worker restart{'s' if restarts != 1 else ''}" if restarts else ""
    return [f"trained {result.get('model')} ({result.get('precision')}) for {result.get('epochs_completed')} "
            f"epoch(s) in run {result.get('run_name')}{survived}: {scored}, "
            f"{result.get('train_img_per_s') or 0:.1f} img/s",
            f"  run folder: {result.get('run_dir')}",
            f"  last checkpoint: {result.get('checkpoint')}"]
