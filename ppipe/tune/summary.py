"""A search for a person (`ppipe tune` without ``--json``): one line per trial (status, epochs, metric, the values it
ran with, the exploits it made under PBT), then the best trial and its recipe. ``--json`` prints results.json.
"""

from __future__ import annotations

from typing import Any

__all__ = ["summary_lines"]


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Lines for `summary` (what `ppipe.tune.run_tune` returns)."""
    trials = summary.get("trials") or []
    lines = [f"{len(trials)} trial(s) in {summary.get('experiment')}"]
    lines += [f"  {_trial_line(t)}" for t in trials]
    best = summary.get("best")
    if best:
        lines.append(f"best: trial {best.get('trial_id')} with {_score(best.get('top1'))}, {_values(best['config'])}")
        lines.append(f"  its recipe: {best.get('recipe')}")
    else:
        lines.append("best: none (no trial reported the metric)")
    return lines


def _trial_line(trial: dict[str, Any]) -> str:
    parts = [str(trial.get("trial_id")), str(trial.get("status")), f"{trial.get('epochs')} epoch(s)",
             _score(trial.get("top1")), _values(trial.get("config") or {})]
    exploits = trial.get("exploits") or []
    if exploits:
        parts.append("exploited " + ", ".join(f"{e.get('donor')} at epoch {e.get('epoch')}" for e in exploits))
    if trial.get("error"):
        parts.append(f"error: {str(trial['error']).splitlines()[0]}")
    return "  ".join(parts)


def _score(value: Any) -> str:
    return f"metric {value:.4f}" if isinstance(value, float) else "no metric"


def _values(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())
