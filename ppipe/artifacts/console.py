"""`ppipe artifacts show` and `diff` for people: the same documents as their `--json`, as short text."""

from __future__ import annotations

from typing import Any


def _scalar(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _parent(p: dict) -> str:
    return f"{p.get('role')} {p.get('ref') or p.get('path', '?')}"


def format_show(shown: dict[str, Any]) -> str:
    lineage = shown.get("lineage") or {}
    code = lineage.get("code") or {}
    data = lineage.get("data") or {}
    lines = [f"{shown['name']}:{shown['version']}  created {shown.get('created')}  {shown.get('uri')}",
             f"  aliases:  {', '.join(shown.get('aliases') or []) or '-'}",
             "  metrics:  " + (", ".join(f"{k}={_scalar(v)}" for k, v in sorted((shown.get("metrics") or {}).items()))
                               or "-"),
             f"  targets:  {', '.join(shown.get('targets') or []) or '-'}"]
    if lineage:
        dirty = " (dirty)" if code.get("dirty") else ""
        lines += [f"  code:     {code.get('commit', 'unknown')}{dirty}",
                  f"  data:     {data.get('manifest_sha256', 'unknown')}  {data.get('url', '')}".rstrip(),
                  f"  run:      {lineage.get('run_name') or '-'}  flow run: {lineage.get('flow_run_id') or '-'}",
                  f"  parents:  {', '.join(_parent(p) for p in lineage.get('parents') or []) or '-'}",
                  f"  classes:  {len(lineage.get('class_names') or [])}"]
    lines.append(f"  files ({len(shown.get('files') or {})}):")
    lines += [f"    {rel}  {info['size']} B  sha256 {info['sha256'][:12]}" for rel, info in
              sorted((shown.get("files") or {}).items())]
    card = shown.get("model_card")
    if card:
        lines += _model_card_lines(card)
    history = shown.get("alias_history") or []
    if history:
        lines.append("  alias history:")
        lines += [f"    {e.get('at')}  {e.get('alias')}: {e.get('from') or 'unset'} -> {e.get('version')}  by "
                  f"{e.get('by')}" + (f"  gates {', '.join(e['gates'])}" if e.get("gates") else "") for e in history]
    return "\n".join(lines)


def _model_card_lines(card: dict[str, Any]) -> list[str]:
    """The model card's verdicts in a few lines: what a reviewer reads before `promote` (the whole card is
    model_card.md in the artifact)."""
    lines = ["  model card (model_card.md):"]
    for key in ("model", "published", "metrics", "calibration", "targets"):
        value = card.get(key)
        if isinstance(value, dict):
            lines.append(f"    {key}: " + ", ".join(f"{k}={_scalar(v)}" for k, v in value.items()
                                                   if not isinstance(v, (dict, list))))
        elif key == "targets" and isinstance(value, list):
            lines.append("    targets:")
            lines += [_target_line(row) for row in value if isinstance(row, dict)]
        elif isinstance(value, list):
            lines.append(f"    {key}: {len(value)} entries")
    return lines


def _target_line(row: dict[str, Any]) -> str:
    """One deployment target of the card: its status, its top-1 and on what it was measured, or why it has none."""
    top1 = row.get("top1")
    scored = (f"top1={_scalar(top1)} on {row.get('num_images')} images" if top1 is not None
              else "not scored")
    latency = row.get("latency_ms_b1")
    speed = f", {_scalar(latency)} ms at batch 1" if isinstance(latency, (int, float)) else ""
    reason = f"  ({_clip(row['reason'])})" if row.get("reason") and row.get("status") != "built" else ""
    return f"      {row.get('name')}: {row.get('status')}, {scored}{speed}{reason}"


def format_diff(d: dict[str, Any]) -> str:
    lines = [f"{d['a']} -> {d['b']}"]
    for k, m in d["metrics"].items():
        delta = f"  ({m['delta']:+.6g})" if "delta" in m else ""
        lines.append(f"  metric {k}: {_scalar(m['a'])} -> {_scalar(m['b'])}{delta}")
    files = d["files"]
    for kind in ("added", "removed", "changed"):
        lines += [f"  file {kind}: {rel}" for rel in files[kind]]
    lines.append(f"  files unchanged: {files['unchanged']}")
    for kind in ("added", "removed"):
        lines += [f"  target {kind}: {t}" for t in d["targets"][kind]]
    for section in ("lineage", "metadata"):
        lines += [f"  {section} {k}: {_scalar(v['a'])} -> {_scalar(v['b'])}" for k, v in d[section].items()]
    return "\n".join(lines)


def _clip(text: str, limit: int = 160) -> str:
    """A reason on one console line; the whole text is in model_card.md and `--json`."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
