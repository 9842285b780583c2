"""Evaluation results to a wandb run: the scalars (also as the run's summary), the figures and the per-class and
most-confused-pair tables. The caller owns the run (its mode, project, rank guard)."""

from __future__ import annotations

import io

from ppipe.report.eval_report import EvalReport
from ppipe.report.plots import render_plots


def log_to_wandb(report: EvalReport, run, *, prefix: str = "eval", step: int | None = None) -> None:
    """Log `report` to the wandb `run` under `prefix/` (e.g. `eval/top1`, `eval/reliability`)."""
    import wandb
    from PIL import Image

    scalars = {f"{prefix}/{k}": v for k, v in report.scalars().items()}
    images = {f"{prefix}/{name.removesuffix('.png')}": wandb.Image(Image.open(io.BytesIO(png)), caption=name)
              for name, png in render_plots(report).items()}
    per_class = wandb.Table(columns=["class_id", "class_name", "support", "correct", "accuracy"],
                            data=[[c.class_id, c.name, c.support, c.correct, c.accuracy] for c in report.per_class])
    pairs = wandb.Table(columns=["true_name", "pred_name", "count", "share"],
                        data=[[p.true_name, p.pred_name, p.count, p.share] for p in report.confused_pairs(100)])
    run.log({**scalars, **images, f"{prefix}/per_class": per_class, f"{prefix}/confused_pairs": pairs}, step=step)
    run.summary.update(scalars)
