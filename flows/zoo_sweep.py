"""A sweep over the zoo: every architecture of the listed families through the retrain chain, resumable.

A model whose recipe, code and data are unchanged since its last published version (same fingerprint, see
`ppipe.fingerprint`) is skipped and reported as such, so a sweep that stopped half way resumes where it stopped.
Trainings run concurrently up to the `ppipe-train` tag concurrency limit (`infra/prefect/setup.sh`).

Parameters (`prefect deployment run 'ppipe-zoo-sweep/zoo-sweep' --params '{...}'`):
- `families`: model families (`ppipe models list --json`'s "family"); null: the whole zoo.
- `pattern`: an fnmatch pattern on model names within those families (default `*`).
- `overrides`: `Section.key=value` overrides applied to every recipe.
- `recipe_root`: the folder of `<Family>/<Model>.yaml` recipes (default `configs/ImageNet`).
- `gate`: the promotion gate, as for `ppipe-retrain`; null: no promotion.
- `skip_unchanged`: false retrains every model even when nothing changed.
"""

from __future__ import annotations

import time

from prefect import flow

from flows.chain import ModelJob, finish, run_models
from flows.promotion import Gate
from flows.recipes import ZOO_RECIPES, zoo_models, zoo_recipes
from flows.tasks import Recipe
from flows.workspace import REPO, in_repo


@flow(name="ppipe-zoo-sweep", log_prints=True)
def zoo_sweep(families: list[str] | None = None, pattern: str = "*", overrides: list[str] | None = None,
              recipe_root: str = ZOO_RECIPES, gate: dict | None = None, skip_unchanged: bool = True) -> list[dict]:
    """Train, export and publish every selected zoo model that changed; returns one report row per model."""
    since = time.time()
    gate_ = Gate.from_params(gate)
    found, missing = zoo_recipes(zoo_models(families, pattern), in_repo(recipe_root))
    extra = tuple(overrides or [])
    rows = run_models([ModelJob(Recipe(path, extra)) for path in found.values()], repo=str(REPO),
                      skip_unchanged=skip_unchanged, gate=gate_)
    rows += [{"model": m, "status": "skipped", "reason": f"no recipe under {recipe_root}"} for m in missing]
    return finish("zoo-sweep", f"Zoo sweep: {', '.join(families) if families else 'all families'}", rows, since)
