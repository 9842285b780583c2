"""The names of a run's files: its local run folder, its checkpoints, and its folders in Ray's run storage.

Everything that reads or writes a run asks these classes for the path; nothing else joins file names:

    <Global.output_dir>/<run name>/          RunDir: what evaluate, export, publish and DVC read
        model.pdparams                       the published weights (a distillation run's student, an EMA run's
                                             averaged weights)
        train.json  metrics.json  curves.csv the training summary, DVC metrics, per-epoch curves
        config.yaml                          the resolved recipe the run trained with
        eval.json                            `ppipe evaluate`: the numbers (also what publish records)
        eval/  metrics.json *.csv *.png      `ppipe evaluate`: DVC metrics and plots; eval/counts.npz its counts
        model_card.md  model_card.json       the model card (ppipe.evaluation.card), figures linked from eval/
        lineage.json                         where the run came from (git commit, data, parents), when recorded
        inference/model.json  .pdiparams     `ppipe export` (model.pdmodel when it ships OpenVINO), export.json
    <checkpoint>/                            CheckpointDir: one training checkpoint (ppipe.train.checkpoint)
    <Ray.storage_path>/<run name>-<time>/    RunStorage: Ray Train's checkpoints, plus ppipe's per-start records
        attempts/<invocation>/  workers/<invocation>/      <invocation>: the UTC time that `ppipe train` call began
        checkpoint_manager_snapshot.json     Ray Train's list of the run's registered (complete) checkpoints
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ppipe.storage import join, read_json_mapping

MODEL_FILE = "model.pdparams"


@dataclass(frozen=True)
class CheckpointDir:
    """One checkpoint folder (local or the local view Ray gives of a stored one)."""

    path: str

    @property
    def model(self) -> str:
        return os.path.join(self.path, MODEL_FILE)

    @property
    def infer_model(self) -> str:
        """A DistillationModel's student alone, or an EMA run's averaged weights: what is published."""
        return os.path.join(self.path, "infer_model.pdparams")

    @property
    def ema(self) -> str:
        return os.path.join(self.path, "ema.pdparams")

    @property
    def optimizer(self) -> str:
        return os.path.join(self.path, "optimizer.pdopt")

    @property
    def state(self) -> str:
        return os.path.join(self.path, "state.json")

    def published_weights(self) -> str:
        """The weights a run publishes: the infer model where the run saved one, else the model itself."""
        return self.infer_model if os.path.exists(self.infer_model) else self.model


@dataclass(frozen=True)
class ExportRecord:
    """What the run's `ppipe export` recorded in its export.json: `targets` {target: its entry, whatever its
    status ("built", "skipped", "failed"): "status", "reason", "files", "check", "measurements"} and
    `input_shape` (C, H, W), the shape the exported models take. Empty when the run was not exported."""

    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None

    def built(self) -> dict[str, dict[str, Any]]:
        """The targets whose files exist: `status == "built"`."""
        return {name: entry for name, entry in self.targets.items() if entry.get("status") == "built"}


@dataclass(frozen=True)
class RunDir:
    """A run's local folder, `<Global.output_dir>/<run name>/` (absolute). `os.fspath(run_dir)` is its root."""

    root: str
    # Tracking.metrics_file: where DVC reads the training metrics, when the recipe puts them elsewhere
    metrics_file: str | None = None

    @classmethod
    def for_config(cls, cfg) -> RunDir:
        return cls(os.path.abspath(os.path.join(cfg.Global.output_dir, cfg.run_name)),
                   metrics_file=cfg.Tracking.metrics_file)

    def __fspath__(self) -> str:
        return self.root

    def _file(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def model(self) -> str:
        return self._file(MODEL_FILE)

    @property
    def summary(self) -> str:
        """The `ppipe train --json` document of the run."""
        return self._file("train.json")

    @property
    def metrics(self) -> str:
        return self.metrics_file or self._file("metrics.json")

    @property
    def curves(self) -> str:
        return self._file("curves.csv")

    @property
    def config(self) -> str:
        return self._file("config.yaml")

    @property
    def eval(self) -> str:
        return self._file("eval.json")

    @property
    def eval_outputs(self) -> str:
        """The evaluation's DVC metrics, plots and figures (`ppipe.report.write_eval_outputs`)."""
        return self._file("eval")

    @property
    def eval_counts(self) -> str:
        """The evaluation's summed counts (an `EvalAccumulator`), from which its report is rebuilt exactly."""
        return self._file("eval", "counts.npz")

    @property
    def lineage(self) -> str:
        return self._file("lineage.json")

    @property
    def inference(self) -> str:
        return self._file("inference")

    @property
    def exports(self) -> str:
        """The folder of the deployment targets, one sub-folder each."""
        return self._file("export")

    @property
    def export_report(self) -> str:
        return self._file("export.json")

    def export_record(self) -> ExportRecord:
        """The run's export.json, read here only (publish, target scoring, the model card and lineage ask this);
        an empty record when the run was not exported. A record whose targets are not objects is an error
        naming the file."""
        doc = read_json_mapping(self.export_report)
        targets = doc.get("targets") or {}
        if not isinstance(targets, dict):
            raise ValueError(f"{self.export_report}: 'targets' must be an object of target entries, "
                             f"got {type(targets).__name__}")
        for name, entry in targets.items():
            if not isinstance(entry, dict):
                raise ValueError(f"{self.export_report}: targets.{name} must be an object with a 'status', "
                                 f"got {type(entry).__name__}")
        shape = doc.get("input_shape")
        return ExportRecord(dict(targets), tuple(int(d) for d in shape) if isinstance(shape, list) else None)

    def trained_model(self) -> str:
        """The run's weights; a clear error when the run has not been trained here."""
        if not os.path.isfile(self.model):
            raise FileNotFoundError(f"{self.model} does not exist: train the run first (`ppipe train`)")
        return self.model

    def published_files(self) -> dict[str, str]:
        """{name inside the published artifact: local path} of the run's files that exist; the exported model
        is required."""
        files = {MODEL_FILE: self.trained_model(), "config.yaml": self.config}
        # the program is PIR's model.json, or the legacy model.pdmodel when the export shipped the OpenVINO engine
        inference = {f"inference/{name}": os.path.join(self.inference, name)
                     for name in ("model.json", "model.pdmodel", "model.pdiparams", "predictor.json")}
        reports = {"eval.json": self.eval, "train.json": self.summary, "export.json": self.export_report,
                   "curves.csv": self.curves, "model_card.md": self._file("model_card.md"),
                   "model_card.json": self._file("model_card.json")}
        if os.path.isdir(self.eval_outputs):  # the evaluation's figures and tables, which the model card shows
            base = os.path.basename(self.eval_outputs)
            reports.update({f"{base}/{name}": os.path.join(self.eval_outputs, name)
                            for name in sorted(os.listdir(self.eval_outputs))})
        files.update({rel: path for rel, path in {**inference, **reports}.items() if os.path.isfile(path)})
        if not {"inference/model.json", "inference/model.pdmodel"} & set(files):
            raise FileNotFoundError(f"{self.inference} has no exported model: run `ppipe export` first")
        return files


@dataclass(frozen=True)
class RunStorage:
    """A training run's folder in Ray's run storage (a local path or an s3:// URL): Ray Train's checkpoints and
    ppipe's records of each start of the worker group."""

    storage: str
    name: str

    @property
    def root(self) -> str:
        return join(self.storage, self.name)

    @property
    def all_attempts(self) -> str:
        """The folder of the run's `attempts(invocation)` folders, one per `ppipe train` call that started workers."""
        return join(self.storage, self.name, "attempts")

    @property
    def checkpoint_snapshot(self) -> str:
        """Ray Train's record of the run's registered checkpoints (a checkpoint is listed once it is complete)."""
        return join(self.storage, self.name, "checkpoint_manager_snapshot.json")

    def attempts(self, invocation: str) -> str:
        return join(self.all_attempts, invocation)

    def workers(self, invocation: str) -> str:
        return join(self.storage, self.name, "workers", invocation)
