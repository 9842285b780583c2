"""Which weights `ppipe evaluate` scores: the run's own (`<run>/model.pdparams`), a `.pdparams` file (as
PaddleClas's `tools/eval.py -o Global.pretrained_model=FILE`), or a published artifact (`NAME@ALIAS`), pulled and
checksum-verified into a temporary folder. The weights are read here, once, on the driver; the workers receive
them with the scorer."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ppipe.config import Config
from ppipe.errors import UserError
from ppipe.train.run_dir import MODEL_FILE, RunDir


@dataclass(frozen=True)
class EvaluatedWeights:
    weights: dict[str, np.ndarray]
    origin: str        # what was evaluated, in words: the run's model, a file, or an artifact version
    is_run: bool       # the run's own model: its folder receives the outputs and its targets are scored


def _from_artifact(cfg: Config, ref: str, store: str | None) -> EvaluatedWeights:
    from ppipe.artifacts import ArtifactStore
    from ppipe.build import infer_arch
    from ppipe.models.weights import read_checkpoint

    arch = infer_arch(cfg).name
    with tempfile.TemporaryDirectory(prefix="ppipe-evaluate-") as tmp:
        dest = os.path.join(tmp, "artifact")
        manifest = ArtifactStore(store or cfg.Publish.store).pull(ref, dest)
        published = (manifest.get("metadata") or {}).get("model")
        if published and published != arch:
            raise UserError(f"--model {ref}: the artifact holds a {published}, but the recipe's model is {arch}")
        if MODEL_FILE not in manifest.get("files", {}):
            raise UserError(f"--model {ref}: the artifact has no {MODEL_FILE} (files: {sorted(manifest['files'])})")
        weights = read_checkpoint(os.path.join(dest, MODEL_FILE))
    return EvaluatedWeights(weights, f"{ref} ({manifest['name']}:{manifest['version']})", is_run=False)


def evaluated_weights(cfg: Config, *, weights: str | None = None, model_ref: str | None = None,
                      store: str | None = None) -> EvaluatedWeights:
    """The weights to score: `weights` (a .pdparams path), else the artifact `model_ref` (`NAME`, `NAME:vN`,
    `NAME@ALIAS` in `store`, default `Publish.store`), else the run's trained model."""
    from ppipe.models.weights import pdparams_path, read_checkpoint

    if weights and model_ref:
        raise UserError("give the weights to evaluate once: a .pdparams file or --model NAME@ALIAS, not both")
    if model_ref:
        return _from_artifact(cfg, model_ref, store)
    if weights:
        path = os.path.abspath(pdparams_path(weights))
        return EvaluatedWeights(read_checkpoint(path), path, is_run=False)
    path = RunDir.for_config(cfg).trained_model()
    return EvaluatedWeights(read_checkpoint(path), path, is_run=True)
