"""Evaluation: the recipe's `Metric.Eval` (top-1/top-5 accuracy) and loss of a model on a split of a prepared
dataset.

Used twice with one implementation: inside training (every rank scores its own disjoint part of the val
split and the counts are summed over workers) and as the `ppipe evaluate` stage on a finished run.
"""

from __future__ import annotations

import json
import os
from typing import Any

import paddle

from ppipe.config.schema import Config
from ppipe.metrics import TopkAcc, accuracy_values, build_metrics, merged_counts


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


@paddle.no_grad()
def score(model, prepared: str, split: str, transform_ops: list, batch_size: int, *, rank: int = 0,
          world_size: int = 1, loss_fn=None, ks=(1, 5), metrics: list[TopkAcc] | None = None) -> dict[str, float]:
    """Raw counts on this rank's part of `split`: {"num_images", "loss_sum", and each metric's counts}, to be
    summed over ranks and given to `summarize`. `metrics`: e.g. `eval_metrics(cfg)`; None: TopkAcc `ks`."""
    from ppipe.data import iter_batches

    metrics = metrics or [TopkAcc(ks)]
    for metric in metrics:
        metric.reset()
    was_training = model.training
    model.eval()
    num_images, loss_sum = 0, 0.0
    for images, labels in iter_batches(prepared, split, transform_ops, batch_size, rank=rank,
                                       world_size=world_size, shuffle=False, drop_last=False, pad=False):
        outputs = model(paddle.to_tensor(images))
        if loss_fn is not None:
            loss_sum += float(loss_fn(outputs, paddle.to_tensor(labels))) * len(labels)
        for metric in metrics:
            metric.update(outputs, labels)
        num_images += len(labels)
    if was_training:
        model.train()
    return {"num_images": float(num_images), "loss_sum": loss_sum,
            **{k: float(v) for k, v in merged_counts(metrics).items()}}


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


def evaluate_run(cfg: Config, weights: str, prepared: str, *, split: str = "val",
                 out: str | None = None) -> dict[str, Any]:
    """The `ppipe evaluate` stage: score `weights` (a .pdparams) on `split`; optionally write a metrics JSON."""
    from ppipe.models import create_model
    from ppipe.build import infer_arch
    from ppipe.losses import CombinedLoss

    if not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file {weights} does not exist (expected a trained run's model.pdparams)")
    paddle.set_device("cpu")
    arch = infer_arch(cfg)
    model = create_model(arch.name, num_classes=arch.num_classes, pretrained=weights, **arch.kwargs)
    batch = (cfg.DataLoader.Eval or cfg.DataLoader.Train).sampler.batch_size
    scored_with = eval_metrics(cfg)
    counts = score(model, prepared, split, eval_transform_ops(cfg), batch,
                   loss_fn=CombinedLoss(cfg.Loss.Eval, "Loss.Eval"), metrics=scored_with)
    metrics = {"model": arch.name, "split": split, **summarize(counts, scored_with)}
    if out:
        from ppipe.storage import write_bytes_atomic
        write_bytes_atomic(out, json.dumps(metrics, indent=1).encode())
    return metrics
