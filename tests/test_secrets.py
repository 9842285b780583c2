"""Credentials in ppipe's environment (S3 keys, the wandb API key) reach the training workers and are written
nowhere: not into Ray's runtime_env (which Ray logs, world-readable, and shows on a cluster's dashboard), its
session logs, the run's outputs, the run storage, wandb's offline run, or Prefect's database.

Each secret is a fresh random string, so finding it anywhere means ppipe (or a library it drives) wrote it.
"""

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ppipe.config import load_config
from ppipe.train.trainer import init_ray
from tests.test_train import QUICKSTART, _cfg
from tests.test_train_interrupt import _env, _train_command


def _fake_credentials() -> dict[str, str]:
    return {name: f"fake{secrets.token_hex(12)}" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                             "AWS_SESSION_TOKEN", "WANDB_API_KEY")}


def _holding(credentials: dict[str, str], data: bytes, where: str) -> list[str]:
    return [f"{where}: {name}" for name, value in credentials.items() if value.encode() in data]


def _files_holding(credentials: dict[str, str], *roots: Path) -> list[str]:
    hits = []
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file() and not path.is_symlink():
                hits += _holding(credentials, path.read_bytes(), str(path))
    return hits


def _objects_holding(credentials: dict[str, str], bucket_url: str) -> list[str]:
    import s3fs

    fs = s3fs.S3FileSystem()
    keys = fs.find(bucket_url)
    assert keys, f"nothing was written to {bucket_url}"
    return [hit for key in keys for hit in _holding(credentials, fs.cat_file(key), f"s3://{key}")]


@pytest.fixture
def ray_temp_dir():
    """A private Ray temp folder (`RAY_TMPDIR`), short enough for Ray's socket paths: the session the command
    under test starts is the only one in it."""
    with tempfile.TemporaryDirectory(prefix="ppipe-ray-", dir="/tmp") as path:
        yield Path(path)


def _ray_session_logs(ray_temp_dir: Path) -> Path:
    (session,) = [p for p in (ray_temp_dir / "ray").glob("session_*") if not p.is_symlink()]
    assert (session / "logs" / "runtime_env_agent.log").exists()  # the log the runtime_env used to be written to
    return session


@pytest.mark.parametrize("address", [None, "ray://head:10001"])
def test_ray_gets_no_credential_in_its_runtime_env(tmp_path, monkeypatch, address):
    import ray

    credentials = _fake_credentials()
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.example:9000")
    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs))
    init_ray(_cfg(tmp_path, *([f"Ray.address={address}"] if address else [])))
    assert not _holding(credentials, repr(seen).encode(), "ray.init's arguments")
    env_vars = (seen.get("runtime_env") or {}).get("env_vars", {})
    # a cluster's workers still learn where the run storage is; the embedded instance inherits it
    assert env_vars.get("AWS_ENDPOINT_URL") == ("http://minio.example:9000" if address else None)


def test_workers_of_the_embedded_instance_see_the_credentials_of_the_process_that_started_it(tmp_path, monkeypatch):
    import ray

    credentials = _fake_credentials()
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    ray.shutdown()
    init_ray(load_config(QUICKSTART, [f"Global.output_dir={tmp_path}", "Ray.num_workers=1"]))
    try:
        # compared in the worker, so the values never travel back
        same = ray.get(ray.remote(lambda expected: {k: os.environ.get(k) == v for k, v in expected.items()})
                       .remote(credentials))
    finally:
        ray.shutdown()
    assert same == {name: True for name in credentials}


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout_s: int) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=timeout_s)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done


def test_training_on_s3_run_storage_writes_the_credentials_nowhere(tmp_path, digits_prepared, s3_bucket,
                                                                  ray_temp_dir):
    credentials = _fake_credentials()
    env = _env(**credentials, WANDB_MODE="offline", RAY_TMPDIR=str(ray_temp_dir))
    done = _run(_train_command(tmp_path, digits_prepared, "Global.epochs=1", f"Ray.storage_path={s3_bucket}/runs"),
                tmp_path, env, timeout_s=300)
    # the workers reached the run storage with the credentials (a checkpoint is there) ...
    assert b"last checkpoint: s3://" in done.stdout
    assert list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    # ... and nothing kept them
    hits = (_holding(credentials, done.stdout + done.stderr, "the command's output")
            + _files_holding(credentials, tmp_path, _ray_session_logs(ray_temp_dir))
            + _objects_holding(credentials, s3_bucket))
    assert not hits, hits


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_the_pipeline_writes_the_credentials_nowhere(tmp_path, ray_temp_dir):
    credentials = _fake_credentials()
    env = _env(**credentials, WANDB_MODE="offline", RAY_TMPDIR=str(ray_temp_dir),
               PREFECT_HOME=str(tmp_path / "prefect"), PPIPE_STORE=str(tmp_path / "artifacts"))
    overrides = ["Global.epochs=1", "Export.targets=[paddle-inference-mkldnn]"]
    done = _run([sys.executable, "-m", "ppipe", "pipeline", str(QUICKSTART),
                 *[part for o in overrides for part in ("-o", o)]], tmp_path, env, timeout_s=540)
    assert list((tmp_path / "artifacts").rglob("manifest.json")) and list((tmp_path / "prefect").rglob("*.db"))
    hits = (_holding(credentials, done.stdout + done.stderr, "the command's output")
            + _files_holding(credentials, tmp_path, _ray_session_logs(ray_temp_dir)))
    assert not hits, hits
