"""The evaluate stage's files, laid out for DVC (`dvc metrics diff`, `dvc plots diff`) and for readers.

`write_eval_outputs(report, out_dir)` builds the whole directory beside `out_dir` and swaps it in at the end,
so DVC, a concurrent reader or a later stage never sees half of an evaluation:

- `metrics.json`: flat scalars (top1, top5, loss, ece, mean/worst class accuracy, counts, `target_top1/<target>`)
- `per_class.csv`: class_id, class_name, support, correct, accuracy (one row per class)
- `confusion_pairs.csv`: the most-confused (true, predicted) pairs, largest first, with a `pair` label for bar plots
- `confusion_focus.csv`: one (actual, predicted) row per image of the classes the confusion PNG draws, the row
  format DVC's `confusion` template counts
- `reliability.csv`: the non-empty calibration bins (DVC's `linear` template: x=confidence, y=accuracy)
- the PNGs of `ppipe.report.plots`
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Iterable

from ppipe.report.eval_report import EvalReport
from ppipe.report.plots import render_plots

METRICS_JSON = "metrics.json"
PER_CLASS_CSV = "per_class.csv"
CONFUSION_PAIRS_CSV = "confusion_pairs.csv"
CONFUSION_FOCUS_CSV = "confusion_focus.csv"
RELIABILITY_CSV = "reliability.csv"
CONFUSION_PAIRS_LISTED = 100


def _csv(header: list[str], rows: Iterable[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _json_number(value):
    """NaN (e.g. the worst-class accuracy of a split with no images in any class) is not JSON: write null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def metrics_json(report: EvalReport) -> str:
    return json.dumps({k: _json_number(v) for k, v in report.scalars().items()}, indent=1) + "\n"


def per_class_csv(report: EvalReport) -> str:
    return _csv(["class_id", "class_name", "support", "correct", "accuracy"],
                ([c.class_id, c.name, c.support, c.correct, "" if c.accuracy is None else f"{c.accuracy:.6f}"]
                 for c in report.per_class))


def confusion_pairs_csv(report: EvalReport, limit: int = CONFUSION_PAIRS_LISTED) -> str:
    return _csv(["rank", "true_id", "true_name", "pred_id", "pred_name", "count", "share", "pair"],
                ([rank, p.true_id, p.true_name, p.pred_id, p.pred_name, p.count, f"{p.share:.6f}",
                  f"{p.true_name} -> {p.pred_name}"] for rank, p in enumerate(report.confused_pairs(limit), 1)))


def confusion_focus_csv(report: EvalReport) -> str:
    """The drawn classes' confusion matrix expanded to one row per image: DVC's confusion template counts rows."""
    ids = report.focus_classes()
    names = report.class_names
    rows = ([names[t], names[p]] for t in ids for p in ids for _ in range(int(report.confusion[t, p])))
    return _csv(["actual", "predicted"], rows)


def reliability_csv(report: EvalReport) -> str:
    return _csv(["bin", "lower", "upper", "confidence", "accuracy", "count"],
                ([b.index, f"{b.lower:.6f}", f"{b.upper:.6f}", f"{b.confidence:.6f}", f"{b.accuracy:.6f}", b.count]
                 for b in report.reliability if b.count))


def eval_files(report: EvalReport) -> dict[str, bytes]:
    """{file name: content} of every evaluation output."""
    tables = {METRICS_JSON: metrics_json(report), PER_CLASS_CSV: per_class_csv(report),
              CONFUSION_PAIRS_CSV: confusion_pairs_csv(report), CONFUSION_FOCUS_CSV: confusion_focus_csv(report),
              RELIABILITY_CSV: reliability_csv(report)}
    return {**{name: text.encode() for name, text in tables.items()}, **render_plots(report)}


def write_eval_outputs(report: EvalReport, out_dir: str) -> list[str]:
    """Write every evaluation output into the local directory `out_dir`, replacing it as a whole; returns the
    file names written (relative to `out_dir`)."""
    from ppipe.storage import staged_directory

    files = eval_files(report)
    with staged_directory(out_dir, purpose="eval") as tmp:
        for name, data in files.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
    return sorted(files)
