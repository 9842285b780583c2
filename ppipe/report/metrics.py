"""Evaluation metrics computed from counts: per-class accuracy, the most-confused class pairs, and calibration.

Every function here takes the summed counts that `EvalAccumulator` keeps (a confusion matrix, per-bin calibration
sums), never per-sample arrays, so the same code serves one process and a sum over Ray workers.

Calibration follows Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017, arXiv:1706.04599):
confidences (the top softmax probability) fall into equal-width bins (lower, upper] of [0, 1], and the expected
calibration error is the sample-weighted mean |accuracy - confidence| over the bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CALIBRATION_BINS = 15


@dataclass(frozen=True)
class ClassAccuracy:
    """Top-1 accuracy of one class: `support` images of the class, `correct` of them predicted as it
    (`accuracy` is None for a class with no image in the split)."""

    class_id: int
    name: str
    support: int
    correct: int
    accuracy: float | None


@dataclass(frozen=True)
class ConfusedPair:
    """`count` images of class `true_id` predicted as `pred_id`; `share`: that count over the true class's images."""

    true_id: int
    true_name: str
    pred_id: int
    pred_name: str
    count: int
    share: float


@dataclass(frozen=True)
class ReliabilityBin:
    """One calibration bin (lower, upper]: how many predictions fell in it, their mean confidence and accuracy
    (both None for an empty bin)."""

    index: int
    lower: float
    upper: float
    count: int
    confidence: float | None
    accuracy: float | None


def calibration_bin_index(confidence: np.ndarray, num_bins: int = CALIBRATION_BINS) -> np.ndarray:
    """The bin of each confidence, bins being (k/num_bins, (k+1)/num_bins]; a confidence of 0 joins the first."""
    return np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)


def reliability_bins(count: np.ndarray, confidence_sum: np.ndarray, correct_sum: np.ndarray) -> list[ReliabilityBin]:
    num_bins = len(count)
    out = []
    for k in range(num_bins):
        n = int(count[k])
        out.append(ReliabilityBin(index=k, lower=k / num_bins, upper=(k + 1) / num_bins, count=n,
                                  confidence=float(confidence_sum[k] / n) if n else None,
                                  accuracy=float(correct_sum[k] / n) if n else None))
    return out


def expected_calibration_error(count: np.ndarray, confidence_sum: np.ndarray, correct_sum: np.ndarray) -> float:
    """sum_b (n_b / N) |acc_b - conf_b|, which is sum_b |correct_b - confidence_sum_b| / N."""
    total = int(np.sum(count))
    if total == 0:
        raise ValueError("expected calibration error of no predictions: every calibration bin is empty")
    return float(np.abs(np.asarray(correct_sum, np.float64) - np.asarray(confidence_sum, np.float64)).sum() / total)


def per_class_accuracy(confusion: np.ndarray, class_names: list[str]) -> list[ClassAccuracy]:
    """Rows of `confusion` are true classes, columns predictions: accuracy of class c is C[c, c] / sum C[c, :]."""
    support = confusion.sum(axis=1)
    correct = np.diag(confusion)
    return [ClassAccuracy(class_id=c, name=class_names[c], support=int(support[c]), correct=int(correct[c]),
                          accuracy=float(correct[c] / support[c]) if support[c] else None)
            for c in range(len(class_names))]


def worst_classes(per_class: list[ClassAccuracy], limit: int) -> list[ClassAccuracy]:
    """The `limit` classes with the lowest accuracy (classes without images left out; ties by class id)."""
    scored = [c for c in per_class if c.accuracy is not None]
    return sorted(scored, key=lambda c: (c.accuracy, c.class_id))[:limit]


def most_confused_pairs(confusion: np.ndarray, class_names: list[str], limit: int) -> list[ConfusedPair]:
    """The `limit` largest off-diagonal cells of `confusion` (ties by true then predicted class id)."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    true_ids, pred_ids = np.nonzero(off)
    counts = off[true_ids, pred_ids]
    order = np.lexsort((pred_ids, true_ids, -counts))[:limit]
    support = confusion.sum(axis=1)
    return [ConfusedPair(true_id=int(t), true_name=class_names[t], pred_id=int(p), pred_name=class_names[p],
                         count=int(off[t, p]), share=float(off[t, p] / support[t]))
            for t, p in zip(true_ids[order], pred_ids[order])]


def focus_classes(confusion: np.ndarray, class_names: list[str], limit: int) -> list[int]:
    """Class ids to draw in a confusion matrix of at most `limit` classes.

    All classes when they fit; otherwise the classes of the most-confused pairs, in order of their first pair
    (so the largest errors sit near the top-left), topped up with the least accurate classes when few pairs exist.
    """
    num_classes = confusion.shape[0]
    if num_classes <= limit:
        return list(range(num_classes))
    chosen: list[int] = []
    for pair in most_confused_pairs(confusion, class_names, limit * limit):
        for c in (pair.true_id, pair.pred_id):
            if c not in chosen and len(chosen) < limit:
                chosen.append(c)
        if len(chosen) == limit:
            return chosen
    for c in worst_classes(per_class_accuracy(confusion, class_names), num_classes):
        if c.class_id not in chosen and len(chosen) < limit:
            chosen.append(c.class_id)
    return chosen
