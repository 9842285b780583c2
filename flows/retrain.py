"""Scheduled retraining of a list of recipes: prepare (DVC-versioned) -> train -> evaluate -> export every
target -> publish (with lineage) -> promote when the metric gate passes.

Parameters (`prefect deployment run 'ppipe-retrain/retrain' --params '{...}'`):
- `recipes`: zoo model names (`ResNet50_vd`: `<recipe_root>/<Family>/<Model>.yaml`) or recipe paths
  (relative ones from the checkout).
- `overrides`: `Section.key=value` overrides applied to every recipe (as `ppipe train -o`).
- `recipe_root`: the folder of the zoo recipes (relative paths are taken from the checkout).
- `gate`: `{"metric": "top1", "minimum": 0.7, "alias": "production", "mode": "max"}`; null: never promote.
"""

from __future__ import annotations

import time

from prefect import flow

from flows.chain import ModelJob, finish, run_models
from flows.promotion import Gate
from flows.recipes import ZOO_RECIPES, resolve_recipe
from flows.tasks import Recipe
from flows.workspace import REPO


@flow(name="ppipe-retrain", log_prints=True)
def retrain(recipes: list[str], overrides: list[str] | None = None, recipe_root: str = ZOO_RECIPES,
            gate: dict | None = None) -> list[dict]:
    """Retrain, export, publish and gate-promote every recipe; returns one report row per model."""
    since = time.time()
    gate_ = Gate.from_params(gate)
    extra = tuple(overrides or [])
    jobs = [ModelJob(Recipe(resolve_recipe(r, recipe_root), extra)) for r in recipes]
    rows = run_models(jobs, repo=str(REPO), skip_unchanged=False, gate=gate_)
    return finish("retrain", f"Retrain of {len(rows)} recipe(s)", rows, since)
