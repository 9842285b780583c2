"""What a flow run handled, as Prefect artifacts: a table (one row per model: status, metrics, target latencies,
artifact refs, promotion, skip/failure reasons) and a markdown summary with the wandb runs the run wrote
(offline run folders when wandb is offline; none when it is disabled)."""

from __future__ import annotations

import glob
import os
import re
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

COLUMNS = ["model", "status", "ref", "top1", "top5", "latency_ms", "promotion", "reason"]


def _latencies(exported: dict | None) -> str:
    """`target=ms` for every exported target that measured a batch-1 latency."""
    parts = []
    for name, result in ((exported or {}).get("targets") or {}).items():
        latency = ((result or {}).get("measurements") or {}).get("latency_ms_b1") if isinstance(result, dict) else None
        if isinstance(latency, (int, float)):
            parts.append(f"{name}={latency:.2f}")
    return ", ".join(parts)


def _promotion(outcome: dict | None) -> str:
    if not outcome:
        return ""
    return f"{'promoted to' if outcome['promoted'] else 'not promoted to'} @{outcome['alias']} ({outcome['reason']})"


def table_rows(rows: list[dict]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        metrics = row.get("metrics") or {}
        out.append({"model": row["model"], "status": row.get("status", ""), "ref": row.get("ref", ""),
                    "top1": metrics.get("top1"), "top5": metrics.get("top5"),
                    "latency_ms": _latencies(row.get("export")), "promotion": _promotion(row.get("promotion")),
                    "reason": row.get("reason", "")})
    return out


def wandb_runs(output_dirs: list[str], since: float) -> list[str]:
    """The wandb run folders (`<output_dir>/wandb/[offline-]run-*`) written since `since` (a Unix time)."""
    found = []
    for out in dict.fromkeys(output_dirs):
        for path in sorted(glob.glob(os.path.join(os.path.abspath(out), "wandb", "*run-*"))):
            if os.path.isdir(path) and os.path.getmtime(path) >= since:
                found.append(path)
    return found


def _markdown(title: str, rows: list[dict], runs: list[str]) -> str:
    def cell(v: Any) -> str:
        return "" if v is None else re.sub(r"\s+", " ", str(v)).replace("|", "\\|")

    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in table_rows(rows)]
    counts = {s: sum(r.get("status") == s for r in rows) for s in ("published", "skipped", "failed")}
    lines += ["", ", ".join(f"{n} {s}" for s, n in counts.items()), "", "## wandb runs"]
    lines += [f"- [{os.path.basename(p)}](file://{p})" for p in runs] or ["- none (wandb disabled or no training ran)"]
    return "\n".join(lines) + "\n"


def publish_report(key: str, title: str, rows: list[dict], output_dirs: list[str], since: float) -> str:
    """Create the flow run's table and markdown artifacts under `key` (lowercase letters, digits, dashes);
    returns the markdown."""
    markdown = _markdown(title, rows, wandb_runs(output_dirs, since))
    create_table_artifact(table=table_rows(rows), key=f"{key}-models", description=title)
    create_markdown_artifact(markdown=markdown, key=f"{key}-summary", description=title)
    return markdown
