"""The `prefect.yaml` deployment end to end: a real local Prefect server, the `ppipe` process work pool,
`prefect deploy`, `prefect deployment run`, a one-shot worker, and the published model in the artifact store.

Everything is isolated: its own PREFECT_HOME and server port, outputs/data/store under tmp_path (the deployment's
pull step sets the flow's working directory to $PPIPE_HOME, the repo, so every path the run writes is given
absolute through the `overrides` parameter).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart.yaml"
DEPLOYMENT = "ppipe-train-pipeline/quickstart"
SERVER_START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 600

pytestmark = [pytest.mark.e2e]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_group(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM the process group started for `proc`, then SIGKILL what is left after `grace_s`."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; give any stragglers in its group the same signal once more
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        return


def _run(args: list[str], env: dict, timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run a CLI command in its own process group; fail the test with its output when it fails or hangs."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc, grace_s=5)
        out, _ = proc.communicate()
        pytest.fail(f"`{' '.join(args)}` did not finish in {timeout:.0f} s:\n{out[-8000:]}")
    finally:
        if proc.poll() is None:  # pragma: no cover - interrupted
            _kill_group(proc, grace_s=5)
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` exited {proc.returncode}:\n{out[-8000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out, None)


@pytest.fixture
def prefect_env(tmp_path):
    """The environment every subprocess gets: isolated Prefect, ppipe paths under tmp_path, the venv's bin first."""
    port = _free_port()
    env = dict(os.environ)
    # nothing from the caller's Prefect profile or server may leak in
    for key in [k for k in env if k.startswith("PREFECT_")]:
        del env[key]
    venv_bin = os.path.dirname(sys.executable)
    env.update({
        "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        # no cron-scheduled runs of the deployment: the one-shot worker must only see the run this test triggers
        "PREFECT_API_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_CLI_COLORS": "false",
        "PREFECT_CLI_WRAP_LINES": "false",
        "DO_NOT_TRACK": "1",
        "PPIPE_HOME": str(REPO),
        "PPIPE_STORE": str(tmp_path / "store"),
        "WANDB_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    })
    (tmp_path / "prefect-home").mkdir()
    return env


@pytest.fixture
def prefect_server(prefect_env, tmp_path):
    """`prefect server start` on a free loopback port (own process group), healthy; killed at teardown."""
    api = prefect_env["PREFECT_API_URL"]
    log_path = tmp_path / "prefect-server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["prefect", "server", "start", "--host", "127.0.0.1", "--port", prefect_env["PREFECT_SERVER_API_PORT"]],
            cwd=tmp_path, env=prefect_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited {proc.returncode}:\n{log_path.read_text()[-8000:]}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {SERVER_START_TIMEOUT_S} s:\n"
                            f"{log_path.read_text()[-8000:]}")
            time.sleep(0.5)
        yield api
    finally:
        _kill_group(proc)


@pytest.mark.timeout(900)
def test_deployment_run_completes_and_publishes(prefect_server, prefect_env, tmp_path):
    from ppipe.artifacts import list_artifacts

    api, env = prefect_server, prefect_env
    t0 = time.monotonic()
    _run(["prefect", "work-pool", "create", "ppipe", "--type", "process"], env, timeout=120)
    deployed = _run(["prefect", "--no-prompt", "deploy", "--all"], env, timeout=300)
    assert "quickstart" in deployed.stdout, deployed.stdout

    deployment = httpx.get(f"{api}/deployments/name/{DEPLOYMENT}", timeout=30)
    assert deployment.status_code == 200, deployment.text
    dep = deployment.json()
    assert dep["entrypoint"] == "flows/pipeline.py:train_pipeline"
    assert dep["work_pool_name"] == "ppipe"
    # `prefect deploy` resolves `{{ $PPIPE_HOME }}` when deploying: the deployment runs in the deployer's checkout.
    # (The worker below starts in tmp_path: the entrypoint only loads because the pull step moved to the repo.)
    assert dep["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}], dep["pull_steps"]

    store, out, prepared = tmp_path / "store", tmp_path / "output", tmp_path / "data" / "prepared"
    # a small, fast run: 16x16 digits, 2 epochs, one Ray worker; every path absolute (cwd is the repo)
    overrides = [
        "Global.epochs=2",
        "Ray.num_workers=1",
        f"Global.output_dir={out}",
        f"Data.prepared={prepared}",
        f"Publish.store={store}",
        "Data.demo_image_size=16",
        "Global.image_shape=[3, 16, 16]",
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16",
        "Optimizer.lr.warmup_epoch=0",
    ]
    params = {"config_path": str(QUICKSTART), "overrides": overrides}
    triggered = _run(["prefect", "deployment", "run", DEPLOYMENT, "--params", json.dumps(params)], env, timeout=120)
    m = re.search(r"UUID:\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", triggered.stdout)
    assert m, f"no flow run id in `prefect deployment run` output:\n{triggered.stdout}"
    flow_run_id = m.group(1)

    # a one-shot worker picks up the scheduled run and waits for it (--limit: run-once waits on active runs)
    worker = _run(["prefect", "worker", "start", "--pool", "ppipe", "--type", "process", "--run-once",
                   "--limit", "1"], env, timeout=RUN_TIMEOUT_S, cwd=tmp_path)

    run = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=30).json()
    if run["state_type"] != "COMPLETED":
        logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}},
                                                       "sort": "TIMESTAMP_ASC", "limit": 200}, timeout=30).json()
        text = "\n".join(f"{r['level']} {r['message']}" for r in logs)
        pytest.fail(f"flow run ended {run['state_type']} ({run['state_name']}): {run['state'].get('message')}\n"
                    f"--- worker ---\n{worker.stdout[-6000:]}\n--- flow run logs ---\n{text[-10000:]}")
    assert run["deployment_id"] == dep["id"]
    assert run["parameters"]["overrides"] == overrides

    # every stage ran as its own task run and completed
    tasks = httpx.post(f"{api}/task_runs/filter", json={"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}},
                       timeout=30).json()
    states = {t["name"].rsplit("-", 1)[0]: t["state_type"] for t in tasks}  # task run names are "<task>-<suffix>"
    stages = ["prepare", "train", "export", "evaluate", "publish", "model-card"]
    assert states == dict.fromkeys(stages, "COMPLETED"), states

    # the flow published exactly one version of the quickstart model, with its metrics, to the temp store
    rows = list_artifacts(str(store))
    assert [(r["name"], r["version"]) for r in rows] == [("quickstart-pplcnet", "v1")], rows
    metrics = rows[0]["metrics"]
    assert "top1" in metrics and 0.0 <= metrics["top1"] <= 1.0, metrics
    assert "candidate" in rows[0]["aliases"]
    # the flow run shows the model card, its figures embedded (the UI has no files beside the Markdown)
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
                           timeout=30).json()
    (card,) = [a for a in artifacts if (a.get("key") or "").startswith("model-card-")]
    assert "# " in card["data"] and "data:image/png;base64," in card["data"], card["data"][:500]
    # the run's files went to tmp_path, not into the repo (the flow's working directory)
    run_dirs = [p for p in out.iterdir() if (p / "model.pdparams").is_file()]
    assert len(run_dirs) == 1, list(out.iterdir())
    assert prepared.is_dir() and any(prepared.iterdir())
    print(f"\n[prefect deployment e2e] deploy + run + worker: {time.monotonic() - t0:.1f} s, "
          f"top1={metrics['top1']:.3f}")
