"""Where a published model came from: the lineage recorded in every artifact manifest (`collect_lineage`).

    code          {"commit", "dirty"}: `git rev-parse HEAD` and `git status --porcelain` of the ppipe checkout
                  ("unknown", None outside one)
    data          {"url", "manifest_sha256", "num_classes", "splits", "dvc_md5"}: the prepared dataset the run
                  trained on, identified by the sha256 of its manifest (which lists every shard's sha256), and
                  the hash `dvc.lock` records for it where a DVC stage produced it (`ppipe.fingerprint.dvc_hash`)
    config        the resolved recipe the run trained with (`config_to_data`)
    parents       [{"role", "path", "sha256", "ref"?}]: the weights this model derives from: a distillation
                  teacher (`teacher`), the checkpoint it was fine-tuned from (`pretrained`), and for INT8 targets
                  the FP32 weights they were quantised from (`fp32-source`); "ref" is NAME:vN when the file is
                  part of a pulled artifact
    run_name      the Ray Train run name; flow_run_id: the Prefect flow run (`PREFECT__FLOW_RUN_ID`; ppipe never
                  imports Prefect)
    class_names   the label of each class id; preprocessing: the eval transform ops the model expects

The run's metrics (`run_metrics`: its training summary and evaluation numbers) are the manifest's top-level
`metrics`, which promotion gates read.

A pure function of the config and the run folder (plus the git checkout and the dataset it names); it never
reads the process environment beyond the Prefect flow-run id, so no credential can reach a manifest through it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import yaml

from ppipe.config import Config, config_to_yaml
from ppipe.fingerprint import dvc_hash, git_output
from ppipe.models.distillation import member_weight_paths
from ppipe.storage import read_json_mapping
from ppipe.train.run_dir import RunDir

FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"
DISTILLATION = "DistillationModel"


def collect_lineage(cfg: Config, rdir: RunDir, *, data: str | None = None) -> dict[str, Any]:
    """The lineage of the run in `rdir` trained with `cfg` (see the module docstring); `data`: the prepared
    dataset when it is not the one `cfg` names."""
    summary = read_json_mapping(rdir.summary)
    dataset, class_names = data_identity(cfg, data)
    return {
        "code": code_version(),
        "data": dataset,
        "config": yaml.safe_load(config_to_yaml(cfg)),
        "parents": parent_artifacts(cfg, rdir),
        "run_name": summary.get("run_name") or cfg.run_name,
        "flow_run_id": os.environ.get(FLOW_RUN_ENV) or None,
        "class_names": class_names,
        "preprocessing": preprocessing(cfg),
    }


def run_metrics(rdir: RunDir) -> dict[str, float]:
    """The numbers of the run's training summary and evaluation (evaluation wins where both have one)."""
    metrics: dict[str, Any] = {}
    for path in (rdir.summary, rdir.eval):
        metrics.update({k: v for k, v in read_json_mapping(path).items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return metrics


def code_version(checkout: str | None = None) -> dict[str, Any]:
    """{"commit", "dirty"} of the git checkout holding ppipe (or `checkout`); "unknown"/None outside one."""
    where = checkout or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    head = git_output(["rev-parse", "HEAD"], where)
    if not head:
        return {"commit": "unknown", "dirty": None}
    status = git_output(["status", "--porcelain", "--untracked-files=no"], where)
    return {"commit": head.strip(), "dirty": bool(status.strip()) if status is not None else None}


def data_identity(cfg: Config, data: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """(the lineage's data entry, the class names) of the prepared dataset."""
    from ppipe.data import open_prepared, resolve_prepared

    try:
        url = resolve_prepared(cfg, data)
        manifest = open_prepared(url).manifest
    except Exception as e:  # noqa: BLE001 - a run published without its dataset at hand still publishes
        return {"url": data or cfg.Data.prepared, "manifest_sha256": "unknown",
                "error": f"{type(e).__name__}: {e}"}, []
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode("utf-8")).hexdigest()
    identity = {"url": url, "manifest_sha256": digest, "num_classes": manifest.get("num_classes"),
                "splits": {k: v.get("num_images") for k, v in (manifest.get("splits") or {}).items()
                           if isinstance(v, dict)},
                "dvc_md5": dvc_hash(url)}
    return identity, list(manifest.get("classes") or [])


def preprocessing(cfg: Config) -> list:
    """The eval transform ops (PaddleClas `transform_ops`, DecodeImage first) that inputs must go through."""
    from ppipe.evaluate import eval_transform_ops

    return json.loads(json.dumps(eval_transform_ops(cfg), default=str))


def _file_parent(role: str, path: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": role, "path": os.path.abspath(path)}
    if os.path.isfile(path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        entry["sha256"] = h.hexdigest()
        pulled = read_json_mapping(os.path.join(os.path.dirname(os.path.abspath(path)), "manifest.json"))
        if pulled.get("name") and pulled.get("version"):
            entry["ref"] = f"{pulled['name']}:{pulled['version']}"
    return entry


def parent_artifacts(cfg: Config, rdir: RunDir) -> list[dict[str, Any]]:
    """What the run's weights derive from: distillation teachers, the fine-tuning start, and for INT8 targets
    the FP32 weights (see the module docstring)."""
    parents: list[dict[str, Any]] = []
    if cfg.Arch.name == DISTILLATION:
        infer = cfg.Arch.kwargs.get("infer_model_name")
        for item in cfg.Arch.kwargs.get("models") or []:
            for key, spec in (item.items() if isinstance(item, dict) else ()):
                if key != infer and isinstance(spec, dict):
                    # an AttentionModel teacher (AFD) keeps its backbone's weights one level down
                    parents += [{**_file_parent("teacher", path), "model": spec.get("name"), "key": key}
                                for path in member_weight_paths(spec)]
    if cfg.Global.pretrained_model:
        parents.append(_file_parent("pretrained", cfg.Global.pretrained_model))
    int8 = sorted(t for t in rdir.export_record().built() if "int8" in t)
    if int8 and os.path.isfile(rdir.model):
        parents.append({**_file_parent("fp32-source", rdir.model), "file": "model.pdparams", "targets": int8})
    return parents
