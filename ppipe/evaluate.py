"""Evaluation: top-1/top-5 accuracy and loss of a model on a split of a prepared dataset.

Used twice with one implementation: inside training (every rank scores its own disjoint part of the val
split and the counts are summed over workers) and as the `ppipe evaluate` stage on a finished run.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import paddle

from ppipe.config.schema import Config
from ppipe.metrics import topk_correct


def eval_transform_ops(cfg: Config) -> list:
    loader = cfg.DataLoader.Eval or cfg.DataLoader.Train
    return decode_first(loader.dataset.transform_ops)


def decode_first(ops: list) -> list:
    """PaddleClas's dataset hands operators the file's bytes; recipes that omit DecodeImage rely on that."""
    names = [next(iter(op)) if isinstance(op, dict) else op for op in ops]
    if not names or names[0] != "DecodeImage":
        return [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, *ops]
    return list(ops)


@paddle.no_grad()
def score(model, prepared: str, split: str, transform_ops: list, batch_size: int, *, rank: int = 0,
          world_size: int = 1, loss_fn=None, ks=(1, 5)) -> dict[str, float]:
    """Raw counts on this rank's part of `split`: {"num_images", "correct@k"..., "loss_sum"}."""
    from ppipe.data import iter_batches

    was_training = model.training
    model.eval()
    counts = {"num_images": 0.0, "loss_sum": 0.0, **{f"correct@{k}": 0.0 for k in ks}}
    for images, labels in iter_batches(prepared, split, transform_ops, batch_size, rank=rank,
                                       world_size=world_size, shuffle=False, drop_last=False, pad=False):
        logits = model(paddle.to_tensor(images))
        if loss_fn is not None:
            counts["loss_sum"] += float(loss_fn(logits, paddle.to_tensor(labels))) * len(labels)
        for k, c in topk_correct(logits.numpy(), np.asarray(labels), ks).items():
            counts[f"correct@{k}"] += c
        counts["num_images"] += len(labels)
    if was_training:
        model.train()
    return counts


def summarize(counts: dict[str, float], ks=(1, 5)) -> dict[str, Any]:
    n = counts["num_images"]
    if n == 0:
        raise ValueError("evaluation saw no images: the split is empty")
    out: dict[str, Any] = {f"top{k}": counts[f"correct@{k}"] / n for k in ks}
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
    counts = score(model, prepared, split, eval_transform_ops(cfg), batch,
                   loss_fn=CombinedLoss(cfg.Loss.Eval, "Loss.Eval"))
    metrics = {"model": arch.name, "split": split, **summarize(counts)}
    if out:
        from ppipe.storage import write_bytes_atomic
        write_bytes_atomic(out, json.dumps(metrics, indent=1).encode())
    return metrics
