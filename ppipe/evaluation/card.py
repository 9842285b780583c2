"""The model card of a run, built from what its folder holds: the evaluation (`eval/counts.npz`, eval.json), the
deployment targets (`export.json`: every target with its status, latency and throughput; the top-1 of the built
ones on the val split, the gate's measurement of a refused INT8 one), the input size the recipe evaluated and
exported at, the resolved recipe, the prepared dataset's identity (`ppipe.lineage.data_identity`, the one the
manifest's lineage records) and the lineage (`lineage.json`, when recorded). Written as `<run>/model_card.md`
and `.json`, with the figures of `<run>/eval/` linked relative to them, so the run folder (or a published copy
of it) is self-contained."""

from __future__ import annotations

import os
from typing import Any

from ppipe.config import Config, config_to_yaml
from ppipe.evaluation.input_size import model_input_size
from ppipe.evaluation.target_table import target_table
from ppipe.report import EvalReport
from ppipe.storage import read_json_mapping
from ppipe.train.run_dir import ExportRecord, RunDir

FIGURE_SUFFIX = ".png"


def target_rows(rdir: RunDir, exported: ExportRecord, report: EvalReport) -> dict[str, dict[str, Any]]:
    """The evaluation's target table (`target_table`) of the run: every target its export recorded, with the
    top-1 each built one scored on the val split (`report.target_top1`) or why it was not (eval.json)."""
    not_scored = read_json_mapping(rdir.eval).get("targets_not_scored") or {}
    return target_table(exported.targets, report.target_top1, not_scored, report.num_images)


def _recipe_yaml(cfg: Config, rdir: RunDir) -> str:
    """The recipe the run trained with (its folder's config.yaml), else `cfg` resolved."""
    if os.path.isfile(rdir.config):
        with open(rdir.config) as f:
            return f.read()
    return config_to_yaml(cfg)


def _lineage(cfg: Config, rdir: RunDir) -> dict[str, Any]:
    return {"run_name": cfg.run_name, **read_json_mapping(rdir.lineage)}


def write_run_model_card(cfg: Config, rdir: RunDir | str | None = None) -> list[str]:
    """Build the model card of the run of `cfg` (folder `rdir`, default the config's) from its folder and write
    `model_card.md` and `model_card.json` there; returns the paths written. The run must have been evaluated
    (`ppipe evaluate`); its figures are under `eval/`."""
    from ppipe.build import infer_arch
    from ppipe.evaluate import eval_transform_ops
    from ppipe.lineage import data_identity
    from ppipe.evaluation.saved_report import load_report
    from ppipe.models import get_spec
    from ppipe.report import build_model_card, write_model_card

    rdir = RunDir.for_config(cfg) if rdir is None else rdir if isinstance(rdir, RunDir) else RunDir(rdir)
    report = load_report(rdir.eval_counts)
    arch = infer_arch(cfg)
    figures = sorted(n for n in os.listdir(rdir.eval_outputs) if n.endswith(FIGURE_SUFFIX))
    images = {name.removesuffix(FIGURE_SUFFIX): f"{os.path.basename(rdir.eval_outputs)}/{name}" for name in figures}
    exported = rdir.export_record()
    size = model_input_size(eval_transform_ops(cfg), exported.input_shape, get_spec(arch.name).input_size)
    card = build_model_card(arch=arch.name, num_classes=arch.num_classes, class_names=report.class_names,
                            recipe_yaml=_recipe_yaml(cfg, rdir), data_version=data_identity(cfg)[0],
                            report=report, targets=target_rows(rdir, exported, report), lineage=_lineage(cfg, rdir),
                            images=images, input_size=size.as_card_value(), input_size_source=size.source)
    return write_model_card(card, rdir.root)
