"""The Prefect tasks every flow shares; each body is one call into `ppipe` (or into `flows.promotion`
for the promotion record). Infrastructure failures retry with backoff (`flows.retry`);
a wrong input fails at once with its message.

Training tasks carry the tag `ppipe-train`: a Prefect tag concurrency limit on it (`infra/prefect/setup.sh`,
`prefect concurrency-limit create ppipe-train N`) caps the trainings running at once across all flow runs.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass

from prefect import task

from flows import promotion
from flows.flow_run import expose_flow_run_id
from flows.retry import INFRA_RETRIES
from ppipe import fingerprint, stages
from ppipe.config import Config, load_config

TRAIN_TAG = "ppipe-train"
# Paddle's dygraph and jit state is global to a process: an export in one task thread beside an evaluation or an
# in-process training in another fails (jit.save errors, garbled reads). Stages that run Paddle in the flow's own
# process take this lock; a training on Ray workers does not (its Paddle runs in the workers).
_IN_PROCESS_PADDLE = threading.Lock()


@dataclass(frozen=True)
class Recipe:
    """A recipe file and the `-o` overrides a flow applies to it."""

    path: str
    overrides: tuple[str, ...] = ()

    def load(self) -> Config:
        return load_config(self.path, list(self.overrides))


@task(name="prepare", **INFRA_RETRIES)
def prepare(recipe: Recipe) -> dict:
    return stages.prepare(recipe.load())


@task(name="data-version", **INFRA_RETRIES)
def data_version(prepared: str, repo: str) -> dict:
    return fingerprint.data_version(prepared, repo)


@task(name="previous-lineage", **INFRA_RETRIES)
def previous_lineage(store: str | None, model: str) -> dict | None:
    return fingerprint.latest_lineage(store, model)


# Ray Train's FailureConfig restarts lost workers from the last checkpoint inside one attempt; a Prefect retry
# (after Ray gave up, or the driver's node died) starts a new run of the same name, which resumes from there too.
@task(name="train", tags=[TRAIN_TAG], **INFRA_RETRIES)
def train(recipe: Recipe) -> dict:
    cfg = recipe.load()
    with _IN_PROCESS_PADDLE if cfg.Ray.num_workers == 0 else nullcontext():
        return stages.train(cfg)


@task(name="evaluate", **INFRA_RETRIES)
def evaluate(recipe: Recipe) -> dict:
    with _IN_PROCESS_PADDLE:
        return stages.evaluate(recipe.load())


@task(name="export", **INFRA_RETRIES)
def export(recipe: Recipe) -> dict:
    with _IN_PROCESS_PADDLE:
        return stages.export(recipe.load())


@task(name="publish", **INFRA_RETRIES)
def publish(recipe: Recipe) -> dict:
    expose_flow_run_id()
    return stages.publish(recipe.load())


@task(name="record-lineage", **INFRA_RETRIES)
def record_lineage(store: str | None, published: dict, record: dict) -> dict:
    return fingerprint.record_lineage(store, published, record)


@task(name="promote", **INFRA_RETRIES)
def promote(store: str | None, published: dict, gate: promotion.Gate) -> dict:
    return promotion.promote_if_passing(store, f"{published['name']}:{published['version']}", gate)


@task(name="tune", tags=[TRAIN_TAG], **INFRA_RETRIES)
def search(recipe: Recipe, search_path: str) -> dict:
    from ppipe.tune import load_search_space, run_tune

    cfg = recipe.load()
    return run_tune(cfg, load_search_space(search_path, cfg))


@task(name="fetch-recipe", **INFRA_RETRIES)
def fetch_recipe(url: str, dest: str) -> str:
    """A recipe written to run storage (`s3://...` or a path) as the local file `dest`."""
    from ppipe.storage import read_bytes, write_bytes_atomic

    write_bytes_atomic(dest, read_bytes(url))
    return dest


@task(name="pull-teacher", **INFRA_RETRIES)
def pull_teacher(store: str | None, ref: str, dest: str) -> dict:
    from ppipe.artifacts import pull

    return pull(store, ref, dest, overwrite=True)
