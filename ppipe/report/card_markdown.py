"""The Markdown face of a model card, rendered from the card's JSON document so the two never disagree."""

from __future__ import annotations

import re
from typing import Any

FIGURE_TITLES = {"reliability": "Reliability diagram", "confusion_matrix": "Confusion matrix",
                 "worst_classes": "Least accurate classes"}
LINEAGE_LABELS = {"run_name": "Run", "git_commit": "Git commit", "git_dirty": "Uncommitted changes",
                  "data_identity": "Data identity", "parents": "Parents", "flow_run_id": "Prefect flow run",
                  "preprocessing": "Preprocessing (eval transforms)", "class_names": "Class ids (dataset folders)"}
# lineage.json entries the card shows in their own section: not repeated (the JSON card keeps them)
LINEAGE_SHOWN_ELSEWHERE = {"config": "Recipe", "data": "Data"}
CLASS_NAMES_SHOWN = 20
NONE = "—"


def _text(value: Any) -> str:
    """A value as plain text: a mapping as `key: value, ...`, a list comma-separated, None as a dash."""
    if value is None:
        return NONE
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _cell(value: Any) -> str:
    """A value as one Markdown table cell: pipes escaped, newlines flattened."""
    return _text(value).replace("|", "\\|").replace("\n", " ")


def _names(names: list[str]) -> str:
    """The first `CLASS_NAMES_SHOWN` names in backticks, and how many there are in all."""
    shown = ", ".join(f"`{n}`" for n in names[:CLASS_NAMES_SHOWN])
    return shown + (f", ... ({len(names)} in all; full list in model_card.json)" if len(names) > CLASS_NAMES_SHOWN
                    else "")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.2f}%"


def _pp(delta: float | None) -> str | None:
    return None if delta is None else f"{100 * delta:+.2f} pp"


def _num(x: float | None, fmt: str) -> str | None:
    return None if x is None else format(x, fmt)


def _size(side: int | str | None) -> str | None:
    """A square input's side as "224 x 224"; "HxW" as the card writes a non-square one."""
    if side is None:
        return None
    return f"{side} x {side}" if isinstance(side, int) else str(side).replace("x", " x ")


def _yes_no(flag: bool | None) -> str | None:
    return None if flag is None else "yes" if flag else "no"


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so the recipe cannot close it early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _figure(card: dict, kind: str) -> list[str]:
    path = card["images"].get(kind)
    title = FIGURE_TITLES.get(kind, kind.replace("_", " ").capitalize())
    return [f"![{title}]({path})", ""] if path else []


def _model_lines(card: dict) -> list[str]:
    m = card["model"]
    lines = [f"# Model card: {m['arch']}", ""]
    if run := card["lineage"].get("run_name"):
        lines += [f"Run `{run}`.", ""]
    lines += ["## Model", ""]
    lines += _table(["Field", "Value"], [
        ["Architecture", m["arch"]], ["Family", m["family"]],
        ["Parameters (ImageNet-1k head)", f"{m['params_m']} M"], ["FLOPs", f"{m['flops_g']} G"],
        ["Input size", _size(m["input_size"])], ["Input size from", m.get("input_size_source")],
        ["PaddleClas's input size", _size(m.get("spec_input_size"))], ["Classes", m["num_classes"]],
        ["Published weights", m["published_weights"]]])
    return lines + [f"Classes: {_names(card['class_names'])}", ""]


def _metrics_lines(card: dict) -> list[str]:
    s = card["metrics"]
    lines = ["## Evaluation", ""]
    lines += _table(["Metric", "Value"], [
        ["Top-1", _pct(s["top1"])], ["Top-5", _pct(s["top5"])], ["Loss", _num(s["loss"], ".4f")],
        ["Expected calibration error", _pct(s["ece"])], ["Mean per-class accuracy", _pct(s["mean_class_accuracy"])],
        ["Images", s["num_images"]]])
    published = card["published"]
    lines += ["### Against PaddleClas's published top-1", ""]
    if published["reason"]:
        lines += [published["reason"], ""]
    if published["results"]:
        lines += _table(["Published model", "Weights", "Input", "Published top-1", "This model", "Delta"],
                        [[r["model"], r["weights"], r["input_size"], _pct(r["top1"]),
                          _pct(s["top1"]) if published["applies"] else None, _pp(r["delta_top1"])]
                         for r in published["results"]])
    lines += ["### Least accurate classes", ""]
    lines += _table(["Class", "Images", "Correct", "Accuracy"],
                    [[c["name"], c["support"], c["correct"], _pct(c["accuracy"])] for c in card["worst_classes"]])
    lines += ["### Most confused pairs", ""]
    if card["confused_pairs"]:
        lines += _table(["True class", "Predicted as", "Images", "Share of true class"],
                        [[p["true_name"], p["pred_name"], p["count"], _pct(p["share"])]
                         for p in card["confused_pairs"]])
    else:
        lines += ["No image was misclassified.", ""]
    return lines + _figure(card, "confusion_matrix") + _figure(card, "worst_classes")


def _calibration_lines(card: dict) -> list[str]:
    c = card["calibration"]
    lines = ["## Calibration", "",
             f"Expected calibration error: {_pct(c['ece'])} ({c['num_bins']} equal-width confidence bins).", ""]
    return lines + _figure(card, "reliability")


def _targets_lines(card: dict) -> list[str]:
    lines = ["## Deployment targets", ""]
    if not card["targets"]:
        return lines + ["No deployment target was exported.", ""]
    lines += ["Every target the export tried. Only the deployable ones are published; the top-1 of each is "
              "measured on the images its row names, and its delta is against the FP32 model on those images.", ""]
    return lines + _table(
        ["Target", "Status", "Deployable", "Latency b=1 (ms)", "Throughput b=32 (img/s)", "Top-1", "Top-5",
         "Measured on", "Delta vs FP32 model", "Note"],
        [[t["name"], t["status"], _yes_no(t["deployable"]), _num(t["latency_ms_b1"], ".2f"),
          _num(t["throughput_b32"], ".1f"), _pct(t["top1"]), _pct(t["top5"]), t["measured_on"], _pp(t["delta_top1"]),
          t["reason"]] for t in card["targets"]])


def _operator(op: Any) -> str:
    """A transform operator as `Name(key=value, ...)`."""
    if not isinstance(op, dict):
        return str(op)
    return " ".join(f"{name}(" + ", ".join(f"{k}={v}" for k, v in (params or {}).items()) + ")"
                    for name, params in op.items())


def _parent(parent: Any) -> str:
    if not isinstance(parent, dict):
        return str(parent)
    digest = f" sha256 {parent['sha256'][:12]}" if parent.get("sha256") else ""
    return f"{parent.get('role', '?')}: {parent.get('ref') or parent.get('path', '?')}{digest}"


def _lineage_rows(lineage: dict) -> list[list[Any]]:
    """lineage.json (`ppipe.lineage`) as rows a reviewer reads; what another section shows is pointed to."""
    rows: list[list[Any]] = []
    for key, value in lineage.items():
        if key in LINEAGE_SHOWN_ELSEWHERE:
            rows.append([key.capitalize(), f"in the {LINEAGE_SHOWN_ELSEWHERE[key]} section"])
        elif key == "class_names" and isinstance(value, list):
            rows.append([LINEAGE_LABELS[key], _names([str(v) for v in value])])
        elif key == "code" and isinstance(value, dict):
            rows.append(["Git commit", f"{value.get('commit')}" + (" (uncommitted changes)" if value.get("dirty")
                                                                     else "")])
        elif key == "parents" and isinstance(value, list):
            rows.append([LINEAGE_LABELS[key], [_parent(p) for p in value] or "none"])
        elif key == "preprocessing" and isinstance(value, list):
            rows.append([LINEAGE_LABELS[key], " → ".join(_operator(op) for op in value)])
        else:
            rows.append([LINEAGE_LABELS.get(key, key), value])
    return rows


def _provenance_lines(card: dict) -> list[str]:
    lines = ["## Data", ""]
    version = card["data_version"]
    if isinstance(version, dict):
        lines += _table(["Field", "Value"], [[k, v] for k, v in version.items()])
    else:
        lines += [f"Data version: `{version}`", ""]
    lines += ["## Lineage", ""]
    rows = _lineage_rows(card["lineage"])
    lines += _table(["Field", "Value"], rows) if rows else ["No lineage was recorded.", ""]
    fence = _fence(card["recipe_yaml"])
    return lines + ["## Recipe", "", "The resolved configuration this model was trained with:", "",
                    f"{fence}yaml", card["recipe_yaml"].rstrip("\n"), fence, ""]


def _other_figures(card: dict) -> list[str]:
    others = [k for k in card["images"] if k not in FIGURE_TITLES]
    if not others:
        return []
    return ["## Other figures", ""] + [line for k in others for line in _figure(card, k)]


def render_markdown(card: dict) -> str:
    lines = (_model_lines(card) + _metrics_lines(card) + _calibration_lines(card) + _targets_lines(card)
             + _provenance_lines(card) + _other_figures(card))
    return "\n".join(lines).rstrip("\n") + "\n"
