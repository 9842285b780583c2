"""The DVC pipeline end to end: `dvc repro` of dvc.yaml in a fresh clone, and a DVC remote on S3 (moto).

Each test clones the repository (what CI has) into tmp_path and runs the real `dvc` and `ppipe` commands as
subprocesses. The working tree's pipeline files are laid over the clone, so uncommitted edits to them are tested
too (in CI the working tree is the clone, so this changes nothing there).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"prepare", "train", "evaluate", "export"}
# Pipeline files laid over the clone from the working tree (relative to the repository root).
OVERLAY = ["dvc.yaml", "params.yaml", "configs", ".dvc/config", ".dvcignore", "infra/dvc"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["WANDB_MODE"] = "disabled"
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("RAY_ADDRESS", None)      # the train stage must start its own local Ray instance
    return env


def _run(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                    f"\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def _clone(dest: Path, **params) -> Path:
    """A fresh clone of the repository with the working tree's pipeline files and `params` set in params.yaml."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, capture_output=True)
    for rel in OVERLAY:
        src, dst = ROOT / rel, dest / rel
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    _set_params(dest, **params)
    return dest


def _set_params(repo: Path, **params) -> None:
    path = repo / "params.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(params)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _params(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text())


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_dvc_repro_runs_every_stage_then_skips_and_tracks_params(tmp_path):
    repo = _clone(tmp_path / "repo", epochs=2, num_workers=1)
    p = _params(repo)
    prepared, run_dir = repo / p["prepared"], repo / p["run_dir"]

    first = _run(repo, "dvc", "repro")
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout, first.stdout[-4000:]

    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest, "empty manifest"
    assert (run_dir / "model.pdparams").stat().st_size > 0
    ev = json.loads((run_dir / "eval.json").read_text())
    assert 0.0 <= ev["top1"] <= 1.0
    # the FP32 target's program: PIR's model.json (oneDNN engine) or model.pdmodel (OpenVINO engine, when faster)
    programs = {"onednn": "model.json", "openvino": "model.pdmodel"}
    shipped = json.loads((run_dir / "inference" / "predictor.json").read_text())["engine"]
    assert (run_dir / "inference" / programs[shipped]).is_file()
    train = json.loads((run_dir / "train.json").read_text())
    assert train["epochs_completed"] == 2

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == STAGES
    assert lock["stages"]["train"]["params"]["params.yaml"]["epochs"] == 2

    shown = json.loads(_run(repo, "dvc", "metrics", "show", "--json").stdout)
    metrics = shown[""]["data"]
    eval_key = f"{p['run_dir']}/eval.json"
    assert eval_key in metrics, metrics.keys()
    assert metrics[eval_key]["data"]["top1"] == pytest.approx(ev["top1"])

    second = _run(repo, "dvc", "repro")
    assert "Running stage" not in second.stdout, second.stdout
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout, second.stdout
    assert "up to date" in second.stdout
    assert json.loads(_run(repo, "dvc", "status", "--json").stdout) == {}

    _set_params(repo, epochs=3)
    status = json.loads(_run(repo, "dvc", "status", "--json").stdout)
    assert set(status) == {"train"}, status
    # DVC 3 reports params under "changed deps" ({"params.yaml": {"epochs": "modified"}}); the command, which
    # interpolates ${epochs}, changes too.
    changed = [deps["params.yaml"] for entry in status["train"] if isinstance(entry, dict)
               for deps in entry.values() if isinstance(deps, dict) and "params.yaml" in deps]
    assert changed and changed[0].get("epochs") == "modified", status
    assert "changed command" in status["train"], status


def test_dvc_push_pull_through_s3_restores_the_prepared_dataset(tmp_path, s3_endpoint, s3_bucket):
    import boto3

    repo = _clone(tmp_path / "repo")
    p = _params(repo)
    outs = [repo / p["prepared"], repo / (p["prepared"] + "-source")]

    _run(repo, "dvc", "repro", "prepare")
    before = {str(o): _digests(o) for o in outs}
    assert all(before.values()) and "manifest.json" in before[str(outs[0])]

    remote = f"{s3_bucket}/dvc"
    _run(repo, "bash", "infra/dvc/setup-remote.sh", remote, s3_endpoint)
    cfg = _run(repo, "dvc", "config", "--list").stdout
    assert f"remote.store.url={remote}" in cfg and f"remote.store.endpointurl={s3_endpoint}" in cfg, cfg

    _run(repo, "dvc", "push", "prepare")
    bucket = s3_bucket.removeprefix("s3://")
    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket, Prefix="dvc/")
    assert listed.get("KeyCount", 0) > 0, "dvc push wrote nothing to the bucket"

    shutil.rmtree(repo / ".dvc" / "cache")
    for o in outs:
        shutil.rmtree(o)
    _run(repo, "dvc", "pull", "prepare")

    after = {str(o): _digests(o) for o in outs}
    assert after == before
    assert json.loads(_run(repo, "dvc", "status", "prepare", "--json").stdout) == {}
