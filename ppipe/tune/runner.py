"""`ppipe tune`: a Ray Tune search over a recipe, each trial a ppipe training run, and its summary.

The experiment lives in `Tune.storage_path/<name>` (local or s3://): Tune's own state (so `resume=True`
continues it with `Tuner.restore` after the driver died), each trial's Ray Train run under `trials/<id>`,
`results.json` (the summary below) and `best.yaml` (the best trial's recipe, ready for `ppipe train`).
Summary: {"trials": [{"config", "top1", "epochs", "status"}, ...], "best": {"config", "top1", "recipe"}};
`top1` is the trial's last reported `Tune.metric`, status `completed`, `early_stopped` or `error`. Each trial row
also has `history` ([{"epoch", <metric>}] in the order the trial reported them) and, under PBT, `exploits`
(`ppipe.tune.trial`): a trial's `config` is then its final, perturbed one.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

import yaml

from ppipe.config import Config, ConfigError, config_to_data, load_config
from ppipe.config.schema import TuneSection
from ppipe.storage import join, write_bytes_atomic
from ppipe.tune.space import SearchSpace, override

log = logging.getLogger("ppipe.tune")

EVAL_METRICS = ("top1", "top5", "val_loss")


def experiment_location(cfg: Config) -> tuple[str, str]:
    """(storage, name): where the experiment's folder `<storage>/<name>` is."""
    storage = cfg.Tune.storage_path or os.path.join(cfg.Global.output_dir, "tune")
    return (storage if "://" in storage else os.path.abspath(storage)), (cfg.Tune.name or f"{cfg.run_name}-tune")


def _scheduler(settings: TuneSection, space: SearchSpace):
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    if settings.scheduler == "asha":
        # The epoch, not Tune's iteration count: a restored trial resumes its run at the epoch it had reached.
        return ASHAScheduler(time_attr="epoch", grace_period=settings.grace_period,
                             reduction_factor=settings.reduction_factor)
    return PopulationBasedTraining(time_attr="epoch", perturbation_interval=settings.perturbation_interval,
                                   synch=settings.synch,
                                   hyperparam_mutations={k: d.pbt_mutation() for k, d in space.distributions.items()
                                                         if d.kind != "grid"})


def _concurrency(cfg: Config, settings: TuneSection) -> int:
    """As many trials as the cluster's CPUs hold at once (each run's workers), unless the settings say."""
    import ray

    if settings.max_concurrent_trials:
        return settings.max_concurrent_trials
    per_trial = max(1, cfg.Ray.num_workers) * cfg.Ray.cpus_per_worker
    return max(1, math.floor(ray.cluster_resources().get("CPU", 1) / per_trial))


def _warn_if_pbt_must_pause(space: SearchSpace, concurrency: int) -> None:
    """PBT pauses a trial whenever another waits for a slot, and a paused trial's run starts again from its last
    Tune checkpoint (its schedule restarted): a population larger than the trials that run at once pays that."""
    trials = space.settings.num_samples * math.prod(
        len(d.args) for d in space.distributions.values() if d.kind == "grid")
    if space.settings.scheduler == "pbt" and trials > concurrency:
        log.warning("Tune.scheduler: pbt with %d trials but %d at once: PBT pauses and restarts trials to let the "
                    "others run; set Tune.max_concurrent_trials (or num_samples) so that all run together", trials,
                    concurrency)


def _trial_recipe(cfg: Config) -> Config:
    """The recipe every trial starts from: evaluation each epoch when the search ranks trials on a val metric
    (ASHA compares trials at every rung)."""
    if cfg.Tune.metric in EVAL_METRICS and cfg.Global.eval_interval != 1:
        log.info("Global.eval_interval: 1 for the trials (was %s): Tune.metric %s is ranked every epoch",
                 cfg.Global.eval_interval, cfg.Tune.metric)
        return load_config(data=config_to_data(cfg), overrides=["Global.eval_interval=1"])
    return cfg


def _tuner(cfg: Config, space: SearchSpace, prepared: str, resume: bool):
    from ray import tune

    from ppipe.tune.trial import TrainingTrial

    storage, name = experiment_location(cfg)
    settings = space.settings
    trials_dir = os.path.join(os.path.abspath(cfg.Global.output_dir), "tune", name, "trials")
    trainable = tune.with_parameters(TrainingTrial, base=config_to_data(_trial_recipe(cfg)), prepared=prepared,
                                     trials_dir=trials_dir, trials_storage=join(storage, name, "trials"))
    # The trial process only waits for reports; its run's Ray Train workers hold the CPUs. Tune refuses a trial
    # that asks for nothing at all, so it asks for one byte of memory: no CPU taken from the workers.
    trainable = tune.with_resources(trainable, {"CPU": 0, "memory": 1})
    path = join(storage, name)
    concurrency = _concurrency(cfg, settings)
    _warn_if_pbt_must_pause(space, concurrency)
    if resume and tune.Tuner.can_restore(path):
        log.info("resuming the Tune experiment at %s", path)
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable, param_space=space.param_space(),
        tune_config=tune.TuneConfig(metric=settings.metric, mode=settings.mode, num_samples=settings.num_samples,
                                    scheduler=_scheduler(settings, space),
                                    max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0,
                                  # Only PBT saves Tune checkpoints; it warns that 2 kept can be too few for
                                  # an exploit to find the one it chose.
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=4)))


def _trial_row(result, settings: TuneSection, epochs: int, keys: list[str]) -> dict[str, Any]:
    metrics = result.metrics or {}
    done = int(metrics.get("epoch") or 0)
    status = "error" if result.error else ("completed" if done >= epochs else "early_stopped")
    return {"config": {k: result.config.get(k) for k in keys}, "top1": metrics.get(settings.metric),
            "epochs": done, "status": status, "trial_id": metrics.get("trial_id"),
            "error": str(result.error) if result.error else None, "history": _history(metrics, settings.metric),
            "exploits": metrics.get("exploits") or []}


def _history(metrics: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    """The trial's epoch reports, in the order it made them (PBT: across its exploits): [{"epoch", metric}]. From the
    trial's own record, not Tune's result frame, which loses the rows of a trial that PBT restarted."""
    return [{"epoch": int(h["epoch"]), metric: _number(h.get(metric))} for h in metrics.get("history") or []]


def _number(value: Any) -> float | None:
    """A metric for results.json: NaN (a diverged run) as null, which JSON has."""
    return None if value is None or value != value else float(value)


def _best(rows: list[dict], settings: TuneSection) -> dict | None:
    """The best of the completed trials (a trial stopped early never reached the final epoch to compare)."""
    scored = [r for r in rows if r["status"] == "completed" and r["top1"] is not None] or \
             [r for r in rows if r["top1"] is not None]
    if not scored:
        return None
    pick = max if settings.mode == "max" else min
    return pick(scored, key=lambda r: r["top1"])


def summarize(cfg: Config, space: SearchSpace, results) -> dict[str, Any]:
    """The CONTRACT's summary; writes `results.json` and the best trial's recipe `best.yaml` beside the experiment."""
    storage, name = experiment_location(cfg)
    keys = list(space.distributions)
    rows = [_trial_row(r, space.settings, cfg.Global.epochs, keys) for r in results]
    best = _best(rows, space.settings)
    summary: dict[str, Any] = {"trials": rows, "best": None, "experiment": join(storage, name)}
    if best is not None:
        recipe = load_config(data=config_to_data(cfg), overrides=[override(k, v) for k, v in best["config"].items()])
        recipe_path = join(storage, name, "best.yaml")
        write_bytes_atomic(recipe_path, yaml.safe_dump(config_to_data(recipe), sort_keys=False).encode())
        summary["best"] = {"config": best["config"], "top1": best["top1"], "recipe": recipe_path,
                           "trial_id": best["trial_id"]}
    write_bytes_atomic(join(storage, name, "results.json"), json.dumps(summary, indent=1, default=str).encode())
    return summary


def run_tune(cfg: Config, space: SearchSpace, *, data: str | None = None, resume: bool = False) -> dict[str, Any]:
    """Run (or with `resume`, continue) the search of `space` over the recipe `cfg`; returns the summary."""
    from ppipe.data import open_prepared, resolve_prepared
    from ppipe.train.trainer import init_ray

    if space.settings.metric in EVAL_METRICS and (cfg.DataLoader.Eval is None or not cfg.Global.eval_during_train):
        raise ConfigError(f"Tune.metric: {space.settings.metric} is a validation metric, but the recipe does not "
                          "evaluate during training (DataLoader.Eval and Global.eval_during_train)")
    cfg = load_config(data=config_to_data(cfg), overrides=[override("Tune", _as_data(space.settings))])
    prepared = open_prepared(resolve_prepared(cfg, data)).url
    init_ray(cfg)
    results = _tuner(cfg, space, prepared, resume).fit()
    return summarize(cfg, space, results)


def _as_data(settings: TuneSection) -> dict:
    from ppipe.config.typed import to_dict

    return to_dict(settings)
