"""The README's main job: `ppipe pipeline` on the embedded digits data, end to end, as a user runs it."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1200)
def test_quickstart_pipeline_publishes_a_model_above_90_percent_top1(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PPIPE_STORE", None)
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "ppipe", "pipeline"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=1100)
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.stderr[-4000:]
    assert elapsed < 15 * 60
    listed = subprocess.run([sys.executable, "-m", "ppipe", "artifacts", "list", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True)
    (entry,) = json.loads(listed.stdout)
    assert entry["name"] == "quickstart-pplcnet" and entry["version"] == "v1"
    assert entry["metrics"]["top1"] >= 0.90, entry["metrics"]
    assert "paddle-inference-mkldnn" in entry["targets"]
    # the lineage names the Prefect flow run that published it, though no worker set PREFECT__FLOW_RUN_ID
    from ppipe.artifacts import resolve
    lineage = resolve(str(tmp_path / "artifacts"), "quickstart-pplcnet:v1")["lineage"]
    assert uuid.UUID(lineage["flow_run_id"]), lineage
    # wandb wrote an offline run to sync later
    assert list((tmp_path / "output" / "wandb").glob("offline-run-*"))
