"""Evaluation: the recipe's `Metric.Eval` (top-1/top-5 accuracy) and loss of a model on a split of a prepared
dataset.

Used twice with one implementation: inside training (every rank scores its own disjoint part of the val
split and the counts are summed over workers) and by the `ppipe evaluate` stage on a finished run
(`ppipe.evaluation`, which also fills an `EvalAccumulator` per rank for the full report).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import paddle

from ppipe.config.schema import Config
from ppipe.metrics import TopkAcc, accuracy_values, build_metrics, merged_counts

if TYPE_CHECKING:  # the training loop imports this module: it need not load the report's plotting
    from ppipe.report import EvalAccumulator


def eval_transform_ops(cfg: Config) -> list:
    loader = cfg.DataLoader.Eval or cfg.DataLoader.Train
    return decode_first(loader.dataset.transform_ops)


def decode_first(ops: list) -> list:
    """PaddleClas's dataset hands operators the file's bytes; recipes that omit DecodeImage rely on that."""
    names = [next(iter(op)) if isinstance(op, dict) else op for op in ops]
    if not names or names[0] != "DecodeImage":
        return [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, *ops]
    return list(ops)


def eval_metrics(cfg: Config) -> list[TopkAcc]:
    """The metrics a run is scored with: the recipe's `Metric.Eval`, or TopkAcc [1, 5] where it lists none."""
    return build_metrics(cfg.Metric.Eval, "Metric.Eval") or [TopkAcc((1, 5))]


def eval_batches(prepared, split: str, transform_ops: list, batch_size: int, *, rank: int = 0,
                 world_size: int = 1):
    """(images, labels) batches of this rank's disjoint share of `split`, in stored order, every image once (no
    padding, no dropped last batch): the ranks' shares together are the split."""
    from ppipe.data import iter_batches

    return iter_batches(prepared, split, transform_ops, batch_size, rank=rank, world_size=world_size,
                        shuffle=False, drop_last=False, pad=False)


@paddle.no_grad()
def score(model, prepared: str, split: str, transform_ops: list, batch_size: int, *, rank: int = 0,
          world_size: int = 1, loss_fn=None, ks=(1, 5), metrics: list[TopkAcc] | None = None,
          accumulator: EvalAccumulator | None = None) -> dict[str, float]:
    """Raw counts on this rank's part of `split`: {"num_images", "loss_sum", and each metric's counts}, to be
    summed over ranks and given to `summarize`. `metrics`: e.g. `eval_metrics(cfg)`; None: TopkAcc `ks`.
    `accumulator`: also updated with every batch (the logits the first metric scores, and the batch's loss
    under `loss_fn`; without one, softmax cross-entropy) for the full report of `ppipe.report`."""
    metrics = metrics or [TopkAcc(ks)]
    for metric in metrics:
        metric.reset()
    was_training = model.training
    model.eval()
    num_images, loss_sum = 0, 0.0
    for images, labels in eval_batches(prepared, split, transform_ops, batch_size, rank=rank,
                                       world_size=world_size):
        outputs = model(paddle.to_tensor(images))
        batch_loss = None
        if loss_fn is not None:
            batch_loss = float(loss_fn(outputs, paddle.to_tensor(labels))) * len(labels)
            loss_sum += batch_loss
        for metric in metrics:
            metric.update(outputs, labels)
        if accumulator is not None:
            accumulator.update(_float_array(metrics[0].logits(outputs)), labels, loss_sum=batch_loss)
        num_images += len(labels)
    if was_training:
        model.train()
    return {"num_images": float(num_images), "loss_sum": loss_sum,
            **{k: float(v) for k, v in merged_counts(metrics).items()}}


def _float_array(logits) -> np.ndarray:
    """Logits as float32 numpy (a float16 tensor under AMP included)."""
    return logits.astype("float32").numpy() if hasattr(logits, "numpy") else np.asarray(logits, np.float32)


def summarize(counts: dict[str, float], metrics: list[TopkAcc] | None = None) -> dict[str, Any]:
    """The reported values from `score`'s counts summed over ranks: `top1`, `top5`... (each metric's, or every
    top-k counted when `metrics` is None), `loss` (per image) and `num_images`."""
    n = counts["num_images"]
    if n == 0:
        raise ValueError("evaluation saw no images: the split is empty")
    if metrics is None:
        out: dict[str, Any] = accuracy_values(counts)
    else:
        out = {name: value for metric in metrics for name, value in metric.values(counts).items()}
    out["loss"] = counts["loss_sum"] / n
    out["num_images"] = int(n)
    return out
