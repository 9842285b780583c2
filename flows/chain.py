"""The chain every flow runs for a set of models: load the recipes, prepare each dataset once (DVC-versioned),
skip what is unchanged since its last published version, then train -> evaluate -> export -> publish ->
record lineage -> promote for the rest, concurrently (trainings capped by the `ppipe-train` tag limit).

Returns one row per model for the report (`flows.report`): status `published`, `skipped` or `failed` with a
reason. A model's failure does not stop the others; the flow fails at the end, naming every failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger

from flows import tasks
from flows.promotion import Gate
from flows.report import publish_report
from flows.tasks import Recipe
from ppipe import fingerprint
from ppipe.build import infer_arch
from ppipe.config import Config, config_to_yaml
from ppipe.data import resolve_prepared
from ppipe.errors import UserError

CHAIN = ("train", "evaluate", "export", "publish", "record-lineage", "promote")


class ModelsFailed(RuntimeError):
    """Some models of a flow run failed; the message names each and why."""


@dataclass
class ModelJob:
    """One model a flow handles: its recipe, the artifacts it descends from, and what became of it."""

    recipe: Recipe
    parents: list[str] = field(default_factory=list)
    cfg: Config | None = None
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The published artifact's name (`Publish.name`, else the architecture)."""
        assert self.cfg is not None
        return self.cfg.Publish.name or infer_arch(self.cfg).name

    def fail(self, reason: str) -> None:
        self.row.update(status="failed", reason=reason)


def _load(jobs: list[ModelJob]) -> None:
    for job in jobs:
        job.row = {"model": job.recipe.path, "recipe": job.recipe.path}
        try:
            job.cfg = job.recipe.load()
        except UserError as exc:
            job.fail(f"{type(exc).__name__}: {exc}")
            continue
        job.row.update(model=job.name, output_dir=job.cfg.Global.output_dir)


def _prepare_datasets(jobs: list[ModelJob], repo: str) -> dict[str, dict]:
    """Prepare every distinct dataset once (concurrent preparations of one folder would clash); returns
    {prepared path: data version}; the models of a dataset that failed are marked failed."""
    by_data: dict[str, list[ModelJob]] = {}
    for job in jobs:
        if job.cfg is not None:
            by_data.setdefault(resolve_prepared(job.cfg), []).append(job)
    versions: dict[str, dict] = {}
    for prepared, group in by_data.items():
        state = tasks.prepare(group[0].recipe, return_state=True)
        if state.is_completed():
            state = tasks.data_version(prepared, repo, return_state=True)
        if not state.is_completed():
            for job in group:
                job.fail(f"prepare {prepared}: {state.message}")
            continue
        versions[prepared] = state.result()
    return versions


def _fingerprint(job: ModelJob, version: dict, code: str) -> None:
    fp = fingerprint.fingerprint(config_to_yaml(job.cfg), code, version["content_sha256"])
    job.row.update(fingerprint=fp, data=version)


def _mark_unchanged(job: ModelJob) -> bool:
    """True (and the row says `skipped`) when the model's last published version has the job's fingerprint."""
    fp = job.row["fingerprint"]
    previous = tasks.previous_lineage(job.cfg.Publish.store, job.name)
    if previous and previous.get("fingerprint") == fp:
        job.row.update(status="skipped", ref=f"{job.name}:{previous['model_version']}",
                       reason="recipe, code and data unchanged since that version")
        return True
    return False


def _submit(job: ModelJob, code: str, gate: Gate | None) -> dict[str, Any]:
    """Submit the model's chain; returns {stage: future}."""
    store = job.cfg.Publish.store
    trained = tasks.train.submit(job.recipe)
    evaluated = tasks.evaluate.submit(job.recipe, wait_for=[trained])
    exported = tasks.export.submit(job.recipe, wait_for=[evaluated])
    published = tasks.publish.submit(job.recipe, wait_for=[exported])
    record = {"fingerprint": job.row["fingerprint"], "code": code, "data": job.row["data"],
              "recipe": job.recipe.path, "overrides": list(job.recipe.overrides), "parents": job.parents}
    futures = {"train": trained, "evaluate": evaluated, "export": exported, "publish": published,
               "record-lineage": tasks.record_lineage.submit(store, published, record)}
    if gate is not None:
        futures["promote"] = tasks.promote.submit(store, published, gate)
    return futures


def _collect(job: ModelJob, futures: dict[str, Any]) -> None:
    results: dict[str, Any] = {}
    for stage in CHAIN:
        if stage not in futures:
            continue
        futures[stage].wait()
        state = futures[stage].state
        if not state.is_completed():
            job.fail(f"{stage}: {state.message}")
            return
        results[stage] = state.result()
    published = results["publish"]
    job.row.update(status="published", ref=f"{published['name']}:{published['version']}",
                   metrics=published.get("metrics", {}), export=results["export"],
                   promotion=results.get("promote"), reason="")


def run_models(jobs: list[ModelJob], *, repo: str, skip_unchanged: bool, gate: Gate | None) -> list[dict]:
    """Run the chain over `jobs`; returns their report rows (see the module docstring)."""
    log = get_run_logger()
    _load(jobs)
    versions = _prepare_datasets(jobs, repo)
    code = fingerprint.code_revision(repo)
    running: list[tuple[ModelJob, dict]] = []
    for job in jobs:
        if job.row.get("status") == "failed":
            continue
        _fingerprint(job, versions[resolve_prepared(job.cfg)], code)
        if skip_unchanged and _mark_unchanged(job):
            log.info("%s: unchanged since %s, skipped", job.name, job.row["ref"])
            continue
        running.append((job, _submit(job, code, gate)))
    for job, futures in running:
        _collect(job, futures)
        log.info("%s: %s %s", job.row["model"], job.row["status"], job.row.get("ref") or job.row.get("reason"))
    return [job.row for job in jobs]


def finish(key: str, title: str, rows: list[dict], since: float) -> list[dict]:
    """Publish the run's report artifacts, then fail the flow run when a model failed; returns `rows`."""
    publish_report(key, title, rows, [r["output_dir"] for r in rows if "output_dir" in r], since)
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        lines = "; ".join(f"{r['model']}: {r['reason']}" for r in failed)
        raise ModelsFailed(f"{len(failed)} of {len(rows)} models failed: {lines}")
    return rows
