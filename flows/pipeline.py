"""The training pipeline as a Prefect flow: prepare -> train -> export -> evaluate -> publish.

Orchestration only: each task body is one call into `ppipe.stages`; retries, caching and scheduling are
Prefect's. Run it with `ppipe pipeline [CONFIG]` (Prefect's ephemeral API when no PREFECT_API_URL is set)
or as the `prefect.yaml` deployment on a work pool.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.flow_run import expose_flow_run_id
from ppipe import console, stages
from ppipe.config import load_config
from ppipe.report.inline_figures import inline_figures

QUICKSTART = str(Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml")


def _cfg(config_path: str, overrides: list[str]):
    return load_config(config_path, overrides)


@task(name="prepare", retries=1)
def prepare(config_path: str, overrides: list[str]) -> dict:
    return stages.prepare(_cfg(config_path, overrides))


@task(name="train")
def train(config_path: str, overrides: list[str]) -> dict:
    # Ray's FailureConfig restarts failed workers from the last checkpoint; a Prefect retry on top would
    # start a new run from scratch, so this task has none.
    return stages.train(_cfg(config_path, overrides))


@task(name="evaluate", retries=1)
def evaluate(config_path: str, overrides: list[str]) -> dict:
    return stages.evaluate(_cfg(config_path, overrides))


@task(name="export", retries=1)
def export(config_path: str, overrides: list[str]) -> dict:
    return stages.export(_cfg(config_path, overrides))


@task(name="publish", retries=2)
def publish(config_path: str, overrides: list[str]) -> dict:
    expose_flow_run_id()
    return stages.publish(_cfg(config_path, overrides))


@task(name="model-card")
def model_card_artifact(config_path: str, overrides: list[str], published: dict) -> None:
    """The published model card, shown in the Prefect UI as the flow run's markdown artifact."""
    card = os.path.join(os.fspath(stages.run_dir(_cfg(config_path, overrides))), "model_card.md")
    if os.path.isfile(card):
        with open(card, encoding="utf-8") as f:
            markdown = inline_figures(f.read(), os.path.dirname(card))  # the UI has no files beside the card
        create_markdown_artifact(key=_artifact_key(f"model-card-{published['name']}"), markdown=markdown,
                                 description=f"model card of {published['name']}:{published['version']}")


def _artifact_key(text: str) -> str:
    # Prefect artifact keys: lowercase letters, digits and dashes
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


@flow(name="ppipe-train-pipeline", log_prints=True)
def train_pipeline(config_path: str = QUICKSTART, overrides: list[str] | None = None) -> dict:
    """Prepare the data, train on Ray, export the deployment targets, evaluate the model and its targets on the val
    split, and publish it with its model card; returns the published entry."""
    overrides = list(overrides or [])
    config_path = os.path.abspath(config_path)
    load_config(config_path, overrides)  # a bad recipe fails here, before any task runs
    log = get_run_logger()
    data = prepare(config_path, overrides)
    log.info("prepared %s", {k: v["num_images"] for k, v in data["splits"].items()})
    trained = train(config_path, overrides, wait_for=[data])
    top1 = "-" if trained["top1"] is None else f"{trained['top1']:.4f}"  # None: no evaluation during training
    log.info("trained %s: top1=%s in %s epochs", trained["model"], top1, trained["epochs_completed"])
    exported = export(config_path, overrides, wait_for=[trained])
    built = [t for t, entry in exported["targets"].items() if entry["status"] == "built"]
    log.info("exported %d of %d targets (%s), predictor max relative error %.2e", len(built),
             len(exported["targets"]), ", ".join(built), exported["max_rel_err"])
    # after the export, so that evaluation also scores every built target on the same val split (as dvc.yaml does)
    metrics = evaluate(config_path, overrides, wait_for=[exported])
    log.info("val top1=%.4f top5=%.4f", metrics["top1"], metrics["top5"])
    published = publish(config_path, overrides, wait_for=[metrics])
    log.info("published %s:%s", published["name"], published["version"])
    model_card_artifact(config_path, overrides, published, wait_for=[published])
    return published


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m flows.pipeline")
    p.add_argument("config", nargs="?", default=QUICKSTART)
    p.add_argument("-o", "--override", action="append", default=[])
    args = p.parse_args()
    quiet_prefect(console.verbose())
    train_pipeline(args.config, args.override)


def quiet_prefect(is_verbose: bool) -> None:
    """The flow's console: a line per stage (the flow run's own log) and per epoch; Prefect's task-state lines,
    its temporary server's notices and telemetry errors only with `ppipe -v pipeline`."""
    console.configure(is_verbose)
    if is_verbose:
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    logging.getLogger("prefect").setLevel(logging.WARNING)
    logging.getLogger("prefect.flow_runs").setLevel(logging.INFO)


if __name__ == "__main__":
    main()
