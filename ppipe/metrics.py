"""Classification metrics as PaddleClas's `Metric` section names them (`TopkAcc: {topk: [1, 5]}`,
`GoogLeNetTopkAcc` for GoogLeNet's list of heads).

Counts, not averages, are what workers exchange: per-rank correct counts sum exactly across ranks, while
per-rank accuracies would be biased by unequal shard sizes.
"""

from __future__ import annotations

import numpy as np


def topk_correct(logits: np.ndarray, labels: np.ndarray, ks=(1, 5)) -> dict[int, int]:
    """How many samples have their label among the k highest logits, for each k (k capped at #classes)."""
    labels = labels.reshape(-1)
    order = np.argsort(-logits, axis=1)
    out = {}
    for k in ks:
        kk = min(k, logits.shape[1])
        out[k] = int((order[:, :kk] == labels[:, None]).any(axis=1).sum())
    return out


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


def main_head_topk_correct(outputs, labels: np.ndarray, ks=(1, 5)) -> dict[int, int]:
    """PaddleClas's GoogLeNetTopkAcc: `topk_correct` on the main head of a `[main, aux1, aux2]` output (GoogLeNet
    in training), or on the output itself where the model gives only one (GoogLeNet in evaluation)."""
    logits = main_output(outputs)
    if logits is None:
        raise ValueError("GoogLeNetTopkAcc: named outputs (a DistillationModel) have no main head to score")
    return topk_correct(_as_array(logits), np.asarray(labels), ks)


def top1_counts(outputs, labels: np.ndarray) -> tuple[int, int]:
    """(correct, counted) top-1 of the main head over the rows labeled with a class id (>= 0); (0, 0) when
    there is nothing to count: soft targets (Mixup/Cutmix) or outputs without a main head."""
    logits = main_output(outputs)
    labels = np.asarray(labels)
    if logits is None or labels.ndim > 1 and labels.shape[-1] != 1:
        return 0, 0
    logits = _as_array(logits)
    labels = labels.reshape(-1)
    labeled = labels >= 0
    if not labeled.any():
        return 0, 0
    return topk_correct(logits[labeled], labels[labeled], (1,))[1], int(labeled.sum())


METRICS = {"TopkAcc": topk_correct, "GoogLeNetTopkAcc": main_head_topk_correct}
