"""The trained model's evaluation: the recipe's metrics and loss (`ppipe.evaluate.score`, as training computes
them) and the full report's counts (`ppipe.report.EvalAccumulator`) from one pass over each rank's share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ppipe.config import Config
from ppipe.evaluation.runner import Counts, run_sharded
from ppipe.report import EvalAccumulator

REPORT_KEY = "report"  # the accumulator's flat counts among a rank's counts; the other keys are `score`'s


@dataclass(frozen=True)
class ModelScorer:
    """Scores `weights` ({parameter name: array}, read once on the driver) of the recipe's inference model."""

    cfg: Config
    prepared: str
    split: str
    weights: dict[str, np.ndarray]

    def __call__(self, rank: int, world_size: int) -> Counts:
        from ppipe.build import infer_arch
        from ppipe.evaluate import eval_metrics, eval_transform_ops, score
        from ppipe.losses import CombinedLoss
        from ppipe.models import create_model
        from ppipe.models.weights import load_pretrained
        from ppipe.quantization import load_qat_weights, qat_enabled

        arch = infer_arch(self.cfg)
        model = create_model(arch.name, num_classes=arch.num_classes, **arch.kwargs)
        if qat_enabled(self.cfg.Quantization):  # a QAT run is scored as it trained: fake-quantized, learnt scales
            model = load_qat_weights(model, self.weights, self.cfg.Quantization)
        else:
            load_pretrained(model, self.weights, drop_classifier=False)
        accumulator = EvalAccumulator.empty(arch.num_classes)
        loader = self.cfg.DataLoader.Eval or self.cfg.DataLoader.Train
        counts = score(model, self.prepared, self.split, eval_transform_ops(self.cfg), loader.sampler.batch_size,
                       rank=rank, world_size=world_size, loss_fn=CombinedLoss(self.cfg.Loss.Eval, "Loss.Eval"),
                       metrics=eval_metrics(self.cfg), accumulator=accumulator)
        return {REPORT_KEY: accumulator.to_flat(), **{k: np.float64(v) for k, v in counts.items()}}


def score_model(scorer: ModelScorer, num_classes: int) -> tuple[EvalAccumulator, dict[str, Any]]:
    """(the counts of the full report, the recipe's metrics as `ppipe.evaluate.summarize` gives them) of the whole
    split, scored on the Ray workers."""
    from ppipe.evaluate import eval_metrics, summarize

    counts = run_sharded(scorer, scorer.cfg)
    flat = counts.pop(REPORT_KEY)
    metrics = summarize({k: float(v) for k, v in counts.items()}, eval_metrics(scorer.cfg))
    return EvalAccumulator.from_flat(flat, num_classes), metrics
