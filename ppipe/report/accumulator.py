"""`EvalAccumulator`: evaluation counts gathered batch by batch, summed exactly across Ray workers.

Workers exchange counts, never averages or per-sample arrays: a confusion matrix, per-bin calibration sums, the
top-5 hit count and the loss sum. Adding two ranks' counts gives the counts of their union, so `merge` (or one
all-reduce of `to_flat()`) followed by `finalize` equals evaluating all the data in one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppipe.metrics import topk_correct
from ppipe.report.eval_report import EvalReport
from ppipe.report.metrics import (CALIBRATION_BINS, calibration_bin_index, expected_calibration_error,
                                  per_class_accuracy, reliability_bins)


def _softmax_stats(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top softmax probability, cross-entropy) of each row, in float64 so large logits neither overflow nor
    round the confidence to 1."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    sum_exp = np.exp(shifted).sum(axis=1)
    confidence = 1.0 / sum_exp  # the top logit's shifted value is 0, so its probability is 1 / sum(exp)
    cross_entropy = np.log(sum_exp) - shifted[np.arange(len(labels)), labels]
    return confidence, cross_entropy


def _checked_batch(logits, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"logits must be [N, {num_classes}] (the accumulator's num_classes), got shape {logits.shape}")
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.shape != (logits.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be N={logits.shape[0]} integer class ids (hard labels), got "
                         f"{labels.dtype} of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values from {labels.min()} to {labels.max()}")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinity: the model's outputs cannot be scored")
    return logits, labels.astype(np.int64)


@dataclass
class EvalAccumulator:
    """Counts of one rank (or of all, once merged). Build with `EvalAccumulator.empty(num_classes)`."""

    confusion: np.ndarray  # [C, C] int64: rows true class, columns top-1 prediction
    bin_count: np.ndarray  # [B] int64: predictions per calibration bin
    bin_confidence: np.ndarray  # [B] float64: summed top-1 confidence per bin
    bin_correct: np.ndarray  # [B] int64: correct top-1 predictions per bin
    top5_correct: int = 0
    loss_sum: float = 0.0

    @classmethod
    def empty(cls, num_classes: int, num_bins: int = CALIBRATION_BINS) -> EvalAccumulator:
        if num_classes < 1 or num_bins < 1:
            raise ValueError(f"num_classes and num_bins must be positive, got {num_classes} and {num_bins}")
        return cls(confusion=np.zeros((num_classes, num_classes), np.int64), bin_count=np.zeros(num_bins, np.int64),
                   bin_confidence=np.zeros(num_bins, np.float64), bin_correct=np.zeros(num_bins, np.int64))

    @property
    def num_classes(self) -> int:
        return self.confusion.shape[0]

    @property
    def num_bins(self) -> int:
        return len(self.bin_count)

    @property
    def num_images(self) -> int:
        return int(self.confusion.sum())

    def update(self, logits, labels, *, loss_sum: float | None = None) -> None:
        """Add one batch: `logits` [N, C], `labels` [N] class ids. `loss_sum`: the batch's summed loss under the
        recipe's evaluation loss; left out, the softmax cross-entropy of `logits` is used."""
        logits, labels = _checked_batch(logits, labels, self.num_classes)
        if not len(labels):
            return
        confidence, cross_entropy = _softmax_stats(logits, labels)
        predicted = logits.argmax(axis=1)
        correct = predicted == labels
        np.add.at(self.confusion, (labels, predicted), 1)
        bins = calibration_bin_index(confidence, self.num_bins)
        self.bin_count += np.bincount(bins, minlength=self.num_bins)
        self.bin_confidence += np.bincount(bins, weights=confidence, minlength=self.num_bins)
        self.bin_correct += np.bincount(bins, weights=correct, minlength=self.num_bins).astype(np.int64)
        self.top5_correct += topk_correct(logits, labels, (5,))[5]
        self.loss_sum += float(cross_entropy.sum() if loss_sum is None else loss_sum)

    def merge(self, other: EvalAccumulator) -> EvalAccumulator:
        """The counts of both (a new accumulator; neither input changes)."""
        if (other.num_classes, other.num_bins) != (self.num_classes, self.num_bins):
            raise ValueError(f"cannot merge accumulators of {other.num_classes} classes/{other.num_bins} bins into "
                             f"{self.num_classes} classes/{self.num_bins} bins")
        return EvalAccumulator(confusion=self.confusion + other.confusion, bin_count=self.bin_count + other.bin_count,
                               bin_confidence=self.bin_confidence + other.bin_confidence,
                               bin_correct=self.bin_correct + other.bin_correct,
                               top5_correct=self.top5_correct + other.top5_correct,
                               loss_sum=self.loss_sum + other.loss_sum)

    def to_flat(self) -> np.ndarray:
        """All counts as one float64 vector for a single all-reduce (sum): confusion (row-major), bin_count,
        bin_confidence, bin_correct, top5_correct, loss_sum. Counts below 2**53 are exact in float64."""
        return np.concatenate([self.confusion.ravel(), self.bin_count, self.bin_confidence, self.bin_correct,
                               [self.top5_correct, self.loss_sum]]).astype(np.float64)

    @classmethod
    def from_flat(cls, flat, num_classes: int, num_bins: int = CALIBRATION_BINS) -> EvalAccumulator:
        """The inverse of `to_flat` (typically applied to the all-reduced sum)."""
        flat = np.asarray(flat, dtype=np.float64).reshape(-1)
        expected = num_classes * num_classes + 3 * num_bins + 2
        if flat.shape != (expected,):
            raise ValueError(f"a flat accumulator of {num_classes} classes and {num_bins} bins has {expected} "
                             f"values, got {flat.size}")
        c2 = num_classes * num_classes
        counts = np.rint(flat).astype(np.int64)
        return cls(confusion=counts[:c2].reshape(num_classes, num_classes), bin_count=counts[c2:c2 + num_bins],
                   bin_confidence=flat[c2 + num_bins:c2 + 2 * num_bins].copy(),
                   bin_correct=counts[c2 + 2 * num_bins:c2 + 3 * num_bins], top5_correct=int(counts[-2]),
                   loss_sum=float(flat[-1]))

    def finalize(self, class_names) -> EvalReport:
        """The report of everything accumulated; `class_names[c]` names class id c."""
        class_names = tuple(str(n) for n in class_names)
        if len(class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {self.num_classes} classes")
        n = self.num_images
        if n == 0:
            raise ValueError("evaluation saw no images: the split is empty")
        return EvalReport(class_names=class_names, num_images=n, top1=float(np.trace(self.confusion) / n),
                          top5=self.top5_correct / n, loss=self.loss_sum / n,
                          ece=expected_calibration_error(self.bin_count, self.bin_confidence, self.bin_correct),
                          confusion=self.confusion.copy(),
                          per_class=tuple(per_class_accuracy(self.confusion, list(class_names))),
                          reliability=tuple(reliability_bins(self.bin_count, self.bin_confidence, self.bin_correct)))


def evaluate_logits(logits, labels, class_names, *, loss_sum: float | None = None) -> EvalReport:
    """The report of one array of logits [N, C] and labels [N] (an accumulator fed a single batch)."""
    acc = EvalAccumulator.empty(len(class_names))
    acc.update(logits, labels, loss_sum=loss_sum)
    return acc.finalize(class_names)
