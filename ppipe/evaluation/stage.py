"""The `ppipe evaluate` stage: score weights on the val split over the Ray workers, score the run's deployment
targets on the same split, and write the results where DVC, `ppipe publish`, wandb and the model card read them.

Outputs (the run's own model: its run folder; other weights: only where `out` says):
    eval.json        the numbers: the recipe's metrics (top1, top5, ...), loss, num_images, the report's scalars
                     (ece, mean/worst class accuracy, `target_top1/<target>`), what was evaluated, and `targets`:
                     every exported target, deployable or not, with its status, reason and top-1
                     (`ppipe.evaluation.target_table`)
    eval/            `ppipe.report.write_eval_outputs`: DVC metrics and plots, figures; `counts.npz` beside them
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

from ppipe.config import Config
from ppipe.evaluation.model_scoring import ModelScorer, score_model
from ppipe.evaluation.saved_report import save_counts
from ppipe.evaluation.sources import evaluated_weights
from ppipe.report import EvalAccumulator, EvalReport, log_to_wandb, write_eval_outputs
from ppipe.storage import write_bytes_atomic
from ppipe.train.run_dir import RunDir

log = logging.getLogger("ppipe.evaluation")

SPLIT = "val"


def _json_number(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def log_evaluation(cfg: Config, report: EvalReport, origin: str) -> None:
    """The report to a wandb run `<run name>-eval`, in the mode `Tracking` (or `WANDB_MODE`) says."""
    mode = os.environ.get("WANDB_MODE") or cfg.Tracking.wandb_mode
    if mode == "disabled":
        return
    import wandb

    directory = os.path.abspath(cfg.Global.output_dir)
    os.makedirs(directory, exist_ok=True)
    run = wandb.init(project=cfg.Tracking.wandb_project, name=f"{cfg.run_name}-eval", job_type="eval", mode=mode,
                     dir=directory, config={"weights": origin, "split": SPLIT}, reinit="finish_previous")
    try:
        log_to_wandb(report, run)
    finally:
        run.finish()


def write_outputs(counts: EvalAccumulator, report: EvalReport, document: dict[str, Any], out_dir: str) -> None:
    """eval.json, eval/ and eval/counts.npz of `report` in the folder `out_dir` (a run folder's layout)."""
    where = RunDir(os.path.abspath(out_dir))
    write_eval_outputs(report, where.eval_outputs)
    save_counts(counts, report, where.eval_counts)
    write_bytes_atomic(where.eval, (json.dumps(document, indent=1, allow_nan=False) + "\n").encode())


def evaluate(cfg: Config, *, weights: str | None = None, model_ref: str | None = None, store: str | None = None,
             out: str | None = None) -> dict[str, Any]:
    """Score the run's model (or `weights`, a .pdparams file, or `model_ref`, a published artifact) on the val
    split of the prepared dataset; returns the eval.json document. The run's own model also has its deployment
    targets scored and its outputs written into the run folder; `out` puts the outputs in another folder."""
    from ppipe.build import infer_arch
    from ppipe.data import open_prepared, resolve_prepared
    from ppipe.errors import UserError
    from ppipe.evaluation.target_table import target_table
    from ppipe.evaluation.targets import score_targets

    dataset = open_prepared(resolve_prepared(cfg))
    arch = infer_arch(cfg)
    if arch.num_classes != dataset.num_classes:
        raise UserError(f"the recipe's {arch.name} has {arch.num_classes} classes, but the prepared dataset "
                        f"{dataset.url} has {dataset.num_classes}: set Arch.class_num to match")
    source = evaluated_weights(cfg, weights=weights, model_ref=model_ref, store=store)
    class_names = dataset.class_descriptions
    counts, metrics = score_model(ModelScorer(cfg, dataset.url, SPLIT, source.weights), len(class_names))
    report = counts.finalize(class_names)
    rdir = RunDir.for_config(cfg)
    skipped: dict[str, str] = {}
    table: dict[str, dict[str, Any]] = {}
    if source.is_run:
        exported = rdir.export_record()
        top1, skipped = score_targets(cfg, exported.built(), rdir.exports, dataset.url, class_names, split=SPLIT)
        report = report.with_target_top1(top1)
        table = target_table(exported.targets, top1, skipped, report.num_images, SPLIT)
    document = {"model": arch.name, "split": SPLIT, "weights": source.origin,
                **{k: _json_number(v) for k, v in report.scalars().items()}, **metrics,
                "targets_not_scored": skipped, "targets": table}
    out = out or (os.fspath(rdir) if source.is_run else None)
    if out:
        write_outputs(counts, report, document, out)
    log_evaluation(cfg, report, source.origin)
    log.info("evaluated %s on %d %s images: top-1 %.4f, top-5 %.4f", source.origin, document["num_images"], SPLIT,
             document["top1"], document.get("top5", math.nan))
    if out:
        log.info("the evaluation report (eval.json, and the figures and tables in eval/) is in %s", out)
    return document
