"""The flow deployments of `prefect.yaml` end to end, with a real Prefect server and a process worker (the
fixtures of tests/test_prefect_deployment.py): a zoo sweep over two tiny digits recipes, run twice under a
`ppipe-train` tag concurrency limit of 1 (the first publishes both, one training at a time; the second skips
both as unchanged), and a retrain whose recipe is wrong, which fails once with the message in the flow run."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import httpx
import pytest
import yaml

from tests.test_prefect_deployment import QUICKSTART, _run, prefect_env, prefect_server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e]
RUN_TIMEOUT_S = 420
MODELS = ["PPLCNet_x0_25", "PPLCNet_x0_35"]


def _tiny_overrides(tmp_path) -> list[str]:
    """16x16 digits, one epoch, the training loop in-process (Ray.num_workers=0); every path under tmp_path."""
    return ["Global.epochs=1", "Ray.num_workers=0", f"Global.output_dir={tmp_path / 'output'}",
            f"Data.prepared={tmp_path / 'data' / 'prepared'}", f"Publish.store={tmp_path / 'store'}",
            "Data.demo_image_size=16", "Global.image_shape=[3, 16, 16]", "Export.input_shape=[3, 16, 16]",
            "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
            "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", "Optimizer.lr.warmup_epoch=0"]


def _tiny_zoo(tmp_path) -> str:
    """A recipe root `<Family>/<Model>.yaml` holding the quickstart recipe for two PP-LCNet widths."""
    for model in MODELS:
        recipe = yaml.safe_load(QUICKSTART.read_text())
        recipe["Arch"]["name"] = model
        del recipe["Ray"]["run_name"], recipe["Publish"]["name"]  # run folder and artifact named by the model
        path = tmp_path / "zoo" / "PPLCNet" / f"{model}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return str(tmp_path / "zoo")


def _deploy(env) -> None:
    _run(["prefect", "work-pool", "create", "ppipe", "--type", "process"], env, timeout=120)
    _run(["prefect", "--no-prompt", "deploy", "--all"], env, timeout=300)


def _trigger_and_work(deployment: str, params: dict, env, tmp_path) -> str:
    """`prefect deployment run` + a one-shot worker; returns the flow run id."""
    out = _run(["prefect", "deployment", "run", deployment, "--params", json.dumps(params)], env, timeout=120)
    m = re.search(r"UUID:\s*([0-9a-f-]{36})", out.stdout)
    assert m, out.stdout
    _run(["prefect", "worker", "start", "--pool", "ppipe", "--type", "process", "--run-once", "--limit", "1"],
         env, timeout=RUN_TIMEOUT_S, cwd=tmp_path)
    return m.group(1)


def _flow_run(api: str, run_id: str) -> dict:
    return httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()


def _task_runs(api: str, run_id: str) -> list[dict]:
    return httpx.post(f"{api}/task_runs/filter", json={"task_runs": {"flow_run_id": {"any_": [run_id]}}},
                      timeout=30).json()


def _artifacts(api: str, run_id: str) -> dict[str, dict]:
    rows = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
                      timeout=30).json()
    return {a["key"]: a for a in rows}


def _assert_completed(api: str, run_id: str) -> None:
    run = _flow_run(api, run_id)
    if run["state_type"] != "COMPLETED":
        logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}},
                                                       "sort": "TIMESTAMP_ASC", "limit": 200}, timeout=30).json()
        pytest.fail(f"flow run ended {run['state_type']}: {run['state'].get('message')}\n"
                    + "\n".join(f"{r['level']} {r['message']}" for r in logs)[-10000:])


def _spans(task_runs: list[dict], name: str) -> list[tuple[datetime, datetime]]:
    return sorted((datetime.fromisoformat(t["start_time"]), datetime.fromisoformat(t["end_time"]))
                  for t in task_runs if t["name"].rsplit("-", 1)[0] == name)


@pytest.mark.slow  # ~150 s, the default run's longest test; CI's slow step runs it
@pytest.mark.timeout(900)
def test_zoo_sweep_publishes_one_training_at_a_time_then_skips_unchanged_models(prefect_server, prefect_env,
                                                                               tmp_path):
    from ppipe.artifacts import list_artifacts, resolve

    api, env = prefect_server, prefect_env
    t0 = time.monotonic()
    _deploy(env)
    _run(["prefect", "concurrency-limit", "create", "ppipe-train", "1"], env, timeout=120)
    params = {"families": ["PPLCNet"], "pattern": "PPLCNet_x0_[23]5", "overrides": _tiny_overrides(tmp_path),
              "recipe_root": _tiny_zoo(tmp_path), "gate": {"metric": "top1", "minimum": 0.0, "alias": "production"}}

    first = _trigger_and_work("ppipe-zoo-sweep/zoo-sweep", params, env, tmp_path)
    _assert_completed(api, first)
    store = str(tmp_path / "store")
    published = sorted((r["name"], r["version"]) for r in list_artifacts(store) if not r["name"].endswith(".lineage"))
    assert published == [(m, "v1") for m in MODELS], published
    for model in MODELS:
        assert resolve(store, f"{model}@production")["version"] == "v1"  # the gate (top1 >= 0) passed
        assert len(resolve(store, f"{model}.lineage")["metadata"]["fingerprint"]) == 64
    trainings = _spans(_task_runs(api, first), "train")
    assert len(trainings) == 2
    assert trainings[0][1] <= trainings[1][0], f"the limit of 1 let two trainings overlap: {trainings}"
    table = _artifacts(api, first)["zoo-sweep-models"]
    assert {r["model"]: r["status"] for r in json.loads(table["data"])} == dict.fromkeys(MODELS, "published")
    t1 = time.monotonic()

    second = _trigger_and_work("ppipe-zoo-sweep/zoo-sweep", params, env, tmp_path)
    _assert_completed(api, second)
    assert not _spans(_task_runs(api, second), "train")  # nothing retrained
    assert len([r for r in list_artifacts(store) if not r["name"].endswith(".lineage")]) == 2
    rows = json.loads(_artifacts(api, second)["zoo-sweep-models"]["data"])
    assert {r["model"]: (r["status"], r["ref"]) for r in rows} == {m: ("skipped", f"{m}:v1") for m in MODELS}
    assert "2 skipped" in _artifacts(api, second)["zoo-sweep-summary"]["data"]
    print(f"\n[zoo sweep e2e] first run {t1 - t0:.0f} s (with deploy), second {time.monotonic() - t1:.0f} s")


@pytest.mark.timeout(600)
def test_retrain_with_a_bad_recipe_fails_once_with_the_message_in_the_flow_run(prefect_server, prefect_env,
                                                                              tmp_path):
    api, env = prefect_server, prefect_env
    _deploy(env)
    params = {"recipes": [str(QUICKSTART)], "overrides": [*_tiny_overrides(tmp_path), "Global.epochs=0"]}
    run_id = _trigger_and_work("ppipe-retrain/retrain", params, env, tmp_path)
    run = _flow_run(api, run_id)
    assert run["state_type"] == "FAILED" and run["run_count"] == 1, run
    assert "Global.epochs: expected >= 1" in run["state"]["message"], run["state"]["message"]
    tasks = _task_runs(api, run_id)
    assert not [t for t in tasks if t["name"].rsplit("-", 1)[0] in ("prepare", "train")], tasks  # no work began
    rows = json.loads(_artifacts(api, run_id)["retrain-models"]["data"])
    assert rows[0]["status"] == "failed" and "Global.epochs" in rows[0]["reason"]
