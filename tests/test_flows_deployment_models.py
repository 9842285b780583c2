"""The `ppipe-distill/distill` and `ppipe-tune/tune` deployments of `prefect.yaml` end to end, through a real
Prefect server and a one-shot process worker (the fixtures and helpers of tests/test_flows_deployment.py):

- distill: the teacher is trained from the quickstart recipe (2 epochs of 16x16 digits) and published, then the
  DistillationModel student of configs/flows/distill_quickstart.yaml is trained with it and published; the
  student's lineage names the teacher's version as its parent.
- tune: 2 trials x 2 epochs of the quickstart recipe, then the best trial's recipe trained, exported and
  published; the flow's report table lists the published artifact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.test_flows_deployment import _artifacts, _assert_completed, _deploy, _tiny_overrides, _trigger_and_work
from tests.test_prefect_deployment import QUICKSTART, REPO, prefect_env, prefect_server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
STUDENT = REPO / "configs" / "flows" / "distill_quickstart.yaml"


def _small_overrides(tmp_path) -> list[str]:
    """The tiny digits run of tests/test_flows_deployment.py, 2 epochs on one Ray worker, one export target."""
    return [*_tiny_overrides(tmp_path), "Global.epochs=2", "Ray.num_workers=1",
            "Export.targets=[paddle-inference-mkldnn]"]


def _published(store: str, name: str) -> dict:
    from ppipe.artifacts import resolve

    return resolve(store, name)


@pytest.mark.timeout(600)
def test_distill_trains_the_teacher_then_publishes_the_student_with_the_teacher_as_parent(
        prefect_server, prefect_env, tmp_path):
    api, env = prefect_server, prefect_env
    t0 = time.monotonic()
    _deploy(env)
    overrides = _small_overrides(tmp_path)
    params = {"student_recipe": str(STUDENT), "teacher": None, "teacher_recipe": str(QUICKSTART),
              "overrides": overrides, "teacher_overrides": overrides}
    run_id = _trigger_and_work("ppipe-distill/distill", params, env, tmp_path)
    _assert_completed(api, run_id)

    store = str(tmp_path / "store")
    teacher, student = _published(store, "quickstart-pplcnet"), _published(store, "quickstart-distilled")
    assert (teacher["version"], student["version"]) == ("v1", "v1")
    parents = _published(store, "quickstart-distilled.lineage")["metadata"]["parents"]
    assert parents == ["quickstart-pplcnet:v1"], parents
    rows = json.loads(_artifacts(api, run_id)["distill-models"]["data"])
    assert [(r["status"], r["ref"]) for r in rows] == [("published", "quickstart-distilled:v1")], rows
    print(f"\n[distill e2e] {time.monotonic() - t0:.0f} s (with deploy)")


@pytest.mark.timeout(600)
def test_tune_searches_then_publishes_the_best_trial(prefect_server, prefect_env, tmp_path):
    api, env = prefect_server, prefect_env
    t0 = time.monotonic()
    _deploy(env)
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({
        "Optimizer.lr.learning_rate": "loguniform(0.01, 0.5)",
        "Tune": {"num_samples": 2, "scheduler": "asha", "metric": "top1", "mode": "max", "grace_period": 2}}))
    params = {"recipe": str(QUICKSTART), "search": str(search), "overrides": _small_overrides(tmp_path)}
    run_id = _trigger_and_work("ppipe-tune/tune", params, env, tmp_path)
    _assert_completed(api, run_id)

    published = _published(str(tmp_path / "store"), "quickstart-pplcnet")
    assert published["version"] == "v1"
    (parent,) = _published(str(tmp_path / "store"), "quickstart-pplcnet.lineage")["metadata"]["parents"]
    assert parent.startswith("tune:") and parent.endswith("best.yaml"), parent
    summary = json.loads((Path(parent.removeprefix("tune:")).parent / "results.json").read_text())
    assert len(summary["trials"]) == 2 and summary["best"]["recipe"] == parent.removeprefix("tune:"), summary
    rows = json.loads(_artifacts(api, run_id)["tune-models"]["data"])
    assert [(r["status"], r["ref"]) for r in rows] == [("published", "quickstart-pplcnet:v1")], rows
    print(f"\n[tune e2e] {time.monotonic() - t0:.0f} s (with deploy)")
