"""Model cards (Mitchell et al., "Model Cards for Model Reporting", FAT* 2019, arXiv:1810.03993), generated for
every published artifact as `model_card.json` (the facts) and `model_card.md` (the same facts for people).

The card states what the model is (architecture, size, input), how it was made (the resolved recipe, the data
version, lineage), how well it does (metrics against PaddleClas's published top-1, calibration, the classes it gets
wrong) and how each deployment target runs it (latency, throughput, top-1 after conversion or INT8 quantization).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import posixpath
from dataclasses import dataclass
from typing import Any, Mapping

from ppipe.report.card_markdown import render_markdown
from ppipe.report.eval_report import EvalReport
from ppipe.report.reference import published_results

SCHEMA = "ppipe.model_card/2"  # /2: every target with status, deployability, what its top-1 was measured on
IMAGENET_CLASSES = 1000
TARGET_FIELDS = ("status", "deployable", "latency_ms_b1", "throughput_b32", "top1", "top5", "num_images",
                 "measured_on", "reference_top1", "reason")
SPEC_SIZE_SOURCE = "the architecture's spec (PaddleClas's input size)"
CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"


@dataclass(frozen=True)
class ModelCard:
    markdown: str
    json: dict[str, Any]


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _plain(value: dict) -> dict:
    """Passed-in provenance as JSON values (a datetime or a path becomes its string)."""
    return json.loads(json.dumps(value, default=str))


def _model_section(arch: str, num_classes: int, input_size: int | str | None,
                   input_size_source: str | None) -> dict[str, Any]:
    from ppipe.models import get_spec

    spec = get_spec(arch)
    if input_size is None:
        input_size, input_size_source = spec.input_size, SPEC_SIZE_SOURCE
    return {"arch": arch, "family": spec.family, "params_m": spec.params_m, "flops_g": spec.flops_g,
            "input_size": input_size, "input_size_source": input_size_source, "spec_input_size": spec.input_size,
            "published_weights": list(spec.weights), "num_classes": num_classes}


def _published_section(arch: str, num_classes: int, top1: float) -> dict[str, Any]:
    """The run's top-1 against each published result of `arch`; the delta only where the task is ImageNet-1k."""
    results = published_results(arch)
    applies = bool(results) and num_classes == IMAGENET_CLASSES
    if not results:
        reason = f"No published figure: PaddleClas publishes no ImageNet-1k result for {arch}."
    elif not applies:
        reason = (f"The comparison does not apply: this model has {num_classes} classes and the published figures "
                  f"are ImageNet-1k ({IMAGENET_CLASSES} classes) top-1.")
    else:
        reason = None
    rows = [{**dataclasses.asdict(r), "delta_top1": top1 - r.top1 if applies else None} for r in results]
    return {"applies": applies, "reason": reason, "results": rows}


def _targets_section(targets: Mapping[str, Mapping[str, Any]], report: EvalReport) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(targets):
        entry = targets[name]
        if not isinstance(entry, Mapping):
            raise ValueError(f"targets[{name!r}] must be a mapping with keys {', '.join(TARGET_FIELDS)}; "
                             f"got {type(entry).__name__}")
        unknown = sorted(set(entry) - set(TARGET_FIELDS))
        if unknown:
            raise ValueError(f"targets[{name!r}] has unknown keys {unknown}; expected {', '.join(TARGET_FIELDS)}")
        row = {"name": name, **{k: entry.get(k) for k in TARGET_FIELDS}}
        if row["deployable"] is None:
            row["deployable"] = row["status"] == "built"
        if row["top1"] is None and name in report.target_top1:
            row["top1"], row["num_images"] = report.target_top1[name], report.num_images
            row["measured_on"] = f"the evaluation's split ({report.num_images} images)"
        # against the FP32 model on the same images: the evaluation's split, or the INT8 gate's first images
        reference = report.top1 if row["reference_top1"] is None else row["reference_top1"]
        row["delta_top1"] = row["top1"] - reference if row["top1"] is not None else None
        rows.append(row)
    return rows


def _checked_images(images: Mapping[str, str]) -> dict[str, str]:
    """Figures are linked relative to the card, so they must stay inside the artifact's directory."""
    for kind, path in images.items():
        norm = posixpath.normpath(str(path))
        if os.path.isabs(path) or norm.startswith("..") or "\\" in str(path):
            raise ValueError(f"images[{kind!r}] = {path!r} must be a relative path inside the artifact "
                             "(e.g. 'eval/reliability.png')")
    return {kind: posixpath.normpath(str(path)) for kind, path in images.items()}


def build_model_card(*, arch: str, num_classes: int, class_names, recipe_yaml: str,
                     data_version: str | Mapping[str, Any], report: EvalReport,
                     targets: Mapping[str, Mapping[str, Any]], lineage: Mapping[str, Any],
                     images: Mapping[str, str], input_size: int | str | None = None,
                     input_size_source: str | None = None) -> ModelCard:
    """The card of one trained model.

    `arch`: the registered architecture name; `recipe_yaml`: the resolved config as YAML text; `data_version`: the
    dataset's identity (a string, or a mapping of its fields); `report`: its evaluation on the val split;
    `targets`: {target: {"status", "deployable", "latency_ms_b1", "throughput_b32", "top1", "top5", "num_images",
    "measured_on", "reference_top1", "reason"}} (missing keys allowed; a top-1 left out is taken from
    `report.target_top1`, a reference left out is the model's top-1 on the report's split);
    `lineage`: {"git_commit", "git_dirty", "data_identity", "parents", "run_name", "flow_run_id", ...}, shown as far
    as present; `images`: {figure kind: path relative to the card}, e.g. {"reliability": "eval/reliability.png"};
    `input_size`: the side (or "HxW") the model was evaluated and exported at, and `input_size_source` what said
    so (None: the architecture's spec size, said to be that).
    """
    class_names = [str(n) for n in class_names]
    if len(class_names) != num_classes or report.num_classes != num_classes:
        raise ValueError(f"num_classes={num_classes}, but class_names has {len(class_names)} names and the report "
                         f"{report.num_classes} classes")
    summary = report.summary()
    card = {
        "schema": SCHEMA,
        "model": _model_section(arch, num_classes, input_size, input_size_source),
        "class_names": class_names,
        "data_version": _plain(dict(data_version)) if isinstance(data_version, Mapping) else str(data_version),
        "recipe_yaml": recipe_yaml,
        "metrics": {k: _finite(v) for k, v in summary["metrics"].items()},
        "published": _published_section(arch, num_classes, report.top1),
        "worst_classes": summary["worst_classes"],
        "confused_pairs": summary["confused_pairs"],
        "calibration": {"ece": report.ece, "num_bins": len(report.reliability), "bins": summary["reliability"]},
        "targets": _targets_section(targets, report),
        "lineage": _plain({k: v for k, v in lineage.items() if v is not None}),
        "images": _checked_images(images),
    }
    return ModelCard(markdown=render_markdown(card), json=card)


def write_model_card(card: ModelCard, out_dir: str) -> list[str]:
    """Write `model_card.md` and `model_card.json` into `out_dir` (a local path or fsspec URL), each atomically;
    returns their URLs."""
    from ppipe.storage import join, write_bytes_atomic

    md_url, json_url = join(out_dir, CARD_MD), join(out_dir, CARD_JSON)
    write_bytes_atomic(json_url, (json.dumps(card.json, indent=1, allow_nan=False) + "\n").encode())
    write_bytes_atomic(md_url, card.markdown.encode())
    return [md_url, json_url]
