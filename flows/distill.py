"""SSLD distillation as PaddleClas runs it: a teacher (trained here from its recipe, or pulled from the
registry) -> a student recipe with PaddleClas's `DistillationModel` Arch (teacher frozen, student trained on
the teacher's soft labels, so images without labels may be used) -> the student published with the teacher
as its parent.

Parameters (`prefect deployment run 'ppipe-distill/distill' --params '{...}'`):
- `student_recipe`: a recipe whose `Arch.name` is `DistillationModel` (`Arch.models: [{Teacher: ...},
  {Student: ...}]`, `infer_model_name: Student`).
- `teacher`: a registry reference (`NAME`, `NAME:vN`, `NAME@ALIAS`) of the teacher's published weights; or
- `teacher_recipe`: a recipe (or zoo model name) to train and publish the teacher first.
- `teacher_key`: the key of the teacher in `Arch.models` (default `Teacher`).
- `overrides` / `teacher_overrides`: `Section.key=value` overrides of the student's / the teacher's recipe.
- `recipe_root`: the folder of the zoo recipes, for recipes given as model names (default `configs/ImageNet`).
- `gate`: the promotion gate of the student, as for `ppipe-retrain`; null: no promotion.
"""

from __future__ import annotations

import os
import time

import yaml
from prefect import flow

from flows import tasks
from flows.chain import ModelJob, finish, run_models
from flows.promotion import Gate
from flows.recipes import ZOO_RECIPES, resolve_recipe
from flows.tasks import Recipe
from flows.workspace import REPO
from ppipe.errors import ConfigError


def teacher_index(recipe_path: str, key: str) -> int:
    """The position of `key` in the recipe's `Arch.models` list (the override path of its weights)."""
    with open(recipe_path) as f:
        arch = (yaml.safe_load(f) or {}).get("Arch") or {}
    for i, entry in enumerate(arch.get("models") or []):
        if isinstance(entry, dict) and key in entry:
            return i
    raise ConfigError(f"{recipe_path}: Arch.models has no {key!r} entry (a DistillationModel recipe with "
                      f"models: [{{{key}: ...}}, {{Student: ...}}] is expected)")


def _teacher_ref(teacher: str | None, teacher_recipe: str | None, overrides: tuple[str, ...], recipe_root: str,
                 since: float) -> str:
    if (teacher is None) == (teacher_recipe is None):
        raise ConfigError(f"distill: give exactly one of `teacher` (a registry reference) or `teacher_recipe`, "
                          f"got teacher={teacher!r}, teacher_recipe={teacher_recipe!r} (to train the teacher "
                          f"with the `distill` deployment, whose default teacher is a registry reference, "
                          f"pass \"teacher\": null)")
    if teacher is not None:
        return teacher
    rows = run_models([ModelJob(Recipe(resolve_recipe(teacher_recipe, recipe_root), overrides))],
                      repo=str(REPO), skip_unchanged=True, gate=None)
    finish("distill-teacher", f"Teacher {teacher_recipe}", rows, since)
    return rows[0]["ref"]


@flow(name="ppipe-distill", log_prints=True)
def distill(student_recipe: str, teacher: str | None = None, teacher_recipe: str | None = None,
            teacher_key: str = "Teacher", overrides: list[str] | None = None,
            teacher_overrides: list[str] | None = None, recipe_root: str = ZOO_RECIPES,
            gate: dict | None = None) -> list[dict]:
    """Distil the teacher into the student and publish the student (parent: the teacher's version)."""
    since = time.time()
    gate_ = Gate.from_params(gate)
    student = Recipe(resolve_recipe(student_recipe, recipe_root), tuple(overrides or []))
    index = teacher_index(student.path, teacher_key)
    cfg = student.load()  # a bad student recipe fails before the teacher is trained
    ref = _teacher_ref(teacher, teacher_recipe, tuple(teacher_overrides or []), recipe_root, since)
    dest = os.path.join(os.path.abspath(cfg.Global.output_dir), "teachers", ref.replace("@", "-").replace(":", "-"))
    pulled = tasks.pull_teacher(cfg.Publish.store, ref, dest)
    weights = f"Arch.models.{index}.{teacher_key}.pretrained={os.path.join(dest, 'model.pdparams')}"
    job = ModelJob(Recipe(student.path, (*student.overrides, weights)),
                   parents=[f"{pulled['name']}:{pulled['version']}"])
    rows = run_models([job], repo=str(REPO), skip_unchanged=False, gate=gate_)
    return finish("distill", f"Distillation of {student_recipe} from {pulled['name']}:{pulled['version']}",
                  rows, since)
