"""Experiment tracking: a finished run's config, per-epoch metrics and final checkpoint go to wandb.

wandb runs offline unless configured (`Tracking.wandb_mode`, or `WANDB_MODE` in the environment, which
wins so that tests and CI can say `disabled`); offline runs land under `<output_dir>/wandb` for a later
`wandb sync`. Logging happens on the driver from the history the workers checkpointed, so it needs no
rank guard and never slows a training step.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("ppipe.tracking")


def log_run(cfg, result) -> None:
    mode = os.environ.get("WANDB_MODE") or cfg.Tracking.wandb_mode
    if mode == "disabled":
        return
    import wandb

    from ppipe.config import config_to_data

    directory = os.path.abspath(cfg.Global.output_dir)
    os.makedirs(directory, exist_ok=True)
    run = wandb.init(project=cfg.Tracking.wandb_project, name=result.run_name, mode=mode, dir=directory,
                     config=config_to_data(cfg), reinit="finish_previous")
    try:
        for row in result.history:
            run.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=int(row["epoch"]))
        run.summary.update({"checkpoint": result.checkpoint, "epochs_completed": result.epochs_completed,
                            "top1": result.top1, "train_img_per_s": result.train_img_per_s,
                            "restarts": result.restarts})
    finally:
        run.finish()
    log.info("wandb run %s (%s) written under %s", result.run_name, mode, directory)
