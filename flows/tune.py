"""A Ray Tune search over a recipe (`ppipe tune`), whose best trial's recipe then goes through the retrain
chain: train -> evaluate -> export -> publish (lineage: the search file and the best trial) -> promote.

Parameters (`prefect deployment run 'ppipe-tune/tune' --params '{...}'`):
- `recipe`: a zoo model name or a recipe path (relative ones from the checkout).
- `search`: the search file (`Section.key: loguniform(a, b)` lines and optional `Tune:` settings;
  `configs/tune/*.yaml`).
- `overrides`: `Section.key=value` overrides applied to the recipe before the search.
- `recipe_root`: the folder of the zoo recipes, for a recipe given as a model name (default `configs/ImageNet`).
- `gate`: the promotion gate, as for `ppipe-retrain`; null: no promotion.
"""

from __future__ import annotations

import os
import time

from prefect import flow, get_run_logger

from flows import tasks
from flows.chain import ModelJob, finish, run_models
from flows.promotion import Gate
from flows.recipes import ZOO_RECIPES, resolve_recipe
from flows.tasks import Recipe
from flows.workspace import REPO, in_repo


@flow(name="ppipe-tune", log_prints=True)
def tune(recipe: str, search: str, overrides: list[str] | None = None, recipe_root: str = ZOO_RECIPES,
         gate: dict | None = None) -> list[dict]:
    """Search, then train/export/publish the best trial's recipe; returns the report row of the published model."""
    since = time.time()
    gate_ = Gate.from_params(gate)
    base = Recipe(resolve_recipe(recipe, recipe_root), tuple(overrides or []))
    cfg = base.load()  # a bad recipe fails here, before any search starts
    tasks.prepare(base)
    summary = tasks.search(base, in_repo(search))
    best = summary["best"]
    if best is None:
        raise RuntimeError(f"tune: no trial of {search} finished with a result; nothing to publish")
    get_run_logger().info("best trial: %s (top1=%s)", best["config"], best["top1"])
    local = tasks.fetch_recipe(best["recipe"], os.path.join(os.path.abspath(cfg.Global.output_dir), "tune-best.yaml"))
    job = ModelJob(Recipe(local), parents=[f"tune:{best['recipe']}"])
    rows = run_models([job], repo=str(REPO), skip_unchanged=False, gate=gate_)
    return finish("tune", f"Tune of {recipe} over {search}", rows, since)
