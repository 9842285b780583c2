"""Classification metrics as PaddleClas's `Metric` section names them (ppcls/metric/metrics.py): `TopkAcc {topk:
[1, 5]}`, `GoogLeNetTopkAcc` (the main head of GoogLeNet's list of heads) and `DistillationTopkAcc {model_key:
Student, feature_key: null, topk: [1, 5]}` (one model's output among a DistillationModel's named outputs).

A metric object accumulates counts, not averages, and reports its values from counts: workers exchange counts,
which sum exactly across ranks, where per-rank accuracies would be biased by unequal shard sizes. Every top-k
metric counts `labeled` (rows with a class id >= 0; unlabeled rows and soft targets are not scored) and
`correct@k`, and reports `top{k}` = correct@k / labeled.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ppipe.errors import ConfigError
from ppipe.model_outputs import HEADS, LOGITS, NAMED, OutputKind
from ppipe.registry import Registry

LABELED = "labeled"


def topk_correct(logits: np.ndarray, labels: np.ndarray, ks=(1, 5)) -> dict[int, int]:
    """How many samples have their label among the k highest logits, for each k (k capped at #classes)."""
    labels = labels.reshape(-1)
    order = np.argsort(-logits, axis=1)
    out = {}
    for k in ks:
        kk = min(k, logits.shape[1])
        out[k] = int((order[:, :kk] == labels[:, None]).any(axis=1).sum())
    return out


def accuracy_values(counts: dict[str, float]) -> dict[str, float]:
    """`top{k}` for every `correct@k` in `counts` (summed over ranks), over the `labeled` rows."""
    n = counts.get(LABELED, 0)
    if n == 0:
        raise ValueError("accuracy: no labeled image was scored (the split is empty or has no class ids)")
    return {f"top{key.split('@', 1)[1]}": value / n for key, value in counts.items() if key.startswith("correct@")}


def main_output(outputs):
    """The logits that accuracy is measured on: the output itself, or the first of a list of heads (GoogLeNet's
    `[main, aux1, aux2]` in training); None for named outputs (a DistillationModel), which name no main one."""
    if isinstance(outputs, dict):
        return None
    if isinstance(outputs, (list, tuple)):
        return outputs[0]
    return outputs


def _as_array(logits) -> np.ndarray:
    if hasattr(logits, "numpy"):  # a paddle Tensor, float16 under AMP
        logits = logits.astype("float32").numpy()
    return np.asarray(logits, dtype=np.float32)


def _labeled_rows(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    """The logits and class ids of the rows labeled with a class id (>= 0); none for soft targets (Mixup)."""
    labels = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    logits = _as_array(logits)
    if labels.ndim > 1 and labels.shape[-1] != 1:
        return logits[:0], labels.reshape(-1)[:0]
    labels = labels.reshape(-1)
    keep = labels >= 0
    return logits[keep], labels[keep]


def _topk(topk, where: str) -> tuple[int, ...]:
    ks = [topk] if isinstance(topk, int) and not isinstance(topk, bool) else topk
    if not isinstance(ks, (list, tuple)) or not ks or not all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise ConfigError(f"{where}: expected a positive integer or a list of them, got {topk!r}")
    return tuple(dict.fromkeys(ks))


class TopkAcc:
    """Top-k accuracy for each k of `topk` (PaddleClas: an int or a list), on one logits tensor (or PaddleClas's
    backbone dict `{"logits": ...}`)."""

    accepts: ClassVar[frozenset[OutputKind]] = frozenset({LOGITS})

    def __init__(self, topk: int | list[int] = (1, 5)):
        self.topk = _topk(topk, f"{type(self).__name__}.topk")
        self.reset()

    @classmethod
    def check_values(cls, params: dict[str, Any], where: str) -> None:
        """Refuse a `topk` that names no k before the metric is built (`Registry.check_params` calls it)."""
        if "topk" in params:
            _topk(params["topk"], f"{where}.topk")

    def reported(self) -> list[str]:
        """The names of the values this metric reports."""
        return [f"top{k}" for k in self.topk]

    def logits(self, outputs):
        """The logits this metric scores in a model's `outputs`."""
        if isinstance(outputs, dict):
            if "logits" not in outputs:
                raise ValueError(f"{type(self).__name__}: named outputs {sorted(outputs)} (a DistillationModel): "
                                 f"use DistillationTopkAcc with model_key")
            return outputs["logits"]
        if isinstance(outputs, (list, tuple)):
            raise ValueError(f"{type(self).__name__}: got a list of {len(outputs)} heads' logits (GoogLeNet in "
                             f"training): use GoogLeNetTopkAcc")
        return outputs

    def reset(self) -> None:
        self._counts = {LABELED: 0, **{f"correct@{k}": 0 for k in self.topk}}

    def update(self, outputs, labels) -> None:
        """Count one batch: the model's `outputs` against class ids `labels` ([N] or [N, 1])."""
        logits, labels = _labeled_rows(self.logits(outputs), labels)
        for k, correct in topk_correct(logits, labels, self.topk).items():
            self._counts[f"correct@{k}"] += correct
        self._counts[LABELED] += len(labels)

    def counts(self) -> dict[str, int]:
        """What this rank counted since `reset`; sum each key over ranks before `values`."""
        return dict(self._counts)

    def values(self, counts: dict[str, float]) -> dict[str, float]:
        """The reported values (`top1`, `top5`, ...) from `counts` summed over ranks."""
        found = accuracy_values(counts)
        return {name: found[name] for name in self.reported()}


class GoogLeNetTopkAcc(TopkAcc):
    """TopkAcc on the main head of GoogLeNet's `[main, aux1, aux2]` training outputs, or on the output itself where
    the model gives one (ppipe's GoogLeNet in evaluation)."""

    accepts = frozenset({LOGITS, HEADS})

    def logits(self, outputs):
        logits = main_output(outputs)
        if logits is None:
            raise ValueError("GoogLeNetTopkAcc: named outputs (a DistillationModel) have no main head to score")
        return logits


class DistillationTopkAcc(TopkAcc):
    """TopkAcc on the output of model `model_key` among a DistillationModel's named outputs (and its field
    `feature_key`, where that output is itself a mapping). An output that is not a mapping is scored as it is,
    as in PaddleClas: ppipe evaluates the DistillationModel's exported model (`infer_model_name`) alone."""

    accepts = frozenset({NAMED, LOGITS})

    def __init__(self, model_key: str, feature_key: str | None = None, topk: int | list[int] = (1, 5)):
        super().__init__(topk)
        self.model_key = model_key
        self.feature_key = feature_key

    def logits(self, outputs):
        if isinstance(outputs, dict):
            if self.model_key not in outputs:
                raise ValueError(f"DistillationTopkAcc: no model named {self.model_key!r}; the models are "
                                 f"{sorted(outputs)}")
            outputs = outputs[self.model_key]
        if self.feature_key is not None:
            if not isinstance(outputs, dict) or self.feature_key not in outputs:
                raise ValueError(f"DistillationTopkAcc: the output of {self.model_key!r} has no field "
                                 f"{self.feature_key!r}")
            outputs = outputs[self.feature_key]
        return super().logits(outputs)


METRICS: Registry[type[TopkAcc]] = Registry("metric")
for _cls in (TopkAcc, GoogLeNetTopkAcc, DistillationTopkAcc):
    METRICS.register(_cls)


def build_metrics(items: list[Any] | None, where: str) -> list[TopkAcc]:
    """The metrics of a recipe's `Metric.Train`/`Metric.Eval` list; two that report the same value are refused."""
    metrics = METRICS.build_all(items, where)
    seen: dict[str, str] = {}
    for metric in metrics:
        for name in metric.reported():
            if name in seen:
                raise ConfigError(f"{where}: {name} is reported by both {seen[name]} and {type(metric).__name__}")
            seen[name] = type(metric).__name__
    return metrics


def merged_counts(metrics: list[TopkAcc]) -> dict[str, int]:
    """The counts of several metrics over the same batches, as one mapping to sum over ranks."""
    out: dict[str, int] = {}
    for metric in metrics:
        out.update(metric.counts())
    return out


def top1_counts(outputs, labels: np.ndarray) -> tuple[int, int]:
    """(correct, counted) top-1 of the main head over the rows labeled with a class id (>= 0); (0, 0) when
    there is nothing to count: soft targets (Mixup/Cutmix) or outputs without a main head."""
    logits = main_output(outputs)
    if logits is None:
        return 0, 0
    metric = TopkAcc(1)
    metric.update(logits, labels)
    counts = metric.counts()
    return counts["correct@1"], counts[LABELED]
