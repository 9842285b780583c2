"""The evaluation figures as PNG bytes: confusion matrix, reliability diagram, least accurate classes.

Drawn on matplotlib `Figure` objects with the Agg canvas (no pyplot, so no global state and no display needed).
Figures label at most ~30 classes, the most a reader can match against their rows; class names are truncated to
fit beside the axis.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from ppipe.report.eval_report import FOCUS_CLASSES, EvalReport

CONFUSION_PNG = "confusion_matrix.png"
RELIABILITY_PNG = "reliability.png"
WORST_CLASSES_PNG = "worst_classes.png"
WORST_CLASSES_SHOWN = 30
LABEL_CHARS = 22
DPI = 110


def short_label(name: str, limit: int = LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def png_bytes(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def confusion_figure(report: EvalReport, limit: int = FOCUS_CLASSES) -> Figure:
    """Row-normalised confusion matrix of all classes when they fit in `limit`, else of the classes in the
    most-confused pairs. Cells are the share of the true class's images (all of them, also those predicted
    outside the drawn classes); a square-root colour scale keeps small confusions visible beside the diagonal."""
    ids = report.focus_classes(limit)
    support = np.maximum(report.confusion[ids].sum(axis=1), 1)
    counts = report.confusion[np.ix_(ids, ids)]
    share = counts / support[:, None]
    k = len(ids)
    side = 5.5 + 0.2 * k
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", norm=PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0), interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class's images")
    names = [short_label(report.class_names[c]) for c in ids]
    fontsize = 9 if k <= 15 else 7
    ax.set_xticks(range(k), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=fontsize)
    ax.set_yticks(range(k), names, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for (t, p), n in np.ndenumerate(counts):
        if n:
            ax.text(p, t, str(n), ha="center", va="center", fontsize=8 if k <= 15 else 6,
                    color="white" if share[t, p] > 0.5 else "black")
    if k == report.num_classes:
        title = f"Confusion matrix: {report.num_images} images, top-1 {_percent(report.top1)}"
    else:
        title = (f"Confusion among the {k} classes of the most-confused pairs\n"
                 f"(of {report.num_classes}; {report.num_images} images, top-1 {_percent(report.top1)})")
    ax.set_title(title)
    return fig


def reliability_figure(report: EvalReport) -> Figure:
    """Accuracy against confidence, one bar per bin, with the gap to the diagonal shaded; below, images per bin."""
    bins = report.reliability
    width = bins[0].upper - bins[0].lower
    centers = np.array([(b.lower + b.upper) / 2 for b in bins])
    counts = np.array([b.count for b in bins])
    filled = [b for b in bins if b.count]  # an empty bin has no accuracy to draw
    filled_centers = np.array([(b.lower + b.upper) / 2 for b in filled])
    accuracy = np.array([b.accuracy for b in filled])
    confidence = np.array([b.confidence for b in filled])
    fig = Figure(figsize=(7, 8), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(filled_centers, accuracy, width=width, color="#4c72b0", edgecolor="black", linewidth=0.6,
            label="accuracy")
    top.bar(filled_centers, confidence - accuracy, bottom=accuracy, width=width, facecolor="none",
            edgecolor="#c44e00", hatch="//", linewidth=1.0, label="gap to mean confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, zorder=3, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.legend(loc="upper left")
    top.set_title(f"Reliability diagram: ECE {_percent(report.ece)} ({len(bins)} bins, {report.num_images} images)")
    bottom.bar(centers, counts, width=width, color="gray", edgecolor="black", linewidth=0.6)
    for x, n in zip(centers, counts):
        if n:
            bottom.annotate(str(n), (x, n), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
    bottom.set(xlabel="confidence (top softmax probability)", ylabel="images", ylim=(0, max(counts.max(), 1) * 1.25))
    bottom.set_xticks(np.linspace(0, 1, 6))
    return fig


def worst_classes_figure(report: EvalReport, limit: int = WORST_CLASSES_SHOWN) -> Figure:
    """Horizontal bars of the least accurate classes (all classes when they fit), with the overall top-1."""
    worst = report.worst_classes(limit)
    fig = Figure(figsize=(8, 1.8 + 0.28 * len(worst)), layout="constrained")
    ax = fig.add_subplot()
    rows = range(len(worst))
    ax.barh(rows, [c.accuracy for c in worst], color="#4c72b0")
    ax.set_yticks(rows, [short_label(c.name) for c in worst], fontsize=8)
    ax.invert_yaxis()  # the least accurate class on top
    for row, c in zip(rows, worst):
        ax.text(min(c.accuracy + 0.01, 0.85), row, f"{_percent(c.accuracy)} of {c.support} images", va="center",
                fontsize=7, zorder=3, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.axvline(report.top1, color="#c44e00", linestyle="--", zorder=2)
    ax.set(xlim=(0, 1), xlabel="top-1 accuracy of the class")
    shown = "all" if len(worst) == report.num_classes else f"the {len(worst)} least accurate of"
    ax.set_title(f"Per-class accuracy: {shown} {report.num_classes} classes\n"
                 f"(dashed line: overall top-1 {_percent(report.top1)})")
    return fig


def render_plots(report: EvalReport) -> dict[str, bytes]:
    """{file name: PNG bytes} of every evaluation figure."""
    return {CONFUSION_PNG: png_bytes(confusion_figure(report)),
            RELIABILITY_PNG: png_bytes(reliability_figure(report)),
            WORST_CLASSES_PNG: png_bytes(worst_classes_figure(report))}
