"""`EvalReport`: everything the evaluate stage measured on one split, as the outputs, wandb and model cards read it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ppipe.report.metrics import (ClassAccuracy, ConfusedPair, ReliabilityBin, focus_classes, most_confused_pairs,
                                  worst_classes)

FOCUS_CLASSES = 25
"""A confusion matrix drawn for more classes than this shows only the classes of the most-confused pairs: past
about 25 rows the class names no longer fit beside the rows."""


@dataclass(frozen=True)
class EvalReport:
    """Metrics of a model on one split. `confusion[t, p]`: images of true class t predicted as p. `target_top1`:
    top-1 of each deployment target on the same split (added after export with `with_target_top1`)."""

    class_names: tuple[str, ...]
    num_images: int
    top1: float
    top5: float
    loss: float
    ece: float
    confusion: np.ndarray
    per_class: tuple[ClassAccuracy, ...]
    reliability: tuple[ReliabilityBin, ...]
    target_top1: Mapping[str, float] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def mean_class_accuracy(self) -> float:
        """Accuracy averaged over classes (each class counts once, whatever its number of images)."""
        scored = [c.accuracy for c in self.per_class if c.accuracy is not None]
        return float(np.mean(scored)) if scored else math.nan

    def worst_classes(self, limit: int = 10) -> list[ClassAccuracy]:
        return worst_classes(list(self.per_class), limit)

    def confused_pairs(self, limit: int = 10) -> list[ConfusedPair]:
        return most_confused_pairs(self.confusion, list(self.class_names), limit)

    def focus_classes(self, limit: int = FOCUS_CLASSES) -> list[int]:
        return focus_classes(self.confusion, list(self.class_names), limit)

    def with_target_top1(self, top1_by_target: Mapping[str, float]) -> EvalReport:
        """This report plus the top-1 each deployment target (INT8 included) scored on the same split."""
        for name, value in top1_by_target.items():
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"top-1 of target {name!r} must be a fraction in [0, 1], got {value!r}")
        return dataclasses.replace(self, target_top1={**self.target_top1, **{k: float(v) for k, v in
                                                                             top1_by_target.items()}})

    def scalars(self) -> dict[str, float | int]:
        """Flat scalar metrics (DVC's metrics.json, wandb's summary); one `target_top1/<target>` per target."""
        worst = self.worst_classes(1)
        out: dict[str, float | int] = {
            "top1": self.top1, "top5": self.top5, "loss": self.loss, "ece": self.ece,
            "mean_class_accuracy": self.mean_class_accuracy,
            "worst_class_accuracy": worst[0].accuracy if worst else math.nan,
            "num_images": self.num_images, "num_classes": self.num_classes,
        }
        out.update({f"target_top1/{name}": top1 for name, top1 in sorted(self.target_top1.items())})
        return out

    def summary(self, *, worst: int = 10, pairs: int = 10) -> dict[str, Any]:
        """A JSON-ready digest (no confusion matrix): the scalars, the worst classes, the most-confused pairs and
        the reliability bins."""
        return {"metrics": self.scalars(),
                "worst_classes": [dataclasses.asdict(c) for c in self.worst_classes(worst)],
                "confused_pairs": [dataclasses.asdict(p) for p in self.confused_pairs(pairs)],
                "reliability": [dataclasses.asdict(b) for b in self.reliability]}
