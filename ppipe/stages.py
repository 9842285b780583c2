"""The pipeline's stages as plain functions of a validated `Config`: prepare, train, evaluate, export, publish.

One implementation each: the `ppipe` CLI calls these, `dvc.yaml` calls the CLI, and the Prefect flow's
tasks call these. A run's files live in its run folder, `<Global.output_dir>/<run name>/`, whose file names
`ppipe.train.run_dir.RunDir` owns.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ppipe.config import Config, config_to_yaml
from ppipe.errors import UserError
from ppipe.storage import write_bytes_atomic
from ppipe.train.run_dir import RunDir

log = logging.getLogger("ppipe.stages")

# Published with every run (the FP32 export also runs on Paddle's plain CPU predictor); the other built
# targets of `<run>/export.json` are added (`published_targets`).
TARGETS = ["paddle-inference-mkldnn", "paddle-inference-cpu"]


def run_dir(cfg: Config) -> RunDir:
    """The run's folder (`os.fspath` gives its path): every stage's files are named there."""
    return RunDir.for_config(cfg)


def prepare(cfg: Config) -> dict[str, Any]:
    """Data.source -> Data.prepared. `Data.source: digits-demo` first writes the embedded digits folder."""
    from ppipe.data import prepare_dataset, resolve_prepared, write_digits_demo

    source, out = cfg.Data.source, resolve_prepared(cfg)
    if not source:
        raise ValueError("Data.source: no dataset source configured (an ImageNet-layout folder or digits-demo)")
    if source == "digits-demo":
        source = out.rstrip("/") + "-source"
        write_digits_demo(source, image_size=cfg.Data.demo_image_size)
    return prepare_dataset(source, out, shard_size=cfg.Data.shard_size)


def train(cfg: Config, *, data: str | None = None, resume: str | bool | None = None) -> dict[str, Any]:
    """Distributed training on Ray (`ppipe.train.trainer`); returns the CONTRACT's `ppipe train --json` document.

    `data`: a prepared dataset that overrides the config's; `resume`: a run name, or True for the latest run of
    this config.
    """
    from ppipe.train.trainer import train as run_training

    return run_training(cfg, data=data, resume=resume).summary()


def evaluate(cfg: Config, *, weights: str | None = None, model_ref: str | None = None,
             out: str | None = None) -> dict[str, Any]:
    """The run's model on the val split, over the Ray workers (`ppipe.evaluation.evaluate`): the report and the
    top-1 of each exported target into `<run>/eval.json` and `<run>/eval/`. `weights` (a .pdparams file) or
    `model_ref` (`NAME@ALIAS` in `Publish.store`) evaluate other weights, whose outputs go to `out` only."""
    from ppipe.evaluation import evaluate as evaluate_weights

    return evaluate_weights(cfg, weights=weights, model_ref=model_ref, out=out)


def export(cfg: Config, targets: list[str] | str | None = None, *, weights: str | None = None,
           out: str | None = None) -> dict[str, Any]:
    """The run's deployment targets (`ppipe.export.run.export_targets`) under `<run>/export/`, with the FP32
    Paddle Inference target also at `<run>/inference/` (the layout `ppipe predict` and earlier artifacts use).
    `targets`: names (or "a,b"); None: `Export.targets`, else every registered target.

    `weights` (a .pdparams file, as PaddleClas's `export_model.py -o Global.pretrained_model=FILE`) exports those
    weights instead, into `out` (default `Global.save_inference_dir`), with its `export.json` and the resolved
    `config.yaml` that `ppipe predict DIR` reads the preprocessing from; the run's folder is left alone. Returns
    the export.json record, with `report` (that file's path) and, for other weights, `weights` and `out`."""
    from ppipe.export.run import export_run
    from ppipe.models.weights import pdparams_path

    if weights is None:
        if out is not None:
            raise UserError(f"--out {out}: only other weights' export goes elsewhere (--weights FILE or "
                            "-o Global.pretrained_model=FILE); the run's own export goes to its run folder")
        rdir = run_dir(cfg)
        source, folder, report = rdir.trained_model(), os.fspath(rdir), rdir.export_report
    else:
        source, folder = os.path.abspath(pdparams_path(weights)), os.path.abspath(out or cfg.Global.save_inference_dir)
        report = os.path.join(folder, "export.json")
    summary = export_run(cfg, source, _optional_prepared(cfg), folder, targets=targets)
    write_bytes_atomic(report, json.dumps(summary, indent=1).encode())
    if weights is not None:
        write_bytes_atomic(os.path.join(folder, "config.yaml"), config_to_yaml(cfg).encode())
    where = {"weights": source, "out": folder} if weights is not None else {}
    return {**summary, **where, "report": report}


def _optional_prepared(cfg: Config) -> str | None:
    """The prepared dataset INT8 calibration draws from, when the recipe names one."""
    from ppipe.data import resolve_prepared

    try:
        return resolve_prepared(cfg)
    except ValueError:
        return None


def publish(cfg: Config) -> dict[str, Any]:
    """Weights, inference model, config, metrics and lineage (`ppipe.lineage`) of the run -> the artifact store,
    as one new version. The weights are checked with the safe loader first (a crafted pickle is never published)
    and published as a Paddle pickle, which PaddleClas's `paddle.load` reads."""
    from ppipe import weights_io
    from ppipe.artifacts import ArtifactStore
    from ppipe.build import infer_arch
    from ppipe.lineage import collect_lineage, run_metrics
    from ppipe.train.checkpoint import write_paddle_pickle

    rdir = run_dir(cfg)
    rdir.trained_model()  # the first thing missing is named first
    if weights_io.weights_format(rdir.model) == "pickle":
        weights_io.load_state(rdir.model, return_numpy=True)  # refuses a pickle that carries anything but weights
    else:
        write_paddle_pickle(rdir.model, rdir.model)
    write_bytes_atomic(rdir.config, config_to_yaml(cfg).encode())
    lineage = collect_lineage(cfg, rdir)
    write_bytes_atomic(rdir.lineage, json.dumps(lineage, indent=1, default=str).encode())
    if os.path.isfile(rdir.eval_counts):  # an evaluated run publishes its model card and figures with it
        from ppipe.evaluation import write_run_model_card

        write_run_model_card(cfg, rdir)
    files = rdir.published_files()
    arch = infer_arch(cfg)
    return ArtifactStore(cfg.Publish.store).publish(
        cfg.Publish.name or arch.name, files, metrics=run_metrics(rdir), targets=published_targets(rdir, files),
        aliases=cfg.Publish.aliases, lineage=lineage,
        metadata={"model": arch.name, "num_classes": arch.num_classes,
                  "input_shape": list(cfg.Export.input_shape or cfg.Global.image_shape)})


def published_targets(rdir: RunDir, files: dict[str, str]) -> list[str]:
    """`TARGETS` plus every other target `<run>/export.json` records as built, whose files are added to
    `files` as `export/<target>/...`."""
    built = rdir.export_record().built()  # a failed, skipped or refused target is never published
    for name, result in built.items():
        if name not in TARGETS:
            files.update({f"export/{rel}": os.path.join(rdir.exports, rel) for rel in result["files"]})
    return TARGETS + sorted(n for n in built if n not in TARGETS)
