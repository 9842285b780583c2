"""The pipeline's stages as plain functions of a validated `Config`: prepare, train, evaluate, export, publish.

One implementation each: the `ppipe` CLI calls these, `dvc.yaml` calls the CLI, and the Prefect flow's
tasks call these. A run's files live in its run folder, `<Global.output_dir>/<run name>/`:
`model.pdparams` (train), `eval.json` (evaluate), `inference/` + `export.json` (export).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ppipe.config import Config, config_to_yaml
from ppipe.storage import write_bytes_atomic

log = logging.getLogger("ppipe.stages")

# Published with every run (the FP32 export also runs on Paddle's plain CPU predictor); the other built
# targets of `<run>/export.json` are added (`published_targets`).
TARGETS = ["paddle-inference-mkldnn", "paddle-inference-cpu"]


def run_dir(cfg: Config) -> str:
    return os.path.abspath(os.path.join(cfg.Global.output_dir, cfg.run_name))


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


def train(cfg: Config, **kwargs) -> dict[str, Any]:
    from ppipe.train.trainer import train as run_training

    return run_training(cfg, data=prepared_path(cfg), **kwargs).summary()


def _weights(cfg: Config) -> str:
    from ppipe.train.checkpoint import MODEL_FILE

    path = os.path.join(run_dir(cfg), MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: train the run first (`ppipe train`)")
    return path


def evaluate(cfg: Config) -> dict[str, Any]:
    from ppipe.evaluate import evaluate_run

    return evaluate_run(cfg, _weights(cfg), prepared_path(cfg), out=os.path.join(run_dir(cfg), "eval.json"))


def export(cfg: Config, targets: list[str] | str | None = None) -> dict[str, Any]:
    """The run's deployment targets (`ppipe.export.run.export_targets`) under `<run>/export/`, with the FP32
    Paddle Inference target also at `<run>/inference/` (the layout `ppipe predict` and earlier artifacts use).
    `targets`: names (or "a,b"); None: `Export.targets`, else every registered target."""
    from ppipe.export.run import export_run

    summary = export_run(cfg, _weights(cfg), _optional_prepared(cfg), run_dir(cfg), targets=targets)
    write_bytes_atomic(os.path.join(run_dir(cfg), "export.json"), json.dumps(summary, indent=1).encode())
    return summary


def _optional_prepared(cfg: Config) -> str | None:
    try:
        return prepared_path(cfg)
    except ValueError:
        return None


def publish(cfg: Config) -> dict[str, Any]:
    """Weights, inference model, config and metrics of the run -> the artifact store, as one new version."""
    from ppipe.artifacts import publish as publish_artifact

    rdir = run_dir(cfg)
    write_bytes_atomic(os.path.join(rdir, "config.yaml"), config_to_yaml(cfg).encode())
    files = {"model.pdparams": _weights(cfg), "config.yaml": os.path.join(rdir, "config.yaml")}
    for name in ("inference/model.json", "inference/model.pdiparams", "inference/predictor.json", "eval.json",
                 "train.json", "export.json", "curves.csv"):
        path = os.path.join(rdir, name)
        if os.path.isfile(path):
            files[name] = path
    if "inference/model.json" not in files:
        raise FileNotFoundError(f"{rdir}/inference has no exported model: run `ppipe export` first")
    targets = published_targets(rdir, files)
    metrics: dict[str, Any] = {}
    for name in ("train.json", "eval.json"):
        if name in files:
            with open(files[name]) as f:
                metrics.update({k: v for k, v in json.load(f).items() if isinstance(v, (int, float))})
    from ppipe.build import infer_arch

    arch = infer_arch(cfg)
    return publish_artifact(cfg.Publish.store, cfg.Publish.name or arch.name, files, metrics=metrics,
                            targets=targets, aliases=cfg.Publish.aliases,
                            metadata={"model": arch.name, "num_classes": arch.num_classes,
                                      "input_shape": list(cfg.Export.input_shape or cfg.Global.image_shape)})


def published_targets(rdir: str, files: dict[str, str]) -> list[str]:
    """`TARGETS` plus every other target `<run>/export.json` records as built, whose files are added to
    `files` as `export/<target>/...`."""
    path = os.path.join(rdir, "export.json")
    built = {}
    if os.path.isfile(path):
        with open(path) as f:
            built = {k: v for k, v in json.load(f).get("targets", {}).items() if v.get("status") == "built"}
    for name, result in built.items():
        if name not in TARGETS:
            files.update({f"export/{rel}": os.path.join(rdir, "export", rel) for rel in result["files"]})
    return TARGETS + sorted(n for n in built if n not in TARGETS)
