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
from ppipe.storage import write_bytes_atomic
from ppipe.train.run_dir import RunDir

log = logging.getLogger("ppipe.stages")

# Only targets the export checks are listed; TensorRT and Paddle-Lite join when their checks exist.
TARGETS = ["paddle-inference-mkldnn", "paddle-inference-cpu"]


def run_dir(cfg: Config) -> RunDir:
    """The run's folder (`os.fspath` gives its path): every stage's files are named there."""
    return RunDir.for_config(cfg)


def prepared_path(cfg: Config) -> str:
    path = cfg.DataLoader.Train.dataset.path or cfg.Data.prepared
    if not path:
        raise ValueError("config has no prepared dataset location: set Data.prepared")
    return path


def prepare(cfg: Config) -> dict[str, Any]:
    """Data.source -> Data.prepared. `Data.source: digits-demo` first writes the embedded digits folder."""
    from ppipe.data import prepare_dataset, write_digits_demo

    source, out = cfg.Data.source, prepared_path(cfg)
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


def evaluate(cfg: Config) -> dict[str, Any]:
    from ppipe.evaluate import evaluate_run

    rdir = run_dir(cfg)
    return evaluate_run(cfg, rdir.trained_model(), prepared_path(cfg), out=rdir.eval)


def export(cfg: Config) -> dict[str, Any]:
    """The inference model of the trained run, checked against the dygraph model in a oneDNN predictor."""
    from ppipe.build import infer_arch, inference_kwargs
    from ppipe.export import export_inference_model
    from ppipe.models import create_model

    rdir = run_dir(cfg)
    arch = infer_arch(cfg)
    model = create_model(arch.name, num_classes=arch.num_classes, pretrained=rdir.trained_model(),
                         **inference_kwargs(arch.kwargs))
    shape = tuple(cfg.Export.input_shape or cfg.Global.image_shape)
    info = export_inference_model(model, rdir.inference, shape, rtol=cfg.Export.rtol)
    write_bytes_atomic(rdir.export_report, json.dumps(info, indent=1, default=str).encode())
    return info


def _run_metrics(rdir: RunDir) -> dict[str, Any]:
    """The numbers of the run's training summary and evaluation, as the published version's metrics."""
    metrics: dict[str, Any] = {}
    for path in (rdir.summary, rdir.eval):
        if os.path.isfile(path):
            with open(path) as f:
                metrics.update({k: v for k, v in json.load(f).items() if isinstance(v, (int, float))})
    return metrics


def publish(cfg: Config) -> dict[str, Any]:
    """Weights, inference model, config and metrics of the run -> the artifact store, as one new version."""
    from ppipe.artifacts import ArtifactStore
    from ppipe.build import infer_arch

    rdir = run_dir(cfg)
    rdir.trained_model()  # the first thing missing is named first
    write_bytes_atomic(rdir.config, config_to_yaml(cfg).encode())
    files = rdir.published_files()
    arch = infer_arch(cfg)
    return ArtifactStore(cfg.Publish.store).publish(
        cfg.Publish.name or arch.name, files, metrics=_run_metrics(rdir), targets=TARGETS,
        aliases=cfg.Publish.aliases,
        metadata={"model": arch.name, "num_classes": arch.num_classes,
                  "input_shape": list(cfg.Export.input_shape or cfg.Global.image_shape)})
