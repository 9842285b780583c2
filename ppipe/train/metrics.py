"""Classification metrics as PaddleClas's `Metric` section names them (`TopkAcc: {topk: [1, 5]}`).

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


METRICS = {"TopkAcc": topk_correct}
